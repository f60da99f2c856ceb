"""The periodic review reports on the operations console (issue #14 item 5, R30): the list,
newest period first, a page at a time, with each report's headline figures; one report's HTML
shown inside the console; its charts as images of the console's own origin.

The reports are the ones the review workflow stores (store/reports.py) and the API lists
(gateway/routes_learning.py, ``/v1/ops/reports``). The report's HTML is the emailed one: the
page keeps what is inside its ``<body>`` (its inline ``<style>`` would break the pages' CSP)
and points its ``cid:`` charts at ``/pages/ops/reports/{id}/charts/{name}.png``, which needs
the operator's session like the page. Roles: operator and supervisor, as on the rest of the
console (gateway/routes_console.py, whose front page shows the newest reports from here).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from gateway.auth import OPERATOR, SUPERVISOR
from gateway.deps import MAX_ROW_ID, db
from gateway.page_auth import PageProblem, need
from gateway.web import PREFIX, Words, aware, pick_locale, render
from sentinel.review_report import KINDS, link_charts, period_label, report_body
from store.reports import get_chart, get_report, list_reports

router = APIRouter(include_in_schema=False)

OPS = (OPERATOR, SUPERVISOR)
REPORTS = PREFIX + "/ops/reports"
#: reports a page of the list shows, and the last page one may ask for
PAGE_SIZE = 20
MAX_PAGE = 1000
#: the newest reports the console's front page shows
LATEST = 5
_NUMBER = re.compile(r"[0-9]{1,10}")
_CHART = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def _percent(value: Any) -> str:
    return f"{float(value):.1%}" if isinstance(value, int | float) else "-"


def report_row(item: dict[str, Any], t: Words) -> dict[str, Any]:
    """A report of ``list_reports`` as the console's tables show it: the period's days and
    the headline figures the report has (``-`` for one it has not)."""
    h = item["summary"]
    false_alarms = h.get("false_alarms")
    if false_alarms is not None and h.get("false_alarm_rate") is not None:
        false_alarms = f"{false_alarms} ({_percent(h['false_alarm_rate'])})"
    p95 = h.get("notify_p95_s")
    return {
        "id": item["id"],
        "kind": item["kind"],
        "period": period_label(item["kind"], item["since"], item["until"], " – "),
        "created_at": aware(item["created_at"]),
        "emailed_at": aware(item["emailed_at"]) if item["emailed_at"] else None,
        "url": f"{REPORTS}/{item['id']}",
        "figures": {
            "withdrawals": h.get("withdrawals", "-"),
            "exception_rate": _percent(h.get("exception_rate")),
            "false_alarms": "-" if false_alarms is None else false_alarms,
            "missed_delays": h.get("missed_delays", "-"),
            "notify_p95": "-" if p95 is None else t("ops_seconds", n=f"{float(p95):.0f}"),
        },
    }


async def latest_reports(request: Request, t: Words) -> tuple[list[dict[str, Any]], int]:
    """The newest reports for the console's front page, and how many there are."""
    items, total = await db(list_reports, request.app.state.engine, limit=LATEST)
    return [report_row(i, t) for i in items], total


def _page_url(kind: str, page: int) -> str:
    query = {k: v for k, v in (("kind", kind), ("page", str(page))) if v and v != "0"}
    return REPORTS + ("?" + urlencode(query) if query else "")


@router.get(REPORTS)
async def reports(request: Request) -> Response:
    """The reports, newest period first, ``PAGE_SIZE`` a page (``?page=N`` from 0, at most
    ``MAX_PAGE``; past the end, the last page), of one kind with ``?kind=daily|weekly``."""
    session = need(request, *OPS)
    state = request.app.state
    locale = pick_locale(request)
    kind = request.query_params.get("kind", "")
    kind = kind if kind in KINDS else ""
    number = request.query_params.get("page", "0")
    page = min(int(number), MAX_PAGE) if _NUMBER.fullmatch(number) else 0
    items, total = await db(
        list_reports, state.engine, kind=kind or None, limit=PAGE_SIZE, offset=page * PAGE_SIZE
    )
    if not items and total:  # past the end: the last page
        page = (total - 1) // PAGE_SIZE
        items, total = await db(
            list_reports, state.engine, kind=kind or None, limit=PAGE_SIZE, offset=page * PAGE_SIZE
        )
    t = Words(locale)
    return render(
        request,
        "ops_reports.html",
        locale,
        session=session,
        csrf=state.sessions.csrf_for(session),
        reports=[report_row(i, t) for i in items],
        total=total,
        kind=kind,
        kinds=KINDS,
        kind_urls={k: _page_url(k, 0) for k in ("", *KINDS)},
        newer=_page_url(kind, page - 1) if page > 0 else None,
        older=_page_url(kind, page + 1) if (page + 1) * PAGE_SIZE < total and page < MAX_PAGE else None,
    )


def _report_id(text: str) -> int:
    if not _NUMBER.fullmatch(text) or not 1 <= int(text) <= MAX_ROW_ID:
        raise PageProblem("notfound", 404)
    return int(text)


@router.get(REPORTS + "/{report_id}")
async def report(request: Request, report_id: str) -> Response:
    """One report inside the console: its period and figures, then the emailed HTML's body
    with the charts served by the console."""
    session = need(request, *OPS)
    state = request.app.state
    number = _report_id(report_id)
    row = await db(get_report, state.engine, number)
    if row is None:
        raise PageProblem("notfound", 404)
    body = link_charts(report_body(row.html), lambda name: f"{REPORTS}/{number}/charts/{name}.png")
    locale = pick_locale(request)
    return render(
        request,
        "ops_report.html",
        locale,
        session=session,
        csrf=state.sessions.csrf_for(session),
        report={
            "id": number,
            "kind": row.kind,
            "period": period_label(row.kind, row.since, row.until, " – "),
            "created_at": aware(row.created_at),
            "emailed_at": aware(row.emailed_at) if row.emailed_at else None,
        },
        # the review workflow's HTML (sentinel/review_report.py escapes every value in it);
        # the pages' CSP would refuse any script or style in it all the same
        body=Markup(body),
    )


@router.get(REPORTS + "/{report_id}/charts/{name}.png")
async def chart(request: Request, report_id: str, name: str) -> Response:
    """A chart of a report (PNG), for the operator's session."""
    need(request, *OPS)
    number = _report_id(report_id)
    if not _CHART.fullmatch(name):
        raise PageProblem("notfound", 404)
    found = await db(get_chart, request.app.state.engine, number, name)
    if found is None:
        raise PageProblem("notfound", 404)
    return Response(found.png, media_type="image/png", headers={"Cache-Control": "private, no-store"})
