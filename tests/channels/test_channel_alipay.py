"""The Alipay adapter (channels/alipay.py) against a local Alipay-like open-platform
gateway over real HTTP (uvicorn on 127.0.0.1). The gateway checks our requests the way
Alipay does (required common parameters, RSA2 signature with the app's public key) with
its own, independent implementation, and answers with scripted, signed responses.
Keys are generated here; nothing leaves the machine."""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI, Request
from fastapi.responses import Response

from channels.alipay import (
    NOTIFY_METHOD,
    AlipayChannel,
    AlipayConfig,
    AlipayPayee,
    sign_content,
    top_level_spans,
)
from channels.base import CallbackRejected, ChannelRejectedRequest, ChannelUnavailable
from sentinel.catalogue import default_catalogue
from sentinel.models import WithdrawalRequest
from sentinel.taxonomy import ExceptionCategory, PayoutState
from tests.support.common import free_port
from tests.support.local_server import serve

APP_ID = "2021000000000001"
BEIJING = timezone(timedelta(hours=8))
TRANSFER = "alipay.fund.trans.uni.transfer"
QUERY = "alipay.fund.trans.common.query"


# --- keys ------------------------------------------------------------------------------------


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _bare_base64(pem: str) -> str:
    """The form the Alipay key tool prints: no armour, one line."""
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


@dataclass
class Keys:
    app: rsa.RSAPrivateKey
    alipay: rsa.RSAPrivateKey
    other: rsa.RSAPrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(app=_new_key(), alipay=_new_key(), other=_new_key())


# --- the provider's side (its own implementation, not the adapter's) --------------------------


def provider_content(params: dict[str, str], drop: tuple[str, ...]) -> bytes:
    pairs = sorted((k, v) for k, v in params.items() if k not in drop and v != "")
    return "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8")


def provider_sign(key: rsa.RSAPrivateKey, content: bytes) -> str:
    return base64.b64encode(key.sign(content, padding.PKCS1v15(), hashes.SHA256())).decode()


def provider_verify(key: rsa.RSAPublicKey, content: bytes, sign: str) -> bool:
    try:
        key.verify(base64.b64decode(sign), content, padding.PKCS1v15(), hashes.SHA256())
        return True
    except Exception:
        return False


@dataclass
class Scripted:
    """One scripted gateway answer."""

    node: dict[str, Any] | None = None
    http_status: int = 200
    key: str | None = None  # response node name; default <method>_response
    tamper: bool = False  # change the node after signing
    unsigned: bool = False
    signer: rsa.RSAPrivateKey | None = None  # sign with another key
    spaced: bool = False  # pretty-printed JSON around the node


