"""The pages in a real browser (issue #13): Debian's Chromium driven by Playwright, against
the gateway served by uvicorn, with the real workflow and worker on the time-skipping
server. Skipped, with the reason, when Chromium or Playwright is missing (.ci/run installs
both on a CI machine; docs/pages.md).

Set SENTINEL_SCREENSHOTS_DIR to keep the screenshots (zh-CN and en-US, phone 390x844 and
desktop 1280x800) that test_screenshots takes: that is how docs/screenshots/ is made.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.page_progress import page_for_link
from runtime.client import SentinelClient
from sentinel.contracts import ProgressUpdate
from sentinel.links import make_link
from sentinel.taxonomy import ExceptionCategory, Severity, Stage
from sentinel.taxonomy import WithdrawalStatus as S
from sentinel.user_tokens import make_user_token
from store.db import engine_for
from store.inbox import add_inbox_message, inbox
from store.tables import InboxMessage
from store.withdrawals import record_withdrawal, update_progress
from tests.support.local_server import serve
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import eventually, make_request, make_settings, running

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None

CHROMIUM = os.environ.get("SENTINEL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(
        async_playwright is None, reason="playwright is not installed (pip install -e '.[test]')"
    ),
    pytest.mark.skipif(
        not CHROMIUM, reason="no Chromium found (apt-get install chromium, or set SENTINEL_CHROMIUM)"
    ),
]
#: how long a page may take to show what the server pushed: generous for a loaded 2-core
#: machine (the stream checks every 1.5 s; the worker's projection write comes first)
SHOWN_WITHIN_MS = 30_000
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@asynccontextmanager
async def chromium():
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def served(ts_env, settings, channel):
    """Worker + gateway on a real uvicorn; yields (client, base URL)."""
    async with running(ts_env, settings, channel) as sentinel:
        async with serve(create_app(settings, client=sentinel)) as url:
            yield sentinel, url


def watch_csp(page) -> list[str]:
    """Every Content-Security-Policy complaint the page logs (there must be none)."""
    complaints: list[str] = []
    page.on(
        "console", lambda msg: complaints.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    return complaints


async def sign_in(page, url: str, token: str, next_page: str) -> None:
    await page.goto(f"{url}/pages/signin?next={next_page}")
    await page.fill('input[name="token"]', token)
    await page.click("button.primary")
    await page.wait_for_url(f"{url}{next_page}")


async def test_delay_notice_link_shows_the_delay_then_arrival_without_reload(
    ts_env, tmp_path, smtp_server, unique_id
):
    # R1, R16, R20: the link of the delay notice opens the progress page; when the bank pays,
    # the page turns to "arrived" by itself (server-sent events), no reload; no CSP complaint.
    user = f"u-{unique_id}"
    channel = ScriptedChannel(queries=[("PROCESSING", None)])
    settings = make_settings(tmp_path, smtp_server.port)
    engine = engine_for(settings.database_url)
    async with served(ts_env, settings, channel) as (sentinel, url), chromium() as browser:
        handle = await sentinel.start_withdrawal(make_request(unique_id, user_id=user))
        await ts_env.sleep(timedelta(minutes=40))  # past the 10 min threshold and the grace

        async def delay_notice():
            [msg] = [m for m in inbox(engine, user)[0] if m.stage == Stage.DELAYED.value]
            assert msg.link
            return msg

        notice = await eventually(delay_notice, 20)
        assert notice.link.startswith(settings.app_base_url + "/withdrawals/track?")
        page = await browser.new_page(viewport=PHONE, locale="en-US")
        complaints = watch_csp(page)
        resp = await page.goto(url + page_for_link(notice.link))
        assert resp.status == 200 and "script-src 'self'" in resp.headers["content-security-policy"]
        await expect(page.locator("#status-chip")).to_have_attribute("data-status", "DELAYED")
        await expect(page.locator("#headline")).to_have_text("Your withdrawal is delayed")
        await expect(page.locator(".step-warn .step-name")).to_have_text("With the bank")
        await expect(page.locator("a.support-call")).to_be_visible()
        await page.evaluate("window.sameDocument = true")

        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-ok"))
        await expect(page.locator("#status-chip")).to_have_attribute(
            "data-status", "SUCCEEDED", timeout=SHOWN_WITHIN_MS
        )
        await expect(page.locator("#headline")).to_have_text("Your money has arrived")
        await expect(page.locator("#money")).to_have_text("In your card ending 1234")
        assert await page.evaluate("window.sameDocument === true")  # updated in place, not reloaded

        tampered = url + page_for_link(notice.link).replace("sig=", "sig=X")
        resp = await page.goto(tampered)
        assert resp.status == 400
        await expect(page.locator("h1")).to_have_text("This link cannot be opened")
        await expect(page.locator("a.btn", has_text="Go to My withdrawals")).to_be_visible()
        assert complaints == []


async def test_failed_withdrawal_red_dot_pop_up_and_read_receipt(ts_env, tmp_path, smtp_server, unique_id):
    # R2, R21, R22: with the inbox open, a failure's HIGH notice lights the red dot and pops up
    # without a reload; reading it marks the row read and the workflow gets the read receipt
    # (its escalation stops). The user's session gets 403 on the operations console.
    user = f"u-{unique_id}"
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    engine = engine_for(settings.database_url)
    async with served(ts_env, settings, channel) as (sentinel, url), chromium() as browser:
        handle = await sentinel.start_withdrawal(make_request(unique_id, user_id=user))
        page = await browser.new_page(viewport=PHONE, locale="en-US")
        complaints = watch_csp(page)
        token = make_user_token(user, settings.user_token_secret, time.time(), 600)
        await sign_in(page, url, token, "/pages/inbox")
        await expect(page.locator("#inbox-empty")).to_be_visible()
        await expect(page.locator("#dot")).to_be_hidden()

        await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "AC04", "evt-1"))
        await expect(page.locator("#dot")).to_have_text("1", timeout=SHOWN_WITHIN_MS)
        await expect(page.locator("#popup")).to_be_visible()
        await expect(page.locator("#popup-title")).not_to_be_empty()
        await expect(page.locator("#inbox-list li.unread")).to_have_count(1)
        [msg], unread = inbox(engine, user)[0], inbox(engine, user)[1]
        assert unread == 1 and msg.severity == "HIGH"

        await page.click("#popup-read")
        await expect(page.locator("#popup")).to_be_hidden()
        await expect(page.locator("#dot")).to_be_hidden()
        await expect(page.locator("#inbox-list li.unread")).to_have_count(0)
        assert inbox(engine, user)[1] == 0

        async def receipt():
            view = await sentinel.status(unique_id)
            [notice] = [n for n in view.notices if n.stage == Stage.DETECTED]
            assert notice.read_at is not None and notice.escalate_at is None
            assert "DETECTED notice read via inbox" in [e.what for e in view.timeline]

        await eventually(receipt, 20)
        resp = await page.goto(url + "/pages/ops")
        assert resp.status == 403
        await expect(page.locator("h1")).to_have_text("Not available")
        assert complaints == []


def shop_app(gateway: dict[str, str]):
    """A platform's own site on another port of 127.0.0.1: a page with a strict CSP of its
    own that embeds the inbox widget with the one script tag of docs/pages.md."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def home(request):
        g = gateway["url"]
        html = (
            f"<!doctype html><html><head><title>Shop</title></head><body><header><b>My shop</b> "
            f'<script src="{g}/pages/static/widget.js" data-sentinel="{g}" async></script></header>'
            f"<p>Welcome.</p></body></html>"
        )
        return HTMLResponse(
            html, headers={"Content-Security-Policy": f"default-src 'self'; script-src {g}; frame-src {g}"}
        )

    return Starlette(routes=[Route("/", home)])


