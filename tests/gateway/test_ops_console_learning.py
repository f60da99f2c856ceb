"""The operations console's outage incidents and periodic review reports over HTTP (issue #14
items 3 and 5; R27, R30, R34), and ``GET /v1/ops/incidents``: operators and supervisors only
(anonymous 401, a user's or a reviewer's session 403); the empty states; open incidents
before the recently resolved, with their affected withdrawals, rates against the baseline
and the Temporal UI's list of their bank and channel; the reports newest period first, a
page at a time (bounded), each opening inside the console with its charts served by the
console. The browser test: tests/gateway/test_ops_console_browser.py."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape

from gateway.routes_console import temporal_list_url
from gateway.routes_console_reports import PAGE_SIZE
from sentinel.review_report import charts, headline, render_html
from sentinel.taxonomy import WithdrawalStatus as S
from store.events import report_between
from store.incidents import claim_notice, record_incident, resolve_incident
from store.reports import save_report
from store.tables import OutageIncident
from tests.gateway.test_ops_console import account_sign_in
from tests.gateway.test_pages import assert_safe_page, sign_in, tracked

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
#: a UTC midnight, where the review's periods start (sentinel/review_report.py period)
DAY = datetime(2026, 12, 7, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n"


def incident(
    bank: str, fired: datetime, signals: str = "failure", channel: str = "generic"
) -> OutageIncident:
    return OutageIncident(
        id=f"{bank}-{channel}-{fired:%Y%m%dT%H%M%SZ}",
        bank_code=bank,
        channel=channel,
        fired_at=fired,
        summary=f"{bank} via {channel}: failure 80% vs baseline 1.0% (p=3.2e-11)"
        + ("; delay 46% vs baseline 20.0% (p=4.3e-04)" if "delay" in signals else ""),
        rates=json.dumps(
            [{"signal": "failure", "rate": 0.8, "baseline": 0.01, "p": 3.2e-11}]
            + (
                [{"signal": "delay", "rate": 0.456, "baseline": 0.2, "p": 4.3e-4}]
                if "delay" in signals
                else []
            )
        ),
        signals=signals,
        config_version="test",
    )


def a_report(engine, kind: str, since: datetime, *, with_charts: bool = False) -> int:
    """A report as the review workflow stores it (activities/review.py): the analysis of an
    empty period, its headline, its HTML and (when asked: matplotlib takes a moment) charts."""
    until = since + timedelta(days=1 if kind == "daily" else 7)
    report = report_between(engine, since, until)
    chart_list = charts(report, {}) if with_charts else []
    html = render_html(kind, since, until, report, {}, [], chart_list)
    summary = {"headline": headline(report), "analysis": report}
    return save_report(engine, kind, since, until, summary, html, chart_list)


def table(page: str, name: str) -> str:
    found = re.search(rf'<table data-table="{name}">(.*?)</table>', page, re.S)
    return found.group(1) if found else ""


# --------------------------------------------------------------------------- who


async def test_the_sections_pages_charts_and_api_need_an_operator(gw, unique_id):
    # R22, R29: anonymous -> 401 (sign in); a user's or a reviewer's session -> 403; the API
    # the same with its credentials; an operator and a supervisor get them.
    report_id = a_report(gw.engine, "daily", DAY, with_charts=True)
    pages = ["/pages/ops", "/pages/ops/reports", f"/pages/ops/reports/{report_id}"]
    chart = f"/pages/ops/reports/{report_id}/charts/timing.png"
    for path in [*pages, chart]:
        resp = await gw.http.get(path)
        assert resp.status_code == 401 and "image/png" not in resp.headers["content-type"], path
    assert (await sign_in(gw, f"u-{unique_id}")).status_code == 303
    for path in [*pages, chart]:
        assert (await gw.http.get(path)).status_code == 403, path
    gw.http.cookies.clear()
    assert (await account_sign_in(gw, "alice")).status_code == 303  # a reviewer
    for path in [*pages, chart]:
        assert (await gw.http.get(path)).status_code == 403, path
    for name in ("dave", "carol"):  # operator, supervisor
        gw.http.cookies.clear()
        assert (await account_sign_in(gw, name)).status_code == 303
        for path in pages:
            assert (await gw.http.get(path)).status_code == 200, (name, path)
        png = await gw.http.get(chart)
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content.startswith(PNG)

    gw.http.cookies.clear()
    assert (await gw.http.get("/v1/ops/incidents")).status_code == 401
    assert (
        await gw.http.get("/v1/ops/incidents", headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    for refused in (gw.key("alice"), gw.key("payment-service"), gw.user(f"u-{unique_id}")):
        assert (await gw.http.get("/v1/ops/incidents", headers=refused)).status_code == 403
    for allowed in ("ops", "carol"):
        assert (await gw.http.get("/v1/ops/incidents", headers=gw.key(allowed))).status_code == 200


async def test_empty_states_in_both_languages(gw):
    assert (await account_sign_in(gw, "dave")).status_code == 303
    page = (await gw.http.get("/pages/ops", headers={"accept-language": "en-US"})).text
    assert "No open incident." in page and "No review report yet." in page
    assert table(page, "incidents-open") == "" and table(page, "reports") == ""
    zh = (await gw.http.get("/pages/ops", headers={"accept-language": "zh-CN"})).text
    assert "暂无进行中的故障事件。" in zh and "尚无复盘报告。" in zh and "银行故障事件" in zh
    listed = await gw.http.get("/pages/ops/reports")
    assert "No review report yet." in listed.text and 'id="older"' not in listed.text
    api = (await gw.http.get("/v1/ops/incidents", headers=gw.key("ops"))).json()
    assert api == {"total": 0, "limit": 50, "offset": 0, "items": []}


# --------------------------------------------------------------------------- incidents


async def test_open_incidents_first_then_the_recently_resolved(gw, unique_id):
    # Issue #14 item 3, R34: the open incident (bank, channel, kind, since, its open
    # withdrawals, users told, rates vs baseline, the Temporal UI's list of its bank and
    # channel) above the resolved ones, the latest resolved first; the API in the same order.
    record_incident(gw.engine, incident("ICBC", T0 + timedelta(hours=2), "failure,delay"))
    record_incident(gw.engine, incident("CCB", T0))  # fired first, resolved last
    resolve_incident(gw.engine, incident("CCB", T0).id, T0 + timedelta(hours=6))
    record_incident(gw.engine, incident("ABC", T0 + timedelta(hours=1), "delay"))
    resolve_incident(gw.engine, incident("ABC", T0 + timedelta(hours=1)).id, T0 + timedelta(hours=3))
    user = f"u-{unique_id}"
    tracked(gw, f"{unique_id}a", user, S.PROCESSING, bank_code="ICBC")
    tracked(gw, f"{unique_id}b", user, S.DELAYED, bank_code="ICBC")
    tracked(gw, f"{unique_id}c", user, S.SUCCEEDED, bank_code="ICBC")  # arrived: not affected
    tracked(gw, f"{unique_id}d", user, S.PROCESSING, bank_code="CCB")  # its incident is over
    open_id = incident("ICBC", T0 + timedelta(hours=2)).id
    claim_notice(gw.engine, open_id, user, "heads_up", [f"{unique_id}a", f"{unique_id}b"])

    assert (await account_sign_in(gw, "dave")).status_code == 303
    page = (await gw.http.get("/pages/ops", headers={"accept-language": "en-US"})).text
    assert page.index('id="incidents"') < page.index('data-dimension="status"')  # first on the page
    assert re.findall(r'data-incident="([^"]+)"', table(page, "incidents-open")) == [open_id]
    assert re.findall(r'data-incident="([^"]+)"', table(page, "incidents-resolved")) == [
        incident("CCB", T0).id,
        incident("ABC", T0 + timedelta(hours=1)).id,
    ]
    row = re.search(rf'<tr data-incident="{open_id}"[^>]*>(.*?)</tr>', page, re.S).group(1)
    assert "Industrial and Commercial Bank of China" in row and ">generic<" in row
    assert "failures, delays" in row
    assert '<time datetime="2026-12-07T11:00:00+00:00">2026-12-07 11:00 UTC</time>' in row
    assert 'data-open="2">2<' in row and "1 (2)" in row
    assert "failures 80% vs 1.0%" in row and "delays 46% vs 20.0%" in row
    href = unescape(re.search(r'<a href="([^"]+)" rel="noopener" class="temporal-link">', row).group(1))
    ui = gw.settings.temporal_ui_url()
    assert href == temporal_list_url(ui, "default", "BankCode", "ICBC", also={"Channel": "generic"})
    assert href.endswith(
        "query=BankCode%3D%22ICBC%22%20AND%20Channel%3D%22generic%22%20AND%20ExecutionStatus%3D%22Running%22"
    )
    resolved_row = re.search(
        rf'<tr data-incident="{incident("CCB", T0).id}"[^>]*>(.*?)</tr>', page, re.S
    ).group(1)
    assert "2026-12-07 09:00 UTC" in resolved_row and "2026-12-07 15:00 UTC" in resolved_row
    zh = (await gw.http.get("/pages/ops", headers={"accept-language": "zh-CN"})).text
    zh_row = re.search(rf'<tr data-incident="{open_id}"[^>]*>(.*?)</tr>', zh, re.S).group(1)
    assert "中国工商银行" in zh_row and "失败 80%（基线 1.0%）" in zh_row

    api = (await gw.http.get("/v1/ops/incidents", headers=gw.key("ops"))).json()
    assert [i["bank_code"] for i in api["items"]] == ["ICBC", "CCB", "ABC"] and api["total"] == 3
    first = api["items"][0]
    assert first["signals"] == ["failure", "delay"] and first["resolved_at"] is None
    assert first["fired_at"] == "2026-12-07T11:00:00Z"
    assert (first["open_withdrawals"], first["users_told"], first["withdrawals_told"]) == (2, 1, 2)
    assert first["rates"][0] == {"signal": "failure", "rate": "80%", "baseline": "1.0%", "p_value": "3.2e-11"}
    assert (
        api["items"][1]["open_withdrawals"] is None
        and api["items"][1]["resolved_at"] == "2026-12-07T15:00:00Z"
    )
    opened = (await gw.http.get("/v1/ops/incidents?state=open", headers=gw.key("ops"))).json()
    assert [i["id"] for i in opened["items"]] == [open_id] and opened["total"] == 1
    resolved = (
        await gw.http.get("/v1/ops/incidents?state=resolved&limit=1&offset=1", headers=gw.key("ops"))
    ).json()
    assert [i["bank_code"] for i in resolved["items"]] == ["ABC"] and resolved["total"] == 2
    for bad in ("state=firing", "limit=0", "limit=201", "offset=-1", "offset=1000001"):
        assert (await gw.http.get(f"/v1/ops/incidents?{bad}", headers=gw.key("ops"))).status_code == 422, bad


async def test_the_console_lists_a_bounded_number_of_incidents(gw, monkeypatch):
    # every input bounded: at most OPEN_INCIDENTS open ones (the page says how many more the API
    # has) and RESOLVED_INCIDENTS resolved ones
    from gateway import routes_console

    monkeypatch.setattr(routes_console, "OPEN_INCIDENTS", 2)
    monkeypatch.setattr(routes_console, "RESOLVED_INCIDENTS", 1)
    for n, bank in enumerate(("ICBC", "CCB", "ABC", "BOC", "CMB")):
        record_incident(gw.engine, incident(bank, T0 + timedelta(hours=n)))
    for bank, n in (("BOC", 3), ("CMB", 4)):
        resolve_incident(gw.engine, incident(bank, T0 + timedelta(hours=n)).id, T0 + timedelta(hours=9 - n))
    assert (await account_sign_in(gw, "dave")).status_code == 303
    page = (await gw.http.get("/pages/ops")).text
    shown = re.findall(r'data-incident="([A-Z]+)-', table(page, "incidents-open"))
    assert shown == ["ABC", "CCB"] and "2 of 3 open incidents shown" in page and "Open now (3)" in page
    assert re.findall(r'data-incident="([A-Z]+)-', table(page, "incidents-resolved")) == ["BOC"]


# --------------------------------------------------------------------------- reports


async def test_reports_newest_first_a_page_at_a_time(gw):
    # R30: newest period first, PAGE_SIZE a page, headline figures; ?page bounded (a
    # page past the end shows the last one, a bad one the first); ?kind filters.
    days = [DAY - timedelta(days=n) for n in range(PAGE_SIZE + 3)]
    for day in reversed(days):
        a_report(gw.engine, "daily", day)
    a_report(gw.engine, "weekly", DAY - timedelta(days=7))
    assert (await account_sign_in(gw, "dave")).status_code == 303

    def periods(html: str) -> list[str]:
        return re.findall(r'class="report-link">([^<]+)</a>', table(html, "reports"))

    first = (await gw.http.get("/pages/ops/reports")).text
    assert len(periods(first)) == PAGE_SIZE and periods(first)[0] == "2026-12-07"
    assert f"{PAGE_SIZE} of {PAGE_SIZE + 4} reports shown" in first
    assert 'id="newer"' not in first
    older = unescape(re.search(r'href="([^"]+)" id="older"', first).group(1))
    assert older == "/pages/ops/reports?page=1"
    second = (await gw.http.get(older)).text
    assert periods(second) == ["2026-11-18", "2026-11-17", "2026-11-16", "2026-11-15"]
    assert "2026-11-30 – 2026-12-06" in periods(first)  # the weekly report, among the days
    assert 'id="older"' not in second and 'href="/pages/ops/reports" id="newer"' in second
    assert periods((await gw.http.get("/pages/ops/reports?page=999999")).text) == periods(second)
    for bad in ("-1", "x", "1e3", ""):
        assert periods((await gw.http.get(f"/pages/ops/reports?page={bad}")).text) == periods(first), bad
    weekly = (await gw.http.get("/pages/ops/reports?kind=weekly")).text
    assert periods(weekly) == ["2026-11-30 – 2026-12-06"] and "1 of 1 reports shown" in weekly
    assert periods((await gw.http.get("/pages/ops/reports?kind=monthly")).text) == periods(first)
    row = re.search(r'<tr data-report="\d+" data-kind="daily">(.*?)</tr>', first, re.S).group(1)
    figures = dict(re.findall(r'data-figure="([a-z_0-9]+)">([^<]*)<', row))
    assert figures == {
        "withdrawals": "0",
        "exception_rate": "-",  # an empty day has no rate
        "false_alarms": "0",
        "missed_delays": "0",
        "notify_p95": "-",
    }
    zh = (await gw.http.get("/pages/ops/reports?kind=weekly", headers={"accept-language": "zh-CN"})).text
    assert "定期复盘报告" in zh and ">周报<" in zh and "共 1 份，显示 1 份" in zh
    front = (await gw.http.get("/pages/ops")).text
    assert len(periods(front)) == 5 and periods(front)[0] == "2026-12-07"
    assert 'href="/pages/ops/reports" id="all-reports"' in front


async def test_a_report_opens_inside_the_console_with_its_charts(gw):
    # R30: the emailed HTML's body inside the console's page (its head, inline style and
    # cid: links gone), each chart an image of the console's origin under the session
    report_id = a_report(gw.engine, "weekly", DAY - timedelta(days=7), with_charts=True)
    assert (await account_sign_in(gw, "dave")).status_code == 303
    listed = (await gw.http.get("/pages/ops/reports")).text
    href = re.search(
        rf'<tr data-report="{report_id}"[^>]*><td class="nowrap"><a href="([^"]+)"', listed
    ).group(1)
    assert href == f"/pages/ops/reports/{report_id}"
    page = await gw.http.get(href)
    assert page.status_code == 200
    assert_safe_page(page)  # no inline script or style, the pages' CSP
    html = page.text
    assert "Weekly review: withdrawals started 2026-11-30T00:00:00+00:00" in html and "cid:" not in html
    srcs = re.findall(r"<img src='([^']+)'", html)
    assert len(srcs) == 5 and f"/pages/ops/reports/{report_id}/charts/timing.png" in srcs
    for src in srcs:
        png = await gw.http.get(src)
        assert png.status_code == 200 and png.content.startswith(PNG), src
    assert "weekly 2026-11-30 – 2026-12-06" in html and 'id="back"' in html
    zh = (await gw.http.get(href, headers={"accept-language": "zh-CN"})).text
    assert "复盘报告: 周报 2026-11-30 – 2026-12-06" in zh and "以下为发送给运维的报告原文（英文）。" in zh
    for missing in (
        "/pages/ops/reports/999999",
        "/pages/ops/reports/0",
        "/pages/ops/reports/abc",
        "/pages/ops/reports/99999999999",
        f"/pages/ops/reports/{report_id}/charts/nope.png",
        f"/pages/ops/reports/{report_id}/charts/{'x' * 41}.png",
        "/pages/ops/reports/999999/charts/timing.png",
    ):
        resp = await gw.http.get(missing)
        assert resp.status_code == 404 and "text/html" in resp.headers["content-type"], missing
    api = await gw.http.get(f"/v1/ops/reports/{report_id}", headers=gw.key("ops"))
    assert f"src='/v1/ops/reports/{report_id}/charts/timing.png'" in api.text  # the API's own links
    for bad in (
        "/v1/ops/reports/0",
        "/v1/ops/reports/99999999999999999999",
        "/v1/ops/reports/0/charts/timing.png",
    ):
        resp = await gw.http.get(bad, headers=gw.key("ops"))
        assert resp.status_code == 422, bad  # bounded ids: refused before the database