@dataclass
class FakeAlipay:
    app_public: rsa.RSAPublicKey
    alipay_key: rsa.RSAPrivateKey
    script: dict[str, list[Scripted]] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    raw_bodies: list[bytes] = field(default_factory=list)

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()
        self.raw_bodies.clear()

    def then(self, method: str, *answers: Scripted) -> None:
        self.script.setdefault(method, []).extend(answers)

    def problems(self, params: dict[str, str]) -> str | None:
        for name in (
            "app_id",
            "method",
            "format",
            "charset",
            "sign_type",
            "timestamp",
            "version",
            "biz_content",
            "sign",
        ):
            if not params.get(name):
                return f"isv.missing-{name.replace('_', '-')}"
        if params["app_id"] != APP_ID:
            return "isv.invalid-app-id"
        if (params["format"], params["charset"], params["sign_type"], params["version"]) != (
            "JSON",
            "utf-8",
            "RSA2",
            "1.0",
        ):
            return "isv.invalid-parameter"
        try:
            sent = datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
        except ValueError:
            return "isv.invalid-timestamp"
        if abs((datetime.now(BEIJING) - sent).total_seconds()) > 600:
            return "isv.invalid-timestamp"
        # Alipay verifies every parameter except sign (sign_type included), sorted, non-empty.
        if not provider_verify(self.app_public, provider_content(params, ("sign",)), params["sign"]):
            return "isv.invalid-signature"
        try:
            biz = json.loads(params["biz_content"])
        except ValueError:
            return "isv.invalid-biz-content"
        if params["method"] == TRANSFER:
            payee = biz.get("payee_info") or {}
            ok = (
                isinstance(biz.get("out_biz_no"), str)
                and isinstance(biz.get("trans_amount"), str)
                and re.fullmatch(r"\d+\.\d{2}", biz["trans_amount"])
                and biz.get("product_code") == "TRANS_ACCOUNT_NO_PWD"
                and biz.get("biz_scene") == "DIRECT_TRANSFER"
                and biz.get("order_title")
                and payee.get("identity")
                and payee.get("identity_type")
                and params.get("notify_url")
            )
            if not ok:
                return "isv.invalid-biz-parameter"
        elif params["method"] == QUERY:
            if not (biz.get("out_biz_no") and biz.get("product_code") and biz.get("biz_scene")):
                return "isv.invalid-biz-parameter"
        else:
            return "isv.invalid-method"
        return None

    def render(self, method: str, answer: Scripted) -> Response:
        key = answer.key or method.replace(".", "_") + "_response"
        inner = json.dumps(answer.node, ensure_ascii=False, separators=(",", ":"))
        sign = provider_sign(answer.signer or self.alipay_key, inner.encode("utf-8"))
        if answer.tamper:
            inner = inner.replace('"DEALING"', '"SUCCESS"').replace('"10000"', '"10000" ')
        if answer.unsigned:
            text = f'{{"{key}":{inner}}}'
        elif answer.spaced:
            text = f'{{\n  "{key}" : {inner} ,\n  "sign" : "{sign}"\n}}'
        else:
            text = f'{{"{key}":{inner},"sign":"{sign}"}}'
        return Response(
            text.encode("utf-8"), status_code=answer.http_status, media_type="text/html;charset=utf-8"
        )

    def build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/gateway.do")
        async def gateway(request: Request) -> Response:
            raw = await request.body()
            self.raw_bodies.append(raw)
            if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                return Response(b"bad content type", status_code=400)
            params = dict(parse_qsl(raw.decode("ascii"), keep_blank_values=True))
            method = params.get("method", "")
            problem = self.problems(params)
            if problem is not None:
                return self.render(
                    method or "error",
                    Scripted(
                        {"code": "40002", "msg": "Invalid Arguments", "sub_code": problem, "sub_msg": "x"}
                    ),
                )
            self.requests.append(params)
            queue = self.script.get(method) or []
            if not queue:
                return self.render(
                    method, Scripted({"code": "20000", "msg": "Service Currently Unavailable"})
                )
            answer = queue.pop(0)
            if answer.node is None:
                return Response(b"upstream error", status_code=answer.http_status)
            return self.render(method, answer)

        return app


@pytest.fixture(scope="module")
async def provider(keys: Keys):
    fake = FakeAlipay(app_public=keys.app.public_key(), alipay_key=keys.alipay)
    async with serve(fake.build()) as url:
        fake.url = url  # type: ignore[attr-defined]
        yield fake


def make_config(keys: Keys, url: str, **overrides: Any) -> AlipayConfig:
    values: dict[str, Any] = dict(
        app_id=APP_ID,
        gateway_url=f"{url}/gateway.do",
        app_private_key_pem=_private_pem(keys.app),
        alipay_public_key_pem=_bare_base64(_public_pem(keys.alipay)),
    )
    values.update(overrides)
    return AlipayConfig(**values)


@pytest.fixture()
async def alipay(provider: FakeAlipay, keys: Keys):
    provider.reset()
    channel = AlipayChannel(default_catalogue(), make_config(keys, provider.url))  # type: ignore[attr-defined]
    yield channel
    await channel.aclose()


