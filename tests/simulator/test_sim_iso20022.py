"""The simulator's ISO 20022 bank (simulator/dialects/iso20022.py) against the platform's
real adapter, ``Iso20022Channel``, configured as ``build_channels`` does from
``platform_env`` (base URL ``{sim}/iso20022``, the shared HMAC secret of ``sim_keys()``).

Requirements: R10 (polling: every scenario's state is found by query, also after a 500 or
an unknown submit), R11 (callbacks: each pacs.002 / pacs.004 the bank sends is accepted by
``parse_callback_all`` with its signature verified, a replay is the same MsgId), R2 (account
errors: AC04 / AC01 / BE01 are ACCOUNT_INFO_ERROR, also in a pacs.004 return) and R26 (every
entry of the dialect's status table classifies as the catalogue says)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from channels.base import CallbackRejected, ChannelRejectedRequest, ChannelUnavailable
from channels.iso20022 import Iso20022Channel, build_pacs008, parse_message
from channels.registry import build_channels
from sentinel.catalogue import default_catalogue
from sentinel.classifier import classify
from sentinel.models import WithdrawalRequest
from sentinel.settings import Settings
from sentinel.signing import SIGNATURE_HEADER, sign
from sentinel.taxonomy import ExceptionCategory as C
from sentinel.taxonomy import PayoutState as S
from simulator.dialects.iso20022 import CODE_MAP, STATUS_TABLE, IsoDialect, native
from simulator.keys import platform_env
from simulator.scripts import CODE_MESSAGES, STATUSES, Script, Step, build_scenario
from tests.support.sim_dialect_harness import DialectSim, dialect_sim, sim_keys


def new_order_id() -> str:
    return "ISO" + secrets.token_hex(6)


def withdrawal(order_id: str, amount: str = "1250") -> WithdrawalRequest:
    return WithdrawalRequest(
        withdrawal_id=order_id,
        user_id="U1",
        amount=Decimal(amount),
        currency="EUR",
        channel="iso20022",
        bank_code="COBADEFFXXX",
        card_last4="1234",
        payee_ref="vault:tok_8f2",
    )


def iso_channel(sim: DialectSim) -> Iso20022Channel:
    """The adapter exactly as the platform builds it from the simulator's settings."""
    env = platform_env(sim_keys(), sim.url)
    iso = {
        k.removeprefix("SENTINEL_").lower(): v for k, v in env.items() if k.startswith("SENTINEL_ISO20022_")
    }
    channel = build_channels(Settings(_env_file=None, **iso))["iso20022"]
    assert isinstance(channel, Iso20022Channel) and channel.base_url == f"{sim.url}/iso20022"
    return channel


def callback_url(sim: DialectSim) -> str:
    return f"{sim.receiver_url}/v1/callbacks/iso20022"


async def eventually(check, timeout_s: float = 3.0):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await check()
        except (AssertionError, ChannelUnavailable):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.03)


# (raw_status, raw_code, state, category) of each callback, in order
SCENARIOS = [
    ("success", {"after_s": 0.1}, [("ACCC", None, S.SUCCEEDED, None)]),
    (
        "bank_delay",
        {"slow_after_s": 0.05, "delay_s": 0.3},
        [("ACSP", "AB08", S.PROCESSING, C.BANK_DELAY), ("ACCC", None, S.SUCCEEDED, None)],
    ),
    (
        "bank_delay",
        {"slow_after_s": 0.05, "delay_s": 0.3, "code": "TM01"},
        [("ACSP", "TM01", S.PROCESSING, C.BANK_DELAY), ("ACCC", None, S.SUCCEEDED, None)],
    ),
    ("account_error", {"after_s": 0.1}, [("RJCT", "AC04", S.FAILED, C.ACCOUNT_INFO_ERROR)]),
    ("account_error", {"after_s": 0.1, "code": "BE01"}, [("RJCT", "BE01", S.FAILED, C.ACCOUNT_INFO_ERROR)]),
    ("risk_hold", {"after_s": 0.1}, [("RJCT", "FR01", S.FAILED, C.RISK_HOLD)]),
    ("risk_hold", {"after_s": 0.1, "code": "RISK"}, [("RJCT", "FR01", S.FAILED, C.RISK_HOLD)]),
    ("limit", {"after_s": 0.1}, [("RJCT", "AM02", S.FAILED, C.BALANCE_OR_LIMIT)]),
    (
        "success_then_return",
        {"success_after_s": 0.1, "return_after_s": 0.3},
        [("ACCC", None, S.SUCCEEDED, None), ("pacs.004", "AC04", S.RETURNED, C.ACCOUNT_INFO_ERROR)],
    ),
]


