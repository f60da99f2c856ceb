"""Queries and writes of the application database. Synchronous (SQLAlchemy); async
callers run them with ``asyncio.to_thread``. Each function is one short transaction."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, func, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from sentinel.analysis import amount_band
from sentinel.contracts import ProgressUpdate
from sentinel.delivery import CLAIMABLE, DONE, LEADABLE, RECEIPTED, DeliveryRow, DeliveryStatus, may_move
from sentinel.models import Observation, WithdrawalRequest
from sentinel.notice_policy import RecentNotice
from sentinel.risk import RiskHit, UserHistory
from store.db import insert_once
from store.events import add_event
from store.tables import (
    AuditLog,
    DeviceToken,
    InboxMessage,
    NoticeDelivery,
    ParkedCallback,
    RiskHitRow,
    UnmappedCode,
    WithdrawalEvent,
    WithdrawalRecord,
    utcnow,
)

log = logging.getLogger(__name__)


# --- notice deliveries (exactly once per key) ------------------------------------------


@dataclass(frozen=True)
class Claim:
    """Result of claiming a delivery: ``send`` is False when it was already sent."""

    send: bool
    row_id: int
    attempts: int
    status: DeliveryStatus
    provider_message_id: str | None
    previous: DeliveryStatus | None = None  # the row's status before this claim took it over


#: an attempt still "sending" after this long is taken as dead (longer than the activity's
#: 30 s start-to-close timeout, so a live attempt is never doubled)
STALE_SENDING_S = 60


def _may_take_over(statuses: frozenset[DeliveryStatus]):
    """A delivery row another attempt may claim: in one of ``statuses`` (sentinel/delivery.py:
    CLAIMABLE for a retry, LEADABLE for a digest leader), or ``sending`` by an attempt dead
    for STALE_SENDING_S (a live attempt is never doubled)."""
    assert all(may_move(s, DeliveryStatus.SENDING) for s in statuses)
    stale = utcnow() - timedelta(seconds=STALE_SENDING_S)
    return or_(
        NoticeDelivery.status.in_(sorted(statuses)),
        and_(NoticeDelivery.status == DeliveryStatus.SENDING, NoticeDelivery.updated_at < stale),
    )


def claim_delivery(engine: Engine, row: NoticeDelivery) -> Claim:
    """Claim the right to send one delivery. The first attempt inserts the row already
    ``sending``; a later attempt takes the row over with one atomic conditional update, and
    only if the earlier attempt failed or died. Two attempts can therefore never both send,
    and a key already sent is never sent again."""
    row.status, row.attempts, row.updated_at = DeliveryStatus.SENDING, 1, utcnow()
    with Session(engine) as session:
        session.add(row)
        try:
            session.commit()
            session.refresh(row)
            return Claim(True, row.id, 1, DeliveryStatus.SENDING, None)
        except IntegrityError:
            session.rollback()
        existing = session.exec(select(NoticeDelivery).where(NoticeDelivery.key == row.key)).one()
        previous = DeliveryStatus(existing.status)
        result = session.execute(
            update(NoticeDelivery)
            .where(
                NoticeDelivery.id == existing.id,
                NoticeDelivery.status == previous,
                _may_take_over(CLAIMABLE),
            )
            .values(status=DeliveryStatus.SENDING, attempts=NoticeDelivery.attempts + 1, updated_at=utcnow())
        )
        session.commit()
        session.refresh(existing)
        send = result.rowcount == 1
        return Claim(
            send,
            existing.id,
            existing.attempts,
            DeliveryStatus(existing.status),
            existing.provider_message_id,
            previous if send else None,
        )


def finish_delivery(
    engine: Engine,
    row_id: int,
    *,
    status: DeliveryStatus,
    provider_message_id: str | None = None,
    error: str | None = None,
    template_id: str | None = None,
    text_sha256: str | None = None,
    event: WithdrawalEvent | None = None,
) -> None:
    """Write the outcome of a send; ``event`` (the event record's row of it, R27) in the
    same transaction."""
    with Session(engine) as session:
        if event is not None:
            add_event(session, event)
        row = session.get(NoticeDelivery, row_id)
        row.status = status
        row.provider_message_id = provider_message_id or row.provider_message_id
        row.error = error
        row.template_id = template_id or row.template_id
        row.text_sha256 = text_sha256 or row.text_sha256
        row.updated_at = utcnow()
        session.add(row)
        session.commit()


def give_up_delivery(engine: Engine, key: str, reason: str) -> bool:
    """The workflow stopped trying to deliver ``key``: its row says ``given_up`` with the
    reason (a row already done keeps its status). False when no row needed it."""
    with Session(engine) as session:
        done = session.execute(
            update(NoticeDelivery)
            .where(NoticeDelivery.key == key, NoticeDelivery.status.not_in(sorted(DONE)))
            .values(status=DeliveryStatus.GIVEN_UP, error=reason, updated_at=utcnow())
        )
        session.commit()
        return done.rowcount == 1


# --- folding (several notices of one user become one message) ---------------------------


def delivery_status(engine: Engine, key: str) -> DeliveryRow | None:
    """The delivery ``key`` (status, provider message id, send_after, row id), None when
    there is none. ``send_after`` is set for a notice that was batched for folding."""
    with Session(engine) as session:
        row = session.exec(select(NoticeDelivery).where(NoticeDelivery.key == key)).first()
        if row is None:
            return None
        return DeliveryRow(DeliveryStatus(row.status), row.provider_message_id, row.send_after, row.id)


def record_batched(
    engine: Engine, row: NoticeDelivery, send_after: datetime, notice_status: str
) -> DeliveryStatus:
    """Hold a notice for the user's next digest. Idempotent: returns the row's status (a
    retried activity finds its row already batched, or already folded into a digest). A row
    still batched for an earlier moment is moved to ``send_after`` (a fold window that
    ended at night waits for the morning with the user's other notices)."""
    row.status, row.send_after, row.notice_status, row.updated_at = (
        DeliveryStatus.BATCHED,
        send_after,
        notice_status,
        utcnow(),
    )
    key = row.key
    with Session(engine) as session:
        session.add(row)
        try:
            session.commit()
            return DeliveryStatus.BATCHED
        except IntegrityError:
            session.rollback()
        session.execute(
            update(NoticeDelivery)
            .where(
                NoticeDelivery.key == key,
                NoticeDelivery.status == DeliveryStatus.BATCHED,
                NoticeDelivery.send_after < send_after,
            )
            .values(send_after=send_after, updated_at=utcnow())
        )
        session.commit()
        return DeliveryStatus(
            session.exec(select(NoticeDelivery.status).where(NoticeDelivery.key == key)).one()
        )


def lead_batch(
    engine: Engine, key: str, user_id: str, channel: str, due: datetime | None = None
) -> list[NoticeDelivery] | None:
    """Take the lead of a digest: claim this batched delivery (one atomic update, as
    ``claim_delivery`` does), then every other batched delivery of the user on the channel
    that is due by ``due`` (this delivery's own release time; rows held for a later moment
    wait for theirs), marked ``folding`` under this key. Returns the other rows of the
    digest, or None when this delivery is no longer ours to send (another digest took it,
    or it was sent). A leader that died is taken over like any stale send, with the rows it
    had gathered."""
    with Session(engine) as session:
        mine = session.execute(
            update(NoticeDelivery)
            .where(NoticeDelivery.key == key, _may_take_over(LEADABLE))
            .values(status=DeliveryStatus.SENDING, attempts=NoticeDelivery.attempts + 1, updated_at=utcnow())
        )
        if mine.rowcount != 1:
            session.commit()
            return None
        session.execute(
            update(NoticeDelivery)
            .where(
                NoticeDelivery.user_id == user_id,
                NoticeDelivery.channel == channel,
                NoticeDelivery.status == DeliveryStatus.BATCHED,
                NoticeDelivery.key != key,
                *([NoticeDelivery.send_after <= due] if due is not None else []),
            )
            .values(status=DeliveryStatus.FOLDING, provider_message_id=key, updated_at=utcnow())
        )
        session.commit()
        return list(
            session.exec(
                select(NoticeDelivery)
                .where(
                    NoticeDelivery.status == DeliveryStatus.FOLDING, NoticeDelivery.provider_message_id == key
                )
                .order_by(NoticeDelivery.id)
            )
        )


def finish_batch(engine: Engine, key: str, folded: list[str], dropped: list[str]) -> None:
    """After the digest went out: its rows are ``folded`` (named by the digest's key in
    provider_message_id), the ones no longer true are ``suppressed``."""
    with Session(engine) as session:
        if folded:
            session.execute(
                update(NoticeDelivery)
                .where(NoticeDelivery.key.in_(folded))
                .values(status=DeliveryStatus.FOLDED, provider_message_id=key, updated_at=utcnow())
            )
        if dropped:
            session.execute(
                update(NoticeDelivery)
                .where(NoticeDelivery.key.in_(dropped))
                .values(
                    status=DeliveryStatus.SUPPRESSED,
                    error=f"no longer true when digest {key} went out",
                    updated_at=utcnow(),
                )
            )
        session.commit()


def withdrawal_statuses(engine: Engine, withdrawal_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """{withdrawal id: (status, card_last4)} from the projection."""
    with Session(engine) as session:
        rows = session.exec(
            select(WithdrawalRecord).where(WithdrawalRecord.withdrawal_id.in_(withdrawal_ids))
        )
        return {r.withdrawal_id: (r.status, r.card_last4) for r in rows}


#: provider_message_id of a row whose send passed the point of no return (SMTP: DATA begun)
COMMITTING = "committing"


def mark_committing(engine: Engine, row_id: int) -> None:
    """The send is past the point where the provider could still not have it."""
    with Session(engine) as session:
        session.execute(
            update(NoticeDelivery)
            .where(NoticeDelivery.id == row_id)
            .values(provider_message_id=COMMITTING, updated_at=utcnow())
        )
        session.commit()


#: provider_message_id prefix of a row whose send was handed to providers (a ProviderChain):
#: ``handed:aliyun,tencent`` names every provider that may have the notice
HANDED = "handed:"


def handed_providers(marker: str | None) -> tuple[str, ...] | None:
    """The providers a ``handed:`` marker names; None when ``marker`` is not one."""
    if marker is None or not marker.startswith(HANDED):
        return None
    return tuple(n for n in marker[len(HANDED) :].split(",") if n)


def mark_handed(engine: Engine, row_id: int, provider: str) -> None:
    """Record, before a provider is asked to send, that it may have the notice. Names add
    up (an earlier attempt's providers stay named): a takeover asks each of them."""
    with Session(engine) as session:
        row = session.get(NoticeDelivery, row_id)
        names = list(handed_providers(row.provider_message_id) or ())
        if provider not in names:
            names.append(provider)
        row.provider_message_id = HANDED + ",".join(names)
        row.updated_at = utcnow()
        session.add(row)
        session.commit()


def deliveries_for(engine: Engine, withdrawal_id: str) -> list[NoticeDelivery]:
    with Session(engine) as session:
        stmt = (
            select(NoticeDelivery)
            .where(NoticeDelivery.withdrawal_id == withdrawal_id)
            .order_by(NoticeDelivery.id)
        )
        return list(session.exec(stmt))


# --- inbox ----------------------------------------------------------------------------


def add_inbox_message(engine: Engine, message: InboxMessage) -> InboxMessage:
    """Insert, or return the message already stored under ``message.key`` (unique
    constraint ``uq_inbox_message_key``). Safe when several workers add the same key at
    once: on PostgreSQL the later insert waits for the earlier transaction and fails on the
    key only if it committed; SQLite serialises the writers. One row either way."""
    with Session(engine) as session:
        session.add(message)
        try:
            session.commit()
            session.refresh(message)
            return message
        except IntegrityError:
            session.rollback()
            return session.exec(select(InboxMessage).where(InboxMessage.key == message.key)).one()


def find_inbox_message(engine: Engine, key: str) -> InboxMessage | None:
    """The inbox message stored under the notice ``key`` (committed), None if there is none."""
    with Session(engine) as session:
        return session.exec(select(InboxMessage).where(InboxMessage.key == key)).first()


def inbox(engine: Engine, user_id: str, limit: int = 50, offset: int = 0) -> tuple[list[InboxMessage], int]:
    """Messages newest first, and the unread count (the red dot, R21)."""
    with Session(engine) as session:
        stmt = (
            select(InboxMessage)
            .where(InboxMessage.user_id == user_id)
            .order_by(InboxMessage.id.desc())
            .offset(offset)
            .limit(limit)
        )
        unread = session.exec(
            select(func.count())
            .select_from(InboxMessage)
            .where(InboxMessage.user_id == user_id, InboxMessage.read_at.is_(None))
        ).one()
        return list(session.exec(stmt)), int(unread)


def mark_read(engine: Engine, user_id: str, message_id: int, at: datetime | None = None) -> bool:
    return read_message(engine, user_id, message_id, at) is not None


def read_message(
    engine: Engine, user_id: str, message_id: int, at: datetime | None = None
) -> InboxMessage | None:
    """Mark one of this user's messages read (idempotent: the first read time stays) and
    return it; None when the user has no such message."""
    with Session(engine) as session:
        msg = session.get(InboxMessage, message_id)
        if msg is None or msg.user_id != user_id:
            return None
        if msg.read_at is None:
            msg.read_at = at or utcnow()
            session.add(msg)
            add_event(
                session,
                WithdrawalEvent(
                    key=f"read/inbox/{msg.key}",
                    withdrawal_id=msg.withdrawal_id,
                    kind="read",
                    at=msg.read_at,
                    notice_channel="inbox",
                    notice_key=msg.key,
                    stage=msg.stage,
                ),
            )
            session.commit()
            session.refresh(msg)
        return msg


# --- parked callbacks -----------------------------------------------------------------


def park_callback(
    engine: Engine, channel: str, event_id: str, withdrawal_id: str, observation_json: str
) -> bool:
    """Keep a callback for a withdrawal that is not tracked yet. False if already kept."""
    return insert_once(
        engine,
        ParkedCallback(
            channel=channel, event_id=event_id, withdrawal_id=withdrawal_id, observation_json=observation_json
        ),
    )


def parked_for(engine: Engine, withdrawal_id: str) -> list[ParkedCallback]:
    with Session(engine) as session:
        stmt = (
            select(ParkedCallback)
            .where(ParkedCallback.withdrawal_id == withdrawal_id, ParkedCallback.delivered_at.is_(None))
            .order_by(ParkedCallback.id)
        )
        return list(session.exec(stmt))


def mark_parked_delivered(engine: Engine, ids: list[int], outcome: str = "applied") -> None:
    """Mark parked callbacks handled: ``applied`` (given to the workflow), ``late`` (tracking
    had ended: recorded, not applied) or ``redelivered`` (an operator re-sent it)."""
    if not ids:
        return
    with Session(engine) as session:
        for row in session.exec(select(ParkedCallback).where(ParkedCallback.id.in_(ids))):
            row.delivered_at = utcnow()
            row.outcome = outcome
            session.add(row)
        session.commit()


def get_parked(engine: Engine, parked_id: int) -> ParkedCallback | None:
    with Session(engine) as session:
        return session.get(ParkedCallback, parked_id)


def parked_callbacks(
    engine: Engine, state: str = "attention", limit: int = 50, offset: int = 0
) -> tuple[list[ParkedCallback], int]:
    """Parked callbacks for operators, oldest first, and the total. ``state``:
    ``undelivered`` (still waiting for tracking to start), ``late`` (came after tracking
    ended), ``attention`` (both), ``all``."""
    conditions = {
        "undelivered": ParkedCallback.delivered_at.is_(None),
        "late": ParkedCallback.outcome == "late",
        "attention": or_(ParkedCallback.delivered_at.is_(None), ParkedCallback.outcome == "late"),
        "all": None,
    }
    if state not in conditions:
        raise ValueError(f"state must be one of {', '.join(conditions)}")
    cond = conditions[state]
    with Session(engine) as session:
        count = select(func.count()).select_from(ParkedCallback)
        stmt = select(ParkedCallback)
        if cond is not None:
            count, stmt = count.where(cond), stmt.where(cond)
        total = int(session.exec(count).one())
        rows = session.exec(stmt.order_by(ParkedCallback.id).offset(offset).limit(limit))
        return list(rows), total


# --- unmapped codes ---------------------------------------------------------------------


def record_unmapped(
    engine: Engine,
    channel: str,
    raw_status: str,
    raw_code: str | None,
    subtype: str | None,
    withdrawal_id: str | None,
    at: datetime | None = None,
) -> None:
    """Count an answer the catalogue does not map (one row per channel/status/code)."""
    at = at or utcnow()
    key = (channel, raw_status, raw_code or "")
    where = (
        UnmappedCode.channel == key[0],
        UnmappedCode.raw_status == key[1],
        UnmappedCode.raw_code == key[2],
    )
    with Session(engine) as session:
        if withdrawal_id:  # the event record (R27): once per withdrawal and answer
            add_event(
                session,
                WithdrawalEvent(
                    key=f"unmapped/{withdrawal_id}/{channel}/{raw_status}/{raw_code or ''}"[:200],
                    withdrawal_id=withdrawal_id,
                    kind="unmapped",
                    at=at,
                    channel=channel,
                    status=raw_status[:64],
                    reason_code=(raw_code or "")[:64],
                ),
            )
        for _ in range(2):  # insert, or count up when another writer inserted it first
            result = session.execute(
                update(UnmappedCode)
                .where(*where)
                .values(count=UnmappedCode.count + 1, last_seen=at, last_withdrawal_id=withdrawal_id)
            )
            if result.rowcount:
                session.commit()
                return
            session.add(
                UnmappedCode(
                    channel=key[0],
                    raw_status=key[1],
                    raw_code=key[2],
                    subtype=subtype,
                    first_seen=at,
                    last_seen=at,
                    last_withdrawal_id=withdrawal_id,
                )
            )
            try:
                session.commit()
                return
            except IntegrityError:
                session.rollback()


async def count_unmapped(engine: Engine, channel: str, obs: Observation, withdrawal_id: str) -> None:
    """Count ``obs`` if the catalogue did not map it. Bookkeeping for operators: a failure
    is logged, never in the way of the caller (the gateway's callback, the worker's poll)."""
    if obs.classification.mapped:
        return
    try:
        await asyncio.to_thread(
            record_unmapped,
            engine,
            channel,
            obs.raw_status,
            obs.raw_code,
            obs.classification.subtype,
            withdrawal_id,
        )
    except Exception:  # noqa: BLE001
        log.exception("could not count unmapped code %s/%s", obs.raw_status, obs.raw_code)


def unmapped_codes(engine: Engine, limit: int = 100, offset: int = 0) -> tuple[list[UnmappedCode], int]:
    with Session(engine) as session:
        total = int(session.exec(select(func.count()).select_from(UnmappedCode)).one())
        rows = session.exec(
            select(UnmappedCode)
            .order_by(UnmappedCode.last_seen.desc(), UnmappedCode.id)
            .offset(offset)
            .limit(limit)
        )
        return list(rows), total


# --- provider receipts ------------------------------------------------------------------


def delivery_receipt(
    engine: Engine,
    key: str | None,
    status: str,
    error: str | None = None,
    *,
    provider_message_id: str | None = None,
) -> str | None:
    """A provider's delivery receipt for the delivery ``key`` (or, for providers whose
    receipts carry only their own message id, ``provider_message_id``): ``delivered`` or
    ``failed``. Returns the status stored afterwards, None when no delivery matches. A
    receipt never moves a delivery backwards (read or delivered stays, whatever arrives
    later)."""
    if status not in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED):
        raise ValueError("status must be delivered or failed")
    if (key is None) == (provider_message_id is None):
        raise ValueError("give key or provider_message_id")
    where = (
        NoticeDelivery.key == key
        if key is not None
        else NoticeDelivery.provider_message_id == provider_message_id
    )
    with Session(engine) as session:
        row = session.exec(select(NoticeDelivery).where(where)).first()
        if row is None:
            return None
        if row.status in RECEIPTED:
            row.status = status
            if error:
                row.error = error
            row.updated_at = utcnow()
            session.add(row)
            session.commit()
        return row.status


# --- withdrawal records (projection), risk hits, audit ----------------------------------


def payee_fingerprint(payee_ref: str) -> str:
    """Identifies "the same card" for the risk rules without keeping any card data."""
    return hashlib.sha256(payee_ref.encode()).hexdigest()


def record_withdrawal(
    engine: Engine, req: WithdrawalRequest, status: str, delay_threshold_s: float | None = None
) -> bool:
    """Insert the projection row once, and the event record's ``started`` row (R27) in the
    same transaction; False if it already exists (a repeated start)."""
    with Session(engine) as session:
        if session.get(WithdrawalRecord, req.withdrawal_id) is not None:
            return False
        add_event(
            session,
            WithdrawalEvent(
                key=f"started/{req.withdrawal_id}",
                withdrawal_id=req.withdrawal_id,
                kind="started",
                at=req.created_at,
                channel=req.channel,
                bank_code=req.bank_code,
                amount_band=amount_band(req.amount),
                currency=req.currency,
                delay_threshold_s=None if delay_threshold_s is None else int(delay_threshold_s),
                status=status,
            ),
        )
        session.add(
            WithdrawalRecord(
                withdrawal_id=req.withdrawal_id,
                user_id=req.user_id,
                amount=req.amount,
                currency=req.currency,
                channel=req.channel,
                bank_code=req.bank_code,
                card_last4=req.card_last4,
                payee_fingerprint=payee_fingerprint(req.payee_ref),
                locale=req.locale,
                status=status,
                created_at=req.created_at,
            )
        )
        try:
            session.commit()
            return True
        except IntegrityError:
            session.rollback()
            return False


def update_progress(engine: Engine, update: ProgressUpdate) -> None:
    with Session(engine) as session:
        row = session.get(WithdrawalRecord, update.withdrawal_id)
        if row is None:
            return
        became_review = update.needs_review and not row.needs_review
        category = update.category.value if update.category else None
        if (row.status, row.category, row.reason_code) != (update.status.value, category, update.reason_code):
            # a transition: the event record (R27), in this transaction (a retried write finds
            # the row already moved and adds nothing)
            add_event(
                session,
                WithdrawalEvent(
                    key=f"status/{update.withdrawal_id}/{update.at.isoformat()}/{update.status.value}/{category}/"
                    f"{update.reason_code}"[:200],
                    withdrawal_id=update.withdrawal_id,
                    kind="status",
                    at=update.at,
                    status=update.status.value,
                    category=category,
                    reason_code=update.reason_code,
                ),
            )
        row.status = update.status.value
        row.category = update.category.value if update.category else None
        row.severity = update.severity.value
        row.reason_code = update.reason_code
        row.needs_review = update.needs_review
        if became_review:
            row.review_since = update.at
        if not update.needs_review:
            row.review_since = None
            row.assignee = None
        row.updated_at = update.at
        session.add(row)
        session.commit()


def user_history(
    engine: Engine, user_id: str, fingerprint: str, windows: dict[str, float], now: datetime, exclude_id: str
) -> UserHistory:
    with Session(engine) as session:
        counts: dict[str, int] = {}
        failures: dict[str, int] = {}
        for rule_id, seconds in windows.items():
            since = now - timedelta(seconds=seconds)
            base = (
                select(func.count())
                .select_from(WithdrawalRecord)
                .where(
                    WithdrawalRecord.user_id == user_id,
                    WithdrawalRecord.created_at >= since,
                    WithdrawalRecord.withdrawal_id != exclude_id,
                )
            )
            counts[rule_id] = int(session.exec(base).one()) + 1  # this one too
            failures[rule_id] = int(session.exec(base.where(WithdrawalRecord.status == "FAILED")).one())
        to_card = session.exec(
            select(func.count())
            .select_from(WithdrawalRecord)
            .where(
                WithdrawalRecord.user_id == user_id,
                WithdrawalRecord.payee_fingerprint == fingerprint,
                WithdrawalRecord.withdrawal_id != exclude_id,
            )
        ).one()
    return UserHistory(
        withdrawals_in_window=counts, failures_in_window=failures, earlier_withdrawals_to_card=int(to_card)
    )


def record_risk_hits(engine: Engine, withdrawal_id: str, hits: list[RiskHit]) -> None:
    if not hits:
        return
    with Session(engine) as session:
        if session.exec(select(RiskHitRow).where(RiskHitRow.withdrawal_id == withdrawal_id)).first():
            return  # a retried activity: already recorded
        for h in hits:
            session.add(
                RiskHitRow(
                    withdrawal_id=withdrawal_id,
                    rule_id=h.rule_id,
                    rule_version=h.rule_version,
                    detail=h.detail,
                )
            )
        session.commit()


def user_withdrawals(
    engine: Engine, user_id: str, limit: int = 20, offset: int = 0
) -> tuple[list[WithdrawalRecord], int]:
    with Session(engine) as session:
        total = session.exec(
            select(func.count()).select_from(WithdrawalRecord).where(WithdrawalRecord.user_id == user_id)
        ).one()
        rows = session.exec(
            select(WithdrawalRecord)
            .where(WithdrawalRecord.user_id == user_id)
            .order_by(WithdrawalRecord.created_at.desc(), WithdrawalRecord.withdrawal_id)
            .offset(offset)
            .limit(limit)
        )
        return list(rows), int(total)


def get_record(engine: Engine, withdrawal_id: str) -> WithdrawalRecord | None:
    with Session(engine) as session:
        return session.get(WithdrawalRecord, withdrawal_id)


def _review_filter(
    stmt,
    *,
    category: str | None = None,
    older_than_s: float | None = None,
    min_amount: Decimal | None = None,
    assignee: str | None = None,
    unassigned: bool = False,
    status: str | None = None,
    now: datetime | None = None,
):
    stmt = stmt.where(WithdrawalRecord.needs_review.is_(True))
    if category:
        stmt = stmt.where(WithdrawalRecord.category == category)
    if status:
        stmt = stmt.where(WithdrawalRecord.status == status)
    if older_than_s is not None:
        stmt = stmt.where(
            WithdrawalRecord.review_since <= (now or utcnow()) - timedelta(seconds=older_than_s)
        )
    if min_amount is not None:
        stmt = stmt.where(WithdrawalRecord.amount >= min_amount)
    if assignee:
        stmt = stmt.where(WithdrawalRecord.assignee == assignee)
    if unassigned:
        stmt = stmt.where(WithdrawalRecord.assignee.is_(None))
    return stmt


def review_queue(
    engine: Engine,
    *,
    category: str | None = None,
    older_than_s: float | None = None,
    min_amount: Decimal | None = None,
    assignee: str | None = None,
    unassigned: bool = False,
    status: str | None = None,
    now: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[WithdrawalRecord]:
    """Withdrawals waiting for a person, oldest first (R29)."""
    return review_queue_page(
        engine,
        category=category,
        older_than_s=older_than_s,
        min_amount=min_amount,
        assignee=assignee,
        unassigned=unassigned,
        status=status,
        now=now,
        limit=limit,
        offset=offset,
    )[0]


def review_queue_page(
    engine: Engine, *, limit: int = 50, offset: int = 0, **filters
) -> tuple[list[WithdrawalRecord], int]:
    """One page of the review queue (oldest first) and the number of cases matching the filters."""
    with Session(engine) as session:
        total = int(
            session.exec(_review_filter(select(func.count()).select_from(WithdrawalRecord), **filters)).one()
        )
        stmt = _review_filter(select(WithdrawalRecord), **filters)
        stmt = (
            stmt.order_by(WithdrawalRecord.review_since, WithdrawalRecord.withdrawal_id)
            .offset(offset)
            .limit(limit)
        )
        return list(session.exec(stmt)), total


def assign_review(engine: Engine, withdrawal_id: str, assignee: str | None) -> bool:
    with Session(engine) as session:
        row = session.get(WithdrawalRecord, withdrawal_id)
        if row is None or not row.needs_review:
            return False
        row.assignee = assignee
        session.add(row)
        session.commit()
        return True


def risk_hits_for(engine: Engine, withdrawal_id: str) -> list[RiskHitRow]:
    with Session(engine) as session:
        return list(session.exec(select(RiskHitRow).where(RiskHitRow.withdrawal_id == withdrawal_id)))


def add_audit(
    engine: Engine, actor: str, role: str, action: str, withdrawal_id: str | None, detail: str | None
) -> None:
    with Session(engine) as session:
        session.add(
            AuditLog(actor=actor, role=role, action=action, withdrawal_id=withdrawal_id, detail=detail)
        )
        session.commit()


def add_audit_once(
    engine: Engine, actor: str, role: str, action: str, withdrawal_id: str, detail: str | None, ref: str
) -> bool:
    """An audit row that a retried writer (an activity) may write again: one row per
    (withdrawal, ``ref``). False when it was there already."""
    with Session(engine) as session:
        session.add(
            AuditLog(
                actor=actor, role=role, action=action, withdrawal_id=withdrawal_id, detail=detail, ref=ref
            )
        )
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False
        return True


def audit_for(engine: Engine, withdrawal_id: str) -> list[AuditLog]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(AuditLog).where(AuditLog.withdrawal_id == withdrawal_id).order_by(AuditLog.id)
            )
        )


def recent_notices(engine: Engine, user_id: str, since: datetime) -> list[RecentNotice]:
    """Notices this user was actually sent since ``since`` (for inhibition and the cap)."""
    with Session(engine) as session:
        rows = session.exec(
            select(NoticeDelivery).where(
                NoticeDelivery.user_id == user_id,
                NoticeDelivery.updated_at >= since,
                NoticeDelivery.status.in_(
                    (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ)
                ),
            )
        )
        return [
            RecentNotice(
                withdrawal_id=r.withdrawal_id,
                stage=r.stage,
                category=r.category,
                channel=r.channel,
                at=r.updated_at if r.updated_at.tzinfo else r.updated_at.replace(tzinfo=UTC),
            )
            for r in rows
        ]


def record_suppressed(engine: Engine, row: NoticeDelivery, reason: str) -> None:
    """Log a notice that policy kept from interrupting the user (idempotent on the key)."""
    row.status = DeliveryStatus.SUPPRESSED
    row.error = reason
    with Session(engine) as session:
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()


# --- device tokens (push) ---------------------------------------------------------------


class DeviceTokenTaken(Exception):
    """The push token is live for another user: it is not moved without that user's logout."""


def register_device(
    engine: Engine, user_id: str, provider: str, token: str, platform: str | None = None
) -> DeviceToken:
    """Add (or revive) a device's push token. Idempotent. A token another user holds moves
    to this user only once it is invalid (that user's app unregistered it at logout, or the
    provider reported it dead); while it is live, :class:`DeviceTokenTaken` (whoever knows a
    token must not divert someone else's notices by registering it)."""
    with Session(engine) as session:
        for _ in range(2):  # insert, or update when the token is known (maybe from another writer)
            row = session.exec(
                select(DeviceToken).where(DeviceToken.provider == provider, DeviceToken.token == token)
            ).first()
            if row is None:
                row = DeviceToken(user_id=user_id, provider=provider, token=token, platform=platform)
            else:
                if row.user_id != user_id and row.invalid_at is None:
                    raise DeviceTokenTaken(f"{provider} token is registered to another user")
                # a phone handed to someone else after a logout keeps its token: it now reaches the new user
                row.user_id, row.platform, row.invalid_at, row.invalid_reason = user_id, platform, None, None
                row.registered_at = utcnow()
            session.add(row)
            try:
                session.commit()
                session.refresh(row)
                return row
            except IntegrityError:
                session.rollback()
        raise RuntimeError(f"could not register device token for {user_id}")


def device_tokens(engine: Engine, user_id: str, provider: str) -> list[str]:
    """The user's live tokens for ``provider``, newest first."""
    with Session(engine) as session:
        rows = session.exec(
            select(DeviceToken.token)
            .where(
                DeviceToken.user_id == user_id,
                DeviceToken.provider == provider,
                DeviceToken.invalid_at.is_(None),
            )
            .order_by(DeviceToken.registered_at.desc(), DeviceToken.id.desc())
        )
        return list(rows)


def devices_of(engine: Engine, user_id: str) -> list[DeviceToken]:
    with Session(engine) as session:
        return list(
            session.exec(select(DeviceToken).where(DeviceToken.user_id == user_id).order_by(DeviceToken.id))
        )


def forget_device(engine: Engine, provider: str, token: str, reason: str, user_id: str | None = None) -> bool:
    """Mark a token invalid (dead at the provider, or the user logged out). True if found."""
    with Session(engine) as session:
        stmt = select(DeviceToken).where(DeviceToken.provider == provider, DeviceToken.token == token)
        if user_id is not None:
            stmt = stmt.where(DeviceToken.user_id == user_id)
        row = session.exec(stmt).first()
        if row is None:
            return False
        row.invalid_at, row.invalid_reason = utcnow(), reason[:200]
        session.add(row)
        session.commit()
        return True
