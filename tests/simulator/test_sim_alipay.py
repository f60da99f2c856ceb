"""The simulator's Alipay dialect (simulator/dialects/alipay.py) against the platform's real
adapter ``channels.alipay.AlipayChannel``, configured as ``simulator.keys.platform_env``
configures it, over real HTTP: signed requests checked the way Alipay checks them, signed
answers and notifies the adapter verifies (R2 channel adapters, R10 callbacks and
replays, R11 query and unknown results, R26 native codes classified by the catalogue).

"The same category as the ISO code": the generic protocol speaks the scenarios' canonical
statuses with ISO 20022 codes (sentinel/codes/generic.yaml reuses iso20022.yaml), so
``classify(catalogue, "generic", status, code)`` is the reference for every native pair.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from channels.alipay import (
    QUERY_METHOD,
    TRANSFER_METHOD,
    AlipayChannel,
    AlipayConfig,
    load_private_key,
    rsa2_sign,
    sign_content,
)
from channels.base import ChannelRejectedRequest, ChannelUnavailable
from sentinel.catalogue import default_catalogue
from sentinel.classifier import classify
from sentinel.models import WithdrawalRequest
from sentinel.taxonomy import ExceptionCategory, PayoutState
from simulator.dialects.alipay import NATIVE_CODES, NATIVE_STATUS, AlipayDialect, native
from simulator.keys import platform_env
from simulator.scripts import Script, Step, build_scenario
from tests.support.sim_dialect_harness import DialectSim, dialect_sim, sim_keys

CATALOGUE = default_catalogue()
_ids = itertools.count(1)


def new_order_id() -> str:
    return f"A{int(time.time())}-{next(_ids)}"


def expected(status: str, code: str | None):
    """The catalogue's classification of the canonical (status, ISO code)."""
    return classify(CATALOGUE, "generic", status, code)


def alipay_side(status: str, code: str | None):
    """The catalogue's classification of what the dialect sends for (status, code)."""
    ali_status, ali_code = native(status, code)
    # No status: Alipay answers system busy (SYSTEM_ERROR), which the adapter reports as unknown.
    return classify(CATALOGUE, "alipay", ali_status or "SYSTEM_ERROR", ali_code)


# --- the native table ---------------------------------------------------------------------------


TABLE = [(status, iso) for status in ("FAILED", "RETURNED") for iso in sorted(NATIVE_CODES)]
TABLE += [("HELD", "FR01"), ("HELD", "RISK")]


@pytest.mark.parametrize("status, iso", TABLE)
def test_every_native_code_classifies_like_its_iso_code(status: str, iso: str):
    ali_status, ali_code = native(status, iso)
    assert CATALOGUE.lookup("alipay", ali_code) is not None, (
        f"{ali_code} is not in sentinel/codes/alipay.yaml"
    )
    assert alipay_side(status, iso).category == expected(status, iso).category, (ali_status, ali_code)


@pytest.mark.parametrize("status", sorted(NATIVE_STATUS))
def test_every_status_without_a_code_classifies_alike(status: str):
    ours, ref = alipay_side(status, None), expected(status, None)
    assert ours.category == ref.category
    # Alipay has no SUBMITTED (DEALING) and no HELD (its risk check refuses: FAIL).
    if status not in ("ACCEPTED", "HELD"):
        assert ours.state == ref.state


@pytest.mark.parametrize("iso", ["AB08", "TM01", "ED06"])
def test_a_delay_is_dealing_without_a_code(iso: str):
    """Alipay has no delay code: a slow order stays DEALING (the platform ages it into
    BANK_DELAY past delay_threshold), and Alipay sends no message for it."""
    assert native("PROCESSING", iso) == ("DEALING", None)
    assert alipay_side("PROCESSING", iso).state == expected("PROCESSING", iso).state == PayoutState.PROCESSING


# --- fixtures -----------------------------------------------------------------------------------