@pytest.mark.parametrize(
    ("scenario", "params", "expected"),
    SCENARIOS,
    ids=[f"{s}-{e[-1][1] or e[-1][0]}" for s, _, e in SCENARIOS],
)
async def test_scenario_submit_callbacks_and_query(scenario, params, expected) -> None:
    async with dialect_sim(IsoDialect(sim_keys())) as sim:
        channel = iso_channel(sim)
        order_id = new_order_id()
        sim.engine.set_script(order_id, build_scenario(scenario, params))
        try:
            first = await channel.submit(withdrawal(order_id), order_id, callback_url(sim))
            assert (first.raw_status, first.classification.state) == ("ACTC", S.SUBMITTED)
            order = sim.engine.get(order_id)
            assert order.request.bank_code == "COBADEFFXXX" and order.request.payee_ref == "vault:tok_8f2"
            assert order.request.amount == "1250.00" and order.native["MsgId"] == order_id

            received = await sim.callbacks(len(expected))
            seen = []
            for callback in received:
                assert callback.path == "/v1/callbacks/iso20022"
                (event,) = channel.parse_callback_all(callback.headers, callback.body, time.time())
                obs = channel.observe(
                    order_id, event.raw_status, event.raw_code, "callback", event.occurred_at
                )
                assert event.order_id == order_id
                seen.append(
                    (event.raw_status, event.raw_code, obs.classification.state, obs.classification.category)
                )
            assert seen == expected

            # R10: polling finds the same final state.
            status, code, state, category = expected[-1]
            polled = await eventually(lambda: channel.query(order_id))
            assert (polled.raw_status, polled.raw_code, polled.classification.state) == (status, code, state)
            assert polled.classification.category == category
        finally:
            await channel.aclose()


async def test_return_is_a_pacs004_with_the_reason_and_amount() -> None:
    async with dialect_sim(IsoDialect(sim_keys())) as sim:
        channel = iso_channel(sim)
        order_id = new_order_id()
        params = {"success_after_s": 0.05, "return_after_s": 0.1}
        sim.engine.set_script(order_id, build_scenario("success_then_return", params))
        try:
            await channel.submit(withdrawal(order_id, "99.5"), order_id, callback_url(sim))
            returned = parse_message((await sim.callbacks(2))[1].body)
            assert returned.kind == "pacs.004"
            (tx,) = returned.transactions
            assert (tx.end_to_end_id, tx.raw_status, tx.reason_code) == (order_id, "pacs.004", "AC04")
            assert (tx.amount, tx.currency) == (Decimal("99.50"), "EUR")
            polled = await channel.query(order_id)
            assert (polled.raw_status, polled.classification.state) == ("pacs.004", S.RETURNED)
        finally:
            await channel.aclose()


async def test_no_callback_success_is_found_by_query_only() -> None:
    async with dialect_sim(IsoDialect(sim_keys())) as sim:
        channel = iso_channel(sim)
        order_id = new_order_id()
        sim.engine.set_script(order_id, build_scenario("no_callback_success", {"after_s": 0.1}))
        try:
            await channel.submit(withdrawal(order_id), order_id, callback_url(sim))

            async def succeeded():
                obs = await channel.query(order_id)
                assert obs.classification.state == S.SUCCEEDED
                return obs

            assert (await eventually(succeeded)).raw_status == "ACCC"
            assert sim.received == []
        finally:
            await channel.aclose()


