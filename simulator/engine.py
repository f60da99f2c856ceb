"""The simulated channel's state: an in-memory order book, the scheduled steps of each
order's script (asyncio tasks) and the signed callbacks (httpx, with retries).

Everything runs on the event loop of the app; nothing is persisted. :meth:`Engine.aclose`
cancels every scheduled step and pending delivery.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from sentinel.signing import SIGNATURE_HEADER, sign
from simulator.events import CallbackEvent, CallbackRenderer
from simulator.orders import Attempt, CallbackRecord, Order, Transition
from simulator.protocol import PayoutRequest, callback_body, encode
from simulator.scripts import DEFAULT_SCENARIO, Script, Step, build_scenario, message_for

log = logging.getLogger("simulator")

DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)  # 6 attempts in all


class DuplicateOrder(Exception):
    """The order_id is known with different fields."""


class AlreadySubmitted(Exception):
    """A script was set for an order that has already been submitted."""


class NoCallbackYet(Exception):
    """A replay was asked for an order that has not sent any callback."""


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(8)


def _now() -> datetime:
    return datetime.now(UTC)


class Engine:
    """In-memory order book of the simulated channel.

    ``retry_delays``: waits between callback attempts (attempts = len + 1).
    ``default_scenario``: played by orders without a script set beforehand.
    """

    def __init__(
        self,
        secret: str,
        *,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        callback_timeout_s: float = 5.0,
        default_scenario: str = DEFAULT_SCENARIO,
        clock: Callable[[], float] = time.time,
        dialects: Sequence[CallbackRenderer] = (),
    ) -> None:
        if not secret:
            raise ValueError("the channel secret must not be empty")
        self._secret = secret
        self.retry_delays = tuple(float(d) for d in retry_delays)
        self.callback_timeout_s = callback_timeout_s
        self.default_script = build_scenario(default_scenario)
        self._clock = clock
        self._orders: dict[str, Order] = {}
        self._scripts: dict[str, Script] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._client: httpx.AsyncClient | None = None
        self._closed = False
        self.dialects: dict[str, CallbackRenderer] = {d.name: d for d in dialects}

    # --- lifecycle ---------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cancel every scheduled step and delivery, close the HTTP client."""
        self._closed = True
        await self._cancel_tasks()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def reset(self) -> None:
        """Forget every order and script (scheduled steps are cancelled)."""
        await self._cancel_tasks()
        self._orders.clear()
        self._scripts.clear()
        log.info("reset: all orders and scripts forgotten")

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _http(self) -> httpx.AsyncClient:
        # Created lazily: under httpx.ASGITransport the lifespan does not run.
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.callback_timeout_s)
        return self._client

    # --- scripts -----------------------------------------------------------------------

    def set_script(self, order_id: str, script: Script) -> None:
        if order_id in self._orders:
            raise AlreadySubmitted(order_id)
        self._scripts[order_id] = script
        log.info(
            "script set order=%s scenario=%s submit=%s steps=%d",
            order_id,
            script.scenario or "custom",
            script.submit,
            len(script.steps),
        )

    def script_for(self, order_id: str) -> Script | None:
        return self._scripts.get(order_id)

    # --- protocol ----------------------------------------------------------------------

    def submit(self, request: PayoutRequest, dialect: str = "generic") -> tuple[Order, bool]:
        """Record the order (or find it again). Returns ``(order, created)``; raises
        DuplicateOrder when the order_id is known with different fields (or came in
        another protocol)."""
        existing = self._orders.get(request.order_id)
        if existing is not None:
            if not existing.request.same_order(request) or existing.dialect != dialect:
                log.info("submit order=%s rejected: DUPLICATE with different fields", request.order_id)
                raise DuplicateOrder(request.order_id)
            log.info(
                "submit order=%s repeated: status=%s code=%s",
                request.order_id,
                existing.status,
                existing.code,
            )
            return existing, False
        script = self._scripts.pop(request.order_id, None) or self.default_script
        now = _now()
        status = script.initial_status
        order = Order(
            request=request,
            script=script,
            status=status,
            code=None,
            message=message_for(status, None),
            submitted_at=now,
            updated_at=now,
            history=[Transition(now, status, None)],
            dialect=dialect,
        )
        self._orders[request.order_id] = order
        log.info(
            "submit %s order=%s amount=%s %s bank=%s scenario=%s submit=%s status=%s",
            dialect,
            order.order_id,
            request.amount,
            request.currency,
            request.bank_code,
            script.scenario or "custom",
            script.submit,
            status,
        )
        if script.steps and not self._closed:
            self._spawn(self._play(order, asyncio.get_running_loop().time()), f"sim-steps-{order.order_id}")
        return order, True

    def get(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def orders(self) -> list[Order]:
        return list(self._orders.values())

    # --- steps -------------------------------------------------------------------------

    async def _play(self, order: Order, started: float) -> None:
        loop = asyncio.get_running_loop()
        for step in order.script.ordered_steps():
            await asyncio.sleep(max(0.0, started + step.after_s - loop.time()))
            self._apply(order, step)

    def _apply(self, order: Order, step: Step) -> None:
        now = _now()
        order.status, order.code, order.message = step.status, step.code, step.text
        order.updated_at = now
        order.steps_done += 1
        order.history.append(Transition(now, step.status, step.code))
        log.info(
            "step order=%s after_s=%g status=%s code=%s callback=%s",
            order.order_id,
            step.after_s,
            step.status,
            step.code,
            step.callback,
        )
        if step.callback:
            self.send_callback(order)

    # --- callbacks ---------------------------------------------------------------------

    def send_callback(self, order: Order, *, replay: bool = False) -> CallbackRecord:
        """Send the order's current state as a callback with a new event_id, or with
        ``replay`` the last callback again, byte for byte the same event (same event_id)."""
        if replay:
            if not order.callbacks:
                raise NoCallbackYet(order.order_id)
            body = dict(order.callbacks[-1].body)
        else:
            body = callback_body(
                new_event_id(), order.order_id, order.status, order.code, order.message, _now()
            )
        record = CallbackRecord(body=body, replay=replay)
        order.callbacks.append(record)
        self._spawn(self._deliver(order, record), f"sim-callback-{record.event_id}")
        return record

    def _request_for(self, order: Order, record: CallbackRecord) -> tuple[str, dict[str, str], bytes] | None:
        """The HTTP request of one attempt: the generic JSON protocol, or the order's
        dialect (signed afresh for each attempt)."""
        if order.dialect == "generic":
            payload = encode(record.body)
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self._secret, payload, int(self._clock())),
            }
            return order.request.callback_url, headers, payload
        body = record.body
        event = CallbackEvent(
            event_id=body["event_id"],
            order_id=body["order_id"],
            status=body["status"],
            code=body["code"],
            message=body["message"],
            occurred_at=datetime.fromisoformat(body["occurred_at"].replace("Z", "+00:00")),
        )
        native = self.dialects[order.dialect].callback(order, event, self._clock())
        return None if native is None else (native.url, native.headers, native.body)

    async def _deliver(self, order: Order, record: CallbackRecord) -> None:
        delays = self.retry_delays
        try:
            for attempt_no in range(1, len(delays) + 2):
                request = self._request_for(order, record)
                if request is None:
                    record.state = "not_sent"
                    log.info(
                        "callback order=%s event=%s: %s sends no notification for %s",
                        order.order_id,
                        record.event_id,
                        order.dialect,
                        record.body["status"],
                    )
                    return
                url, headers, payload = request
                attempt = Attempt(at=_now())
                record.attempts.append(attempt)
                try:
                    response = await self._http().post(url, content=payload, headers=headers)
                    attempt.http_status = response.status_code
                    ok = 200 <= response.status_code < 300
                except httpx.HTTPError as exc:
                    attempt.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    ok = False
                log.info(
                    "callback order=%s event=%s status=%s code=%s attempt=%d/%d -> %s%s",
                    order.order_id,
                    record.event_id,
                    record.body["status"],
                    record.body["code"],
                    attempt_no,
                    len(delays) + 1,
                    attempt.http_status if attempt.http_status is not None else attempt.error,
                    " (replay)" if record.replay else "",
                )
                if ok:
                    record.state = "delivered"
                    return
                if attempt_no <= len(delays):
                    await asyncio.sleep(delays[attempt_no - 1])
            record.state = "gave_up"
            log.info(
                "callback order=%s event=%s gave up after %d attempts",
                order.order_id,
                record.event_id,
                len(record.attempts),
            )
        except asyncio.CancelledError:
            if record.state == "pending":
                record.state = "cancelled"
            raise
        finally:
            record.done.set()
