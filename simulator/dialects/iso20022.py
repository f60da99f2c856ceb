"""The ISO 20022 bank (docs/channels/iso20022.md): takes a pacs.008, answers and calls back
with pacs.002 status reports and pacs.004 returns, every message signed with the shared
HMAC secret (``X-Channel-Signature``, ``sentinel.signing``), as ``Iso20022Channel`` expects.

* ``POST /payments``: one pacs.008 transaction -> pacs.002 of the order's state (200);
  401 bad signature, 400 unreadable or incomplete pacs.008, 422 + RJCT AM05 for a known
  EndToEndId with other fields; script ``http_500`` -> 500, ``unknown`` -> 503 (recorded).
* ``GET /payments/{EndToEndId}/status``: pacs.002, or pacs.004 once RETURNED; 404 unknown;
  503 while the order itself is UNKNOWN (the adapter's "query again").
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from channels.iso20022 import (
    NS_PREFIX,
    RETURN_STATUS,
    IsoMessageError,
    _children,
    _find,
    _local,
    _ns,
    _text,
    parse_amount,
    parse_xml,
    uetr_for,
)
from sentinel.signing import SIGNATURE_HEADER, SignatureError, sign, verify
from simulator.engine import DuplicateOrder
from simulator.events import CallbackEvent, NativeCallback
from simulator.protocol import PayoutRequest, describe_validation_error

if TYPE_CHECKING:
    from simulator.engine import Engine
    from simulator.keys import SimKeys
    from simulator.orders import Order

log = logging.getLogger("simulator")

PACS002_NS = NS_PREFIX + "pacs.002.001.10"
PACS004_NS = NS_PREFIX + "pacs.004.001.09"
PACS008_PREFIX = NS_PREFIX + "pacs.008.001."

#: Canonical status -> (pacs.002 TxSts, or RETURN_STATUS for a pacs.004, or None for no
#: document; reason code sent when the script gives none). UNKNOWN: no callback, and
#: submit/query answer 503 (the adapter's ChannelUnavailable: query again).
STATUS_TABLE: dict[str, tuple[str | None, str | None]] = {
    "ACCEPTED": ("ACTC", None),
    "PROCESSING": ("ACSP", None),  # + the delay's code (AB08, TM01, ED06) as StsRsnInf
    "SUCCEEDED": ("ACCC", None),
    "FAILED": ("RJCT", None),  # + the reason code (AC04, AM02, ...)
    "HELD": ("RJCT", "FR01"),  # RJCT + FR01 is RISK_HOLD: the workflow sends it to review
    "UNKNOWN": (None, None),
    "RETURNED": (RETURN_STATUS, None),  # pacs.004 with RtrRsnInf/Rsn/Cd
}

#: Scenario codes that are not ISO 20022 codes -> the ISO code the bank sends.
CODE_MAP: dict[str, str] = {"RISK": "FR01"}

_BANK_CODE = re.compile(r"[^A-Z0-9_]")


def native(status: str, code: str | None) -> tuple[str | None, str | None]:
    """(TxSts or RETURN_STATUS or None, ISO reason code) of a canonical (status, code)."""
    tx_status, default = STATUS_TABLE[status]
    return tx_status, CODE_MAP.get(code, code) if code else default


# --- documents --------------------------------------------------------------------------


def _el(parent: ET.Element, local: str, text: str | None = None, **attrs: str) -> ET.Element:
    node = ET.SubElement(parent, local, attrs)
    if text is not None:
        node.text = text
    return node


def _reason(parent: ET.Element, info: str, code: str | None, text: str) -> None:
    if code:
        node = _el(parent, info)
        _el(_el(node, "Rsn"), "Cd", code)
        _el(node, "AddtlInf", text[:105])


def _serialise(doc: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(doc, encoding="unicode").encode("utf-8")


def document(
    e2e: str, n: dict[str, str], status: str, code: str | None, text: str, msg_id: str, at: datetime
) -> bytes | None:
    """The pacs.002 (or pacs.004 for RETURNED) reporting ``status``/``code`` for payment
    ``e2e`` (``n``: its MsgId, UETR, amount, currency); None for UNKNOWN (no document)."""
    tx_status, reason = native(status, code)
    if tx_status is None:
        return None
    created = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    if tx_status == RETURN_STATUS:
        doc = ET.Element("Document", {"xmlns": PACS004_NS})
        body = _el(doc, "PmtRtr")
        header = _el(body, "GrpHdr")
        _el(header, "MsgId", msg_id)
        _el(header, "CreDtTm", created)
        _el(header, "NbOfTxs", "1")
        _el(_el(header, "SttlmInf"), "SttlmMtd", "CLRG")
        tx = _el(body, "TxInf")
        _el(tx, "RtrId", msg_id)
        group = _el(tx, "OrgnlGrpInf")
        _el(group, "OrgnlMsgId", n["MsgId"])
        _el(group, "OrgnlMsgNmId", "pacs.008.001.08")
        _el(tx, "OrgnlEndToEndId", e2e)
        _el(tx, "OrgnlUETR", n["UETR"])
        _el(tx, "RtrdIntrBkSttlmAmt", n["amount"], Ccy=n["currency"])
        _reason(tx, "RtrRsnInf", reason, text)
        return _serialise(doc)
    doc = ET.Element("Document", {"xmlns": PACS002_NS})
    body = _el(doc, "FIToFIPmtStsRpt")
    header = _el(body, "GrpHdr")
    _el(header, "MsgId", msg_id)
    _el(header, "CreDtTm", created)
    group = _el(body, "OrgnlGrpInfAndSts")
    _el(group, "OrgnlMsgId", n["MsgId"])
    _el(group, "OrgnlMsgNmId", "pacs.008.001.08")
    tx = _el(body, "TxInfAndSts")
    _el(tx, "OrgnlEndToEndId", e2e)
    _el(tx, "OrgnlUETR", n["UETR"])
    _el(tx, "TxSts", tx_status)
    _reason(tx, "StsRsnInf", reason, text)
    _el(_el(tx, "OrgnlTxRef"), "IntrBkSttlmAmt", n["amount"], Ccy=n["currency"])
    return _serialise(doc)


class Pacs008Error(ValueError):
    """The pacs.008 is unreadable or lacks what the bank needs; the message is the 400 reason."""


def read_pacs008(body: bytes, callback_url: str | None) -> tuple[PayoutRequest, dict[str, str]]:
    """The payout of a pacs.008 (one transaction) and the bank's bookkeeping of it."""
    try:
        root = parse_xml(body)
    except IsoMessageError as exc:
        raise Pacs008Error(str(exc)) from None
    namespace = _ns(root.tag) or "(no namespace)"
    if _local(root.tag) != "Document" or not namespace.startswith(PACS008_PREFIX):
        raise Pacs008Error(f"expected a pacs.008.001 Document, got {_local(root.tag)!r} in {namespace!r}")
    transfer = _find(root, "FIToFICstmrCdtTrf")
    txs = _children(transfer, "CdtTrfTxInf")
    if transfer is None or len(txs) != 1:
        raise Pacs008Error(f"expected exactly one CdtTrfTxInf, found {len(txs)}")
    (tx,) = txs
    e2e = _text(tx, "PmtId", "EndToEndId")
    if e2e is None:
        raise Pacs008Error("CdtTrfTxInf/PmtId/EndToEndId is missing")
    amount_el = _find(tx, "IntrBkSttlmAmt")
    currency = amount_el.get("Ccy") if amount_el is not None else None
    if amount_el is None or not currency:
        raise Pacs008Error("CdtTrfTxInf/IntrBkSttlmAmt with Ccy is missing")
    try:
        amount = f"{parse_amount(amount_el.text):f}"
    except IsoMessageError as exc:
        raise Pacs008Error(str(exc)) from None
    account = _text(tx, "CdtrAcct", "Id", "IBAN") or _text(tx, "CdtrAcct", "Id", "Othr", "Id")
    if account is None:
        raise Pacs008Error("CdtTrfTxInf/CdtrAcct/Id (IBAN or Othr/Id) is missing")
    if not callback_url:
        raise Pacs008Error("X-Callback-Url header is missing: where should the pacs.002 go?")
    agent = (
        _text(tx, "CdtrAgt", "FinInstnId", "BICFI") or _text(tx, "CdtrAgt", "FinInstnId", "Othr", "Id") or ""
    )
    bank_code = _BANK_CODE.sub("_", agent.upper())[:16]
    try:
        request = PayoutRequest(
            order_id=e2e,
            amount=amount,
            currency=currency,
            bank_code=bank_code if len(bank_code) >= 2 else "ISO",
            payee_ref=account,
            card_last4=None,
            callback_url=callback_url,
        )
    except ValidationError as exc:
        raise Pacs008Error(describe_validation_error(exc)) from None
    header = _find(transfer, "GrpHdr")
    bookkeeping = {
        "MsgId": _text(header, "MsgId") or e2e,
        "UETR": _text(tx, "PmtId", "UETR") or uetr_for(e2e),
        "amount": (amount_el.text or "").strip(),  # as sent, with the currency's minor units
        "currency": currency,
    }
    return request, bookkeeping


