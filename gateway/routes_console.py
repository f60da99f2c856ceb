"""The operations console (issue #13, R26, R34): open withdrawals counted by status,
exception category, bank and channel from the projection, each count linking to the
Temporal UI's list of those workflows (a search-attribute query, workflows/search_attributes.py);
the delivery health of each notice provider (sent / failed / given up / unknown over the
last hour from the delivery log, and the circuit breaker's state from the worker's snapshots,
store/ops_health.py); channel codes the catalogue does not map; parked callbacks waiting for
their withdrawal, each with a re-delivery button (CSRF, audited with the operator's name).
And from the learning loop (issue #14): the outage incidents, open ones first then the
recently resolved, each linking to the Temporal UI's list of its bank and channel; the newest
periodic review reports (their pages: gateway/routes_console_reports.py).

Who: sessions of roles operator and supervisor. Operators sign in at ``/pages/ops/signin``
with an account of the accounts file (gateway/reviewers.py, role ``operator``) or at
``/pages/signin`` with a staff API key. A user's session or a reviewer's gets 403.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from temporalio.service import RPCError

from gateway.auth import OPERATOR, SUPERVISOR
from gateway.callbacks import RedeliverRefused, redeliver_parked
from gateway.deps import MAX_ROW_ID, db
from gateway.page_auth import PageProblem, check_csrf, form, need
from gateway.routes_console_reports import REPORTS, latest_reports
from gateway.routes_review_console import account_signin, account_signin_form
from gateway.web import PREFIX, Words, aware, pick_locale, render
from sentinel.outage import shown_rates
from store.callbacks import parked_callbacks, unmapped_codes
from store.incidents import incident_page
from store.ops_counts import open_counts
from store.ops_health import delivery_health

router = APIRouter(include_in_schema=False)

BASE = PREFIX + "/ops"
OPS = (OPERATOR, SUPERVISOR)
#: the window of the delivery health table
HEALTH_WINDOW = timedelta(hours=1)
#: incidents the page lists: open ones (the API lists more), then the most recently resolved
OPEN_INCIDENTS = 50
RESOLVED_INCIDENTS = 10
#: re-delivery outcomes the page reports (query ``done``)
DONE = ("redelivered", "not_tracked", "tracking_ended", "not_found", "unavailable")

#: projection column -> the workflow's search attribute (workflows/search_attributes.py)
ATTRIBUTES = {
    "status": "WithdrawalStatus",
    "category": "ExceptionCategory",
    "bank_code": "BankCode",
    "channel": "Channel",
}


def temporal_list_url(
    ui: str, namespace: str, attribute: str, value: str, also: dict[str, str] | None = None
) -> str:
    """The Temporal UI's workflow list for ``attribute = value`` (and each of ``also``), open
    workflows only."""
    terms = [(attribute, value), *(also or {}).items()]
    query = " AND ".join(f'{a}="{v}"' for a, v in terms) + ' AND ExecutionStatus="Running"'
    return f"{ui.rstrip('/')}/namespaces/{quote(namespace)}/workflows?query={quote(query, safe='')}"


def incident_rows(items: list[dict[str, Any]], ui: str, namespace: str) -> list[dict[str, Any]]:
    """Incidents of ``incident_page`` as the console shows them: the signals, their rates as
    stored, the times with their zone and the Temporal UI's list of the open
    workflows of the incident's bank and channel."""
    return [
        {
            **i,
            "signals": [s for s in i["signals"].split(",") if s],
            "rates": shown_rates(i["rates"]),
            "fired_at": aware(i["fired_at"]),
            "resolved_at": aware(i["resolved_at"]) if i["resolved_at"] else None,
            "url": temporal_list_url(
                ui,
                namespace,
                ATTRIBUTES["bank_code"],
                i["bank_code"],
                also={ATTRIBUTES["channel"]: i["channel"]},
            ),
        }
        for i in items
    ]


def _next(target: str | None) -> str:
    if target and target.startswith(BASE) and not target.startswith(BASE + "/signin") and "\\" not in target:
        return target
    return BASE


@router.get(BASE + "/signin")
async def signin_form(request: Request) -> Response:
    return account_signin_form(request, BASE + "/signin", _next(request.query_params.get("next")))


@router.post(BASE + "/signin")
async def signin(request: Request) -> Response:
    """An account of any console role may sign in here; a reviewer lands on the review queue
    (the operations console would be 403 for them)."""
    return await account_signin(
        request,
        BASE + "/signin",
        lambda account, target: _next(target) if account.role in OPS else PREFIX + "/review",
    )


@router.get(BASE)
async def ops(request: Request) -> Response:
    session = need(request, *OPS)
    state = request.app.state
    settings = state.settings
    counts = await db(open_counts, state.engine)
    ui = settings.temporal_ui_url()
    tables = {
        name: [
            (
                value,
                n,
                temporal_list_url(ui, settings.temporal_namespace, ATTRIBUTES[name], value)
                if value
                else None,
            )
            for value, n in rows
        ]
        for name, rows in counts.items()
    }
    now = datetime.fromtimestamp(state.clock(), UTC)
    health = await db(delivery_health, state.engine, now - HEALTH_WINDOW, now)
    unmapped, unmapped_total = await db(unmapped_codes, state.engine, 20, 0)
    parked, parked_total = await db(parked_callbacks, state.engine, "attention", 20, 0)
    firing, firing_total = await db(incident_page, state.engine, "open", OPEN_INCIDENTS, 0)
    resolved, _ = await db(incident_page, state.engine, "resolved", RESOLVED_INCIDENTS, 0)
    locale = pick_locale(request)
    reports, reports_total = await latest_reports(request, Words(locale))
    done = request.query_params.get("done", "")
    return render(
        request,
        "ops.html",
        locale,
        session=session,
        csrf=state.sessions.csrf_for(session),
        tables=tables,
        health=health,
        unmapped=unmapped,
        unmapped_total=unmapped_total,
        parked=parked,
        parked_total=parked_total,
        firing=incident_rows(firing, ui, settings.temporal_namespace),
        firing_total=firing_total,
        resolved=incident_rows(resolved, ui, settings.temporal_namespace),
        reports=reports,
        reports_total=reports_total,
        reports_url=REPORTS,
        done=done if done in DONE else "",
        done_id=request.query_params.get("id", "")[:12],
    )


@router.post(BASE + "/parked/{parked_id}/redeliver")
async def redeliver(request: Request, parked_id: int) -> Response:
    """Send a parked callback to its workflow again (gateway/callbacks.py): the audit trail
    names the signed-in operator. Back to the console with the outcome."""
    session = need(request, *OPS)
    check_csrf(request, session, await form(request))
    if not 1 <= parked_id <= MAX_ROW_ID:
        raise PageProblem("notfound", 404)
    state = request.app.state
    try:
        await redeliver_parked(state.client, state.engine, parked_id, session.name, session.role)
        done = "redelivered"
    except RedeliverRefused as refused:
        done = refused.kind.replace(" ", "_")
    except RPCError:
        done = "unavailable"
    return RedirectResponse(f"{BASE}?done={done}&id={parked_id}#parked", status_code=303)
