"""The end users' pages (issue #13): the progress page a notice's link opens, the records
list, the inbox with its red dot and pop-up, sign-in and sign-out. What each page shows and
how sign-in works: docs/pages.md.

Links: a notice carries ``{SENTINEL_APP_BASE_URL}/<kind path>?wid&uid&exp&sig``
(sentinel/links.py). The gateway answers the same kind paths under ``/pages`` with the same
query, verified exactly as the links are made (``verify_link``): ``/pages/withdrawals/track``,
``/pages/withdrawals/documents``, ``/pages/bank-cards/fix`` all open the progress page of
that withdrawal. Point SENTINEL_APP_BASE_URL at ``<gateway>/pages`` or let the app forward
those paths with their query (:func:`page_for_link` does the mapping).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from temporalio.service import RPCError

from gateway import routes_inbox
from gateway.auth import (
    OPERATOR,
    REVIEWER,
    ROLES,
    SUPERVISOR,
    USER,
)
from gateway.deps import db
from gateway.errors import ApiError
from gateway.page_auth import PageProblem, check_csrf, current, form, need, secure
from gateway.page_progress import marker, owner, progress_context, user_view
from gateway.page_streams import stream
from gateway.sessions import (
    COOKIE,
    PRE_CSRF_COOKIE,
    SessionError,
    make_widget_token,
    new_pre_csrf,
    pre_csrf_ok,
    verify_widget_token,
)
from gateway.views import views
from gateway.web import (
    LANG_COOKIE,
    LOCALES,
    PREFIX,
    WIDGET_PATH,
    Words,
    money,
    pick_locale,
    problem,
    render,
    render_fragment,
)
from sentinel.links import KINDS, LinkError, make_link, verify_link
from sentinel.taxonomy import WithdrawalStatus
from sentinel.user_tokens import TokenError, is_user_token, verify_user_token
from store.incidents import incident_for_withdrawal
from store.repo import get_record, inbox, user_withdrawals

router = APIRouter(include_in_schema=False)

PERIODS = {"7": 7, "30": 30, "90": 90}
#: the records page filters the user's newest rows in memory (store/repo.py user_withdrawals)
RECORDS_SCAN = 500
RECORDS_PAGE = 20
INBOX_PAGE = 50
#: lifetime of the widget tokens the gateway hands out (POST /pages/widget/token)
WIDGET_TOKEN_TTL_S = 300
HIGH = ("HIGH", "CRITICAL")


def page_for_link(link: str) -> str | None:
    """The gateway page (path and query) a notice's link opens, or None for another link."""
    parts = urlsplit(link)
    for path in KINDS.values():
        if parts.path.rstrip("/").endswith("/" + path):
            return f"{PREFIX}/{path}?{parts.query}"
    return None


def track_path(withdrawal_id: str, user_id: str, settings, now: int) -> str:
    """A signed progress link for the user's own pages (records, inbox)."""
    link = make_link(
        "https://pages.invalid" + PREFIX,
        "track",
        withdrawal_id,
        user_id,
        settings.link_secret.get_secret_value(),
        now,
        settings.link_ttl_s,
    )
    page = page_for_link(link)
    if page is None:  # make_link above builds a link of one of KINDS
        raise RuntimeError(f"no page for the track link {link}")
    return page


def _verified(request: Request, kind: str) -> dict:
    """The signed link's fields, or the friendly page for a damaged or expired link."""
    state = request.app.state
    url = f"https://pages.invalid{PREFIX}/{KINDS[kind]}?{request.url.query}"
    try:
        return verify_link(url, state.settings.link_secret.get_secret_value(), int(state.clock()))
    except LinkError as err:
        raise PageProblem(
            "expired" if str(err) == "link expired" else "link", 403 if "expired" in str(err) else 400
        )


async def _view_or_problem(request: Request, withdrawal_id: str, user_id: str, locale: str):
    try:
        return await user_view(views(request), withdrawal_id, user_id)
    except ApiError as err:
        kind = {404: "unknown", 403: "link"}.get(err.status, "busy")
        raise PageProblem(kind, err.status if err.status in (403, 404) else 503, locale) from None


