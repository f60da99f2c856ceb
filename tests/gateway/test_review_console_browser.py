"""The reviewer console in a real browser (issue #13 item 4, R15, R22, R29): Debian's
Chromium driven by Playwright against the gateway on uvicorn, with the real workflow and
worker on the time-skipping server (the harness of tests/gateway/test_pages_browser.py). Skipped,
with the reason, when Chromium or Playwright is missing.

Set SENTINEL_SCREENSHOTS_DIR to keep the screenshots of the queue and the case page
(zh-CN and en-US, desktop 1280x800): that is how docs/screenshots/review-*.png are made.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sentinel.contracts import ProgressUpdate
from sentinel.dev_credentials import DEV_REVIEWER_PASSWORDS
from sentinel.taxonomy import ExceptionCategory, Severity
from sentinel.taxonomy import WithdrawalStatus as S
from store.db import engine_for
from store.repo import get_record, record_withdrawal, update_progress
from tests.gateway import test_pages_browser
from tests.gateway.test_pages_browser import DESKTOP, SHOWN_WITHIN_MS, chromium, served, watch_csp
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import eventually, make_request, make_settings

pytestmark = test_pages_browser.pytestmark  # skipped, with the reason, where Chromium is missing

try:
    from playwright.async_api import expect
except ImportError:  # pragma: no cover - pytestmark skips the module
    expect = None

#: above the four-eyes line of config/risk_rules.yaml (CNY 200000): two approvers needed
FOUR_EYES = "250000.00"


async def console_sign_in(page, url: str, name: str) -> None:
    await page.goto(f"{url}/pages/review/signin")
    await page.fill('input[name="name"]', name)
    await page.fill('input[name="password"]', DEV_REVIEWER_PASSWORDS[name])
    await page.click("button.primary")
    await page.wait_for_url(f"{url}/pages/review")


async def approve(page, reason: str) -> None:
    await page.select_option("#decision", "approve")
    await page.fill("#reason", reason)
    await page.click("#decide")


def queue_neighbours(engine, unique_id: str) -> None:
    """Two more cases in the queue (projection only), so that the queue shows its order."""
    now = datetime.now(UTC)
    for n, (bank, minutes, category) in enumerate(
        (("CMB", 50, ExceptionCategory.RISK_HOLD), ("BOC", 20, ExceptionCategory.PLATFORM_ERROR))
    ):
        wid = f"{unique_id}n{n}"
        record_withdrawal(
            engine, make_request(wid, bank_code=bank, amount=f"{61000 + n * 9000}.00"), "SUBMITTED"
        )
        update_progress(
            engine,
            ProgressUpdate(
                withdrawal_id=wid,
                status=S.UNDER_REVIEW if n == 0 else S.MANUAL_CHECK,
                category=category,
                severity=Severity.HIGH,
                needs_review=True,
                at=now - timedelta(minutes=minutes),
            ),
        )


async def test_two_reviewers_approve_a_risk_hold_with_four_eyes(ts_env, tmp_path, smtp_server, unique_id):
    # R15, R22, R29: alice signs in, takes the held case from the queue and approves; her
    # second approval is refused with a plain message (four-eyes); bob gives the second
    # approval and the case shows approved by both, the payout released. No CSP complaint.
    settings = make_settings(tmp_path, smtp_server.port)
    engine = engine_for(settings.database_url)
    keep = os.environ.get("SENTINEL_SCREENSHOTS_DIR")
    out = Path(keep) if keep else tmp_path / "shots"
    out.mkdir(parents=True, exist_ok=True)
    async with served(ts_env, settings, ScriptedChannel()) as (sentinel, url), chromium() as browser:
        await sentinel.start_withdrawal(make_request(unique_id, amount=FOUR_EYES))

        async def held():
            record = get_record(engine, unique_id)
            assert record is not None and record.needs_review and record.status == S.UNDER_REVIEW.value

        await eventually(held, 20)
        queue_neighbours(engine, unique_id)

        alice = await (await browser.new_context(viewport=DESKTOP, locale="en-US")).new_page()
        complaints = watch_csp(alice)
        await console_sign_in(alice, url, "alice")
        row = alice.locator(f'tr[data-wid="{unique_id}"]')
        await expect(row.locator(".assignee")).to_have_text("nobody yet")
        await row.locator("button.take").click()
        await alice.wait_for_url(f"{url}/pages/review/{unique_id}?done=assign")
        await expect(alice.locator("#assignee")).to_have_text("alice")
        await expect(alice.locator("#hits .hit")).to_have_count(1)
        await expect(alice.locator("#hits")).to_contain_text("large_amount")
        await expect(alice.locator("#four-eyes")).to_contain_text("Two different reviewers must approve")

        await approve(alice, "source of funds checked")
        await expect(alice.locator("#done")).to_have_text(
            "Your approval is recorded.", timeout=SHOWN_WITHIN_MS
        )
        await expect(alice.locator("#four-eyes")).to_have_attribute("data-approvals", "alice")
        await expect(alice.locator("#four-eyes")).to_contain_text(
            "First approval by alice. A second approval is needed by someone else."
        )
        await expect(alice.locator("#case-status")).to_have_attribute("data-status", "UNDER_REVIEW")
        await expect(alice.locator("#audit .audit-row")).to_have_count(2)  # assign, approve

        await approve(alice, "approving again")
        await expect(alice.locator("#refused")).to_have_attribute("data-error", "four_eyes")
        await expect(alice.locator("#refused")).to_have_text(
            "You approved this case already. A second approval must come from someone else."
        )
        await expect(alice.locator("#four-eyes")).to_have_attribute("data-approvals", "alice")

        for locale in ("en-US", "zh-CN"):  # the screenshots: the case waits for its second approval
            context = await browser.new_context(viewport=DESKTOP, locale=locale)
            page = await context.new_page()
            complaints += watch_csp(page)
            await console_sign_in(page, url, "carol")
            await expect(page.locator("#queue .case-row")).to_have_count(3)
            await page.screenshot(path=str(out / f"review-queue-{locale}-desktop.png"), full_page=True)
            await page.goto(f"{url}/pages/review/{unique_id}")
            await expect(page.locator("#four-eyes")).to_have_attribute("data-approvals", "alice")
            await page.screenshot(path=str(out / f"review-case-{locale}-desktop.png"), full_page=True)
            await context.close()

        bob = await (await browser.new_context(viewport=DESKTOP, locale="en-US")).new_page()
        complaints += watch_csp(bob)
        await console_sign_in(bob, url, "bob")
        await bob.click(f'tr[data-wid="{unique_id}"] a')
        await bob.wait_for_url(f"{url}/pages/review/{unique_id}")
        await approve(bob, "second pair of eyes: fine")
        await expect(bob.locator("#done")).to_have_text("Your approval is recorded.", timeout=SHOWN_WITHIN_MS)
        await expect(bob.locator("#four-eyes")).to_have_attribute("data-approvals", "alice,bob")
        await expect(bob.locator("#four-eyes")).to_contain_text("Approved by alice and bob.")
        await expect(bob.locator("#case-status")).to_have_attribute("data-status", "PROCESSING")
        await expect(bob.locator("form.decision")).to_have_count(0)  # decided: no more decisions

        view = await sentinel.status(unique_id)
        assert view.approvals == ["alice", "bob"] and view.status == S.PROCESSING
        assert complaints == []
    shots = sorted(out.glob("review-*.png"))
    assert len(shots) == 4 and all(s.stat().st_size > 5000 for s in shots)