def make_channel(url: str, **overrides: Any) -> AlipayChannel:
    env = platform_env(sim_keys(), url)
    values: dict[str, Any] = dict(
        app_id=env["SENTINEL_ALIPAY_APP_ID"],
        gateway_url=env["SENTINEL_ALIPAY_GATEWAY_URL"],
        app_private_key_pem=env["SENTINEL_ALIPAY_APP_PRIVATE_KEY"],
        alipay_public_key_pem=env["SENTINEL_ALIPAY_PUBLIC_KEY"],
    )
    values.update(overrides)
    return AlipayChannel(CATALOGUE, AlipayConfig(**values))


@pytest.fixture()
async def sim():
    async with dialect_sim(AlipayDialect(sim_keys())) as running:
        yield running


@pytest.fixture()
async def alipay(sim: DialectSim):
    channel = make_channel(sim.url)
    yield channel
    await channel.aclose()


def withdrawal(order_id: str, **overrides: Any) -> WithdrawalRequest:
    values: dict[str, Any] = dict(
        withdrawal_id=order_id,
        user_id="u1",
        amount=Decimal("100.00"),
        currency="CNY",
        channel="alipay",
        bank_code="ALIPAY",
        card_last4="1234",
        payee_ref="vault:tok_ali_1",
    )
    values.update(overrides)
    return WithdrawalRequest(**values)


def callback_url(sim: DialectSim) -> str:
    return f"{sim.receiver_url}/v1/callbacks/alipay"


async def settled(sim: DialectSim, order_id: str, timeout_s: float = 10.0):
    """The order once every step has run and every callback is delivered (or not sent)."""
    deadline = time.monotonic() + timeout_s
    while True:
        order = sim.engine.get(order_id)
        if order.steps_done == len(order.script.steps) and all(r.done.is_set() for r in order.callbacks):
            return order
        assert time.monotonic() < deadline, f"order {order_id} did not settle"
        await asyncio.sleep(0.02)


# --- scenarios ----------------------------------------------------------------------------------

SCENARIOS = [
    # (scenario, params, canonical (status, code) of each notify Alipay sends, final query status)
    ("success", {"after_s": 0.1}, [("SUCCEEDED", None)], "SUCCESS"),
    (
        "bank_delay",
        {"slow_after_s": 0.1, "delay_s": 0.3},
        [("SUCCEEDED", None)],
        "SUCCESS",
    ),  # no notify for DEALING
    ("account_error", {"after_s": 0.1}, [("FAILED", "AC04")], "FAIL"),
    ("account_error", {"after_s": 0.1, "code": "AC01"}, [("FAILED", "AC01")], "FAIL"),
    ("account_error", {"after_s": 0.1, "code": "BE01"}, [("FAILED", "BE01")], "FAIL"),
    ("risk_hold", {"after_s": 0.1}, [("HELD", "FR01")], "FAIL"),
    ("risk_hold", {"after_s": 0.1, "code": "RISK"}, [("HELD", "RISK")], "FAIL"),
    ("limit", {"after_s": 0.1}, [("FAILED", "AM02")], "FAIL"),
    ("limit", {"after_s": 0.1, "code": "AM04"}, [("FAILED", "AM04")], "FAIL"),
    (
        "success_then_return",
        {"success_after_s": 0.1, "return_after_s": 0.3},
        [("SUCCEEDED", None), ("RETURNED", "AC04")],
        "REFUND",
    ),
    ("no_callback_success", {"after_s": 0.1}, [], "SUCCESS"),
]