async def _record_locale(request: Request, withdrawal_id: str) -> str:
    record = await db(get_record, request.app.state.engine, withdrawal_id)
    return pick_locale(request, (record.locale if record else None,))


async def _progress(request: Request, kind: str) -> Response:
    link = _verified(request, kind)
    wid, uid = link["withdrawal_id"], link["user_id"]
    locale = await _record_locale(request, wid)
    view = await _view_or_problem(request, wid, uid, locale)
    state = request.app.state
    session = current(request)
    own = session if session is not None and session.role == USER and session.user_id == uid else None
    incident = await db(incident_for_withdrawal, state.engine, wid)
    context = progress_context(
        view, Words(locale), state.settings, int(state.clock()), incident.bank_code if incident else None
    )
    return render(
        request,
        "progress.html",
        locale,
        session=own,
        csrf=state.sessions.csrf_for(own) if own else "",
        stream_url=f"{PREFIX}/withdrawals/track/events?{request.url.query}",
        **context,
    )


@router.get(PREFIX + "/withdrawals/track")
async def track(request: Request) -> Response:
    return await _progress(request, "track")


@router.get(PREFIX + "/withdrawals/documents")
async def documents(request: Request) -> Response:
    return await _progress(request, "upload_documents")


@router.get(PREFIX + "/bank-cards/fix")
async def fix_card(request: Request) -> Response:
    return await _progress(request, "fix_card")


def _stream_slot(request: Request) -> None:
    if request.app.state.page_slots.full:
        raise PageProblem("busy", 503, headers={"Retry-After": "30"})


@router.get(PREFIX + "/withdrawals/track/events")
async def track_events(request: Request) -> Response:
    """The progress page's live stream: ``update`` events carry the new page content."""
    link = _verified(request, "track")
    _stream_slot(request)
    wid, uid = link["withdrawal_id"], link["user_id"]
    state = request.app.state
    locale = await _record_locale(request, wid)

    async def probe():
        record = await db(get_record, state.engine, wid)
        return (record.status, record.updated_at) if record else None

    async def load():
        try:
            view = await user_view(views(request), wid, uid)
        except ApiError:
            return None  # keep what the page shows; the next change is sent
        incident = await db(incident_for_withdrawal, state.engine, wid)
        bank = incident.bank_code if incident else None
        context = progress_context(view, Words(locale), state.settings, int(state.clock()), bank)
        return (*marker(view), bank), {
            "status": view.status.value,
            "html": render_fragment("_progress.html", locale, **context),
        }

    return stream(request, probe, load, event="update", until=link["exp"])


# --------------------------------------------------------------------------- sign-in


