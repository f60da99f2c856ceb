"""Long lives (issue #9 item 3, R33): a withdrawal can live for months (a manual check
polling the bank, a long return watch). The workflow continues as new when its history
reaches the configured bound (``max_history_events`` in delays.yaml) or when Temporal
suggests it, carrying its whole state; callbacks, decisions and notices are drained first,
so nothing is lost across runs. Each run's history stays under the bound (plus the few
events of the hand-over itself)."""

from __future__ import annotations

import copy
from datetime import timedelta

from temporalio.api.enums.v1 import EventType

from sentinel.models import ReviewDecision
from sentinel.taxonomy import Stage, WithdrawalStatus
from tests.support.decisions import signed
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import TEST_DELAYS, make_request, make_settings, running

#: the bound used here, and the events a hand-over may add on top of it (draining the
#: deliveries in flight, the last progress write, the continue-as-new itself)
BOUND = 300
HAND_OVER = 60


def _delays(**changes) -> dict:
    doc = copy.deepcopy(TEST_DELAYS)
    doc["defaults"].update({"max_history_events": BOUND, **changes})
    return doc


async def _runs(client, wid: str) -> list[int]:
    """The history length of every run of the withdrawal's workflow, first to last."""
    handle = client.client.get_workflow_handle(f"withdrawal-{wid}")
    first = (await handle.describe()).raw_description.workflow_execution_info.first_run_id
    lengths, run_id = [], first
    while run_id:
        history = await client.client.get_workflow_handle(f"withdrawal-{wid}", run_id=run_id).fetch_history()
        lengths.append(len(history.events))
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
            else None
        )
    return lengths


async def test_120_days_in_manual_check_then_an_approve(ts_env, tmp_path, smtp_server, unique_id):
    # the manual check polls the bank every 2 h here (1,440 polls in 120 days)
    settings = make_settings(
        tmp_path, smtp_server.port, delays=_delays(poll_schedule=["1m", "2m", "5m", "2h"])
    )
    channel = ScriptedChannel(queries=[("PROCESSING", None)])
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await ts_env.sleep(timedelta(minutes=65))
        assert (await client.status(unique_id)).status == WithdrawalStatus.MANUAL_CHECK
        for day in range(0, 120, 10):
            await ts_env.sleep(timedelta(days=10))
            if day == 60:  # a callback in the middle of it all is kept across the runs
                await handle.signal(
                    "bank_callback", channel.callback(unique_id, "PROCESSING", "MID", "evt-mid")
                )
        before = await client.status(unique_id)
        assert before.status == WithdrawalStatus.MANUAL_CHECK
        assert (
            await client.review(
                unique_id,
                await signed(
                    ts_env,
                    unique_id,
                    ReviewDecision(
                        decision="approve", reviewer="ops-1", reason="bank confirmed after 120 days"
                    ),
                ),
            )
            == "PROCESSING"
        )
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-paid"))
        view = await handle.result()
        runs = await _runs(client, unique_id)
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert len(runs) > 10, runs  # it really lived through many runs
    assert max(runs) <= BOUND + HAND_OVER, runs
    # the whole story survived: the first run's notices, the mid-life callback, the decision
    assert [n.stage for n in view.notices][:3] == [Stage.DELAYED, Stage.MANUAL_CHECK, Stage.OPERATOR_ALERT]
    assert any(e.detail == "evt-mid" or "MID" in e.what for e in view.timeline), "mid-life callback lost"
    assert [d.reason for d in view.decisions] == ["bank confirmed after 120 days"]
    assert sum(1 for e in view.timeline if e.what.startswith("continued as new")) == len(runs) - 1
    assert len(channel.submits) == 2  # the approve resubmitted once, under the same order number
    assert len(channel.queries) >= 1400


async def test_a_long_return_watch_then_a_return(ts_env, tmp_path, smtp_server, unique_id):
    settings = make_settings(tmp_path, smtp_server.port, delays=_delays(return_watch="180d"))
    channel = ScriptedChannel()
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-paid"))
        for day in range(150):  # late copies of the success every day: the history grows while it watches
            await ts_env.sleep(timedelta(days=1))
            await handle.signal(
                "bank_callback", channel.callback(unique_id, "SUCCEEDED", None, f"evt-late-{day}")
            )
        assert (await client.status(unique_id)).status == WithdrawalStatus.SUCCEEDED
        await handle.signal("bank_callback", channel.callback(unique_id, "RETURNED", "AC04", "evt-return"))
        view = await handle.result()
        runs = await _runs(client, unique_id)
    assert view.status == WithdrawalStatus.RETURNED
    assert [n.stage for n in view.notices] == [Stage.RETURNED]
    assert len(runs) > 1 and max(runs) <= BOUND + HAND_OVER, runs
    late = [e for e in view.timeline if "late answer" in e.what and e.source == "callback"]
    assert len(late) == 150, [(e.what, e.detail, e.source) for e in late][:3]
