"""Shared helpers of the benchmarks: start the real stack (DevStack, headless, free ports,
a temp data dir, a delays file written for the benchmark), run N withdrawals, count
Temporal actions in histories, sample a process's RSS/CPU and write a section of
docs/benchmarks.md between markers ``<!-- bench:NAME -->`` ... ``<!-- /bench:NAME -->``.

Measure, don't assert: nothing here fails on a timing."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402

from runtime.client import SentinelClient  # noqa: E402
from sentinel.models import Contact, WithdrawalRequest  # noqa: E402
from sentinel.settings import Settings  # noqa: E402
from starter.devstack import DevStack, Ports  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"

# Delays used unless a benchmark says otherwise: no return watch (the workflow closes at
# success), polls far apart (callbacks decide), thresholds far away (no delay notices).
QUIET_DELAYS: dict[str, Any] = {
    "version": "bench-quiet",
    "defaults": {
        "delay_threshold": "2h",
        "grace": "10m",
        "manual_check": "24h",
        "poll_schedule": ["1h"],
        "unknown_poll": "1h",
        "return_watch": 0,
        "review_sla": "4h",
        "documents_wait": "3d",
        "eta_hours": 24,
    },
}


def delays(**overrides: Any) -> dict[str, Any]:
    doc = {"version": overrides.pop("version", "bench"), "defaults": dict(QUIET_DELAYS["defaults"])}
    doc["defaults"].update(overrides)
    return doc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f} / {b:.2f} / {c:.2f}"


def machine() -> dict[str, str]:
    import temporalio

    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "cpus (nproc)": str(os.cpu_count()),
        "RAM": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "Python": platform.python_version(),
        "temporalio": temporalio.__version__,
        "OS": platform.platform(),
        "date (UTC)": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "load average (1/5/15 min) at start": loadavg(),
    }


def request_for(
    wid: str, amount: str = "88.80", email: str | None = "bench@example.com"
) -> WithdrawalRequest:
    return WithdrawalRequest(
        withdrawal_id=wid,
        user_id=f"u-{wid}",
        amount=amount,
        currency="CNY",
        channel="generic",
        bank_code="CMB",
        card_last4="4321",
        payee_ref="vault:tok_bench",
        locale="zh-CN",
        contact=Contact(email=email) if email else Contact(),
    )


# --- the stack ---------------------------------------------------------------------------


@dataclass
class BenchStack:
    """The real stack as child processes. ``worker=False`` leaves the worker to the caller
    (``spawn_worker``), ``mail=False`` leaves port ``ports.smtp`` free for an in-process sink."""

    delays_doc: dict[str, Any] = field(default_factory=lambda: dict(QUIET_DELAYS))
    worker: bool = True
    mail: bool = True
    env: dict[str, str] = field(default_factory=dict)
    keep: bool = False
    dev: DevStack | None = None
    tmp: Path | None = None

    def start(self) -> BenchStack:
        self.tmp = Path(tempfile.mkdtemp(prefix="sentinel-bench-"))
        delays_file = self.tmp / "delays.bench.yaml"
        delays_file.write_text(yaml.safe_dump(self.delays_doc, sort_keys=False))
        ports = Ports(
            temporal=free_port(), ui=free_port(), smtp=free_port(), simulator=free_port(), gateway=free_port()
        )
        self.dev = DevStack(
            data_dir=self.tmp,
            ports=ports,
            headless=True,
            env_overrides={"SENTINEL_DELAYS_FILE": str(delays_file), **self.env},
        )
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
            self.dev.start_temporal()
            if self.mail:
                self.dev.start_mail()
            self.dev.start_simulator()
            self.dev.start_gateway()
            if self.worker:
                self.spawn_worker()
        except Exception:
            self.stop()
            raise
        return self

    @property
    def devstack(self) -> DevStack:
        """The started dev stack (RuntimeError before :meth:`start`)."""
        if self.dev is None:
            raise RuntimeError("the bench stack is not started")
        return self.dev

    @property
    def ports(self) -> Ports:
        return self.devstack.ports

    @property
    def data_dir(self) -> Path:
        if self.tmp is None:
            raise RuntimeError("the bench stack is not started")
        return self.tmp

    def spawn_worker(self, name: str = "worker"):
        return self.devstack._spawn(name, [sys.executable, str(ROOT / "worker.py")])

    def spawn(self, name: str, args: list[str]):
        return self.devstack._spawn(name, args)

    def pid(self, name: str) -> int:
        for pname, proc in self.devstack.procs:
            if pname == name:
                return proc.pid
        raise KeyError(name)

    def stop(self, name: str | None = None) -> None:
        if self.dev is not None:
            self.dev.stop(name)
        if name is None and self.tmp is not None and not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.devstack.ports.temporal}"

    @property
    def sim(self) -> str:
        return f"http://127.0.0.1:{self.devstack.ports.simulator}"

    @property
    def gw(self) -> str:
        return f"http://127.0.0.1:{self.devstack.ports.gateway}"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'sentinel.db'}"

    async def client(self) -> SentinelClient:
        return await SentinelClient.connect(Settings(_env_file=None, temporal_address=self.address))

    async def wait_worker_ready(self, client: SentinelClient, timeout_s: float = 60) -> None:
        """Waits until a worker polls the task queue (a first warm-up withdrawal would
        otherwise carry the worker's start-up time)."""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            resp = await client.client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default",
                    task_queue=TaskQueue(name=client.task_queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
            if resp.pollers:
                return
            await asyncio.sleep(0.3)
        raise TimeoutError("no worker polled the task queue")


async def script_all(sim: str, specs: Iterable[tuple[str, dict]], concurrency: int = 20) -> None:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=30) as http:

        async def one(order_id: str, body: dict) -> None:
            async with sem:
                (await http.put(f"{sim}/_sim/scripts/{order_id}", json=body)).raise_for_status()

        await asyncio.gather(*(one(o, b) for o, b in specs))


async def start_all(
    client: SentinelClient, wids: list[str], concurrency: int = 50, amount: str = "88.80"
) -> list[float]:
    """Starts the withdrawals; returns the wall-clock time each start returned."""
    sem = asyncio.Semaphore(concurrency)
    started: list[float] = [0.0] * len(wids)

    async def one(i: int, wid: str) -> None:
        async with sem:
            await client.start_withdrawal(request_for(wid, amount=amount))
            started[i] = time.time()

    await asyncio.gather(*(one(i, w) for i, w in enumerate(wids)))
    return started


async def run_withdrawals(client: SentinelClient, wids: list[str], concurrency: int = 50) -> dict[str, Any]:
    """Starts every withdrawal and waits for every workflow to close. Returns the wall time
    from the first start to the last close and the final statuses."""
    t0 = time.perf_counter()
    load0 = loadavg()
    await start_all(client, wids, concurrency)
    views = await asyncio.gather(*(client.result(w) for w in wids))
    wall = time.perf_counter() - t0
    statuses: dict[str, int] = {}
    for v in views:
        statuses[v.status.value] = statuses.get(v.status.value, 0) + 1
    return {
        "n": len(wids),
        "wall_s": wall,
        "per_s": len(wids) / wall,
        "statuses": statuses,
        "load_before": load0,
        "load_after": loadavg(),
    }


# --- histories and actions --------------------------------------------------------------

# Event types that are billable actions (https://docs.temporal.io/cloud/actions).
# MarkerRecorded of local activities: all local-activity markers recorded in one workflow
# task count as ONE action; other markers (version/patch, side effect) count one each.
BILLABLE = {
    "WORKFLOW_EXECUTION_STARTED": "workflow started",
    "ACTIVITY_TASK_SCHEDULED": "activity scheduled",
    "TIMER_STARTED": "timer started",
    "WORKFLOW_EXECUTION_SIGNALED": "signal received",
    "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES": "search attribute upsert",
    "WORKFLOW_EXECUTION_UPDATE_ACCEPTED": "update accepted",
    "START_CHILD_WORKFLOW_EXECUTION_INITIATED": "child workflow started",
    "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED": "signal sent",
    "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED": "cancel sent",
    "WORKFLOW_PROPERTIES_MODIFIED": "memo upsert",
    "WORKFLOW_EXECUTION_CONTINUED_AS_NEW": "continue-as-new",
}


def _etype(event) -> str:
    from temporalio.api.enums.v1 import EventType

    return EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")


async def history_events(client, workflow_id: str) -> list:
    handle = client.get_workflow_handle(workflow_id)
    return [e async for e in handle.fetch_history_events()]


def count_actions(events: list) -> dict[str, Any]:
    """Billable actions of one history, by kind, plus activity retries (each retry attempt
    is an action too; the ATTEMPT of a started activity > 1 means retries)."""
    kinds: dict[str, int] = {}
    la_tasks: set[int] = set()
    other_markers = 0
    retries = 0
    activity_types: dict[str, int] = {}
    for e in events:
        t = _etype(e)
        if t in BILLABLE:
            kinds[BILLABLE[t]] = kinds.get(BILLABLE[t], 0) + 1
            if t == "ACTIVITY_TASK_SCHEDULED":
                name = e.activity_task_scheduled_event_attributes.activity_type.name
                activity_types[name] = activity_types.get(name, 0) + 1
        elif t == "MARKER_RECORDED":
            a = e.marker_recorded_event_attributes
            if a.marker_name == "core_local_activity":
                la_tasks.add(a.workflow_task_completed_event_id)
            else:
                other_markers += 1
        elif t == "ACTIVITY_TASK_STARTED":
            retries += max(0, e.activity_task_started_event_attributes.attempt - 1)
    if la_tasks:
        kinds["local activities (per workflow task)"] = len(la_tasks)
    if other_markers:
        kinds["other markers"] = other_markers
    if retries:
        kinds["activity retries"] = retries
    local_markers = sum(
        1
        for e in events
        if _etype(e) == "MARKER_RECORDED"
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )
    return {
        "total": sum(kinds.values()),
        "kinds": kinds,
        "events": len(events),
        "activities": activity_types,
        "local_activity_markers": local_markers,
    }


# --- process sampling -------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User+system CPU seconds of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary_ms(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "n": len(ms),
        "p50": pct(ms, 50),
        "p95": pct(ms, 95),
        "p99": pct(ms, 99),
        "max": max(ms) if ms else float("nan"),
        "mean": statistics.fmean(ms) if ms else float("nan"),
    }


# --- docs/benchmarks.md -----------------------------------------------------------------

HEADER = """# Benchmarks

Figures measured on the machine named in each section by the scripts in `bench/` (one command
each; `python -m bench` runs all with small defaults). Every figure comes with the load
average of the machine when it was taken: other processes (test suites) may have been
running at the same time on the same 2 cores. Nothing in the test suite asserts a timing.

Each section is rewritten by its script between its markers.
"""


def machine_block(settings: dict[str, Any], command: str) -> str:
    m = machine()
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in m.items()]
    lines += [f"| {k} | {v} |" for k, v in settings.items()]
    return "\n".join(lines) + f"\n\nReproduce: `{command}`\n"


def write_section(name: str, body: str) -> None:
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = DOC.read_text() if DOC.exists() else HEADER
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
    print(f"[bench] wrote section {name} of {DOC}")


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(c) for c in r) + " |")
    return "\n".join(out)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def run(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(coro_fn())
