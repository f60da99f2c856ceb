"""What the end users' pages share (issue #13): the language switch of every page, the
friendly problem pages of the page routes and the 404 for unknown page paths. What each page
shows and how sign-in works: docs/pages.md.

The pages themselves, one module per page group: the progress page a notice's link opens
(gateway/routes_progress.py), sign-in and sign-out (gateway/routes_signin.py), the records
list (gateway/routes_records.py), the inbox with its red dot and pop-up
(gateway/routes_inbox_page.py) and the embeddable inbox widget (gateway/routes_widget.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gateway.page_auth import PageProblem, local_next, secure
from gateway.web import LANG_COOKIE, LOCALES, PREFIX, problem

router = APIRouter(include_in_schema=False)


@router.get(PREFIX + "/lang/{locale}")
async def set_language(request: Request, locale: str) -> Response:
    """The language switch of every page: a session cookie (no expiry: kept until the browser
    closes) that wins over the withdrawal's own language and the browser's; then back to the
    page (a page of this gateway only). Changing the language changes nothing else, so a
    plain link is enough (no CSRF token needed)."""
    if locale not in LOCALES:
        raise PageProblem("notfound", 404)
    response = RedirectResponse(local_next(request.query_params.get("next")), status_code=303)
    response.set_cookie(
        LANG_COOKIE, locale, httponly=True, samesite="lax", secure=secure(request), path=PREFIX
    )
    return response


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
