"""The spot-check queue (issue #14 item 6, R23): each day's stratified sample of automated
decisions (sentinel/spot_checks.py draws it from the event record), the reviewers'
verdicts, the accuracy per category and the suggested catalogue changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, func
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from sentinel.analysis import EventRow, as_utc
from sentinel.catalogue import Catalogue
from sentinel.spot_checks import accuracy, decisions_from, sample, seed_for, suggestion
from store.tables import SpotCheck, WithdrawalEvent, utcnow


class AlreadyReviewed(Exception):
    """The spot check has a verdict already (the first one stands)."""


def day_bounds(day: date) -> tuple[datetime, datetime]:
    since = datetime.combine(day, time(0), UTC)
    return since, since + timedelta(days=1)


def _decision_rows(engine: Engine, since: datetime, until: datetime) -> list[EventRow]:
    """Status rows with a category written in [since, until), and the ``started`` rows of
    their withdrawals."""
    with Session(engine) as session:
        decided = sa_select(col(WithdrawalEvent.withdrawal_id)).where(
            col(WithdrawalEvent.kind) == "status",
            col(WithdrawalEvent.category).is_not(None),
            col(WithdrawalEvent.at) >= since,
            col(WithdrawalEvent.at) < until,
        )
        rows = session.exec(
            select(WithdrawalEvent).where(
                ((col(WithdrawalEvent.kind) == "started") & col(WithdrawalEvent.withdrawal_id).in_(decided))
                | (
                    (col(WithdrawalEvent.kind) == "status")
                    & col(WithdrawalEvent.category).is_not(None)
                    & (col(WithdrawalEvent.at) >= since)
                    & (col(WithdrawalEvent.at) < until)
                )
            )
        )
        return [EventRow(**{**r.model_dump(exclude={"id"}), "at": as_utc(r.at)}) for r in rows]


def draw_day(engine: Engine, day: date, *, size: int, min_per_stratum: int, seed: int = 0) -> int:
    """Put the day's stratified sample in the queue; returns how many were added (a decision
    already in the queue is not added again, so a repeated draw adds nothing)."""
    since, until = day_bounds(day)
    picked = sample(
        decisions_from(_decision_rows(engine, since, until)),
        size=size,
        min_per_stratum=min_per_stratum,
        seed=seed_for(day, seed),
    )
    added = 0
    for d in picked:
        with Session(engine) as session:
            if session.exec(select(SpotCheck.id).where(SpotCheck.event_key == d.key)).first() is not None:
                continue
            session.add(
                SpotCheck(
                    event_key=d.key,
                    day=day.isoformat(),
                    withdrawal_id=d.withdrawal_id,
                    decided_at=d.at,
                    channel=d.channel[:32],
                    bank_code=d.bank_code[:16],
                    category=d.category,
                    route=d.route,
                    reason_code=d.reason_code,
                )
            )
            try:
                session.commit()
                added += 1
            except IntegrityError:  # drawn by a concurrent run
                session.rollback()
    return added


def as_dict(row: SpotCheck) -> dict:
    return row.model_dump()


def queue(
    engine: Engine, *, state: str = "open", limit: int = 50, offset: int = 0, day: str | None = None
) -> tuple[list[dict], int]:
    """Spot checks, oldest decision first: ``open`` (no verdict yet), ``reviewed`` or ``all``."""
    where: list[ColumnElement[bool]] = []
    if state == "open":
        where.append(col(SpotCheck.verdict).is_(None))
    elif state == "reviewed":
        where.append(col(SpotCheck.verdict).is_not(None))
    if day:
        where.append(col(SpotCheck.day) == day)
    with Session(engine) as session:
        total = session.exec(select(func.count()).select_from(SpotCheck).where(*where)).one()
        rows = session.exec(
            select(SpotCheck)
            .where(*where)
            .order_by(col(SpotCheck.decided_at), col(SpotCheck.id))
            .offset(offset)
            .limit(limit)
        )
        return [as_dict(r) for r in rows], int(total)


def get(engine: Engine, check_id: int) -> dict | None:
    with Session(engine) as session:
        row = session.get(SpotCheck, check_id)
        return as_dict(row) if row else None


def mark(
    engine: Engine,
    check_id: int,
    *,
    verdict: str,
    reviewer: str,
    right_category: str | None = None,
    note: str | None = None,
    at: datetime | None = None,
) -> dict | None:
    """Record a reviewer's verdict; None when there is no such check, AlreadyReviewed when it
    has one. A ``correct`` verdict keeps the decided category as the right one."""
    with Session(engine) as session:
        row = session.get(SpotCheck, check_id)
        if row is None:
            return None
        if row.verdict is not None:
            raise AlreadyReviewed(check_id)
        row.verdict = verdict
        row.right_category = row.category if verdict == "correct" else right_category
        row.note = note
        row.reviewer = reviewer
        row.reviewed_at = at or utcnow()
        session.add(row)
        session.commit()
        session.refresh(row)
        return as_dict(row)


def reviewed_between(engine: Engine, since: datetime, until: datetime) -> list[dict]:
    """Spot checks whose verdict was given in [since, until)."""
    with Session(engine) as session:
        rows = session.exec(
            select(SpotCheck)
            .where(
                col(SpotCheck.verdict).is_not(None),
                col(SpotCheck.reviewed_at) >= since,
                col(SpotCheck.reviewed_at) < until,
            )
            .order_by(col(SpotCheck.id))
        )
        return [as_dict(r) for r in rows]


def accuracy_between(engine: Engine, since: datetime, until: datetime) -> dict[str, dict]:
    return accuracy(reviewed_between(engine, since, until))


def suggestions_between(
    engine: Engine, catalogue: Catalogue, since: datetime | None = None, until: datetime | None = None
) -> list[dict]:
    """The suggested catalogue changes of the wrong verdicts given in [since, until) (all
    when no period is given)."""
    since = since or datetime(1970, 1, 1, tzinfo=UTC)
    until = until or datetime(9999, 1, 1, tzinfo=UTC)
    return [
        suggestion(c, catalogue) for c in reviewed_between(engine, since, until) if c["verdict"] == "wrong"
    ]
