"""Push (FCM HTTP v1, JPush v3) and voice (Twilio Calls, Aliyun SingleCallByTts) over real
HTTP against local fake providers.

The fake Google token endpoint verifies the JWT assertion's RS256 signature with the
service account's public key and its claims (iss, scope, aud, iat/exp) before it issues an
access token; the fake FCM endpoint accepts only a token it issued. The fake JPush checks
HTTP Basic, the push object, and de-duplicates on ``cid`` the way JPush documents.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qsl

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from notifiers.base import DeliveryError
from notifiers.push_fcm import FCM_SCOPE, FcmConfig, FcmPushNotifier, lock_screen_safe
from notifiers.push_jpush import JPushConfig, JPushNotifier
from notifiers.routing import DEFAULT_PUSH_ROUTES, ProviderChain
from notifiers.voice_aliyun import AliyunVoiceConfig, AliyunVoiceNotifier
from notifiers.voice_twilio import TwilioVoiceNotifier, twiml_say
from sentinel.taxonomy import ExceptionCategory, Stage
from tests.support.fake_providers import (
    CN_PHONE,
    US_PHONE,
    Fake,
    make_notice,
    render,
    serve_fake,
    twilio_config,
)

PROJECT = "sentinel-test"
CLIENT_EMAIL = "notifier@sentinel-test.iam.gserviceaccount.com"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# --------------------------------------------------------------------------- fake Google / FCM


class FakeFcm(Fake):
    def __init__(self) -> None:
        super().__init__()
        self.public_key = KEY.public_key()
        self.issued: dict[str, float] = {}  # access token -> expiry (unix)
        self.token_requests = 0
        self.expires_in = 3599
        self.app.add_api_route("/token", self.token, methods=["POST"])
        self.app.add_api_route("/v1/projects/{project}/messages:send", self.send, methods=["POST"])

    def reset(self) -> None:
        super().reset()
        self.issued.clear()
        self.token_requests = 0
        self.expires_in = 3599

    def revoke_all(self) -> None:
        self.issued.clear()

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        form = dict(parse_qsl((await request.body()).decode()))
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return JSONResponse({"error": self.reject("unsupported_grant_type")}, status_code=400)
        try:
            head, body, sig = form["assertion"].split(".")
            header, claims = json.loads(_unb64(head)), json.loads(_unb64(body))
            if header.get("alg") != "RS256":
                raise ValueError("alg")
            self.public_key.verify(
                _unb64(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except (KeyError, ValueError, InvalidSignature):
            return JSONResponse(
                {"error": self.reject("invalid_grant"), "error_description": "Invalid JWT Signature."},
                status_code=400,
            )
        now = time.time()
        valid = (
            claims.get("iss") == CLIENT_EMAIL
            and claims.get("scope") == FCM_SCOPE
            and claims.get("aud") == f"{self.url}/token"
            and claims.get("iat", 0) <= now + 60
            and now - 60 < claims.get("exp", 0) <= claims.get("iat", 0) + 3600
        )
        if not valid:
            return JSONResponse({"error": self.reject("invalid_grant"), "claims": claims}, status_code=400)
        access = "ya29." + secrets.token_urlsafe(24)
        self.issued[access] = now + self.expires_in
        return JSONResponse({"access_token": access, "expires_in": self.expires_in, "token_type": "Bearer"})

    @staticmethod
    def _fcm_error(status: int, state: str, code: str) -> JSONResponse:
        return JSONResponse(
            {
                "error": {
                    "code": status,
                    "message": code,
                    "status": state,
                    "details": [
                        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
                    ],
                }
            },
            status_code=status,
        )

    async def send(self, project: str, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or self.issued.get(token, 0) < time.time():
            self.reject("unauthenticated")
            return JSONResponse({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, status_code=401)
        if project != PROJECT:
            return self._fcm_error(403, "PERMISSION_DENIED", self.reject("SENDER_ID_MISMATCH"))
        message = (await request.json()).get("message", {})
        data = message.get("data", {})
        ok = (
            message.get("token")
            and message.get("notification", {}).get("title")
            and message.get("notification", {}).get("body")
            and all(isinstance(v, str) for v in data.values())
            and message.get("android", {}).get("collapse_key") == data.get("withdrawal_id")
            and message.get("apns", {}).get("headers", {}).get("apns-collapse-id")
            == data.get("withdrawal_id")
        )
        if not ok:
            return self._fcm_error(400, "INVALID_ARGUMENT", self.reject("INVALID_ARGUMENT"))
        self.received.append(message)
        if message["token"].startswith("dead-"):
            return self._fcm_error(404, "NOT_FOUND", "UNREGISTERED")
        act = self.next_action()
        if isinstance(act, tuple) and act[0] == "http":
            return JSONResponse(act[2], status_code=act[1])
        if isinstance(act, tuple) and act[0] == "fcm":
            return self._fcm_error(*act[1:])
        return JSONResponse({"name": f"projects/{PROJECT}/messages/0:{len(self.received)}%31bd1c9631bd1c96"})


# --------------------------------------------------------------------------- fake JPush


class FakeJPush(Fake):
    APP_KEY = "7d431e42dfa6a6d693ac2d04"
    SECRET = "5e987ac6d2e04d95a9d8f0d1"

    def __init__(self) -> None:
        super().__init__()
        self.pool: set[str] = set()
        self.by_cid: dict[str, str] = {}
        self.pushed = 0  # pushes actually "sent" (a repeated cid is not sent again)
        self.app.add_api_route("/v3/push/cid", self.cid, methods=["GET"])
        self.app.add_api_route("/v3/push", self.push, methods=["POST"])

    def reset(self) -> None:
        super().reset()
        self.pushed = 0

    def _authorised(self, request: Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.APP_KEY}:{self.SECRET}".encode()).decode()
        return hmac.compare_digest(request.headers.get("authorization", ""), expected)

    def _error(self, status: int, code: int, message: str) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)

    async def cid(self, request: Request, count: int = 1) -> Response:
        if not self._authorised(request):
            return self._error(401, 1004, self.reject("authen failed"))
        cids = [f"{self.APP_KEY}-{secrets.token_hex(16)}" for _ in range(count)]
        self.pool.update(cids)
        return JSONResponse({"cidlist": cids})

    async def push(self, request: Request) -> Response:
        if not self._authorised(request):
            return self._error(401, 1004, self.reject("authen failed"))
        body = await request.json()
        n = body.get("notification", {})
        ok = (
            body.get("platform")
            and isinstance(body.get("audience", {}).get("registration_id"), list)
            and n.get("alert")
            and n.get("android", {}).get("title")
            and n.get("ios", {}).get("alert")
            and isinstance(body.get("options", {}).get("time_to_live"), int)
            and body["options"].get("apns_collapse_id")
        )
        if not ok:
            return self._error(400, 1003, self.reject("param invalid"))
        cid = body.get("cid")
        if cid is not None and cid not in self.pool:
            return self._error(400, 1003, self.reject("cid invalid"))
        self.received.append(body)
        if cid in self.by_cid:  # documented: same cid -> first result, no second push
            return JSONResponse({"sendno": "0", "msg_id": self.by_cid[cid]})
        act = self.next_action()
        if isinstance(act, tuple) and act[0] == "jpush":
            return self._error(*act[1:])
        self.pushed += 1
        msg_id = str(54043195528453936 + self.pushed)
        if cid:
            self.by_cid[cid] = msg_id
        return JSONResponse({"sendno": "0", "msg_id": msg_id})


@pytest.fixture(scope="module")
async def fcm_server():
    async with serve_fake(FakeFcm()) as fake:
        yield fake


@pytest.fixture(scope="module")
async def jpush_server():
    async with serve_fake(FakeJPush()) as fake:
        yield fake


@pytest.fixture()
def fcm(fcm_server: FakeFcm) -> FakeFcm:
    fcm_server.reset()
    return fcm_server


@pytest.fixture()
def jpush(jpush_server: FakeJPush) -> FakeJPush:
    jpush_server.reset()
    return jpush_server


def service_account(fake: FakeFcm, key: rsa.RSAPrivateKey = KEY) -> dict[str, Any]:
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "kid-1",
        "private_key": pem(key),
        "client_email": CLIENT_EMAIL,
        "token_uri": f"{fake.url}/token",
    }


def fcm_notifier(fake, client, tokens=("tok-1",), *, key=KEY, clock=time.time, dead=None) -> FcmPushNotifier:
    devices = {"u1": list(tokens)}
    return FcmPushNotifier(
        FcmConfig(service_account=service_account(fake, key), api_base=fake.url),
        lambda user_id: devices.get(user_id, []),
        on_invalid_token=(lambda user, token: dead.append((user, token))) if dead is not None else None,
        client=client,
        clock=clock,
    )


def jpush_notifier(fake, client, ids=("1a0018970a8d2e1a",), **cfg) -> JPushNotifier:
    devices = {"u1": list(ids)}
    config = JPushConfig(app_key=FakeJPush.APP_KEY, master_secret=FakeJPush.SECRET, api_base=fake.url, **cfg)
    return JPushNotifier(config, lambda user_id: devices.get(user_id, []), client=client)


# --------------------------------------------------------------------------- FCM


async def test_fcm_sends_with_a_verified_oauth_token_and_caches_it(fcm, client):
    notifier = fcm_notifier(fcm, client)
    first, second = make_notice(channel="push"), make_notice(channel="push")
    rendered = render(first)

    name = await notifier.send(first, rendered)
    await notifier.send(second, render(second))

    assert fcm.rejected == []
    assert name.startswith(f"projects/{PROJECT}/messages/")
    assert fcm.token_requests == 1  # the access token is cached
    message = fcm.received[0]
    assert message["token"] == "tok-1"
    assert message["notification"] == {"title": rendered.push_title, "body": rendered.push_body}
    assert message["data"] == {
        "withdrawal_id": "W1001",
        "stage": "DETECTED",
        "link": rendered.link,
        "notice_key": first.key,
    }
    assert message["android"]["collapse_key"] == "W1001" and message["android"]["ttl"] == "86400s"
    assert message["apns"]["headers"]["apns-collapse-id"] == "W1001"
    lock_screen = message["notification"]["title"] + message["notification"]["body"]
    assert "W1001" not in message["notification"]["title"]  # issue #10: the title has no order number
    assert "100.00" not in lock_screen and "100" not in lock_screen.replace("W1001", "")


async def test_fcm_refreshes_the_token_when_it_expires_or_is_revoked(fcm, client):
    fcm.expires_in = 330  # the notifier refreshes 300 s before expiry: this token is good for 30 s
    clock_now = [time.time()]
    notifier = fcm_notifier(fcm, client, clock=lambda: clock_now[0])
    await notifier.send(make_notice(channel="push"), render(make_notice(channel="push")))
    clock_now[0] += 20
    await notifier.send(make_notice(channel="push"), render(make_notice(channel="push")))
    assert fcm.token_requests == 1

    clock_now[0] += 20  # inside the refresh margin: a new token before the old one dies
    await notifier.send(make_notice(channel="push"), render(make_notice(channel="push")))
    assert fcm.token_requests == 2

    fcm.revoke_all()  # revoked server-side: one 401, a new token, the send goes through
    await notifier.send(make_notice(channel="push"), render(make_notice(channel="push")))
    assert fcm.token_requests == 3
    assert fcm.rejected == ["unauthenticated"]


async def test_fcm_token_endpoint_refuses_a_jwt_signed_with_another_key(fcm, client):
    notifier = fcm_notifier(fcm, client, key=OTHER_KEY)
    notice = make_notice(channel="push")
    with pytest.raises(DeliveryError) as err:
        await notifier.send(notice, render(notice))
    assert fcm.rejected == ["invalid_grant"] and fcm.received == []
    assert err.value.retryable  # this provider is misconfigured: the chain may use JPush


async def test_fcm_dead_token_is_reported_and_one_live_device_is_enough(fcm, client):
    dead: list = []
    notice = make_notice(channel="push")
    assert await fcm_notifier(fcm, client, ("dead-1", "tok-2"), dead=dead).send(notice, render(notice))
    assert dead == [("u1", "dead-1")]

    with pytest.raises(DeliveryError) as err:
        await fcm_notifier(fcm, client, ("dead-1",), dead=dead).send(notice, render(notice))
    assert not err.value.retryable


@pytest.mark.parametrize(
    "action, retryable",
    [
        (("fcm", 503, "UNAVAILABLE", "UNAVAILABLE"), True),
        (("fcm", 429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), True),
        (("fcm", 500, "INTERNAL", "INTERNAL"), True),
        (("fcm", 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), False),
    ],
)
async def test_fcm_error_classification(fcm, client, action, retryable):
    fcm.plan.append(action)
    notice = make_notice(channel="push")
    with pytest.raises(DeliveryError) as err:
        await fcm_notifier(fcm, client).send(notice, render(notice))
    assert err.value.retryable is retryable


def test_fcm_cannot_reach_a_user_without_device_tokens(fcm, client):
    notifier = fcm_notifier(fcm, client, tokens=())
    assert not notifier.can_reach(make_notice(channel="push"))
    assert fcm_notifier(fcm, client).can_reach(make_notice(channel="push"))
    assert not fcm_notifier(fcm, client).can_reach(make_notice(channel="push", user_id="u2"))


def test_lock_screen_guard_refuses_the_amount():
    notice = make_notice(channel="push")
    lock_screen_safe(notice, "提现失败（订单号 W1001）", "尾号1234")
    with pytest.raises(DeliveryError):
        lock_screen_safe(notice, "提现100.00元失败", "")
    with pytest.raises(DeliveryError):
        lock_screen_safe(notice, "", "100.00元已退回")


# --------------------------------------------------------------------------- JPush


async def test_jpush_sends_with_basic_auth_and_collapse_id(jpush, client):
    notice = make_notice(channel="push")
    rendered = render(notice)
    msg_id = await jpush_notifier(jpush, client).send(notice, rendered)

    assert jpush.rejected == [] and msg_id.isdigit()
    [body] = jpush.received
    assert body["audience"] == {"registration_id": ["1a0018970a8d2e1a"]}
    assert body["notification"]["android"]["title"] == rendered.push_title
    assert body["notification"]["ios"]["alert"] == {"title": rendered.push_title, "body": rendered.push_body}
    assert body["notification"]["android"]["extras"]["notice_key"] == notice.key
    assert body["options"] == {"time_to_live": 86400, "apns_production": True, "apns_collapse_id": "W1001"}
    assert body["cid"].startswith(FakeJPush.APP_KEY + "-")


async def test_jpush_retry_of_the_same_notice_reuses_its_cid_and_is_not_pushed_twice(jpush, client):
    notifier = jpush_notifier(jpush, client)
    notice = make_notice(channel="push")
    first = await notifier.send(notice, render(notice))
    again = await notifier.send(notice, render(notice))  # e.g. the activity retried after a lost answer
    assert first == again
    assert jpush.pushed == 1 and len(jpush.received) == 2
    assert jpush.received[0]["cid"] == jpush.received[1]["cid"]

    other = make_notice(channel="push")
    assert await notifier.send(other, render(other)) != first
    assert jpush.pushed == 2


@pytest.mark.parametrize(
    "action, retryable",
    [
        (("jpush", 400, 1011, "cannot find user by this audience"), False),
        (("jpush", 429, 2002, "Request times of the app_key exceed the limit"), True),
        (("jpush", 500, 1000, "server error"), True),
    ],
)
async def test_jpush_error_classification(jpush, client, action, retryable):
    jpush.plan.append(action)
    notice = make_notice(channel="push")
    with pytest.raises(DeliveryError) as err:
        await jpush_notifier(jpush, client).send(notice, render(notice))
    assert err.value.retryable is retryable


async def test_jpush_wrong_secret_is_retryable(jpush, client):
    notifier = JPushNotifier(
        JPushConfig(app_key=FakeJPush.APP_KEY, master_secret="wrong", api_base=jpush.url),
        lambda user_id: ["1a0018970a8d2e1a"],
        client=client,
    )
    notice = make_notice(channel="push")
    with pytest.raises(DeliveryError) as err:
        await notifier.send(notice, render(notice))
    assert err.value.retryable and jpush.rejected == ["authen failed"]


async def test_push_chain_prefers_jpush_in_mainland_china_and_fcm_elsewhere(fcm, jpush, client):
    chain = ProviderChain(
        "push", [fcm_notifier(fcm, client), jpush_notifier(jpush, client)], DEFAULT_PUSH_ROUTES
    )
    cn = make_notice(channel="push", phone=CN_PHONE)
    us = make_notice(channel="push", phone=US_PHONE, locale="en-US")
    assert (await chain.send(cn, render(cn))).startswith("jpush:")
    assert (await chain.send(us, render(us))).startswith("fcm:projects/")

    jpush.plan.append(("jpush", 503, 1000, "busy"))  # JPush down: the mainland notice fails over to FCM
    cn2 = make_notice(channel="push", phone=CN_PHONE)
    assert (await chain.send(cn2, render(cn2))).startswith("fcm:")


# --------------------------------------------------------------------------- voice


@pytest.mark.parametrize("locale, language", [("zh-CN", "zh-CN"), ("en-US", "en-US")])
async def test_twilio_voice_reads_the_short_text_in_the_users_language(twilio, client, locale, language):
    notice = make_notice(
        channel="voice",
        phone=US_PHONE,
        locale=locale,
        stage=Stage.DETECTED,
        category=ExceptionCategory.ACCOUNT_INFO_ERROR,
    )
    rendered = render(notice)
    sid = await TwilioVoiceNotifier(twilio_config(twilio), client=client).send(notice, rendered)

    assert twilio.rejected == [] and sid.startswith("CA")
    [req] = twilio.received
    form = req["form"]
    assert req["resource"] == "Calls.json"
    assert form["To"] == US_PHONE and form["From"] == "+15005550006"
    say = ET.fromstring(form["Twiml"]).find("Say")  # well-formed even with "&", "<", ">" in the text
    assert say.get("language") == language and say.get("loop") == "2"
    assert say.text == rendered.voice
    assert "notice_key=" in form["StatusCallback"] and form["StatusCallbackEvent"] == "completed"


def test_twiml_escapes_markup():
    twiml = twiml_say('a < b & "c" > d', "en-US", loop=1)
    assert ET.fromstring(twiml).find("Say").text == 'a < b & "c" > d'


async def test_aliyun_voice_places_a_signed_tts_call(aliyun, client):
    notifier = AliyunVoiceNotifier(
        AliyunVoiceConfig(
            access_key_id="LTAItestkey",
            access_key_secret="aliyun-test-secret",
            called_show_number="057188773344",
            templates={"default": "TTS_100001"},
            endpoint=aliyun.url,
        ),
        client=client,
    )
    notice = make_notice(channel="voice")
    call_id = await notifier.send(notice, render(notice))

    assert aliyun.rejected == [] and call_id.startswith("116012354148^")
    [req] = aliyun.received
    p = req["params"]
    assert req["action"] == "SingleCallByTts"
    assert p["CalledNumber"] == "13800138000" and p["CalledShowNumber"] == "057188773344"
    assert p["TtsCode"] == "TTS_100001" and json.loads(p["TtsParam"]) == {
        "order_no": "W1001",
        "card_last4": "1234",
    }
    assert p["OutId"] == notice.key and p["PlayTimes"] == "2"
    assert not notifier.can_reach(make_notice(channel="voice", phone=US_PHONE))

    aliyun.plan.append(("code", "isv.INVALID_PARAMETERS"))
    with pytest.raises(DeliveryError) as err:
        await notifier.send(notice, render(notice))
    assert not err.value.retryable
