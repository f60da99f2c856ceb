"""Every retry decision of the catalogue is carried out (issue #10, R5, R7, R15, R26, R29,
R32), on the time-skipping server with the real workflow, activities and templates:

- ISO 20022 RJCT AB08 and WeChat MONEY_LIMIT: tests/e2e/test_lifecycle_resends.py (real dev server);
- Alipay PRODUCT_NOT_SIGN (our contract, AFTER_OPS_FIX): a manual check, operators alerted,
  the user told "delayed, we are fixing it on our side", never "failed";
- unknown return codes page operations.
Plus the pure routing table (sentinel/lifecycle.py) over every catalogue code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sentinel.catalogue import default_catalogue
from sentinel.classifier import classify
from sentinel.lifecycle import NOT_FINAL, Route, next_reset, route_failure
from sentinel.models import Classification, TrackingPolicy
from sentinel.taxonomy import ExceptionCategory, PayoutState, RetryDecision, Stage, WithdrawalStatus
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import make_request, make_settings, running

POLICY = TrackingPolicy(
    version="t",
    delay_threshold_s=600,
    grace_s=120,
    manual_check_s=86400,
    poll_schedule_s=[60, 120, 300],
    unknown_poll_s=15,
    return_watch_s=300,
    review_sla_s=3600,
    documents_wait_s=86400,
    eta_hours=24,
)
NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
ALERTS = {ExceptionCategory.PLATFORM_ERROR, ExceptionCategory.DUPLICATE}


def _all_failing_codes():
    cat = default_catalogue()
    for source, doc in cat.sources.items():
        for entry in doc.codes:
            yield source, entry


@pytest.mark.parametrize("resends", [0, 10])
def test_every_catalogue_code_has_a_route_that_carries_out_its_decision(resends):
    """Total: every code of every catalogue, refused, gets a route; the route matches the
    catalogue's retry decision; none that is not final says so."""
    seen = set()
    for source, entry in _all_failing_codes():
        cls = Classification(
            state=PayoutState.FAILED,
            category=entry.category,
            subtype=entry.subtype,
            retry=entry.retry,
            fixer=entry.fixer,
        )
        d = route_failure(
            cls, resends=resends, waits=resends, policy=POLICY, alert_categories=ALERTS, now=NOW
        )
        seen.add(d.route)
        where = f"{source}:{entry.code}"
        if entry.category in (ExceptionCategory.PLATFORM_ERROR, ExceptionCategory.DUPLICATE):
            assert d.route == Route.MANUAL_CHECK and d.alert_operators, where
        elif (
            entry.retry == RetryDecision.AUTO_SAME_ORDER
            and entry.category != ExceptionCategory.BALANCE_OR_LIMIT
        ):
            assert d.route == (Route.RESEND if resends == 0 else Route.MANUAL_CHECK), where
        elif entry.retry == RetryDecision.AUTO_SAME_ORDER:
            assert d.route in (Route.RESEND, Route.MANUAL_CHECK), where
        elif (
            entry.retry == RetryDecision.AFTER_OPS_FIX
            and entry.category not in (ExceptionCategory.RISK_HOLD, ExceptionCategory.REGULATORY)
            and not (entry.subtype or "").startswith("payer")
        ):
            assert d.route == Route.OPS_FIX and d.alert_operators, where  # never "failed"
        if d.route in (Route.RESEND, Route.WAIT_AND_RESEND):
            assert d.at is not None and d.at > NOW, where
        if d.route in NOT_FINAL:
            assert d.route not in (Route.FAILED, Route.USER_FIX)
    assert {
        Route.RESEND,
        Route.WAIT_AND_RESEND,
        Route.OPS_FIX,
        Route.MANUAL_CHECK,
        Route.RISK_REVIEW,
        Route.COMPLIANCE_REVIEW,
        Route.USER_FIX,
    }.issubset(seen) or resends


