"""End-to-end on the real Temporal dev server (SQLite file, search attributes registered),
started by the test session together with SMTP, the channel simulator, the gateway and the
worker as separate processes: the same stack `make run` starts. Marked ``e2e``; part of
the README's test command."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest

from runtime.client import SentinelClient
from sentinel.models import Contact, WithdrawalRequest
from sentinel.settings import ROOT, Settings
from sentinel.signing import SIGNATURE_HEADER, sign
from sentinel.taxonomy import WithdrawalStatus
from starter.devstack import DevStack, Ports
from store.db import engine_for
from store.repo import deliveries_for
from tests.support.common import free_port
from tests.support.fault_helpers import started

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data = tmp_path_factory.mktemp("e2e")
    ports = Ports(
        temporal=free_port(), ui=free_port(), smtp=free_port(), simulator=free_port(), gateway=free_port()
    )
    s = DevStack(
        data_dir=data,
        ports=ports,
        headless=True,
        env_overrides={"SENTINEL_DELAYS_FILE": str(ROOT / "config" / "delays.demo.yaml")},
    )
    with started(s):
        yield s


@pytest.fixture(scope="module")
def urls(stack):
    return {
        "sim": f"http://127.0.0.1:{stack.ports.simulator}",
        "gw": f"http://127.0.0.1:{stack.ports.gateway}",
    }


@pytest.fixture()
async def client(stack):
    return await SentinelClient.connect(
        Settings(_env_file=None, temporal_address=f"127.0.0.1:{stack.ports.temporal}")
    )


def request_for(wid: str, **kw) -> WithdrawalRequest:
    return WithdrawalRequest(
        withdrawal_id=wid,
        user_id="u-e2e",
        amount="88.80",
        currency="CNY",
        channel="generic",
        bank_code="CMB",
        card_last4="4321",
        payee_ref="vault:tok_e2e",
        locale="zh-CN",
        contact=Contact(email="e2e@example.com"),
        **kw,
    )


async def wait_for(client: SentinelClient, wid: str, pred, timeout: float = 40.0):
    deadline = time.monotonic() + timeout
    while True:
        view = await client.status(wid)
        if pred(view):
            return view
        assert time.monotonic() < deadline, f"timed out; last status {view.status}: {view.timeline}"
        await asyncio.sleep(0.3)


async def script(urls, wid: str, body: dict) -> None:
    async with httpx.AsyncClient() as http:
        (await http.put(f"{urls['sim']}/_sim/scripts/{wid}", json=body)).raise_for_status()


async def test_account_error_through_signed_callback(stack, urls, client):
    # R2, R11, R26: simulator -> signed callback -> gateway -> classifier -> workflow -> notices.
    wid = f"E2E-{uuid.uuid4().hex[:8]}"
    await script(urls, wid, {"scenario": "account_error"})
    await client.start_withdrawal(request_for(wid))
    view = await wait_for(client, wid, lambda v: v.status.is_final)
    assert view.status == WithdrawalStatus.FAILED and view.reason_code == "AC04"
    view = await wait_for(
        client, wid, lambda v: v.notices and set(v.notices[0].delivered) == {"inbox", "email"}
    )
    engine = engine_for(f"sqlite:///{stack.data_dir / 'sentinel.db'}")
    assert {r.channel for r in deliveries_for(engine, wid)} == {"inbox", "email"}
    mails = list((stack.data_dir / "mail").glob("*.eml"))
    assert any(wid.encode() in m.read_bytes() for m in mails)


async def test_unknown_answer_is_queried_until_final(stack, urls, client):
    # R5, R10: the channel answers 500 on submit; polling finds the final answer.
    wid = f"E2E-{uuid.uuid4().hex[:8]}"
    await script(urls, wid, {"scenario": "system_error_then_final"})
    await client.start_withdrawal(request_for(wid))
    view = await wait_for(client, wid, lambda v: v.status.is_final)
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert view.notices == []
    assert any(e.source == "poll" for e in view.timeline)


async def test_delayed_withdrawal_is_found_by_search_attribute(stack, urls, client):
    # R1, R34: operators find it with WithdrawalStatus="DELAYED" in the UI / visibility.
    wid = f"E2E-{uuid.uuid4().hex[:8]}"
    await script(urls, wid, {"scenario": "bank_delay", "params": {"delay_s": 600}})
    await client.start_withdrawal(request_for(wid))
    await wait_for(client, wid, lambda v: v.status == WithdrawalStatus.DELAYED)
    query = f'WithdrawalStatus="DELAYED" AND WorkflowId="withdrawal-{wid}"'
    deadline = time.monotonic() + 20
    found = []
    while not found and time.monotonic() < deadline:
        found = [wf.id async for wf in client.client.list_workflows(query)]
        await asyncio.sleep(0.3)
    assert found == [f"withdrawal-{wid}"]
    await client.handle(wid).terminate("test done")


async def test_gateway_refuses_bad_callbacks_and_keeps_untracked(stack, urls, client):
    # Bad input gets a clear error and changes nothing; an untracked withdrawal's callback is kept.
    secret = "dev-channel-secret"
    wid = f"E2E-{uuid.uuid4().hex[:8]}"
    body = json.dumps(
        {
            "event_id": "evt-x1",
            "order_id": wid,
            "status": "FAILED",
            "code": "AC04",
            "occurred_at": "2026-11-27T00:00:00Z",
        }
    ).encode()
    url = f"{urls['gw']}/v1/callbacks/generic"
    async with httpx.AsyncClient() as http:
        bad = await http.post(
            url, content=body, headers={SIGNATURE_HEADER: sign("wrong", body, int(time.time()))}
        )
        assert bad.status_code == 401
        junk = b"{not json"
        r = await http.post(
            url, content=junk, headers={SIGNATURE_HEADER: sign(secret, junk, int(time.time()))}
        )
        assert r.status_code == 400 and "JSON" in r.json()["error"]
        ok = await http.post(
            url, content=body, headers={SIGNATURE_HEADER: sign(secret, body, int(time.time()))}
        )
        assert ok.status_code == 200 and ok.json() == {"received": True}
    # the callback came before the withdrawal was tracked: it decides once tracking starts
    await script(
        urls, wid, {"steps": [{"after_s": 300, "status": "SUCCEEDED", "code": None, "callback": True}]}
    )
    await client.start_withdrawal(request_for(wid))
    view = await wait_for(client, wid, lambda v: v.status.is_final)
    assert view.status == WithdrawalStatus.FAILED and view.reason_code == "AC04"
    assert any("before tracking started" in e.what for e in view.timeline)
