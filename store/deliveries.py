"""The notice delivery log: one row per notice key, claimed before a send and finished
after it, so a notice goes out exactly once (docs/reliability.md); provider receipts; what a
user was recently sent (inhibition and the cap). Each function is one short transaction.

Synchronous (SQLAlchemy); async callers run them with ``asyncio.to_thread``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from sentinel.delivery import CLAIMABLE, DONE, RECEIPTED, DeliveryRow, DeliveryStatus, may_move
from sentinel.notice_policy import RecentNotice
from store.db import saved_id
from store.events import add_event
from store.tables import (
    NoticeDelivery,
    WithdrawalEvent,
    utcnow,
)

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


def may_take_over(statuses: frozenset[DeliveryStatus]) -> ColumnElement[bool]:
    """A delivery row another attempt may claim: in one of ``statuses`` (sentinel/delivery.py:
    CLAIMABLE for a retry, LEADABLE for a digest leader), or ``sending`` by an attempt dead
    for STALE_SENDING_S (a live attempt is never doubled)."""
    assert all(may_move(s, DeliveryStatus.SENDING) for s in statuses)
    stale = utcnow() - timedelta(seconds=STALE_SENDING_S)
    return or_(
        col(NoticeDelivery.status).in_(sorted(statuses)),
        and_(col(NoticeDelivery.status) == DeliveryStatus.SENDING, col(NoticeDelivery.updated_at) < stale),
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
            return Claim(True, saved_id(row.id), 1, DeliveryStatus.SENDING, None)
        except IntegrityError:
            session.rollback()
        existing = session.exec(select(NoticeDelivery).where(col(NoticeDelivery.key) == row.key)).one()
        previous = DeliveryStatus(existing.status)
        result = session.exec(
            update(NoticeDelivery)
            .where(
                col(NoticeDelivery.id) == existing.id,
                col(NoticeDelivery.status) == previous,
                may_take_over(CLAIMABLE),
            )
            .values(status=DeliveryStatus.SENDING, attempts=NoticeDelivery.attempts + 1, updated_at=utcnow())
        )
        session.commit()
        session.refresh(existing)
        send = result.rowcount == 1
        return Claim(
            send,
            saved_id(existing.id),
            existing.attempts,
            DeliveryStatus(existing.status),
            existing.provider_message_id,
            previous if send else None,
        )


def _delivery(session: Session, row_id: int) -> NoticeDelivery:
    row = session.get(NoticeDelivery, row_id)
    if row is None:
        raise LookupError(f"no notice delivery row {row_id}")
    return row


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
        row = _delivery(session, row_id)
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
        done = session.exec(
            update(NoticeDelivery)
            .where(col(NoticeDelivery.key) == key, col(NoticeDelivery.status).not_in(sorted(DONE)))
            .values(status=DeliveryStatus.GIVEN_UP, error=reason, updated_at=utcnow())
        )
        session.commit()
        return done.rowcount == 1


#: provider_message_id of a row whose send passed the point of no return (SMTP: DATA begun)
COMMITTING = "committing"


def mark_committing(engine: Engine, row_id: int) -> None:
    """The send is past the point where the provider could still not have it."""
    with Session(engine) as session:
        session.exec(
            update(NoticeDelivery)
            .where(col(NoticeDelivery.id) == row_id)
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
        row = _delivery(session, row_id)
        names = list(handed_providers(row.provider_message_id) or ())
        if provider not in names:
            names.append(provider)
        row.provider_message_id = HANDED + ",".join(names)
        row.updated_at = utcnow()
        session.add(row)
        session.commit()


def delivery_status(engine: Engine, key: str) -> DeliveryRow | None:
    """The delivery ``key`` (status, provider message id, send_after, row id), None when
    there is none. ``send_after`` is set for a notice that was batched for folding."""
    with Session(engine) as session:
        row = session.exec(select(NoticeDelivery).where(col(NoticeDelivery.key) == key)).first()
        if row is None:
            return None
        return DeliveryRow(
            DeliveryStatus(row.status), row.provider_message_id, row.send_after, saved_id(row.id)
        )


def deliveries_for(engine: Engine, withdrawal_id: str) -> list[NoticeDelivery]:
    with Session(engine) as session:
        stmt = (
            select(NoticeDelivery)
            .where(col(NoticeDelivery.withdrawal_id) == withdrawal_id)
            .order_by(col(NoticeDelivery.id))
        )
        return list(session.exec(stmt))


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
        col(NoticeDelivery.key) == key
        if key is not None
        else col(NoticeDelivery.provider_message_id) == provider_message_id
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


def recent_notices(engine: Engine, user_id: str, since: datetime) -> list[RecentNotice]:
    """Notices this user was actually sent since ``since`` (for inhibition and the cap)."""
    with Session(engine) as session:
        rows = session.exec(
            select(NoticeDelivery).where(
                col(NoticeDelivery.user_id) == user_id,
                col(NoticeDelivery.updated_at) >= since,
                col(NoticeDelivery.status).in_(
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
