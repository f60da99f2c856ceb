"""Operators over HTTP (issue #3; R11, R26, R29, R34): parked callbacks (never applied:
the withdrawal is not tracked, or the answer came after tracking ended) and re-delivering
one, manual checks decided by an operator, the codes the catalogue does not map, and
Twilio delivery receipts. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from pydantic import SecretStr

from notifiers.sms_twilio import signature, with_notice_key
from sentinel.settings import Settings
from sentinel.taxonomy import WithdrawalStatus
from store.repo import audit_for, claim_delivery, deliveries_for, finish_delivery, get_parked, park_callback
from store.tables import NoticeDelivery
from tests.support.gateway_harness import event, gateway, offline_gateway, whats
from tests.support.workflow_harness import eventually, make_request, make_settings


async def parked_items(gw, state: str = "attention") -> list[dict]:
    resp = await gw.http.get(
        "/v1/ops/parked-callbacks", params={"state": state, "limit": 200}, headers=gw.key("ops")
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


async def test_parked_callbacks_listed_and_redelivered(
    ts_env, tmp_path, smtp_server, unique_id, database_url
):
    settings = make_settings(tmp_path, smtp_server.port).model_copy(update={"database_url": database_url})
    async with gateway(ts_env, settings) as gw:
        # a callback for a withdrawal nobody tracks: parked, listed, cannot be re-delivered
        stray = f"nx-{unique_id}"
        assert (await gw.callback(event(stray, "SUCCEEDED", None, f"evt-{stray}"))).status_code == 200
        [row] = [i for i in await parked_items(gw, "undelivered") if i["withdrawal_id"] == stray]
        assert row["observation"]["raw_status"] == "SUCCEEDED" and row["outcome"] is None
        resp = await gw.http.post(f"/v1/ops/parked-callbacks/{row['id']}/redeliver", headers=gw.key("ops"))
        assert resp.status_code == 409 and resp.json()["error"] == "not tracked"

        # one parked in the gap before its tracking started: the operator re-sends it
        req = make_request(unique_id, user_id=f"u-{unique_id}")
        assert (await gw.start(req)).status_code == 202
        await gw.wait_for(unique_id, lambda v: "channel: ACCEPTED" in whats(v))
        adapter = gw.app.state.channels["generic"]
        obs = adapter.observe(unique_id, "FAILED", "AC04", "callback", datetime.now(UTC), event_id="evt-gap")
        assert park_callback(gw.engine, "generic", "evt-gap", unique_id, obs.model_dump_json())
        [row] = [i for i in await parked_items(gw) if i["withdrawal_id"] == unique_id]
        assert row["event_id"] == "evt-gap" and row["observation"]["raw_code"] == "AC04"
        resp = await gw.http.post(f"/v1/ops/parked-callbacks/{row['id']}/redeliver", headers=gw.key("carol"))
        assert resp.status_code == 200 and resp.json() == {
            "id": row["id"],
            "withdrawal_id": unique_id,
            "delivered": True,
        }
        view = await gw.wait_for(unique_id, lambda v: v.status == WithdrawalStatus.FAILED)
        assert view.status == WithdrawalStatus.FAILED and view.reason_code == "AC04"
        assert get_parked(gw.engine, row["id"]).outcome == "redelivered"
        assert unique_id not in [i["withdrawal_id"] for i in await parked_items(gw)]
        [audit] = audit_for(gw.engine, unique_id)
        assert (audit.actor, audit.role, audit.action) == ("carol", "supervisor", "redeliver_callback")
        assert "evt-gap" in audit.detail
        resp = await gw.http.post("/v1/ops/parked-callbacks/999999/redeliver", headers=gw.key("ops"))
        assert resp.status_code == 404

        # an answer after tracking ended: kept as late, for a person, and not re-deliverable
        await gw.final(req)
        assert (await gw.callback(event(unique_id, "RETURNED", "AC04", "evt-after"))).status_code == 200
        [late] = [i for i in await parked_items(gw, "late") if i["withdrawal_id"] == unique_id]
        assert late["outcome"] == "late" and late["event_id"] == "evt-after"
        assert late["id"] in [i["id"] for i in await parked_items(gw)]  # needs attention
        resp = await gw.http.post(f"/v1/ops/parked-callbacks/{late['id']}/redeliver", headers=gw.key("ops"))
        assert resp.status_code == 409 and resp.json()["error"] == "tracking ended"
        assert [a.action for a in audit_for(gw.engine, unique_id)] == ["redeliver_callback", "late_callback"]


async def test_operator_decides_a_manual_check_and_sees_the_unmapped_code(
    ts_env, tmp_path, smtp_server, unique_id, database_url
):
    # R5, R26, R29: an unknown code goes to a person; operators decide manual checks.
    settings = make_settings(tmp_path, smtp_server.port).model_copy(update={"database_url": database_url})
    code = f"Z{unique_id[:5].upper()}"
    async with gateway(ts_env, settings) as gw:
        req = make_request(unique_id, user_id=f"u-{unique_id}")
        assert (await gw.start(req)).status_code == 202
        await gw.wait_for(unique_id, lambda v: "channel: ACCEPTED" in whats(v))
        assert (await gw.callback(event(unique_id, "FAILED", code, "evt-1"))).status_code == 200
        view = await gw.wait_for(unique_id, lambda v: v.status == WithdrawalStatus.MANUAL_CHECK)
        assert view.status == WithdrawalStatus.MANUAL_CHECK

        resp = await gw.http.get("/v1/ops/unmapped-codes", headers=gw.key("ops"))
        assert resp.status_code == 200
        [row] = [r for r in resp.json()["items"] if r["raw_code"] == code]
        assert (row["channel"], row["raw_status"], row["count"], row["last_withdrawal_id"]) == (
            "generic",
            "FAILED",
            1,
            unique_id,
        )
        assert row["subtype"] == "unmapped"

        async def queued():
            resp = await gw.http.get("/v1/reviews", params={"status": "MANUAL_CHECK"}, headers=gw.key("ops"))
            assert unique_id in [i["withdrawal_id"] for i in resp.json()["items"]]

        await eventually(queued)
        assert (
            await gw.http.post(f"/v1/reviews/{unique_id}/assign", headers=gw.key("ops"))
        ).status_code == 200
        resp = await gw.decide(unique_id, "ops", "approve", reason="bank confirmed by phone: resend")
        assert resp.status_code == 200 and resp.json() == {
            "withdrawal_id": unique_id,
            "decision": "approve",
            "reviewer": "ops",
            "status": "PROCESSING",
        }
        assert [(a.actor, a.action) for a in audit_for(gw.engine, unique_id)] == [
            ("ops", "assign"),
            ("ops", "review:approve"),
        ]
        view = await gw.view(unique_id)
        assert view.attempt == 1 and view.order_id == unique_id  # the same order number after a manual check


# --------------------------------------------------------------------------- Twilio receipts


class TwilioSettings(Settings):
    """The setting the receipts endpoint reads (not in sentinel.settings yet)."""

    twilio_auth_token: SecretStr | None = None


TOKEN = "tw-auth-token"
BASE = "https://gw.example"


def sent_delivery(engine, key: str) -> None:
    wid = key.split("/")[0]
    claim = claim_delivery(
        engine,
        NoticeDelivery(
            key=key,
            withdrawal_id=wid,
            user_id="u-1",
            channel="sms",
            provider="twilio",
            stage="DETECTED",
            severity="HIGH",
        ),
    )
    finish_delivery(engine, claim.row_id, status="sent", provider_message_id="SM1")


async def twilio(gw, key: str | None, form: dict[str, str], *, token: str = TOKEN, sign_it: bool = True):
    url = with_notice_key(f"{BASE}/v1/receipts/twilio", key) if key else f"{BASE}/v1/receipts/twilio"
    path = url[len(BASE) :]
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if sign_it:
        headers["X-Twilio-Signature"] = signature(token, url, form)
    return await gw.http.post(path, content=urlencode(form), headers=headers)


async def test_twilio_receipts_update_the_delivery_log(tmp_path, database_url, unique_id):
    # R8: the provider's receipt is the delivery status of the notice.
    settings = TwilioSettings(
        _env_file=None, database_url=database_url, twilio_auth_token=TOKEN, callback_base_url=BASE
    )
    async with offline_gateway(settings) as gw:
        k1, k2 = f"{unique_id}/DETECTED/1/sms", f"{unique_id}/DELAYED/1/sms"
        sent_delivery(gw.engine, k1)
        sent_delivery(gw.engine, k2)

        def status(key):
            return {d.key: d for d in deliveries_for(gw.engine, unique_id)}[key]

        resp = await twilio(gw, k1, {"MessageSid": "SM1", "MessageStatus": "sent"})
        assert resp.status_code == 200 and resp.json() == {"received": True, "delivery_status": None}
        assert status(k1).status == "sent"
        resp = await twilio(gw, k1, {"MessageSid": "SM1", "MessageStatus": "delivered"})
        assert resp.status_code == 200 and resp.json()["delivery_status"] == "delivered"
        resp = await twilio(gw, k1, {"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "30008"})
        assert resp.json()["delivery_status"] == "delivered"  # never backwards
        resp = await twilio(
            gw, k2, {"MessageSid": "SM2", "MessageStatus": "undelivered", "ErrorCode": "30003"}
        )
        assert resp.status_code == 200 and resp.json()["delivery_status"] == "failed"
        assert status(k2).status == "failed" and "30003" in status(k2).error

        resp = await twilio(gw, f"{unique_id}/NOPE/1/sms", {"MessageStatus": "delivered"})
        assert resp.status_code == 200 and resp.json()["delivery_status"] is None
        resp = await twilio(gw, k1, {"MessageStatus": "delivered"}, token="wrong-token")
        assert resp.status_code == 401 and resp.json()["error"] == "invalid signature"
        resp = await twilio(gw, k1, {"MessageStatus": "delivered"}, sign_it=False)
        assert resp.status_code == 401
        resp = await twilio(gw, None, {"MessageStatus": "delivered"})
        assert resp.status_code == 400 and resp.json()["error"] == "missing notice_key"
        resp = await gw.http.post(
            f"/v1/receipts/twilio?notice_key={k1}", content=b"\xff\xfe", headers={"X-Twilio-Signature": "x"}
        )
        assert resp.status_code == 400

    async with offline_gateway(Settings(_env_file=None, database_url=database_url)) as gw:
        resp = await twilio(gw, k1, {"MessageStatus": "delivered"})
        assert resp.status_code == 404 and resp.json()["error"] == "not configured"


# --------------------------------------------------------------------------- Aliyun / Tencent receipts


async def test_aliyun_and_tencent_reports_update_the_delivery_log(tmp_path, database_url, unique_id):
    # R8: Aliyun names our notice key (OutId), Tencent its SerialNo; neither signs, so the
    # URL carries a secret token.
    settings = Settings(_env_file=None, database_url=database_url, receipts_token="rcpt-secret")
    async with offline_gateway(settings) as gw:
        k1, k2, k3 = (f"{unique_id}/{stage}/1/sms" for stage in ("DETECTED", "DELAYED", "UNDER_REVIEW"))
        for key in (k1, k2):
            sent_delivery(gw.engine, key)
        claim = claim_delivery(
            gw.engine,
            NoticeDelivery(
                key=k3,
                withdrawal_id=unique_id,
                user_id="u-1",
                channel="sms",
                provider="tencent",
                stage="UNDER_REVIEW",
                severity="HIGH",
            ),
        )
        finish_delivery(gw.engine, claim.row_id, status="sent", provider_message_id="tencent:2433:3212150530")

        def status(key):
            return {d.key: d for d in deliveries_for(gw.engine, unique_id)}[key]

        report = {
            "phone_number": "13800138000",
            "send_time": "2026-11-27 08:00:00",
            "report_time": "2026-11-27 08:00:03",
            "sms_size": "1",
            "biz_id": "900619867^0",
        }
        resp = await gw.http.post(
            "/v1/receipts/aliyun/rcpt-secret",
            json=[
                {**report, "success": True, "err_code": "DELIVERED", "err_msg": "用户接收成功", "out_id": k1},
                {**report, "success": False, "err_code": "MK:0001", "err_msg": "号码停机", "out_id": k2},
                {
                    **report,
                    "success": True,
                    "err_code": "DELIVERED",
                    "err_msg": "ok",
                    "out_id": f"{unique_id}/NOPE/1/sms",
                },
            ],
        )
        assert resp.status_code == 200 and resp.json() == {"code": 0, "msg": "接收成功"}
        assert status(k1).status == "delivered"
        assert status(k2).status == "failed" and "MK:0001" in status(k2).error

        resp = await gw.http.post(
            "/v1/receipts/tencent/rcpt-secret",
            json=[
                {
                    "user_receive_time": "2026-11-27 08:00:04",
                    "nationcode": "86",
                    "mobile": "13800138000",
                    "report_status": "SUCCESS",
                    "errmsg": "DELIVRD",
                    "description": "用户短信送达成功",
                    "sid": "2433:3212150530",
                }
            ],
        )
        assert resp.status_code == 200 and resp.json() == {"result": 0, "errmsg": "OK"}
        assert status(k3).status == "delivered"

        # a wrong token changes nothing; malformed bodies say why
        resp = await gw.http.post("/v1/receipts/aliyun/guess", json=[{"success": False, "out_id": k1}])
        assert resp.status_code == 401 and status(k1).status == "delivered"
        for body in (b"not json", b'{"out_id": "x"}', b'[{"success": true}]'):
            resp = await gw.http.post("/v1/receipts/aliyun/rcpt-secret", content=body)
            assert resp.status_code == 400 and resp.json()["detail"], resp.text
        resp = await gw.http.post("/v1/receipts/tencent/rcpt-secret", json=[{"sid": "1"}])
        assert resp.status_code == 400 and "report_status" in resp.json()["detail"]

    async with offline_gateway(Settings(_env_file=None, database_url=database_url)) as gw:
        resp = await gw.http.post("/v1/receipts/tencent/rcpt-secret", json=[])
        assert resp.status_code == 404 and resp.json()["error"] == "not configured"


@pytest.mark.parametrize("state", ["all", "late", "undelivered", "attention"])
async def test_parked_list_states_page_with_the_total(tmp_path, state, unique_id):
    async with offline_gateway(Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'a.db'}")) as gw:
        for n in range(3):
            park_callback(gw.engine, "generic", f"e{n}", f"W{n}", json.dumps({"order_id": f"W{n}"}))
        from store.repo import mark_parked_delivered

        mark_parked_delivered(gw.engine, [1], "applied")
        mark_parked_delivered(gw.engine, [2], "late")
        resp = await gw.http.get(
            "/v1/ops/parked-callbacks", params={"state": state, "limit": 1}, headers=gw.key("carol")
        )
        expected = {"all": 3, "late": 1, "undelivered": 1, "attention": 2}[state]
        assert resp.status_code == 200 and resp.json()["total"] == expected and len(resp.json()["items"]) == 1