@pytest.mark.parametrize(
    "scenario, params, notifies, final",
    SCENARIOS,
    ids=[f"{s[0]}-{s[1].get('code', 'default')}" for s in SCENARIOS],
)
async def test_scenario_submit_notify_and_query(
    sim: DialectSim, alipay: AlipayChannel, scenario, params, notifies, final
):
    order_id = new_order_id()
    sim.engine.set_script(order_id, build_scenario(scenario, params))
    obs = await alipay.submit(withdrawal(order_id), order_id, callback_url(sim))
    assert (obs.raw_status, obs.classification.state) == ("DEALING", PayoutState.PROCESSING)

    order = await settled(sim, order_id)
    assert len(sim.received) == len(notifies)
    # a DEALING (delay) event is recorded but not sent: Alipay has no message for it
    assert {r.state for r in order.callbacks} <= {"delivered", "not_sent"}
    for got, (status, code) in zip(sim.received, notifies, strict=False):
        assert got.path == "/v1/callbacks/alipay"
        event = alipay.parse_callback(got.headers, got.body, time.time())  # signature verified
        assert event.order_id == order_id and event.raw_status == native(status, code)[0]
        seen = alipay.observe(
            order_id, event.raw_status, event.raw_code, "callback", event.occurred_at, event.event_id
        )
        assert seen.classification.mapped
        assert seen.classification.category == expected(status, code).category

    polled = await alipay.query(order_id)
    assert polled.raw_status == final
    status, code = notifies[-1] if notifies else ("SUCCEEDED", None)
    assert polled.classification.category == expected(status, code).category


async def test_a_replay_is_the_same_notify(sim: DialectSim, alipay: AlipayChannel):
    order_id = new_order_id()
    sim.engine.set_script(order_id, build_scenario("account_error", {"after_s": 0.05}))
    await alipay.submit(withdrawal(order_id), order_id, callback_url(sim))
    order = await settled(sim, order_id)
    sim.engine.send_callback(order, replay=True)
    first, again = await sim.callbacks(2)
    a = alipay.parse_callback(first.headers, first.body, time.time())
    b = alipay.parse_callback(again.headers, again.body, time.time())
    assert a == b and first.body == again.body  # same notify_id: the workflow acts once
    sim.engine.send_callback(order)  # a new event of the same state is a new message
    third = (await sim.callbacks(3))[2]
    assert alipay.parse_callback(third.headers, third.body, time.time()).event_id != a.event_id


# --- unknown results: HTTP 500 and system busy --------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        build_scenario("system_error_then_final", {"final_after_s": 0.3}),
        Script(submit="unknown", steps=(Step(after_s=0.3, status="SUCCEEDED"),)),
    ],
    ids=["http_500", "unknown"],
)
async def test_unknown_submit_is_unavailable_and_query_finds_the_order(
    sim: DialectSim, alipay: AlipayChannel, script
):
    order_id = new_order_id()
    sim.engine.set_script(order_id, script)
    with pytest.raises(ChannelUnavailable):
        await alipay.submit(withdrawal(order_id), order_id, callback_url(sim))
    assert sim.engine.get(order_id) is not None  # recorded all the same
    with pytest.raises(ChannelUnavailable):  # Alipay itself cannot say yet: SYSTEM_ERROR
        await alipay.query(order_id)
    await settled(sim, order_id)
    polled = await alipay.query(order_id)
    assert (polled.raw_status, polled.classification.state) == ("SUCCESS", PayoutState.SUCCEEDED)
    again = await alipay.submit(
        withdrawal(order_id), order_id, callback_url(sim)
    )  # same out_biz_no: idempotent
    assert again.raw_status == "SUCCESS"
    assert sim.received == []


async def test_query_of_an_unknown_order_is_not_found(alipay: AlipayChannel):
    obs = await alipay.query(new_order_id())
    assert obs.raw_status == "NOT_FOUND" and obs.classification.state == PayoutState.UNKNOWN


async def test_same_out_biz_no_with_other_fields_is_a_duplicate(sim: DialectSim, alipay: AlipayChannel):
    order_id = new_order_id()
    await alipay.submit(withdrawal(order_id), order_id, callback_url(sim))
    obs = await alipay.submit(withdrawal(order_id, amount=Decimal("99.00")), order_id, callback_url(sim))
    assert (obs.raw_status, obs.raw_code) == ("FAIL", "PAYMENT_INFO_INCONSISTENCY")
    assert obs.classification.category == ExceptionCategory.DUPLICATE


