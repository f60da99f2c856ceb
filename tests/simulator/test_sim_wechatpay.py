"""The simulator's WeChat Pay dialect (simulator/dialects/wechatpay.py) against the REAL
adapter, ``channels.wechatpay.WeChatPayChannel``, built by ``channels.registry`` from the
settings ``simulator.keys.platform_env`` gives, over real HTTP.

* R2: account errors (AC04, AC01, BE01) arrive as WeChat fail reasons that the platform
  classifies as ACCOUNT_INFO_ERROR, as the ISO codes are.
* R10: polling: every scenario's bill is queried by out_bill_no; after a 500 SYSTEM_ERROR or
  429 FREQUENCY_LIMITED submit the order is found by query.
* R11: callbacks: each MCHTRANSFER.BILL.FINISHED notify passes ``parse_callback`` (platform
  signature, AEAD_AES_256_GCM resource); a replay carries the same notify id.
* R26: every native code in the dialect's table classifies (through the catalogue) to the
  category of its ISO code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from channels.base import ChannelRejectedRequest, ChannelUnavailable
from channels.registry import build_channels
from channels.wechatpay import TRANSFER_PATH, WeChatPayChannel, WeChatPayee, decrypt_resource, to_out_bill_no
from sentinel.catalogue import default_catalogue
from sentinel.classifier import classify
from sentinel.models import WithdrawalRequest
from sentinel.settings import Settings
from sentinel.taxonomy import ExceptionCategory, PayoutState
from simulator.dialects.wechatpay import NATIVE, WeChatDialect, native_state
from simulator.keys import platform_env
from simulator.scripts import Script, Step, build_scenario
from tests.support.sim_dialect_harness import DialectSim, dialect_sim, sim_keys

CATALOGUE = default_catalogue()
DELAY_CODES = {"AB08", "TM01", "ED06"}
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def iso_category(status: str, code: str | None) -> ExceptionCategory | None:
    """How the platform classifies the canonical status and ISO code (generic channel)."""
    return classify(CATALOGUE, "generic", status, code).category


def wechat_category(state: str, reason: str | None) -> ExceptionCategory | None:
    return classify(CATALOGUE, "wechat", state, reason).category


def request(order_id: str, amount: str = "123.45") -> WithdrawalRequest:
    return WithdrawalRequest(
        withdrawal_id=order_id,
        user_id="U1",
        amount=Decimal(amount),
        currency="CNY",
        channel="wechat",
        bank_code="WECHAT",
        card_last4="0000",
        payee_ref=OPENID,
    )


@pytest.fixture(scope="module")
async def served() -> AsyncIterator[tuple[DialectSim, WeChatPayChannel]]:
    """The simulator with the WeChat dialect, and the platform's adapter configured from
    ``platform_env`` through ``build_channels``; one server for the module."""
    keys = sim_keys()
    async with dialect_sim(WeChatDialect(keys)) as sim:
        sim.answer = (200, "application/json", b'{"code":"SUCCESS"}')
        with pytest.MonkeyPatch.context() as mp:
            for name, value in platform_env(keys, sim.url).items():
                mp.setenv(name, value)
            channels = build_channels(Settings(_env_file=None), CATALOGUE)
        try:
            yield sim, channels["wechat"]  # type: ignore[misc]
        finally:
            for channel in channels.values():  # the unused ones hold no connections
                if hasattr(channel, "aclose"):
                    await channel.aclose()


@pytest.fixture
async def wx(served) -> tuple[DialectSim, WeChatPayChannel]:
    """The module's simulator, emptied: no orders, no received callbacks."""
    sim, _ = served
    await sim.engine.reset()
    sim.received.clear()
    return served


def notify_url(sim: DialectSim) -> str:
    return f"{sim.receiver_url}/v1/callbacks/wechat"


async def settle(sim: DialectSim, order_id: str, timeout_s: float = 5.0) -> None:
    """Wait until the order played every step and every callback delivery ended."""
    deadline = time.monotonic() + timeout_s
    order = sim.engine.get(order_id)
    assert order is not None
    while order.steps_done < len(order.script.steps):
        assert time.monotonic() < deadline, f"{order_id}: steps not played"
        await asyncio.sleep(0.02)
    for record in order.callbacks:
        await asyncio.wait_for(record.done.wait(), timeout_s)


# --- R26: the table ---------------------------------------------------------------------------


@pytest.mark.parametrize(("canonical", "native"), sorted(NATIVE.items(), key=str), ids=str)
def test_native_code_classifies_like_its_iso_code(canonical, native):
    (status, code), (state, reason) = canonical, native
    assert CATALOGUE.state("wechat", state) is not None, state
    if reason is not None:
        assert CATALOGUE.lookup("wechat", reason) is not None, reason
    if code in DELAY_CODES:
        # WeChat has no delay reason: the bill is plain PROCESSING (the platform's stuck timer
        # covers a slow bank), never a failure.
        assert classify(CATALOGUE, "wechat", state, reason).state == PayoutState.PROCESSING
        return
    assert wechat_category(state, reason) == iso_category(status, code)


