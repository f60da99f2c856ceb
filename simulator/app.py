"""HTTP face of the channel simulator (FastAPI).

Protocol routes (docs/channels/generic.md), signed with ``X-Channel-Signature``:

* ``POST /v1/payouts`` – submit (idempotent on order_id)
* ``GET /v1/payouts/{order_id}`` – query

Native protocols (docs/simulator.md), when dialects are given: each channel's own API under
``/<channel>`` (``/alipay/gateway.do``, ``/wechat/v3/...``, ``/stripe/v1/payouts``,
``/iso20022/payments``), with its own signatures, answers and callbacks.

Admin routes (test tool, no signature, loopback clients only unless ``admin_any_host``):

* ``PUT /_sim/scripts/{order_id}`` – script an order before it is submitted
* ``GET /_sim/scenarios`` – the named scenarios and their parameters
* ``GET /_sim/orders`` / ``GET /_sim/orders/{order_id}`` – orders, transitions, callbacks
* ``POST /_sim/orders/{order_id}/callback[?replay=1][&wait=1]`` – (re)send a callback
* ``DELETE /_sim/reset`` – forget everything
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from sentinel.models import ID_PATTERN
from sentinel.signing import SIGNATURE_HEADER, SignatureError, verify
from simulator.dialects.base import Dialect
from simulator.engine import DEFAULT_RETRY_DELAYS, AlreadySubmitted, DuplicateOrder, Engine, NoCallbackYet
from simulator.protocol import RequestError, parse_json_object, parse_payout_request
from simulator.scripts import (
    DEFAULT_SCENARIO,
    SCENARIO_DESCRIPTIONS,
    SCENARIOS,
    scenario_params,
    script_from_spec,
)

log = logging.getLogger("simulator")

_ID = re.compile(ID_PATTERN)


def _error(status_code: int, error: str, reason: str) -> JSONResponse:
    return JSONResponse({"error": error, "reason": reason}, status_code=status_code)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(
    secret: str,
    *,
    default_scenario: str = DEFAULT_SCENARIO,
    retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
    callback_timeout_s: float = 5.0,
    signature_tolerance_s: int = 300,
    admin: bool = True,
    admin_any_host: bool = False,
    clock: Callable[[], float] = time.time,
    dialects: Sequence[Dialect] = (),
) -> FastAPI:
    """Build the simulator app. The engine is ``app.state.engine``.

    ``secret``: HMAC secret shared with the platform (incoming requests and callbacks).
    ``default_scenario``: what an order without a script plays.
    ``retry_delays``: waits between callback attempts (attempts = len + 1).
    ``admin``: mount the ``/_sim`` routes; ``admin_any_host``: accept them from any client,
    not only loopback ones.
    ``clock``: unix time, for signature checks and signing.
    ``dialects``: native protocols to serve besides the generic one (simulator.dialects).
    """
    engine = Engine(
        secret,
        retry_delays=retry_delays,
        callback_timeout_s=callback_timeout_s,
        default_scenario=default_scenario,
        clock=clock,
        dialects=dialects,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info("simulator started (default scenario %s)", default_scenario)
        try:
            yield
        finally:
            await engine.aclose()
            log.info("simulator stopped")

    app = FastAPI(title="withdrawal-sentinel channel simulator", lifespan=lifespan)
    app.state.engine = engine

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return _error(400, "bad_request", reasons or "invalid request")

    def _check_signature(request: Request, body: bytes) -> JSONResponse | None:
        try:
            verify(secret, body, request.headers.get(SIGNATURE_HEADER), clock(), signature_tolerance_s)
        except SignatureError as exc:
            log.info("reject 401 %s %s: %s", request.method, request.url.path, exc)
            return _error(401, "unauthorized", str(exc))
        return None

    # --- protocol ----------------------------------------------------------------------

    @app.post("/v1/payouts")
    async def submit_payout(request: Request) -> JSONResponse:
        body = await request.body()
        if (denied := _check_signature(request, body)) is not None:
            return denied
        try:
            payout = parse_payout_request(body)
        except RequestError as exc:
            log.info("reject 400 POST /v1/payouts: %s", exc)
            return _error(400, "bad_request", str(exc))
        try:
            order, created = engine.submit(payout)
        except DuplicateOrder:
            return JSONResponse(
                {
                    "order_id": payout.order_id,
                    "status": "FAILED",
                    "code": "DUPLICATE",
                    "message": "order_id already used with different fields",
                },
                status_code=409,
            )
        if created and order.script.submit == "http_500":
            # The order is recorded, but the answer is "lost": the platform must query.
            return JSONResponse(
                {"error": "internal_error", "reason": "simulated system error"}, status_code=500
            )
        return JSONResponse(order.body())

    @app.get("/v1/payouts/{order_id}")
    async def query_payout(order_id: str, request: Request) -> JSONResponse:
        if (denied := _check_signature(request, b"")) is not None:
            return denied
        order = engine.get(order_id)
        if order is None:
            log.info("query order=%s -> NOT_FOUND", order_id)
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        log.info("query order=%s -> %s %s", order_id, order.status, order.code)
        return JSONResponse(order.query_body())

    for dialect in dialects:
        app.include_router(dialect.router(engine), prefix=f"/{dialect.name}")

    # --- admin -------------------------------------------------------------------------

    if admin:
        app.include_router(_admin_router(engine, admin_any_host))
    return app


def _admin_router(engine: Engine, any_host: bool) -> APIRouter:
    async def _loopback_only(request: Request) -> None:
        if not any_host and not _is_loopback(request.client.host if request.client else None):
            raise HTTPException(status_code=403, detail="admin endpoints are for loopback clients only")

    router = APIRouter(prefix="/_sim", dependencies=[Depends(_loopback_only)])

    @router.put("/scripts/{order_id}")
    async def put_script(order_id: str, request: Request) -> JSONResponse:
        if not _ID.match(order_id):
            return _error(400, "bad_request", f"order_id must match {ID_PATTERN}")
        try:
            script = script_from_spec(parse_json_object(await request.body()))
        except (RequestError, ValueError) as exc:
            return _error(400, "bad_request", str(exc))
        try:
            engine.set_script(order_id, script)
        except AlreadySubmitted:
            return _error(
                409, "conflict", f"order {order_id} has already been submitted; script it before submitting"
            )
        return JSONResponse({"order_id": order_id, "script": script.model_dump(mode="json")})

    @router.get("/scenarios")
    async def list_scenarios() -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "description": SCENARIO_DESCRIPTIONS.get(name, ""),
                "params": scenario_params(name),
            }
            for name in SCENARIOS
        ]

    @router.get("/orders")
    async def list_orders() -> list[dict[str, Any]]:
        return [order.view() for order in engine.orders()]

    @router.get("/orders/{order_id}")
    async def get_order(order_id: str) -> JSONResponse:
        order = engine.get(order_id)
        if order is None:
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        return JSONResponse(order.view())

    @router.post("/orders/{order_id}/callback")
    async def resend_callback(order_id: str, replay: bool = False, wait: bool = False) -> JSONResponse:
        order = engine.get(order_id)
        if order is None:
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        try:
            record = engine.send_callback(order, replay=replay)
        except NoCallbackYet:
            return _error(409, "conflict", f"order {order_id} has sent no callback yet; nothing to replay")
        log.info(
            "admin %s callback order=%s event=%s", "replay" if replay else "send", order_id, record.event_id
        )
        if wait:
            await record.done.wait()
            return JSONResponse(record.view())
        return JSONResponse(record.view(), status_code=202)

    @router.delete("/reset")
    async def reset() -> dict[str, bool]:
        await engine.reset()
        return {"reset": True}

    return router
