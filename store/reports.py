"""Periodic review reports and their charts (issue #14 item 5, R30): stored once per
period (``kind/since``), listed for the API, marked when emailed."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from sentinel.review_report import Chart
from store.db import saved_id
from store.tables import ReviewChart, ReviewReport, utcnow


def report_key(kind: str, since: datetime) -> str:
    return f"{kind}/{since.isoformat()}"


def save_report(
    engine: Engine, kind: str, since: datetime, until: datetime, summary: dict, html: str, charts: list[Chart]
) -> int:
    """Store a report and its charts; a report of the same period already stored is kept and
    its id returned (a retried activity stores nothing twice)."""
    key = report_key(kind, since)
    with Session(engine) as session:
        found = session.exec(select(ReviewReport.id).where(ReviewReport.key == key)).first()
        if found is not None:
            return found
        row = ReviewReport(
            key=key,
            kind=kind,
            since=since,
            until=until,
            summary_json=json.dumps(summary, default=str),
            html=html,
        )
        session.add(row)
        try:
            session.flush()
            for c in charts:
                session.add(
                    ReviewChart(report_id=saved_id(row.id), name=c.name, title=c.title[:200], png=c.png)
                )
            session.commit()
        except IntegrityError:
            session.rollback()
            return saved_id(session.exec(select(ReviewReport.id).where(col(ReviewReport.key) == key)).one())
        return saved_id(row.id)


def get_report(engine: Engine, report_id: int) -> ReviewReport | None:
    with Session(engine) as session:
        return session.get(ReviewReport, report_id)


def charts_of(engine: Engine, report_id: int) -> list[ReviewChart]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(ReviewChart)
                .where(col(ReviewChart.report_id) == report_id)
                .order_by(col(ReviewChart.id))
            )
        )


def get_chart(engine: Engine, report_id: int, name: str) -> ReviewChart | None:
    with Session(engine) as session:
        return session.exec(
            select(ReviewChart).where(col(ReviewChart.report_id) == report_id, col(ReviewChart.name) == name)
        ).first()


def list_reports(
    engine: Engine, *, kind: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Reports, newest period first, without their HTML (the summary and the chart names)."""
    where = [col(ReviewReport.kind) == kind] if kind else []
    with Session(engine) as session:
        total = session.exec(select(func.count()).select_from(ReviewReport).where(*where)).one()
        rows = list(
            session.exec(
                select(ReviewReport)
                .where(*where)
                .order_by(col(ReviewReport.since).desc(), col(ReviewReport.id).desc())
                .offset(offset)
                .limit(limit)
            )
        )
        names: dict[int, list[str]] = {}
        for c in session.exec(
            select(ReviewChart.report_id, ReviewChart.name).where(
                col(ReviewChart.report_id).in_([saved_id(r.id) for r in rows])
            )
        ):
            names.setdefault(c[0], []).append(c[1])
        return [
            {
                "id": r.id,
                "kind": r.kind,
                "since": r.since,
                "until": r.until,
                "created_at": r.created_at,
                "emailed_at": r.emailed_at,
                "emailed_to": r.emailed_to,
                "summary": json.loads(r.summary_json).get("headline", {}),
                "charts": sorted(names.get(saved_id(r.id), [])),
            }
            for r in rows
        ], int(total)


def mark_emailed(engine: Engine, report_id: int, to: str) -> None:
    with Session(engine) as session:
        row = session.get(ReviewReport, report_id)
        if row is not None and row.emailed_at is None:
            row.emailed_at, row.emailed_to = utcnow(), to[:500]
            session.add(row)
            session.commit()
