"""The simulator's Stripe dialect (simulator/dialects/stripe.py) against the platform's REAL
adapter ``channels/stripe.py``, configured as ``platform_env`` configures it.

Covers: polling by id and by listing on metadata (R10), signed webhooks verified and parsed
by the adapter, replays keeping the event id (R11), and every native code classifying to the
same category as the ISO code the scenario speaks (R26), e.g. account errors (R2).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from decimal import Decimal

import httpx
import pytest

from channels.base import CallbackRejected, ChannelRejectedRequest, ChannelUnavailable
from channels.stripe import StripeChannel, StripeConfig
from sentinel.catalogue import default_catalogue
from sentinel.classifier import classify
from sentinel.models import WithdrawalRequest
from sentinel.taxonomy import ExceptionCategory, PayoutState
from simulator.dialects.stripe import (
    FAILURE_CODES,
    FALLBACK_FAILURE_CODE,
    STATUSES,
    StripeDialect,
    native_state,
)
from simulator.keys import platform_env
from simulator.scripts import Script, Step, build_scenario
from tests.support.sim_dialect_harness import DialectSim, Received, dialect_sim, sim_keys

CATALOGUE = default_catalogue()
_ids = itertools.count(1)


def new_order_id() -> str:
    return f"SS{int(time.time())}x{next(_ids)}"


def withdrawal(order_id: str, amount: str = "12.34", currency: str = "USD") -> WithdrawalRequest:
    return WithdrawalRequest(
        withdrawal_id=order_id,
        user_id="U1",
        amount=Decimal(amount),
        currency=currency,
        channel="stripe",
        bank_code="STRIPE",
        card_last4="4242",
        payee_ref="ba_1Sim",
    )


def canonical(status: str, code: str | None):
    """How the platform classifies the scenario's own (status, ISO code)."""
    return classify(CATALOGUE, "generic", status, code)


@pytest.fixture(scope="module")
async def sim():
    dialect = StripeDialect(sim_keys(), webhook_url="http://127.0.0.1:9/unset")
    async with dialect_sim(dialect) as s:
        dialect.webhook_url = f"{s.receiver_url}/v1/callbacks/stripe"
        s.answer = (200, "application/json", b'{"received":true}')
        yield s


def make_channel(sim: DialectSim, **overrides) -> StripeChannel:
    env = platform_env(sim_keys(), sim.url)
    config = StripeConfig(
        api_base=env["SENTINEL_STRIPE_API_BASE"],
        secret_key=overrides.pop("secret_key", env["SENTINEL_STRIPE_SECRET_KEY"]),
        webhook_secret=env["SENTINEL_STRIPE_WEBHOOK_SECRET"],
        **overrides,
    )
    return StripeChannel(CATALOGUE, config)


@pytest.fixture()
async def channel(sim):
    ch = make_channel(sim)
    yield ch
    await ch.aclose()


def order_of(received: Received) -> str:
    return json.loads(received.body)["data"]["object"]["metadata"]["order_id"]


async def webhooks_for(sim: DialectSim, order_id: str, n: int, timeout_s: float = 10.0) -> list[Received]:
    deadline = time.monotonic() + timeout_s
    while True:
        mine = [r for r in sim.received if order_of(r) == order_id]
        if len(mine) >= n:
            return mine
        assert time.monotonic() < deadline, f"{len(mine)} webhook(s) for {order_id}, expected {n}"
        await asyncio.sleep(0.02)


