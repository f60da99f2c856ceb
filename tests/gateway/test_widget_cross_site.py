"""The inbox widget on another site (issue #13 item 3, R21, R22): a third-party frame gets
no SameSite=Lax session cookie, so the host page's script tag carries a short-lived widget
token (gateway/sessions.py) in the frame URL's fragment; the frame posts it once and then
sends its session in a header, never a cookie, so CSRF stays impossible. Over HTTP here;
in Chromium with the host page on host-a.test and the gateway on host-b.test (two sites,
mapped to 127.0.0.1 with --host-resolver-rules) at the end."""

from __future__ import annotations

import os
import re
import time
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.sessions import (
    WIDGET_TOKEN_MAX_TTL_S,
    SessionError,
    make_widget_token,
    verify_widget_token,
)
from runtime.client import SentinelClient
from sentinel.taxonomy import Stage
from sentinel.user_tokens import make_user_token
from store.db import engine_for
from store.repo import add_inbox_message, inbox
from store.tables import InboxMessage
from tests.gateway.test_pages_browser import CHROMIUM, DESKTOP, SHOWN_WITHIN_MS, served, sign_in, watch_csp
from tests.support.gateway_harness import offline_gateway
from tests.support.local_server import serve
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import eventually, make_request, make_settings

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # pragma: no cover
    async_playwright = None

SECRET = "dev-user-token-secret"


@pytest.fixture()
async def gw(ts_env, tmp_path):
    settings = make_settings(tmp_path, 9)
    async with offline_gateway(settings, SentinelClient(ts_env.client, "tq-no-worker")) as g:
        yield g


def test_widget_tokens_expire_are_capped_and_cannot_be_forged():
    # R22: short-lived, signed with a key of its own (not a user token, not a session).
    now = 1_800_000_000
    token = make_widget_token("u-1", SECRET, now, 300)
    assert verify_widget_token(token, SECRET, now + 299) == ("u-1", now + 300)
    for bad, when in (
        (token, now + 300),  # expired
        (token.replace("u", "v", 1)[:-2] + "AA", now),  # tampered
        (make_widget_token("u-1", "another secret", now), now),  # another key
        (make_user_token("u-1", SECRET, now, 300), now),  # a user token is not a widget token
        ("wt1.x.y.z", now),
        ("", now),
    ):
        with pytest.raises(SessionError):
            verify_widget_token(bad, SECRET, when)
    with pytest.raises(ValueError):
        make_widget_token("u-1", SECRET, now, WIDGET_TOKEN_MAX_TTL_S + 1)
    # a token signed for a lifetime past the cap (e.g. made with a patched maker) is refused
    from gateway.sessions import _b64, _key, _widget_mac

    name, exp = _b64(b"u-1"), now + 86400
    forged_long = f"wt1.{name}.{exp}.{_widget_mac(_key(SECRET, 'widget-token'), name, exp)}"
    with pytest.raises(SessionError, match="too long"):
        verify_widget_token(forged_long, SECRET, now)


async def test_widget_token_opens_a_cookieless_frame_session_with_csrf(gw, unique_id):
    # R21, R22: the token gives the frame a session in the page, not a cookie; the frame's
    # requests send it in a header; mark read still needs the CSRF token; the stream takes
    # it in the query; nothing else accepts it from the query.
    user = f"u-{unique_id}"
    msg = add_inbox_message(
        gw.engine,
        InboxMessage(
            key=f"{unique_id}/DETECTED/1",
            user_id=user,
            withdrawal_id=unique_id,
            stage="DETECTED",
            severity="HIGH",
            locale="en-US",
            title="Withdrawal failed",
            body="<b>escaped</b>",
        ),
    )
    resp = await gw.http.get("/pages/widget")
    assert resp.status_code == 401 and 'id="wt-form"' in resp.text
    resp = await gw.http.post("/pages/widget", data={"wt": "wt1.bad.1.x"})
    assert resp.status_code == 401 and "set-cookie" not in resp.headers
    token = make_widget_token(user, gw.settings.user_token_secret, time.time(), 60)
    resp = await gw.http.post("/pages/widget", data={"wt": token})
    assert resp.status_code == 200 and "set-cookie" not in resp.headers
    assert "&lt;b&gt;escaped&lt;/b&gt;" in resp.text
    frame = re.search(r'<meta name="sentinel-session" content="([^"]+)">', resp.text).group(1)
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', resp.text).group(1)
    assert not gw.http.cookies  # nothing ambient

    read = f"/pages/inbox/{msg.id}/read"
    assert (await gw.http.post(read, headers={"X-CSRF-Token": csrf})).status_code == 401  # no session
    resp = await gw.http.post(read, headers={"X-Sentinel-Session": frame, "X-CSRF-Token": "wrong"})
    assert resp.status_code == 403 and inbox(gw.engine, user)[1] == 1
    resp = await gw.http.post(
        read, headers={"X-Sentinel-Session": frame, "X-CSRF-Token": csrf, "Accept": "application/json"}
    )
    assert resp.status_code == 200 and inbox(gw.engine, user)[1] == 0
    assert (await gw.http.get("/pages/records", params={"session": frame})).status_code == 401
    assert (await gw.http.get("/pages/records", headers={"X-Sentinel-Session": frame})).status_code == 200

    resp = await gw.http.post("/pages/widget/token")
    assert resp.status_code == 401
    resp = await gw.http.post("/pages/widget/token", headers=gw.user(user))
    assert resp.status_code == 200 and resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert verify_widget_token(body["token"], gw.settings.user_token_secret, time.time())[0] == user
    assert 0 < body["expires_at"] - time.time() <= 300
    resp = await gw.http.post("/pages/widget/token", headers=gw.key("ops"))  # staff key: not a user
    assert resp.status_code == 401


