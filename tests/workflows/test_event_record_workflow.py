"""The exception event record written by the real activities while the real workflow runs
on the time-skipping server (R27): the transitions, notices and outcome of a delayed-then-
paid and of a failed withdrawal; the happy path writes its rows without one more Temporal
action (the rows are written inside activities the workflow already runs)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.enums.v1 import EventType

from sentinel.analysis import analyse
from store.db import engine_for
from store.events import events_between, events_for
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import make_request, make_settings, running


def story(engine, wid: str) -> list[tuple]:
    return [
        ("notice", e.stage, e.notice_channel)
        if e.kind == "notice"
        else (e.kind, e.status, e.category, e.reason_code)
        for e in events_for(engine, wid)
    ]


async def test_delayed_then_paid_and_failed_leave_their_story(ts_env, tmp_path, smtp_server, unique_id):
    """R27, R23: started, each transition with its category and code, each notice sent (the
    delay, the resolution, the failure; inbox and email) and the outcome."""
    channel = ScriptedChannel(queries=[("PROCESSING", None)])
    settings = make_settings(tmp_path, smtp_server.port)
    engine = engine_for(settings.database_url)
    failed = f"{unique_id}-f"
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await ts_env.sleep(timedelta(minutes=40))
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-ok"))
        await handle.result()
        handle = await client.start_withdrawal(make_request(failed, amount="50.00"))
        await handle.signal("bank_callback", channel.callback(failed, "FAILED", "AC04", "evt-1"))
        await handle.result()
    assert story(engine, unique_id) == [
        ("started", "SUBMITTED", None, None),
        ("status", "PROCESSING", None, None),
        ("status", "DELAYED", "BANK_DELAY", None),
        ("notice", "DELAYED", "inbox"),
        ("notice", "DELAYED", "email"),
        ("status", "SUCCEEDED", "BANK_DELAY", None),
        ("notice", "RESOLVED", "inbox"),
        ("notice", "RESOLVED", "email"),
    ]
    assert story(engine, failed) == [
        ("started", "SUBMITTED", None, None),
        ("status", "PROCESSING", None, None),
        ("status", "FAILED", "ACCOUNT_INFO_ERROR", "AC04"),
        ("notice", "DETECTED", "inbox"),
        ("notice", "DETECTED", "email"),
    ]
    started = events_for(engine, unique_id)[0]
    assert (started.channel, started.bank_code, started.amount_band, started.delay_threshold_s) == (
        "generic",
        "ICBC",
        "1k-10k",
        600,
    )  # tests/support/workflow_harness.py: threshold 10 min
    assert events_for(engine, failed)[0].amount_band == "<100"
    # and the analysis reads them back
    first, last = events_for(engine, unique_id)[0].at, events_for(engine, failed)[0].at
    report = analyse(events_between(engine, first - timedelta(seconds=1), last + timedelta(seconds=1)))
    assert report["outcomes"] == {"FAILED": 1, "SUCCEEDED": 1}
    assert report["exception_rates"]["by_category"]["ACCOUNT_INFO_ERROR"]["withdrawals"] == 1
    assert report["notices"]["by_channel"]["inbox"]["sent"] == 3


async def test_happy_path_writes_rows_but_no_extra_action(ts_env, tmp_path, smtp_server, unique_id):
    """R27: a plain success has its started, transition and outcome rows, and its history
    holds exactly the Temporal actions it held before the record existed (measured on the
    main branch before this change: 1 activity task, 3 local-activity markers)."""
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-1"))
        await handle.result()
        history = await handle.fetch_history()
    types = [e.event_type for e in history.events]
    assert types.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == 1  # submit_payout
    assert (
        types.count(EventType.EVENT_TYPE_MARKER_RECORDED) == 3
    )  # the local activities (init_tracking, record_progress)
    assert [e.kind for e in events_for(engine_for(settings.database_url), unique_id)] == [
        "started",
        "status",
        "status",
    ]
    assert story(engine_for(settings.database_url), unique_id)[-1] == ("status", "SUCCEEDED", None, None)
