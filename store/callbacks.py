"""Channel callbacks parked until their withdrawal's workflow takes them, and the codes no
catalogue maps (counted per channel and code, for the catalogue's curators).

Synchronous (SQLAlchemy); async callers run them with ``asyncio.to_thread``."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import func, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from sentinel.models import Observation
from store.db import insert_once
from store.events import add_event
from store.tables import (
    ParkedCallback,
    UnmappedCode,
    WithdrawalEvent,
    utcnow,
)

log = logging.getLogger(__name__)


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
            .where(
                col(ParkedCallback.withdrawal_id) == withdrawal_id, col(ParkedCallback.delivered_at).is_(None)
            )
            .order_by(col(ParkedCallback.id))
        )
        return list(session.exec(stmt))


def mark_parked_delivered(engine: Engine, ids: list[int], outcome: str = "applied") -> None:
    """Mark parked callbacks handled: ``applied`` (given to the workflow), ``late`` (tracking
    had ended: recorded, not applied) or ``redelivered`` (an operator re-sent it)."""
    if not ids:
        return
    with Session(engine) as session:
        for row in session.exec(select(ParkedCallback).where(col(ParkedCallback.id).in_(ids))):
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
        "undelivered": col(ParkedCallback.delivered_at).is_(None),
        "late": col(ParkedCallback.outcome) == "late",
        "attention": or_(col(ParkedCallback.delivered_at).is_(None), col(ParkedCallback.outcome) == "late"),
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
        rows = session.exec(stmt.order_by(col(ParkedCallback.id)).offset(offset).limit(limit))
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
        col(UnmappedCode.channel) == key[0],
        col(UnmappedCode.raw_status) == key[1],
        col(UnmappedCode.raw_code) == key[2],
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
            result = session.exec(
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
            .order_by(col(UnmappedCode.last_seen).desc(), col(UnmappedCode.id))
            .offset(offset)
            .limit(limit)
        )
        return list(rows), total
