"""The exception event record (R27): append-only. Rows are added, in the transaction of
the write they describe (``add_event``) or on their own (``append_event``); the same fact
(same ``key``) is written once. Nothing here changes or deletes a row, and the session
refuses it (``AppendOnly``) if any code tries. The analysis reads them through
``events_between`` (sentinel/analysis.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import event, or_
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sentinel.analysis import EventRow, analyse, as_utc
from store.db import insert_once
from store.tables import WithdrawalEvent


class AppendOnly(Exception):
    """A change or a deletion of an event row: the record is append-only."""


@event.listens_for(WithdrawalEvent, "before_update")
def _no_update(_mapper, _conn, target) -> None:
    raise AppendOnly(f"withdrawal_event {target.key!r}: the event record is append-only (no update)")


@event.listens_for(WithdrawalEvent, "before_delete")
def _no_delete(_mapper, _conn, target) -> None:
    raise AppendOnly(f"withdrawal_event {target.key!r}: the event record is append-only (no delete)")


def add_event(session: Session, row: WithdrawalEvent) -> None:
    """Add ``row`` to the caller's transaction unless its key is recorded already."""
    if session.exec(select(WithdrawalEvent.id).where(col(WithdrawalEvent.key) == row.key)).first() is None:
        session.add(row)


def append_event(engine: Engine, row: WithdrawalEvent) -> bool:
    """Insert ``row`` on its own; False when its key is recorded already."""
    return insert_once(engine, row)


def events_for(engine: Engine, withdrawal_id: str) -> list[WithdrawalEvent]:
    with Session(engine) as session:
        stmt = (
            select(WithdrawalEvent)
            .where(col(WithdrawalEvent.withdrawal_id) == withdrawal_id)
            .order_by(col(WithdrawalEvent.id))
        )
        return list(session.exec(stmt))


def events_between(engine: Engine, since: datetime, until: datetime) -> list[EventRow]:
    """The rows the analysis of [since, until) needs: every row of the withdrawals started
    in the period (whenever the row was written), and the unmapped codes seen in it."""
    started = sa_select(col(WithdrawalEvent.withdrawal_id)).where(
        col(WithdrawalEvent.kind) == "started",
        col(WithdrawalEvent.at) >= since,
        col(WithdrawalEvent.at) < until,
    )
    unmapped = (
        (col(WithdrawalEvent.kind) == "unmapped")
        & (col(WithdrawalEvent.at) >= since)
        & (col(WithdrawalEvent.at) < until)
    )
    with Session(engine) as session:
        rows = session.exec(
            select(WithdrawalEvent)
            .where(or_(col(WithdrawalEvent.withdrawal_id).in_(started), unmapped))
            .order_by(col(WithdrawalEvent.id))
        )
        return [EventRow(**{**r.model_dump(exclude={"id"}), "at": as_utc(r.at)}) for r in rows]


def report_between(
    engine: Engine, since: datetime, until: datetime, margin: timedelta = timedelta(minutes=30)
) -> dict:
    """The analysis (sentinel/analysis.py) of the withdrawals started in [since, until);
    times without a zone are UTC. ValueError when the period is empty."""
    since, until = as_utc(since), as_utc(until)
    if until <= since:
        raise ValueError("until must be later than since")
    report = analyse(events_between(engine, since, until), false_alarm_margin=margin)
    return {"since": since.isoformat(), "until": until.isoformat(), **report}
