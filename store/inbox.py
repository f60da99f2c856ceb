"""The in-app inbox: one message per notice key, read receipts.

Synchronous (SQLAlchemy); async callers run them with ``asyncio.to_thread``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from store.events import add_event
from store.tables import (
    InboxMessage,
    WithdrawalEvent,
    utcnow,
)

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
            return session.exec(select(InboxMessage).where(col(InboxMessage.key) == message.key)).one()


def find_inbox_message(engine: Engine, key: str) -> InboxMessage | None:
    """The inbox message stored under the notice ``key`` (committed), None if there is none."""
    with Session(engine) as session:
        return session.exec(select(InboxMessage).where(col(InboxMessage.key) == key)).first()


def inbox(engine: Engine, user_id: str, limit: int = 50, offset: int = 0) -> tuple[list[InboxMessage], int]:
    """Messages newest first, and the unread count (the red dot, R21)."""
    with Session(engine) as session:
        stmt = (
            select(InboxMessage)
            .where(col(InboxMessage.user_id) == user_id)
            .order_by(col(InboxMessage.id).desc())
            .offset(offset)
            .limit(limit)
        )
        unread = session.exec(
            select(func.count())
            .select_from(InboxMessage)
            .where(col(InboxMessage.user_id) == user_id, col(InboxMessage.read_at).is_(None))
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
