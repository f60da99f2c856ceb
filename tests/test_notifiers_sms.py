"""SMS notifiers (Aliyun, Tencent, Twilio) over real HTTP against local fake providers.

Each fake checks a request the way the provider does: it recomputes the Aliyun V3 /
Tencent TC3 signature from the bytes it received (with its own, independent code), checks
the clock skew, the nonce, the required fields, that ``OutId`` / ``SessionContext`` is the
notice key; Twilio's checks HTTP Basic and the form fields. A request that fails a check
is answered the way the provider answers it and recorded in ``fake.rejected``.

The fakes and the notice helpers are reused by test_notifier_routing.py and
test_notifiers_push_voice.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from notifiers.base import DeliveryError
from notifiers.routing import AmbiguousDeliveryError
from notifiers.sms_aliyun import AliyunSmsConfig, AliyunSmsNotifier
from notifiers.sms_tencent import TencentSmsConfig, TencentSmsNotifier
from notifiers.sms_twilio import TwilioConfig, TwilioSmsNotifier
from sentinel.links import make_link
from sentinel.models import Contact, NoticeRequest, WithdrawalRequest
from sentinel.render import RenderedNotice, canonical_status, link_kind_for, render_notice
from sentinel.taxonomy import ExceptionCategory, Severity, Stage
from tests.conftest import free_port

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
CN_PHONE = "+8613800138000"
US_PHONE = "+14155550100"

# --------------------------------------------------------------------------- notices


def make_notice(
    *,
    phone: str | None = CN_PHONE,
    locale: str = "zh-CN",
    stage: Stage = Stage.DETECTED,
    category: ExceptionCategory | None = ExceptionCategory.BANK_DELAY,
    channel: str = "sms",
    key: str | None = None,
    user_id: str = "u1",
    severity: Severity = Severity.HIGH,
) -> NoticeRequest:
    w = WithdrawalRequest(
        withdrawal_id="W1001",
        user_id=user_id,
        amount="100.00",
        currency="CNY",
        channel="generic",
        bank_code="ICBC",
        card_last4="1234",
        payee_ref="vault:tok_1",
        locale=locale,
        contact=Contact(phone=phone),
    )
    return NoticeRequest(
        key=key or f"W1001:{stage.value}:{channel}:{uuid.uuid4().hex[:8]}",
        channel=channel,
        stage=stage,
        category=category,
        severity=severity,
        status=canonical_status(stage, category),
        withdrawal=w,
    )


def render(notice: NoticeRequest) -> RenderedNotice:
    link = make_link(
        "https://pay.example/app", link_kind_for(notice), notice.withdrawal.withdrawal_id,
        notice.withdrawal.user_id, "test-link-secret", int(NOW.timestamp()), 86400,
    )
    return render_notice(
        notice, support_phone="95188", support_url="https://pay.example/support", link=link, now=NOW
    )


# --------------------------------------------------------------------------- local servers


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # several servers in one test process: leave SIGINT alone
        yield


class LocalServer:
    """An ASGI app served by uvicorn on a free 127.0.0.1 port, inside the test loop."""

    def __init__(self, app: Any):
        self.app = app
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> "LocalServer":
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
            access_log=False, timeout_graceful_shutdown=1,
        )
        self.server = _Server(config)
        self.task = asyncio.create_task(self.server.serve())
        for _ in range(500):
            if self.server.started:
                return self
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        raise RuntimeError("local server did not start")

    async def __aexit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        await self.task


class Fake:
    """What a fake provider received, what it refused, and what it answers next.

    ``plan`` entries, consumed one per accepted request: ``"ok"``, ``("http", status,
    json)``, ``("sleep", seconds)`` (answer late: the client times out), or a
    provider-specific ``("code", ...)``."""

    def __init__(self) -> None:
        self.app = FastAPI()
        self.received: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.plan: list[Any] = []
        self.url = ""

    def reset(self) -> None:
        self.received.clear()
        self.rejected.clear()
        self.plan.clear()

    def next_action(self) -> Any:
        return self.plan.pop(0) if self.plan else "ok"

    def reject(self, why: str) -> str:
        self.rejected.append(why)
        return why


def _skew_ok(when: datetime, limit_s: float) -> bool:
    return abs((datetime.now(timezone.utc) - when).total_seconds()) <= limit_s


# --------------------------------------------------------------------------- fake Aliyun

_UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def _rfc3986(text: str) -> str:
    """Written out by hand on purpose: not the production encoder."""
    return "".join(c if c in _UNRESERVED else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in text)


class FakeAliyun(Fake):
    """dysmsapi SendSms + dyvmsapi SingleCallByTts on one port (dispatch by x-acs-action)."""

    KEYS = {"LTAItestkey": "aliyun-test-secret"}
    REQUIRED = {
        "SendSms": ("PhoneNumbers", "SignName", "TemplateCode", "TemplateParam", "OutId"),
        "SingleCallByTts": ("CalledShowNumber", "CalledNumber", "TtsCode", "TtsParam", "OutId"),
    }
    AUTH = re.compile(r"^ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([a-z0-9;-]+),Signature=([0-9a-f]{64})$")

    def __init__(self) -> None:
        super().__init__()
        self.nonces: set[str] = set()
        self.app.add_api_route("/", self.handle, methods=["POST"])

    def check_signature(self, request: Request, headers: dict[str, str], body: bytes) -> str | None:
        m = self.AUTH.match(headers.get("authorization", ""))
        if not m:
            return "IncompleteSignature"
        key_id, signed_headers, sig = m.groups()
        secret = self.KEYS.get(key_id)
        if secret is None:
            return "InvalidAccessKeyId.NotFound"
        if headers.get("x-acs-content-sha256") != hashlib.sha256(body).hexdigest():
            return "ContentSHA256NotMatched"
        try:
            when = datetime.strptime(headers.get("x-acs-date", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return "InvalidTimeStamp.Format"
        if not _skew_ok(when, 15 * 60):
            return "InvalidTimeStamp.Expired"
        nonce = headers.get("x-acs-signature-nonce", "")
        if not nonce or nonce in self.nonces:
            return "SignatureNonceUsed"
        names = sorted(n for n in headers if n in ("host", "content-type") or n.startswith("x-acs-"))
        if signed_headers != ";".join(names):
            return "IncompleteSignature"  # every x-acs-* header must be signed
        pairs = sorted((_rfc3986(k), _rfc3986(v)) for k, v in parse_qsl(request.url.query, keep_blank_values=True))
        canonical = "\n".join([
            request.method,
            "/",
            "&".join(f"{k}={v}" for k, v in pairs),
            "".join(f"{n}:{headers[n].strip()}\n" for n in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ])
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        if not hmac.compare_digest(hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest(), sig):
            return "SignatureDoesNotMatch"
        self.nonces.add(nonce)
        return None

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        problem = self.check_signature(request, headers, body)
        if problem:
            return JSONResponse({"Code": self.reject(problem), "Message": problem}, status_code=400)
        action = headers.get("x-acs-action", "")
        if action not in self.REQUIRED or headers.get("x-acs-version") != "2017-05-25":
            return JSONResponse({"Code": self.reject(f"InvalidAction {action}")}, status_code=404)
        params = dict(parse_qsl(request.url.query, keep_blank_values=True))
        missing = [p for p in self.REQUIRED[action] if not params.get(p)]
        if missing:
            return JSONResponse({"Code": self.reject(f"MissingParameter {missing}")}, status_code=400)
        try:
            json.loads(params.get("TemplateParam") or params.get("TtsParam") or "{}")
        except ValueError:
            return JSONResponse({"Code": self.reject("isv.INVALID_JSON_PARAM")})
        self.received.append({"action": action, "params": params, "headers": headers})
        act = self.next_action()
        request_id = str(uuid.uuid4()).upper()
        if isinstance(act, tuple) and act[0] == "sleep":
            await asyncio.sleep(act[1])
        elif isinstance(act, tuple) and act[0] == "http":
            return JSONResponse(act[2], status_code=act[1])
        elif isinstance(act, tuple) and act[0] == "code":
            return JSONResponse({"Code": act[1], "Message": act[1], "RequestId": request_id})
        if action == "SendSms":
            return JSONResponse({"Code": "OK", "Message": "OK", "BizId": f"{len(self.received)}900619746936498^0",
                                 "RequestId": request_id})
        return JSONResponse({"Code": "OK", "Message": "OK", "CallId": f"116012354148^{len(self.received)}",
                             "RequestId": request_id})


# --------------------------------------------------------------------------- fake Tencent


class FakeTencent(Fake):
    KEYS = {"AKIDtestsecretid": "tencent-test-secret-key"}
    APP_ID = "1400006666"
    AUTH = re.compile(
        r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z]+)/tc3_request, "
        r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})$"
    )

    def __init__(self) -> None:
        super().__init__()
        self.app.add_api_route("/", self.handle, methods=["POST"])

    @staticmethod
    def _answer(payload: dict[str, Any]) -> JSONResponse:
        return JSONResponse({"Response": {**payload, "RequestId": str(uuid.uuid4())}})

    def _error(self, code: str) -> JSONResponse:
        return self._answer({"Error": {"Code": self.reject(code), "Message": code}})

    def check_signature(self, headers: dict[str, str], body: bytes) -> str | None:
        m = self.AUTH.match(headers.get("authorization", ""))
        if not m:
            return "AuthFailure.InvalidAuthorization"
        secret = self.KEYS.get(m["id"])
        if secret is None:
            return "AuthFailure.SecretIdNotFound"
        try:
            ts = int(headers.get("x-tc-timestamp", ""))
        except ValueError:
            return "InvalidParameter"
        when = datetime.fromtimestamp(ts, tz=timezone.utc)
        if not _skew_ok(when, 300):
            return "AuthFailure.SignatureExpire"
        if m["date"] != when.strftime("%Y-%m-%d") or m["service"] != "sms":
            return "AuthFailure.SignatureFailure"
        signed = m["signed"].split(";")
        if signed != sorted(signed) or not {"content-type", "host"} <= set(signed) \
                or any(s not in headers for s in signed):
            return "AuthFailure.SignatureFailure"
        canonical = "POST\n/\n\n" + "".join(f"{s}:{headers[s].strip().lower()}\n" for s in signed) + "\n" + \
            m["signed"] + "\n" + hashlib.sha256(body).hexdigest()
        scope = f"{m['date']}/sms/tc3_request"
        to_sign = f"TC3-HMAC-SHA256\n{ts}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        key = hmac.new(("TC3" + secret).encode(), m["date"].encode(), hashlib.sha256).digest()
        key = hmac.new(key, b"sms", hashlib.sha256).digest()
        key = hmac.new(key, b"tc3_request", hashlib.sha256).digest()
        if not hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), m["sig"]):
            return "AuthFailure.SignatureFailure"
        return None

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        problem = self.check_signature(headers, body)
        if problem:
            return self._error(problem)
        if headers.get("x-tc-action") != "SendSms" or headers.get("x-tc-version") != "2021-01-11":
            return self._error("InvalidAction")
        if not headers.get("x-tc-region"):
            return self._error("MissingParameter")  # SendSms 2021-01-11 needs the region
        data = json.loads(body)
        ok = (
            isinstance(data.get("PhoneNumberSet"), list)
            and all(re.fullmatch(r"\+[1-9]\d{6,14}", p) for p in data["PhoneNumberSet"])
            and data.get("SmsSdkAppId") == self.APP_ID
            and data.get("TemplateId")
            and data.get("SignName")
            and isinstance(data.get("TemplateParamSet"), list)
            and all(isinstance(v, str) for v in data["TemplateParamSet"])
            and data.get("SessionContext")
        )
        if not ok:
            return self._error("InvalidParameterValue")
        self.received.append({"body": data, "headers": headers})
        act = self.next_action()
        if isinstance(act, tuple) and act[0] == "sleep":
            await asyncio.sleep(act[1])
        elif isinstance(act, tuple) and act[0] == "http":
            return JSONResponse(act[2], status_code=act[1])
        elif isinstance(act, tuple) and act[0] == "error":
            return self._answer({"Error": {"Code": act[1], "Message": act[1]}})
        code = act[1] if isinstance(act, tuple) and act[0] == "code" else "Ok"
        return self._answer({"SendStatusSet": [{
            "SerialNo": f"5000:{len(self.received)}04571066915705365784949619" if code == "Ok" else "",
            "PhoneNumber": data["PhoneNumberSet"][0], "Fee": 1, "SessionContext": data["SessionContext"],
            "Code": code, "Message": "send success" if code == "Ok" else code, "IsoCode": "CN",
        }]})


# --------------------------------------------------------------------------- fake Twilio


class FakeTwilio(Fake):
    SID = "ACtest00000000000000000000000000"
    TOKEN = "twilio-test-auth-token"

    def __init__(self) -> None:
        super().__init__()
        self.app.add_api_route("/2010-04-01/Accounts/{sid}/{resource}", self.handle, methods=["POST"])

    def _error(self, status: int, code: int, message: str) -> JSONResponse:
        body = {"code": code, "message": message, "status": status,
                "more_info": f"https://www.twilio.com/docs/errors/{code}"}
        return JSONResponse(body, status_code=status)

    async def handle(self, sid: str, resource: str, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        expected = "Basic " + base64.b64encode(f"{self.SID}:{self.TOKEN}".encode()).decode()
        if not hmac.compare_digest(auth, expected) or sid != self.SID:
            self.reject("authenticate")
            return self._error(401, 20003, "Authenticate")
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            self.reject("content-type")
            return self._error(400, 21000, "form encoding expected")
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        if resource == "Messages.json":
            ok = form.get("To") and form.get("Body") and (form.get("From") or form.get("MessagingServiceSid"))
        elif resource == "Calls.json":
            ok = form.get("To") and form.get("From") and (form.get("Twiml") or form.get("Url"))
        else:
            return self._error(404, 20404, "not found")
        if not ok:
            self.reject(f"missing fields in {sorted(form)}")
            return self._error(400, 21604, "A required parameter is missing")
        self.received.append({"resource": resource, "form": form})
        act = self.next_action()
        if isinstance(act, tuple) and act[0] == "sleep":
            await asyncio.sleep(act[1])
        elif isinstance(act, tuple) and act[0] == "http":
            return JSONResponse(act[2], status_code=act[1])
        elif isinstance(act, tuple) and act[0] == "code":
            return self._error(400, act[1], "rejected")
        prefix = "SM" if resource == "Messages.json" else "CA"
        return JSONResponse({"sid": prefix + uuid.uuid4().hex, "status": "queued", "to": form["To"]}, status_code=201)


# --------------------------------------------------------------------------- fixtures & builders

ALIYUN_TEMPLATES = {
    "DETECTED/BANK_DELAY": {"code": "SMS_460001", "params": {"order": "order_no", "card": "card_last4"}},
    "DELAYED": "SMS_460002",
    "zh-CN/RESOLVED/default": "SMS_460009",
}
TENCENT_TEMPLATES = {
    "DETECTED/BANK_DELAY": {"code": "2001001", "params": ["order_no", "card_last4"]},
    "DELAYED": "2001002",
}


@contextlib.asynccontextmanager
async def serve(fake: Fake):
    async with LocalServer(fake.app) as server:
        fake.url = server.url
        yield fake


@pytest.fixture(scope="module")
async def aliyun_server():
    async with serve(FakeAliyun()) as fake:
        yield fake


@pytest.fixture(scope="module")
async def tencent_server():
    async with serve(FakeTencent()) as fake:
        yield fake


@pytest.fixture(scope="module")
async def twilio_server():
    async with serve(FakeTwilio()) as fake:
        yield fake


# one server per module; every test starts with empty logs and plans


@pytest.fixture()
def aliyun(aliyun_server: FakeAliyun) -> FakeAliyun:
    aliyun_server.reset()
    return aliyun_server


@pytest.fixture()
def tencent(tencent_server: FakeTencent) -> FakeTencent:
    tencent_server.reset()
    return tencent_server


@pytest.fixture()
def twilio(twilio_server: FakeTwilio) -> FakeTwilio:
    twilio_server.reset()
    return twilio_server


@pytest.fixture()
async def client():
    async with httpx.AsyncClient(timeout=0.5) as c:
        yield c


def aliyun_sms(fake: FakeAliyun, client: httpx.AsyncClient, **overrides: Any) -> AliyunSmsNotifier:
    cfg = dict(access_key_id="LTAItestkey", access_key_secret="aliyun-test-secret", sign_name="某某支付",
               templates=ALIYUN_TEMPLATES, endpoint=fake.url)
    cfg.update(overrides)
    return AliyunSmsNotifier(AliyunSmsConfig(**cfg), client=client)


def tencent_sms(fake: FakeTencent, client: httpx.AsyncClient, **overrides: Any) -> TencentSmsNotifier:
    cfg = dict(secret_id="AKIDtestsecretid", secret_key="tencent-test-secret-key", sms_sdk_app_id=FakeTencent.APP_ID,
               sign_name="某某支付", templates=TENCENT_TEMPLATES, endpoint=fake.url)
    cfg.update(overrides)
    return TencentSmsNotifier(TencentSmsConfig(**cfg), client=client)


def twilio_config(fake: FakeTwilio, **overrides: Any) -> TwilioConfig:
    cfg = dict(account_sid=FakeTwilio.SID, auth_token=FakeTwilio.TOKEN, from_number="+15005550006",
               api_base=fake.url, status_callback_url="https://hooks.pay.example/twilio/status")
    cfg.update(overrides)
    return TwilioConfig(**cfg)


# --------------------------------------------------------------------------- Aliyun


async def test_aliyun_sends_signed_sendsms_with_template_and_out_id(aliyun, client):
    notifier = aliyun_sms(aliyun, client)
    notice = make_notice()
    rendered = render(notice)

    biz_id = await notifier.send(notice, rendered)

    assert aliyun.rejected == []
    assert biz_id.endswith("^0")
    [req] = aliyun.received
    p = req["params"]
    assert req["action"] == "SendSms"
    assert p["PhoneNumbers"] == "13800138000"
    assert p["SignName"] == "某某支付"
    assert p["TemplateCode"] == "SMS_460001"
    assert json.loads(p["TemplateParam"]) == {"order": "W1001", "card": "1234"}
    assert p["OutId"] == notice.key  # the idempotency key reaches the provider
    assert "100.00" not in p["TemplateParam"]


async def test_aliyun_template_lookup_and_reach(aliyun, client):
    notifier = aliyun_sms(aliyun, client)
    delayed = make_notice(stage=Stage.DELAYED, category=ExceptionCategory.BANK_DELAY)
    resolved = make_notice(stage=Stage.RESOLVED, category=None)
    rejected = make_notice(stage=Stage.REJECTED, category=ExceptionCategory.RISK_HOLD)

    assert notifier.registry.lookup(delayed).code == "SMS_460002"  # by stage
    assert notifier.registry.lookup(resolved).code == "SMS_460009"  # by template id
    assert notifier.can_reach(delayed) and notifier.can_reach(resolved)
    assert not notifier.can_reach(rejected)  # no registered template: China SMS cannot send it
    assert not notifier.can_reach(make_notice(phone=US_PHONE))  # domestic templates only
    assert not notifier.can_reach(make_notice(phone=None))

    await notifier.send(delayed, render(delayed))
    assert aliyun.received[-1]["params"]["TemplateCode"] == "SMS_460002"
    assert json.loads(aliyun.received[-1]["params"]["TemplateParam"]) == {"order_no": "W1001", "card_last4": "1234"}


@pytest.mark.parametrize(
    "action, retryable",
    [
        (("code", "isv.BUSINESS_LIMIT_CONTROL"), True),
        (("code", "isp.SYSTEM_ERROR"), True),
        (("http", 500, {"Code": "InternalError", "Message": "oops"}), True),
        (("http", 503, {"Code": "ServiceUnavailable"}), True),
        (("http", 429, {"Code": "Throttling.User"}), True),
        (("code", "isv.MOBILE_NUMBER_ILLEGAL"), False),
        (("code", "isv.BLACK_KEY_CONTROL_LIMIT"), False),
    ],
)
async def test_aliyun_error_classification(aliyun, client, action, retryable):
    aliyun.plan.append(action)
    notice = make_notice()
    with pytest.raises(DeliveryError) as err:
        await aliyun_sms(aliyun, client).send(notice, render(notice))
    assert err.value.retryable is retryable
    assert aliyun.rejected == []


async def test_aliyun_timeout_is_retryable_and_ambiguous(aliyun):
    aliyun.plan.append(("sleep", 0.6))
    notice = make_notice()
    async with httpx.AsyncClient(timeout=0.2) as short:
        with pytest.raises(AmbiguousDeliveryError) as err:
            await aliyun_sms(aliyun, short).send(notice, render(notice))
    assert err.value.retryable


async def test_aliyun_wrong_secret_is_refused_by_the_signature_check(aliyun, client):
    notice = make_notice()
    with pytest.raises(DeliveryError) as err:
        await aliyun_sms(aliyun, client, access_key_secret="not-the-secret").send(notice, render(notice))
    assert aliyun.rejected == ["SignatureDoesNotMatch"]
    assert aliyun.received == []
    assert err.value.retryable  # this account is misconfigured: another provider may work


async def test_aliyun_signature_nonce_is_never_reused(aliyun, client):
    notifier = aliyun_sms(aliyun, client)
    for _ in range(3):
        notice = make_notice()
        await notifier.send(notice, render(notice))
    nonces = [r["headers"]["x-acs-signature-nonce"] for r in aliyun.received]
    assert len(set(nonces)) == 3 and aliyun.rejected == []


# --------------------------------------------------------------------------- Tencent


async def test_tencent_sends_signed_sendsms_with_session_context(tencent, client):
    notice = make_notice()
    serial = await tencent_sms(tencent, client).send(notice, render(notice))

    assert tencent.rejected == []
    assert serial.startswith("5000:")
    [req] = tencent.received
    body = req["body"]
    assert body["PhoneNumberSet"] == [CN_PHONE]
    assert body["SmsSdkAppId"] == FakeTencent.APP_ID
    assert body["TemplateId"] == "2001001"
    assert body["TemplateParamSet"] == ["W1001", "1234"]
    assert body["SessionContext"] == notice.key
    assert req["headers"]["x-tc-region"] == "ap-guangzhou"
    assert "x-tc-action" in req["headers"]["authorization"]  # the action is signed too


@pytest.mark.parametrize(
    "action, retryable",
    [
        (("code", "LimitExceeded.PhoneNumberThirtySecondLimit"), True),
        (("code", "LimitExceeded.DeliveryFrequencyLimit"), True),
        (("error", "InternalError.Timeout"), True),
        (("error", "RequestLimitExceeded"), True),
        (("http", 502, {"message": "bad gateway"}), True),
        (("code", "InvalidParameterValue.IncorrectPhoneNumber"), False),
        (("code", "FailedOperation.PhoneNumberInBlacklist"), False),
    ],
)
async def test_tencent_error_classification(tencent, client, action, retryable):
    tencent.plan.append(action)
    notice = make_notice()
    with pytest.raises(DeliveryError) as err:
        await tencent_sms(tencent, client).send(notice, render(notice))
    assert err.value.retryable is retryable
    assert tencent.rejected == []


async def test_tencent_wrong_key_is_refused_by_the_signature_check(tencent, client):
    notice = make_notice()
    with pytest.raises(DeliveryError) as err:
        await tencent_sms(tencent, client, secret_key="wrong").send(notice, render(notice))
    assert tencent.rejected == ["AuthFailure.SignatureFailure"] and tencent.received == []
    assert err.value.retryable


async def test_tencent_uses_the_injected_clock_and_the_utc_date(tencent, client):
    # the midnight case (UTC+8 already the next day) is pinned in test_notifier_signing.py
    just_now = datetime.now(timezone.utc).replace(microsecond=0)
    notifier = TencentSmsNotifier(tencent_sms(tencent, client).cfg, client=client, clock=lambda: just_now.timestamp())
    notice = make_notice()
    await notifier.send(notice, render(notice))
    assert tencent.rejected == []
    auth = tencent.received[-1]["headers"]["authorization"]
    assert f"/{just_now.strftime('%Y-%m-%d')}/sms/tc3_request" in auth


# --------------------------------------------------------------------------- Twilio


async def test_twilio_sends_short_text_with_basic_auth_and_callback(twilio, client):
    notice = make_notice(phone=US_PHONE, locale="en-US")
    rendered = render(notice)
    sid = await TwilioSmsNotifier(twilio_config(twilio), client=client).send(notice, rendered)

    assert twilio.rejected == []
    assert sid.startswith("SM")
    [req] = twilio.received
    form = req["form"]
    assert req["resource"] == "Messages.json"
    assert form["To"] == US_PHONE and form["From"] == "+15005550006"
    assert form["Body"] == rendered.short
    assert "1234" in form["Body"] and "100.00" not in form["Body"]
    assert form["StatusCallback"].startswith("https://hooks.pay.example/twilio/status?notice_key=")
    assert httpx.URL(form["StatusCallback"]).params["notice_key"] == notice.key


async def test_twilio_messaging_service_and_no_callback(twilio, client):
    cfg = twilio_config(twilio, from_number=None, messaging_service_sid="MGtest", status_callback_url=None)
    notice = make_notice(phone=US_PHONE, locale="en-US")
    await TwilioSmsNotifier(cfg, client=client).send(notice, render(notice))
    form = twilio.received[-1]["form"]
    assert form["MessagingServiceSid"] == "MGtest" and "From" not in form and "StatusCallback" not in form


@pytest.mark.parametrize(
    "action, retryable",
    [
        (("code", 21211), False),  # invalid To
        (("code", 21610), False),  # the recipient replied STOP
        (("http", 429, {"code": 20429, "message": "Too Many Requests", "status": 429}), True),
        (("http", 500, {"code": 20500, "message": "Internal Server Error", "status": 500}), True),
    ],
)
async def test_twilio_error_classification(twilio, client, action, retryable):
    twilio.plan.append(action)
    notice = make_notice(phone=US_PHONE, locale="en-US")
    with pytest.raises(DeliveryError) as err:
        await TwilioSmsNotifier(twilio_config(twilio), client=client).send(notice, render(notice))
    assert err.value.retryable is retryable


async def test_twilio_wrong_token_is_refused_and_retryable(twilio, client):
    notice = make_notice(phone=US_PHONE, locale="en-US")
    with pytest.raises(DeliveryError) as err:
        await TwilioSmsNotifier(twilio_config(twilio, auth_token="wrong"), client=client).send(notice, render(notice))
    assert twilio.rejected == ["authenticate"] and err.value.retryable
