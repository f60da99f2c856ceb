"""The HTTP gateway in process (httpx ASGITransport) with a real worker on the
time-skipping server, and the credentials of the development keys file
(config/api_keys.dev.yaml) and of signed user tokens."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from gateway.app import create_app
from gateway.views import StatusOut
from runtime.client import SentinelClient
from sentinel.models import WithdrawalRequest, WithdrawalView
from sentinel.settings import Settings
from sentinel.signing import SIGNATURE_HEADER, sign
from sentinel.taxonomy import WithdrawalStatus
from sentinel.user_tokens import make_user_token
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import make_request, running

HELD = "60000.00"  # CNY: the large_amount risk rule holds it for review (UNDER_REVIEW)


#: the public keys of the development keys file, by principal name
DEV_KEYS = {
    "payment-service": "dev-payment-service-key",
    "alice": "dev-reviewer-alice-key",
    "bob": "dev-reviewer-bob-key",
    "carol": "dev-supervisor-key",
    "ops": "dev-operator-key",
}


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


class Clock:
    """The gateway's clock (token expiry, queue ages); tests move it forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Gateway:
    http: httpx.AsyncClient
    app: FastAPI
    sentinel: SentinelClient | None
    settings: Settings
    clock: Clock
    started: set[str] = field(default_factory=set)
    #: the time-skipping server the worker runs on (None: offline)
    env: object = None

    @property
    def engine(self):
        return self.app.state.engine

    @property
    def secret(self) -> str:
        return self.settings.channel_secret.get_secret_value()

    # --- credentials
    def key(self, name: str) -> dict[str, str]:
        """Headers for a principal of the dev keys file: payment-service, alice, bob, carol, ops."""
        return bearer(DEV_KEYS[name])

    def user(self, user_id: str, *, now: float | None = None, ttl: float = 3600) -> dict[str, str]:
        token = make_user_token(
            user_id, self.settings.user_token_secret, self.clock() if now is None else now, ttl
        )
        return bearer(token)

    # --- calls
    async def callback(
        self,
        body: bytes | dict,
        *,
        secret: str | None = None,
        at: int | None = None,
        channel: str = "generic",
        signature: str | None = None,
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        header = signature or sign(secret or self.secret, raw, at if at is not None else int(time.time()))
        return await self.http.post(
            f"/v1/callbacks/{channel}",
            content=raw,
            headers={SIGNATURE_HEADER: header, "Content-Type": "application/json"},
        )

    async def start(self, req: WithdrawalRequest) -> httpx.Response:
        self.started.add(req.withdrawal_id)
        return await self.http.post(
            "/v1/withdrawals", json=json.loads(req.model_dump_json()), headers=self.key("payment-service")
        )

    async def view(self, wid: str, timeout: float = 15.0) -> StatusOut:
        """The workflow's own (live) answer. On a loaded machine a query now and then misses
        the gateway's deadline and the answer is the projection: ask again."""
        deadline = time.monotonic() + timeout
        while True:
            resp = await self.http.get(f"/v1/withdrawals/{wid}", headers=self.key("payment-service"))
            assert resp.status_code == 200, resp.text
            view = StatusOut.model_validate(resp.json())
            if view.source == "live":
                return view
            assert time.monotonic() < deadline, f"the workflow of {wid} did not answer within {timeout} s"
            await asyncio.sleep(0.05)

    async def wait_for(self, wid: str, predicate, timeout: float = 15.0) -> WithdrawalView:
        deadline = time.monotonic() + timeout
        while True:
            view = await self.view(wid)
            if predicate(view) or time.monotonic() > deadline:
                return view
            await asyncio.sleep(0.05)

    async def decide(
        self, wid: str, who: str, decision: str, reason: str = "checked", **extra
    ) -> httpx.Response:
        """A decision through the gateway. In production the gateway and Temporal share one
        clock; here the test server's clock runs ahead once a test skips time, so the
        gateway signs the decision at the test server's time (its token would be expired
        against the workflow's clock otherwise)."""
        saved = self.clock.offset
        if self.env is not None:
            self.clock.offset = (await self.env.get_current_time()).timestamp() - time.time()
        try:
            return await self.http.post(
                f"/v1/reviews/{wid}/decision",
                headers=self.key(who),
                json={"decision": decision, "reason": reason, **extra},
            )
        finally:
            self.clock.offset = saved

    async def final(self, req: WithdrawalRequest) -> WithdrawalView:
        """The final view. The handle comes from an (idempotent) start, so that waiting for
        the result lets the time-skipping server jump over the workflow's timers."""
        handle = await self.sentinel.start_withdrawal(req)
        result = await asyncio.wait_for(handle.result(), 60)
        return result if isinstance(result, WithdrawalView) else WithdrawalView.model_validate(result)


def _app(settings: Settings, sentinel, clock: Clock) -> FastAPI:
    app = create_app(settings, client=sentinel, clock=clock)
    return app


@asynccontextmanager
async def gateway(ts_env, settings: Settings, channel=None):
    """Gateway + real worker on the time-skipping server."""
    clock = Clock()
    async with running(ts_env, settings, channel or ScriptedChannel()) as sentinel:
        app = _app(settings, sentinel, clock)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            gw = Gateway(http, app, sentinel, settings, clock, env=ts_env)
            try:
                yield gw
            finally:
                await terminate_running(sentinel, gw.started)


@asynccontextmanager
async def offline_gateway(settings: Settings, client=None):
    """Gateway without a worker of its own (``client`` may be a stub, or a real client whose
    worker the test runs and stops): for what fails before any workflow is asked, for the
    store-only endpoints, and for a stopped worker."""
    clock = Clock()
    app = _app(settings, client, clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield Gateway(http, app, client, settings, clock)


async def terminate_running(sentinel: SentinelClient, withdrawal_ids) -> None:
    """End what a test left running. The time-skipping server is shared by the module: a
    workflow whose worker is gone keeps a timer's task pending, and time no longer skips
    for any later test."""
    for wid in withdrawal_ids:
        handle = sentinel.handle(wid)
        try:
            desc = await handle.describe()
            if desc.status != WorkflowExecutionStatus.RUNNING:
                continue
            # Work in flight when its workflow is terminated (a started activity or
            # workflow task) keeps the test server from skipping time afterwards: let it
            # finish first.
            deadline = time.monotonic() + 3
            while _busy(desc) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                desc = await handle.describe()
            await handle.terminate("test finished")
        except RPCError:
            pass


async def hold(gw, unique_id: str, amount: str = HELD, **extra):
    """Start a withdrawal of user ``u-<id>`` that a risk rule holds; return once it is
    UNDER_REVIEW and its notices are delivered."""
    req = make_request(unique_id, user_id=f"u-{unique_id}", amount=amount, **extra)
    assert (await gw.start(req)).status_code == 202
    view = await gw.wait_for(unique_id, lambda v: v.status == WithdrawalStatus.UNDER_REVIEW and settled(v))
    assert view.status == WithdrawalStatus.UNDER_REVIEW and settled(view)
    return req


def settled(view) -> bool:
    """Every notice delivery has finished. (An activity still running when a test ends and
    terminates its workflow would keep the time-skipping server from skipping time.)"""
    return bool(view.notices) and all(
        set(n.channels) <= set(n.delivered) | set(n.failed) | set(n.suppressed) for n in view.notices
    )


def _busy(desc) -> bool:
    raw = desc.raw_description
    return bool(raw.pending_activities) or raw.HasField("pending_workflow_task")


def event(
    order_id: str, status: str = "FAILED", code: str | None = "AC04", event_id: str = "evt-1", **extra
) -> dict:
    """A generic-channel callback body (docs/channels/generic.md)."""
    body = {
        "event_id": event_id,
        "order_id": order_id,
        "status": status,
        "code": code,
        "message": "account closed",
        "occurred_at": "2026-11-27T02:10:00Z",
    }
    body.update(extra)
    return body


def whats(view: WithdrawalView) -> list[str]:
    return [e.what for e in view.timeline]
