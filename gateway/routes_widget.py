"""The embeddable inbox widget (issue #13, R21): a bell, the red dot and a panel with the
inbox, in an iframe on the platform's own site (``static/widget.js``), and the widget
tokens that sign it in on another site (gateway/sessions.py). How to embed it: docs/pages.md."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gateway.auth import USER
from gateway.deps import db
from gateway.page_auth import credential_of, current, form, need, signin_attempt
from gateway.page_inbox import INBOX_PAGE, page_message
from gateway.sessions import SessionError, make_widget_token, verify_widget_token
from gateway.web import WIDGET_PATH, pick_locale, render
from sentinel.user_tokens import is_user_token
from store.inbox import inbox

router = APIRouter(include_in_schema=False)

#: lifetime of the widget tokens the gateway hands out (POST /pages/widget/token)
WIDGET_TOKEN_TTL_S = 300


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
        messages=[page_message(m) for m in messages],
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
    found = credential_of(request, credential) if is_user_token(credential) else None
    if found is None:
        signin_attempt(request, pick_locale(request))
        return JSONResponse({"error": "unauthorized"}, status_code=401, headers={"Cache-Control": "no-store"})
    now = state.clock()
    ttl = WIDGET_TOKEN_TTL_S if found[2] is None else max(1, min(WIDGET_TOKEN_TTL_S, found[2] - int(now)))
    token = make_widget_token(found[0], state.settings.user_token_secret, now, ttl)
    return JSONResponse({"token": token, "expires_at": int(now) + ttl}, headers={"Cache-Control": "no-store"})
