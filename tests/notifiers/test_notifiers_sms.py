"""SMS notifiers (Aliyun, Tencent, Twilio) over real HTTP against local fake providers
(tests/support/fake_providers.py), which check each request the way the provider does: the Aliyun
V3 / Tencent TC3 signature recomputed from the bytes received, the clock skew, the nonce,
the required fields, that ``OutId`` / ``SessionContext`` is the notice key; HTTP Basic and
the form fields for Twilio. A request that fails a check is answered the way the provider
answers it and recorded in ``fake.rejected``.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from notifiers.base import DeliveryError
from notifiers.routing import AmbiguousDeliveryError
from notifiers.sms_aliyun import TemplateRegistry, notice_fields
from notifiers.sms_tencent import TencentSmsNotifier
from notifiers.sms_twilio import TwilioSmsNotifier
from notifiers.template_check import ProviderTemplatesIncomplete, check_provider_templates, template_problems
from sentinel.notice_policy import load_notice_policy
from sentinel.render import Brand
from sentinel.taxonomy import ExceptionCategory, Stage, WithdrawalStatus
from tests.support.fake_providers import (
    CN_PHONE,
    US_PHONE,
    FakeTencent,
    aliyun_sms,
    make_notice,
    render,
    tencent_sms,
    twilio_config,
)

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
    assert json.loads(aliyun.received[-1]["params"]["TemplateParam"]) == {
        "order_no": "W1001",
        "card_last4": "1234",
    }


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
    just_now = datetime.now(UTC).replace(microsecond=0)
    notifier = TencentSmsNotifier(
        tencent_sms(tencent, client).cfg, client=client, clock=lambda: just_now.timestamp()
    )
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
    assert "W1001" in form["Body"] and "100.00" not in form["Body"]
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
        await TwilioSmsNotifier(twilio_config(twilio, auth_token="wrong"), client=client).send(
            notice, render(notice)
        )
    assert twilio.rejected == ["authenticate"] and err.value.retryable


# ----------------------------------------------------------------------------- issue #10: template coverage


_ROOT = Path(__file__).resolve().parents[2]
_PROVIDERS = yaml.safe_load((_ROOT / "config" / "providers.yaml").read_text(encoding="utf-8"))
_POLICY = load_notice_policy(
    yaml.safe_load((_ROOT / "config" / "notice_policy.yaml").read_text(encoding="utf-8"))
)


def _problems(data, **kw):
    return template_problems(
        data, _POLICY, brand=kw.get("brand", Brand()), support_phone=kw.get("phone", "555-0100")
    )


def test_shipped_china_templates_cover_every_route_and_fit():  # R7 R19 R20
    """Every (stage, category) the policy sends on SMS / voice, failed or not, finds an
    Aliyun and a Tencent template whose variables the notice fills, within one segment with a
    32-character order number and a 12-character support number."""
    assert _problems(_PROVIDERS) == []
    assert _problems(_PROVIDERS, phone="400-820-8820") == []


def test_the_failure_template_states_the_reason():  # R7 R20
    """Before: one template (order number, last four) served all nine failure cases."""
    failed = _PROVIDERS["aliyun"]["sms"]["templates"]["DETECTED/failed"]
    assert "${reason}" in failed["text"] and "资金已退回余额" in failed["text"]
    n = make_notice(phone=CN_PHONE, stage=Stage.DETECTED, category=ExceptionCategory.ACCOUNT_INFO_ERROR)
    n = n.model_copy(update={"subtype": "account-closed", "status": WithdrawalStatus.FAILED})
    spec = TemplateRegistry(_PROVIDERS["aliyun"]["sms"]["templates"]).lookup(n)
    assert spec.code == failed["code"]
    assert spec.values(notice_fields(n, render(n))) == {"reason": "账户已销户", "phone": "95188"}


@pytest.mark.parametrize(
    ("section", "key"),
    [(("aliyun", "sms"), "UNDER_REVIEW"), (("aliyun", "voice"), "default"), (("tencent",), "DETECTED")],
)
def test_a_route_without_a_template_fails_the_check(section, key):  # R7
    data = copy.deepcopy(_PROVIDERS)
    node = data
    for part in section:
        node = node[part]
    node["templates"] = {k: v for k, v in node["templates"].items() if k != key}
    problems = _problems(data)
    assert problems and all("no template for" in p for p in problems), problems
    with pytest.raises(ProviderTemplatesIncomplete, match="no template for"):
        check_provider_templates(data, _POLICY, brand=Brand(), support_phone="555-0100", strict=True)
    assert check_provider_templates(data, _POLICY, brand=Brand(), support_phone="555-0100", strict=False)


def test_the_check_catches_overflow_variables_and_a_foreign_link():
    data = copy.deepcopy(_PROVIDERS)
    t = data["aliyun"]["sms"]["templates"]
    t["REJECTED"] = {**t["REJECTED"], "text": t["REJECTED"]["text"] + "感谢您的耐心等待，祝您生活愉快！"}
    t["APPROVED"] = {**t["APPROVED"], "text": t["APPROVED"]["text"] + "${amount}"}
    problems = "\n".join(_problems(data))
    assert "SMS_480000042" in problems and "> 70 units" in problems
    assert "APPROVED" in problems and "text variables ['amount', 'phone'] != params ['phone']" in problems
    bad = copy.deepcopy(_PROVIDERS)
    bad["tencent"]["templates"]["RESOLVED"] = {
        **bad["tencent"]["templates"]["RESOLVED"],
        "params": {"who": "nobody"},
    }
    assert any("tencent sms" in p and "unknown notice fields ['nobody']" in p for p in _problems(bad))
    other = "\n".join(_problems(_PROVIDERS, brand=Brand(sms_link="s.acme.cn/w")))
    assert "the short link 's.acme.cn/w' is not in the text" in other
