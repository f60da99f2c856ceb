"""The HTTP gateway (gateway/app.py) over HTTP, in process (httpx ASGITransport), with a
real worker on the time-skipping server: signed channel callbacks (docs/channels/
generic.md), parking of early callbacks, starting a withdrawal, the status query and the
in-app inbox. Requirement IDs in the comments."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from gateway.app import create_app
from sentinel.models import WithdrawalRequest, WithdrawalView
from sentinel.settings import Settings
from sentinel.signing import SIGNATURE_HEADER, sign
from sentinel.taxonomy import ExceptionCategory, Stage, WithdrawalStatus
from starter.client import SentinelClient
from store.repo import add_inbox_message, parked_for
from store.tables import InboxMessage
from tests.dbs import database_url  # noqa: F401
from tests.scripted_channel import ScriptedChannel
from tests.workflow_harness import make_request, make_settings, running


@dataclass
class Gateway:
    http: httpx.AsyncClient
    app: FastAPI
    sentinel: SentinelClient
    settings: Settings
    started: set[str] = field(default_factory=set)

    @property
    def engine(self):
        return self.app.state.engine

    @property
    def secret(self) -> str:
        return self.settings.channel_secret.get_secret_value()

    async def callback(self, body: bytes | dict, *, secret: str | None = None, at: int | None = None,
                       channel: str = "generic", signature: str | None = None) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        header = signature or sign(secret or self.secret, raw, at if at is not None else int(time.time()))
        return await self.http.post(
            f"/v1/callbacks/{channel}", content=raw,
            headers={SIGNATURE_HEADER: header, "Content-Type": "application/json"},
        )

    async def start(self, req: WithdrawalRequest) -> httpx.Response:
        self.started.add(req.withdrawal_id)
        return await self.http.post("/v1/withdrawals", json=json.loads(req.model_dump_json()))

    async def view(self, wid: str) -> WithdrawalView:
        resp = await self.http.get(f"/v1/withdrawals/{wid}")
        assert resp.status_code == 200, resp.text
        return WithdrawalView.model_validate(resp.json())

    async def wait_for(self, wid: str, predicate, timeout: float = 15.0) -> WithdrawalView:
        deadline = time.monotonic() + timeout
        while True:
            view = await self.view(wid)
            if predicate(view) or time.monotonic() > deadline:
                return view
            await asyncio.sleep(0.05)

    async def final(self, req: WithdrawalRequest) -> WithdrawalView:
        """The final view. The handle comes from an (idempotent) start, so that waiting for
        the result lets the time-skipping server jump over the workflow's timers."""
        handle = await self.sentinel.start_withdrawal(req)
        return await asyncio.wait_for(handle.result(), 60)


@asynccontextmanager
async def gateway(ts_env, settings: Settings, channel=None):
    async with running(ts_env, settings, channel or ScriptedChannel()) as sentinel:
        app = create_app(settings, client=sentinel)
        app.state.client = sentinel  # ASGITransport does not run the lifespan
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            gw = Gateway(http, app, sentinel, settings)
            try:
                yield gw
            finally:
                await terminate_running(sentinel, gw.started)


async def terminate_running(sentinel: SentinelClient, withdrawal_ids) -> None:
    """End what a test left running. The time-skipping server is shared by the session: a
    workflow whose worker is gone keeps a timer's task pending, and time no longer skips
    for any later test."""
    for wid in withdrawal_ids:
        handle = sentinel.handle(wid)
        try:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test finished")
        except RPCError:
            pass


@pytest.fixture()
async def gw(ts_env, tmp_path, smtp_server):
    async with gateway(ts_env, make_settings(tmp_path, smtp_server.port)) as g:
        yield g


def event(order_id: str, status: str = "FAILED", code: str | None = "AC04", event_id: str = "evt-1", **extra) -> dict:
    body = {
        "event_id": event_id,
        "order_id": order_id,
        "status": status,
        "code": code,
        "message": "account closed",
        "occurred_at": "2026-11-27T02:10:00Z",
    }
    body.update(extra)
    return body


def whats(view: WithdrawalView) -> list[str]:
    return [e.what for e in view.timeline]


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

    resp = await gw.http.get(f"/v1/users/u-{unique_id}/inbox")
    assert resp.status_code == 200
    page = resp.json()
    assert page["unread"] == 1
    [msg] = page["messages"]
    assert msg["withdrawal_id"] == unique_id and unique_id in msg["body"] and "1234" in msg["body"]
    resp = await gw.http.post(f"/v1/users/u-{unique_id}/inbox/{msg['id']}/read")
    assert resp.status_code == 200 and resp.json() == {"ok": True}
    assert (await gw.http.get(f"/v1/users/u-{unique_id}/inbox")).json()["unread"] == 0
    resp = await gw.http.post(f"/v1/users/someone-else/inbox/{msg['id']}/read")
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