def withdrawal(**overrides: Any) -> WithdrawalRequest:
    values: dict[str, Any] = dict(
        withdrawal_id="W2001",
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


CALLBACK = "https://gw.example/v1/callbacks/alipay"


def transfer_ok(order_id: str, status: str = "SUCCESS") -> dict[str, Any]:
    return {
        "code": "10000",
        "msg": "Success",
        "out_biz_no": order_id,
        "order_id": "20260101110070000006380000250621",
        "pay_fund_order_id": "20260101110070001506380000251556",
        "status": status,
        "trans_date": "2026-01-01 10:00:00",
    }


# --- signing basics -----------------------------------------------------------------------------


def test_sign_content_sorts_skips_empty_and_sign():
    # The shape of the "自行实现签名" example of the open-platform docs.
    params = {
        "timestamp": "2014-07-24 03:07:50",
        "method": "alipay.mobile.public.menu.add",
        "app_id": "2014072300007148",
        "sign_type": "RSA2",
        "charset": "GBK",
        "version": "1.0",
        "biz_content": '{"button":[{"name":"x"}]}',
        "sign": "ignored",
        "app_auth_token": "",
    }
    assert sign_content(params) == (
        'app_id=2014072300007148&biz_content={"button":[{"name":"x"}]}&charset=GBK'
        "&method=alipay.mobile.public.menu.add&sign_type=RSA2&timestamp=2014-07-24 03:07:50&version=1.0"
    )
    # notify verification (rsaCheckV1) also leaves sign_type out
    assert "sign_type" not in sign_content(params, exclude=("sign", "sign_type"))


def test_top_level_spans_give_the_exact_signed_text():
    text = '{ "a_response" : {"code":"10000","x":"a\\"}b"} , "sign":"s=="}'
    spans = top_level_spans(text)
    assert text[slice(*spans["a_response"])] == '{"code":"10000","x":"a\\"}b"}'
    with pytest.raises(ValueError):
        top_level_spans('{"a":1,"a":2}')
    with pytest.raises(ValueError):
        top_level_spans('{"a":1} trailing')


# --- submit --------------------------------------------------------------------------------------


async def test_submit_success_sends_a_signed_request_alipay_accepts(
    alipay: AlipayChannel, provider: FakeAlipay
):
    provider.then(TRANSFER, Scripted(transfer_ok("W2001")))
    obs = await alipay.submit(withdrawal(amount=Decimal("1234.5"), card_last4="9876"), "W2001", CALLBACK)
    assert (obs.raw_status, obs.raw_code, obs.source, obs.channel) == ("SUCCESS", None, "submit", "alipay")
    assert obs.classification.state == PayoutState.SUCCEEDED

    [sent] = provider.requests
    assert sent["method"] == TRANSFER and sent["notify_url"] == CALLBACK
    biz = json.loads(sent["biz_content"])
    assert biz["out_biz_no"] == "W2001"
    assert biz["trans_amount"] == "1234.50"  # Decimal, two decimals, a string
    assert biz["payee_info"] == {"identity": "vault:tok_ali_1", "identity_type": "ALIPAY_OPEN_ID"}
    # no card number, not even the last four digits, goes to Alipay
    assert not re.search(rb"\d{12,}", provider.raw_bodies[0].replace(APP_ID.encode(), b""))
    assert b"9876" not in provider.raw_bodies[0]


async def test_submit_dealing_is_processing_and_spaced_json_still_verifies(
    alipay: AlipayChannel, provider: FakeAlipay
):
    provider.then(TRANSFER, Scripted(transfer_ok("W2001", "DEALING"), spaced=True))
    obs = await alipay.submit(withdrawal(), "W2001", CALLBACK)
    assert obs.raw_status == "DEALING" and obs.classification.state == PayoutState.PROCESSING


async def test_submit_resolves_the_payee_through_the_vault(provider: FakeAlipay, keys: Keys):
    provider.reset()
    seen: list[str] = []

    async def vault(req: WithdrawalRequest) -> AlipayPayee:
        seen.append(req.payee_ref)
        return AlipayPayee(identity="2088102146225135", identity_type="ALIPAY_USER_ID", name="张三")

    channel = AlipayChannel(default_catalogue(), make_config(keys, provider.url), resolve_payee=vault)  # type: ignore[attr-defined]
    try:
        provider.then(TRANSFER, Scripted(transfer_ok("W2002")))
        await channel.submit(withdrawal(withdrawal_id="W2002"), "W2002", CALLBACK)
    finally:
        await channel.aclose()
    assert seen == ["vault:tok_ali_1"]
    payee = json.loads(provider.requests[0]["biz_content"])["payee_info"]
    assert payee == {"identity": "2088102146225135", "identity_type": "ALIPAY_USER_ID", "name": "张三"}


@pytest.mark.parametrize(
    "answer",
    [
        Scripted({"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error"}),
        Scripted(
            {"code": "40004", "msg": "Business Failed", "sub_code": "SYSTEM_ERROR", "sub_msg": "系统繁忙"}
        ),
        Scripted({"code": "40004", "msg": "Business Failed"}),
        Scripted(None, http_status=500),
        Scripted(None, http_status=502),
    ],
    ids=["20000", "40004-SYSTEM_ERROR", "40004-no-sub-code", "http-500", "http-502"],
)
async def test_submit_unknown_outcome_is_channel_unavailable(
    alipay: AlipayChannel, provider: FakeAlipay, answer
):
    provider.then(TRANSFER, answer)
    with pytest.raises(ChannelUnavailable):
        await alipay.submit(withdrawal(), "W2001", CALLBACK)


async def test_submit_business_failure_is_classified(alipay: AlipayChannel, provider: FakeAlipay):
    provider.then(
        TRANSFER,
        Scripted(
            {
                "code": "40004",
                "msg": "Business Failed",
                "sub_code": "PAYEE_USER_INFO_ERROR",
                "sub_msg": "姓名不匹配",
            }
        ),
    )
    obs = await alipay.submit(withdrawal(), "W2001", CALLBACK)
    assert (obs.raw_status, obs.raw_code) == ("FAIL", "PAYEE_USER_INFO_ERROR")
    assert obs.classification.state == PayoutState.FAILED
    assert obs.classification.category == ExceptionCategory.ACCOUNT_INFO_ERROR
    assert obs.classification.mapped


async def test_submit_payer_balance_is_a_payer_side_limit(alipay: AlipayChannel, provider: FakeAlipay):
    provider.then(
        TRANSFER,
        Scripted({"code": "40004", "msg": "Business Failed", "sub_code": "PAYER_BALANCE_NOT_ENOUGH"}),
    )
    obs = await alipay.submit(withdrawal(), "W2001", CALLBACK)
    assert obs.classification.category == ExceptionCategory.BALANCE_OR_LIMIT
    assert obs.classification.subtype == "payer-funds"


async def test_invalid_parameters_are_our_bug(alipay: AlipayChannel, provider: FakeAlipay):
    provider.then(
        TRANSFER, Scripted({"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-parameter"})
    )
    with pytest.raises(ChannelRejectedRequest):
        await alipay.submit(withdrawal(), "W2001", CALLBACK)
    # the gateway may answer request errors unsigned, under error_response
    provider.then(
        TRANSFER, Scripted({"code": "40002", "msg": "Invalid Arguments"}, key="error_response", unsigned=True)
    )
    with pytest.raises(ChannelRejectedRequest):
        await alipay.submit(withdrawal(), "W2001", CALLBACK)


async def test_the_gateway_refuses_a_request_signed_with_the_wrong_key(provider: FakeAlipay, keys: Keys):
    provider.reset()
    wrong = AlipayChannel(
        default_catalogue(),
        make_config(keys, provider.url, app_private_key_pem=_private_pem(keys.other)),  # type: ignore[attr-defined]
    )
    try:
        with pytest.raises(ChannelRejectedRequest, match="invalid-signature"):
            await wrong.submit(withdrawal(), "W2001", CALLBACK)
    finally:
        await wrong.aclose()
    assert provider.requests == []


@pytest.mark.parametrize(
    "kwargs, order_id",
    [
        ({"amount": Decimal("10.001")}, "W2001"),  # sub-fen: never rounded
        ({"currency": "USD"}, "W2001"),
        ({}, "W:2001"),  # not a valid out_biz_no
    ],
)
async def test_requests_we_must_not_send(alipay: AlipayChannel, provider: FakeAlipay, kwargs, order_id):
    with pytest.raises(ChannelRejectedRequest):
        await alipay.submit(withdrawal(**kwargs), order_id, CALLBACK)
    assert provider.raw_bodies == []


async def test_unreachable_gateway_is_unavailable(keys: Keys):
    port = free_port()
    channel = AlipayChannel(default_catalogue(), make_config(keys, f"http://127.0.0.1:{port}", timeout_s=2))
    try:
        with pytest.raises(ChannelUnavailable):
            await channel.query("W2001")
    finally:
        await channel.aclose()


# --- answers that cannot be trusted --------------------------------------------------------------


@pytest.mark.parametrize(
    "mode",
    ["tamper", "unsigned", "other-key"],
)
async def test_untrusted_answers_are_unavailable(
    alipay: AlipayChannel, provider: FakeAlipay, keys: Keys, mode: str
):
    answer = Scripted(
        transfer_ok("W2001", "DEALING"),
        tamper=mode == "tamper",
        unsigned=mode == "unsigned",
        signer=keys.other if mode == "other-key" else None,
    )
    provider.then(TRANSFER, answer)
    with pytest.raises(ChannelUnavailable):
        await alipay.submit(withdrawal(), "W2001", CALLBACK)
    provider.then(QUERY, answer)
    with pytest.raises(ChannelUnavailable):
        await alipay.query("W2001")


async def test_answer_about_another_order_is_unavailable(alipay: AlipayChannel, provider: FakeAlipay):
    provider.then(QUERY, Scripted(transfer_ok("W9999")))
    with pytest.raises(ChannelUnavailable):
        await alipay.query("W2001")


# --- query ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, code, state, category",
    [
        ("SUCCESS", None, PayoutState.SUCCEEDED, None),
        ("DEALING", None, PayoutState.PROCESSING, None),
        ("FAIL", "PAYEE_CARD_INFO_ERROR", PayoutState.FAILED, ExceptionCategory.ACCOUNT_INFO_ERROR),
        ("FAIL", "PAYEE_USER_INFO_ERROR", PayoutState.FAILED, ExceptionCategory.ACCOUNT_INFO_ERROR),
        ("REFUND", None, PayoutState.RETURNED, ExceptionCategory.RETURNED_AFTER_SUCCESS),
    ],
)
async def test_query_each_status(alipay: AlipayChannel, provider: FakeAlipay, status, code, state, category):
    node = {
        "code": "10000",
        "msg": "Success",
        "out_biz_no": "W2001",
        "order_id": "2026010111",
        "status": status,
    }
    if code:
        node.update(error_code=code, fail_reason="收款方信息有误")
    provider.then(QUERY, Scripted(node))
    obs = await alipay.query("W2001")
    assert (obs.raw_status, obs.raw_code, obs.source) == (status, code, "poll")
    assert obs.classification.state == state
    assert obs.classification.category == category
    biz = json.loads(provider.requests[0]["biz_content"])
    assert biz == {
        "out_biz_no": "W2001",
        "product_code": "TRANS_ACCOUNT_NO_PWD",
        "biz_scene": "DIRECT_TRANSFER",
    }


