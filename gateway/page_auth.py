"""Who is on a page, and the checks every page route makes (issue #13, R22): the session
cookie (gateway/sessions.py), the role the route allows, and the CSRF token of a POST.
A failed check raises :class:`PageProblem`, which the app answers with the friendly problem
page (gateway/web.py), never JSON or a stack trace.

And how one signs in, shared by the users' sign-in (gateway/routes_signin.py), the widget
(gateway/routes_widget.py) and the consoles' (gateway/routes_review_console.py): the form
with its double-submit CSRF cookie, the rate limit, the credential check and the new session.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from gateway.auth import ROLES, USER, user_of_token
from gateway.sessions import COOKIE, PRE_CSRF_COOKIE, Session, SessionError, new_pre_csrf
from gateway.web import PREFIX, render
from sentinel.user_tokens import TokenError, is_user_token


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


# --------------------------------------------------------------------------- sign-in


def local_next(target: str | None) -> str:
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


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def signin_attempt(request: Request, locale: str) -> None:
    """The sign-in rate limit per client address (429 with Retry-After past it)."""
    wait = request.app.state.signin_limit.allow(client_address(request))
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


def credential_of(request: Request, credential: str) -> tuple[str, str, int | None] | None:
    """(name, role, expiry) of a valid user token or staff API key; None otherwise."""
    state = request.app.state
    if not credential or len(credential) > 1024:
        return None
    if is_user_token(credential):
        try:
            user_id = user_of_token(state, credential)
        except (TokenError, ValueError):
            return None
        return user_id, USER, int(credential.split(".")[3])
    found = state.keys.lookup(credential)
    if found is None or found.role not in ROLES:
        return None
    return found.name, found.role, None
