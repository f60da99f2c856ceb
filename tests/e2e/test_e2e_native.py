"""End-to-end over the native protocols, on the stack `make run` starts (tests/e2e/test_e2e.py):
the dev stack's simulator speaks Alipay, WeChat Pay v3, Stripe and ISO 20022 with the keys
in ``<data_dir>/sim-keys.json``, and the gateway and the worker build the real adapters with
the other half of each key (starter/devstack.py, simulator.keys.platform_env).

For each channel: the simulator is scripted to fail the payout with an account problem; the
real adapter submits it in the channel's format, the simulator answers and calls back in it
(signed as the provider signs), and the withdrawal ends FAILED / ACCOUNT_INFO_ERROR with the
channel's own code and the DETECTED notice in the user's inbox. A native callback whose
bytes were changed after signing gets 401 and changes nothing. Marked ``e2e``. R2, R11, R26."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from channels.alipay import load_private_key as alipay_private_key
from channels.wechatpay import load_private_key as wechat_private_key
from channels.wechatpay import to_out_bill_no
from sentinel.models import Contact, WithdrawalRequest
from sentinel.settings import Settings
from sentinel.taxonomy import ExceptionCategory, Stage, WithdrawalStatus
from sentinel.user_tokens import make_user_token
from simulator.keys import SimKeys
from starter.devstack import DevStack
from store.repo import deliveries_for
from tests.channels.test_channel_alipay import notify_params, signed_notify
from tests.channels.test_channel_iso20022 import pacs002
from tests.channels.test_channel_iso20022 import signed as iso_signed
from tests.channels.test_channel_stripe import payout_event, webhook
from tests.channels.test_channel_wechatpay import WxKeys
from tests.channels.test_channel_wechatpay import notify as wechat_notify
from tests.support.fault_helpers import (
    PROCESSING_ONLY,
    connect,
    engine,
    make_stack,
    script,
    started,
    wait_until,
)

pytestmark = pytest.mark.e2e

#: channel -> (scenario code, the channel's own code for it, request fields the channel takes)
NATIVE = {
    "stripe": (
        "AC04",
        "account_closed",
        {"currency": "USD", "bank_code": "STRIPE", "payee_ref": "ba_1E2eSimExternalAcct"},
    ),
    "wechat": (
        "BE01",
        "NAME_NOT_CORRECT",
        {"currency": "CNY", "bank_code": "WECHAT", "payee_ref": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    ),
    "alipay": (
        "BE01",
        "PAYEE_USER_INFO_ERROR",
        {
            "currency": "CNY",
            "bank_code": "ALIPAY",
            "payee_ref": "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5",
        },
    ),
    "iso20022": (
        "AC04",
        "AC04",
        {"currency": "EUR", "bank_code": "COBADEFFXXX", "payee_ref": "vault:tok_iso_e2e"},
    ),
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with started(make_stack(tmp_path_factory.mktemp("e2e-native"))) as s:
        yield s


@pytest.fixture()
async def client(stack):
    return await connect(stack)


def new_id(channel: str) -> str:
    # letters and digits only: the same string is the WeChat out_bill_no and the ISO EndToEndId
    return f"EN{channel[:2].upper()}{uuid.uuid4().hex[:10]}"


def request_for(wid: str, channel: str) -> WithdrawalRequest:
    return WithdrawalRequest(
        withdrawal_id=wid,
        user_id=f"u-{wid}",
        amount="88.80",
        channel=channel,
        card_last4="4321",
        locale="en-US",
        contact=Contact(email=f"{wid.lower()}@example.com"),
        **NATIVE[channel][2],
    )


async def sim_order(stack: DevStack, order_id: str) -> dict:
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(f"{stack.simulator_url}/_sim/orders/{order_id}")
        return r.json() if r.status_code == 200 else {}


def test_dev_stack_wires_the_native_adapters(stack):
    # the simulator and the platform read one key file; the platform gets its half
    assert stack.keys_path.exists()
    env = stack.env()
    assert env["SENTINEL_STRIPE_SECRET_KEY"] == stack.sim_keys().stripe_secret_key
    assert env["SENTINEL_ALIPAY_GATEWAY_URL"] == f"{stack.simulator_url}/alipay/gateway.do"
    assert env["SENTINEL_WECHAT_BASE_URL"] == f"{stack.simulator_url}/wechat"
    assert env["SENTINEL_ISO20022_BASE_URL"] == f"{stack.simulator_url}/iso20022"
    assert env["SENTINEL_CHANNEL_BASE_URL"] == stack.simulator_url  # generic stays


@pytest.mark.parametrize("channel", list(NATIVE))
async def test_native_account_failure_end_to_end(stack, client, channel):
    iso_code, native_code, _ = NATIVE[channel]
    wid = new_id(channel)
    await script(
        stack.simulator_url, wid, {"scenario": "account_error", "params": {"after_s": 0.3, "code": iso_code}}
    )
    await client.start_withdrawal(request_for(wid, channel))

    view = await wait_until(lambda: _final(client, wid), 40, f"{wid} final")
    assert view.status == WithdrawalStatus.FAILED, view.timeline
    assert view.category == ExceptionCategory.ACCOUNT_INFO_ERROR
    assert view.reason_code == native_code

    # the simulator served it in its dialect and its signed callback was taken (200)
    order = await wait_until(lambda: _delivered(stack, wid), 20, f"{wid} callback delivered")
    assert order["dialect"] == channel
    assert (order["status"], order["code"]) == ("FAILED", iso_code)
    assert order["callback_url"].endswith(f"/v1/callbacks/{channel}")
    [cb] = order["callbacks"]
    assert (cb["state"], cb["http_status"]) == ("delivered", 200)

    # the DETECTED notice: in the delivery log, and in the user's inbox through the gateway
    await wait_until(lambda: _inbox_sent(stack, wid), 30, f"{wid} DETECTED inbox delivery")
    token = make_user_token(view.user_id, Settings(_env_file=None).user_token_secret, time.time(), 300)
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(
            f"{stack.gateway_url}/v1/users/{view.user_id}/inbox", headers={"Authorization": f"Bearer {token}"}
        )
    assert r.status_code == 200, r.text
    messages = [m for m in r.json()["messages"] if m["withdrawal_id"] == wid]
    assert [m["stage"] for m in messages] == [Stage.DETECTED.value]
    assert wid in messages[0]["body"]


async def _final(client, wid: str):
    view = await client.status(wid)
    return view if view.status.is_final else None


async def _delivered(stack: DevStack, wid: str):
    order = await sim_order(stack, wid)
    cbs = order.get("callbacks") or []
    return order if cbs and all(c["state"] != "pending" for c in cbs) else None


def _inbox_sent(stack: DevStack, wid: str) -> bool:
    return any(
        r.stage == Stage.DETECTED.value and r.channel == "inbox" and r.status == "sent"
        for r in deliveries_for(engine(stack), wid)
    )


def signed_failure(keys: SimKeys, channel: str, wid: str) -> tuple[dict[str, str], bytes]:
    """A native 'failed: account problem' callback for ``wid``, signed with the simulator's
    keys as the provider would sign it."""
    if channel == "stripe":
        event = payout_event("payout.failed", "failed", order_id=wid, code="account_closed")
        return webhook(event, secret=keys.stripe_webhook_secret)
    if channel == "wechat":
        platform = wechat_private_key(keys.wechat_platform_private_pem)
        plain = {
            "mch_id": keys.wechat_mch_id,
            "out_bill_no": to_out_bill_no(wid),
            "transfer_bill_no": "1330000071100999991182020050700019480001",
            "state": "FAIL",
            "fail_reason": "NAME_NOT_CORRECT",
            "transfer_amount": 8880,
            "create_time": "2026-11-27T10:00:00+08:00",
            "update_time": "2026-11-27T10:05:00+08:00",
        }
        return wechat_notify(
            WxKeys(platform, platform, platform),
            plain,
            serial=keys.wechat_platform_serial,
            apiv3=keys.wechat_apiv3_key.encode("ascii"),
            event_id=f"evt-{wid}",
        )
    if channel == "alipay":
        params = notify_params(
            out_biz_no=wid, status="FAIL", error_code="PAYEE_USER_INFO_ERROR", trans_amount="88.80"
        )
        params["app_id"], params["notify_id"] = keys.alipay_app_id, f"n{wid}"
        body = signed_notify(alipay_private_key(keys.alipay_private_pem), params)
        return {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, body
    body = pacs002([(wid, "RJCT", "AC04")])
    return iso_signed(body, keys.iso_secret), body


def tamper(body: bytes) -> bytes:
    """One byte changed after signing (inside the signed part, not at its end)."""
    i = len(body) // 2
    return body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]


@pytest.mark.parametrize("channel", list(NATIVE))
async def test_tampered_native_callback_is_refused(stack, client, channel):
    # The order stays PROCESSING at the simulator: only the callbacks posted here decide it.
    wid = new_id(channel)
    await script(stack.simulator_url, wid, PROCESSING_ONLY)
    await client.start_withdrawal(request_for(wid, channel))
    await wait_until(lambda: _submitted(stack, wid), 20, f"{wid} submitted")
    headers, body = signed_failure(stack.sim_keys(), channel, wid)
    url = f"{stack.gateway_url}/v1/callbacks/{channel}"
    async with httpx.AsyncClient(timeout=10) as http:
        bad = await http.post(url, content=tamper(body), headers=headers)
        assert bad.status_code == 401, bad.text
        view = await client.status(wid)
        assert not view.status.is_final and view.reason_code is None and view.notices == []
        assert not any(e.source == "callback" for e in view.timeline), view.timeline
        # the same bytes as signed are taken: the signature was the only thing wrong
        ok = await http.post(url, content=body, headers=headers)
        assert ok.status_code in (200, 204), ok.text
    view = await wait_until(lambda: _final(client, wid), 30, f"{wid} final")
    assert view.status == WithdrawalStatus.FAILED and view.reason_code == NATIVE[channel][1]


async def _submitted(stack: DevStack, wid: str):
    order = await sim_order(stack, wid)
    return order.get("status") == "PROCESSING"
