"""The language switch in Chromium (issue #13, R20): every page's header has 中文 / English;
the choice holds across the user pages and the consoles for the browser session (a new
session starts from the browser's language again), and the progress page names the bank in
the chosen language (sentinel/banks.yaml), as the notices do."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from gateway.app import create_app
from gateway.page_progress import page_for_link
from runtime.client import SentinelClient
from sentinel.contracts import ProgressUpdate
from sentinel.links import make_link
from sentinel.taxonomy import ExceptionCategory, Severity
from sentinel.taxonomy import WithdrawalStatus as S
from sentinel.user_tokens import make_user_token
from store.db import engine_for
from store.withdrawals import record_withdrawal, update_progress
from tests.gateway.test_pages_browser import PHONE, chromium, sign_in, watch_csp
from tests.gateway.test_pages_browser import pytestmark as browser_marks
from tests.support.local_server import serve
from tests.support.workflow_harness import make_request, make_settings

pytestmark = browser_marks  # skipped, with the reason, where Chromium is missing

try:
    from playwright.async_api import expect
except ImportError:  # pragma: no cover - pytestmark skips
    expect = None


async def test_language_switch_holds_for_the_session_on_user_pages_and_consoles(
    ts_env,
    tmp_path,
    unique_id,
):
    settings = make_settings(tmp_path, 9)
    engine = engine_for(settings.database_url)
    user = f"u-{unique_id}"
    record_withdrawal(
        engine, make_request(unique_id, user_id=user, bank_code="ICBC", locale="en-US"), "SUBMITTED"
    )
    update_progress(
        engine,
        ProgressUpdate(
            withdrawal_id=unique_id,
            status=S.DELAYED,
            category=ExceptionCategory.BANK_DELAY,
            severity=Severity.MEDIUM,
            at=datetime.now(UTC),
        ),
    )
    secret = settings.link_secret.get_secret_value()
    path = page_for_link(
        make_link(settings.app_base_url, "track", unique_id, user, secret, int(time.time()), 3600)
    )
    app = create_app(settings, client=SentinelClient(ts_env.client, "tq-no-worker"))
    async with serve(app) as url, chromium() as browser:
        context = await browser.new_context(viewport=PHONE, locale="en-US")
        page = await context.new_page()
        complaints = watch_csp(page)
        await page.goto(url + path)
        await expect(page.locator("html")).to_have_attribute("lang", "en-US")
        await expect(page.locator("#bank")).to_have_text("Industrial and Commercial Bank of China")
        await expect(page.locator('#lang a[data-lang="en-US"]')).to_have_attribute("aria-current", "true")

        await page.click('#lang a[data-lang="zh-CN"]')  # visible on the phone, in the header
        await page.wait_for_url(url + path)
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        await expect(page.locator("#bank")).to_have_text("中国工商银行")
        await expect(page.locator("#headline")).not_to_have_text("Your withdrawal is delayed")

        token = make_user_token(user, settings.user_token_secret, time.time(), 600)
        await sign_in(page, url, token, "/pages/records")
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        await expect(page.locator("#records")).to_contain_text("中国工商银行")
        await page.goto(url + "/pages/review/signin")
        await expect(page.locator("h1")).to_have_text("审核员登录")
        await page.goto(url + "/pages/ops/signin")
        await expect(page.locator("h1")).to_have_text("运维登录")
        await page.click('#lang a[data-lang="en-US"]')
        await expect(page.locator("h1")).to_have_text("Operations sign-in")
        await page.click('#lang a[data-lang="zh-CN"]')
        await expect(page.locator("h1")).to_have_text("运维登录")
        assert complaints == []
        await context.close()

        fresh = await browser.new_context(viewport=PHONE, locale="en-US")  # a new browser session
        page = await fresh.new_page()
        await page.goto(url + path)
        await expect(page.locator("html")).to_have_attribute("lang", "en-US")  # the choice did not outlive it
        await fresh.close()
