"""Helpers of the fault tests (tests/e2e/test_faults.py): start a DevStack, drive and inspect it
(signed callbacks, scripted orders, the delivery log, the mail folder, process control)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx

from runtime.client import SentinelClient
from sentinel.models import Contact, WithdrawalRequest
from sentinel.settings import ROOT, Settings
from sentinel.signing import SIGNATURE_HEADER, sign
from starter.devstack import DevStack, Ports
from store.db import engine_for
from store.repo import deliveries_for
from tests.support.common import free_port

DEV_SECRET = "dev-channel-secret"

#: notice stages that go out for a failed withdrawal with a user-fixable code (AC04)
SENT = {"sent"}


def make_stack(data: Path) -> DevStack:
    ports = Ports(
        temporal=free_port(), ui=free_port(), smtp=free_port(), simulator=free_port(), gateway=free_port()
    )
    return DevStack(
        data_dir=data,
        ports=ports,
        headless=True,
        env_overrides={"SENTINEL_DELAYS_FILE": str(ROOT / "config" / "delays.demo.yaml")},
    )


async def connect(stack: DevStack) -> SentinelClient:
    return await SentinelClient.connect(
        Settings(_env_file=None, temporal_address=f"127.0.0.1:{stack.ports.temporal}")
    )


def request_for(wid: str, user: str | None = None) -> WithdrawalRequest:
    # one user per withdrawal: the notice policy's per-user cap and inhibition stay out of the way
    return WithdrawalRequest(
        withdrawal_id=wid,
        user_id=user or f"u-{wid}",
        amount="66.60",
        currency="CNY",
        channel="generic",
        bank_code="CMB",
        card_last4="4321",
        payee_ref="vault:tok_fault",
        locale="zh-CN",
        contact=Contact(email=f"{wid.lower()}@example.com"),
    )


def proc(stack: DevStack, name: str) -> subprocess.Popen | None:
    for pname, p in stack.procs:
        if pname == name:
            return p
    return None


def kill9(stack: DevStack, name: str) -> None:
    """kill -9 the named process group (started by this stack) and forget it."""
    stack.stop(name, signal.SIGKILL)


def ensure_worker(stack: DevStack) -> bool:
    """Start a worker if none is alive. True when one had to be started."""
    p = proc(stack, "worker")
    if p is not None and p.poll() is None:
        return False
    if p is not None:
        stack.procs.remove(("worker", p))
    stack.start_worker()
    return True


async def script(sim_url: str, wid: str, body: dict) -> None:
    async with httpx.AsyncClient() as http:
        (await http.put(f"{sim_url}/_sim/scripts/{wid}", json=body)).raise_for_status()


#: the order stays PROCESSING for an hour: only the callbacks the test sends decide it
PROCESSING_ONLY = {
    "steps": [{"after_s": 0, "status": "PROCESSING"}, {"after_s": 3600, "status": "PROCESSING"}]
}


def callback_body(
    order_id: str, event_id: str, status: str, code: str | None = None, occurred_at: datetime | None = None
) -> bytes:
    at = (occurred_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {"event_id": event_id, "order_id": order_id, "status": status, "code": code, "occurred_at": at}
    ).encode()


def signed(body: bytes, secret: str = DEV_SECRET) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(secret, body, int(time.time())), "Content-Type": "application/json"}


async def post_callback(
    http: httpx.AsyncClient, gw_url: str, body: bytes, secret: str = DEV_SECRET
) -> httpx.Response:
    return await http.post(f"{gw_url}/v1/callbacks/generic", content=body, headers=signed(body, secret))


async def wait_until(check, timeout: float, what: str, interval: float = 0.3):
    """Poll ``check`` (sync or async, returns a truthy value when done) until ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
            if asyncio.iscoroutine(last):
                last = await last
        except Exception as exc:  # transient (server restarting): keep polling until the deadline
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)


def engine(stack: DevStack):
    return engine_for(f"sqlite:///{stack.data_dir / 'sentinel.db'}")


def delivery_summary(stack: DevStack, wid: str) -> dict[str, tuple[int, str]]:
    """key -> (rows with that key, status) from the delivery log."""
    rows = deliveries_for(engine(stack), wid)
    counts = Counter(r.key for r in rows)
    return {r.key: (counts[r.key], r.status) for r in rows}


def mails_for(stack: DevStack, wid: str) -> int:
    """How many emails the SMTP sink accepted that mention this withdrawal."""
    folder = stack.data_dir / "mail"
    if not folder.exists():
        return 0
    return sum(1 for m in folder.glob("*.eml") if wid.encode() in m.read_bytes())


def all_sent_once(stack: DevStack, wid: str, channels: set[str]) -> bool:
    """Every key of this withdrawal is one row, sent; the channels are exactly ``channels``."""
    rows = deliveries_for(engine(stack), wid)
    keys = Counter(r.key for r in rows)
    return (
        bool(rows)
        and all(n == 1 for n in keys.values())
        and all(r.status == "sent" for r in rows)
        and {r.channel for r in rows} == channels
    )


def os_alive(p: subprocess.Popen | None) -> bool:
    return p is not None and p.poll() is None


def signal_group(p: subprocess.Popen, sig: int) -> None:
    os.killpg(p.pid, sig)


@contextmanager
def started(stack: DevStack):
    """Start every process of the stack; stop them all afterwards (also when a start fails)."""
    try:
        stack.start_all()
    except Exception:
        stack.stop()
        raise
    try:
        yield stack
    finally:
        stack.stop()
