"""The reviewer console (issue #13, R15, R22, R29): reviewers and supervisors sign in with a
name and password (gateway/reviewers.py), see the review queue soonest SLA due first, take a
case, read everything about it, and decide it. What each page shows: docs/pages.md.

Nothing here decides anything on its own: the queue is the review desk's query
(store/reviews.py ``review_queue_page``), the case is the desk's ``case``, taking a case is its
``assign`` and a decision is its ``decide`` (gateway/routes_reviews.py), called with the
signed-in reviewer as the caller. So the console and the API keep the same rules: four-eyes
(the same person approving twice is 409, shown here as a plain message), the audit rows.

Sessions, CSRF on every form, the sign-in rate limit and the security headers are the
pages' own (gateway/sessions.py, gateway/page_auth.py, gateway/web.py). Roles: reviewer and
supervisor; a user's session or an operator's gets 403.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from temporalio.service import RPCError

from gateway import routes_reviews
from gateway.auth import OPERATOR, REVIEWER, SUPERVISOR, Principal
from gateway.deps import db
from gateway.errors import ApiError
from gateway.page_auth import PageProblem, check_csrf, form, need, signed_in, signin_attempt, signin_page
from gateway.sessions import PRE_CSRF_COOKIE, pre_csrf_ok
from gateway.views import views
from gateway.web import PREFIX, money, pick_locale, render
from sentinel.catalogue import default_catalogue
from sentinel.models import ID_PATTERN
from sentinel.policy import resolve_tracking_policy
from sentinel.review_order import by_due, sla_due
from store.reviews import review_queue_page

router = APIRouter(include_in_schema=False)

BASE = PREFIX + "/review"
CONSOLE = (REVIEWER, SUPERVISOR)
#: the console orders the oldest cases of the desk's queue (store/reviews.py) by SLA due time
QUEUE_SCAN = 200
DONE = ("approve", "reject", "request_documents", "assign")
_ID = re.compile(ID_PATTERN)
#: the desk's refusals (ApiError.error) -> the message the case page shows
REFUSALS = {
    "four-eyes": "four_eyes",
    "not awaiting review": "not_awaiting",
    "forbidden": "not_allowed",
    "invalid request": "assign_unknown",
    "not found": "not_awaiting",
}


def _who(session) -> Principal:
    return Principal(name=session.name, role=session.role)


def _next(target: str | None) -> str:
    if target and target.startswith(BASE) and not target.startswith(BASE + "/signin") and "\\" not in target:
        return target
    return BASE


class _Slas:
    """The review SLA (seconds) of a channel and bank, from the delays file in force."""

    def __init__(self, request: Request):
        self._delays = request.app.state.delays
        self._seen: dict[tuple[str, str], float | None] = {}

    def __call__(self, channel: str, bank_code: str) -> float | None:
        if (channel, bank_code) not in self._seen:
            try:
                policy = resolve_tracking_policy(self._delays.get(), channel, bank_code)
                self._seen[channel, bank_code] = policy.review_sla_s
            except ValueError:  # no readable delays file: the due time is unknown
                self._seen[channel, bank_code] = None
        return self._seen[channel, bank_code]


# --------------------------------------------------------------------------- sign-in


@router.get(BASE + "/signin")
async def signin_form(request: Request) -> Response:
    return account_signin_form(request, BASE + "/signin", _next(request.query_params.get("next")))


def account_signin_form(request: Request, path: str, next_path: str) -> Response:
    """The staff sign-in form (name and password) posting to ``path``: the reviewer
    console's and the operations console's."""
    return signin_page(
        request,
        "review_signin.html",
        pick_locale(request),
        path,
        next_path,
        signed_out=request.query_params.get("out") == "1",
    )


async def account_signin(request: Request, path: str, next_for) -> Response:
    """Name and password (argon2 hash in the accounts file) for a session cookie, then on
    to ``next_for(account, next field)``."""
    locale = pick_locale(request)
    signin_attempt(request, locale)
    fields = await form(request)
    if not pre_csrf_ok(request.cookies.get(PRE_CSRF_COOKIE), fields.get("csrf")):
        raise PageProblem("csrf", 403, locale)
    name, password = fields.get("name", "").strip(), fields.get("password", "")
    account = (
        await run_in_threadpool(request.app.state.reviewers.verify, name, password)
        if name and password
        else None
    )
    if account is None:
        return signin_page(
            request,
            "review_signin.html",
            locale,
            path,
            fields.get("next") or "",
            status_code=401,
            failed=True,
        )
    return signed_in(request, account.name, account.role, None, next_for(account, fields.get("next")), path)


@router.post(BASE + "/signin")
async def signin(request: Request) -> Response:
    """An operator's account signs in here too, and goes on to the operations console."""
    return await account_signin(
        request,
        BASE + "/signin",
        lambda account, target: PREFIX + "/ops" if account.role == OPERATOR else _next(target),
    )


# --------------------------------------------------------------------------- the queue


