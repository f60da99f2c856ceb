"""Runs the real workflow and the real activities against the time-skipping server; only
the channel's HTTP edge is scripted (tests/support/scripted_channel.py)."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.registry import build_activities
from runtime.client import SentinelClient
from sentinel.models import Contact, WithdrawalRequest
from sentinel.settings import Settings
from simulator.requests import withdrawal_request
from workflows.withdrawal import WithdrawalWorkflow

# Round figures so each test reads as a story: threshold 10 min, grace 2 min,
# manual check at 1 h, polls after 1, 2, 5 min then every 5 min.
TEST_DELAYS = {
    "version": "test-1",
    "defaults": {
        "delay_threshold": "10m",
        "grace": "2m",
        "manual_check": "1h",
        "poll_schedule": ["1m", "2m", "5m"],
        "unknown_poll": "15s",
        "return_watch": "5m",
        "review_sla": "1h",
        "documents_wait": "2d",
        "eta_hours": 24,
    },
}


def make_settings(tmp_path: Path, smtp_port: int, **overrides) -> Settings:
    delays = tmp_path / "delays.yaml"
    delays.write_text(yaml.safe_dump(overrides.pop("delays", TEST_DELAYS)))
    return Settings(
        database_url=overrides.pop("database_url", f"sqlite:///{tmp_path / 'app.db'}"),
        delays_file=delays,
        smtp_port=smtp_port,
        operator_email="ops@sentinel.example",
        **overrides,
    )


def zone_at(local_hour: int, now: datetime | None = None) -> str:
    """A time zone (``Etc/GMT±N``) in which ``now`` (default: the wall clock) falls in the
    hour ``local_hour``: tests pin the user's local time with it, so no outcome depends on
    the hour the suite runs (quiet and legal hours are in the user's zone)."""
    now = now or datetime.now(UTC)
    offset = (local_hour - now.astimezone(UTC).hour) % 24
    if offset > 14:
        offset -= 24
    return "Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # the Etc names' sign is inverted


async def pin_local_time(env, local: str) -> str:
    """Move the time-skipping server's clock forward (less than a day) to the next moment
    when it is ``local`` ("HH:MM") in some whole-hour zone, and return that zone. The
    server starts at the wall-clock time, so this is how a test says "at 02:30 local"."""
    hour, minute = (int(x) for x in local.split(":"))
    now = (await env.get_current_time()).astimezone(UTC)
    wait = (minute - now.minute) % 60 * 60 - now.second - now.microsecond / 1e6
    if wait < 0:
        wait += 3600
    if wait > 0:
        await env.sleep(timedelta(seconds=wait))
    return zone_at(hour, now + timedelta(seconds=wait))


def make_request(wid: str, **overrides) -> WithdrawalRequest:
    fields = dict(
        user_id="u-42",
        amount="1250.00",
        payee_ref="vault:tok_91",
        locale="en-US",
        # midday in the user's zone whatever the hour the suite runs: quiet and legal hours
        # never decide a test's outcome unless the test pins a night time on purpose
        contact=Contact(email="user42@example.com", timezone=zone_at(12)),
    )
    return withdrawal_request(**{"withdrawal_id": wid, **fields, **overrides})


#: how long ``result()`` waits in real time before moving the test server's clock by hand
STUCK_AFTER_S = 5.0


class _SkippingHandle:
    """A workflow handle whose ``result()`` cannot stall. The time-skipping test server
    skips to the next timer by itself while a result is awaited, but now and then (about
    one test in a few hundred, seen on CI) it stops doing so and the wait never ends. If no
    result comes within STUCK_AFTER_S of real time, the clock is moved on by hand
    (``env.sleep``, which is what the server should have done) until it does."""

    def __init__(self, handle, env):
        self._handle, self._env = handle, env

    def __getattr__(self, name):
        return getattr(self._handle, name)

    async def result(self, **kwargs):
        task = asyncio.ensure_future(self._handle.result(**kwargs))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=STUCK_AFTER_S)
                if done:
                    return task.result()
                await self._env.sleep(timedelta(minutes=30))
        finally:
            if not task.done():
                task.cancel()


class _TrackingClient(SentinelClient):
    """Remembers what it started, so the harness can end what a test left running."""

    def __init__(self, client, task_queue, env=None):
        super().__init__(client, task_queue)
        self.started: list[str] = []
        self.env = env

    async def start_withdrawal(self, req):
        handle = await super().start_withdrawal(req)
        self.started.append(req.withdrawal_id)
        if self.env is None:
            return handle
        await _first_task_completed(handle)
        return _SkippingHandle(handle, self.env)


#: how long (real time) a start waits for the workflow's first task to complete
FIRST_TASK_WAIT_S = 10.0


async def _first_task_completed(handle) -> None:
    """Wait until the workflow's first task is completed before the test signals it. The
    time-skipping test server (not Temporal itself) sometimes rejects the completion of a
    first task that ran local activities while a signal arrived ("invalid history builder
    state for action") and the workflow then never moves again: seen on this machine in about
    one run in three of a test that signals right after the start. The race itself is tested
    on the real dev server (tests/e2e/test_faults.py, callbacks right after a start)."""
    deadline = asyncio.get_running_loop().time() + FIRST_TASK_WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        history = await handle.fetch_history()
        if any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in history.events):
            return
        await asyncio.sleep(0.02)


def worker(env, settings: Settings, channel, task_queue: str, **options) -> Worker:
    """The real workflow and activities on ``task_queue`` (``async with`` runs it; leaving
    the block stops it, the workflows stay as they are). ``options`` go to the Worker."""
    channels = channel if isinstance(channel, dict) else {"generic": channel}
    activities = build_activities(settings, channels=channels)
    return Worker(
        env.client, task_queue=task_queue, workflows=[WithdrawalWorkflow], activities=activities, **options
    )


@asynccontextmanager
async def running(env, settings: Settings, channel, task_queue: str | None = None, **options):
    """A worker on its own task queue (or ``task_queue``). On exit, workflows the test left
    open are terminated: one left waiting on a timer with no worker would stall time
    skipping for every later test on the shared test server. ``options`` go to the Worker
    (``max_cached_workflows=0``: a workflow can move to the next worker on the same queue,
    the test server does not hand work on from a stopped worker's sticky queue)."""
    task_queue = task_queue or f"tq-{uuid.uuid4().hex[:8]}"
    client = _TrackingClient(env.client, task_queue, env if env.supports_time_skipping else None)
    try:
        async with worker(env, settings, channel, task_queue, **options):
            yield client
    finally:
        for wid in client.started:
            try:
                desc = await client.handle(wid).describe()
                if desc.status == WorkflowExecutionStatus.RUNNING:
                    await client.handle(wid).terminate("test finished")
            except RPCError:
                pass


async def eventually(check, timeout_s: float = 10.0):
    """Wait in real time for what activities do after a skipped timer (they run for real).
    ``check`` asserts; it is tried again while it raises AssertionError or returns False
    (a check written as ``return x in y`` must wait too, not pass or fail on the first try),
    and its result is returned once it holds."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            result = await check()
            assert result is not False, f"{getattr(check, '__name__', check)} still False after {timeout_s} s"
            return result
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)
