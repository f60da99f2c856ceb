"""Queries and writes of the application database. Synchronous (SQLAlchemy); async
callers run them with ``asyncio.to_thread``. Each function is one short transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from store.tables import InboxMessage, NoticeDelivery, ParkedCallback, utcnow


# --- notice deliveries (exactly once per key) ------------------------------------------


@dataclass(frozen=True)
class Claim:
    """Result of claiming a delivery: ``send`` is False when it was already sent."""

    send: bool
    row_id: int
    attempts: int
    status: str
    provider_message_id: str | None


def claim_delivery(engine: Engine, row: NoticeDelivery) -> Claim:
    """Insert the delivery row, or find the existing one with the same key. The unique
    key means two concurrent attempts cannot both insert; an attempt that finds the row
    already ``sent`` must not send again."""
    with Session(engine) as session:
        session.add(row)
        try:
            session.commit()
            session.refresh(row)
            existing = row
        except IntegrityError:
            session.rollback()
            existing = session.exec(select(NoticeDelivery).where(NoticeDelivery.key == row.key)).one()
        if existing.status in ("sent", "delivered", "read"):
            return Claim(False, existing.id, existing.attempts, existing.status, existing.provider_message_id)
        existing.attempts += 1
        existing.status = "sending"
        existing.updated_at = utcnow()
        session.add(existing)
        session.commit()
        return Claim(True, existing.id, existing.attempts, existing.status, existing.provider_message_id)


def finish_delivery(
    engine: Engine,
    row_id: int,
    *,
    status: str,
    provider_message_id: str | None = None,
    error: str | None = None,
    template_id: str | None = None,
    text_sha256: str | None = None,
) -> None:
    with Session(engine) as session:
        row = session.get(NoticeDelivery, row_id)
        row.status = status
        row.provider_message_id = provider_message_id or row.provider_message_id
        row.error = error
        row.template_id = template_id or row.template_id
        row.text_sha256 = text_sha256 or row.text_sha256
        row.updated_at = utcnow()
        session.add(row)
        session.commit()


def deliveries_for(engine: Engine, withdrawal_id: str) -> list[NoticeDelivery]:
    with Session(engine) as session:
        stmt = select(NoticeDelivery).where(NoticeDelivery.withdrawal_id == withdrawal_id).order_by(NoticeDelivery.id)
        return list(session.exec(stmt))


# --- inbox ----------------------------------------------------------------------------


def add_inbox_message(engine: Engine, message: InboxMessage) -> InboxMessage:
    """Idempotent on ``message.key``: a second add returns the stored message."""
    with Session(engine) as session:
        session.add(message)
        try:
            session.commit()
            session.refresh(message)
            return message
        except IntegrityError:
            session.rollback()
            return session.exec(select(InboxMessage).where(InboxMessage.key == message.key)).one()


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
            select(func.count()).select_from(InboxMessage).where(
                InboxMessage.user_id == user_id, InboxMessage.read_at.is_(None)
            )
        ).one()
        return list(session.exec(stmt)), int(unread)


def mark_read(engine: Engine, user_id: str, message_id: int, at: datetime | None = None) -> bool:
    with Session(engine) as session:
        msg = session.get(InboxMessage, message_id)
        if msg is None or msg.user_id != user_id:
            return False
        if msg.read_at is None:
            msg.read_at = at or utcnow()
            session.add(msg)
            session.commit()
        return True


# --- parked callbacks -----------------------------------------------------------------


def park_callback(engine: Engine, channel: str, event_id: str, withdrawal_id: str, observation_json: str) -> bool:
    """Keep a callback for a withdrawal that is not tracked yet. False if already kept."""
    with Session(engine) as session:
        session.add(
            ParkedCallback(
                channel=channel, event_id=event_id, withdrawal_id=withdrawal_id, observation_json=observation_json
            )
        )
        try:
            session.commit()
            return True
        except IntegrityError:
            session.rollback()
            return False


def parked_for(engine: Engine, withdrawal_id: str) -> list[ParkedCallback]:
    with Session(engine) as session:
        stmt = (
            select(ParkedCallback)
            .where(ParkedCallback.withdrawal_id == withdrawal_id, ParkedCallback.delivered_at.is_(None))
            .order_by(ParkedCallback.id)
        )
        return list(session.exec(stmt))


def mark_parked_delivered(engine: Engine, ids: list[int]) -> None:
    if not ids:
        return
    with Session(engine) as session:
        for row in session.exec(select(ParkedCallback).where(ParkedCallback.id.in_(ids))):
            row.delivered_at = utcnow()
            session.add(row)
        session.commit()