async def test_query_order_not_exist_is_not_found_never_a_failure(
    alipay: AlipayChannel, provider: FakeAlipay
):
    provider.then(QUERY, Scripted({"code": "40004", "msg": "Business Failed", "sub_code": "ORDER_NOT_EXIST"}))
    obs = await alipay.query("W2001")
    assert obs.raw_status == "NOT_FOUND" and obs.classification.state == PayoutState.UNKNOWN


async def test_query_system_error_is_unavailable(alipay: AlipayChannel, provider: FakeAlipay):
    provider.then(QUERY, Scripted({"code": "40004", "msg": "Business Failed", "sub_code": "SYSTEM_ERROR"}))
    with pytest.raises(ChannelUnavailable):
        await alipay.query("W2001")


# --- callbacks ------------------------------------------------------------------------------------


def notify_params(**biz_overrides: Any) -> dict[str, str]:
    biz = {
        "pay_fund_order_id": "20260101110070001506380000251556",
        "out_biz_no": "W2001",
        "product_code": "TRANS_ACCOUNT_NO_PWD",
        "biz_scene": "DIRECT_TRANSFER",
        "origin_interface": TRANSFER,
        "order_id": "20260101110070000006380000250621",
        "status": "FAIL",
        "action_type": "FINISH",
        "trans_amount": "100.00",
        "error_code": "PAYEE_USER_INFO_ERROR",
        "fail_reason": "收款方姓名不匹配",
    }
    biz.update(biz_overrides)
    biz = {k: v for k, v in biz.items() if v is not None}
    return {
        "notify_id": "2026010100222101010a0c1b2c3d4e5f",
        "utc_timestamp": str(int(time.time() * 1000)),
        "msg_method": NOTIFY_METHOD,
        "app_id": APP_ID,
        "version": "1.1",
        "charset": "utf-8",
        "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
    }


