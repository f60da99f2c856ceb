"""The Stripe adapter (channels/stripe.py) against a local Stripe stand-in served by a real
uvicorn on 127.0.0.1: it checks our requests the way Stripe does (Bearer secret key,
form-encoded parameters, Idempotency-Key replay) and answers from a script. Webhooks are
built here and signed with a test endpoint secret."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from channels.base import CallbackRejected, ChannelRejectedRequest, ChannelUnavailable
from channels.stripe import CallbackIgnored, StripeChannel, StripeConfig, to_minor_units
from sentinel.catalogue import default_catalogue
from sentinel.models import WithdrawalRequest
from sentinel.taxonomy import ExceptionCategory, PayoutState
from tests.support.common import free_port
from tests.support.local_server import serve

SECRET_KEY = "sk_test_51sentinel"
WEBHOOK_SECRET = "whsec_test_sentinel"
_ids = itertools.count(1)


def new_order_id() -> str:
    return f"WS{int(time.time())}x{next(_ids)}"


def withdrawal(
    order_id: str, amount: str = "12.34", currency: str = "USD", payee_ref: str = "ba_1Sentinel"
) -> WithdrawalRequest:
    return WithdrawalRequest(
        withdrawal_id=order_id,
        user_id="U1",
        amount=Decimal(amount),
        currency=currency,
        channel="stripe",
        bank_code="STRIPE",
        card_last4="4242",
        payee_ref=payee_ref,
    )


# --- a local Stripe ---------------------------------------------------------------------


def _stripe_error(status: int, type_: str, message: str, code: str | None = None) -> JSONResponse:
    error: dict[str, Any] = {"type": type_, "message": message}
    if code:
        error["code"] = code
    return JSONResponse({"error": error}, status_code=status)


class FakeStripe:
    """Enough of Stripe's payouts API to check what we send."""

    ALLOWED = {"amount", "currency", "destination", "method", "description"}

    def __init__(self) -> None:
        self.payouts: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []  # payout ids, oldest first
        self.idempotency: dict[str, tuple[tuple[tuple[str, str], ...], int, dict[str, Any]]] = {}
        self.script: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # order id -> answers to give first
        self.posts: list[dict[str, Any]] = []
        self.list_calls = 0
        self._seq = itertools.count(1)
        self.app = FastAPI()

        def authorized(request: Request) -> bool:
            return request.headers.get("authorization") == f"Bearer {SECRET_KEY}"

        def unauthorized() -> JSONResponse:
            return _stripe_error(401, "invalid_request_error", "Invalid API Key provided")

        @self.app.post("/v1/payouts")
        async def create(request: Request) -> Response:
            if not authorized(request):
                return unauthorized()
            if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                return _stripe_error(400, "invalid_request_error", "form-encoded body expected")
            raw = (await request.body()).decode()
            pairs = tuple(parse_qsl(raw, keep_blank_values=True, strict_parsing=True))
            params = dict(pairs)
            key = request.headers.get("idempotency-key")
            self.posts.append({"params": params, "key": key, "raw": raw})
            for name in params:
                if name not in self.ALLOWED and not name.startswith("metadata["):
                    return _stripe_error(
                        400,
                        "invalid_request_error",
                        f"Received unknown parameter: {name}",
                        "parameter_unknown",
                    )
            if not params.get("amount", "").isdigit() or int(params["amount"]) <= 0:
                return _stripe_error(
                    400, "invalid_request_error", "Invalid positive integer", "parameter_invalid_integer"
                )
            currency = params.get("currency", "")
            if len(currency) != 3 or currency != currency.lower():
                return _stripe_error(
                    400, "invalid_request_error", "Invalid currency", "parameter_invalid_string"
                )
            if not params.get("destination"):
                return _stripe_error(400, "invalid_request_error", "Missing destination", "parameter_missing")
            if key is not None and key in self.idempotency:
                seen, status, body = self.idempotency[key]
                if seen != tuple(sorted(pairs)):
                    return _stripe_error(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                    )
                return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})
            order_id = params.get("metadata[order_id]", "")
            if self.script.get(order_id):
                status, body = self.script[order_id].pop(0)
                return JSONResponse(body, status_code=status)
            payout_id = f"po_{next(self._seq):06d}Sentinel"
            payout = {
                "id": payout_id,
                "object": "payout",
                "amount": int(params["amount"]),
                "currency": currency,
                "destination": params["destination"],
                "automatic": False,
                "created": int(time.time()),
                "status": "pending",
                "failure_code": None,
                "failure_message": None,
                "method": params.get("method", "standard"),
                "metadata": {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")},
            }
            self.payouts[payout_id] = payout
            self.created.append(payout_id)
            if key is not None:
                self.idempotency[key] = (tuple(sorted(pairs)), 200, dict(payout))
            return JSONResponse(payout)

        @self.app.get("/v1/payouts/{payout_id}")
        async def retrieve(payout_id: str, request: Request) -> Response:
            if not authorized(request):
                return unauthorized()
            payout = self.payouts.get(payout_id)
            if payout is None:
                return _stripe_error(
                    404, "invalid_request_error", f"No such payout: '{payout_id}'", "resource_missing"
                )
            return JSONResponse(payout)

        @self.app.get("/v1/payouts")
        async def listing(request: Request) -> Response:
            if not authorized(request):
                return unauthorized()
            self.list_calls += 1
            q = request.query_params
            limit = int(q.get("limit", "10"))
            if not 1 <= limit <= 100:
                return _stripe_error(400, "invalid_request_error", "limit must be 1..100")
            since = int(q.get("created[gte]", "0"))
            newest_first = [
                self.payouts[i] for i in reversed(self.created) if self.payouts[i]["created"] >= since
            ]
            after = q.get("starting_after")
            if after is not None:
                ids = [p["id"] for p in newest_first]
                newest_first = newest_first[ids.index(after) + 1 :]
            page = newest_first[:limit]
            return JSONResponse(
                {"object": "list", "url": "/v1/payouts", "data": page, "has_more": len(newest_first) > limit}
            )

    def set_status(self, payout_id: str, status: str, code: str | None = None) -> None:
        self.payouts[payout_id]["status"] = status
        self.payouts[payout_id]["failure_code"] = code


@pytest.fixture(scope="module")
async def stripe_server():
    fake = FakeStripe()
    async with serve(fake.app) as url:
        fake.url = url  # type: ignore[attr-defined]
        yield fake


def make_channel(url: str, **overrides: Any) -> StripeChannel:
    config = StripeConfig(url, overrides.pop("secret_key", SECRET_KEY), WEBHOOK_SECRET, **overrides)
    return StripeChannel(default_catalogue(), config)


@pytest.fixture()
async def channel(stripe_server):
    ch = make_channel(stripe_server.url)
    yield ch
    await ch.aclose()


# --- submit -----------------------------------------------------------------------------


async def test_submit_sends_what_stripe_expects(stripe_server, channel):
    order_id = new_order_id()
    obs = await channel.submit(
        withdrawal(order_id, "12.34", "USD"), order_id, "http://127.0.0.1/v1/callbacks/stripe"
    )
    assert obs.raw_status == "pending" and obs.source == "submit"
    assert obs.classification.state == PayoutState.SUBMITTED
    sent = stripe_server.posts[-1]
    assert sent["key"] == order_id
    assert sent["params"] == {
        "amount": "1234",
        "currency": "usd",
        "destination": "ba_1Sentinel",
        "metadata[order_id]": order_id,
        "metadata[withdrawal_id]": order_id,
    }


async def test_retried_submit_replays_the_same_payout_and_pays_once(stripe_server, channel):
    order_id = new_order_id()
    before = len(stripe_server.created)
    first = await channel.submit(withdrawal(order_id), order_id, None)
    # a second worker (no shared memory) retries the activity after a lost answer
    other = make_channel(stripe_server.url)
    try:
        again = await other.submit(withdrawal(order_id), order_id, None)
    finally:
        await other.aclose()
    assert len(stripe_server.created) == before + 1
    assert first.raw_status == again.raw_status == "pending"
    assert [p["key"] for p in stripe_server.posts[-2:]] == [order_id, order_id]


async def test_same_order_with_other_parameters_is_our_bug(stripe_server, channel):
    order_id = new_order_id()
    await channel.submit(withdrawal(order_id, "10.00"), order_id, None)
    with pytest.raises(ChannelRejectedRequest, match="idempotency_error"):
        await channel.submit(withdrawal(order_id, "11.00"), order_id, None)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("12.34", "USD", 1234),
        ("1000", "JPY", 1000),
        ("50000", "KRW", 50000),
        ("1.230", "KWD", 1230),
        ("7", "EUR", 700),
        ("0.01", "GBP", 1),
    ],
)
async def test_amounts_go_out_as_exact_minor_units(stripe_server, channel, amount, currency, minor):
    order_id = new_order_id()
    await channel.submit(withdrawal(order_id, amount, currency), order_id, None)
    assert stripe_server.posts[-1]["params"]["amount"] == str(minor)
    assert stripe_server.posts[-1]["params"]["currency"] == currency.lower()