async def test_callback_before_tracking_is_parked_then_applied(ts_env, tmp_path, smtp_server, unique_id,
                                                               database_url):  # noqa: F811
    # R11: a callback for a withdrawal not tracked yet is kept (never lost) and applied at start.
    settings = make_settings(tmp_path, smtp_server.port).model_copy(update={"database_url": database_url})
    async with gateway(ts_env, settings) as gw:
        body = event(unique_id, "FAILED", "AC04", f"evt-{unique_id}")
        for _ in range(2):  # the channel retries: kept once
            resp = await gw.callback(body)
            assert resp.status_code == 200 and resp.json() == RECEIVED
        [row] = parked_for(gw.engine, unique_id)
        assert (row.channel, row.event_id) == ("generic", f"evt-{unique_id}")
        assert (await gw.http.get(f"/v1/withdrawals/{unique_id}")).status_code == 404

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
    assert first.json() == again.json() == {
        "workflow_id": f"withdrawal-{unique_id}",
        "status_url": f"/v1/withdrawals/{unique_id}",
    }
    handle = gw.sentinel.handle(unique_id)
    assert (await handle.describe()).run_id == (await gw.sentinel.handle(unique_id).describe()).run_id
    view = await gw.view(unique_id)
    assert view.withdrawal_id == unique_id and view.card_last4 == "1234"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"amount": 1250.5}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"payee_ref": "6222021234567890"}, "payee_ref"),
        ({"payee_ref": "6222 0212 3456 7890"}, "payee_ref"),
        ({"card_last4": "12345"}, "card_last4"),
        ({"card_last4": "12a4"}, "card_last4"),
        ({"withdrawal_id": "bad id!"}, "withdrawal_id"),
    ],
)
async def test_start_rejects_a_bad_body_naming_the_field(gw, unique_id, change, field):
    # R22, R34: money is never a float, card numbers never enter, ids are checked.
    body = {**json.loads(make_request(unique_id).model_dump_json()), **change}
    resp = await gw.http.post("/v1/withdrawals", json=body)
    assert resp.status_code == 422, resp.text
    locs = [err["loc"] for err in resp.json()["detail"]]
    assert any(field in loc for loc in locs), locs
    assert (await gw.http.get(f"/v1/withdrawals/{unique_id}")).status_code == 404


async def test_status_of_an_unknown_withdrawal_is_404(gw, unique_id):
    # R16
    resp = await gw.http.get(f"/v1/withdrawals/never-{unique_id}")
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
                key=f"{user}/{n}", user_id=user, withdrawal_id=f"W{n}", stage="DETECTED", severity="HIGH",
                locale="en-US", title=f"message {n}", body=f"Withdrawal W{n} to the card ending 1234 failed.",
            ),
        ).id

    ids = [add(owner, n) for n in range(3)]
    foreign = add(other, 9)

    page = (await gw.http.get(f"/v1/users/{owner}/inbox")).json()
    assert page["unread"] == 3
    assert [m["id"] for m in page["messages"]] == ids[::-1]
    assert page["messages"][0]["title"] == "message 2" and page["messages"][0]["read_at"] is None
    page = (await gw.http.get(f"/v1/users/{owner}/inbox", params={"limit": 1, "offset": 1})).json()
    assert [m["id"] for m in page["messages"]] == [ids[1]] and page["unread"] == 3

    resp = await gw.http.post(f"/v1/users/{owner}/inbox/{ids[0]}/read")
    assert resp.status_code == 200 and resp.json() == {"ok": True}
    page = (await gw.http.get(f"/v1/users/{owner}/inbox")).json()
    assert page["unread"] == 2 and page["messages"][-1]["read_at"] is not None

    resp = await gw.http.post(f"/v1/users/{owner}/inbox/{foreign}/read")  # someone else's message
    assert resp.status_code == 404
    resp = await gw.http.post(f"/v1/users/{owner}/inbox/999999/read")
    assert resp.status_code == 404
    other_page = (await gw.http.get(f"/v1/users/{other}/inbox")).json()
    assert other_page["unread"] == 1 and [m["id"] for m in other_page["messages"]] == [foreign]
    assert (await gw.http.get(f"/v1/users/nobody-{unique_id}/inbox")).json() == {"unread": 0, "messages": []}
