"""The WeChat Pay adapter (channels/wechatpay.py) against a local API v3 server over real
HTTP (uvicorn on 127.0.0.1). The server authenticates our requests as WeChat Pay does
(parses the WECHATPAY2-SHA256-RSA2048 Authorization header, rebuilds the message, checks
mchid, serial and timestamp, verifies with the merchant public key) and answers with
scripted bodies signed by a platform key. Keys are generated here, apart from the
published wechatpay-go test vectors at the top."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import FastAPI, Request
from fastapi.responses import Response

from channels.base import CallbackRejected, ChannelRejectedRequest, ChannelUnavailable
from channels.wechatpay import (
    NOTIFY_EVENT,
    WeChatPayChannel,
    WeChatPayConfig,
    WeChatPayee,
    decrypt_resource,
    fen,
    from_out_bill_no,
    load_private_key,
    load_public_key,
    response_message,
    sign_message,
    to_out_bill_no,
    verify_message,
)
from sentinel.catalogue import default_catalogue
from sentinel.models import WithdrawalRequest
from sentinel.taxonomy import ExceptionCategory, PayoutState
from tests.support.common import free_port
from tests.support.local_server import serve

MCH_ID = "1900000109"
APPID = "wx8888888888888888"
MERCHANT_SERIAL = "3775B6A45ACD588826D15E583A95F5DD2C3A8F1B"
PLATFORM_SERIAL = "PUB_KEY_ID_0119000001092025010100000001"
APIV3 = b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"  # 32 bytes
TRANSFER = "/v3/fund-app/mch-transfer/transfer-bills"


# --- published test vectors (wechatpay-apiv3/wechatpay-go) --------------------------------------
# core/auth/signers/sha256withrsa_signer_test.go: SHA256withRSA of "source" with a test key.
# core/notify/notify_test.go: a signed, AEAD-encrypted notification; its APIv3 key is the
# 16-byte "testMchAPIv3Key0" (so the cipher there is AES-128-GCM).

VECTOR_KEY = """-----BEGIN TESTING KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDZUJN33V+dSfvd
fL0Mu+39XrZNXFFMQSy1V15FpncHeV47SmV0TzTqZc7hHB0ddqAdDi8Z5k3TKqb7
6sOwYr5TcAfuR6PIPaleyE0/0KrljBum2Isa2Nyq7Dgc3ElBQ6YN4l/a+DpvKaz1
FSKmKrhLNskqokWVSlu4g8OlKlbPXQ9ibII14MZRQrrkTmHYHzfi7GXXM0thAKuR
0HNvyhTHBh4/lrYM3GaMvmWwkwvsMavnOex6+eioZHBOb1/EIZ/LzC6zuHArPpyW
3daGaZ1rtQB1vVzTyERAVVFsXXgBHvfFud3w3ShsJYk8JvMwK2RpJ5/gV0QSARcm
LDRUAlPzAgMBAAECggEBAMc7rDeUaXiWv6bMGbZ3BTXpg1FhdddnWUnYE8HfX/km
OFI7XtBHXcgYFpcjYz4D5787pcsk7ezPidAj58zqenuclmjKnUmT3pfbI5eCA2v4
C9HnbYDrmUPK1ZcADtka4D6ScDccpNYNa1g2TFHzkIrEa6H+q7S3O2fqxY/DRVtN
0JIXalBb8daaqL5QVzSmM2BMVnHy+YITJWIkP2a3pKs9C0W65JGDsnG0wVrHinHF
+cnhFZIbaPEI//DAFMc9NkrWOKVRTEgcCUxCFaHOZVNxDWZD7A2ZfJB2rK6eg//y
gEiFDR2h6mTaDowMB4YF2n2dsIO4/dCG8vPHI20jn4ECgYEA/ZGu6lEMlO0XZnam
AZGtiNgLcCfM/C2ZERZE7QTRPZH1WdK92Al9ndldsswFw4baJrJLCmghjF/iG4zi
hhBvLnOLksnZUfjdumxoHDWXo2QBWbI5QsWIE7AuTiWgWj1I7X4fCXSQf6i+M/y2
6TogQ7d0ANpZFyOkTNMn/tiJvLECgYEA22XqlamG/yfAGWery5KNH2DGlTIyd6xJ
WtJ9j3jU99lZ0bCQ5xhiBbU9ImxCi3zgTsoqLWgA/p00HhNFNoUcTl9ofc0G3zwT
D1y0ZzcnVKxGJdZ6ohW52V0hJStAigtjYAsUgjm7//FH7PiQDBDP1Wa6xSRkDQU/
aSbQxvEE8+MCgYEA3bb8krW7opyM0XL9RHH0oqsFlVO30Oit5lrqebS0oHl3Zsr2
ZGgoBlWBsEzk3UqUhTFwm/DhJLTSJ/TQPRkxnhQ5/mewNhS9C7yua7wQkzVmWN+V
YeUGTvDGDF6qDz12/vJAgSwDDRym8x4NcXD5tTw7mmNRcwIfL22SkysThIECgYAV
BgccoEoXWS/HP2/u6fQr9ZIR6eV8Ij5FPbZacTG3LlS1Cz5XZra95UgebFFUHHtC
EY1JHJY7z8SWvTH8r3Su7eWNaIAoFBGffzqqSVazfm6aYZsOvRY6BfqPHT3p/H1h
Tq6AbBffxrcltgvXnCTORjHPglU0CjSxVs7awW3AEQKBgB5WtaC8VLROM7rkfVIq
+RXqE5vtJfa3e3N7W3RqxKp4zHFAPfr82FK5CX2bppEaxY7SEZVvVInKDc5gKdG/
jWNRBmvvftZhY59PILHO2X5vO4FXh7suEjy6VIh0gsnK36mmRboYIBGsNuDHjXLe
BDa+8mDLkWu5nHEhOxy2JJZl
-----END TESTING KEY-----""".replace("TESTING KEY", "PRIVATE KEY")
VECTOR_SIGNATURE = (
    "BKyAfU4iMCuvXMXS0Wzam3V/cnxZ+JaqigPM5OhljS2iOT95OO6Fsuml2JkFANJU9K6q9bLlDhPXuoVz+pp4hAm6"
    "pHU4ld815U4jsKu1RkyaII+1CYBUYC8TK0XtJ8FwUXXz8vZHh58rrAVN1XwNyvD1vfpxrMT4SL536GLwvpUHlCqIMzoZUguLli/K8V29QiOh"
    "uH6IEqLNJn8e9b3nwNcQ7be3CzYGpDAKBfDGPCqCv8Rw5zndhlffk2FEA70G4hvMwe51qMN/RAJbknXG23bSlObuTCN7Ndj1aJGH6/L+hdwf"
    "LpUtJm4QYVazzW7DFD27EpSQEqA8bX9+8m1rLg=="
)
VECTOR_CERT = """-----BEGIN CERTIFICATE-----
MIIDVzCCAj+gAwIBAgIJANfOWdH1ItcBMA0GCSqGSIb3DQEBCwUAMEIxCzAJBgNV
BAYTAlhYMRUwEwYDVQQHDAxEZWZhdWx0IENpdHkxHDAaBgNVBAoME0RlZmF1bHQg
Q29tcGFueSBMdGQwHhcNMjEwNDI3MDg1NTIzWhcNMzEwNDI1MDg1NTIzWjBCMQsw
CQYDVQQGEwJYWDEVMBMGA1UEBwwMRGVmYXVsdCBDaXR5MRwwGgYDVQQKDBNEZWZh
dWx0IENvbXBhbnkgTHRkMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA
2VCTd91fnUn73Xy9DLvt/V62TVxRTEEstVdeRaZ3B3leO0pldE806mXO4RwdHXag
HQ4vGeZN0yqm++rDsGK+U3AH7kejyD2pXshNP9Cq5YwbptiLGtjcquw4HNxJQUOm
DeJf2vg6byms9RUipiq4SzbJKqJFlUpbuIPDpSpWz10PYmyCNeDGUUK65E5h2B83
4uxl1zNLYQCrkdBzb8oUxwYeP5a2DNxmjL5lsJML7DGr5znsevnoqGRwTm9fxCGf
y8wus7hwKz6clt3Whmmda7UAdb1c08hEQFVRbF14AR73xbnd8N0obCWJPCbzMCtk
aSef4FdEEgEXJiw0VAJT8wIDAQABo1AwTjAdBgNVHQ4EFgQUT1c7nd/SUO76HSoZ
umNUJv1R5PwwHwYDVR0jBBgwFoAUT1c7nd/SUO76HSoZumNUJv1R5PwwDAYDVR0T
BAUwAwEB/zANBgkqhkiG9w0BAQsFAAOCAQEAfTjxKRQMzNB/U6ZoCUS+BSNfa2Oh
0plMN6ZuzwiVVZwg1jywvv5yv04koS7Pd4i9E4gt9ZBUQXlpq+A3oOCEEHNRR6b2
kyazGRM7s0OP5X21WrbpSmKmU6K7hkfx30yYs08LVs/Q8DIhvaj1FCFeJzUCzYn/
fHMq4tsbKO0dKAeydPM/nrUZBmaYQVKMVOORGLFjFKVO7JV6Kq/R86ouhjEPgJOe
2xulNBUcjicqtZlBdEh/PWCYP2SpGVDclKm8jeo175T3EVAkdKzzmfpxtMmnMlmq
cTJOU9TxuGvNASMtjj7pYIerTx+xgZDXEVBWFW9PjJ0TV06tCRsgSHItgg==
-----END CERTIFICATE-----"""
VECTOR_HEADERS = {
    "Content-Type": "application/json",
    "Wechatpay-Nonce": "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz",
    "Wechatpay-Timestamp": "1624523846",
    "Wechatpay-Serial": "D7CE59D1F522D701",
    "Wechatpay-Signature": (
        "tJHIiIS9eB2hAYstmAmbbD3ZE5LiIm/Ug5tuL4fC0YOFRWIHV39UFIZXC0e9Wl6lBu6sKvkqDkzpqzBsVHyXF"
        "lbYZTOQrVdG4b6LfTnK4mikv9++ixJMd3vTf2yCqvBkh98zs3Ds5zsYQakzbcwhmw4fMJs4nPLws28H0UW9FjDR//rxELLwXvV1VEA1I"
        "BLX70xptjL8hrfUjEE8kkry6yNJTHZRU8CAc7qHli2Ng1V1qb9ARbK8A3ThmFmPQvRGrapI/jS2laKKgYUmfdEdkNO6B2Cke5e8VTxY4"
        "06ArAmQ90GAihDwIcb16TQMnzCMBoutnwZKNiKRACrFmtxw2Q=="
    ),
}
VECTOR_BODY = (
    "{"
    '"id":"3119dfba-e649-5eec-ab1e-3412bc4d2e17",'
    '"create_time":"2021-06-24T16:37:26+08:00",'
    '"resource_type":"encrypt-resource",'
    '"event_type":"PAYSCORE.USER_OPEN_SERVICE",'
    '"summary":"签约成功",'
    '"resource":{'
    '"original_type":"payscore",'
    '"algorithm":"AEAD_AES_256_GCM",'
    '"ciphertext":"YDS3lKPaC4Y52Gf3uhft5qUBlIa8b428AWTtTauHQfQrRw+X1WpiuHIDy0vo1Vd6VEq67aVyqPdDYMkRVSDaZL3iZt'
    "tevRMOoPKMifozg6XPWjIZumks/GpT48lI4NizyeaqLBokNebthah3o1H76qSlO9NkDjp9bzmKLEYYH9TEklFUpsvPqOTOcgSLgh21YJXYR"
    '7dEBXFgRLiNIKRgO5JdXh1hccRUAlyVWxE54PXpnQ==",'
    '"associated_data":"payscore",'
    '"nonce":"Kj7QIyUiYx1q"}'
    "}"
).encode()
VECTOR_PLAINTEXT = (
    '{"mchid":"1234567890","appid":"054aa7d7a2a54ab5898df65bd96f001c",'
    '"create_time":"2020-06-30T12:12:00+08:00","out_contract_code":"21640bdbd08e473e828f3206a2741c6e"}'
)


def test_request_signing_matches_the_published_vector():
    assert sign_message(load_private_key(VECTOR_KEY), b"source") == VECTOR_SIGNATURE


def test_notification_signature_and_decryption_match_the_published_vector():
    h = VECTOR_HEADERS
    message = response_message(h["Wechatpay-Timestamp"], h["Wechatpay-Nonce"], VECTOR_BODY)
    assert verify_message(load_public_key(VECTOR_CERT), message, h["Wechatpay-Signature"])
    assert not verify_message(
        load_public_key(VECTOR_CERT), message.replace(b"payscore", b"payscorE"), h["Wechatpay-Signature"]
    )
    resource = json.loads(VECTOR_BODY)["resource"]
    plain = decrypt_resource(
        b"testMchAPIv3Key0", resource["nonce"], resource["associated_data"], resource["ciphertext"]
    )
    assert plain.decode() == VECTOR_PLAINTEXT


def test_parse_callback_accepts_the_published_signature(wechat_keys):
    """The vector's headers get through serial, timestamp and signature checks; it is then
    refused only because it is a PAYSCORE event, not a transfer bill."""
    config = make_config(
        wechat_keys, "http://127.0.0.1:9", platform_public_keys={"D7CE59D1F522D701": VECTOR_CERT}
    )
    channel = WeChatPayChannel(default_catalogue(), config)
    with pytest.raises(CallbackRejected) as err:
        channel.parse_callback(VECTOR_HEADERS, VECTOR_BODY, 1624523846.0)
    assert err.value.status == 400 and "event_type" in err.value.reason
    with pytest.raises(CallbackRejected) as err:
        channel.parse_callback(
            VECTOR_HEADERS, VECTOR_BODY.replace(b"2021-06-24", b"2021-06-25"), 1624523846.0
        )
    assert err.value.status == 401


# --- keys and the provider ------------------------------------------------------------------------


@dataclass
class WxKeys:
    merchant: rsa.RSAPrivateKey
    platform: rsa.RSAPrivateKey
    other: rsa.RSAPrivateKey


def _pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _pem_public(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


@pytest.fixture(scope="module")
def wechat_keys() -> WxKeys:
    gen = lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)  # noqa: E731
    return WxKeys(merchant=gen(), platform=gen(), other=gen())


def make_config(keys: WxKeys, url: str, **overrides: Any) -> WeChatPayConfig:
    values: dict[str, Any] = dict(
        mch_id=MCH_ID,
        appid=APPID,
        base_url=url,
        merchant_private_key_pem=_pem_private(keys.merchant),
        merchant_serial_no=MERCHANT_SERIAL,
        platform_public_keys={PLATFORM_SERIAL: _pem_public(keys.platform)},
        apiv3_key=APIV3,
        transfer_scene_id="1005",
        scene_report_infos=(("岗位类型", "外卖骑手"), ("报酬说明", "7月配送费")),
    )
    values.update(overrides)
    return WeChatPayConfig(**values)


@dataclass
class Answer:
    status: int = 200
    data: dict[str, Any] | None = None
    unsigned: bool = False
    tamper: bool = False
    serial: str = PLATFORM_SERIAL
    signer: rsa.RSAPrivateKey | None = None
    clock_skew_s: int = 0


@dataclass
class FakeWeChatPay:
    keys: WxKeys
    script: dict[str, list[Answer]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    url: str = ""

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()
        self.names.clear()

    def then(self, route: str, *answers: Answer) -> None:
        self.script.setdefault(route, []).extend(answers)

    def authenticate(self, request: Request, body: bytes) -> str | None:
        auth = request.headers.get("authorization", "")
        schema, _, rest = auth.partition(" ")
        if schema != "WECHATPAY2-SHA256-RSA2048":
            return "schema"
        fields = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if set(fields) != {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}:
            return "fields"
        if fields["mchid"] != MCH_ID or fields["serial_no"] != MERCHANT_SERIAL:
            return "merchant"
        if not fields["timestamp"].isdigit() or abs(time.time() - int(fields["timestamp"])) > 300:
            return "timestamp"
        if not re.fullmatch(r"[A-Za-z0-9]{16,32}", fields["nonce_str"]):
            return "nonce"
        url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        message = (
            f"{request.method}\n{url}\n{fields['timestamp']}\n{fields['nonce_str']}\n".encode() + body + b"\n"
        )
        try:
            self.keys.merchant.public_key().verify(
                base64.b64decode(fields["signature"]), message, padding.PKCS1v15(), hashes.SHA256()
            )
        except Exception:
            return "signature"
        return None

    def render(self, answer: Answer) -> Response:
        body = b"" if answer.data is None else json.dumps(answer.data, ensure_ascii=False).encode()
        headers = {"Request-ID": secrets.token_hex(8)}
        if not answer.unsigned:
            ts, nonce = str(int(time.time()) + answer.clock_skew_s), secrets.token_hex(16)
            signature = _sign(answer.signer or self.keys.platform, f"{ts}\n{nonce}\n".encode() + body + b"\n")
            headers.update(
                {
                    "Wechatpay-Timestamp": ts,
                    "Wechatpay-Nonce": nonce,
                    "Wechatpay-Signature": signature,
                    "Wechatpay-Serial": answer.serial,
                }
            )
        if answer.tamper:
            changed = body.replace(b'"ACCEPTED"', b'"SUCCESS"')
            body = changed if changed != body else body + b" "
        return Response(body, status_code=answer.status, headers=headers, media_type="application/json")

    def error(self, status: int, code: str, signed: bool = True) -> Response:
        return self.render(Answer(status, {"code": code, "message": code.lower()}, unsigned=not signed))

    def build(self) -> FastAPI:
        app = FastAPI()

        @app.post(TRANSFER)
        async def transfer(request: Request) -> Response:
            body = await request.body()
            if (problem := self.authenticate(request, body)) is not None:
                return self.error(401, "SIGN_ERROR", signed=False)
            if (
                request.headers.get("accept") != "application/json"
                or request.headers.get("content-type") != "application/json"
            ):
                return self.error(400, "PARAM_ERROR")
            data = json.loads(body)
            required = {
                "appid",
                "out_bill_no",
                "transfer_scene_id",
                "openid",
                "transfer_amount",
                "transfer_remark",
            }
            if (
                not required <= set(data)
                or data["appid"] != APPID
                or type(data["transfer_amount"]) is not int
                or not re.fullmatch(r"[A-Za-z0-9]{1,32}", data["out_bill_no"])
                or not all(
                    {"info_type", "info_content"} == set(i)
                    for i in data.get("transfer_scene_report_infos", [None])
                )
            ):
                return self.error(400, "PARAM_ERROR")
            if "user_name" in data:
                if request.headers.get("wechatpay-serial") != PLATFORM_SERIAL:
                    return self.error(400, "PARAM_ERROR")
                self.names.append(
                    self.keys.platform.decrypt(
                        base64.b64decode(data["user_name"]),
                        padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
                    ).decode()
                )
            self.requests.append({"body": data, "raw": body, "problem": problem})
            queue = self.script.get("transfer") or []
            return self.render(queue.pop(0)) if queue else self.error(500, "SYSTEM_ERROR")

        @app.get(TRANSFER + "/out-bill-no/{out_bill_no}")
        async def query(out_bill_no: str, request: Request) -> Response:
            if self.authenticate(request, b"") is not None:
                return self.error(401, "SIGN_ERROR", signed=False)
            self.requests.append({"path": request.url.path, "out_bill_no": out_bill_no})
            queue = self.script.get("query") or []
            return self.render(queue.pop(0)) if queue else self.error(500, "SYSTEM_ERROR")

        return app


@pytest.fixture(scope="module")
async def provider(wechat_keys: WxKeys):
    fake = FakeWeChatPay(wechat_keys)
    async with serve(fake.build()) as url:
        fake.url = url
        yield fake


@pytest.fixture()
async def wechat(provider: FakeWeChatPay, wechat_keys: WxKeys):
    provider.reset()
    channel = WeChatPayChannel(default_catalogue(), make_config(wechat_keys, provider.url))
    yield channel
    await channel.aclose()


def withdrawal(**overrides: Any) -> WithdrawalRequest:
    values: dict[str, Any] = dict(
        withdrawal_id="W3001",
        user_id="u1",
        amount=Decimal("100.00"),
        currency="CNY",
        channel="wechat",
        bank_code="WECHAT",
        card_last4="1234",
        payee_ref="o-MYE42l80oelYMDE34nYD456Xoy",
    )
    values.update(overrides)
    return WithdrawalRequest(**values)


CALLBACK = "https://gw.example/v1/callbacks/wechat"


def bill(order_id: str = "W3001", state: str = "ACCEPTED", **extra: Any) -> dict[str, Any]:
    return {
        "out_bill_no": order_id,
        "transfer_bill_no": "1330000114850082502150012345678",
        "create_time": "2026-01-01T10:00:00+08:00",
        "state": state,
        **extra,
    }


# --- amounts -------------------------------------------------------------------------------------------


def test_fen_is_exact_and_refuses_sub_fen_amounts():
    assert fen(Decimal("0.01")) == 1
    assert fen(Decimal("1234.56")) == 123456
    assert fen(Decimal("100")) == 10000
    assert fen(Decimal("2000.0000")) == 200000
    for bad in (Decimal("0.001"), Decimal("10.005"), Decimal("0"), Decimal("-1")):
        with pytest.raises(ChannelRejectedRequest):
            fen(bad)


def test_config_needs_a_32_byte_apiv3_key(wechat_keys: WxKeys):
    with pytest.raises(ValueError):
        make_config(wechat_keys, "http://x", apiv3_key=b"short")
    assert "PRIVATE" not in repr(make_config(wechat_keys, "http://x"))
    assert APIV3.decode() not in repr(make_config(wechat_keys, "http://x"))


# --- submit ---------------------------------------------------------------------------------------------


async def test_submit_accepted_with_a_request_wechat_authenticates(
    wechat: WeChatPayChannel, provider: FakeWeChatPay
):
    provider.then("transfer", Answer(200, bill()))
    obs = await wechat.submit(withdrawal(amount=Decimal("1234.56"), card_last4="9876"), "W3001", CALLBACK)
    assert (obs.raw_status, obs.raw_code, obs.source, obs.channel) == ("ACCEPTED", None, "submit", "wechat")
    assert obs.classification.state == PayoutState.SUBMITTED
    [sent] = provider.requests
    body = sent["body"]
    assert body["transfer_amount"] == 123456 and body["out_bill_no"] == "W3001"
    assert body["openid"] == "o-MYE42l80oelYMDE34nYD456Xoy" and body["notify_url"] == CALLBACK
    assert body["transfer_scene_id"] == "1005"
    assert body["transfer_scene_report_infos"][0] == {"info_type": "岗位类型", "info_content": "外卖骑手"}
    assert "user_name" not in body
    assert b"9876" not in sent["raw"]  # no card digits at all


async def test_submit_wait_user_confirm_is_awaiting_user(wechat: WeChatPayChannel, provider: FakeWeChatPay):
    provider.then(
        "transfer", Answer(200, bill(state="WAIT_USER_CONFIRM", package_info="affffddafdfafddffda=="))
    )
    obs = await wechat.submit(withdrawal(), "W3001", CALLBACK)
    assert obs.classification.state == PayoutState.AWAITING_USER


async def test_real_name_is_encrypted_for_the_platform_key(provider: FakeWeChatPay, wechat_keys: WxKeys):
    provider.reset()

    async def vault(req: WithdrawalRequest) -> WeChatPayee:
        return WeChatPayee(openid="o-vaulted", user_name="张三")

    channel = WeChatPayChannel(
        default_catalogue(), make_config(wechat_keys, provider.url), resolve_payee=vault
    )
    try:
        provider.then("transfer", Answer(200, bill()))
        await channel.submit(withdrawal(amount=Decimal("2500.00")), "W3001", CALLBACK)
    finally:
        await channel.aclose()
    assert provider.names == ["张三"]
    assert "张三".encode() not in provider.requests[0]["raw"]
    assert provider.requests[0]["body"]["openid"] == "o-vaulted"


@pytest.mark.parametrize(
    "answer",
    [
        Answer(500, {"code": "SYSTEM_ERROR", "message": "系统错误"}),
        Answer(503, None, unsigned=True),
        Answer(429, {"code": "FREQUENCY_LIMITED", "message": "频率超限"}),
        Answer(400, {"code": "SYSTEM_ERROR", "message": "系统繁忙"}),
    ],
    ids=["500-SYSTEM_ERROR", "503-unsigned", "429-FREQUENCY_LIMITED", "SYSTEM_ERROR-any-status"],
)
async def test_submit_unknown_outcome_is_channel_unavailable(
    wechat: WeChatPayChannel, provider: FakeWeChatPay, answer
):
    provider.then("transfer", answer)
    with pytest.raises(ChannelUnavailable):
        await wechat.submit(withdrawal(), "W3001", CALLBACK)


async def test_no_answer_at_all_is_unavailable(wechat_keys: WxKeys):
    port = free_port()
    channel = WeChatPayChannel(
        default_catalogue(), make_config(wechat_keys, f"http://127.0.0.1:{port}", timeout_s=2)
    )
    try:
        with pytest.raises(ChannelUnavailable):
            await channel.submit(withdrawal(), "W3001", CALLBACK)
    finally:
        await channel.aclose()


async def test_submit_not_enough_is_a_payer_funds_failure(wechat: WeChatPayChannel, provider: FakeWeChatPay):
    provider.then("transfer", Answer(403, {"code": "NOT_ENOUGH", "message": "资金不足"}))
    obs = await wechat.submit(withdrawal(), "W3001", CALLBACK)
    assert (obs.raw_status, obs.raw_code) == ("FAIL", "NOT_ENOUGH")
    assert obs.classification.category == ExceptionCategory.BALANCE_OR_LIMIT
    assert obs.classification.subtype == "payer-funds"


async def test_submit_fail_name_not_correct_is_account_info_error(
    wechat: WeChatPayChannel, provider: FakeWeChatPay
):
    provider.then("transfer", Answer(200, bill(state="FAIL", fail_reason="NAME_NOT_CORRECT")))
    obs = await wechat.submit(withdrawal(), "W3001", CALLBACK)
    assert (obs.raw_status, obs.raw_code) == ("FAIL", "NAME_NOT_CORRECT")
    assert obs.classification.state == PayoutState.FAILED
    assert obs.classification.category == ExceptionCategory.ACCOUNT_INFO_ERROR


async def test_param_error_is_our_bug(wechat: WeChatPayChannel, provider: FakeWeChatPay):
    provider.then("transfer", Answer(400, {"code": "PARAM_ERROR", "message": "参数错误"}))
    with pytest.raises(ChannelRejectedRequest):
        await wechat.submit(withdrawal(), "W3001", CALLBACK)


async def test_wechat_refuses_a_request_signed_with_the_wrong_key(
    provider: FakeWeChatPay, wechat_keys: WxKeys
):
    provider.reset()
    wrong = WeChatPayChannel(
        default_catalogue(),
        make_config(wechat_keys, provider.url, merchant_private_key_pem=_pem_private(wechat_keys.other)),
    )
    try:
        with pytest.raises(ChannelRejectedRequest, match="401"):
            await wrong.submit(withdrawal(), "W3001", CALLBACK)
        with pytest.raises(ChannelRejectedRequest, match="401"):
            await wrong.query("W3001")
    finally:
        await wrong.aclose()
    assert provider.requests == []


@pytest.mark.parametrize(
    "kwargs, order_id",
    [
        ({"amount": Decimal("10.005")}, "W3001"),  # sub-fen
        ({"currency": "HKD"}, "W3001"),
        ({}, "W" * 33),  # longer than an out_bill_no can be
    ],
)
async def test_requests_we_must_not_send(wechat: WeChatPayChannel, provider: FakeWeChatPay, kwargs, order_id):
    with pytest.raises(ChannelRejectedRequest):
        await wechat.submit(withdrawal(**kwargs), order_id, CALLBACK)
    assert provider.requests == []


def test_order_ids_map_reversibly_onto_out_bill_no():
    assert to_out_bill_no("W3001") == "W3001"
    assert to_out_bill_no("W3001_R2") == "W3001Z1R2"
    for order_id in ("W3001_R2", "ZZ_z", "a.b:c-d_Z0", "W" * 32, "Z1"):
        assert from_out_bill_no(to_out_bill_no(order_id)) == order_id
    assert from_out_bill_no("W3001Z9") is None and from_out_bill_no("W3001Z") is None
    assert from_out_bill_no("W3001_R2") is None  # not an out_bill_no
    with pytest.raises(ChannelRejectedRequest):
        to_out_bill_no("W" * 30 + "_R2")


async def test_a_re_released_order_travels_as_an_escaped_out_bill_no(
    wechat: WeChatPayChannel, provider: FakeWeChatPay, wechat_keys: WxKeys
):
    provider.then("transfer", Answer(200, bill(order_id="W3001Z1R2")))
    obs = await wechat.submit(withdrawal(), "W3001_R2", CALLBACK)
    assert obs.order_id == "W3001_R2" and provider.requests[-1]["body"]["out_bill_no"] == "W3001Z1R2"
    provider.then("query", Answer(200, bill(order_id="W3001Z1R2", state="SUCCESS")))
    assert (await wechat.query("W3001_R2")).order_id == "W3001_R2"
    assert provider.requests[-1]["path"].endswith("/out-bill-no/W3001Z1R2")
    headers, body = notify(wechat_keys, finished(out_bill_no="W3001Z1R2"))
    assert wechat.parse_callback(headers, body, time.time()).order_id == "W3001_R2"
    headers, body = notify(wechat_keys, finished(out_bill_no="W3001Z9"))
    with pytest.raises(CallbackRejected) as err:
        wechat.parse_callback(headers, body, time.time())
    assert err.value.status == 400


# --- answers that cannot be trusted ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        Answer(200, bill(), tamper=True),
        Answer(200, bill(), unsigned=True),
        Answer(200, bill(), serial="PUB_KEY_ID_UNKNOWN"),
        Answer(200, bill(), signer=None, clock_skew_s=-3600),
        Answer(403, {"code": "NOT_ENOUGH", "message": "资金不足"}, unsigned=True),
        Answer(200, bill(order_id="W9999")),
    ],
    ids=["tampered", "unsigned", "unknown-serial", "stale", "unsigned-business-error", "other-order"],
)
async def test_untrusted_answers_are_unavailable(wechat: WeChatPayChannel, provider: FakeWeChatPay, answer):
    provider.then("transfer", answer)
    with pytest.raises(ChannelUnavailable):
        await wechat.submit(withdrawal(), "W3001", CALLBACK)
    provider.then("query", answer)
    with pytest.raises(ChannelUnavailable):
        await wechat.query("W3001")


async def test_answer_signed_by_another_key_is_unavailable(
    wechat: WeChatPayChannel, provider: FakeWeChatPay, wechat_keys
):
    provider.then("query", Answer(200, bill(state="SUCCESS"), signer=wechat_keys.other))
    with pytest.raises(ChannelUnavailable):
        await wechat.query("W3001")


# --- query ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state, reason, expected, category",
    [
        ("ACCEPTED", None, PayoutState.SUBMITTED, None),
        ("PROCESSING", None, PayoutState.PROCESSING, None),
        ("WAIT_USER_CONFIRM", None, PayoutState.AWAITING_USER, ExceptionCategory.AWAITING_USER_ACTION),
        ("TRANSFERING", None, PayoutState.PROCESSING, None),
        ("SUCCESS", None, PayoutState.SUCCEEDED, None),
        ("FAIL", "NAME_NOT_CORRECT", PayoutState.FAILED, ExceptionCategory.ACCOUNT_INFO_ERROR),
        ("FAIL", "TRANSFER_QUOTA_EXCEED", PayoutState.FAILED, ExceptionCategory.BALANCE_OR_LIMIT),
        ("CANCELING", None, PayoutState.PROCESSING, None),
        ("CANCELLED", None, PayoutState.CANCELLED, ExceptionCategory.CANCELLED),
    ],
)
async def test_query_each_state(
    wechat: WeChatPayChannel, provider: FakeWeChatPay, state, reason, expected, category
):
    extra = {"fail_reason": reason} if reason else {}
    provider.then("query", Answer(200, bill(state=state, mch_id=MCH_ID, transfer_amount=10000, **extra)))
    obs = await wechat.query("W3001")
    assert (obs.raw_status, obs.raw_code, obs.source) == (state, reason, "poll")
    assert obs.classification.state == expected
    assert obs.classification.category == category
    assert provider.requests[-1]["path"] == TRANSFER + "/out-bill-no/W3001"


async def test_query_not_found_is_never_a_failure(wechat: WeChatPayChannel, provider: FakeWeChatPay):
    provider.then("query", Answer(404, {"code": "NOT_FOUND", "message": "记录不存在"}))
    obs = await wechat.query("W3001")
    assert obs.raw_status == "NOT_FOUND" and obs.classification.state == PayoutState.UNKNOWN


async def test_query_errors(wechat: WeChatPayChannel, provider: FakeWeChatPay):
    provider.then("query", Answer(429, {"code": "FREQUENCY_LIMITED", "message": "x"}))
    with pytest.raises(ChannelUnavailable):
        await wechat.query("W3001")
    provider.then("query", Answer(400, {"code": "PARAM_ERROR", "message": "x"}))
    with pytest.raises(ChannelRejectedRequest):
        await wechat.query("W3001")


# --- callbacks --------------------------------------------------------------------------------------------------


def notify(
    keys: WxKeys,
    plain: dict[str, Any] | bytes,
    *,
    signer: rsa.RSAPrivateKey | None = None,
    serial: str = PLATFORM_SERIAL,
    at: float | None = None,
    apiv3: bytes = APIV3,
    event_type: str = NOTIFY_EVENT,
    algorithm: str = "AEAD_AES_256_GCM",
    event_id: str = "c5e1963a-bd4d-5dd2-bbaf-8f7236a2b20a",
) -> tuple[dict[str, str], bytes]:
    nonce12 = secrets.token_hex(6)
    data = plain if isinstance(plain, bytes) else json.dumps(plain, ensure_ascii=False).encode()
    ciphertext = AESGCM(apiv3).encrypt(nonce12.encode(), data, b"mch_payment")
    body = json.dumps(
        {
            "id": event_id,
            "create_time": "2026-01-01T10:05:00+08:00",
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "商家转账单据终态通知",
            "resource": {
                "original_type": "mch_payment",
                "algorithm": algorithm,
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": "mch_payment",
                "nonce": nonce12,
            },
        },
        ensure_ascii=False,
    ).encode()
    return signed_headers(signer or keys.platform, body, serial=serial, at=at), body


def signed_headers(
    key: rsa.RSAPrivateKey, body: bytes, *, serial: str = PLATFORM_SERIAL, at: float | None = None
):
    ts, nonce = str(int(at if at is not None else time.time())), secrets.token_hex(16)
    return {
        "content-type": "application/json",
        "wechatpay-timestamp": ts,
        "wechatpay-nonce": nonce,
        "wechatpay-serial": serial,
        "wechatpay-signature": _sign(key, f"{ts}\n{nonce}\n".encode() + body + b"\n"),
    }


def finished(state: str = "FAIL", reason: str | None = "NAME_NOT_CORRECT", **extra: Any) -> dict[str, Any]:
    """A decrypted resource shaped like WeChat's own example of the notification: the
    merchant is ``mchid``; ``extra`` adds or replaces fields (None removes one)."""
    plain = {
        "mchid": MCH_ID,
        "out_bill_no": "W3001",
        "transfer_bill_no": "1330000114850082502150012345678",
        "state": state,
        "transfer_amount": 10000,
        "openid": "o-MYE42l80oelYMDE34nYD456Xoy",
        "create_time": "2026-01-01T10:00:00.120+08:00",
        "update_time": "2026-01-01T10:04:59+08:00",
        **extra,
    }
    if reason:
        plain["fail_reason"] = reason
    return {k: v for k, v in plain.items() if v is not None}


async def test_valid_notification_parses_and_classifies(wechat: WeChatPayChannel, wechat_keys: WxKeys):
    headers, body = notify(wechat_keys, finished())
    event = wechat.parse_callback(headers, body, time.time())
    assert event.event_id == "c5e1963a-bd4d-5dd2-bbaf-8f7236a2b20a"
    assert (event.order_id, event.raw_status, event.raw_code) == ("W3001", "FAIL", "NAME_NOT_CORRECT")
    assert event.occurred_at.isoformat() == "2026-01-01T10:04:59+08:00"
    obs = wechat.observe(
        event.order_id, event.raw_status, event.raw_code, "callback", event.occurred_at, event.event_id
    )
    assert obs.classification.category == ExceptionCategory.ACCOUNT_INFO_ERROR


async def test_success_notification(wechat: WeChatPayChannel, wechat_keys: WxKeys):
    headers, body = notify(wechat_keys, finished("SUCCESS", None))
    event = wechat.parse_callback(headers, body, time.time())
    assert (event.raw_status, event.raw_code) == ("SUCCESS", None)


async def test_replayed_notification_gives_the_same_event_id(wechat: WeChatPayChannel, wechat_keys: WxKeys):
    headers, body = notify(wechat_keys, finished())
    assert wechat.parse_callback(headers, body, time.time()) == wechat.parse_callback(
        headers, body, time.time() + 5
    )


@pytest.mark.parametrize(
    "case", ["tampered", "wrong-key", "stale", "future", "unknown-serial", "no-headers", "probe"]
)
async def test_unauthenticated_notifications_are_401(
    wechat: WeChatPayChannel, wechat_keys: WxKeys, case: str
):
    kwargs: dict[str, Any] = {}
    if case == "wrong-key":
        kwargs["signer"] = wechat_keys.other
    if case == "stale":
        kwargs["at"] = time.time() - 301
    if case == "future":
        kwargs["at"] = time.time() + 3600
    if case == "unknown-serial":
        kwargs["serial"] = "PUB_KEY_ID_0000000000000000000000000000"
    headers, body = notify(wechat_keys, finished(), **kwargs)
    if case == "tampered":
        body = body.replace(b"encrypt-resource", b"encrypt-resourcE")
    if case == "no-headers":
        headers = {"content-type": "application/json"}
    if case == "probe":  # WeChat Pay's signature probe: must be refused
        headers["wechatpay-signature"] = "WECHATPAY/SIGNTEST/" + headers["wechatpay-signature"][19:]
    with pytest.raises(CallbackRejected) as err:
        wechat.parse_callback(headers, body, time.time())
    assert err.value.status == 401


async def test_ciphertext_tampered_is_rejected(wechat: WeChatPayChannel, wechat_keys: WxKeys):
    # changed in transit: the signature over the body fails
    headers, body = notify(wechat_keys, finished())
    doc = json.loads(body)
    ct = bytearray(base64.b64decode(doc["resource"]["ciphertext"]))
    ct[0] ^= 1
    doc["resource"]["ciphertext"] = base64.b64encode(bytes(ct)).decode()
    tampered = json.dumps(doc, ensure_ascii=False).encode()
    with pytest.raises(CallbackRejected) as err:
        wechat.parse_callback(headers, tampered, time.time())
    assert err.value.status == 401
    # correctly signed, but the resource does not open with our APIv3 key (GCM tag fails)
    headers, body = notify(wechat_keys, finished(), apiv3=b"Z" * 32)
    with pytest.raises(CallbackRejected) as err:
        wechat.parse_callback(headers, body, time.time())
    assert err.value.status == 401 and "APIv3" in err.value.reason


OTHER_MCH_ID = "1900000999"


@pytest.mark.parametrize(
    "names",
    [
        {"mchid": MCH_ID},  # WeChat's notification
        {"mchid": None, "mch_id": MCH_ID},  # older resources
        {"mch_id": MCH_ID},  # both, agreeing
    ],
)
async def test_notification_for_our_merchant_is_accepted(
    wechat: WeChatPayChannel, wechat_keys: WxKeys, names
):
    """R11: a callback names its merchant as WeChat does (``mchid``) or as older resources
    did (``mch_id``); ours is accepted either way."""
    headers, body = notify(wechat_keys, finished(**names))
    event = wechat.parse_callback(headers, body, time.time())
    assert (event.order_id, event.raw_status, event.raw_code) == ("W3001", "FAIL", "NAME_NOT_CORRECT")


@pytest.mark.parametrize(
    "names",
    [
        {"mchid": OTHER_MCH_ID},  # WeChat's field, another merchant
        {"mchid": None, "mch_id": OTHER_MCH_ID},  # the older field, another merchant
        {"mch_id": OTHER_MCH_ID},  # mchid ours, mch_id not: they disagree
        {"mchid": OTHER_MCH_ID, "mch_id": MCH_ID},  # the other way round
        {"mchid": ""},  # named, but empty
        {"mchid": {"id": MCH_ID}},  # not a merchant number
    ],
)
async def test_notification_for_another_merchant_is_401(wechat: WeChatPayChannel, wechat_keys: WxKeys, names):
    """R11: a signed, decryptable notification whose resource names another merchant is
    refused like a bad signature (401): nothing reaches a workflow."""
    headers, body = notify(wechat_keys, finished(**names))
    with pytest.raises(CallbackRejected) as err:
        wechat.parse_callback(headers, body, time.time())
    assert err.value.status == 401 and "another merchant" in err.value.reason


async def test_notification_naming_no_merchant_is_400(wechat: WeChatPayChannel, wechat_keys: WxKeys):
    """R11: neither ``mchid`` nor ``mch_id``: it cannot be shown to be ours, so it is refused
    (400, the reason says which field is missing); WeChat retries, polling still finds the payout."""
    headers, body = notify(wechat_keys, finished(mchid=None))
    with pytest.raises(CallbackRejected) as err:
        wechat.parse_callback(headers, body, time.time())
    assert err.value.status == 400 and "mchid" in err.value.reason


@pytest.mark.parametrize(
    "case", ["not-json", "plain-not-json", "no-out-bill-no", "bad-state", "algorithm", "event-type", "no-id"]
)
async def test_malformed_notifications_are_400(wechat: WeChatPayChannel, wechat_keys: WxKeys, case: str):
    plain: dict[str, Any] | bytes = finished()
    kwargs: dict[str, Any] = {}
    if case == "plain-not-json":
        plain = b"not json"
    if case == "no-out-bill-no":
        plain = {k: v for k, v in finished().items() if k != "out_bill_no"}
    if case == "bad-state":
        plain = finished(state="FAIL; DROP")
    if case == "algorithm":
        kwargs["algorithm"] = "AES_128_CBC"
    if case == "event-type":
        kwargs["event_type"] = "TRANSACTION.SUCCESS"
    if case == "no-id":
        kwargs["event_id"] = ""
    headers, body = notify(wechat_keys, plain, **kwargs)
    if case == "not-json":
        body = b"<xml>not json</xml>"
        headers = signed_headers(wechat_keys.platform, body)
    with pytest.raises(CallbackRejected) as err:
        wechat.parse_callback(headers, body, time.time())
    assert err.value.status == 400


def test_ack(wechat_keys: WxKeys):
    channel = WeChatPayChannel(default_catalogue(), make_config(wechat_keys, "http://127.0.0.1:9"))
    status, content_type, body = channel.ack()
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body)["code"] == "SUCCESS"
