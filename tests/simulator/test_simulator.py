"""The payout channel simulator (simulator/), served by a real uvicorn on 127.0.0.1,
calling back a real receiver that checks signatures with sentinel.signing.verify."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sentinel.signing import SIGNATURE_HEADER, SignatureError, sign, verify
from simulator.__main__ import parse_args
from simulator.app import create_app
from simulator.engine import Engine
from simulator.protocol import PayoutRequest
from simulator.scripts import SCENARIOS, build_scenario, script_from_spec
from tests.support.local_server import serve

SECRET = "test-channel-secret"
FAST_RETRIES = (0.05, 0.1, 0.1, 0.1, 0.1)  # 6 attempts, under half a second
_ids = itertools.count(1)


def new_order_id() -> str:
    return f"SIM{int(time.time())}-{next(_ids)}"


# --- servers ---------------------------------------------------------------------------


class Receiver:
    """The platform's callback endpoint: records every delivery and its signature check."""

    def __init__(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        self.fail_first: dict[str, int] = defaultdict(int)  # order_id -> answers 503 this many times
        self.app = FastAPI()

        @self.app.post("/v1/callbacks/generic")
        async def callback(request: Request) -> JSONResponse:
            raw = await request.body()
            header = request.headers.get(SIGNATURE_HEADER)
            try:
                verify(SECRET, raw, header, time.time())
                verified, reason = True, None
            except SignatureError as exc:
                verified, reason = False, str(exc)
            body = json.loads(raw)
            self.deliveries.append({"body": body, "header": header, "raw": raw, "verified": verified})
            if not verified:
                return JSONResponse({"error": reason}, status_code=401)
            if self.fail_first[body["order_id"]] > 0:
                self.fail_first[body["order_id"]] -= 1
                return JSONResponse({"error": "busy"}, status_code=503)
            return JSONResponse({"received": True})

    def for_order(self, order_id: str) -> list[dict[str, Any]]:
        return [d for d in self.deliveries if d["body"]["order_id"] == order_id]


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    async with serve(rec.app, lifespan="on") as url:
        yield rec, url + "/v1/callbacks/generic"


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[str]:
    app = create_app(SECRET, retry_delays=FAST_RETRIES, callback_timeout_s=2.0)
    async with serve(app, lifespan="on") as url:
        yield url


@pytest.fixture(scope="module")
async def client(sim: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim, timeout=5.0) as c:
        yield c


@pytest.fixture
def dead_url() -> Callable[[], str]:
    """A URL on a port that is bound but not listening: connections are refused."""
    socks: list[socket.socket] = []

    def make() -> str:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1/callbacks/generic"

    yield make
    for s in socks:
        s.close()


# --- helpers ---------------------------------------------------------------------------


def payout(order_id: str, callback_url: str, **over: Any) -> dict[str, Any]:
    body = {
        "order_id": order_id,
        "amount": "100.00",
        "currency": "CNY",
        "bank_code": "ICBC",
        "payee_ref": "vault:tok_8f2",
        "card_last4": "1234",
        "callback_url": callback_url,
    }
    body.update(over)
    return body


async def post_signed(
    client: httpx.AsyncClient, path: str, body: Any, *, secret: str = SECRET, ts: int | None = None
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    header = sign(secret, raw, int(time.time()) if ts is None else ts)
    return await client.post(
        path, content=raw, headers={SIGNATURE_HEADER: header, "Content-Type": "application/json"}
    )


async def get_signed(client: httpx.AsyncClient, path: str, *, secret: str = SECRET) -> httpx.Response:
    return await client.get(path, headers={SIGNATURE_HEADER: sign(secret, b"", int(time.time()))})


async def script(client: httpx.AsyncClient, order_id: str, spec: dict[str, Any]) -> None:
    r = await client.put(f"/_sim/scripts/{order_id}", json=spec)
    assert r.status_code == 200, r.text


async def order_view(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    r = await client.get(f"/_sim/orders/{order_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.03)


# --- protocol --------------------------------------------------------------------------


async def test_signed_submit_is_accepted_and_queryable(client: httpx.AsyncClient, receiver: Any) -> None:
    _, cb = receiver
    oid = new_order_id()
    r = await post_signed(client, "/v1/payouts", payout(oid, cb))
    assert r.status_code == 200, r.text
    assert r.json() == {"order_id": oid, "status": "ACCEPTED", "code": None, "message": "accepted"}

    q = await get_signed(client, f"/v1/payouts/{oid}")
    assert q.status_code == 200
    body = q.json()
    assert body["order_id"] == oid and body["updated_at"].endswith("Z")
    assert body["status"] in {"ACCEPTED", "PROCESSING"}  # unscripted: plays `success`


async def test_bad_or_missing_signature_is_401(client: httpx.AsyncClient, receiver: Any) -> None:
    _, cb = receiver
    oid = new_order_id()
    r = await post_signed(client, "/v1/payouts", payout(oid, cb), secret="wrong-secret")
    assert r.status_code == 401
    assert "does not match" in r.json()["reason"]

    r = await client.post("/v1/payouts", json=payout(oid, cb))
    assert r.status_code == 401
    assert "missing" in r.json()["reason"]

    r = await client.get(
        f"/v1/payouts/{oid}", headers={SIGNATURE_HEADER: sign("nope", b"", int(time.time()))}
    )
    assert r.status_code == 401
    # nothing was recorded
    assert (await get_signed(client, f"/v1/payouts/{oid}")).status_code == 404


async def test_stale_timestamp_is_401(client: httpx.AsyncClient, receiver: Any) -> None:
    _, cb = receiver
    r = await post_signed(client, "/v1/payouts", payout(new_order_id(), cb), ts=int(time.time()) - 301)
    assert r.status_code == 401
    assert "tolerance" in r.json()["reason"]


async def test_malformed_body_is_400_with_reason(client: httpx.AsyncClient, receiver: Any) -> None:
    _, cb = receiver
    r = await post_signed(client, "/v1/payouts", b'{"order_id": "X1", ')
    assert r.status_code == 400
    assert "malformed JSON" in r.json()["reason"]

    r = await post_signed(client, "/v1/payouts", b"[1, 2]")
    assert r.status_code == 400 and "JSON object" in r.json()["reason"]

    body = payout(new_order_id(), cb)
    del body["currency"]
    r = await post_signed(client, "/v1/payouts", body)
    assert r.status_code == 400
    assert "currency: field required" in r.json()["reason"]

    r = await post_signed(client, "/v1/payouts", payout("bad id!", cb, card_last4="12"))
    assert r.status_code == 400
    reason = r.json()["reason"]
    assert "order_id" in reason and "card_last4" in reason

    r = await post_signed(client, "/v1/payouts", payout(new_order_id(), cb, payee_ref="6222 0212 3456 7894"))
    assert r.status_code == 400 and "looks like a card number" in r.json()["reason"]


@pytest.mark.parametrize("amount", [100.0, 100, "1e3", "-5.00", "0", "12.34567", ""])
async def test_amount_must_be_a_positive_decimal_string(
    client: httpx.AsyncClient, receiver: Any, amount: Any
) -> None:
    _, cb = receiver
    r = await post_signed(client, "/v1/payouts", payout(new_order_id(), cb, amount=amount))
    assert r.status_code == 400, r.text
    assert "amount" in r.json()["reason"]


async def test_repeat_with_same_fields_returns_current_state(
    client: httpx.AsyncClient, receiver: Any
) -> None:
    _, cb = receiver
    oid = new_order_id()
    await script(client, oid, {"steps": [{"after_s": 0, "status": "PROCESSING", "code": "TM01"}]})
    first = await post_signed(client, "/v1/payouts", payout(oid, cb))
    assert first.status_code == 200 and first.json()["status"] == "ACCEPTED"
    await asyncio.sleep(0.05)
    again = await post_signed(client, "/v1/payouts", payout(oid, cb, amount="100.0"))  # same amount
    assert again.status_code == 200
    assert again.json()["status"] == "PROCESSING" and again.json()["code"] == "TM01"
    orders = (await client.get("/_sim/orders")).json()
    assert [o["order_id"] for o in orders].count(oid) == 1


async def test_repeat_with_different_fields_is_409(client: httpx.AsyncClient, receiver: Any) -> None:
    _, cb = receiver
    oid = new_order_id()
    assert (await post_signed(client, "/v1/payouts", payout(oid, cb))).status_code == 200
    r = await post_signed(client, "/v1/payouts", payout(oid, cb, amount="200.00"))
    assert r.status_code == 409
    assert r.json()["status"] == "FAILED" and r.json()["code"] == "DUPLICATE"


async def test_query_unknown_order_is_404(client: httpx.AsyncClient) -> None:
    r = await get_signed(client, "/v1/payouts/NO-SUCH-ORDER")
    assert r.status_code == 404
    assert r.json() == {"status": "NOT_FOUND"}


# --- scripted outcomes and callbacks ---------------------------------------------------


async def test_account_error_sends_a_signed_callback(client: httpx.AsyncClient, receiver: Any) -> None:
    rec, cb = receiver
    oid = new_order_id()
    await script(client, oid, {"scenario": "account_error", "params": {"after_s": 0.2}})
    r = await post_signed(client, "/v1/payouts", payout(oid, cb))
    assert r.status_code == 200 and r.json()["status"] == "ACCEPTED"

    async def delivered() -> list[dict[str, Any]]:
        return rec.for_order(oid)

    [delivery] = await wait_for(delivered)
    assert delivery["verified"]
    verify(SECRET, delivery["raw"], delivery["header"], time.time())  # raises if not
    body = delivery["body"]
    assert body["status"] == "FAILED" and body["code"] == "AC04" and body["message"] == "account closed"
    assert body["event_id"].startswith("evt_") and body["occurred_at"].endswith("Z")
    assert set(body) == {"event_id", "order_id", "status", "code", "message", "occurred_at"}

    q = (await get_signed(client, f"/v1/payouts/{oid}")).json()
    assert (q["status"], q["code"]) == ("FAILED", "AC04")

    async def recorded() -> dict[str, Any] | None:
        view = await order_view(client, oid)
        cbs = view["callbacks"]
        return view if cbs and cbs[0]["state"] == "delivered" else None

    view = await wait_for(recorded)
    assert view["scenario"] == "account_error"
    [c] = view["callbacks"]
    assert c["event_id"] == body["event_id"] and c["http_status"] == 200 and c["attempts"] == 1


async def test_system_error_then_final_500_then_unknown_then_succeeded(
    client: httpx.AsyncClient, receiver: Any
) -> None:
    rec, cb = receiver
    oid = new_order_id()
    await script(client, oid, {"scenario": "system_error_then_final", "params": {"final_after_s": 0.6}})
    r = await post_signed(client, "/v1/payouts", payout(oid, cb))
    assert r.status_code == 500

    q = await get_signed(client, f"/v1/payouts/{oid}")
    assert q.status_code == 200 and q.json()["status"] == "UNKNOWN"

    async def final() -> bool:
        return (await get_signed(client, f"/v1/payouts/{oid}")).json()["status"] == "SUCCEEDED"

    await wait_for(final)
    # the repeated submit (a client retrying after the 500) now sees the current state
    again = await post_signed(client, "/v1/payouts", payout(oid, cb))
    assert again.status_code == 200 and again.json()["status"] == "SUCCEEDED"
    assert rec.for_order(oid) == []  # found by polling only
    assert (await order_view(client, oid))["callbacks"] == []


async def test_replayed_callback_keeps_event_id(client: httpx.AsyncClient, receiver: Any) -> None:
    rec, cb = receiver
    oid = new_order_id()
    await script(client, oid, {"scenario": "risk_hold", "params": {"after_s": 0.05}})
    assert (await post_signed(client, "/v1/payouts", payout(oid, cb))).status_code == 200

    async def one() -> list[dict[str, Any]]:
        return rec.for_order(oid)

    [first] = await wait_for(one)
    assert (first["body"]["status"], first["body"]["code"]) == ("HELD", "FR01")

    r = await client.post(f"/_sim/orders/{oid}/callback", params={"replay": 1, "wait": 1})
    assert r.status_code == 200, r.text
    assert r.json()["event_id"] == first["body"]["event_id"] and r.json()["replay"] is True
    assert r.json()["state"] == "delivered"

    r = await client.post(f"/_sim/orders/{oid}/callback", params={"wait": 1})
    assert r.status_code == 200
    fresh = r.json()["event_id"]
    assert fresh != first["body"]["event_id"]

    deliveries = rec.for_order(oid)
    assert [d["body"]["event_id"] for d in deliveries] == [first["body"]["event_id"]] * 2 + [fresh]
    assert deliveries[1]["body"] == first["body"]  # the same event, byte for byte
    assert all(d["verified"] for d in deliveries)


async def test_receiver_down_retries_are_recorded(
    client: httpx.AsyncClient, dead_url: Callable[[], str]
) -> None:
    oid = new_order_id()
    await script(client, oid, {"scenario": "limit", "params": {"after_s": 0}})
    assert (await post_signed(client, "/v1/payouts", payout(oid, dead_url()))).status_code == 200

    async def gave_up() -> dict[str, Any] | None:
        view = await order_view(client, oid)
        return view if view["callbacks"] and view["callbacks"][0]["state"] == "gave_up" else None

    view = await wait_for(gave_up, timeout=5)
    [c] = view["callbacks"]
    assert (c["status"], c["code"]) == ("FAILED", "AM02")
    assert c["attempts"] == len(FAST_RETRIES) + 1 == 6
    assert c["http_status"] is None
    assert all(a["error"] and a["http_status"] is None for a in c["attempt_log"])
    # the simulator keeps serving
    assert (await get_signed(client, f"/v1/payouts/{oid}")).json()["status"] == "FAILED"


async def test_non_2xx_answers_are_retried_until_delivered(client: httpx.AsyncClient, receiver: Any) -> None:
    rec, cb = receiver
    oid = new_order_id()
    rec.fail_first[oid] = 2
    await script(client, oid, {"scenario": "no_callback_success", "params": {"after_s": 0}})
    assert (await post_signed(client, "/v1/payouts", payout(oid, cb))).status_code == 200
    await asyncio.sleep(0.05)
    assert rec.for_order(oid) == []  # no callback in this scenario
    r = await client.post(f"/_sim/orders/{oid}/callback", params={"wait": 1})
    assert r.status_code == 200
    c = r.json()
    assert c["state"] == "delivered" and c["attempts"] == 3
    assert [a["http_status"] for a in c["attempt_log"]] == [503, 503, 200]
    assert len({d["body"]["event_id"] for d in rec.for_order(oid)}) == 1  # retries keep the event_id


async def test_custom_steps_and_submit_unknown(client: httpx.AsyncClient, receiver: Any) -> None:
    rec, cb = receiver
    oid = new_order_id()
    await script(
        client,
        oid,
        {
            "submit": "unknown",
            "steps": [
                {"after_s": 0.3, "status": "RETURNED", "code": "AC04", "callback": True},
                {"after_s": 0.1, "status": "SUCCEEDED", "code": None, "callback": True},
            ],
        },
    )
    r = await post_signed(client, "/v1/payouts", payout(oid, cb))
    assert r.status_code == 200 and r.json()["status"] == "UNKNOWN"

    async def two() -> list[dict[str, Any]] | None:
        got = rec.for_order(oid)
        return got if len(got) == 2 else None

    got = await wait_for(two)
    assert [(d["body"]["status"], d["body"]["code"]) for d in got] == [
        ("SUCCEEDED", None),
        ("RETURNED", "AC04"),
    ]
    view = await order_view(client, oid)
    assert [h["status"] for h in view["history"]] == ["UNKNOWN", "SUCCEEDED", "RETURNED"]


# --- admin -----------------------------------------------------------------------------


async def test_admin_script_validation(client: httpx.AsyncClient, receiver: Any) -> None:
    _, cb = receiver
    bad = [
        {"scenario": "no_such"},
        {"scenario": "bank_delay", "params": {"delay": 5}},
        {"scenario": "bank_delay", "params": {"delay_s": "soon"}},
        {"steps": [{"after_s": 1, "status": "DONE"}]},
        {"steps": [{"after_s": -1, "status": "FAILED"}]},
        {"steps": [], "submit": "explode"},
        {"nothing": True},
    ]
    for spec in bad:
        r = await client.put("/_sim/scripts/ORD-X", json=spec)
        assert r.status_code == 400, (spec, r.text)
        assert r.json()["reason"]
    r = await client.put("/_sim/scripts/ORD-X", content=b"{oops")
    assert r.status_code == 400

    oid = new_order_id()
    assert (await post_signed(client, "/v1/payouts", payout(oid, cb))).status_code == 200
    r = await client.put(f"/_sim/scripts/{oid}", json={"scenario": "limit"})
    assert r.status_code == 409

    r = await client.get("/_sim/scenarios")
    assert {s["name"] for s in r.json()} == set(SCENARIOS)
    assert next(s for s in r.json() if s["name"] == "bank_delay")["params"]["delay_s"] == 30.0

    assert (await client.post("/_sim/orders/NOPE/callback")).status_code == 404
    fresh = new_order_id()
    await script(client, fresh, {"steps": []})
    assert (await post_signed(client, "/v1/payouts", payout(fresh, cb))).status_code == 200
    assert (await client.post(f"/_sim/orders/{fresh}/callback", params={"replay": 1})).status_code == 409


async def test_admin_is_loopback_only_and_reset() -> None:
    app = create_app(SECRET)
    remote = httpx.ASGITransport(app=app, client=("10.1.2.3", 4000))
    async with httpx.AsyncClient(transport=remote, base_url="http://sim") as c:
        assert (await c.get("/_sim/orders")).status_code == 403
    local = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=local, base_url="http://sim") as c:
        oid = new_order_id()
        await script(c, oid, {"steps": [{"after_s": 60, "status": "SUCCEEDED"}]})
        assert (await post_signed(c, "/v1/payouts", payout(oid, "http://127.0.0.1:9/cb"))).status_code == 200
        assert len((await c.get("/_sim/orders")).json()) == 1
        assert (await c.delete("/_sim/reset")).json() == {"reset": True}
        assert (await c.get("/_sim/orders")).json() == []
        assert (await get_signed(c, f"/v1/payouts/{oid}")).status_code == 404
    await app.state.engine.aclose()
    assert not app.state.engine._tasks


# --- pure parts ------------------------------------------------------------------------


def test_named_scenarios() -> None:
    for name in SCENARIOS:
        s = build_scenario(name)
        assert s.scenario == name and s.steps
    ok = build_scenario("success")
    assert [(st.after_s, st.status, st.callback) for st in ok.ordered_steps()] == [
        (0, "PROCESSING", False),
        (2.0, "SUCCEEDED", True),
    ]
    delay = build_scenario("bank_delay", {"delay_s": 5})
    assert [(st.after_s, st.status, st.code, st.callback) for st in delay.ordered_steps()] == [
        (0, "PROCESSING", None, False),
        (1.0, "PROCESSING", "AB08", True),
        (5.0, "SUCCEEDED", None, True),
    ]
    assert build_scenario("bank_delay").ordered_steps()[-1].after_s == 30.0
    sys_err = build_scenario("system_error_then_final")
    assert sys_err.submit == "http_500" and not any(st.callback for st in sys_err.steps)
    assert sys_err.initial_status == "UNKNOWN"
    ret = build_scenario("success_then_return")
    assert [(st.status, st.code) for st in ret.ordered_steps()] == [("SUCCEEDED", None), ("RETURNED", "AC04")]
    assert not build_scenario("no_callback_success").steps[0].callback
    custom = script_from_spec({"steps": [{"after_s": 1, "status": "HELD", "code": "RISK", "callback": True}]})
    assert custom.submit == "ok"
    with pytest.raises(ValueError):
        build_scenario("limit", {"after_s": True})


async def test_engine_close_cancels_scheduled_steps() -> None:
    engine = Engine(SECRET, retry_delays=FAST_RETRIES)
    engine.set_script("E1", build_scenario("bank_delay", {"delay_s": 60}))
    order, created = engine.submit(
        PayoutRequest(
            order_id="E1",
            amount="1.00",
            currency="CNY",
            bank_code="ICBC",
            payee_ref="vault:t",
            card_last4="0000",
            callback_url="http://127.0.0.1:9/cb",
        )
    )
    assert created and engine._tasks
    await asyncio.sleep(0.02)
    assert order.status == "PROCESSING"
    await engine.aclose()
    assert not engine._tasks


def test_cli_defaults_to_loopback() -> None:
    args = parse_args(["--secret", "S"])
    assert (args.host, args.port, args.secret, args.admin_any_host) == ("127.0.0.1", 8701, "S", False)
