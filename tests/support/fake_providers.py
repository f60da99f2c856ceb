"""Local fake SMS / voice providers (Aliyun, Tencent, Twilio) and notice builders, shared by
test_notifiers_sms.py, test_notifiers_push_voice.py and test_notifier_routing.py.

Each fake checks a request the way the provider does: it recomputes the Aliyun V3 /
Tencent TC3 signature from the bytes it received (with its own, independent code), checks
the clock skew, the nonce, the required fields, that ``OutId`` / ``SessionContext`` is the
notice key; Twilio's checks HTTP Basic and the form fields. A request that fails a check
is answered the way the provider answers it and recorded in ``fake.rejected``.

The fixtures here are used by name: a test module imports the ones it needs.
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
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from notifiers.sms_aliyun import AliyunSmsConfig, AliyunSmsNotifier
from notifiers.sms_tencent import TencentSmsConfig, TencentSmsNotifier
from notifiers.sms_twilio import TwilioConfig
from sentinel.links import make_link
from sentinel.models import Contact, NoticeRequest, WithdrawalRequest
from sentinel.render import RenderedNotice, canonical_status, link_kind_for, render_notice
from sentinel.taxonomy import ExceptionCategory, Severity, Stage
from tests.support.local_server import serve

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
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
        "https://pay.example/app",
        link_kind_for(notice),
        notice.withdrawal.withdrawal_id,
        notice.withdrawal.user_id,
        "test-link-secret",
        int(NOW.timestamp()),
        86400,
    )
    return render_notice(
        notice, support_phone="95188", support_url="https://pay.example/support", link=link, now=NOW
    )


# --------------------------------------------------------------------------- fake providers


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
    return abs((datetime.now(UTC) - when).total_seconds()) <= limit_s


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
        "QuerySendDetails": ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"),
    }
    AUTH = re.compile(
        r"^ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([a-z0-9;-]+),Signature=([0-9a-f]{64})$"
    )

    def __init__(self) -> None:
        super().__init__()
        self.nonces: set[str] = set()
        self.app.add_api_route("/", self.handle, methods=["POST"])

    def details(self, query: dict[str, str]) -> dict[str, Any]:
        """QuerySendDetails: the SMS sent to one number on one day (China time), paged."""
        china = timezone(timedelta(hours=8))
        sent = [
            r
            for r in self.received
            if r["action"] == "SendSms"
            and r.get("accepted", True)
            and r["params"]["PhoneNumbers"] == query["PhoneNumber"]
            and datetime.now(china).strftime("%Y%m%d") == query["SendDate"]
        ]
        size, page = int(query["PageSize"]), int(query["CurrentPage"])
        dtos = [
            {
                "PhoneNum": r["params"]["PhoneNumbers"],
                "SendStatus": 3,
                "ErrCode": "DELIVERED",
                "TemplateCode": r["params"]["TemplateCode"],
                "OutId": r["params"]["OutId"],
                "SendDate": datetime.now(china).strftime("%Y-%m-%d %H:%M:%S"),
                "Content": "...",
            }
            for r in sent
        ][(page - 1) * size : page * size]
        return {"TotalCount": len(sent), "SmsSendDetailDTOs": {"SmsSendDetailDTO": dtos}}

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
            when = datetime.strptime(headers.get("x-acs-date", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
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
        pairs = sorted(
            (_rfc3986(k), _rfc3986(v)) for k, v in parse_qsl(request.url.query, keep_blank_values=True)
        )
        canonical = "\n".join(
            [
                request.method,
                "/",
                "&".join(f"{k}={v}" for k, v in pairs),
                "".join(f"{n}:{headers[n].strip()}\n" for n in names),
                ";".join(names),
                hashlib.sha256(body).hexdigest(),
            ]
        )
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        if not hmac.compare_digest(
            hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest(), sig
        ):
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
        # an error answer means Aliyun did not take the SMS (it is not in QuerySendDetails)
        self.received[-1]["accepted"] = not (isinstance(act, tuple) and act[0] in ("http", "code"))
        request_id = str(uuid.uuid4()).upper()
        if isinstance(act, tuple) and act[0] == "sleep":
            await asyncio.sleep(act[1])
        elif isinstance(act, tuple) and act[0] == "http":
            return JSONResponse(act[2], status_code=act[1])
        elif isinstance(act, tuple) and act[0] == "code":
            return JSONResponse({"Code": act[1], "Message": act[1], "RequestId": request_id})
        if action == "SendSms":
            return JSONResponse(
                {
                    "Code": "OK",
                    "Message": "OK",
                    "BizId": f"{len(self.received)}900619746936498^0",
                    "RequestId": request_id,
                }
            )
        if action == "QuerySendDetails":
            return JSONResponse(
                {"Code": "OK", "Message": "OK", "RequestId": request_id, **self.details(params)}
            )
        return JSONResponse(
            {
                "Code": "OK",
                "Message": "OK",
                "CallId": f"116012354148^{len(self.received)}",
                "RequestId": request_id,
            }
        )


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
        when = datetime.fromtimestamp(ts, tz=UTC)
        if not _skew_ok(when, 300):
            return "AuthFailure.SignatureExpire"
        if m["date"] != when.strftime("%Y-%m-%d") or m["service"] != "sms":
            return "AuthFailure.SignatureFailure"
        signed = m["signed"].split(";")
        if (
            signed != sorted(signed)
            or not {"content-type", "host"} <= set(signed)
            or any(s not in headers for s in signed)
        ):
            return "AuthFailure.SignatureFailure"
        canonical = (
            "POST\n/\n\n"
            + "".join(f"{s}:{headers[s].strip().lower()}\n" for s in signed)
            + "\n"
            + m["signed"]
            + "\n"
            + hashlib.sha256(body).hexdigest()
        )
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
        return self._answer(
            {
                "SendStatusSet": [
                    {
                        "SerialNo": f"5000:{len(self.received)}04571066915705365784949619"
                        if code == "Ok"
                        else "",
                        "PhoneNumber": data["PhoneNumberSet"][0],
                        "Fee": 1,
                        "SessionContext": data["SessionContext"],
                        "Code": code,
                        "Message": "send success" if code == "Ok" else code,
                        "IsoCode": "CN",
                    }
                ]
            }
        )


# --------------------------------------------------------------------------- fake Twilio


class FakeTwilio(Fake):
    SID = "ACtest00000000000000000000000000"
    TOKEN = "twilio-test-auth-token"

    def __init__(self) -> None:
        super().__init__()
        self.app.add_api_route("/2010-04-01/Accounts/{sid}/{resource}", self.handle, methods=["POST"])

    def _error(self, status: int, code: int, message: str) -> JSONResponse:
        body = {
            "code": code,
            "message": message,
            "status": status,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
        }
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
        return JSONResponse(
            {"sid": prefix + uuid.uuid4().hex, "status": "queued", "to": form["To"]}, status_code=201
        )


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
async def serve_fake(fake: Fake):
    """Serve a fake provider on a local port; its ``url`` is set for the block."""
    async with serve(fake.app) as url:
        fake.url = url
        yield fake


@pytest.fixture(scope="module")
async def aliyun_server():
    async with serve_fake(FakeAliyun()) as fake:
        yield fake


@pytest.fixture(scope="module")
async def tencent_server():
    async with serve_fake(FakeTencent()) as fake:
        yield fake


@pytest.fixture(scope="module")
async def twilio_server():
    async with serve_fake(FakeTwilio()) as fake:
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
    cfg = dict(
        access_key_id="LTAItestkey",
        access_key_secret="aliyun-test-secret",
        sign_name="某某支付",
        templates=ALIYUN_TEMPLATES,
        endpoint=fake.url,
    )
    cfg.update(overrides)
    return AliyunSmsNotifier(AliyunSmsConfig(**cfg), client=client)


def tencent_sms(fake: FakeTencent, client: httpx.AsyncClient, **overrides: Any) -> TencentSmsNotifier:
    cfg = dict(
        secret_id="AKIDtestsecretid",
        secret_key="tencent-test-secret-key",
        sms_sdk_app_id=FakeTencent.APP_ID,
        sign_name="某某支付",
        templates=TENCENT_TEMPLATES,
        endpoint=fake.url,
    )
    cfg.update(overrides)
    return TencentSmsNotifier(TencentSmsConfig(**cfg), client=client)


def twilio_config(fake: FakeTwilio, **overrides: Any) -> TwilioConfig:
    cfg = dict(
        account_sid=FakeTwilio.SID,
        auth_token=FakeTwilio.TOKEN,
        from_number="+15005550006",
        api_base=fake.url,
        status_callback_url="https://hooks.pay.example/twilio/status",
    )
    cfg.update(overrides)
    return TwilioConfig(**cfg)