@router.get(BASE)
async def queue(request: Request) -> Response:
    session = need(request, *CONSOLE)
    state = request.app.state
    locale = pick_locale(request)
    now = datetime.fromtimestamp(state.clock(), UTC)
    rows, total = await db(review_queue_page, state.engine, limit=QUEUE_SCAN, offset=0, now=now)
    slas = _Slas(request)
    items: list[dict[str, Any]] = [
        {
            "record": r,
            "due": sla_due(r.review_since, slas(r.channel, r.bank_code)),
            "amount": money(r.amount, r.currency, locale),
        }
        for r in rows
    ]
    for item in items:
        item["overdue"] = item["due"] is not None and item["due"] <= now
    items = by_due(items, lambda i: i["due"], lambda i: i["record"].withdrawal_id)
    return render(
        request,
        "review_queue.html",
        locale,
        session=session,
        csrf=state.sessions.csrf_for(session),
        items=items,
        total=total,
        shown=len(items),
    )


# --------------------------------------------------------------------------- one case


def _case_id(withdrawal_id: str) -> str:
    if not _ID.match(withdrawal_id):
        raise PageProblem("notfound", 404)
    return withdrawal_id


async def _case_page(
    request: Request, session, withdrawal_id: str, *, status_code: int = 200, error: str | None = None
) -> Response:
    state = request.app.state
    locale = pick_locale(request)
    try:
        case = await routes_reviews.case(
            withdrawal_id, who=_who(session), engine=state.engine, v=views(request)
        )
    except ApiError as err:
        raise (
            PageProblem("notfound", 404, locale) if err.status == 404 else PageProblem("busy", 503, locale)
        ) from None
    except RPCError:
        raise PageProblem("busy", 503, locale) from None
    record, view = case.record, case.view
    reason_code = view.reason_code if view else record.reason_code
    entry = default_catalogue().lookup(record.channel, reason_code)
    described = {h.rule_id: h.description for h in (view.risk_hits if view else [])}
    since = (view.review_since if view else None) or record.review_since
    done = request.query_params.get("done")
    return render(
        request,
        "review_case.html",
        locale,
        status_code=status_code,
        session=session,
        csrf=state.sessions.csrf_for(session),
        case=case,
        record=record,
        view=view,
        amount=money(record.amount, record.currency, locale),
        reason_code=reason_code,
        entry=entry,
        hits=[(h, described.get(h.rule_id, "")) for h in case.risk_hits],
        uploads=[a for a in case.audit if a.action == "documents_uploaded"],
        due=sla_due(since, _Slas(request)(record.channel, record.bank_code)),
        documents=sorted(routes_reviews.known_documents()),
        error=error,
        done=done if done in DONE else None,
        me=session.name,
        assignees=sorted(state.keys.names(CONSOLE)) if session.role == SUPERVISOR else [],
    )


@router.get(BASE + "/{withdrawal_id}")
async def case_page(request: Request, withdrawal_id: str) -> Response:
    session = need(request, *CONSOLE)
    return await _case_page(request, session, _case_id(withdrawal_id))


@router.post(BASE + "/{withdrawal_id}/assign")
async def take(request: Request, withdrawal_id: str) -> Response:
    """Take the case (or, for a supervisor, give it to someone): the desk's ``assign``."""
    session = need(request, *CONSOLE)
    fields = await form(request)
    check_csrf(request, session, fields)
    wid = _case_id(withdrawal_id)
    state = request.app.state
    try:
        body = routes_reviews.AssignBody(assignee=fields.get("assignee") or None)
        await routes_reviews.assign(wid, request, body=body, who=_who(session), engine=state.engine)
    except ValidationError:
        return await _case_page(request, session, wid, status_code=400, error="assign_unknown")
    except ApiError as err:
        return await _case_page(
            request, session, wid, status_code=err.status, error=REFUSALS.get(err.error, "not_allowed")
        )
    return RedirectResponse(f"{BASE}/{wid}?done=assign", status_code=303)


@router.post(BASE + "/{withdrawal_id}/decision")
async def decide(request: Request, withdrawal_id: str) -> Response:
    """Approve, reject or ask for documents, with the reason: the desk's ``decide``, so the
    workflow enforces four-eyes and the audit row is written exactly as for the API."""
    session = need(request, *CONSOLE)
    fields = await form(request)
    check_csrf(request, session, fields)
    wid = _case_id(withdrawal_id)
    state = request.app.state
    documents = [d for d in sorted(routes_reviews.known_documents()) if fields.get(f"doc_{d}")]
    try:
        body = routes_reviews.DecisionBody(
            decision=fields.get("decision", ""), reason=fields.get("reason", ""), documents=documents
        )
    except ValidationError:
        return await _case_page(request, session, wid, status_code=400, error="decision_invalid")
    try:
        await routes_reviews.decide(
            wid, body, request, who=_who(session), client=state.client, v=views(request)
        )
    except ApiError as err:
        return await _case_page(
            request, session, wid, status_code=err.status, error=REFUSALS.get(err.error, "not_allowed")
        )
    except RPCError:
        raise PageProblem("busy", 503) from None
    return RedirectResponse(f"{BASE}/{wid}?done={body.decision}", status_code=303)
