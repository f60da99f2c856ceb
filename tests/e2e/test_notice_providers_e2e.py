"""Notices over real provider protocols, driven by the real workflow (issue #5): a
high-severity notice reaches the SMS providers the region route names, signed as the
provider checks it, carrying the notice key (Aliyun OutId / Tencent SessionContext); a 500
from the first provider fails over to the next; other countries go to Twilio. R6, R13, R25.
The fake providers (tests/support/fake_providers.py) verify signatures and fields over real HTTP."""

from __future__ import annotations

import yaml

from sentinel.models import Contact
from sentinel.taxonomy import Stage
from tests.support.decisions import signed
from tests.support.fake_providers import (
    ALIYUN_TEMPLATES,
    TENCENT_TEMPLATES,
    FakeTencent,
    FakeTwilio,
)
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import make_request, make_settings, running


def provider_settings(tmp_path, smtp_port, aliyun, tencent, twilio):
    data = {
        "sms_routes": [["+86", ["aliyun", "tencent"]], ["", ["twilio"]]],
        "voice_routes": [["", ["twilio"]]],
        "breaker": {"failure_threshold": 5, "cooldown": "30s"},
        "aliyun": {
            "sms": {
                "sign_name": "某某支付",
                "endpoint": aliyun.url,
                "templates": {**ALIYUN_TEMPLATES, "DETECTED": "SMS_460010", "default": "SMS_460000"},
            }
        },
        "tencent": {
            "sms_sdk_app_id": FakeTencent.APP_ID,
            "sign_name": "某某支付",
            "endpoint": tencent.url,
            "templates": {
                **TENCENT_TEMPLATES,
                "DETECTED": {"code": "2001010", "params": ["order_no"]},
                "default": {"code": "2001000", "params": ["order_no"]},
            },
        },
        "twilio": {"api_base": twilio.url, "from_number": "+15005550006"},
    }
    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return make_settings(
        tmp_path,
        smtp_port,
        providers_file=path,
        aliyun_access_key_id="LTAItestkey",
        aliyun_access_key_secret="aliyun-test-secret",
        tencent_secret_id="AKIDtestsecretid",
        tencent_secret_key="tencent-test-secret-key",
        twilio_account_sid=FakeTwilio.SID,
        twilio_auth_token=FakeTwilio.TOKEN,
    )


def sent_params(fake) -> list[dict]:
    return [r for r in fake.received]


async def test_china_number_gets_an_aliyun_sms_with_the_notice_key(
    ts_env, tmp_path, smtp_server, unique_id, aliyun, tencent, twilio
):
    settings = provider_settings(tmp_path, smtp_server.port, aliyun, tencent, twilio)
    channel = ScriptedChannel()
    request = make_request(
        unique_id, locale="zh-CN", contact=Contact(email="u@example.com", phone="+8613800138000")
    )
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(request)
        await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "AC04", "evt-1"))
        view = await handle.result()
    detected = next(n for n in view.notices if n.stage == Stage.DETECTED)
    assert "sms" in detected.channels and "sms" in detected.delivered
    assert aliyun.rejected == []
    blob = str(aliyun.received)
    assert f"{unique_id}/DETECTED/1/sms" in blob  # OutId = the notice key (exactly-once reaches the provider)
    assert "13800138000" in blob
    assert tencent.received == []
    # unread for 30 min: the ladder's next rung is a voice call reading the notice (R21, R25)
    assert [r["resource"] for r in twilio.received] == ["Calls.json"]
    # issue #10: the call names the reason (AC04: account closed) and the order's last four, not the card
    twiml = twilio.received[0]["form"]["Twiml"]
    assert f"末四位为{unique_id[-4:]}" in twiml and "账户已销户" in twiml and detected.rung == 1


async def test_provider_500_fails_over_to_the_next(
    ts_env, tmp_path, smtp_server, unique_id, aliyun, tencent, twilio
):
    settings = provider_settings(tmp_path, smtp_server.port, aliyun, tencent, twilio)
    aliyun.plan = [("http", 500, {"Code": "InternalError", "Message": "boom"})] * 3
    channel = ScriptedChannel()
    request = make_request(
        unique_id, locale="zh-CN", contact=Contact(email="u@example.com", phone="+8613800138000")
    )
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(request)
        await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "AC04", "evt-1"))
        view = await handle.result()
    detected = next(n for n in view.notices if n.stage == Stage.DETECTED)
    assert "sms" in detected.delivered
    assert tencent.rejected == []
    assert f"{unique_id}/DETECTED/1/sms" in str(tencent.received)  # SessionContext = notice key


async def test_other_countries_go_to_twilio(
    ts_env, tmp_path, smtp_server, unique_id, aliyun, tencent, twilio
):
    settings = provider_settings(tmp_path, smtp_server.port, aliyun, tencent, twilio)
    channel = ScriptedChannel()
    request = make_request(
        unique_id,
        locale="en-US",
        contact=Contact(email="u@example.com", phone="+4915112345678", timezone="Europe/Berlin"),
    )
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(request)
        await handle.signal("bank_callback", channel.callback(unique_id, "HELD", "FR01", "evt-1"))
        await ts_env.sleep(5)
        from sentinel.models import ReviewDecision

        await client.review(
            unique_id,
            await signed(
                ts_env, unique_id, ReviewDecision(decision="reject", reviewer="rev-1", reason="fraud")
            ),
        )
        view = await handle.result()
    review = next(n for n in view.notices if n.stage == Stage.UNDER_REVIEW)
    assert "sms" in review.delivered
    assert twilio.rejected == [] and len(twilio.received) >= 1
    assert aliyun.received == [] and tencent.received == []
    assert "pay.example/w" in str(twilio.received)  # the SMS's short link (issue #10)