async def test_replay_is_the_same_message() -> None:
    async with dialect_sim(IsoDialect(sim_keys())) as sim:
        channel = iso_channel(sim)
        order_id = new_order_id()
        sim.engine.set_script(order_id, build_scenario("account_error", {"after_s": 0.05}))
        try:
            await channel.submit(withdrawal(order_id), order_id, callback_url(sim))
            await sim.callbacks(1)
            sim.engine.send_callback(sim.engine.get(order_id), replay=True)
            first, again = await sim.callbacks(2)
            assert again.body == first.body  # same MsgId, same CreDtTm: the same message
            events = [channel.parse_callback_all(c.headers, c.body, time.time()) for c in (first, again)]
            assert events[0] == events[1]
            assert events[0][0].event_id == f"{sim.engine.get(order_id).callbacks[0].event_id}/{order_id}"
        finally:
            await channel.aclose()


async def test_callback_signature_is_checked_by_the_adapter() -> None:
    async with dialect_sim(IsoDialect(sim_keys())) as sim:
        channel = iso_channel(sim)
        order_id = new_order_id()
        sim.engine.set_script(order_id, build_scenario("success", {"after_s": 0.05}))
        try:
            await channel.submit(withdrawal(order_id), order_id, callback_url(sim))
            (callback,) = await sim.callbacks(1)
            tampered = callback.body.replace(b"ACCC", b"RJCT")
            with pytest.raises(CallbackRejected) as err:
                channel.parse_callback_all(callback.headers, tampered, time.time())
            assert err.value.status == 401
            with pytest.raises(CallbackRejected):  # too old for the tolerance window
                channel.parse_callback_all(callback.headers, callback.body, time.time() + 3600)
        finally:
            await channel.aclose()


async def test_bad_signature_is_401_and_records_no_order() -> None:
    async with dialect_sim(IsoDialect(sim_keys())) as sim:
        channel = iso_channel(sim)
        order_id = new_order_id()
        body = build_pacs008(channel.config, withdrawal(order_id), order_id, datetime.now(UTC))
        url = f"{sim.url}/iso20022/payments"
        try:
            async with httpx.AsyncClient() as http:
                for header in (
                    {},
                    {SIGNATURE_HEADER: sign("wrong-secret", body, int(time.time()))},
                    {SIGNATURE_HEADER: sign(sim_keys().iso_secret, body, int(time.time()) - 3600)},
                ):
                    resp = await http.post(
                        url, content=body, headers={**header, "X-Callback-Url": callback_url(sim)}
                    )
                    assert resp.status_code == 401 and resp.json()["reason"]
                resp = await http.get(f"{sim.url}/iso20022/payments/{order_id}/status")
                assert resp.status_code == 401
            assert sim.engine.get(order_id) is None

            wrong = Iso20022Channel(
                channel.catalogue, dataclasses.replace(channel.config, hmac_secret="nope")
            )
            with pytest.raises(ChannelRejectedRequest, match="401"):
                await wrong.submit(withdrawal(order_id), order_id, callback_url(sim))
            await wrong.aclose()
            assert sim.engine.get(order_id) is None
        finally:
            await channel.aclose()


