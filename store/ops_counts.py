"""Counts of open withdrawals for the operations console (issue #13): how many are in each
status, exception category, bank and channel, from the projection (``WithdrawalRecord``)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from store.tables import WithdrawalRecord

FINAL = ("SUCCEEDED", "FAILED", "RETURNED")
DIMENSIONS = ("status", "category", "bank_code", "channel")


def open_counts(engine: Engine) -> dict[str, list[tuple[str | None, int]]]:
    """dimension -> [(value, count)], largest first, over withdrawals not in a final status."""
    out: dict[str, list[tuple[str | None, int]]] = {}
    with Session(engine) as session:
        for name in DIMENSIONS:
            column = getattr(WithdrawalRecord, name)
            rows = session.exec(
                select(column, func.count())
                .where(col(WithdrawalRecord.status).not_in(FINAL))
                .group_by(column)
                .order_by(func.count().desc(), column)
            )
            out[name] = [(value, int(count)) for value, count in rows]
    return out
