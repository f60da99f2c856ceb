"""Stripe's Payouts API as the simulator speaks it (docs/channels/stripe.md), so the real
adapter ``channels/stripe.py`` runs against it unchanged.

* ``POST /v1/payouts`` (form-encoded, ``Authorization: Bearer <secret key>``): amounts in
  minor units; ``metadata[order_id]`` is the simulator's order id. ``Idempotency-Key``: the
  same key with the same parameters replays the saved answer (``Idempotent-Replayed:
  true``), with other parameters it is a 400 ``idempotency_error``.
* ``GET /v1/payouts/{id}``; ``GET /v1/payouts`` (newest first, ``limit``, ``created[gte]``
  and friends, ``starting_after``, ``has_more``).
* Webhooks to ``webhook_url`` (configured at the provider, not per payout), signed
  ``Stripe-Signature: t=<ts>,v1=<HMAC-SHA256("<ts>.<body>")>`` with the endpoint secret.

Script submit behaviours: ``http_500`` -> 500 ``api_error`` (the payout exists; Stripe
replays a saved 500 for the same key), ``unknown`` -> 409 ``idempotency_key_in_use`` (an
earlier attempt is "still in flight"; a retry gets the payout). Either way the adapter
raises ChannelUnavailable and finds the payout by listing.

Liberties: Stripe has no hold status, so HELD shows as ``pending`` and sends nothing; a
bank-delay reason rides on an ``in_transit`` payout as ``failure_code`` (Stripe sets it
only on ``failed``) so the delay is visible; one payout per ``metadata[order_id]``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from channels.stripe import SIGNATURE_HEADER, stripe_exponent, to_minor_units
from simulator.engine import DuplicateOrder
from simulator.events import CallbackEvent, NativeCallback
from simulator.protocol import PayoutRequest

if TYPE_CHECKING:
    from simulator.engine import Engine
    from simulator.keys import SimKeys
    from simulator.orders import Order

#: canonical status -> (payout status, webhook event type or None: Stripe sends nothing)
STATUSES: dict[str, tuple[str, str | None]] = {
    "ACCEPTED": ("pending", None),
    "PROCESSING": ("in_transit", "payout.updated"),
    "SUCCEEDED": ("paid", "payout.paid"),
    "FAILED": ("failed", "payout.failed"),
    "RETURNED": ("failed", "payout.failed"),  # failed after paid: the workflow's return
    "HELD": ("pending", None),  # Stripe has no hold status
    "UNKNOWN": ("pending", None),
}

#: ISO reason code -> Stripe failure_code, each from sentinel/codes/stripe.yaml and of the
#: same category as the ISO code (tests/simulator/test_sim_stripe.py checks it).
FAILURE_CODES: dict[str, str] = {
    "AB08": "issuer_unavailable",  # BANK_DELAY
    "TM01": "issuer_unavailable",
    "ED06": "issuer_unavailable",
    "AC04": "account_closed",  # ACCOUNT_INFO_ERROR
    "AC01": "invalid_account_number",
    "BE01": "incorrect_account_holder_name",
    "AM02": "exceeds_amount_limit",  # BALANCE_OR_LIMIT
    "AM04": "insufficient_funds",
}
#: ISO codes Stripe cannot express (no RISK_HOLD code in its catalogue): dropped.
UNEXPRESSED_CODES = frozenset({"FR01", "RISK"})
#: failure_code of a failed payout whose ISO code has no Stripe counterpart
FALLBACK_FAILURE_CODE = "could_not_process"

ALLOWED_PARAMS = frozenset(
    {"amount", "currency", "destination", "method", "description", "statement_descriptor", "source_type"}
)


def native_state(status: str, code: str | None) -> tuple[str, str | None, str | None]:
    """(payout status, failure_code, event type or None) of a canonical (status, code)."""
    payout_status, event_type = STATUSES.get(status, ("pending", None))
    failure = FAILURE_CODES.get(code) if code else None
    if payout_status == "failed" and code and failure is None:
        failure = FALLBACK_FAILURE_CODE
    if payout_status not in ("failed", "in_transit"):
        failure = None
    return payout_status, failure, event_type


def _error(status: int, type_: str, message: str, code: str | None = None, **headers: str) -> JSONResponse:
    error: dict[str, Any] = {"type": type_, "message": message}
    if code:
        error["code"] = code
    return JSONResponse({"error": error}, status_code=status, headers=headers or None)


def _major_units(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-stripe_exponent(currency))


class StripeDialect:
    name = "stripe"

    def __init__(self, keys: SimKeys, webhook_url: str) -> None:
        self.keys = keys
        self.webhook_url = webhook_url  # read at callback time: it may be set after construction

    # --- payout objects -------------------------------------------------------------------

    def payout(
        self, order: Order, status: str | None = None, code: str | None = None, message: str | None = None
    ) -> dict[str, Any]:
        """The order as a Stripe payout object (its current state unless one is given)."""
        if status is None:
            status, code, message = order.status, order.code, order.message
        payout_status, failure, _ = native_state(status, code)
        native = order.native
        return {
            "id": native["id"],
            "object": "payout",
            "amount": native["amount"],
            "currency": native["currency"],
            "arrival_date": native["created"] - native["created"] % 86400 + 2 * 86400,
            "automatic": False,
            "created": native["created"],
            "destination": native["destination"],
            "method": native["method"],
            "livemode": False,
            "status": payout_status,
            "failure_code": failure,
            "failure_message": message if failure else None,
            "metadata": native["metadata"],
        }

    # --- webhooks -------------------------------------------------------------------------

    def callback(self, order: Order, event: CallbackEvent, now: float) -> NativeCallback | None:
        _, _, event_type = native_state(event.status, event.code)
        if event_type is None or "id" not in order.native:
            return None
        body = json.dumps(
            {
                "id": event.event_id if event.event_id.startswith("evt_") else "evt_" + event.event_id,
                "object": "event",
                "api_version": "2024-06-20",
                "created": int(event.occurred_at.timestamp()),
                "livemode": False,
                "pending_webhooks": 1,
                "type": event_type,
                "data": {"object": self.payout(order, event.status, event.code, event.message)},
            },
            separators=(",", ":"),
        ).encode()
        t = int(now)
        v1 = hmac.new(
            self.keys.stripe_webhook_secret.encode(), f"{t}.".encode() + body, hashlib.sha256
        ).hexdigest()
        headers = {"Content-Type": "application/json; charset=utf-8", SIGNATURE_HEADER: f"t={t},v1={v1}"}
        return NativeCallback(self.webhook_url, headers, body)

    # --- API ------------------------------------------------------------------------------

    def router(self, engine: Engine) -> APIRouter:
        router = APIRouter()

        def denied(request: Request) -> JSONResponse | None:
            auth = request.headers.get("authorization", "")
            if not auth:
                return _error(401, "invalid_request_error", "You did not provide an API key.")
            if not hmac.compare_digest(auth.encode(), f"Bearer {self.keys.stripe_secret_key}".encode()):
                return _error(401, "invalid_request_error", "Invalid API Key provided.")
            return None

        def stripe_orders() -> list[Order]:
            return [o for o in engine.orders() if o.dialect == self.name and "id" in o.native]

        @router.post("/v1/payouts")
        async def create(request: Request) -> JSONResponse:
            if (no := denied(request)) is not None:
                return no
            if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                return _error(400, "invalid_request_error", "Expected a form-encoded body.")
            try:
                pairs = parse_qsl(
                    (await request.body()).decode(), keep_blank_values=True, strict_parsing=True
                )
            except (ValueError, UnicodeDecodeError):
                return _error(400, "invalid_request_error", "Malformed form body.")
            params = dict(pairs)
            signature = sorted(pairs)
            key = request.headers.get("idempotency-key")
            if key:
                seen = next((o for o in stripe_orders() if o.native.get("idempotency_key") == key), None)
                if seen is not None:
                    if seen.native["params"] != signature:
                        return _error(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                        )
                    status, body = seen.native["saved"]
                    return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})
            for name in params:
                if name not in ALLOWED_PARAMS and not (name.startswith("metadata[") and name.endswith("]")):
                    return _error(
                        400,
                        "invalid_request_error",
                        f"Received unknown parameter: {name}",
                        "parameter_unknown",
                    )
            amount, currency = params.get("amount", ""), params.get("currency", "")
            if not amount.isdigit() or int(amount) <= 0:
                return _error(
                    400, "invalid_request_error", "Invalid positive integer", "parameter_invalid_integer"
                )
            if len(currency) != 3 or not currency.isalpha() or currency != currency.lower():
                return _error(
                    400, "invalid_request_error", f"Invalid currency: {currency}", "parameter_invalid_string"
                )
            major = _major_units(int(amount), currency)
            try:
                if to_minor_units(major, currency) != int(amount):
                    raise ValueError(amount)
            except ValueError as exc:
                return _error(400, "invalid_request_error", f"Invalid amount: {exc}", "amount_invalid")
            metadata = {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")}
            try:
                payout_request = PayoutRequest(
                    order_id=metadata.get("order_id", ""),
                    amount=str(major),
                    currency=currency.upper(),
                    bank_code="STRIPE",
                    payee_ref=params.get("destination") or "default_external_account",
                    callback_url=self.webhook_url,
                )
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                return _error(
                    400,
                    "invalid_request_error",
                    f"simulator: metadata[order_id] and destination are needed ({problems})",
                )
            try:
                order, created = engine.submit(payout_request, dialect=self.name)
            except DuplicateOrder:
                return _error(
                    400,
                    "invalid_request_error",
                    f"simulator: order {payout_request.order_id} already has another payout",
                )
            if not created:  # another key (or none) for a known order: one payout per order here
                return JSONResponse(self.payout(order))
            order.native.update(
                id="po_" + secrets.token_hex(12),
                created=int(order.submitted_at.timestamp()),
                amount=int(amount),
                currency=currency,
                destination=params.get("destination"),
                method=params.get("method", "standard"),
                metadata=metadata,
                idempotency_key=key,
                params=signature,
            )
            payout = self.payout(order)
            if order.script.submit == "http_500":
                body = {"error": {"type": "api_error", "message": "An unknown error occurred (simulated)."}}
                order.native["saved"] = (500, body)
                return JSONResponse(body, status_code=500)
            order.native["saved"] = (200, payout)
            if order.script.submit == "unknown":
                return _error(
                    409,
                    "idempotency_error",
                    "There is currently another in-progress request using this Idempotent Key. Please try again later.",
                    "idempotency_key_in_use",
                )
            return JSONResponse(payout)

        @router.get("/v1/payouts/{payout_id}")
        async def retrieve(payout_id: str, request: Request) -> JSONResponse:
            if (no := denied(request)) is not None:
                return no
            order = next((o for o in stripe_orders() if o.native["id"] == payout_id), None)
            if order is None:
                return _error(
                    404, "invalid_request_error", f"No such payout: '{payout_id}'", "resource_missing"
                )
            return JSONResponse(self.payout(order))

        @router.get("/v1/payouts")
        async def listing(request: Request) -> JSONResponse:
            if (no := denied(request)) is not None:
                return no
            q = request.query_params
            try:
                limit = int(q.get("limit", "10"))
                bounds = {
                    op: int(q[f"created[{op}]"]) for op in ("gt", "gte", "lt", "lte") if f"created[{op}]" in q
                }
            except ValueError:
                return _error(400, "invalid_request_error", "Invalid integer", "parameter_invalid_integer")
            if not 1 <= limit <= 100:
                return _error(
                    400,
                    "invalid_request_error",
                    "limit must be between 1 and 100",
                    "parameter_invalid_integer",
                )
            tests = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
            newest_first = [
                o
                for o in reversed(stripe_orders())
                if all(tests[op](o.native["created"], bound) for op, bound in bounds.items())
            ]
            after = q.get("starting_after")
            if after is not None:
                ids = [o.native["id"] for o in newest_first]
                if after not in ids:
                    return _error(
                        400, "invalid_request_error", f"No such payout: '{after}'", "resource_missing"
                    )
                newest_first = newest_first[ids.index(after) + 1 :]
            page = [self.payout(o) for o in newest_first[:limit]]
            return JSONResponse(
                {"object": "list", "url": "/v1/payouts", "has_more": len(newest_first) > limit, "data": page}
            )

        return router