# --- the dialect ------------------------------------------------------------------------


def _error(status_code: int, error: str, reason: str) -> JSONResponse:
    return JSONResponse({"error": error, "reason": reason}, status_code=status_code)


class IsoDialect:
    name = "iso20022"

    def __init__(self, keys: SimKeys, tolerance_s: int = 300) -> None:
        self.secret = keys.iso_secret
        self.tolerance_s = tolerance_s

    def _signed(self, body: bytes, status_code: int = 200) -> Response:
        headers = {SIGNATURE_HEADER: sign(self.secret, body, int(time.time()))}
        return Response(body, status_code=status_code, media_type="application/xml", headers=headers)

    def _denied(self, request: Request, body: bytes) -> JSONResponse | None:
        try:
            verify(self.secret, body, request.headers.get(SIGNATURE_HEADER), time.time(), self.tolerance_s)
        except SignatureError as exc:
            log.info("iso20022 reject 401 %s %s: %s", request.method, request.url.path, exc)
            return _error(401, "unauthorized", str(exc))
        return None

    def _report(self, order: Order) -> Response:
        """The order's current state as a signed document, 503 while it is UNKNOWN."""
        msg_id = "RPT" + secrets.token_hex(8)
        now = datetime.now(UTC)
        body = document(order.order_id, order.native, order.status, order.code, order.message, msg_id, now)
        if body is None:
            return _error(503, "unavailable", "payment status not known yet, query again")
        return self._signed(body)

    def router(self, engine: Engine) -> APIRouter:
        router = APIRouter()

        @router.post("/payments")
        async def submit(request: Request) -> Response:
            body = await request.body()
            if (denied := self._denied(request, body)) is not None:
                return denied
            try:
                payout, bookkeeping = read_pacs008(body, request.headers.get("X-Callback-Url"))
            except Pacs008Error as exc:
                log.info("iso20022 reject 400 POST /payments: %s", exc)
                return _error(400, "bad_request", str(exc))
            try:
                order, created = engine.submit(payout, dialect=self.name)
            except DuplicateOrder:
                log.info(
                    "iso20022 submit %s: EndToEndId known with other fields -> RJCT AM05", payout.order_id
                )
                reason, msg_id = "EndToEndId already used with other fields", "RPT" + secrets.token_hex(8)
                now = datetime.now(UTC)
                doc = document(payout.order_id, bookkeeping, "FAILED", "AM05", reason, msg_id, now)
                return self._signed(doc or b"", 422)
            if created:
                order.native.update(bookkeeping)
                if order.script.submit == "http_500":
                    return _error(500, "internal_error", "simulated system error")
                if order.script.submit == "unknown":
                    return _error(
                        503, "unavailable", "simulated timeout: payment outcome unknown, query its status"
                    )
            return self._report(order)

        @router.get("/payments/{end_to_end_id}/status")
        async def status(end_to_end_id: str, request: Request) -> Response:
            if (denied := self._denied(request, b"")) is not None:
                return denied
            order = engine.get(end_to_end_id)
            if order is None or order.dialect != self.name:
                return _error(404, "not_found", f"no payment with EndToEndId {end_to_end_id}")
            return self._report(order)

        return router

    def callback(self, order: Order, event: CallbackEvent, now: float) -> NativeCallback | None:
        """A signed pacs.002 / pacs.004 with ``MsgId = event_id``: a replay is the same message."""
        body = document(
            order.order_id,
            order.native,
            event.status,
            event.code,
            event.message,
            event.event_id,
            event.occurred_at,
        )
        if body is None:
            return None
        headers = {
            "Content-Type": "application/xml; charset=utf-8",
            SIGNATURE_HEADER: sign(self.secret, body, int(now)),
        }
        return NativeCallback(order.request.callback_url, headers, body)
