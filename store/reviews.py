"""The review desk: its queue (filters, pages, assignment), the risk hits a reviewer sees,
and the audit log of every decision.

Synchronous (SQLAlchemy); async callers run them with ``asyncio.to_thread``."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from store.tables import (
    AuditLog,
    RiskHitRow,
    WithdrawalRecord,
    utcnow,
)


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
    stmt = stmt.where(col(WithdrawalRecord.needs_review).is_(True))
    if category:
        stmt = stmt.where(col(WithdrawalRecord.category) == category)
    if status:
        stmt = stmt.where(col(WithdrawalRecord.status) == status)
    if older_than_s is not None:
        stmt = stmt.where(
            col(WithdrawalRecord.review_since) <= (now or utcnow()) - timedelta(seconds=older_than_s)
        )
    if min_amount is not None:
        stmt = stmt.where(col(WithdrawalRecord.amount) >= min_amount)
    if assignee:
        stmt = stmt.where(col(WithdrawalRecord.assignee) == assignee)
    if unassigned:
        stmt = stmt.where(col(WithdrawalRecord.assignee).is_(None))
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
        return list(session.exec(select(RiskHitRow).where(col(RiskHitRow.withdrawal_id) == withdrawal_id)))


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
                select(AuditLog)
                .where(col(AuditLog.withdrawal_id) == withdrawal_id)
                .order_by(col(AuditLog.id))
            )
        )