@pytest.mark.parametrize(
    ("amount", "currency"), [("12.345", "USD"), ("10.5", "JPY"), ("1.235", "KWD"), ("100.50", "HUF")]
)
async def test_amounts_that_do_not_fit_are_refused_before_sending(stripe_server, channel, amount, currency):
    order_id = new_order_id()
    posts = len(stripe_server.posts)
    with pytest.raises(ChannelRejectedRequest):
        await channel.submit(withdrawal(order_id, amount, currency), order_id, None)
    assert len(stripe_server.posts) == posts


def test_minor_units_are_exact_and_never_floats():
    assert to_minor_units(Decimal("1234567890123.45"), "USD") == 123456789012345
    assert to_minor_units(Decimal("0.10"), "usd") == 10
    with pytest.raises(ValueError):
        to_minor_units(12.34, "USD")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        to_minor_units(Decimal("-1"), "USD")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, {"error": {"type": "api_error", "message": "boom"}}, ChannelUnavailable),
        (503, {}, ChannelUnavailable),
        (
            429,
            {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "slow down"}},
            ChannelUnavailable,
        ),
        (
            409,
            {"error": {"type": "idempotency_error", "code": "idempotency_key_in_use", "message": "in use"}},
            ChannelUnavailable,
        ),
        (
            400,
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "message": "No such external account",
                }
            },
            ChannelRejectedRequest,
        ),
        (
            403,
            {"error": {"type": "invalid_request_error", "message": "restricted key"}},
            ChannelRejectedRequest,
        ),
    ],
)
async def test_error_answers(stripe_server, channel, status, body, expected):
    order_id = new_order_id()
    stripe_server.script[order_id] = [(status, body)]
    with pytest.raises(expected):
        await channel.submit(withdrawal(order_id), order_id, None)


