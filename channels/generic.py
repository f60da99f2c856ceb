"""The generic bank protocol (docs/channels/generic.md): JSON + HMAC-SHA256 signatures.
The channel simulator speaks it too."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx

from channels.base import (
    CallbackEvent,
    CallbackRejected,
    Channel,
    ChannelRejectedRequest,
    ChannelUnavailable,
)
from sentinel import safe_json
from sentinel.catalogue import Catalogue
from sentinel.models import ID_PATTERN, Observation, WithdrawalRequest
from sentinel.signing import SIGNATURE_HEADER, SignatureError, sign, verify

_ID = re.compile(ID_PATTERN)
_STATUS = re.compile(r"^[A-Z_]{2,32}$")
_CODE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class GenericChannel(Channel):
    name = "generic"

    def __init__(
        self,
        catalogue: Catalogue,
        base_url: str,
        secret: str,
        *,
        timeout_s: float = 10.0,
        tolerance_s: int = 300,
        client: httpx.AsyncClient | None = None,
    ):
        super().__init__(catalogue)
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.tolerance_s = tolerance_s
        self._client = client or httpx.AsyncClient(timeout=timeout_s)

    def _headers(self, body: bytes) -> dict[str, str]:
        return {
            SIGNATURE_HEADER: sign(self.secret, body, int(time.time())),
            "Content-Type": "application/json",
        }

    async def _call(self, method: str, path: str, body: bytes = b"") -> httpx.Response:
        try:
            resp = await self._client.request(
                method, self.base_url + path, content=body, headers=self._headers(body)
            )
        except httpx.HTTPError as exc:
            raise ChannelUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500:
            raise ChannelUnavailable(f"{method} {path}: HTTP {resp.status_code}")
        return resp

    def _from_answer(self, resp: httpx.Response, order_id: str, source: str) -> Observation:
        now = datetime.now(UTC)
        try:
            data = safe_json.loads(resp.content, "answer")
        except ValueError:
            raise ChannelUnavailable(f"unreadable answer, HTTP {resp.status_code}") from None
        if not isinstance(data, dict):
            raise ChannelUnavailable(f"answer is not a JSON object, HTTP {resp.status_code}")
        status = str(data.get("status", ""))
        if resp.status_code == 404 or status == "NOT_FOUND":
            # The channel has no such order: nothing was paid. Query-first callers decide.
            return self.observe(order_id, "NOT_FOUND", None, source, now)
        if resp.status_code == 409:
            return self.observe(order_id, "FAILED", str(data.get("code") or "DUPLICATE"), source, now)
        if resp.status_code >= 400:
            raise ChannelRejectedRequest(f"HTTP {resp.status_code}: {data}")
        return self.observe(order_id, status, data.get("code"), source, now)

    async def submit(
        self, request: WithdrawalRequest, order_id: str, callback_url: str | None
    ) -> Observation:
        payload = {
            "order_id": order_id,
            "amount": str(request.amount),
            "currency": request.currency,
            "bank_code": request.bank_code,
            "payee_ref": request.payee_ref,
            "card_last4": request.card_last4,
            "callback_url": callback_url,
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        resp = await self._call("POST", "/v1/payouts", body)
        return self._from_answer(resp, order_id, "submit")

    async def query(self, order_id: str) -> Observation:
        resp = await self._call("GET", f"/v1/payouts/{order_id}")
        return self._from_answer(resp, order_id, "poll")

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> CallbackEvent:
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            verify(self.secret, body, lowered.get(SIGNATURE_HEADER.lower()), now, self.tolerance_s)
        except SignatureError as exc:
            raise CallbackRejected(401, str(exc)) from None
        try:
            data = safe_json.loads(body)
        except safe_json.JsonRefused as exc:
            raise CallbackRejected(400, str(exc)) from None
        if not isinstance(data, dict):
            raise CallbackRejected(400, "body must be a JSON object")
        for field in ("event_id", "order_id", "status", "occurred_at"):
            if not isinstance(data.get(field), str) or not data[field]:
                raise CallbackRejected(400, f"field {field!r} is missing or not a string")
        if not _ID.match(data["order_id"]) or not _ID.match(data["event_id"]):
            raise CallbackRejected(400, "order_id or event_id has invalid characters")
        if not _STATUS.match(data["status"]):
            raise CallbackRejected(400, "status is not a status word")
        code = data.get("code")
        if code is not None and (not isinstance(code, str) or not _CODE.match(code)):
            raise CallbackRejected(400, "code must be null or a code word")
        try:
            occurred = datetime.fromisoformat(data["occurred_at"].replace("Z", "+00:00"))
        except ValueError:
            raise CallbackRejected(400, "occurred_at is not an ISO 8601 time") from None
        if occurred.tzinfo is None:
            raise CallbackRejected(400, "occurred_at needs a time zone")
        return CallbackEvent(data["event_id"], data["order_id"], data["status"], code, occurred)

    def ack(self) -> tuple[int, str, bytes]:
        return 200, "application/json", b'{"received":true}'