def signed_notify(key: rsa.RSAPrivateKey, params: dict[str, str], charset: str = "utf-8") -> bytes:
    content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if v != "").encode(charset)
    signed = {**params, "sign_type": "RSA2", "sign": provider_sign(key, content)}
    return urlencode(signed, encoding=charset).encode("ascii")


FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


async def test_valid_notify_parses_and_classifies(alipay: AlipayChannel, keys: Keys):
    params = notify_params()
    event = alipay.parse_callback(FORM, signed_notify(keys.alipay, params), time.time())
    assert event.event_id == params["notify_id"]
    assert (event.order_id, event.raw_status, event.raw_code) == ("W2001", "FAIL", "PAYEE_USER_INFO_ERROR")
    assert abs(event.occurred_at.timestamp() - int(params["utc_timestamp"]) / 1000) < 0.01
    obs = alipay.observe(
        event.order_id, event.raw_status, event.raw_code, "callback", event.occurred_at, event.event_id
    )
    assert obs.classification.category == ExceptionCategory.ACCOUNT_INFO_ERROR


async def test_success_notify_with_notify_time_and_no_error_code(alipay: AlipayChannel, keys: Keys):
    params = notify_params(status="SUCCESS", error_code=None, fail_reason=None)
    del params["utc_timestamp"]
    params["notify_time"] = datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    event = alipay.parse_callback(FORM, signed_notify(keys.alipay, params), time.time())
    assert (event.raw_status, event.raw_code) == ("SUCCESS", None)
    assert event.occurred_at.tzinfo is not None