async def test_a_card_error_with_a_code_is_a_failed_payout(stripe_server, channel):
    order_id = new_order_id()
    stripe_server.script[order_id] = [
        (402, {"error": {"type": "card_error", "code": "expired_card", "message": "The card has expired."}})
    ]
    obs = await channel.submit(withdrawal(order_id), order_id, None)
    assert (obs.raw_status, obs.raw_code) == ("failed", "expired_card")
    assert obs.classification.state == PayoutState.FAILED
    assert obs.classification.category == ExceptionCategory.ACCOUNT_INFO_ERROR


async def test_insufficient_platform_balance_is_a_business_failure(stripe_server, channel):
    order_id = new_order_id()
    stripe_server.script[order_id] = [
        (
            400,
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "balance_insufficient",
                    "message": "Insufficient funds",
                }
            },
        )
    ]
    obs = await channel.submit(withdrawal(order_id), order_id, None)
    assert (obs.raw_status, obs.raw_code) == ("failed", "balance_insufficient")
    assert obs.classification.state == PayoutState.FAILED


async def test_wrong_secret_key_is_a_configuration_error(stripe_server):
    ch = make_channel(stripe_server.url, secret_key="sk_test_wrong")
    try:
        with pytest.raises(ChannelRejectedRequest, match="401"):
            await ch.submit(withdrawal(new_order_id()), new_order_id(), None)
    finally:
        await ch.aclose()


