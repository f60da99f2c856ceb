"""Stripe Payouts (docs/channels/stripe.md): ``POST /v1/payouts`` form-encoded with an
Idempotency-Key, ``GET /v1/payouts/{id}`` / ``GET /v1/payouts`` to query, and signed
webhook events (``Stripe-Signature: t=<ts>,v1=<hex>``) for ``payout.*`` changes.

Native -> canonical: a payout's ``status`` (pending / in_transit / paid / failed /
canceled) is the raw status, its ``failure_code`` the raw code; ``sentinel/codes/stripe.yaml``
classifies them. A ``failed`` after ``paid`` is turned into a return by the workflow.

How a payout is found again (``query``): Stripe names a payout by its own ``po_...`` id, we
only know our order id, which travels as ``metadata[order_id]`` and as the Idempotency-Key.
Stripe has no search on payout metadata, so the adapter

1. remembers ``order_id -> po_...`` in a bounded in-process map, filled by ``submit``,
   ``query`` and verified webhooks, and asks ``GET /v1/payouts/{id}`` when it has the id;
2. otherwise lists ``GET /v1/payouts?created[gte]=<now - lookback>&limit=100`` page by page,
   newest first, and matches ``metadata.order_id``. ``NOT_FOUND`` is answered only when the
   whole window was read; when the page budget runs out first the answer is
   ``ChannelUnavailable`` (unknown), never a false "not found" that could lead to a resend.

It deliberately does NOT query by replaying ``POST /v1/payouts`` with the same
Idempotency-Key: ``query`` does not have the original parameters (Stripe rejects a key reused
with other parameters), a replay of a request that never reached Stripe would *create* the
payout (a query must not pay), and Stripe prunes keys after 24 hours, after which a replay
pays a second time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from channels.base import (
    CallbackEvent,
    CallbackIgnored,
    CallbackRejected,
    ChannelRejectedRequest,
    ChannelUnavailable,
    HttpChannel,
)
from channels.stripe.transformers import (
    _CODE,
    _EVENT_ID,
    _ID,
    _PAYOUT_ID,
    _STATUS,
    BUSINESS_ERROR_CODES,
    HANDLED_EVENTS,
    SIGNATURE_HEADER,
    StripeConfig,
    to_minor_units,
)
from sentinel import safe_json
from sentinel.catalogue import Catalogue
from sentinel.models import Observation, WithdrawalRequest

log = logging.getLogger(__name__)


def verify_stripe_signature(
    secret: str, body: bytes, header: str | None, now: float, tolerance_s: int
) -> int:
    """Check a ``Stripe-Signature`` header: HMAC-SHA256 of ``"<t>." + body`` with the
    endpoint secret, constant-time compared against every ``v1`` (several during a secret
    roll), and ``t`` within ``tolerance_s`` of ``now``. Returns ``t``; raises
    CallbackRejected(401) with the reason."""
    if not header:
        raise CallbackRejected(401, f"missing {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise CallbackRejected(401, f"malformed {SIGNATURE_HEADER} header")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise CallbackRejected(401, f"{SIGNATURE_HEADER} has an invalid t=") from None
        elif key == "v1":
            candidates.append(value)
        # other schemes (v0 test signatures, future ones) are ignored, as Stripe advises
    if timestamp is None:
        raise CallbackRejected(401, f"{SIGNATURE_HEADER} has no t=")
    if not candidates:
        raise CallbackRejected(401, f"{SIGNATURE_HEADER} has no v1 signature")
    if abs(now - timestamp) > tolerance_s:
        raise CallbackRejected(401, "signature timestamp outside the tolerance window")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    # compare against every candidate (no early exit) so timing says nothing about which
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise CallbackRejected(401, "signature does not match")
    return timestamp


class StripeChannel(HttpChannel):
    name = "stripe"

    def __init__(
        self, catalogue: Catalogue, config: StripeConfig, *, client: httpx.AsyncClient | None = None
    ):
        super().__init__(catalogue, config, client)
        self.api_base = config.api_base.rstrip("/")
        self._payout_ids: OrderedDict[str, str] = OrderedDict()
        # parse_callback runs on the gateway's parser threads (gateway/routes_callbacks.py)
        self._ids_lock = threading.Lock()

    # --- order id <-> payout id ---------------------------------------------------------

    def _remember(self, order_id: str, payout_id: Any) -> None:
        if not isinstance(payout_id, str) or not _PAYOUT_ID.match(payout_id):
            return
        with self._ids_lock:
            self._payout_ids[order_id] = payout_id
            self._payout_ids.move_to_end(order_id)
            while len(self._payout_ids) > self.config.id_cache_size:
                self._payout_ids.popitem(last=False)

    # --- HTTP ---------------------------------------------------------------------------

    def _headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.config.secret_key}", "Accept": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        if self.config.stripe_account:
            headers["Stripe-Account"] = self.config.stripe_account
        if self.config.api_version:
            headers["Stripe-Version"] = self.config.api_version
        return headers

    async def _call(
        self,
        method: str,
        path: str,
        *,
        form: list[tuple[str, str]] | None = None,
        params: list[tuple[str, str]] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = self._headers(idempotency_key)
        content = None
        if form is not None:
            content = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            resp = await self._client.request(
                method,
                self.api_base + path,
                content=content,
                params=tuple(params) if params is not None else None,  # (tuples: covariant)
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise ChannelUnavailable(f"stripe {method} {path}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500:
            # Stripe replays a saved 500 for the same Idempotency-Key: still unknown; query.
            raise ChannelUnavailable(f"stripe {method} {path}: HTTP {resp.status_code}")
        if resp.status_code == 429:
            raise ChannelUnavailable(f"stripe {method} {path}: rate limited (HTTP 429)")
        if resp.status_code == 409:
            # Another request with the same Idempotency-Key is in flight (or conflicts):
            # the outcome is unknown until we query.
            raise ChannelUnavailable(f"stripe {method} {path}: conflict (HTTP 409) {_error_summary(resp)}")
        return resp

    @staticmethod
    def _json(resp: httpx.Response) -> dict[str, Any]:
        try:
            data = safe_json.loads(resp.content, "answer")
        except ValueError:
            raise ChannelUnavailable(f"stripe: unreadable answer, HTTP {resp.status_code}") from None
        if not isinstance(data, dict):
            raise ChannelUnavailable(f"stripe: answer is not a JSON object, HTTP {resp.status_code}")
        return data

    def _from_payout(self, order_id: str, payout: Mapping[str, Any], source: str) -> Observation:
        if payout.get("object") not in (None, "payout"):
            raise ChannelUnavailable(f"stripe: expected a payout object, got {payout.get('object')!r}")
        status = payout.get("status")
        if not isinstance(status, str) or not _STATUS.match(status):
            raise ChannelUnavailable(f"stripe: payout has no readable status: {status!r}")
        code = payout.get("failure_code")
        if code is not None and (not isinstance(code, str) or not _CODE.match(code)):
            raise ChannelUnavailable(f"stripe: payout failure_code is not a code: {code!r}")
        metadata = payout.get("metadata") or {}
        if isinstance(metadata, dict) and metadata.get("order_id") not in (None, order_id):
            raise ChannelRejectedRequest(
                f"stripe returned payout {payout.get('id')} of order {metadata.get('order_id')!r} for {order_id!r}"
            )
        self._remember(order_id, payout.get("id"))
        return self.observe(order_id, status, code, source, datetime.now(UTC))

    @staticmethod
    def _rejected(resp: httpx.Response, what: str) -> ChannelRejectedRequest:
        """Any 4xx that is not a business answer: our integration or configuration is wrong
        (bad parameters, unknown destination, bad API key, key reused with other parameters)."""
        return ChannelRejectedRequest(f"stripe {what}: HTTP {resp.status_code} {_error_summary(resp)}")

    # --- Channel ------------------------------------------------------------------------

    def _form(self, request: WithdrawalRequest, order_id: str) -> list[tuple[str, str]]:
        try:
            amount = to_minor_units(request.amount, request.currency)
        except ValueError as exc:
            raise ChannelRejectedRequest(f"stripe: {exc}") from None
        form = [
            ("amount", str(amount)),
            ("currency", request.currency.lower()),
            ("destination", request.payee_ref),
            ("metadata[order_id]", order_id),
            ("metadata[withdrawal_id]", request.withdrawal_id),
        ]
        if self.config.payout_method:
            form.append(("method", self.config.payout_method))
        return form

    async def submit(
        self, request: WithdrawalRequest, order_id: str, callback_url: str | None
    ) -> Observation:
        # callback_url is not sent: Stripe delivers webhooks to the endpoint configured in
        # the Dashboard (or via the webhook endpoints API), not per request.
        form = self._form(request, order_id)
        resp = await self._call("POST", "/v1/payouts", form=form, idempotency_key=order_id)
        if resp.status_code == 200:
            return self._from_payout(order_id, self._json(resp), "submit")
        error = _error_of(resp)
        code = error.get("code") if isinstance(error.get("code"), str) else None
        if code is not None and not _CODE.match(code):
            code = None
        if resp.status_code == 402 or error.get("type") == "card_error":
            # "The parameters were valid but the request failed": a business answer.
            return self.observe(order_id, "failed", code, "submit", datetime.now(UTC))
        if resp.status_code == 400 and code in BUSINESS_ERROR_CODES:
            return self.observe(order_id, "failed", code, "submit", datetime.now(UTC))
        raise self._rejected(resp, f"create payout for {order_id}")

    async def query(self, order_id: str) -> Observation:
        payout_id = self._payout_ids.get(order_id)
        if payout_id is not None:
            resp = await self._call("GET", f"/v1/payouts/{quote(payout_id, safe='')}")
            if resp.status_code == 200:
                return self._from_payout(order_id, self._json(resp), "poll")
            if resp.status_code != 404:
                raise self._rejected(resp, f"retrieve payout {payout_id}")
            self._payout_ids.pop(order_id, None)
        payout = await self._find(order_id)
        if payout is None:
            # The whole lookback window was read: Stripe has no payout for this order.
            return self.observe(order_id, "NOT_FOUND", None, "poll", datetime.now(UTC))
        return self._from_payout(order_id, payout, "poll")

    async def _find(self, order_id: str) -> dict[str, Any] | None:
        since = int(time.time()) - self.config.query_lookback_s
        cursor: str | None = None
        for _ in range(self.config.query_max_pages):
            params = [("limit", str(self.config.query_page_size)), ("created[gte]", str(since))]
            if cursor is not None:
                params.append(("starting_after", cursor))
            resp = await self._call("GET", "/v1/payouts", params=params)
            if resp.status_code != 200:
                raise self._rejected(resp, "list payouts")
            page = self._json(resp)
            items = page.get("data")
            if not isinstance(items, list):
                raise ChannelUnavailable("stripe: payout list has no data array")
            for item in items:
                if not isinstance(item, dict):
                    continue
                metadata = item.get("metadata")
                if isinstance(metadata, dict) and metadata.get("order_id") == order_id:
                    return item
            if not page.get("has_more") or not items:
                return None
            cursor = items[-1].get("id") if isinstance(items[-1], dict) else None
            if not isinstance(cursor, str):
                raise ChannelUnavailable("stripe: payout list page without a cursor id")
        raise ChannelUnavailable(
            f"stripe: order {order_id} not among the newest "
            f"{self.config.query_max_pages * self.config.query_page_size} payouts; result unknown"
        )

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> CallbackEvent:
        lowered = {k.lower(): v for k, v in headers.items()}
        verify_stripe_signature(
            self.config.webhook_secret,
            body,
            lowered.get(SIGNATURE_HEADER.lower()),
            now,
            self.config.tolerance_s,
        )
        try:
            event = safe_json.loads(body)
        except safe_json.JsonRefused as exc:
            raise CallbackRejected(400, str(exc)) from None
        if not isinstance(event, dict):
            raise CallbackRejected(400, "body must be a JSON object")
        event_id = event.get("id")
        if not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
            raise CallbackRejected(400, "event id is missing or malformed")
        event_type = event.get("type")
        if not isinstance(event_type, str):
            raise CallbackRejected(400, "event type is missing")
        if event_type not in HANDLED_EVENTS:
            raise CallbackIgnored(f"event {event_id} of type {event_type} is not a payout status change")
        data = event.get("data")
        payout = data.get("object") if isinstance(data, dict) else None
        if not isinstance(payout, dict) or payout.get("object") != "payout":
            raise CallbackRejected(400, "data.object is not a payout")
        if payout.get("automatic") is True:
            raise CallbackIgnored(
                f"event {event_id}: automatic payout of the platform balance, not a withdrawal"
            )
        metadata = payout.get("metadata")
        order_id = metadata.get("order_id") if isinstance(metadata, dict) else None
        if not isinstance(order_id, str) or not order_id:
            raise CallbackRejected(400, "data.object.metadata.order_id is missing")
        if not _ID.match(order_id):
            raise CallbackRejected(400, "metadata.order_id has invalid characters")
        status = payout.get("status")
        if not isinstance(status, str) or not _STATUS.match(status):
            raise CallbackRejected(400, "data.object.status is missing or not a status word")
        code = payout.get("failure_code")
        if code is not None and (not isinstance(code, str) or not _CODE.match(code)):
            raise CallbackRejected(400, "data.object.failure_code must be null or a code word")
        created = event.get("created")
        if isinstance(created, bool) or not isinstance(created, int) or created <= 0:
            raise CallbackRejected(400, "event created is not a unix time")
        try:
            occurred = datetime.fromtimestamp(created, UTC)
        except (OverflowError, OSError, ValueError):
            raise CallbackRejected(400, "event created is out of range") from None
        self._remember(order_id, payout.get("id"))
        return CallbackEvent(event_id, order_id, status, code, occurred)

    def ack(self) -> tuple[int, str, bytes]:
        return 200, "application/json", b'{"received":true}'


def _error_of(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = safe_json.loads(resp.content, "answer")
    except ValueError:
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _error_summary(resp: httpx.Response) -> str:
    error = _error_of(resp)
    if not error:
        return resp.text[:200]
    parts = [str(error.get(k)) for k in ("type", "code") if error.get(k)]
    message = str(error.get("message") or "")[:200]
    return f"{' '.join(parts)}: {message}".strip(": ")