async def test_gbk_notify_verifies_in_its_own_charset(alipay: AlipayChannel, keys: Keys):
    params = {**notify_params(), "charset": "GBK"}
    body = signed_notify(keys.alipay, params, charset="gbk")
    event = alipay.parse_callback({"Content-Type": "application/x-www-form-urlencoded"}, body, time.time())
    assert event.raw_code == "PAYEE_USER_INFO_ERROR"


async def test_unencoded_plus_in_sign_still_verifies(alipay: AlipayChannel, keys: Keys):
    for _ in range(20):  # find a signature with a '+' in it
        params = notify_params(trans_amount=f"{_}.00")
        body = signed_notify(keys.alipay, params)
        fields = dict(parse_qsl(body.decode()))
        if "+" in fields["sign"]:
            break
    else:
        pytest.skip("no signature with '+' generated")
    raw = body.decode().replace("%2B", "+").encode()  # a sender that does not escape '+'
    assert alipay.parse_callback(FORM, raw, time.time()).order_id == "W2001"


async def test_replayed_notify_gives_the_same_event_id(alipay: AlipayChannel, keys: Keys):
    body = signed_notify(keys.alipay, notify_params())
    first = alipay.parse_callback(FORM, body, time.time())
    again = alipay.parse_callback(FORM, body, time.time() + 60)
    assert first == again  # the workflow acts on an event id once