async def test_unreachable_stripe_is_unknown():
    port = free_port()  # closed again: nothing listens there
    ch = make_channel(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(ChannelUnavailable):
            await ch.submit(withdrawal("W1"), "W1", None)
        with pytest.raises(ChannelUnavailable):
            await ch.query("W1")
    finally:
        await ch.aclose()


# --- query ------------------------------------------------------------------------------


async def test_query_follows_the_payout_it_created(stripe_server, channel):
    order_id = new_order_id()
    await channel.submit(withdrawal(order_id), order_id, None)
    payout_id = stripe_server.created[-1]
    lists = stripe_server.list_calls
    stripe_server.set_status(payout_id, "in_transit")
    assert (await channel.query(order_id)).classification.state == PayoutState.PROCESSING
    stripe_server.set_status(payout_id, "paid")
    obs = await channel.query(order_id)
    assert obs.source == "poll" and obs.classification.state == PayoutState.SUCCEEDED
    assert stripe_server.list_calls == lists  # found by id, no listing


async def test_query_without_the_id_finds_the_payout_by_metadata(stripe_server, channel):
    order_id = new_order_id()
    await channel.submit(withdrawal(order_id), order_id, None)
    stripe_server.set_status(stripe_server.created[-1], "failed", "account_closed")
    for _ in range(3):  # newer payouts on top, so the scan has to page
        other = new_order_id()
        await channel.submit(withdrawal(other), other, None)
    fresh = make_channel(stripe_server.url, query_page_size=2)  # a restarted worker
    try:
        obs = await fresh.query(order_id)
    finally:
        await fresh.aclose()
    assert (obs.raw_status, obs.raw_code) == ("failed", "account_closed")
    assert obs.classification.state == PayoutState.FAILED
    assert obs.classification.category == ExceptionCategory.ACCOUNT_INFO_ERROR


async def test_query_of_an_unknown_order_reads_the_whole_window_then_says_not_found(stripe_server, channel):
    obs = await channel.query(new_order_id())
    assert obs.raw_status == "NOT_FOUND" and obs.source == "poll"
    assert obs.classification.state == PayoutState.UNKNOWN  # the workflow then resends the same order


async def test_query_that_runs_out_of_pages_is_unknown_not_not_found(stripe_server):
    for _ in range(3):
        order_id = new_order_id()
        seed = make_channel(stripe_server.url)
        await seed.submit(withdrawal(order_id), order_id, None)
        await seed.aclose()
    ch = make_channel(stripe_server.url, query_page_size=1, query_max_pages=2)
    try:
        with pytest.raises(ChannelUnavailable, match="result unknown"):
            await ch.query(new_order_id())
    finally:
        await ch.aclose()


# --- webhooks ---------------------------------------------------------------------------


def sign(body: bytes, secret: str = WEBHOOK_SECRET, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def webhook(
    payload: dict[str, Any] | bytes,
    *,
    secret: str = WEBHOOK_SECRET,
    t: int | None = None,
    extra: tuple[str, ...] = (),
) -> tuple[dict[str, str], bytes]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    t = int(time.time()) if t is None else t
    sigs = ",".join(f"v1={s}" for s in (*extra, sign(body, secret, t)))
    return {"Stripe-Signature": f"t={t},{sigs}", "Content-Type": "application/json"}, body


def payout_event(
    event_type: str, status: str, order_id: str | None = "W1001", code: str | None = None, **payout: Any
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "po_1Sentinel",
        "object": "payout",
        "amount": 1234,
        "currency": "usd",
        "automatic": False,
        "status": status,
        "failure_code": code,
        "metadata": {} if order_id is None else {"order_id": order_id},
    }
    obj.update(payout)
    return {
        "id": f"evt_{next(_ids)}Sentinel",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": obj},
    }


def classify_event(channel: StripeChannel, headers: dict[str, str], body: bytes):
    event = channel.parse_callback(headers, body, time.time())
    return event, channel.observe(
        event.order_id, event.raw_status, event.raw_code, "callback", event.occurred_at, event.event_id
    )


def test_payout_failed_account_closed_is_an_account_info_error(channel):
    payload = payout_event("payout.failed", "failed", code="account_closed")
    event, obs = classify_event(channel, *webhook(payload))
    assert (event.event_id, event.order_id, event.raw_status, event.raw_code) == (
        payload["id"],
        "W1001",
        "failed",
        "account_closed",
    )
    assert event.occurred_at.timestamp() == payload["created"]
    assert obs.classification.state == PayoutState.FAILED
    assert obs.classification.category == ExceptionCategory.ACCOUNT_INFO_ERROR


def test_payout_paid_is_succeeded(channel):
    event, obs = classify_event(channel, *webhook(payout_event("payout.paid", "paid")))
    assert event.raw_status == "paid" and event.raw_code is None
    assert obs.classification.state == PayoutState.SUCCEEDED


def test_payout_canceled_and_updated_are_read_too(channel):
    _, canceled = classify_event(channel, *webhook(payout_event("payout.canceled", "canceled")))
    assert canceled.classification.state == PayoutState.CANCELLED
    _, updated = classify_event(channel, *webhook(payout_event("payout.updated", "in_transit")))
    assert updated.classification.state == PayoutState.PROCESSING


def test_tampered_body_is_401(channel):
    headers, body = webhook(payout_event("payout.paid", "paid"))
    with pytest.raises(CallbackRejected) as err:
        channel.parse_callback(headers, body.replace(b'"paid"', b'"failed"', 1), time.time())
    assert err.value.status == 401


def test_wrong_secret_is_401(channel):
    with pytest.raises(CallbackRejected) as err:
        channel.parse_callback(
            *webhook(payout_event("payout.paid", "paid"), secret="whsec_other"), time.time()
        )
    assert err.value.status == 401


@pytest.mark.parametrize("skew", [-301, 301, -86400])
def test_stale_or_future_timestamp_is_401(channel, skew):
    headers, body = webhook(payout_event("payout.paid", "paid"), t=int(time.time()) + skew)
    with pytest.raises(CallbackRejected) as err:
        channel.parse_callback(headers, body, time.time())
    assert err.value.status == 401


@pytest.mark.parametrize("header", [None, "", "t=abc,v1=00", "v1=00", "t=1700000000", "garbage"])
def test_missing_or_malformed_signature_header_is_401(channel, header):
    headers = {} if header is None else {"Stripe-Signature": header}
    with pytest.raises(CallbackRejected) as err:
        channel.parse_callback(headers, b"{}", time.time())
    assert err.value.status == 401


def test_secret_rotation_several_v1_one_valid_is_accepted(channel):
    payload = payout_event("payout.paid", "paid")
    body = json.dumps(payload).encode()
    headers, body = webhook(payload, extra=(sign(body, "whsec_old_secret"), "0" * 64))
    event = channel.parse_callback({"stripe-signature": headers["Stripe-Signature"]}, body, time.time())
    assert event.raw_status == "paid"


def test_malformed_json_is_400(channel):
    with pytest.raises(CallbackRejected) as err:
        channel.parse_callback(*webhook(b'{"id": "evt_1", "type": '), time.time())
    assert err.value.status == 400


def test_missing_order_id_is_400(channel):
    with pytest.raises(CallbackRejected) as err:
        channel.parse_callback(
            *webhook(payout_event("payout.failed", "failed", order_id=None, code="no_account")), time.time()
        )
    assert err.value.status == 400 and "order_id" in err.value.reason


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e["data"]["object"].update(object="charge"),
        lambda e: e["data"]["object"].update(status=None),
        lambda e: e["data"]["object"].update(failure_code="drop table;"),
        lambda e: e["data"]["object"]["metadata"].update(order_id="W 1/../x"),
        lambda e: e.update(created="yesterday"),
        lambda e: e.pop("id"),
    ],
)
def test_malformed_events_are_400(channel, mutate):
    payload = payout_event("payout.failed", "failed", code="no_account")
    mutate(payload)
    with pytest.raises(CallbackRejected) as err:
        channel.parse_callback(*webhook(payload), time.time())
    assert err.value.status == 400