async def test_widget_on_a_platform_page_shows_the_red_dot_and_marks_read(
    ts_env, tmp_path, smtp_server, unique_id
):
    # R2, R21, R22: a site listed in SENTINEL_PAGES_FRAME_ANCESTORS embeds the widget with one
    # script tag; a failure's notice lights the bell's red dot live (the inbox stream), the panel
    # lists it, "Mark read" clears the dot and the row; no CSP complaint on the host or the frame.
    user = f"u-{unique_id}"
    channel = ScriptedChannel()
    gateway: dict[str, str] = {}
    async with serve(shop_app(gateway)) as shop:
        settings = make_settings(tmp_path, smtp_server.port, pages_frame_ancestors=[shop])
        engine = engine_for(settings.database_url)
        async with served(ts_env, settings, channel) as (sentinel, url), chromium() as browser:
            gateway["url"] = url
            handle = await sentinel.start_withdrawal(make_request(unique_id, user_id=user))
            page = await browser.new_page(viewport=DESKTOP, locale="en-US")
            complaints = watch_csp(page)
            token = make_user_token(user, settings.user_token_secret, time.time(), 600)
            await sign_in(page, url, token, "/pages/records")  # the platform's app signs its user in
            await page.goto(shop + "/")
            frame_el = page.locator("iframe.sentinel-widget-frame")
            await expect(frame_el).to_have_attribute("src", url + "/pages/widget")
            widget = page.frame_locator("iframe.sentinel-widget-frame")
            await expect(widget.locator("#bell")).to_be_visible()
            await expect(widget.locator("#dot")).to_be_hidden()

            await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "AC04", "evt-1"))
            await expect(widget.locator("#dot")).to_have_text("1", timeout=SHOWN_WITHIN_MS)
            assert (await frame_el.bounding_box())["width"] == 48
            await widget.locator("#bell").click()
            await expect(widget.locator("#widget-panel")).to_be_visible()
            await expect(widget.locator("#inbox-list li.unread")).to_have_count(1)
            await expect(frame_el).to_have_css("width", "360px")  # widget.js sized the frame as it asked
            await widget.locator("#inbox-list li.unread button").click()
            await expect(widget.locator("#dot")).to_be_hidden()
            await expect(widget.locator("#inbox-list li.unread")).to_have_count(0)
            assert inbox(engine, user)[1] == 0

            async def receipt():
                view = await sentinel.status(unique_id)
                [notice] = [n for n in view.notices if n.stage == Stage.DETECTED]
                assert notice.read_at is not None

            await eventually(receipt, 20)
            assert complaints == []