async def test_tampered_notify_is_401(alipay: AlipayChannel, keys: Keys):
    body = signed_notify(keys.alipay, notify_params())
    tampered = body.replace(b"FAIL", b"SUCCESS", 1)
    assert tampered != body
    with pytest.raises(CallbackRejected) as err:
        alipay.parse_callback(FORM, tampered, time.time())
    assert err.value.status == 401


@pytest.mark.parametrize("case", ["wrong-key", "no-sign", "rsa1", "other-app", "stale"])
async def test_unauthenticated_notifies_are_401(alipay: AlipayChannel, keys: Keys, case: str):
    params = notify_params()
    key = keys.alipay
    if case == "wrong-key":
        key = keys.other
    if case == "other-app":
        params["app_id"] = "2021000000009999"
    if case == "stale":
        params["utc_timestamp"] = str(int((time.time() - 3 * 86400) * 1000))
    body = signed_notify(key, params)
    fields = dict(parse_qsl(body.decode()))
    if case == "no-sign":
        del fields["sign"]
    if case == "rsa1":
        fields["sign_type"] = "RSA"
    with pytest.raises(CallbackRejected) as err:
        alipay.parse_callback(FORM, urlencode(fields).encode(), time.time())
    assert err.value.status == 401


@pytest.mark.parametrize("field", ["utc_timestamp", "notify_time"])
async def test_a_notify_dated_in_the_future_is_401(
    alipay: AlipayChannel, keys: Keys, field: str
):  # R11, issue #11
    """Correctly signed, but dated an hour ahead of our clock: refused with the reason (the
    48 h window of notify_tolerance_s is for late redeliveries, not for the future). One
    dated a minute ahead is clock skew and accepted (skew allowed: 300 s by default)."""
    now = datetime(2026, 11, 27, 8, 0, 0, tzinfo=UTC).timestamp()  # pinned

    def dated(seconds_ahead: int) -> bytes:
        params = notify_params()
        when = now + seconds_ahead
        if field == "utc_timestamp":
            params["utc_timestamp"] = str(int(when * 1000))
        else:
            del params["utc_timestamp"]
            params["notify_time"] = datetime.fromtimestamp(when, BEIJING).strftime("%Y-%m-%d %H:%M:%S")
        return signed_notify(keys.alipay, params)

    with pytest.raises(CallbackRejected) as err:
        alipay.parse_callback(FORM, dated(3600), now)
    assert err.value.status == 401 and "3600 s in the future" in str(err.value)
    event = alipay.parse_callback(FORM, dated(60), now)
    assert event.occurred_at.timestamp() == now + 60
    # the skew allowed is the adapter's setting (SENTINEL_CALLBACK_TOLERANCE_S)
    strict = AlipayChannel(
        default_catalogue(), make_config(keys, "http://127.0.0.1:9", notify_future_skew_s=30)
    )
    with pytest.raises(CallbackRejected):
        strict.parse_callback(FORM, dated(60), now)


@pytest.mark.parametrize(
    "case", ["biz-not-json", "no-out-biz-no", "no-notify-id", "bad-charset", "not-a-form", "other-message"]
)
async def test_malformed_notifies_are_400(alipay: AlipayChannel, keys: Keys, case: str):
    params = notify_params()
    if case == "biz-not-json":
        params["biz_content"] = "{not json"
    if case == "no-out-biz-no":
        params = notify_params(out_biz_no=None)
    if case == "no-notify-id":
        del params["notify_id"]
    if case == "bad-charset":
        params["charset"] = "ebcdic"
    if case == "other-message":
        params["msg_method"] = "alipay.trade.order.settle.notify"
    body = b"\xff\xfe\x00garbage" if case == "not-a-form" else signed_notify(keys.alipay, params)
    with pytest.raises(CallbackRejected) as err:
        alipay.parse_callback(FORM, body, time.time())
    assert err.value.status == 400


def test_ack_is_plain_success(keys: Keys):
    channel = AlipayChannel(default_catalogue(), make_config(keys, "http://127.0.0.1:9"))
    assert channel.ack() == (200, "text/plain", b"success")
    assert "PRIVATE" not in repr(channel.config)  # the key stays out of logs