def test_named_codes_route_as_the_issue_says():
    cat = default_catalogue()

    def route(channel, status, code):
        cls = classify(cat, channel, status, code)
        return route_failure(cls, resends=0, waits=0, policy=POLICY, alert_categories=ALERTS, now=NOW)

    assert route("iso20022", "RJCT", "AB08").route == Route.RESEND
    assert route("alipay", "FAIL", "INST_PAY_UNABLE").route == Route.RESEND
    assert route("stripe", "failed", "issuer_unavailable").route == Route.RESEND
    assert route("alipay", "FAIL", "PRODUCT_NOT_SIGN").route == Route.OPS_FIX
    assert route("alipay", "FAIL", "RESOURCE_LIMIT_EXCEED").route == Route.RESEND  # a rate limit: seconds
    assert route("wechat", "FAIL", "MONEY_LIMIT").route == Route.WAIT_AND_RESEND
    assert route("wechat", "FAIL", "SENDNUM_LIMIT").route == Route.WAIT_AND_RESEND
    assert route("stripe", "failed", "could_not_process").route == Route.OPS_FIX  # somebody checks
    assert route("iso20022", "RJCT", "MS03").route == Route.OPS_FIX
    assert (
        route("iso20022", "RJCT", "MD07").route == Route.MANUAL_CHECK
    )  # holder deceased: not "card details"
    assert (
        route("iso20022", "RJCT", "RR04").route == Route.COMPLIANCE_REVIEW
    )  # not a failure with an upload link
    assert route("iso20022", "RJCT", "AC04").route == Route.USER_FIX
    rate = route("alipay", "FAIL", "RESOURCE_LIMIT_EXCEED")
    assert rate.at - NOW <= timedelta(minutes=10)


def test_the_next_reset_is_the_channels_next_day():
    # 10:00 UTC is 18:00 in Shanghai: the next Shanghai midnight is 16:00 UTC
    assert next_reset(NOW, POLICY) == datetime(2026, 12, 4, 16, 0, tzinfo=UTC)
    late = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)  # exactly midnight: the next one
    assert next_reset(late, POLICY) == datetime(2026, 12, 5, 16, 0, tzinfo=UTC)


def _stages(view):
    return [n.stage for n in view.notices]


async def test_product_not_sign_is_fixed_on_our_side_never_failed(ts_env, tmp_path, smtp_server, unique_id):
    channel = ScriptedChannel(name="alipay", submit=("10000", None), queries=[("DEALING", None)])
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, {"alipay": channel}) as client:
        handle = await client.start_withdrawal(make_request(unique_id, channel="alipay", locale="zh-CN"))
        await handle.signal("bank_callback", channel.callback(unique_id, "FAIL", "PRODUCT_NOT_SIGN", "e1"))
        await ts_env.sleep(timedelta(minutes=1))
        view = await client.status(unique_id)
    assert view.status == WithdrawalStatus.MANUAL_CHECK
    assert _stages(view)[:2] == [Stage.MANUAL_CHECK, Stage.OPERATOR_ALERT]
    assert view.notices[0].variant == "OPS_FIX"
    assert any(m.rcpt_tos == ["ops@sentinel.example"] for m in smtp_server.messages)
    user_mail = [m for m in smtp_server.messages if m.rcpt_tos != ["ops@sentinel.example"]]
    body = user_mail[0].content.decode("utf-8", "replace")
    assert "失败" not in body  # never "failed"


async def test_an_unknown_return_code_pages_operations(ts_env, tmp_path, smtp_server, unique_id):
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "ok"))
        await handle.signal("bank_callback", channel.callback(unique_id, "RETURNED", "ZZ99", "ret"))
        view = await handle.result()
    assert view.status == WithdrawalStatus.RETURNED
    assert view.category == ExceptionCategory.RETURNED_AFTER_SUCCESS  # not a guessed "card mismatch"
    assert Stage.OPERATOR_ALERT in _stages(view)


def test_the_route_table_in_the_docs_is_generated_from_the_code():
    # issue #10 item 7: docs/notices.md's route table cannot drift from the catalogue and lifecycle
    from sentinel.settings import ROOT
    from starter.cli import ROUTES_END, ROUTES_START, routes_markdown

    doc = (ROOT / "docs" / "notices.md").read_text()
    table = doc[doc.index(ROUTES_START) + len(ROUTES_START) : doc.index(ROUTES_END)]
    assert table.strip() == routes_markdown().strip(), "regenerate it: python -m starter routes"
    assert "OPS_FIX" in table and "WAIT_AND_RESEND" in table and "RESEND" in table
