"""The HTTP gateway (gateway/app.py) over HTTP, in process (httpx ASGITransport), with a
real worker on the time-skipping server: signed channel callbacks (docs/channels/
generic.md), parking of early callbacks, starting a withdrawal (payment-service key), the
status query (owner's token or staff), the in-app inbox and read receipts that stop the
escalation ladder. Requirement IDs in the comments."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from sentinel.signing import SIGNATURE_HEADER, sign
from sentinel.taxonomy import ExceptionCategory, Stage, WithdrawalStatus
from store.events import events_for
from store.repo import add_inbox_message, get_record, parked_for
from store.tables import InboxMessage
from tests.support.gateway_harness import event, gateway, whats
from tests.support.workflow_harness import eventually, make_request, make_settings


@pytest.fixture()
async def gw(ts_env, tmp_path, smtp_server):
    async with gateway(ts_env, make_settings(tmp_path, smtp_server.port)) as g:
        yield g


RECEIVED = {"received": True}


# --------------------------------------------------------------------------- callbacks (R11)


async def test_signed_callback_fails_the_withdrawal_and_tells_the_user(gw, unique_id):
    # R2, R11, R21: a verified callback reaches the workflow; the user gets the inbox message.
    req = make_request(unique_id, user_id=f"u-{unique_id}")
    resp = await gw.start(req)
    assert resp.status_code == 202
    resp = await gw.callback(event(unique_id, "FAILED", "AC04", "evt-1"))
    assert resp.status_code == 200 and resp.json() == RECEIVED
    resp = await gw.callback(event(unique_id, "FAILED", "AC04", "evt-1"))  # the channel retries
    assert resp.status_code == 200 and resp.json() == RECEIVED

    view = await gw.final(req)
    assert view.status == WithdrawalStatus.FAILED
    assert view.category == ExceptionCategory.ACCOUNT_INFO_ERROR
    assert view.reason_code == "AC04"
    assert whats(view).count("channel: FAILED AC04") == 1  # acted on once
    assert [n.stage for n in view.notices if n.stage != Stage.OPERATOR_ALERT] == [Stage.DETECTED]
    assert (await gw.view(unique_id)).status == WithdrawalStatus.FAILED  # GET status (R16)

    me = gw.user(f"u-{unique_id}")
    resp = await gw.http.get(f"/v1/users/u-{unique_id}/inbox", headers=me)
    assert resp.status_code == 200
    page = resp.json()
    assert page["unread"] == 1
    [msg] = page["messages"]
    assert msg["withdrawal_id"] == unique_id and unique_id in msg["body"] and "1234" in msg["body"]
    resp = await gw.http.post(f"/v1/users/u-{unique_id}/inbox/{msg['id']}/read", headers=me)
    assert resp.status_code == 200 and resp.json()["ok"] is True and resp.json()["read_at"]
    assert (await gw.http.get(f"/v1/users/u-{unique_id}/inbox", headers=me)).json()["unread"] == 0
    resp = await gw.http.post(
        f"/v1/users/someone-else/inbox/{msg['id']}/read", headers=gw.user("someone-else")
    )
    assert resp.status_code == 404


async def test_same_event_again_is_acknowledged_and_ignored(gw, unique_id):
    # R11: a repeated event id while the workflow waits: 200 each time, acted on once.
    req = make_request(unique_id)
    assert (await gw.start(req)).status_code == 202
    held = event(unique_id, "HELD", "FR01", "evt-hold", message="risk check")
    for _ in range(3):
        resp = await gw.callback(held)
        assert resp.status_code == 200 and resp.json() == RECEIVED
    view = await gw.wait_for(unique_id, lambda v: whats(v).count("duplicate delivery ignored") >= 2)
    assert view.status == WithdrawalStatus.UNDER_REVIEW
    assert whats(view).count("duplicate delivery ignored") == 2
    assert whats(view).count("channel: HELD FR01") == 1
    assert [n.stage for n in view.notices if n.stage != Stage.OPERATOR_ALERT] == [Stage.UNDER_REVIEW]
    assert parked_for(gw.engine, unique_id) == []


async def test_bad_signatures_are_refused_and_change_nothing(gw, unique_id):
    # R11, R22: wrong secret, stale or missing signature: 401, nothing reaches the workflow.
    req = make_request(unique_id)
    assert (await gw.start(req)).status_code == 202
    view = await gw.wait_for(unique_id, lambda v: "channel: ACCEPTED" in whats(v))  # submitted
    assert view.status == WithdrawalStatus.PROCESSING
    before = whats(view)
    body = event(unique_id, "FAILED", "AC04", "evt-forged")

    resp = await gw.callback(body, secret="not-the-secret")
    assert resp.status_code == 401 and "does not match" in resp.json()["error"]
    resp = await gw.callback(body, at=int(time.time()) - 3600)
    assert resp.status_code == 401 and "tolerance" in resp.json()["error"]
    resp = await gw.callback(body, at=int(time.time()) + 3600)
    assert resp.status_code == 401
    raw = json.dumps(body).encode()
    resp = await gw.http.post("/v1/callbacks/generic", content=raw)  # no signature at all
    assert resp.status_code == 401 and SIGNATURE_HEADER in resp.json()["error"]
    tampered = json.dumps({**body, "code": "AC01"}).encode()  # signed body, altered in transit
    resp = await gw.callback(tampered, signature=sign(gw.secret, raw, int(time.time())))
    assert resp.status_code == 401
    resp = await gw.callback(body, signature="t=abc,v1=00")
    assert resp.status_code == 401

    await asyncio.sleep(0.2)
    view = await gw.view(unique_id)
    assert view.status == WithdrawalStatus.PROCESSING
    assert whats(view) == before
    assert parked_for(gw.engine, unique_id) == []

    # The genuine callback with the same event id still counts.
    resp = await gw.callback(body)
    assert resp.status_code == 200
    view = await gw.final(req)
    assert view.status == WithdrawalStatus.FAILED and view.reason_code == "AC04"


async def test_malformed_callbacks_are_refused_with_the_reason(gw, unique_id):
    # R11: a malformed body is 400 with the reason, so the channel's team can fix it.
    ok = event(unique_id)
    cases = [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        ({k: v for k, v in ok.items() if k != "occurred_at"}, "occurred_at"),
        ({k: v for k, v in ok.items() if k != "event_id"}, "event_id"),
        ({k: v for k, v in ok.items() if k != "order_id"}, "order_id"),
        ({**ok, "status": 1.5}, "status"),
        ({**ok, "status": "1.5"}, "status"),
        ({**ok, "status": "failed"}, "status"),
        ({**ok, "status": ""}, "status"),
        ({**ok, "code": 4}, "code"),
        ({**ok, "code": "AC 04"}, "code"),
        ({**ok, "order_id": "../etc/passwd"}, "order_id"),
        ({**ok, "occurred_at": "yesterday"}, "occurred_at"),
        ({**ok, "occurred_at": "2026-11-27T02:10:00"}, "time zone"),
    ]
    for body, reason in cases:
        resp = await gw.callback(body)
        assert resp.status_code == 400, (body, resp.text)
        assert reason in resp.json()["error"], (body, resp.json())
    assert parked_for(gw.engine, unique_id) == []

    resp = await gw.callback(ok, channel="no-such-bank")
    assert resp.status_code == 404 and "no-such-bank" in resp.json()["error"]


async def test_callback_before_tracking_is_parked_then_applied(
    ts_env, tmp_path, smtp_server, unique_id, database_url
):
    # R11: a callback for a withdrawal not tracked yet is kept (never lost) and applied at start.
    settings = make_settings(tmp_path, smtp_server.port).model_copy(update={"database_url": database_url})
    async with gateway(ts_env, settings) as gw:
        body = event(unique_id, "FAILED", "AC04", f"evt-{unique_id}")
        for _ in range(2):  # the channel retries: kept once
            resp = await gw.callback(body)
            assert resp.status_code == 200 and resp.json() == RECEIVED
        [row] = parked_for(gw.engine, unique_id)
        assert (row.channel, row.event_id) == ("generic", f"evt-{unique_id}")
        assert (await gw.http.get(f"/v1/withdrawals/{unique_id}", headers=gw.key("ops"))).status_code == 404

        req = make_request(unique_id)
        assert (await gw.start(req)).status_code == 202
        view = await gw.final(req)
        assert view.status == WithdrawalStatus.FAILED and view.reason_code == "AC04"
        assert "callback received before tracking started" in whats(view)
        assert whats(view).count("channel: FAILED AC04") == 1
        assert parked_for(gw.engine, unique_id) == []


# --------------------------------------------------------------------------- start and status (R16, R34)


async def test_start_is_idempotent(gw, unique_id):
    # R33, R34: one workflow per withdrawal, whatever the payment service repeats.
    req = make_request(unique_id)
    first = await gw.start(req)
    again = await gw.start(make_request(unique_id))
    assert first.status_code == again.status_code == 202
    assert (
        first.json()
        == again.json()
        == {
            "workflow_id": f"withdrawal-{unique_id}",
            "status_url": f"/v1/withdrawals/{unique_id}",
        }
    )
    handle = gw.sentinel.handle(unique_id)
    assert (await handle.describe()).run_id == (await gw.sentinel.handle(unique_id).describe()).run_id
    view = await gw.view(unique_id)
    assert view.withdrawal_id == unique_id and view.card_last4 == "1234"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"amount": 1250.5}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"payee_ref": "6222021234567894"}, "payee_ref"),  # Luhn-valid, as card numbers are
        ({"payee_ref": "6222 0212 3456 7894"}, "payee_ref"),
        ({"card_last4": "12345"}, "card_last4"),
        ({"card_last4": "12a4"}, "card_last4"),
        ({"withdrawal_id": "bad id!"}, "withdrawal_id"),
    ],
)
async def test_start_rejects_a_bad_body_naming_the_field(gw, unique_id, change, field):
    # R22, R34: money is never a float, card numbers never enter, ids are checked.
    body = {**json.loads(make_request(unique_id).model_dump_json()), **change}
    resp = await gw.http.post("/v1/withdrawals", json=body, headers=gw.key("payment-service"))
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "invalid request"
    locs = [err["loc"] for err in resp.json()["detail"]]
    assert any(field in loc for loc in locs), locs
    assert field in [err["field"] for err in resp.json()["detail"]]
    assert (await gw.http.get(f"/v1/withdrawals/{unique_id}", headers=gw.key("ops"))).status_code == 404


async def test_status_of_an_unknown_withdrawal_is_404(gw, unique_id):
    # R16
    resp = await gw.http.get(f"/v1/withdrawals/never-{unique_id}", headers=gw.key("payment-service"))
    assert resp.status_code == 404
    assert "not tracked" in resp.json()["detail"]


# --------------------------------------------------------------------------- inbox (R21)


async def test_inbox_lists_counts_and_marks_read_only_for_the_owner(gw, unique_id):
    # R21: newest first with the unread count (the red dot); only the owner marks read.
    owner, other = f"u-{unique_id}", f"v-{unique_id}"

    def add(user: str, n: int) -> int:
        return add_inbox_message(
            gw.engine,
            InboxMessage(
                key=f"{user}/{n}",
                user_id=user,
                withdrawal_id=f"W{n}",
                stage="DETECTED",
                severity="HIGH",
                locale="en-US",
                title=f"message {n}",
                body=f"Withdrawal W{n} to the card ending 1234 failed.",
            ),
        ).id

    ids = [add(owner, n) for n in range(3)]
    mine = gw.user(owner)
    foreign = add(other, 9)

    page = (await gw.http.get(f"/v1/users/{owner}/inbox", headers=mine)).json()
    assert page["unread"] == 3
    assert [m["id"] for m in page["messages"]] == ids[::-1]
    assert page["messages"][0]["title"] == "message 2" and page["messages"][0]["read_at"] is None
    page = (
        await gw.http.get(f"/v1/users/{owner}/inbox", params={"limit": 1, "offset": 1}, headers=mine)
    ).json()
    assert [m["id"] for m in page["messages"]] == [ids[1]] and page["unread"] == 3

    resp = await gw.http.post(f"/v1/users/{owner}/inbox/{ids[0]}/read", headers=mine)
    assert resp.status_code == 200 and resp.json()["ok"] is True
    page = (await gw.http.get(f"/v1/users/{owner}/inbox", headers=mine)).json()
    assert page["unread"] == 2 and page["messages"][-1]["read_at"] is not None

    resp = await gw.http.post(
        f"/v1/users/{owner}/inbox/{foreign}/read", headers=mine
    )  # someone else's message
    assert resp.status_code == 404
    resp = await gw.http.post(f"/v1/users/{owner}/inbox/999999/read", headers=mine)
    assert resp.status_code == 404
    other_page = (await gw.http.get(f"/v1/users/{other}/inbox", headers=gw.user(other))).json()
    assert other_page["unread"] == 1 and [m["id"] for m in other_page["messages"]] == [foreign]
    nobody = f"nobody-{unique_id}"
    assert (await gw.http.get(f"/v1/users/{nobody}/inbox", headers=gw.user(nobody))).json() == {
        "unread": 0,
        "messages": [],
    }
    # support staff read it; they do not mark it read (that would stop the user's ladders)
    assert (await gw.http.get(f"/v1/users/{owner}/inbox", headers=gw.key("ops"))).json()["unread"] == 2
    resp = await gw.http.post(f"/v1/users/{owner}/inbox/{ids[1]}/read", headers=gw.key("ops"))
    assert resp.status_code == 403


async def test_reading_the_inbox_message_stops_the_escalation_ladder(gw, unique_id):
    # R21: the read mark reaches the workflow: the notice shows read_at and its ladder stops.
    user = f"u-{unique_id}"
    req = make_request(unique_id, user_id=user)
    assert (await gw.start(req)).status_code == 202
    assert (await gw.callback(event(unique_id, "FAILED", "AC04", "evt-1"))).status_code == 200
    view = await gw.wait_for(unique_id, lambda v: bool(v.notices) and "inbox" in v.notices[0].delivered)
    assert view.notices[0].escalate_at is not None  # HIGH: escalates when unread after 30 min
    [msg] = (await gw.http.get(f"/v1/users/{user}/inbox", headers=gw.user(user))).json()["messages"]
    resp = await gw.http.post(f"/v1/users/{user}/inbox/{msg['id']}/read", headers=gw.user(user))
    assert resp.status_code == 200
    view = await gw.wait_for(unique_id, lambda v: v.notices[0].read_at is not None)
    assert view.notices[0].read_at is not None and view.notices[0].escalate_at is None
    assert "DETECTED notice read via inbox" in whats(view)
    assert "escalation of DETECTED notice stopped: the user has read it" in whats(view)
    final = await gw.final(req)
    assert final.notices[0].rung == 0


async def test_a_repeat_with_other_details_is_409(gw, unique_id):
    # R33, R34: idempotent on the withdrawal id, but the same id never means another payout.
    req = make_request(unique_id, user_id=f"u-{unique_id}")
    assert (await gw.start(req)).status_code == 202
    await eventually(_recorded(gw, unique_id))
    again = await gw.start(make_request(unique_id, user_id=f"u-{unique_id}"))
    assert again.status_code == 202
    other = await gw.start(
        make_request(unique_id, user_id=f"u-{unique_id}", amount="99.00", payee_ref="vault:tok_x")
    )
    assert other.status_code == 409 and other.json()["error"] == "withdrawal exists with other details"
    assert "amount" in other.json()["detail"] and "payee_ref" in other.json()["detail"]
    assert (await gw.view(unique_id)).amount == req.amount


def _recorded(gw, wid):
    async def check():
        assert get_record(gw.engine, wid) is not None

    return check


async def test_a_withdrawal_is_shown_to_its_owner_and_staff_only(gw, unique_id):
    # R16, R22: the owner's token, the payment service and staff see it; another user does not.
    owner = f"u-{unique_id}"
    req = make_request(unique_id, user_id=owner)
    assert (await gw.start(req)).status_code == 202
    for headers in (
        gw.user(owner),
        gw.key("payment-service"),
        gw.key("alice"),
        gw.key("carol"),
        gw.key("ops"),
    ):
        resp = await gw.http.get(f"/v1/withdrawals/{unique_id}", headers=headers)
        assert resp.status_code == 200 and resp.json()["withdrawal_id"] == unique_id
    resp = await gw.http.get(f"/v1/withdrawals/{unique_id}", headers=gw.user(f"v-{unique_id}"))
    assert resp.status_code == 403 and resp.json()["error"] == "forbidden"

    # R21: opening the notice's deep link is a read receipt: the ladder stops
    assert (await gw.callback(event(unique_id, "FAILED", "AC04", "evt-1"))).status_code == 200
    view = await gw.wait_for(unique_id, lambda v: bool(v.notices))
    key = view.notices[0].key
    ack = f"/v1/withdrawals/{unique_id}/notices/ack"
    assert (await gw.http.post(ack, json={"key": key}, headers=gw.user(f"v-{unique_id}"))).status_code == 403
    resp = await gw.http.post(ack, json={"key": f"{unique_id}/DELAYED/7"}, headers=gw.user(owner))
    assert resp.status_code == 404 and resp.json()["error"] == "no such notice"
    resp = await gw.http.post(ack, json={"key": ""}, headers=gw.user(owner))
    assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "key"
    resp = await gw.http.post(ack, json={"key": f"{key}/email"}, headers=gw.user(owner))
    assert resp.status_code == 200 and resp.json() == {"ok": True}
    view = await gw.wait_for(unique_id, lambda v: v.notices[0].read_at is not None)
    assert view.notices[0].read_at is not None and "DETECTED notice read via link" in whats(view)
    # R27: the event record keeps the opening of the link
    reads = [(e.notice_channel, e.notice_key) for e in events_for(gw.engine, unique_id) if e.kind == "read"]
    assert reads == [("link", f"{key}/email")]
