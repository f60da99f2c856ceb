"""What every web page of the gateway shares (issue #13): the Jinja2 templates
(gateway/web/templates, autoescaped), the words in zh-CN and en-US (gateway/web/text.yaml),
the choice of language, the security headers, and the friendly problem page.

Security headers on everything under ``/pages``: a Content-Security-Policy without inline
script or style (``script-src 'self'``; the pages load their JavaScript and CSS from
``/pages/static``), no framing (but the inbox widget's page, by the configured sites), no
referrer (a signed link never leaks to another site),
``nosniff``, and ``Cache-Control: no-store`` on the pages themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentinel.template_files import bank_name

WEB = Path(__file__).resolve().parent / "web"
STATIC = WEB / "static"
PREFIX = "/pages"
LOCALES = ("en-US", "zh-CN")
DEFAULT_LOCALE = "en-US"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
#: the embeddable inbox widget's page: the one page a frame may show, on the sites of
#: SENTINEL_PAGES_FRAME_ANCESTORS only
WIDGET_PATH = PREFIX + "/widget"


def widget_headers(frame_ancestors: list[str]) -> dict[str, str]:
    """The widget page's headers: the same CSP but framed by ``frame_ancestors`` (validated
    origins or 'self', sentinel/settings.py), and no X-Frame-Options (it cannot list sites)."""
    csp = CSP.replace("frame-ancestors 'none'", "frame-ancestors " + " ".join(frame_ancestors))
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": csp}
    del headers["X-Frame-Options"]
    return headers


def load_text(path: Path = WEB / "text.yaml") -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """(key -> locale -> words, locale -> {English history line -> its words})."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    events = {loc: doc.pop(f"_events_{loc}", {}) for loc in LOCALES}
    for key, words in doc.items():
        missing = [loc for loc in LOCALES if not (isinstance(words, dict) and words.get(loc))]
        if missing:
            raise ValueError(f"gateway/web/text.yaml: {key} has no words for {', '.join(missing)}")
    return doc, events


TEXT, EVENTS = load_text()


class Words:
    """``t("key", n=3)``: the words of ``key`` in this page's language, placeholders filled."""

    def __init__(self, locale: str):
        self.locale = locale

    def __call__(self, key: str, **values: Any) -> str:
        words = TEXT[key][self.locale]
        return words.format(**values) if values else words

    def event(self, what: str) -> str:
        return EVENTS.get(self.locale, {}).get(what, what)

    def bank(self, code: str) -> str:
        """The bank's name in this page's language (sentinel/banks.yaml, as the notices name
        it); a code without an entry is shown as the code."""
        return bank_name(code, self.locale)

    def has(self, key: str) -> bool:
        return key in TEXT


#: the language switch's cookie (``/pages/lang/<locale>``), kept for the browser session
LANG_COOKIE = "lang"


def pick_locale(request: Request, preferred: Iterable[str | None] = ()) -> str:
    """The ``lang`` cookie (the language switch on every page), then ``preferred`` (e.g. the
    withdrawal's own locale, the one its notices speak), then the browser's Accept-Language, then en-US."""
    for candidate in (request.cookies.get(LANG_COOKIE), *preferred):
        if candidate in LOCALES:
            return candidate
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        for loc in LOCALES:
            if tag == loc.lower() or tag == loc.split("-")[0].lower():
                return loc
        if tag.startswith("zh"):
            return "zh-CN"
    return DEFAULT_LOCALE


def money(amount: Decimal, currency: str, locale: str) -> str:
    """``1,250.00 CNY`` / ``1,250.00 元``: Decimal throughout, never a float."""
    text = f"{Decimal(amount).quantize(Decimal('0.01')):,}"
    if currency == "CNY" and locale == "zh-CN":
        return f"{text} 元"
    return f"{text} {currency}"


def aware(at: datetime) -> datetime:
    """A stored time (naive on SQLite: UTC) with its zone."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def utc_text(at: datetime | None) -> str:
    """Shown until the page's script writes the reader's local time."""
    if at is None:
        return ""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(at: datetime | None) -> str:
    if at is None:
        return ""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat()


templates = Environment(
    loader=FileSystemLoader(str(WEB / "templates")),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["utc_text"] = utc_text
templates.filters["iso"] = iso


def here(request: Request) -> str:
    """This page's path and query: where the language switch comes back to."""
    query = request.url.query
    return request.url.path + ("?" + query if query else "")


def render(request: Request, name: str, locale: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    settings = request.app.state.settings
    html = templates.get_template(name).render(
        t=Words(locale),
        locale=locale,
        prefix=PREFIX,
        support_phone=settings.support_phone,
        support_url=settings.support_url,
        session=context.pop("session", None),
        csrf=context.pop("csrf", ""),
        here=here(request),
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def render_fragment(name: str, locale: str, **context: Any) -> str:
    return templates.get_template(name).render(t=Words(locale), locale=locale, prefix=PREFIX, **context)


def problem(
    request: Request, kind: str, status_code: int, locale: str | None = None, **extra: Any
) -> HTMLResponse:
    """The friendly page for ``kind`` (link, expired, unknown, busy, signin, forbidden,
    csrf, slow, notfound): what happened and what to do, never a stack trace."""
    locale = locale or pick_locale(request)
    return render(request, "problem.html", locale, status_code=status_code, kind=kind, **extra)


class SecurityHeaders:
    """Adds the security headers to every answer under ``/pages``."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return

        wanted = SECURITY_HEADERS
        if scope["path"] == WIDGET_PATH:
            wanted = widget_headers(scope["app"].state.settings.pages_frame_ancestors)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in wanted.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