async def steps_done(sim: DialectSim, order_id: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (order := sim.engine.get(order_id)).steps_done < len(order.script.steps):
        assert time.monotonic() < deadline, f"order {order_id} did not finish its script"
        await asyncio.sleep(0.02)


# --- scenarios: submit, webhooks, query --------------------------------------------------

SCENARIOS = [
    ("success", {"after_s": 0.1}),
    ("bank_delay", {"slow_after_s": 0.05, "delay_s": 0.3}),
    ("bank_delay", {"slow_after_s": 0.05, "delay_s": 0.3, "code": "TM01"}),
    ("account_error", {"after_s": 0.1}),
    ("account_error", {"after_s": 0.1, "code": "AC01"}),
    ("account_error", {"after_s": 0.1, "code": "BE01"}),
    ("limit", {"after_s": 0.1}),
    ("limit", {"after_s": 0.1, "code": "AM04"}),
    ("success_then_return", {"success_after_s": 0.1, "return_after_s": 0.3}),
    ("success_then_return", {"success_after_s": 0.1, "return_after_s": 0.3, "code": "AC01"}),
    ("no_callback_success", {"after_s": 0.1}),
]


@pytest.mark.parametrize(
    ("scenario", "params"), SCENARIOS, ids=[f"{s}-{p.get('code', '')}" for s, p in SCENARIOS]
)
async def test_scenario_through_the_real_adapter(sim, channel, scenario, params):
    order_id = new_order_id()
    script = build_scenario(scenario, params)
    sim.engine.set_script(order_id, script)
    obs = await channel.submit(withdrawal(order_id), order_id, None)
    assert (obs.raw_status, obs.classification.state) == ("pending", PayoutState.SUBMITTED)

    sent = [s for s in script.ordered_steps() if s.callback and native_state(s.status, s.code)[2]]
    received = await webhooks_for(sim, order_id, len(sent))
    for step, hook in zip(sent, received, strict=False):
        assert hook.path == "/v1/callbacks/stripe"
        event = channel.parse_callback(hook.headers, hook.body, time.time())  # signature verified
        got = channel.observe(
            event.order_id, event.raw_status, event.raw_code, "callback", event.occurred_at, event.event_id
        )
        want = canonical(step.status, step.code)
        assert event.order_id == order_id and event.event_id.startswith("evt_")
        assert got.classification.category == want.category, (step, event)
        # a return is Stripe's failed-after-paid: the workflow turns it into RETURNED
        assert got.classification.state == (PayoutState.FAILED if step.status == "RETURNED" else want.state)

    await steps_done(sim, order_id)
    last = script.ordered_steps()[-1]
    want = canonical(last.status, last.code)
    polled = await channel.query(order_id)  # by payout id
    fresh = make_channel(sim, query_page_size=2)  # a restarted worker: list by metadata
    try:
        listed = await fresh.query(order_id)
    finally:
        await fresh.aclose()
    for obs in (polled, listed):
        assert obs.classification.category == want.category
        assert obs.classification.state == (PayoutState.FAILED if last.status == "RETURNED" else want.state)
    await asyncio.sleep(0.2)
    assert len([r for r in sim.received if order_of(r) == order_id]) == len(sent)  # nothing extra


async def test_return_after_success_is_paid_then_failed(sim, channel):
    order_id = new_order_id()
    sim.engine.set_script(
        order_id, build_scenario("success_then_return", {"success_after_s": 0.1, "return_after_s": 0.3})
    )
    await channel.submit(withdrawal(order_id), order_id, None)
    paid, failed = await webhooks_for(sim, order_id, 2)
    events = [json.loads(h.body) for h in (paid, failed)]
    assert [e["type"] for e in events] == ["payout.paid", "payout.failed"]
    assert [e["data"]["object"]["status"] for e in events] == ["paid", "failed"]
    assert events[1]["data"]["object"]["failure_code"] == "account_closed"
    assert events[0]["data"]["object"]["id"] == events[1]["data"]["object"]["id"]


async def test_risk_hold_has_no_stripe_form_it_stays_pending_without_webhooks(sim, channel):
    order_id = new_order_id()
    sim.engine.set_script(order_id, build_scenario("risk_hold", {"after_s": 0.05}))
    await channel.submit(withdrawal(order_id), order_id, None)
    await steps_done(sim, order_id)
    await asyncio.sleep(0.2)
    assert not [r for r in sim.received if order_of(r) == order_id]
    assert sim.engine.get(order_id).callbacks[-1].state == "not_sent"
    obs = await channel.query(order_id)
    assert (obs.raw_status, obs.raw_code, obs.classification.state) == (
        "pending",
        None,
        PayoutState.SUBMITTED,
    )


async def test_replay_is_the_same_event(sim, channel):
    order_id = new_order_id()
    sim.engine.set_script(order_id, build_scenario("success", {"after_s": 0.05}))
    await channel.submit(withdrawal(order_id), order_id, None)
    (first,) = await webhooks_for(sim, order_id, 1)
    sim.engine.send_callback(sim.engine.get(order_id), replay=True)
    _, again = await webhooks_for(sim, order_id, 2)
    assert again.body == first.body
    a, b = (channel.parse_callback(h.headers, h.body, time.time()) for h in (first, again))
    assert a.event_id == b.event_id and a.raw_status == b.raw_status == "paid"


async def test_tampered_or_foreign_webhook_is_refused(sim, channel):
    order_id = new_order_id()
    sim.engine.set_script(order_id, build_scenario("success", {"after_s": 0.05}))
    await channel.submit(withdrawal(order_id), order_id, None)
    (hook,) = await webhooks_for(sim, order_id, 1)
    with pytest.raises(CallbackRejected) as err:
        channel.parse_callback(hook.headers, hook.body.replace(b'"paid"', b'"failed"', 1), time.time())
    assert err.value.status == 401


# --- submit answers ------------------------------------------------------------------------


async def test_wrong_api_key_is_401_and_records_nothing(sim):
    order_id = new_order_id()
    bad = make_channel(sim, secret_key="sk_test_wrong")
    try:
        with pytest.raises(ChannelRejectedRequest, match="401"):
            await bad.submit(withdrawal(order_id), order_id, None)
    finally:
        await bad.aclose()
    assert sim.engine.get(order_id) is None
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{sim.url}/stripe/v1/payouts")
    assert resp.status_code == 401 and resp.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("amount", "currency", "minor"), [("12.34", "USD", 1234), ("1000", "JPY", 1000), ("1.230", "KWD", 1230)]
)
async def test_idempotent_repeat_returns_the_same_payout(sim, channel, amount, currency, minor):
    order_id = new_order_id()
    await channel.submit(withdrawal(order_id, amount, currency), order_id, None)
    other = make_channel(sim)  # a second worker retries after a lost answer
    try:
        await other.submit(withdrawal(order_id, amount, currency), order_id, None)
        with pytest.raises(ChannelRejectedRequest, match="idempotency_error"):
            await other.submit(withdrawal(order_id, "99.00", currency), order_id, None)
    finally:
        await other.aclose()
    order = sim.engine.get(order_id)
    assert Decimal(order.request.amount) == Decimal(amount) and order.request.currency == currency
    assert len([o for o in sim.engine.orders() if o.order_id == order_id]) == 1
    env = platform_env(sim_keys(), sim.url)
    form = {
        "amount": str(minor),
        "currency": currency.lower(),
        "destination": "ba_1Sim",
        "metadata[order_id]": order_id,
        "metadata[withdrawal_id]": order_id,
    }
    headers = {"Authorization": f"Bearer {env['SENTINEL_STRIPE_SECRET_KEY']}", "Idempotency-Key": order_id}
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{sim.url}/stripe/v1/payouts", data=form, headers=headers)
    assert resp.status_code == 200 and resp.headers["idempotent-replayed"] == "true"
    payout = resp.json()
    assert payout["id"] == order.native["id"] and payout["id"].startswith("po_")
    assert (payout["object"], payout["amount"], payout["currency"]) == ("payout", minor, currency.lower())
    assert payout["metadata"] == {"order_id": order_id, "withdrawal_id": order_id}