# --------------------------------------------------------------------------- screenshots


def _story(engine, settings, user: str, unique_id: str, locale: str) -> dict[str, str]:
    """Withdrawals of one user in the projection (the workflows are gone: the pages read the
    projection) and an unread HIGH notice; returns the progress paths to show."""
    now = datetime.now(UTC)
    paths = {}
    for n, (status, category, code, age) in enumerate(
        (
            (S.DELAYED, ExceptionCategory.BANK_DELAY, None, 0),
            (S.FAILED, ExceptionCategory.ACCOUNT_INFO_ERROR, "AC04", 1),
            (S.SUCCEEDED, None, None, 5),
        )
    ):
        wid = f"{unique_id}{n}"
        record_withdrawal(
            engine,
            make_request(
                wid,
                user_id=user,
                locale=locale,
                amount=f"{1250 + n * 500}.00",
                created_at=now - timedelta(days=age),
            ),
            "SUBMITTED",
        )
        update_progress(
            engine,
            ProgressUpdate(
                withdrawal_id=wid,
                status=status,
                category=category,
                reason_code=code,
                severity=Severity.HIGH,
                at=now,
            ),
        )
        link = make_link(
            settings.app_base_url,
            "track",
            wid,
            user,
            settings.link_secret.get_secret_value(),
            int(time.time()),
            3600,
        )
        paths[status.value] = page_for_link(link)
    failed = f"{unique_id}1"
    words = {
        "en-US": (
            "Withdrawal failed",
            f"Withdrawal {failed} to the card ending 1234 failed: the account is "
            "closed. Your money is back in your balance.",
        ),
        "zh-CN": ("提现失败", f"提现 {failed} 至尾号 1234 的卡失败：账户已注销。资金已退回您的余额。"),
    }[locale]
    add_inbox_message(
        engine,
        InboxMessage(
            key=f"{failed}/DETECTED/1",
            user_id=user,
            withdrawal_id=failed,
            stage="DETECTED",
            severity="HIGH",
            locale=locale,
            title=words[0],
            body=words[1],
            link=make_link(
                settings.app_base_url,
                "track",
                failed,
                user,
                settings.link_secret.get_secret_value(),
                int(time.time()),
                3600,
            ),
        ),
    )
    return paths


async def test_screenshots_in_both_languages_and_sizes(ts_env, tmp_path, unique_id):
    # R16, R20, R21: every page renders in zh-CN and en-US, on a phone and a desktop, with
    # the CJK characters in a real font and no CSP complaint.
    settings = make_settings(tmp_path, 9)
    engine = engine_for(settings.database_url)
    keep = os.environ.get("SENTINEL_SCREENSHOTS_DIR")
    out = Path(keep) if keep else tmp_path / "shots"
    out.mkdir(parents=True, exist_ok=True)
    app = create_app(settings, client=SentinelClient(ts_env.client, "tq-no-worker"))
    async with serve(app) as url, chromium() as browser:
        for locale in ("en-US", "zh-CN"):
            user = f"u-{unique_id}-{locale[:2]}"
            paths = _story(engine, settings, user, f"{unique_id}{locale[:2]}", locale)
            token = make_user_token(user, settings.user_token_secret, time.time(), 600)
            for size_name, size in (("phone", PHONE), ("desktop", DESKTOP)):
                context = await browser.new_context(viewport=size, locale=locale)
                page = await context.new_page()
                complaints = watch_csp(page)
                await page.goto(url + paths["DELAYED"])
                await expect(page.locator("#status-chip")).to_have_attribute("data-status", "DELAYED")
                await page.screenshot(
                    path=str(out / f"progress-delayed-{locale}-{size_name}.png"), full_page=True
                )
                await page.goto(url + paths["FAILED"])
                await expect(page.locator("#next-step")).to_have_attribute("data-action", "fix_card")
                await page.screenshot(
                    path=str(out / f"progress-failed-{locale}-{size_name}.png"), full_page=True
                )
                await sign_in(page, url, token, "/pages/inbox")  # the pop-up shows once per tab, on any page
                await expect(page.locator("#popup")).to_be_visible(timeout=SHOWN_WITHIN_MS)
                await expect(page.locator("#dot")).to_have_text("1")
                await page.screenshot(path=str(out / f"inbox-{locale}-{size_name}.png"))
                await page.click("#popup-close")
                await page.goto(url + "/pages/records")
                await expect(page.locator("#records li")).to_have_count(3)
                await expect(page.locator("#dot")).to_have_text("1")
                await expect(page.locator("#popup")).to_be_hidden()
                await page.screenshot(path=str(out / f"records-{locale}-{size_name}.png"), full_page=True)
                assert complaints == []
                await context.close()
    shots = sorted(p.name for p in out.glob("*.png"))
    assert len(shots) >= 16 and all((out / s).stat().st_size > 5000 for s in shots)
