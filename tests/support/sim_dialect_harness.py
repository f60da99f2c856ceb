"""Harness for the simulator's native dialects (tests/simulator/test_sim_*.py): the simulator served
on a real port with one dialect, and a receiver that records the callbacks it sends.

    async with dialect_sim(dialect) as sim:
        ... sim.url, sim.engine, sim.received (list of Received), await sim.callbacks(n)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import Response

from simulator.app import create_app
from simulator.engine import Engine
from simulator.keys import SimKeys, generate
from tests.support.local_server import serve

_KEYS: SimKeys | None = None


def sim_keys() -> SimKeys:
    """One generated key set per test process (RSA generation takes a moment)."""
    global _KEYS
    if _KEYS is None:
        _KEYS = generate()
    return _KEYS


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class DialectSim:
    url: str  # the simulator's base URL; the dialect's API is under f"{url}/{name}"
    receiver_url: str  # where callbacks go: f"{receiver_url}/v1/callbacks/<name>"
    engine: Engine
    received: list[Received] = field(default_factory=list)
    #: what the receiver answers (status, content type, body); e.g. Alipay wants b"success"
    answer: tuple[int, str, bytes] = (200, "text/plain", b"success")

    async def callbacks(self, n: int, timeout_s: float = 10.0) -> list[Received]:
        """Wait until at least ``n`` callbacks arrived; return them all."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(self.received) < n:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(self.received)} callback(s) arrived, expected {n}")
            await asyncio.sleep(0.02)
        return list(self.received)


@contextlib.asynccontextmanager
async def dialect_sim(
    *dialects, secret: str = "sim-secret", retry_delays=(0.05, 0.1)
) -> AsyncIterator[DialectSim]:
    recv = FastAPI()
    holder: dict[str, DialectSim] = {}

    @recv.post("/{path:path}")
    async def _record(path: str, request: Request) -> Response:
        sim = holder["sim"]
        sim.received.append(Received("/" + path, dict(request.headers), await request.body()))
        status, ctype, body = sim.answer
        return Response(body, status_code=status, media_type=ctype)

    app = create_app(secret, retry_delays=retry_delays, dialects=list(dialects))
    async with serve(recv) as receiver_url, serve(app) as url:
        sim = DialectSim(url=url, receiver_url=receiver_url, engine=app.state.engine)
        holder["sim"] = sim
        try:
            yield sim
        finally:
            await app.state.engine.aclose()
