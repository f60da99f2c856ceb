"""Sign-in and sign-out of the end users' pages (issue #13; docs/pages.md): the form, the
attempt limit per client address, the page session cookie. The reviewer console signs in
through the same form (``signin_page``, ``signin_attempt``, ``signed_in``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gateway.auth import REVIEWER, ROLES, SUPERVISOR, USER
from gateway.page_auth import PageProblem, check_csrf, current, form, secure
from gateway.sessions import COOKIE, PRE_CSRF_COOKIE, new_pre_csrf, pre_csrf_ok
from gateway.web import PREFIX, pick_locale, render
from sentinel.user_tokens import TokenError, is_user_token, verify_user_token

router = APIRouter(include_in_schema=False)


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


@router.post(PREFIX + "/signout")
async def signout(request: Request) -> Response:
    session = current(request)
    if session is not None:
        check_csrf(request, session, await form(request))
        request.app.state.sessions.end(session, request.app.state.clock())
    console = session is not None and session.role in (REVIEWER, SUPERVISOR)
    response = RedirectResponse(
        PREFIX + ("/review/signin?out=1" if console else "/signin?out=1"), status_code=303
    )
    response.delete_cookie(COOKIE, path=PREFIX)
    return response
