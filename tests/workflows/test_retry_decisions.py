"""Every RetryDecision is carried out, on the time-skipping server (issue #10, done-when;
R1, R4, R5, R7, R32). The same two flows run on the real dev server in
tests/e2e/test_lifecycle_resends.py; PRODUCT_NOT_SIGN (AFTER_OPS_FIX) is in
tests/sentinel/test_lifecycle_routes.py.

- ISO 20022 RJCT AB08 (creditor bank offline, AUTO_SAME_ORDER): sent again on a backoff as
  the next attempt, never two live orders; the user gets one delay notice that says it is
  being sent again, then "arrived".
- WeChat MONEY_LIMIT (a daily limit, WAIT): nothing is sent before the channel's day resets;
  the user is told that date and time; then it is sent again and paid."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

from sentinel.taxonomy import Stage, WithdrawalStatus
from store.db import engine_for
from store.inbox import inbox
from tests.e2e.test_lifecycle_resends import _delays
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import eventually, make_request, make_settings, running


async def test_ab08_is_sent_again_as_the_next_attempt_and_arrives(ts_env, tmp_path, smtp_server, unique_id):
    settings = make_settings(tmp_path, smtp_server.port, delays=_delays(auto_retry=["2s", "2s", "2s", "2s"]))
    channel = ScriptedChannel(name="iso20022", submit=("ACCP", None), queries=[("ACSP", None)])
    async with running(ts_env, settings, {"iso20022": channel}) as client:
        handle = await client.start_withdrawal(make_request(unique_id, channel="iso20022"))
        for n in (1, 2, 3):  # refused three times: the bank is offline
            order = unique_id if n == 1 else f"{unique_id}_R{n}"

            async def submitted(order=order):
                assert order in channel.submits

            await eventually(submitted, 30)
            await handle.signal("bank_callback", channel.callback(order, "RJCT", "AB08", f"rj-{n}"))
            await ts_env.sleep(timedelta(seconds=3))  # past the backoff: the next attempt goes out

        async def fourth():
            assert f"{unique_id}_R4" in channel.submits

        await eventually(fourth, 30)
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.DELAYED and view.order_id == f"{unique_id}_R4"
        await handle.signal("bank_callback", channel.callback(f"{unique_id}_R4", "ACSC", None, "paid"))
        view = await asyncio.wait_for(handle.result(), 60)
    assert view.status == WithdrawalStatus.SUCCEEDED
    # one order at a time, each the next attempt once the earlier one was refused (final)
    assert channel.submits == [unique_id, f"{unique_id}_R2", f"{unique_id}_R3", f"{unique_id}_R4"]
    assert [n.stage for n in view.notices] == [Stage.DELAYED, Stage.RESOLVED]
    delayed = view.notices[0]
    assert delayed.variant == "RETRYING" and delayed.retry_at is not None
    texts = [m.body for m in inbox(engine_for(settings.database_url), view.user_id)[0]]
    told = next(t for t in texts if "send it again" in t)
    assert "with the bank" not in told and "has left your balance" not in told


async def test_money_limit_waits_for_the_channels_next_day_and_says_so(
    ts_env, tmp_path, smtp_server, unique_id
):
    now = (await ts_env.get_current_time()).astimezone(UTC)
    reset = (now + timedelta(hours=2)).replace(second=0, microsecond=0)
    settings = make_settings(
        tmp_path,
        smtp_server.port,
        delays=_delays(limit_reset_at=reset.strftime("%H:%M"), limit_reset_tz="UTC"),
    )
    channel = ScriptedChannel(name="wechat", submit=("ACCEPTED", None), queries=[("PROCESSING", None)])
    async with running(ts_env, settings, {"wechat": channel}) as client:
        req = make_request(unique_id, channel="wechat")
        handle = await client.start_withdrawal(req)

        async def submitted():
            assert unique_id in channel.submits

        await eventually(submitted, 30)
        await handle.signal("bank_callback", channel.callback(unique_id, "FAIL", "MONEY_LIMIT", "lim"))

        async def told():
            view = await client.status(unique_id)
            assert view.notices
            return view

        view = await eventually(told, 30)
        assert view.status == WithdrawalStatus.DELAYED
        notice = view.notices[0]
        assert notice.stage == Stage.DELAYED and notice.variant == "LIMIT_WAIT" and notice.retry_at == reset
        await ts_env.sleep(timedelta(hours=1))
        assert channel.submits == [unique_id]  # nothing is sent before the limit resets
        # to two seconds past the reset: the payout goes out again then (and the answer below
        # comes before the resent order's own delay threshold, 4 s, as in the e2e twin)
        await ts_env.sleep(reset + timedelta(seconds=2) - (await ts_env.get_current_time()).astimezone(UTC))

        async def resent():
            assert len(channel.submits) == 2

        await eventually(resent, 30)
        assert channel.submits == [unique_id, f"{unique_id}_R2"]
        await handle.signal("bank_callback", channel.callback(f"{unique_id}_R2", "SUCCESS", None, "ok"))
        view = await asyncio.wait_for(handle.result(), 60)
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert [n.stage for n in view.notices] == [Stage.DELAYED, Stage.RESOLVED]
    texts = [m.body for m in inbox(engine_for(settings.database_url), view.user_id)[0]]
    local = reset.astimezone(ZoneInfo(req.contact.timezone))
    assert any(local.strftime("%Y-%m-%d %H:%M") in t and "send it again" in t for t in texts), texts