# --- requests Alipay refuses ------------------------------------------------------------------


async def test_a_request_signed_with_the_wrong_key_is_refused(sim: DialectSim, alipay: AlipayChannel):
    wrong = make_channel(sim.url, app_private_key_pem=sim_keys().alipay_private_pem)  # not the app's key
    order_id = new_order_id()
    try:
        with pytest.raises(ChannelRejectedRequest, match="invalid-signature"):
            await wrong.submit(withdrawal(order_id), order_id, callback_url(sim))
        # the refusal itself is a signed answer the right adapter verifies
        params = wrong.signed_params(TRANSFER_METHOD, {"out_biz_no": order_id}, callback_url(sim))
        async with httpx.AsyncClient() as client:
            resp = await client.post(wrong.config.gateway_url, data=params)
    finally:
        await wrong.aclose()
    node = alipay.verified_node(TRANSFER_METHOD, resp.content)
    assert (node["code"], node["sub_code"]) == ("40002", "isv.invalid-signature")
    assert sim.engine.get(order_id) is None


QUERY_NODE = "alipay_fund_trans_common_query_response"
QUERY_BIZ = {"product_code": "TRANS_ACCOUNT_NO_PWD", "biz_scene": "DIRECT_TRANSFER"}


def _signed(params: dict[str, str]) -> dict[str, str]:
    key = load_private_key(sim_keys().alipay_app_private_pem)
    return {**params, "sign": rsa2_sign(key, sign_content(params))}


@pytest.mark.parametrize(
    "change, key, code, sub_code",
    [
        ({"sign": None}, QUERY_NODE, "40001", "isv.missing-signature"),
        ({"timestamp": "2001-01-01 00:00:00"}, QUERY_NODE, "40002", "isv.invalid-timestamp"),
        ({"method": "alipay.fund.trans.page.pay"}, "error_response", "40002", "isv.invalid-method"),
        ({"biz_content": "{not json"}, QUERY_NODE, "40004", "INVALID_PARAMETER"),
        ({"app_id": "2021000000009999"}, QUERY_NODE, "40002", "isv.invalid-app-id"),
    ],
    ids=["no-sign", "stale", "unknown-method", "biz-not-json", "other-app"],
)
async def test_malformed_requests_get_alipays_errors(
    sim: DialectSim, alipay: AlipayChannel, change, key, code, sub_code
):
    params = alipay.signed_params(QUERY_METHOD, {"out_biz_no": "X1", **QUERY_BIZ})
    params.pop("sign")
    params.update({k: v for k, v in change.items() if v is not None})
    params = _signed(params) if "sign" not in change else params
    async with httpx.AsyncClient() as client:
        resp = await client.post(
            alipay.config.gateway_url,
            content=urlencode(params).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
        )
    assert resp.status_code == 200 and resp.text.startswith(f'{{"{key}":')
    if sub_code == "isv.invalid-app-id":  # no app key pair to sign with: unsigned, still refused
        with pytest.raises(ChannelRejectedRequest):
            alipay.verified_node(params["method"], resp.content)
    else:
        node = alipay.verified_node(params["method"], resp.content)
        assert (node["code"], node["sub_code"]) == (code, sub_code)
    assert sim.engine.orders() == []


async def test_common_parameters_in_the_query_string_are_accepted(sim: DialectSim, alipay: AlipayChannel):
    """The SDKs put the common parameters in the URL and only biz_content in the body."""
    order_id = new_order_id()
    params = alipay.signed_params(QUERY_METHOD, {"out_biz_no": order_id, **QUERY_BIZ})
    body = {"biz_content": params.pop("biz_content")}
    async with httpx.AsyncClient() as client:
        resp = await client.post(alipay.config.gateway_url, params=params, data=body)
    node = alipay.verified_node(QUERY_METHOD, resp.content)
    assert (node["code"], node["sub_code"]) == ("40004", "ORDER_NOT_EXIST")