def _local_next(target: str | None) -> str:
    """Only a page of this gateway: never an open redirect."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX + "/records"


def signin_page(
    request: Request,
    template: str,
    locale: str,
    path: str,
    next_path: str,
    *,
    status_code: int = 200,
    failed: bool = False,
    signed_out: bool = False,
) -> Response:
    """A sign-in form with a fresh CSRF value in the form and in a cookie scoped to ``path``
    (double submit): the users' form and the reviewer console's."""
    token = new_pre_csrf()
    response = render(
        request,
        template,
        locale,
        status_code=status_code,
        pre_csrf=token,
        failed=failed,
        next=next_path,
        signed_out=signed_out,
        signin_action=path,
        signin_title="ops_signin_title" if path.startswith(PREFIX + "/ops") else "review_signin_title",
    )
    response.set_cookie(
        PRE_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=secure(request),
        path=path,
        max_age=3600,
    )
    return response


def signin_attempt(request: Request, locale: str) -> None:
    """The sign-in rate limit per client address (429 with Retry-After past it)."""
    wait = request.app.state.signin_limit.allow(_client(request))
    if wait:
        raise PageProblem("slow", 429, locale, headers={"Retry-After": str(int(wait) + 1)})


def signed_in(
    request: Request, name: str, role: str, until: int | None, target: str, signin_path: str
) -> Response:
    """A new session (fresh id) in the session cookie, and on to ``target``."""
    state = request.app.state
    session, cookie = state.sessions.start(name, role, until, state.clock())
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        httponly=True,
        samesite="lax",
        secure=secure(request),
        path=PREFIX,
        max_age=max(1, session.exp - int(state.clock())),
    )
    response.delete_cookie(PRE_CSRF_COOKIE, path=signin_path)
    return response


@router.get(PREFIX + "/signin")
async def signin_form(request: Request) -> Response:
    return signin_page(
        request,
        "signin.html",
        pick_locale(request),
        PREFIX + "/signin",
        _local_next(request.query_params.get("next")),
        signed_out=request.query_params.get("out") == "1",
    )


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post(PREFIX + "/signin")
async def signin(request: Request) -> Response:
    """A user token (or, for the consoles, a member of staff's API key) for a session cookie.
    From a form (``token``, ``csrf`` matching the sign-in cookie, ``next``) or from the app's
    own code with ``Authorization: Bearer <user token>`` (a header no other site can send)."""
    locale = pick_locale(request)
    signin_attempt(request, locale)
    fields = await form(request)
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        credential = auth[7:].strip()
    else:
        if not pre_csrf_ok(request.cookies.get(PRE_CSRF_COOKIE), fields.get("csrf")):
            raise PageProblem("csrf", 403, locale)
        credential = fields.get("token", "").strip()
    name_role_until = _credential(request, credential)
    if name_role_until is None:
        return signin_page(
            request,
            "signin.html",
            locale,
            PREFIX + "/signin",
            _local_next(fields.get("next")),
            status_code=401,
            failed=True,
        )
    name, role, until = name_role_until
    default = PREFIX + {USER: "/records", REVIEWER: "/review"}.get(role, "/ops")
    target = _local_next(fields.get("next")) if fields.get("next") else default
    return signed_in(request, name, role, until, target, PREFIX + "/signin")


def _credential(request: Request, credential: str) -> tuple[str, str, int | None] | None:
    """(name, role, expiry) of a valid user token or staff API key; None otherwise."""
    state = request.app.state
    if not credential or len(credential) > 1024:
        return None
    if is_user_token(credential):
        try:
            user_id = verify_user_token(
                credential,
                state.settings.user_token_secret,
                state.clock(),
                state.settings.user_token_max_ttl_s,
            )
        except (TokenError, ValueError):
            return None
        return user_id, USER, int(credential.split(".")[3])
    found = state.keys.lookup(credential)
    if found is None or found.role not in ROLES:
        return None
    return found.name, found.role, None


@router.get(PREFIX + "/lang/{locale}")
async def set_language(request: Request, locale: str) -> Response:
    """The language switch of every page: a session cookie (no expiry: kept until the browser
    closes) that wins over the withdrawal's own language and the browser's; then back to the
    page (a page of this gateway only). Changing the language changes nothing else, so a
    plain link is enough (no CSRF token needed)."""
    if locale not in LOCALES:
        raise PageProblem("notfound", 404)
    response = RedirectResponse(_local_next(request.query_params.get("next")), status_code=303)
    response.set_cookie(
        LANG_COOKIE, locale, httponly=True, samesite="lax", secure=secure(request), path=PREFIX
    )
    return response


@router.post(PREFIX + "/signout")
async def signout(request: Request) -> Response:
    session = current(request)
    if session is not None:
        check_csrf(request, session, await form(request))
        request.app.state.sessions.end(session, request.app.state.clock())
    role = session.role if session is not None else USER
    back = {REVIEWER: "/review/signin", SUPERVISOR: "/review/signin", OPERATOR: "/ops/signin"}.get(
        role, "/signin"
    )
    response = RedirectResponse(PREFIX + back + "?out=1", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


# --------------------------------------------------------------------------- records


@router.get(PREFIX + "/records")
async def records(request: Request) -> Response:
    """The user's withdrawals, newest first, filtered by status and period."""
    session = need(request, USER)
    state = request.app.state
    locale = pick_locale(request)
    status = request.query_params.get("status", "")
    status = status if status in WithdrawalStatus.__members__ else ""
    period = request.query_params.get("period", "")
    period = period if period in PERIODS else ""
    try:
        page = max(0, min(int(request.query_params.get("page", "0")), 1000))
    except ValueError:
        page = 0
    rows, _ = await db(user_withdrawals, state.engine, session.user_id, RECORDS_SCAN, 0)
    now = datetime.fromtimestamp(state.clock(), UTC)
    since = now - timedelta(days=PERIODS[period]) if period else None
    picked = [
        r
        for r in rows
        if (not status or r.status == status) and (since is None or _aware(r.created_at) >= since)
    ]
    shown = picked[page * RECORDS_PAGE : (page + 1) * RECORDS_PAGE]
    t = Words(locale)
    items = [
        {
            "record": r,
            "amount": _money(r, locale),
            "url": track_path(r.withdrawal_id, r.user_id, state.settings, int(state.clock())),
            "status_words": t(f"status_{r.status}"),
        }
        for r in shown
    ]
    more = None
    if len(picked) > (page + 1) * RECORDS_PAGE:
        more = f"{PREFIX}/records?" + urlencode({"status": status, "period": period, "page": page + 1})
    return render(
        request,
        "records.html",
        locale,
        session=session,
        csrf=state.sessions.csrf_for(session),
        items=items,
        status=status,
        period=period,
        statuses=list(WithdrawalStatus.__members__),
        periods=list(PERIODS),
        more=more,
    )


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _money(record, locale: str) -> str:
    return money(record.amount, record.currency, locale)


# --------------------------------------------------------------------------- inbox


def _message(m) -> dict:
    return {
        "id": m.id,
        "title": m.title,
        "body": m.body,
        "severity": m.severity,
        "withdrawal_id": m.withdrawal_id,
        "created_at": _aware(m.created_at).isoformat(),
        "read": m.read_at is not None,
        "url": page_for_link(m.link) if m.link else None,
    }


@router.get(PREFIX + "/inbox")
async def inbox_page(request: Request) -> Response:
    session = need(request, USER)
    state = request.app.state
    messages, unread = await db(inbox, state.engine, session.user_id, INBOX_PAGE, 0)
    return render(
        request,
        "inbox.html",
        pick_locale(request),
        session=session,
        csrf=state.sessions.csrf_for(session),
        messages=[_message(m) for m in messages],
        unread=unread,
    )


@router.get(WIDGET_PATH)
async def widget(request: Request) -> Response:
    """The embeddable inbox widget (a bell, the red dot, a panel with the inbox), shown in an
    iframe on the platform's own site by ``static/widget.js``; framed only by the sites of
    SENTINEL_PAGES_FRAME_ANCESTORS (gateway/web.py). Without a session: 401 and a bell that
    opens the sign-in page (and, when the frame's URL carries a widget token in its
    fragment, pages.js posts it at once: :func:`widget_signin`); a staff session: 403."""
    session = current(request)
    locale = pick_locale(request)
    if session is None:
        return render(request, "widget.html", locale, status_code=401, frame_session="")
    need(request, USER)
    return await _widget_page(request, session, locale, "")


async def _widget_page(request: Request, session, locale: str, frame_session: str) -> Response:
    state = request.app.state
    messages, unread = await db(inbox, state.engine, session.user_id, INBOX_PAGE, 0)
    return render(
        request,
        "widget.html",
        locale,
        session=session,
        csrf=state.sessions.csrf_for(session),
        messages=[_message(m) for m in messages],
        unread=unread,
        frame_session=frame_session,
    )


@router.post(WIDGET_PATH)
async def widget_signin(request: Request) -> Response:
    """The widget on another site: its frame posts the widget token (``wt``) that the host
    page's script tag carried in the frame URL's fragment (never sent to a server, never in
    an access log). A valid token starts a session of the user that is not a cookie (a
    third-party frame gets no SameSite=Lax cookie): the page carries it, and the frame's
    requests send it in the ``X-Sentinel-Session`` header (gateway/page_auth.py). A bad or
    expired token: the signed-out bell (401), counted by the sign-in rate limit."""
    state = request.app.state
    locale = pick_locale(request)
    fields = await form(request)
    try:
        user_id, _ = verify_widget_token(
            fields.get("wt", ""), state.settings.user_token_secret, state.clock()
        )
    except SessionError:
        signin_attempt(request, locale)
        return render(request, "widget.html", locale, status_code=401, frame_session="")
    session, value = state.sessions.start(user_id, USER, None, state.clock())
    return await _widget_page(request, session, locale, value)


@router.post(WIDGET_PATH + "/token")
async def widget_token(request: Request) -> Response:
    """A widget token for the user of ``Authorization: Bearer <user token>`` (the platform's
    app or server asks, then puts it in the widget's script tag as ``data-token``): JSON
    ``{"token": ..., "expires_at": <unix s>}``; 401 without a valid user token."""
    state = request.app.state
    auth = request.headers.get("authorization", "")
    credential = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    found = _credential(request, credential) if is_user_token(credential) else None
    if found is None:
        signin_attempt(request, pick_locale(request))
        return JSONResponse({"error": "unauthorized"}, status_code=401, headers={"Cache-Control": "no-store"})
    now = state.clock()
    ttl = WIDGET_TOKEN_TTL_S if found[2] is None else max(1, min(WIDGET_TOKEN_TTL_S, found[2] - int(now)))
    token = make_widget_token(found[0], state.settings.user_token_secret, now, ttl)
    return JSONResponse({"token": token, "expires_at": int(now) + ttl}, headers={"Cache-Control": "no-store"})


@router.get(PREFIX + "/inbox/events")
async def inbox_events(request: Request) -> Response:
    """The red dot's live stream: ``inbox`` events with the unread count and the newest
    messages (the page shows a pop-up for a new unread HIGH or CRITICAL one)."""
    session = need(request, USER)
    _stream_slot(request)
    state = request.app.state

    async def probe():
        messages, unread = await db(inbox, state.engine, session.user_id, 1, 0)
        return (messages[0].id if messages else None, unread)

    async def load():
        messages, unread = await db(inbox, state.engine, session.user_id, 20, 0)
        data: dict[str, Any] = {"unread": unread, "messages": [_message(m) for m in messages]}
        return (unread, tuple((m["id"], m["read"]) for m in data["messages"])), data

    return stream(request, probe, load, event="inbox", until=session.exp)


@router.post(PREFIX + "/inbox/{message_id}/read")
async def inbox_read(request: Request, message_id: str) -> Response:
    """Mark read through the inbox API's own code (gateway/routes_inbox.py ``read``): the
    workflow gets the read receipt and the notice's escalation stops (R21)."""
    session = need(request, USER)
    fields = await form(request)
    check_csrf(request, session, fields)
    if not message_id.isdigit() or not 1 <= int(message_id) <= 2**31 - 1:
        raise PageProblem("notfound", 404)
    state = request.app.state
    try:
        done = await routes_inbox.read(
            session.user_id,
            int(message_id),
            who=_principal(session),
            engine=state.engine,
            client=state.client,
        )
    except ApiError as err:
        raise PageProblem(
            "notfound" if err.status == 404 else "busy", err.status if err.status == 404 else 503
        )
    except RPCError:
        raise PageProblem("busy", 503) from None
    if "application/json" in request.headers.get("accept", ""):
        _, unread = await db(inbox, state.engine, session.user_id, 1, 0)
        return JSONResponse(
            {"ok": True, "read_at": done.read_at.isoformat() if done.read_at else None, "unread": unread}
        )
    return RedirectResponse(PREFIX + "/inbox", status_code=303)


def _principal(session):
    return owner(session.user_id)


# --------------------------------------------------------------------------- the rest


def install(app) -> None:
    """Problem pages for the page routes, and a friendly 404 for unknown page paths."""

    @app.exception_handler(PageProblem)
    async def _problem(request: Request, exc: PageProblem) -> Response:
        response = problem(request, exc.kind, exc.status, exc.locale)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.get(PREFIX + "/{rest:path}", include_in_schema=False)
    async def _not_found(request: Request, rest: str) -> Response:
        return problem(request, "notfound", 404)
