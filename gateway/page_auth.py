"""Who is on a page, and the checks every page route makes (issue #13, R22): the session
cookie (gateway/sessions.py), the role the route allows, and the CSRF token of a POST.
A failed check raises :class:`PageProblem`, which the app answers with the friendly problem
page (gateway/web.py), never JSON or a stack trace."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request

from gateway.sessions import COOKIE, Session, SessionError


class PageProblem(Exception):
    def __init__(
        self, kind: str, status: int, locale: str | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(kind)
        self.kind, self.status, self.locale, self.headers = kind, status, locale, headers


#: the widget frame's session (gateway/sessions.py, widget tokens): its own requests carry it
SESSION_HEADER = "x-sentinel-session"
#: ... and its event stream in this query parameter (EventSource sends no header)
STREAM_PARAM = "session"
STREAM_PATH = "/pages/inbox/events"


def _presented(request: Request) -> str | None:
    """The session the request presents: the cookie, else the widget frame's header, else
    (the inbox stream only) the query parameter."""
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return cookie
    header = request.headers.get(SESSION_HEADER)
    if header:
        return header
    if request.url.path == STREAM_PATH:
        return request.query_params.get(STREAM_PARAM)
    return None


def current(request: Request) -> Session | None:
    state = request.app.state
    try:
        return state.sessions.check(_presented(request), state.clock())
    except SessionError:
        return None


def need(request: Request, *roles: str) -> Session:
    """The session, if its role is one of ``roles``: 401 (sign in) without one, 403 with
    another role (a user's session never opens a console, a console's never a user's page)."""
    session = current(request)
    if session is None:
        raise PageProblem("signin", 401)
    if session.role not in roles:
        raise PageProblem("forbidden", 403)
    return session


async def form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each); a body that is not one is empty."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    try:
        fields = parse_qs((await request.body()).decode("utf-8"), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in fields.items()}


def check_csrf(request: Request, session: Session, fields: dict[str, str]) -> None:
    """The form's ``csrf`` field or the ``X-CSRF-Token`` header must be the session's token."""
    sent = fields.get("csrf") or request.headers.get("x-csrf-token")
    if not request.app.state.sessions.csrf_ok(session, sent):
        raise PageProblem("csrf", 403)


def secure(request: Request) -> bool:
    return request.url.scheme == "https"
