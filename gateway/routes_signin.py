"""The users' sign-in and everyone's sign-out (issue #13, R22): a user token (or, for the
consoles, a member of staff's API key) is exchanged once for a session cookie. How: docs/pages.md;
the shared steps (form, rate limit, credential, new session): gateway/page_auth.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gateway.auth import OPERATOR, REVIEWER, SUPERVISOR, USER
from gateway.page_auth import (
    PageProblem,
    check_csrf,
    credential_of,
    current,
    form,
    local_next,
    signed_in,
    signin_attempt,
    signin_page,
)
from gateway.sessions import COOKIE, PRE_CSRF_COOKIE, pre_csrf_ok
from gateway.web import PREFIX, pick_locale

router = APIRouter(include_in_schema=False)


@router.get(PREFIX + "/signin")
async def signin_form(request: Request) -> Response:
    return signin_page(
        request,
        "signin.html",
        pick_locale(request),
        PREFIX + "/signin",
        local_next(request.query_params.get("next")),
        signed_out=request.query_params.get("out") == "1",
    )


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
    name_role_until = credential_of(request, credential)
    if name_role_until is None:
        return signin_page(
            request,
            "signin.html",
            locale,
            PREFIX + "/signin",
            local_next(fields.get("next")),
            status_code=401,
            failed=True,
        )
    name, role, until = name_role_until
    default = PREFIX + {USER: "/records", REVIEWER: "/review"}.get(role, "/ops")
    target = local_next(fields.get("next")) if fields.get("next") else default
    return signed_in(request, name, role, until, target, PREFIX + "/signin")


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
