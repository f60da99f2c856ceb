"""ISO 20022 over HTTPS (docs/channels/iso20022.md): a bank that takes a pacs.008
customer credit transfer and reports with pacs.002 status reports and pacs.004 returns.

Transport (one of the many ways banks carry ISO 20022; this is the one implemented):

* submit: ``POST {base_url}/payments`` with a pacs.008.001.08 document, one transaction per
  message, ``MsgId = InstrId = EndToEndId = TxId = order id`` and a UETR derived from the
  order id, so a resent order is the identical payment and the bank's duplicate check holds;
* query: ``GET {base_url}/payments/{EndToEndId}/status`` answers a pacs.002 (or a pacs.004
  once returned), 404 when the bank has no such payment;
* callbacks: ``POST`` of a pacs.002 or pacs.004 document to our callback URL.

Every request in both directions carries ``X-Channel-Signature: t=<unix>,v1=<hex>``, the
HMAC-SHA256 of ``"<t>." + body`` of the generic protocol (``sentinel.signing``). Outbound
calls can also use mutual TLS (``client_cert`` / ``client_key`` / ``ca_bundle``).

Incoming XML is parsed with expat directly: any DOCTYPE (so any entity declaration, internal
or external, billion laughs, XXE) is refused before a single entity is expanded, and the
tree is built without ever resolving external resources. Documents are UTF-8 only (as
ISO 20022 XML messages are): another declared encoding (GBK, UTF-16, ...) is refused with
the reason, and elements nested deeper than ``MAX_XML_DEPTH`` are refused while parsing.

Native -> canonical: pacs.002 ``TxSts`` (RCVD/ACTC/ACCP/PDNG/ACSP/ACWC/ACCC/ACSC/RJCT/CANC)
is the raw status and the first ``StsRsnInf/Rsn/Cd`` (or ``Prtry``) the raw code; a
pacs.004 transaction has the raw status ``pacs.004`` (``iso20022.yaml`` maps it to RETURNED)
and the ``RtrRsnInf/Rsn/Cd`` as code.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from channels.base import (
    CallbackEvent,
    CallbackRejected,
    ChannelRejectedRequest,
    ChannelUnavailable,
    HttpChannel,
)
from channels.iso20022.safe_xml import IsoMessageError
from channels.iso20022.transformers import NOT_FOUND, RECEIVED, Iso20022Config, build_pacs008, parse_message
from sentinel.catalogue import Catalogue
from sentinel.models import Observation, WithdrawalRequest
from sentinel.signing import SIGNATURE_HEADER, SignatureError, sign, verify

# --- the adapter ------------------------------------------------------------------------


class Iso20022Channel(HttpChannel):
    name = "iso20022"

    def __init__(
        self, catalogue: Catalogue, config: Iso20022Config, *, client: httpx.AsyncClient | None = None
    ):
        ctx = config.ssl_context() if client is None else None
        super().__init__(catalogue, config, client, verify=ctx if ctx is not None else True)
        self.base_url = config.base_url.rstrip("/")

    async def _call(
        self, method: str, path: str, body: bytes = b"", extra: Mapping[str, str] | None = None
    ) -> httpx.Response:
        headers = {
            SIGNATURE_HEADER: sign(self.config.hmac_secret, body, int(time.time())),
            "Accept": "application/xml",
        }
        if body:
            headers["Content-Type"] = "application/xml; charset=utf-8"
        headers.update(extra or {})
        try:
            resp = await self._client.request(method, self.base_url + path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ChannelUnavailable(f"iso20022 {method} {path}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise ChannelUnavailable(f"iso20022 {method} {path}: HTTP {resp.status_code}")
        return resp

    def _observation_from(self, body: bytes, order_id: str, source: str) -> Observation | None:
        """The (last) status the document gives for ``order_id``; None when it names other
        payments only. Raises IsoMessageError for a document we cannot read."""
        message = parse_message(body)
        mine = [tx for tx in message.transactions if tx.end_to_end_id == order_id]
        if not mine:
            return None
        tx = mine[-1]
        return self.observe(order_id, tx.raw_status, tx.reason_code, source, datetime.now(UTC))

    async def submit(
        self, request: WithdrawalRequest, order_id: str, callback_url: str | None
    ) -> Observation:
        try:
            body = build_pacs008(self.config, request, order_id, datetime.now(UTC))
        except ValueError as exc:
            raise ChannelRejectedRequest(f"iso20022: {exc}") from None
        extra = {"X-Callback-Url": callback_url} if callback_url else None
        resp = await self._call("POST", self.config.submit_path, body, extra)
        if resp.status_code == 409:
            # The bank already has this EndToEndId: it is the same payment; ask its status.
            return (await self.query(order_id)).model_copy(update={"source": "submit"})
        if resp.status_code in (401, 403):
            raise ChannelRejectedRequest(f"iso20022 submit {order_id}: HTTP {resp.status_code} (credentials)")
        if 200 <= resp.status_code < 300 and not resp.content.strip():
            return self.observe(order_id, RECEIVED, None, "submit", datetime.now(UTC))
        try:
            obs = self._observation_from(resp.content, order_id, "submit")
        except IsoMessageError as exc:
            if resp.status_code >= 400:
                raise ChannelRejectedRequest(
                    f"iso20022 submit {order_id}: HTTP {resp.status_code}: {resp.text[:200]}"
                ) from None
            raise ChannelUnavailable(f"iso20022 submit {order_id}: unreadable answer: {exc}") from None
        if obs is None:
            if resp.status_code >= 400:
                raise ChannelRejectedRequest(f"iso20022 submit {order_id}: HTTP {resp.status_code}")
            raise ChannelUnavailable(f"iso20022 submit {order_id}: status report names other payments only")
        # A 4xx that carries a pacs.002 for our payment (e.g. RJCT FF01) is the bank's answer.
        return obs

    async def query(self, order_id: str) -> Observation:
        path = self.config.status_path.format(end_to_end_id=quote(order_id, safe=""))
        resp = await self._call("GET", path)
        if resp.status_code == 404:
            return self.observe(order_id, NOT_FOUND, None, "poll", datetime.now(UTC))
        if resp.status_code >= 400:
            raise ChannelRejectedRequest(
                f"iso20022 status {order_id}: HTTP {resp.status_code}: {resp.text[:200]}"
            )
        try:
            obs = self._observation_from(resp.content, order_id, "poll")
        except IsoMessageError as exc:
            raise ChannelUnavailable(f"iso20022 status {order_id}: unreadable answer: {exc}") from None
        if obs is None:
            raise ChannelUnavailable(f"iso20022 status {order_id}: the report names other payments only")
        return obs

    def parse_callback_all(self, headers: Mapping[str, str], body: bytes, now: float) -> list[CallbackEvent]:
        """Every transaction of a signed pacs.002 / pacs.004, one event each, in document
        order. Raises CallbackRejected(401) for a bad signature, (400) for anything else."""
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            verify(
                self.config.hmac_secret,
                body,
                lowered.get(SIGNATURE_HEADER.lower()),
                now,
                self.config.tolerance_s,
            )
        except SignatureError as exc:
            raise CallbackRejected(401, str(exc)) from None
        try:
            message = parse_message(body)
        except IsoMessageError as exc:
            raise CallbackRejected(400, str(exc)) from None
        return [
            CallbackEvent(
                event_id=f"{message.msg_id}/{tx.end_to_end_id}",
                order_id=tx.end_to_end_id,
                raw_status=tx.raw_status,
                raw_code=tx.reason_code,
                occurred_at=message.created_at,
            )
            for tx in message.transactions
        ]

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> CallbackEvent:
        """The single transaction of a callback. A message with several transactions is
        refused with 400: a gateway must call ``parse_callback_all`` to take it."""
        events = self.parse_callback_all(headers, body, now)
        if len(events) != 1:
            raise CallbackRejected(
                400, f"message carries {len(events)} transactions; deliver it through parse_callback_all"
            )
        return events[0]

    def ack(self) -> tuple[int, str, bytes]:
        return 200, "application/json", b'{"received":true}'
