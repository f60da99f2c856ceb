"""Push device tokens: registered by the app, read by the push notifiers, forgotten when
the provider reports one dead or the user logs out.

Synchronous (SQLAlchemy); async callers run them with ``asyncio.to_thread``."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from store.tables import (
    DeviceToken,
    utcnow,
)

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
                select(DeviceToken).where(
                    col(DeviceToken.provider) == provider, col(DeviceToken.token) == token
                )
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
                col(DeviceToken.user_id) == user_id,
                col(DeviceToken.provider) == provider,
                col(DeviceToken.invalid_at).is_(None),
            )
            .order_by(col(DeviceToken.registered_at).desc(), col(DeviceToken.id).desc())
        )
        return list(rows)


def devices_of(engine: Engine, user_id: str) -> list[DeviceToken]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(DeviceToken).where(col(DeviceToken.user_id) == user_id).order_by(col(DeviceToken.id))
            )
        )


def forget_device(engine: Engine, provider: str, token: str, reason: str, user_id: str | None = None) -> bool:
    """Mark a token invalid (dead at the provider, or the user logged out). True if found."""
    with Session(engine) as session:
        stmt = select(DeviceToken).where(
            col(DeviceToken.provider) == provider, col(DeviceToken.token) == token
        )
        if user_id is not None:
            stmt = stmt.where(col(DeviceToken.user_id) == user_id)
        row = session.exec(stmt).first()
        if row is None:
            return False
        row.invalid_at, row.invalid_reason = utcnow(), reason[:200]
        session.add(row)
        session.commit()
        return True