@pytest.mark.parametrize(
    "payload",
    [
        payout_event("payout.created", "pending"),
        payout_event("payout.reconciliation_completed", "paid"),
        {
            "id": "evt_9Sentinel",
            "object": "event",
            "type": "charge.succeeded",
            "created": 1,
            "data": {"object": {"object": "charge"}},
        },
        payout_event("payout.paid", "paid", order_id=None, automatic=True),
    ],
)
def test_other_verified_events_are_acknowledged_and_ignored(channel, payload):
    with pytest.raises(CallbackIgnored) as err:
        channel.parse_callback(*webhook(payload), time.time())
    assert err.value.status == 200
    assert isinstance(err.value, CallbackRejected)  # the current gateway answers its status


def test_unsigned_irrelevant_event_is_still_401(channel):
    headers, body = webhook(payout_event("payout.created", "pending"), secret="whsec_other")
    with pytest.raises(CallbackRejected) as err:
        channel.parse_callback(headers, body, time.time())
    assert err.value.status == 401 and not isinstance(err.value, CallbackIgnored)


async def test_webhooks_over_http_keep_the_raw_body_and_ack(channel):
    """A receiver shaped like gateway/app.py's callback route."""
    app = FastAPI()

    @app.post("/v1/callbacks/stripe")
    async def receive(request: Request) -> Response:
        try:
            event = channel.parse_callback(dict(request.headers), await request.body(), time.time())
        except CallbackRejected as rejected:
            return JSONResponse({"error": rejected.reason}, status_code=rejected.status)
        status, content_type, body = channel.ack()
        return Response(
            content=body, status_code=status, media_type=content_type, headers={"X-Order": event.order_id}
        )

    async with serve(app) as base, httpx.AsyncClient() as client:
        url = base + "/v1/callbacks/stripe"
        headers, body = webhook(payout_event("payout.paid", "paid", order_id="W77"))
        ok = await client.post(url, content=body, headers=headers)
        assert ok.status_code == 200 and ok.json() == {"received": True} and ok.headers["x-order"] == "W77"
        assert ok.headers["content-type"].startswith("application/json")
        headers, body = webhook(payout_event("payout.created", "pending"))
        assert (await client.post(url, content=body, headers=headers)).status_code == 200
        headers, body = webhook(payout_event("payout.paid", "paid"), secret="whsec_other")
        assert (await client.post(url, content=body, headers=headers)).status_code == 401


def test_ack_is_json_received_true(channel):
    assert channel.ack() == (200, "application/json", b'{"received":true}')


def test_config_is_checked():
    with pytest.raises(ValueError):
        StripeConfig("ftp://x", SECRET_KEY, WEBHOOK_SECRET)
    with pytest.raises(ValueError):
        StripeConfig("https://api.stripe.com", "", WEBHOOK_SECRET)
    with pytest.raises(ValueError):
        StripeConfig("https://api.stripe.com", SECRET_KEY, "")
    with pytest.raises(ValueError):
        StripeConfig("https://api.stripe.com", SECRET_KEY, WEBHOOK_SECRET, query_page_size=500)