def test_unmapped_codes_and_unknown():
    assert native_state("FAILED", "XX99") == ("FAIL", "OTHER_FAIL_REASON_TYPE")
    assert wechat_category("FAIL", "OTHER_FAIL_REASON_TYPE") == iso_category("FAILED", "XX99")
    assert native_state("UNKNOWN", None) is None


# --- scenarios: submit, query, callbacks (R2, R10, R11) -----------------------------------------

SCENARIOS = [
    ("success", {"after_s": 0.1}, 1),
    ("bank_delay", {"slow_after_s": 0.05, "delay_s": 0.2}, 1),  # PROCESSING/AB08: no notify
    ("bank_delay", {"slow_after_s": 0.05, "delay_s": 0.2, "code": "TM01"}, 1),
    ("account_error", {"after_s": 0.1}, 1),
    ("account_error", {"after_s": 0.1, "code": "AC01"}, 1),
    ("account_error", {"after_s": 0.1, "code": "BE01"}, 1),
    ("risk_hold", {"after_s": 0.1}, 1),
    ("risk_hold", {"after_s": 0.1, "code": "RISK"}, 1),
    ("limit", {"after_s": 0.1}, 1),
    ("limit", {"after_s": 0.1, "code": "AM04"}, 1),
    ("success_then_return", {"success_after_s": 0.1, "return_after_s": 0.25}, 2),
    ("no_callback_success", {"after_s": 0.1}, 0),
]


@pytest.mark.parametrize(("scenario", "params", "notifies"), SCENARIOS, ids=lambda v: str(v))
async def test_scenario_through_the_real_adapter(wx, scenario, params, notifies):
    order_id = "W1001_R2"  # out_bill_no W1001Z1R2: mapped back by from_out_bill_no
    sim, channel = wx
    sim.engine.set_script(order_id, build_scenario(scenario, params))
    obs = await channel.submit(request(order_id), order_id, notify_url(sim))
    assert (obs.raw_status, obs.classification.state) == ("ACCEPTED", PayoutState.SUBMITTED)
    order = sim.engine.get(order_id)
    assert order.request.amount == "123.45" and order.request.payee_ref == OPENID
    assert order.native["out_bill_no"] == to_out_bill_no(order_id)

    await settle(sim, order_id)
    polled = await channel.query(order_id)
    assert (polled.raw_status, polled.raw_code) == native_state(order.status, order.code)
    assert polled.classification.category == iso_category(order.status, order.code)

    delivered = [r for r in order.callbacks if r.state == "delivered"]
    assert len(delivered) == len(sim.received) == notifies
    assert all(r.state == "not_sent" for r in order.callbacks if r.state != "delivered")
    for record, received in zip(delivered, sim.received, strict=False):
        assert received.path == "/v1/callbacks/wechat"
        event = channel.parse_callback(received.headers, received.body, time.time())
        assert event.order_id == order_id
        assert (event.raw_status, event.raw_code) == native_state(record.body["status"], record.body["code"])
        assert wechat_category(event.raw_status, event.raw_code) == iso_category(
            record.body["status"], record.body["code"]
        )


async def test_replay_is_the_same_notify(wx):
    sim, channel = wx
    sim.engine.set_script("WXREPLAY1", build_scenario("account_error", {"after_s": 0.05, "code": "BE01"}))
    await channel.submit(request("WXREPLAY1"), "WXREPLAY1", notify_url(sim))
    await settle(sim, "WXREPLAY1")
    record = sim.engine.send_callback(sim.engine.get("WXREPLAY1"), replay=True)
    await record.done.wait()
    first, again = await sim.callbacks(2)
    a = channel.parse_callback(first.headers, first.body, time.time())
    b = channel.parse_callback(again.headers, again.body, time.time())
    assert a == b and (b.raw_status, b.raw_code) == ("FAIL", "NAME_NOT_CORRECT")
    assert first.body == again.body  # the same delivery, signed afresh


async def test_notify_resource_names_the_merchant_as_wechat_does(wx):
    """R11: the simulator's decrypted resource has the fields of WeChat's notification, the
    merchant as ``mchid`` (the adapter refuses one that names no merchant or another one)."""
    sim, channel = wx
    sim.engine.set_script("WXMCHID1", build_scenario("account_error", {"after_s": 0.05, "code": "AC04"}))
    await channel.submit(request("WXMCHID1"), "WXMCHID1", notify_url(sim))
    await settle(sim, "WXMCHID1")
    [received] = await sim.callbacks(1)
    resource = json.loads(received.body)["resource"]
    plain = json.loads(
        decrypt_resource(
            sim_keys().wechat_apiv3_key.encode(),
            resource["nonce"],
            resource["associated_data"],
            resource["ciphertext"],
        )
    )
    assert plain["mchid"] == sim_keys().wechat_mch_id and "mch_id" not in plain
    assert {"out_bill_no", "transfer_bill_no", "state", "fail_reason", "create_time", "update_time"} <= set(
        plain
    )
    assert channel.parse_callback(received.headers, received.body, time.time()).order_id == "WXMCHID1"