# --------------------------------------------------------------------------- in Chromium


@asynccontextmanager
async def two_site_chromium():
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-proxy-server",
                "--host-resolver-rules=MAP host-a.test 127.0.0.1, MAP host-b.test 127.0.0.1",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


def shop_on_another_site(site: dict):
    """The platform's site: ``/`` embeds the widget with a widget token its server makes for
    its signed-in user; ``/plain`` embeds it without one."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    def page(token: str | None) -> HTMLResponse:
        g = site["gateway"]
        extra = f' data-token="{token}"' if token else ""
        html = (
            f"<!doctype html><html><head><title>Shop</title></head><body><header><b>My shop</b> "
            f'<script src="{g}/pages/static/widget.js" data-sentinel="{g}"{extra} async></script>'
            f"</header><p>Welcome.</p></body></html>"
        )
        csp = f"default-src 'self'; script-src {g}; frame-src {g}"
        return HTMLResponse(html, headers={"Content-Security-Policy": csp})

    async def home(request):
        return page(make_widget_token(site["user"], site["secret"], time.time(), 120))

    async def plain(request):
        return page(None)

    return Starlette(routes=[Route("/", home), Route("/plain", plain)])


pytestmark_browser = [
    pytest.mark.skipif(async_playwright is None, reason="playwright is not installed"),
    pytest.mark.skipif(not CHROMIUM, reason="no Chromium found (apt-get install chromium)"),
]


@pytestmark_browser[0]
@pytestmark_browser[1]
async def test_widget_works_in_a_frame_on_another_site(ts_env, tmp_path, smtp_server, unique_id):
    # R21, R22: host-a.test embeds the gateway of host-b.test. The Lax cookie never reaches
    # the frame (signed-out bell even though the browser is signed in on host-b); with the
    # widget token the red dot lights up live, the panel opens, mark read clears it.
    user = f"u-{unique_id}"
    channel = ScriptedChannel()
    site: dict = {"user": user}
    async with serve(shop_on_another_site(site)) as shop_local:
        shop = shop_local.replace("127.0.0.1", "host-a.test")
        settings = make_settings(tmp_path, smtp_server.port, pages_frame_ancestors=[shop])
        site["secret"] = settings.user_token_secret
        engine = engine_for(settings.database_url)
        async with served(ts_env, settings, channel) as (sentinel, local), two_site_chromium() as browser:
            url = local.replace("127.0.0.1", "host-b.test")
            site["gateway"] = url
            handle = await sentinel.start_withdrawal(make_request(unique_id, user_id=user))
            context = await browser.new_context(viewport=DESKTOP, locale="en-US")
            page = await context.new_page()
            complaints = watch_csp(page)
            token = make_user_token(user, settings.user_token_secret, time.time(), 600)
            await sign_in(page, url, token, "/pages/records")  # a session cookie on host-b.test

            await page.goto(shop + "/plain")
            widget = page.frame_locator("iframe.sentinel-widget-frame")
            await expect(widget.locator("a#bell")).to_be_visible()  # signed out: the cookie stayed home
            await expect(widget.locator("#dot")).to_have_count(0)

            await page.goto(shop + "/")
            frame_el = page.locator("iframe.sentinel-widget-frame")
            assert (await frame_el.get_attribute("src")).startswith(url + "/pages/widget#wt=wt1.")
            await expect(widget.locator("button#bell")).to_be_visible()
            await expect(widget.locator("#dot")).to_be_hidden()
            frame = page.frame(url=re.compile(r"/pages/widget"))
            assert "#wt=" not in frame.url  # the token left the frame's address at once

            await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "AC04", "evt-1"))
            await expect(widget.locator("#dot")).to_have_text("1", timeout=SHOWN_WITHIN_MS)
            await widget.locator("#bell").click()
            await expect(widget.locator("#inbox-list li.unread")).to_have_count(1)
            await expect(frame_el).to_have_css("width", "360px")
            if os.environ.get("SENTINEL_SCREENSHOTS_DIR"):  # docs/screenshots (docs/pages.md)
                shot = Path(os.environ["SENTINEL_SCREENSHOTS_DIR"]) / "widget-other-site-en-US-desktop.png"
                await page.screenshot(path=str(shot))
            await widget.locator("#inbox-list li.unread button").click()
            await expect(widget.locator("#dot")).to_be_hidden()
            assert inbox(engine, user)[1] == 0

            async def receipt():
                view = await sentinel.status(unique_id)
                [notice] = [n for n in view.notices if n.stage == Stage.DETECTED]
                assert notice.read_at is not None

            await eventually(receipt, 20)
            assert complaints == []
            await context.close()
