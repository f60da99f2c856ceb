"""Outage incidents and the users told of them (issue #14 item 3; tables ``outage_incident``
and ``outage_notice``, migration 0008), and the event-record rows the outage watch reads.
The decisions are in sentinel/outage.py; this module only reads and writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sentinel.analysis import EventRow, as_utc
from store.db import insert_once
from store.tables import OutageIncident, OutageNotice, WithdrawalEvent, WithdrawalRecord

#: statuses after which a withdrawal is no longer affected by an outage
FINAL_STATUSES = ("SUCCEEDED", "FAILED", "RETURNED")


def outage_rows(engine: Engine, since: datetime, until: datetime, limit: int) -> list[EventRow]:
    """The ``started`` and ``status`` rows of the withdrawals started in [since, until], at
    most ``limit`` rows (the newest withdrawals' rows are kept when there are more)."""
    started = (
        sa_select(col(WithdrawalEvent.withdrawal_id))
        .where(
            col(WithdrawalEvent.kind) == "started",
            col(WithdrawalEvent.at) >= since,
            col(WithdrawalEvent.at) <= until,
        )
        .order_by(col(WithdrawalEvent.at).desc())
        .limit(limit)
    )
    with Session(engine) as session:
        rows = session.exec(
            select(WithdrawalEvent)
            .where(
                col(WithdrawalEvent.withdrawal_id).in_(started.scalar_subquery()),
                col(WithdrawalEvent.kind).in_(("started", "status")),
            )
            .order_by(col(WithdrawalEvent.id).desc())
            .limit(limit)
        )
        return [EventRow(**{**r.model_dump(exclude={"id"}), "at": as_utc(r.at)}) for r in rows]


def record_incident(engine: Engine, incident: OutageIncident) -> bool:
    """Insert a fired incident; False when it is recorded already (a retried activity)."""
    return insert_once(engine, incident)


def resolve_incident(engine: Engine, incident_id: str, at: datetime) -> bool:
    """Mark it resolved (once: a later call keeps the first time)."""
    with Session(engine) as session:
        done = session.exec(
            update(OutageIncident)
            .where(col(OutageIncident.id) == incident_id, col(OutageIncident.resolved_at).is_(None))
            .values(resolved_at=at)
        )
        session.commit()
        return bool(done.rowcount)


def get_incident(engine: Engine, incident_id: str) -> OutageIncident | None:
    with Session(engine) as session:
        return session.get(OutageIncident, incident_id)


def open_incidents(engine: Engine, limit: int = 200) -> list[OutageIncident]:
    with Session(engine) as session:
        stmt = (
            select(OutageIncident)
            .where(col(OutageIncident.resolved_at).is_(None))
            .order_by(col(OutageIncident.fired_at).desc())
            .limit(limit)
        )
        return list(session.exec(stmt))


#: what ``incident_page`` lists
INCIDENT_STATES = ("open", "resolved", "all")


def incident_page(
    engine: Engine, state: str = "all", limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Incidents (``state`` open, resolved or all) and how many there are: open ones first,
    newest fired first, then resolved ones, most recently resolved first. Each with the
    withdrawals it touches: ``open_withdrawals``, the open withdrawals of its bank and channel
    now (open incidents only, else None), and ``users_told`` / ``withdrawals_told``, the
    heads-ups sent for it (one per user, naming that user's affected withdrawals)."""
    if state not in INCIDENT_STATES:
        raise ValueError(f"state must be one of {', '.join(INCIDENT_STATES)}")
    resolved = col(OutageIncident.resolved_at)
    where = {"open": [resolved.is_(None)], "resolved": [resolved.is_not(None)], "all": []}[state]
    with Session(engine) as session:
        total = session.exec(select(func.count()).select_from(OutageIncident).where(*where)).one()
        rows = list(
            session.exec(
                select(OutageIncident)
                .where(*where)
                .order_by(resolved.is_not(None), resolved.desc(), col(OutageIncident.fired_at).desc())
                .offset(offset)
                .limit(limit)
            )
        )
        firing = [r for r in rows if r.resolved_at is None]
        open_now: dict[tuple[str, str], int] = {}
        if firing:
            for bank, channel, n in session.exec(
                select(col(WithdrawalRecord.bank_code), col(WithdrawalRecord.channel), func.count())
                .where(
                    col(WithdrawalRecord.bank_code).in_({r.bank_code for r in firing}),
                    col(WithdrawalRecord.channel).in_({r.channel for r in firing}),
                    col(WithdrawalRecord.status).not_in(FINAL_STATUSES),
                )
                .group_by(col(WithdrawalRecord.bank_code), col(WithdrawalRecord.channel))
            ).all():
                open_now[bank, channel] = int(n)
        ids = col(OutageNotice.withdrawal_ids)
        told = {
            incident: (int(users), int(withdrawals or 0))
            for incident, users, withdrawals in session.exec(
                select(
                    col(OutageNotice.incident_id),
                    func.count(),
                    # the ids are comma-separated: one more than the commas
                    func.sum(func.length(ids) - func.length(func.replace(ids, ",", "")) + 1),
                )
                .where(
                    col(OutageNotice.incident_id).in_([r.id for r in rows]),
                    col(OutageNotice.kind) == "heads_up",
                )
                .group_by(col(OutageNotice.incident_id))
            ).all()
        }
    return [
        {
            **r.model_dump(),
            "open_withdrawals": open_now.get((r.bank_code, r.channel), 0) if r.resolved_at is None else None,
            "users_told": told.get(r.id, (0, 0))[0],
            "withdrawals_told": told.get(r.id, (0, 0))[1],
        }
        for r in rows
    ], int(total)


def incident_for(engine: Engine, bank_code: str, channel: str) -> OutageIncident | None:
    """The firing incident of this bank and channel (the progress page's banner), if any."""
    with Session(engine) as session:
        stmt = (
            select(OutageIncident)
            .where(
                col(OutageIncident.bank_code) == bank_code,
                col(OutageIncident.channel) == channel,
                col(OutageIncident.resolved_at).is_(None),
            )
            .order_by(col(OutageIncident.fired_at).desc())
        )
        return session.exec(stmt).first()


def incident_for_withdrawal(engine: Engine, withdrawal_id: str) -> OutageIncident | None:
    """The firing incident of the bank and channel of this withdrawal while it is open (the
    banner of its progress page), if any."""
    with Session(engine) as session:
        record = session.get(WithdrawalRecord, withdrawal_id)
        if record is None or record.status in FINAL_STATUSES:
            return None
    return incident_for(engine, record.bank_code, record.channel)


def untold_affected(
    engine: Engine, incident_id: str, bank_code: str, channel: str, limit: int
) -> dict[str, list[WithdrawalRecord]]:
    """Users with an open withdrawal on this bank and channel who have no heads-up for this
    incident yet (at most ``limit`` users), with those withdrawals, newest first."""
    told = sa_select(col(OutageNotice.user_id)).where(
        col(OutageNotice.incident_id) == incident_id, col(OutageNotice.kind) == "heads_up"
    )
    with Session(engine) as session:
        rows = session.exec(
            select(WithdrawalRecord)
            .where(
                col(WithdrawalRecord.bank_code) == bank_code,
                col(WithdrawalRecord.channel) == channel,
                col(WithdrawalRecord.status).not_in(FINAL_STATUSES),
                col(WithdrawalRecord.user_id).not_in(told),
            )
            .order_by(col(WithdrawalRecord.created_at).desc())
            .limit(limit * 20)
        )
        out: dict[str, list[WithdrawalRecord]] = {}
        for r in rows:
            if r.user_id in out or len(out) < limit:
                out.setdefault(r.user_id, []).append(r)
        return out


def claim_notice(
    engine: Engine, incident_id: str, user_id: str, kind: str, withdrawal_ids: list[str]
) -> bool:
    """Record that this user is told (``heads_up``) or told it is over (``resolved``) for the
    incident; False when it is recorded already: never two per user and incident."""
    return insert_once(
        engine,
        OutageNotice(
            incident_id=incident_id,
            user_id=user_id,
            kind=kind,
            withdrawal_ids=",".join(withdrawal_ids)[:4000],
        ),
    )


def undelivered(engine: Engine, incident_id: str, kind: str, limit: int) -> list[OutageNotice]:
    """Notices claimed but not yet delivered on every channel (a retried activity finishes them)."""
    with Session(engine) as session:
        stmt = (
            select(OutageNotice)
            .where(
                col(OutageNotice.incident_id) == incident_id,
                col(OutageNotice.kind) == kind,
                col(OutageNotice.delivered_at).is_(None),
            )
            .order_by(col(OutageNotice.id))
            .limit(limit)
        )
        return list(session.exec(stmt))


def mark_delivered(engine: Engine, notice_id: int) -> None:
    with Session(engine) as session:
        session.exec(
            update(OutageNotice)
            .where(col(OutageNotice.id) == notice_id, col(OutageNotice.delivered_at).is_(None))
            .values(delivered_at=datetime.now(UTC))
        )
        session.commit()


def told_users(engine: Engine, incident_id: str, kind: str = "heads_up") -> list[OutageNotice]:
    with Session(engine) as session:
        stmt = (
            select(OutageNotice)
            .where(col(OutageNotice.incident_id) == incident_id, col(OutageNotice.kind) == kind)
            .order_by(col(OutageNotice.id))
        )
        return list(session.exec(stmt))


def records(engine: Engine, withdrawal_ids: list[str]) -> dict[str, WithdrawalRecord]:
    with Session(engine) as session:
        rows = session.exec(
            select(WithdrawalRecord).where(col(WithdrawalRecord.withdrawal_id).in_(withdrawal_ids))
        )
        return {r.withdrawal_id: r for r in rows}
