"""Folding: several notices of one user become one message. A notice waits as ``batched``
until its send-after time; the first due one leads the batch and folds the others in.

Synchronous (SQLAlchemy); async callers run them with ``asyncio.to_thread``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from sentinel.delivery import LEADABLE, DeliveryStatus
from store.deliveries import may_take_over
from store.tables import (
    NoticeDelivery,
    WithdrawalRecord,
    utcnow,
)

# --- folding (several notices of one user become one message) ---------------------------


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
        session.exec(
            update(NoticeDelivery)
            .where(
                col(NoticeDelivery.key) == key,
                col(NoticeDelivery.status) == DeliveryStatus.BATCHED,
                col(NoticeDelivery.send_after) < send_after,
            )
            .values(send_after=send_after, updated_at=utcnow())
        )
        session.commit()
        return DeliveryStatus(
            session.exec(select(NoticeDelivery.status).where(col(NoticeDelivery.key) == key)).one()
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
        mine = session.exec(
            update(NoticeDelivery)
            .where(col(NoticeDelivery.key) == key, may_take_over(LEADABLE))
            .values(status=DeliveryStatus.SENDING, attempts=NoticeDelivery.attempts + 1, updated_at=utcnow())
        )
        if mine.rowcount != 1:
            session.commit()
            return None
        session.exec(
            update(NoticeDelivery)
            .where(
                col(NoticeDelivery.user_id) == user_id,
                col(NoticeDelivery.channel) == channel,
                col(NoticeDelivery.status) == DeliveryStatus.BATCHED,
                col(NoticeDelivery.key) != key,
                *([col(NoticeDelivery.send_after) <= due] if due is not None else []),
            )
            .values(status=DeliveryStatus.FOLDING, provider_message_id=key, updated_at=utcnow())
        )
        session.commit()
        return list(
            session.exec(
                select(NoticeDelivery)
                .where(
                    col(NoticeDelivery.status) == DeliveryStatus.FOLDING,
                    col(NoticeDelivery.provider_message_id) == key,
                )
                .order_by(col(NoticeDelivery.id))
            )
        )


def finish_batch(engine: Engine, key: str, folded: list[str], dropped: list[str]) -> None:
    """After the digest went out: its rows are ``folded`` (named by the digest's key in
    provider_message_id), the ones no longer true are ``suppressed``."""
    with Session(engine) as session:
        if folded:
            session.exec(
                update(NoticeDelivery)
                .where(col(NoticeDelivery.key).in_(folded))
                .values(status=DeliveryStatus.FOLDED, provider_message_id=key, updated_at=utcnow())
            )
        if dropped:
            session.exec(
                update(NoticeDelivery)
                .where(col(NoticeDelivery.key).in_(dropped))
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
            select(WithdrawalRecord).where(col(WithdrawalRecord.withdrawal_id).in_(withdrawal_ids))
        )
        return {r.withdrawal_id: (r.status, r.card_last4) for r in rows}
