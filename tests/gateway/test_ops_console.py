"""The operations console over HTTP (issue #13 item 5; R26, R29, R34): operator accounts
and role checks, stuck counts each linking to the Temporal UI's list with the matching
search-attribute query, per-provider delivery health (delivery log + the workers' breaker
snapshots), unmapped codes, and parked callbacks re-delivered from the page (CSRF, audited
with the operator's name). Also the language switch (item 3) and the bank's name on the
progress page (item 4). The browser tests: tests/gateway/test_ops_console_browser.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import Session

from gateway.routes_console import temporal_list_url
from gateway.sessions import COOKIE
from notifiers.base import DeliveryError, Notifier
from notifiers.registry import BreakerSnapshots
from notifiers.routing import ProviderChain
from runtime.client import SentinelClient
from sentinel.dev_credentials import DEV_REVIEWER_PASSWORDS
from sentinel.models import NoticeRequest
from sentinel.taxonomy import ExceptionCategory, Severity, Stage, WithdrawalStatus
from sentinel.taxonomy import WithdrawalStatus as S
from store.ops_health import breakers, delivery_health, save_breaker
from store.repo import audit_for, get_parked, park_callback
from store.tables import NoticeDelivery
from tests.gateway.test_pages import link_path, sign_in, tracked
from tests.support.gateway_harness import gateway, offline_gateway, whats
from tests.support.workflow_harness import eventually, make_request, make_settings


@pytest.fixture()
async def gw(ts_env, tmp_path):
    settings = make_settings(tmp_path, 9)
    async with offline_gateway(settings, SentinelClient(ts_env.client, "tq-no-worker")) as g:
        yield g


async def account_sign_in(gw, name: str, path: str = "/pages/ops/signin", password: str | None = None):
    form = await gw.http.get(path)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    password = DEV_REVIEWER_PASSWORDS[name] if password is None else password
    return await gw.http.post(path, data={"csrf": csrf, "name": name, "password": password})


def page_csrf(html: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)


# --------------------------------------------------------------------------- roles


async def test_operator_accounts_and_role_checks_on_both_consoles(gw, unique_id):
    # R22, R29: an operator account opens the operations console, never the reviewer console;
    # a reviewer never opens the operations console; a supervisor opens both; a user neither.
    resp = await account_sign_in(gw, "dave")
    assert resp.status_code == 303 and resp.headers["location"] == "/pages/ops"
    page = await gw.http.get("/pages/ops")
    assert page.status_code == 200 and 'id="who">dave · operator<' in page.text
    assert 'href="/pages/review"' not in page.text  # no reviewer link for an operator
    assert (await gw.http.get("/pages/review")).status_code == 403
    assert (await gw.http.get("/pages/records")).status_code == 403
    resp = await gw.http.post("/pages/signout", data={"csrf": page_csrf(page.text)})
    assert resp.status_code == 303 and resp.headers["location"] == "/pages/ops/signin?out=1"

    gw.http.cookies.clear()  # the reviewer console's sign-in sends an operator on to the ops console
    resp = await account_sign_in(gw, "dave", "/pages/review/signin")
    assert resp.status_code == 303 and resp.headers["location"] == "/pages/ops"

    gw.http.cookies.clear()
    resp = await account_sign_in(gw, "alice")
    assert resp.status_code == 303 and resp.headers["location"] == "/pages/review"
    assert (await gw.http.get("/pages/ops")).status_code == 403
    assert (await gw.http.post("/pages/ops/parked/1/redeliver", data={"csrf": "x"})).status_code == 403

    gw.http.cookies.clear()
    assert (await account_sign_in(gw, "carol")).headers["location"] == "/pages/ops"
    assert (await gw.http.get("/pages/ops")).status_code == 200
    assert (await gw.http.get("/pages/review")).status_code == 200

    gw.http.cookies.clear()
    assert (await sign_in(gw, f"u-{unique_id}")).status_code == 303
    for console in ("/pages/ops", "/pages/review"):
        assert (await gw.http.get(console)).status_code == 403, console

    gw.http.cookies.clear()
    resp = await account_sign_in(gw, "dave", password="dev-alice-password")
    assert resp.status_code == 401 and COOKIE not in resp.cookies
    assert (await gw.http.get("/pages/ops")).status_code == 401


# --------------------------------------------------------------------------- counts


def test_temporal_list_url_is_the_search_attribute_query():
    # R34: the exact URL of the Temporal UI's list, open workflows with the attribute's value.
    url = temporal_list_url("http://127.0.0.1:8233/", "default", "BankCode", "ICBC")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "http",
        "127.0.0.1:8233",
        "/namespaces/default/workflows",
    )
    assert parse_qs(parts.query) == {"query": ['BankCode="ICBC" AND ExecutionStatus="Running"']}


async def test_stuck_counts_by_status_category_bank_and_channel_link_to_temporal(gw, unique_id):
    # R34: open withdrawals only, counted per dimension, each count a link to its filter.
    for n, (status, category, bank) in enumerate(
        (
            (S.DELAYED, ExceptionCategory.BANK_DELAY, "ICBC"),
            (S.DELAYED, ExceptionCategory.BANK_DELAY, "ICBC"),
            (S.MANUAL_CHECK, ExceptionCategory.PLATFORM_ERROR, "CCB"),
            (S.SUCCEEDED, None, "ICBC"),  # final: not stuck
        )
    ):
        tracked(gw, f"{unique_id}{n}", f"u-{unique_id}", status, category, bank_code=bank)
    assert (await account_sign_in(gw, "dave")).status_code == 303
    page = (await gw.http.get("/pages/ops")).text
    ui = gw.settings.temporal_ui_url()

    def count_link(dimension: str, value: str) -> tuple[str, str]:
        table = re.search(rf'<table data-dimension="{dimension}">(.*?)</table>', page, re.S).group(1)
        row = re.search(rf'<tr data-value="{value}">(.*?)</tr>', table, re.S).group(1)
        href, n = re.search(r'<a href="([^"]+)" rel="noopener" class="count-link">(\d+)</a>', row).groups()
        return n, href.replace("&amp;", "&")

    n, href = count_link("bank_code", "ICBC")
    assert n == "2" and href == temporal_list_url(ui, "default", "BankCode", "ICBC")
    assert count_link("status", "DELAYED") == (
        "2",
        temporal_list_url(ui, "default", "WithdrawalStatus", "DELAYED"),
    )
    assert count_link("status", "MANUAL_CHECK")[0] == "1"
    assert count_link("category", "BANK_DELAY")[1].endswith(
        "query=ExceptionCategory%3D%22BANK_DELAY%22%20AND%20ExecutionStatus%3D%22Running%22"
    )
    assert count_link("channel", "generic")[0] == "3"
    assert 'data-value="SUCCEEDED"' not in page


# --------------------------------------------------------------------------- delivery health


class Flaky(Notifier):
    channel = "sms"

    def __init__(self, name: str, fail: bool):
        self.provider, self.fail = name, fail

    def can_reach(self, notice) -> bool:
        return True

    async def send(self, notice, rendered) -> str:
        if self.fail:
            raise DeliveryError("HTTP 503", retryable=True)
        return "m1"

    async def find_sent(self, notice):
        return None


def test_breaker_snapshots_read_back_open_then_half_open_then_closed(tmp_path):
    # R34: a snapshot the console can read; an open breaker past its cool-down is a trial.
    from store.db import engine_for

    engine = engine_for(f"sqlite:///{tmp_path}/h.db")
    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    save_breaker(engine, "sms", "aliyun", "w1:1", "open", 5, t0, 30.0, now=t0)
    save_breaker(engine, "sms", "aliyun", "w2:2", "closed", 0, None, 30.0, now=t0)
    save_breaker(engine, "sms", "tencent", "w1:1", "closed", 0, None, 30.0, now=t0)
    assert breakers(engine, t0 + timedelta(seconds=10)) == {
        ("sms", "aliyun"): ("open", ["w1:1"]),
        ("sms", "tencent"): ("closed", []),
    }
    assert breakers(engine, t0 + timedelta(seconds=31))[("sms", "aliyun")] == ("half_open", ["w1:1"])
    save_breaker(engine, "sms", "aliyun", "w1:1", "closed", 0, None, 30.0, now=t0)  # upsert, one row
    assert breakers(engine, t0)[("sms", "aliyun")] == ("closed", [])


async def test_chain_reports_breaker_changes_to_the_snapshot_table(tmp_path, unique_id):
    # R34: the worker's breaker (in memory) is written when it opens and when it closes.
    from store.db import engine_for

    engine = engine_for(f"sqlite:///{tmp_path}/b.db")
    bad, good = Flaky("aliyun", True), Flaky("tencent", False)
    chain = ProviderChain(
        "sms",
        [bad, good],
        [("", ["aliyun", "tencent"])],
        failure_threshold=2,
        on_breaker=BreakerSnapshots(engine),
    )
    notice = _notice(make_request(unique_id))
    assert (await chain.send(notice, None)).startswith("tencent:")
    assert breakers(engine) == {}  # one failure: still closed, nothing to report
    await chain.send(notice, None)

    async def opened():
        assert breakers(engine).get(("sms", "aliyun"), ("none",))[0] == "open"

    await eventually(opened, 5)
    bad.fail = False
    chain.breakers["aliyun"].opened_at -= 60  # past the cool-down: the next send is the trial
    await chain.send(notice, None)

    async def closed():
        assert breakers(engine).get(("sms", "aliyun")) == ("closed", [])

    await eventually(closed, 5)


def _notice(req) -> NoticeRequest:
    return NoticeRequest(
        key=f"{req.withdrawal_id}/DETECTED/0/sms",
        channel="sms",
        stage=Stage.DETECTED,
        severity=Severity.HIGH,
        status=S.FAILED,
        withdrawal=req,
    )


async def test_delivery_health_per_provider_and_breaker_on_the_console(gw, unique_id):
    # R34: sent / failed / given up per provider over the last hour, and the breaker's state.
    now = datetime.now(UTC)
    rows = [
        ("sms", "aliyun|tencent", "sent", "aliyun:m1", now),
        ("sms", "aliyun|tencent", "delivered", "tencent:m2", now),
        ("sms", "aliyun|tencent", "failed", None, now),
        ("sms", "aliyun|tencent", "given_up", None, now),
        ("email", "smtp", "sent", "<x@y>", now),
        ("email", "smtp", "failed", None, now - timedelta(hours=2)),  # outside the window
        ("email", "smtp", "queued", None, now),  # not an outcome
    ]
    with Session(gw.engine) as session:
        for n, (channel, provider, status, message_id, at) in enumerate(rows):
            session.add(
                NoticeDelivery(
                    key=f"{unique_id}/DETECTED/{n}/{channel}",
                    withdrawal_id=unique_id,
                    user_id="u1",
                    channel=channel,
                    provider=provider,
                    stage="DETECTED",
                    severity="HIGH",
                    status=status,
                    provider_message_id=message_id,
                    updated_at=at,
                )
            )
        session.commit()
    save_breaker(gw.engine, "sms", "aliyun", "host:7", "open", 5, now, 3600.0)
    health = {(h.channel, h.provider): h for h in delivery_health(gw.engine, now - timedelta(hours=1), now)}
    assert (health["sms", "aliyun"].sent, health["sms", "aliyun"].breaker) == (1, "open")
    assert (health["sms", "tencent"].sent, health["sms", "tencent"].breaker) == (1, "closed")
    chain = health["sms", "aliyun|tencent"]
    assert (chain.sent, chain.failed, chain.given_up) == (0, 1, 1)
    assert (health["email", "smtp"].sent, health["email", "smtp"].failed) == (1, 0)

    assert (await account_sign_in(gw, "dave")).status_code == 303
    page = (await gw.http.get("/pages/ops")).text
    row = re.search(r'<tr data-provider="sms/aliyun">(.*?)</tr>', page, re.S).group(1)
    assert 'data-breaker="open"' in row and "OPEN" in row and 'title="host:7"' in row
    row = re.search(r'<tr data-provider="sms/aliyun\|tencent">(.*?)</tr>', page, re.S).group(1)
    assert re.findall(r"<td>(\d+)</td>", row) == ["0", "1", "1", "0"]


# --------------------------------------------------------------------------- parked callbacks


async def test_parked_callback_refused_redelivery_is_shown_and_needs_csrf(gw, unique_id):
    # R26, R22: the button posts with the session's CSRF token; a withdrawal nobody tracks
    # keeps its callback parked, and the page says so.
    obs = gw.app.state.channels["generic"].observe(
        unique_id, "SUCCEEDED", None, "callback", datetime.now(UTC), event_id="evt-x"
    )
    assert park_callback(gw.engine, "generic", "evt-x", unique_id, obs.model_dump_json())
    assert (await account_sign_in(gw, "dave")).status_code == 303
    page = await gw.http.get("/pages/ops")
    [parked_id] = re.findall(
        rf'<tr data-parked="(\d+)"><td class="mono">generic</td><td class="mono">{unique_id}<', page.text
    )
    url = f"/pages/ops/parked/{parked_id}/redeliver"
    assert (await gw.http.post(url, data={"csrf": "wrong"})).status_code == 403
    assert (await gw.http.post(url)).status_code == 403
    resp = await gw.http.post(url, data={"csrf": page_csrf(page.text)})
    assert (
        resp.status_code == 303
        and resp.headers["location"] == f"/pages/ops?done=not_tracked&id={parked_id}#parked"
    )
    page = await gw.http.get(resp.headers["location"])
    assert 'data-done="not_tracked"' in page.text and "stays parked" in page.text
    assert get_parked(gw.engine, int(parked_id)).outcome is None
    resp = await gw.http.post("/pages/ops/parked/99999999/redeliver", data={"csrf": page_csrf(page.text)})
    assert resp.headers["location"].startswith("/pages/ops?done=not_found")


async def test_operator_redelivers_a_parked_callback_and_the_audit_names_them(
    ts_env,
    tmp_path,
    smtp_server,
    unique_id,
):
    # R26, R29: a callback parked in the gap before tracking started; the operator presses
    # "Re-deliver"; the workflow applies it; the audit trail says dave did it.
    settings = make_settings(tmp_path, smtp_server.port)
    async with gateway(ts_env, settings) as gw:
        req = make_request(unique_id, user_id=f"u-{unique_id}")
        assert (await gw.start(req)).status_code == 202
        await gw.wait_for(unique_id, lambda v: "channel: ACCEPTED" in whats(v))
        obs = gw.app.state.channels["generic"].observe(
            unique_id, "FAILED", "AC04", "callback", datetime.now(UTC), event_id="evt-gap"
        )
        assert park_callback(gw.engine, "generic", "evt-gap", unique_id, obs.model_dump_json())
        assert (await account_sign_in(gw, "dave")).status_code == 303
        page = await gw.http.get("/pages/ops")
        [parked_id] = re.findall(
            rf'<tr data-parked="(\d+)"><td class="mono">generic</td><td class="mono">{unique_id}<', page.text
        )
        resp = await gw.http.post(
            f"/pages/ops/parked/{parked_id}/redeliver", data={"csrf": page_csrf(page.text)}
        )
        assert resp.headers["location"] == f"/pages/ops?done=redelivered&id={parked_id}#parked"
        view = await gw.wait_for(unique_id, lambda v: v.status == WithdrawalStatus.FAILED)
        assert view.reason_code == "AC04"
        assert get_parked(gw.engine, int(parked_id)).outcome == "redelivered"
        [audit] = [a for a in audit_for(gw.engine, unique_id) if a.action == "redeliver_callback"]
        assert (audit.actor, audit.role) == ("dave", "operator") and "evt-gap" in audit.detail
        page = await gw.http.get("/pages/ops")
        assert f'data-parked="{parked_id}"' not in page.text  # no longer needs attention


# --------------------------------------------------------------------------- language, bank name


async def test_language_switch_sets_a_session_cookie_and_comes_back(gw, unique_id):
    # R20: every page has the switch; the choice wins over the withdrawal's own language and
    # the browser's, for the browser session (no expiry), and it returns to the same page.
    wid, user = f"{unique_id}", f"u-{unique_id}"
    tracked(gw, wid, user, S.DELAYED, ExceptionCategory.BANK_DELAY, locale="en-US", bank_code="ICBC")
    path = link_path("track", wid, user)
    page = await gw.http.get(path, headers={"accept-language": "en-US"})
    assert "Industrial and Commercial Bank of China" in page.text and 'data-code="ICBC"' in page.text
    switch = re.search(r'<a href="([^"]+)" hreflang="zh-CN"', page.text).group(1).replace("&amp;", "&")
    assert switch.startswith("/pages/lang/zh-CN?next=")
    resp = await gw.http.get(switch)
    assert resp.status_code == 303 and resp.headers["location"] == path
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("lang=zh-CN;") and "Path=/pages" in cookie and "HttpOnly" in cookie
    assert "expires" not in cookie.lower() and "max-age" not in cookie.lower()  # the session only
    page = await gw.http.get(path, headers={"accept-language": "en-US"})
    assert '<html lang="zh-CN">' in page.text and "中国工商银行" in page.text
    assert 'aria-current="true">中文<' in page.text
    for bad in ("/pages/lang/fr-FR?next=/pages/records", "/pages/lang/en-US?next=https://evil.example/"):
        resp = await gw.http.get(bad)
        assert resp.status_code in (303, 404)
        assert not resp.headers.get("location", "").startswith("https://evil")
    assert (await gw.http.get("/pages/lang/en-US?next=//evil.example")).headers[
        "location"
    ] == "/pages/records"
