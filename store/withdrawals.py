"""The withdrawal records (the app database's projection of each workflow: progress,
status, the user's history for the risk rules) and the risk hits recorded for them.

Synchronous (SQLAlchemy); async callers run them with ``asyncio.to_thread``."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from sentinel.analysis import amount_band
from sentinel.contracts import ProgressUpdate
from sentinel.models import RiskHit, WithdrawalRequest
from sentinel.risk import UserHistory
from store.events import add_event
from store.tables import (
    RiskHitRow,
    WithdrawalEvent,
    WithdrawalRecord,
)

# --- withdrawal records (projection), risk hits, audit ----------------------------------


def payee_fingerprint(payee_ref: str) -> str:
    """Identifies "the same card" for the risk rules without keeping any card data."""
    return hashlib.sha256(payee_ref.encode()).hexdigest()


def record_withdrawal(
    engine: Engine, req: WithdrawalRequest, status: str, delay_threshold_s: float | None = None
) -> bool:
    """Insert the projection row once, and the event record's ``started`` row (R27) in the
    same transaction; False if it already exists (a repeated start)."""
    with Session(engine) as session:
        if session.get(WithdrawalRecord, req.withdrawal_id) is not None:
            return False
        add_event(
            session,
            WithdrawalEvent(
                key=f"started/{req.withdrawal_id}",
                withdrawal_id=req.withdrawal_id,
                kind="started",
                at=req.created_at,
                channel=req.channel,
                bank_code=req.bank_code,
                amount_band=amount_band(req.amount),
                currency=req.currency,
                delay_threshold_s=None if delay_threshold_s is None else int(delay_threshold_s),
                status=status,
            ),
        )
        session.add(
            WithdrawalRecord(
                withdrawal_id=req.withdrawal_id,
                user_id=req.user_id,
                amount=req.amount,
                currency=req.currency,
                channel=req.channel,
                bank_code=req.bank_code,
                card_last4=req.card_last4,
                payee_fingerprint=payee_fingerprint(req.payee_ref),
                locale=req.locale,
                status=status,
                created_at=req.created_at,
            )
        )
        try:
            session.commit()
            return True
        except IntegrityError:
            session.rollback()
            return False


def update_progress(engine: Engine, update: ProgressUpdate) -> None:
    with Session(engine) as session:
        row = session.get(WithdrawalRecord, update.withdrawal_id)
        if row is None:
            return
        became_review = update.needs_review and not row.needs_review
        category = update.category.value if update.category else None
        if (row.status, row.category, row.reason_code) != (update.status.value, category, update.reason_code):
            # a transition: the event record (R27), in this transaction (a retried write finds
            # the row already moved and adds nothing)
            add_event(
                session,
                WithdrawalEvent(
                    key=f"status/{update.withdrawal_id}/{update.at.isoformat()}/{update.status.value}/{category}/"
                    f"{update.reason_code}"[:200],
                    withdrawal_id=update.withdrawal_id,
                    kind="status",
                    at=update.at,
                    status=update.status.value,
                    category=category,
                    reason_code=update.reason_code,
                ),
            )
        row.status = update.status.value
        row.category = update.category.value if update.category else None
        row.severity = update.severity.value
        row.reason_code = update.reason_code
        row.needs_review = update.needs_review
        if became_review:
            row.review_since = update.at
        if not update.needs_review:
            row.review_since = None
            row.assignee = None
        row.updated_at = update.at
        session.add(row)
        session.commit()


def user_history(
    engine: Engine, user_id: str, fingerprint: str, windows: dict[str, float], now: datetime, exclude_id: str
) -> UserHistory:
    with Session(engine) as session:
        counts: dict[str, int] = {}
        failures: dict[str, int] = {}
        for rule_id, seconds in windows.items():
            since = now - timedelta(seconds=seconds)
            base = (
                select(func.count())
                .select_from(WithdrawalRecord)
                .where(
                    col(WithdrawalRecord.user_id) == user_id,
                    col(WithdrawalRecord.created_at) >= since,
                    col(WithdrawalRecord.withdrawal_id) != exclude_id,
                )
            )
            counts[rule_id] = int(session.exec(base).one()) + 1  # this one too
            failures[rule_id] = int(session.exec(base.where(col(WithdrawalRecord.status) == "FAILED")).one())
        to_card = session.exec(
            select(func.count())
            .select_from(WithdrawalRecord)
            .where(
                col(WithdrawalRecord.user_id) == user_id,
                col(WithdrawalRecord.payee_fingerprint) == fingerprint,
                col(WithdrawalRecord.withdrawal_id) != exclude_id,
            )
        ).one()
    return UserHistory(
        withdrawals_in_window=counts, failures_in_window=failures, earlier_withdrawals_to_card=int(to_card)
    )


def record_risk_hits(engine: Engine, withdrawal_id: str, hits: list[RiskHit]) -> None:
    if not hits:
        return
    with Session(engine) as session:
        if session.exec(select(RiskHitRow).where(col(RiskHitRow.withdrawal_id) == withdrawal_id)).first():
            return  # a retried activity: already recorded
        for h in hits:
            session.add(
                RiskHitRow(
                    withdrawal_id=withdrawal_id,
                    rule_id=h.rule_id,
                    rule_version=h.rule_version,
                    detail=h.detail,
                )
            )
        session.commit()


def user_withdrawals(
    engine: Engine, user_id: str, limit: int = 20, offset: int = 0
) -> tuple[list[WithdrawalRecord], int]:
    with Session(engine) as session:
        total = session.exec(
            select(func.count()).select_from(WithdrawalRecord).where(col(WithdrawalRecord.user_id) == user_id)
        ).one()
        rows = session.exec(
            select(WithdrawalRecord)
            .where(col(WithdrawalRecord.user_id) == user_id)
            .order_by(col(WithdrawalRecord.created_at).desc(), WithdrawalRecord.withdrawal_id)
            .offset(offset)
            .limit(limit)
        )
        return list(rows), int(total)


def get_record(engine: Engine, withdrawal_id: str) -> WithdrawalRecord | None:
    with Session(engine) as session:
        return session.get(WithdrawalRecord, withdrawal_id)
