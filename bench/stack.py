"""Start the real stack for a benchmark (DevStack, headless, free ports, a temp data dir, a
delays file written for the benchmark) and drive it: script the simulated channel, start N
withdrawals, wait for them to close. Measure, don't assert: nothing here fails on a timing."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402

from bench.measure import loadavg  # noqa: E402
from runtime.client import SentinelClient  # noqa: E402
from sentinel.models import Contact, WithdrawalRequest  # noqa: E402
from sentinel.settings import Settings  # noqa: E402
from simulator.requests import withdrawal_request  # noqa: E402
from starter.devstack import DevStack, Ports  # noqa: E402

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


def request_for(
    wid: str, amount: str = "88.80", email: str | None = "bench@example.com"
) -> WithdrawalRequest:
    return withdrawal_request(
        wid,
        user_id=f"u-{wid}",
        amount=amount,
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
