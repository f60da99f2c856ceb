"""The outage banner on the progress page (issue #14 item 3, R16, R19): while an incident of
the withdrawal's bank and channel fires, an open withdrawal's page says, in the page's
language, that the bank is slow and the money is safe; a finished withdrawal, another
bank's, and the page after the incident resolved show nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from sentinel.taxonomy import WithdrawalStatus as S
from store.incidents import record_incident, resolve_incident
from store.tables import OutageIncident
from tests.gateway.test_pages import link_path, tracked


def incident(bank="ICBC") -> OutageIncident:
    return OutageIncident(
        id=f"{bank}-generic-20261207T090000Z",
        bank_code=bank,
        channel="generic",
        fired_at=datetime(2026, 12, 7, 9, tzinfo=UTC),
        summary="failure 80% vs baseline 1.0%",
        signals="failure",
        config_version="test",
    )


async def test_the_banner_shows_on_open_withdrawals_of_the_bank_while_the_incident_fires(gw, unique_id):
    user = f"u-{unique_id}"
    tracked(gw, f"{unique_id}a", user, S.PROCESSING)
    tracked(gw, f"{unique_id}z", user, S.DELAYED, locale="zh-CN")
    tracked(gw, f"{unique_id}d", user, S.SUCCEEDED)
    tracked(gw, f"{unique_id}c", user, S.PROCESSING, bank_code="CCB")
    page = lambda wid: gw.http.get(link_path("track", wid, user))  # noqa: E731
    assert 'id="outage-banner"' not in (await page(f"{unique_id}a")).text
    record_incident(gw.engine, incident())
    en = (await page(f"{unique_id}a")).text
    assert 'id="outage-banner"' in en
    assert "Industrial and Commercial Bank of China transfers are slow right now" in en
    assert "Your withdrawal is safe" in en
    zh = (await page(f"{unique_id}z")).text
    assert 'id="outage-banner"' in zh and "中国工商银行转账目前较慢" in zh and "您的提现是安全的" in zh
    assert 'id="outage-banner"' not in (await page(f"{unique_id}d")).text  # arrived: nothing to say
    assert 'id="outage-banner"' not in (await page(f"{unique_id}c")).text  # another bank
    resolve_incident(gw.engine, incident().id, datetime.now(UTC))
    assert 'id="outage-banner"' not in (await page(f"{unique_id}a")).text