async def test_no_notify_url_no_notify(wx):
    sim, channel = wx
    sim.engine.set_script("WXNOURL1", build_scenario("success", {"after_s": 0.05}))
    await channel.submit(request("WXNOURL1"), "WXNOURL1", None)
    await settle(sim, "WXNOURL1")
    assert [r.state for r in sim.engine.get("WXNOURL1").callbacks] == ["not_sent"]
    assert (await channel.query("WXNOURL1")).raw_status == "SUCCESS"


# --- authentication and validation -------------------------------------------------------------


async def test_wrong_merchant_key_is_401_and_records_nothing(wx):
    sim, channel = wx
    wrong_key = sim_keys().wechat_platform_private_pem  # any key but the merchant's
    impostor = WeChatPayChannel(
        CATALOGUE, dataclasses.replace(channel.config, merchant_private_key_pem=wrong_key)
    )
    try:
        with pytest.raises(ChannelRejectedRequest, match="401"):
            await impostor.submit(request("WXBADKEY1"), "WXBADKEY1", notify_url(sim))
        with pytest.raises(ChannelRejectedRequest, match="401"):
            await impostor.query("WXBADKEY1")
    finally:
        await impostor.aclose()
    assert sim.engine.get("WXBADKEY1") is None
    async with httpx.AsyncClient() as client:
        resp = await client.post(
            f"{sim.url}/wechat{TRANSFER_PATH}", content=b"{}", headers={"Authorization": "x"}
        )
    assert resp.status_code == 401 and resp.json()["code"] == "SIGN_ERROR"
    assert sim.engine.orders() == []


async def test_param_error_and_conflicting_resubmit(wx):
    sim, channel = wx
    other_app = WeChatPayChannel(CATALOGUE, dataclasses.replace(channel.config, appid="wxother"))
    try:
        with pytest.raises(ChannelRejectedRequest, match="PARAM_ERROR"):
            await other_app.submit(request("WXPARAM1"), "WXPARAM1", notify_url(sim))
    finally:
        await other_app.aclose()
    assert sim.engine.get("WXPARAM1") is None

    await channel.submit(request("WXDUP1"), "WXDUP1", notify_url(sim))
    again = await channel.submit(request("WXDUP1"), "WXDUP1", notify_url(sim))  # same bill: its state
    assert again.raw_status in ("ACCEPTED", "PROCESSING", "SUCCESS")
    conflict = await channel.submit(request("WXDUP1", amount="1.00"), "WXDUP1", notify_url(sim))
    assert (conflict.raw_status, conflict.raw_code) == ("FAIL", "INVALID_REQUEST")


async def test_user_name_is_decrypted_with_the_platform_key(wx):
    sim, channel = wx

    async def payee(_: WithdrawalRequest) -> WeChatPayee:
        return WeChatPayee(openid=OPENID, user_name="张三")

    named = WeChatPayChannel(CATALOGUE, channel.config, resolve_payee=payee)
    try:
        obs = await named.submit(request("WXNAME1", amount="2500.00"), "WXNAME1", notify_url(sim))
    finally:
        await named.aclose()
    assert obs.raw_status == "ACCEPTED"
    assert sim.engine.get("WXNAME1").native["transfer_amount"] == 250000


# --- unknown outcomes: ChannelUnavailable, then found by query (R10) ----------------------------


async def test_http_500_submit_then_found_by_query(wx):
    sim, channel = wx
    sim.engine.set_script("WX500A", build_scenario("system_error_then_final", {"final_after_s": 0.3}))
    with pytest.raises(ChannelUnavailable, match="500"):
        await channel.submit(request("WX500A"), "WX500A", notify_url(sim))
    assert sim.engine.get("WX500A") is not None  # recorded although the answer was an error
    with pytest.raises(ChannelUnavailable):  # UNKNOWN: WeChat answers SYSTEM_ERROR
        await channel.query("WX500A")
    await settle(sim, "WX500A")
    polled = await channel.query("WX500A")
    assert (polled.raw_status, polled.classification.state) == ("SUCCESS", PayoutState.SUCCEEDED)
    resent = await channel.submit(request("WX500A"), "WX500A", notify_url(sim))  # same out_bill_no
    assert resent.raw_status == "SUCCESS" and len(sim.engine.orders()) == 1


async def test_unknown_submit_then_found_by_query(wx):
    sim, channel = wx
    script = Script(submit="unknown", steps=(Step(after_s=0.1, status="PROCESSING"),))
    sim.engine.set_script("WXUNK1", script)
    with pytest.raises(ChannelUnavailable, match="FREQUENCY_LIMITED"):
        await channel.submit(request("WXUNK1"), "WXUNK1", notify_url(sim))
    assert sim.engine.get("WXUNK1") is not None
    await settle(sim, "WXUNK1")
    assert (await channel.query("WXUNK1")).raw_status == "PROCESSING"


async def test_query_of_an_unknown_bill_is_not_found(wx):
    sim, channel = wx
    polled = await channel.query("WXNEVER1")
    assert polled.raw_status == "NOT_FOUND" and polled.classification.state == PayoutState.UNKNOWN
