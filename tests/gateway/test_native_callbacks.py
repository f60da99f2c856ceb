"""Issue #4, done-when: a signed Stripe payout.failed (account_closed), a WeChat Pay FAIL
(NAME_NOT_CORRECT), an Alipay FAIL (PAYEE_USER_INFO_ERROR) and an ISO 20022 pacs.002 RJCT
(AC04), each in the channel's native format and signature, posted to the gateway, drive a
tracked withdrawal to FAILED / ACCOUNT_INFO_ERROR with the notice that names the code's
reason; a bad signature gets 401 and changes nothing. R2, R7, R11, R26."""

from __future__ import annotations

import httpx
import pytest

from gateway.app import create_app
from sentinel.catalogue import default_catalogue
from sentinel.taxonomy import ExceptionCategory, Stage, WithdrawalStatus
from store.db import engine_for
from store.repo import inbox
from tests.channels.test_channel_alipay import notify_params, signed_notify
from tests.channels.test_channel_iso20022 import pacs002
from tests.channels.test_channel_iso20022 import signed as iso_signed
from tests.channels.test_channel_stripe import payout_event, webhook
from tests.channels.test_channel_wechatpay import (
    MCH_ID,
)
from tests.channels.test_channel_wechatpay import notify as wechat_notify
from tests.support.callback_keys import Keys, settings_for
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import make_request, running

SUBMIT_ANSWER = {
    "stripe": ("pending", None),
    "wechat": ("ACCEPTED", None),
    "alipay": ("DEALING", None),
    "iso20022": ("ACTC", None),
}


def native_failure(channel: str, order_id: str, keys: Keys) -> tuple[dict[str, str], bytes, str]:
    """(headers, body, code) of a signed, native 'failed: account problem' callback."""
    if channel == "stripe":
        headers, body = webhook(
            payout_event("payout.failed", "failed", order_id=order_id, code="account_closed")
        )
        return headers, body, "account_closed"
    if channel == "wechat":
        plain = {
            "mchid": MCH_ID,
            "out_bill_no": order_id,
            "transfer_bill_no": "1330000071100999991182020050700019480001",
            "state": "FAIL",
            "fail_reason": "NAME_NOT_CORRECT",
            "transfer_amount": 10000,
            "create_time": "2026-11-27T10:00:00+08:00",
            "update_time": "2026-11-27T10:05:00+08:00",
        }
        headers, body = wechat_notify(keys.wechat, plain, event_id=f"evt-{order_id}")
        return headers, body, "NAME_NOT_CORRECT"
    if channel == "alipay":
        params = notify_params(out_biz_no=order_id, status="FAIL", error_code="PAYEE_USER_INFO_ERROR")
        params["notify_id"] = f"n{order_id}"
        return (
            {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            signed_notify(keys.alipay, params),
            "PAYEE_USER_INFO_ERROR",
        )
    body = pacs002([(order_id, "RJCT", "AC04")])
    return iso_signed(body), body, "AC04"


@pytest.mark.parametrize("channel", ["stripe", "wechat", "alipay", "iso20022"])
async def test_native_failure_drives_the_withdrawal(ts_env, tmp_path, smtp_server, unique_id, keys, channel):
    settings = settings_for(tmp_path, smtp_server.port, keys)
    scripted = {
        name: ScriptedChannel(submit=answer, queries=[answer], name=name)
        for name, answer in SUBMIT_ANSWER.items()
    }
    wid = f"N{unique_id}"
    async with running(ts_env, settings, scripted) as sentinel:
        app = create_app(settings, client=sentinel)
        app.state.client = sentinel
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http:
            handle = await sentinel.start_withdrawal(make_request(wid, channel=channel, locale="en-US"))
            headers, body, code = native_failure(channel, wid, keys)

            tampered = (
                body.replace(wid.encode(), wid[:-1].encode() + b"X") if wid.encode() in body else body + b" "
            )
            bad = await http.post(f"/v1/callbacks/{channel}", content=tampered, headers=headers)
            assert bad.status_code == 401, bad.text
            assert not (await sentinel.status(wid)).status.is_final  # nothing changed

            ok = await http.post(f"/v1/callbacks/{channel}", content=body, headers=headers)
            assert ok.status_code in (200, 204), ok.text
            view = await handle.result()
    assert view.status == WithdrawalStatus.FAILED
    assert view.category == ExceptionCategory.ACCOUNT_INFO_ERROR
    assert view.reason_code == code
    detected = next(n for n in view.notices if n.stage == Stage.DETECTED)
    assert "inbox" in detected.delivered
    [message], _ = inbox(engine_for(settings.database_url), "u-42")
    expected = default_catalogue().lookup(channel, code).reason_text("en-US")
    assert expected in message.body and wid in message.body and "1234" in message.body