@pytest.mark.parametrize("submit", ["http_500", "unknown"])
async def test_lost_submit_is_unknown_then_found_by_listing(sim, channel, submit):
    order_id = new_order_id()
    sim.engine.set_script(order_id, Script(submit=submit, steps=(Step(after_s=1.0, status="SUCCEEDED"),)))
    with pytest.raises(ChannelUnavailable):
        await channel.submit(withdrawal(order_id), order_id, None)
    assert sim.engine.get(order_id) is not None  # the payout exists all the same
    for _ in range(3):  # newer payouts on top: the listing has to page
        other = new_order_id()
        await channel.submit(withdrawal(other), other, None)
    fresh = make_channel(sim, query_page_size=1)
    try:
        early = await fresh.query(order_id)
        assert (early.raw_status, early.classification.state) == ("pending", PayoutState.SUBMITTED)
        await steps_done(sim, order_id)
        late = await fresh.query(order_id)
        assert (late.raw_status, late.classification.state) == ("paid", PayoutState.SUCCEEDED)
        if submit == "http_500":  # Stripe replays the saved 500 for the same key
            with pytest.raises(ChannelUnavailable):
                await fresh.submit(withdrawal(order_id), order_id, None)
        else:  # the in-flight request finished: the retry gets the payout
            assert (await fresh.submit(withdrawal(order_id), order_id, None)).raw_status == "pending"
    finally:
        await fresh.aclose()


# --- the code table ------------------------------------------------------------------------


def test_every_native_code_classifies_like_its_iso_code():
    for iso, native in FAILURE_CODES.items():
        assert CATALOGUE.lookup("stripe", native) is not None, native
        want = canonical("FAILED", iso)
        status = "PROCESSING" if want.category == ExceptionCategory.BANK_DELAY else "FAILED"
        want = canonical(status, iso)
        payout_status, code, _ = native_state(status, iso)
        assert code == native
        got = classify(CATALOGUE, "stripe", payout_status, code)
        assert (got.category, got.state) == (want.category, want.state), iso
        if status == "FAILED":  # a return carries the same cause
            returned = classify(CATALOGUE, "stripe", *native_state("RETURNED", iso)[:2])
            assert returned.category == canonical("RETURNED", iso).category, iso
    assert CATALOGUE.lookup("stripe", FALLBACK_FAILURE_CODE) is not None
    for status, (payout_status, _) in STATUSES.items():
        assert CATALOGUE.state("stripe", payout_status) is not None, status