async def test_malformed_or_incomplete_pacs008_is_400_with_the_reason() -> None:
    async with dialect_sim(IsoDialect(sim_keys())) as sim:
        channel = iso_channel(sim)
        order_id = new_order_id()
        good = build_pacs008(channel.config, withdrawal(order_id), order_id, datetime.now(UTC))
        cases = [
            (b"<Document><oops></Document>", "not well-formed"),
            (b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Document>&x;</Document>', "DOCTYPE"),
            (good.replace(b"pacs.008.001.08", b"pacs.009.001.08"), "pacs.008"),
            (good.replace(b"EndToEndId>", b"EndToEndIdX>"), "EndToEndId"),
            (good.replace(b' Ccy="EUR"', b""), "Ccy"),
            (good.replace(b"CdtrAcct>", b"CdtrAcctX>"), "CdtrAcct"),
            (good.replace(b">1250.00<", b">1e3<"), "amount"),
        ]
        try:
            async with httpx.AsyncClient() as http:
                for body, reason in cases:
                    headers = {
                        SIGNATURE_HEADER: sign(sim_keys().iso_secret, body, int(time.time())),
                        "X-Callback-Url": callback_url(sim),
                    }
                    resp = await http.post(f"{sim.url}/iso20022/payments", content=body, headers=headers)
                    assert resp.status_code == 400, body
                    assert reason in resp.json()["reason"]
                headers = {SIGNATURE_HEADER: sign(sim_keys().iso_secret, good, int(time.time()))}
                resp = await http.post(f"{sim.url}/iso20022/payments", content=good, headers=headers)
                assert resp.status_code == 400 and "X-Callback-Url" in resp.json()["reason"]
            assert sim.engine.orders() == []
            with pytest.raises(
                ChannelRejectedRequest, match="400"
            ):  # the adapter sees it as a refused request
                await channel.submit(withdrawal(order_id), order_id, None)
        finally:
            await channel.aclose()


@pytest.mark.parametrize(
    "script",
    [
        build_scenario("system_error_then_final", {"final_after_s": 0.3}),
        Script(submit="unknown", steps=(Step(after_s=0.3, status="SUCCEEDED"),)),
    ],
    ids=["http_500", "unknown"],
)
async def test_unknown_submit_is_unavailable_then_found_by_query(script: Script) -> None:
    async with dialect_sim(IsoDialect(sim_keys())) as sim:
        channel = iso_channel(sim)
        order_id = new_order_id()
        sim.engine.set_script(order_id, script)
        try:
            with pytest.raises(ChannelUnavailable, match="HTTP 50"):
                await channel.submit(withdrawal(order_id), order_id, callback_url(sim))
            assert sim.engine.get(order_id) is not None  # recorded despite the lost answer
            with pytest.raises(ChannelUnavailable):  # UNKNOWN: the bank cannot say yet
                await channel.query(order_id)

            async def final():
                obs = await channel.query(order_id)
                assert obs.classification.state == S.SUCCEEDED
                return obs

            assert (await eventually(final)).raw_status == "ACCC"
            # resending the identical payment is the same order, never a second one
            again = await channel.submit(withdrawal(order_id), order_id, callback_url(sim))
            assert again.raw_status == "ACCC" and len(sim.engine.orders()) == 1
        finally:
            await channel.aclose()


async def test_query_of_an_unknown_payment_is_404_not_found() -> None:
    async with dialect_sim(IsoDialect(sim_keys())) as sim:
        channel = iso_channel(sim)
        try:
            obs = await channel.query(new_order_id())
            assert (obs.raw_status, obs.classification.state) == ("NOT_FOUND", S.UNKNOWN)
        finally:
            await channel.aclose()


async def test_same_end_to_end_id_with_other_fields_is_rjct_am05() -> None:
    async with dialect_sim(IsoDialect(sim_keys())) as sim:
        channel = iso_channel(sim)
        order_id = new_order_id()
        try:
            await channel.submit(withdrawal(order_id), order_id, callback_url(sim))
            obs = await channel.submit(withdrawal(order_id, "1300"), order_id, callback_url(sim))
            assert (obs.raw_status, obs.raw_code, obs.classification.category) == (
                "RJCT",
                "AM05",
                C.DUPLICATE,
            )
            assert sim.engine.get(order_id).request.amount == "1250.00"
        finally:
            await channel.aclose()


def test_status_table_classifies_as_the_catalogue_says() -> None:
    """R26: every (status, code) a scenario can give becomes an ISO status + code that the
    iso20022 catalogue knows and classifies into the same category as the canonical pair
    (the generic channel's reading of it); HELD is reported RJCT + FR01, which the workflow
    sends to review like HELD."""
    catalogue = default_catalogue()
    assert set(STATUS_TABLE) == set(STATUSES)
    assert set(CODE_MAP) <= set(CODE_MESSAGES)
    for status in STATUSES:
        for code in (None, *CODE_MESSAGES):
            tx_status, iso_code = native(status, code)
            if tx_status is None:
                assert status == "UNKNOWN"
                continue
            assert catalogue.state("iso20022", tx_status) is not None, tx_status
            if iso_code is not None:
                assert catalogue.lookup("iso20022", iso_code) is not None, iso_code
            mine = classify(catalogue, "iso20022", tx_status, iso_code)
            canonical = classify(catalogue, "generic", status, code)
            assert mine.mapped == canonical.mapped, (status, code)
            assert mine.category == canonical.category, (status, code, mine, canonical)
            if status == "HELD":  # no HELD in pacs.002: RJCT, classified by the code
                if code in (None, "FR01", "RISK"):
                    assert (mine.state, mine.category) == (S.FAILED, C.RISK_HOLD)
            else:
                assert mine.state == canonical.state, (status, code, mine, canonical)
