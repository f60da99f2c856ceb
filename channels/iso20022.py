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

import logging
import re
import ssl
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Literal
from urllib.parse import quote
from xml.etree import ElementTree as ET
from xml.parsers import expat

import httpx

from channels.base import (
    CallbackEvent,
    CallbackRejected,
    ChannelRejectedRequest,
    ChannelUnavailable,
    HttpChannel,
)
from sentinel.catalogue import Catalogue
from sentinel.currencies import minor_units
from sentinel.models import ID_PATTERN, Observation, WithdrawalRequest
from sentinel.signing import SIGNATURE_HEADER, SignatureError, sign, verify

log = logging.getLogger(__name__)

NS_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
PACS008_NS = NS_PREFIX + "pacs.008.001.08"

#: Accepted incoming namespaces -> message kind.
STATUS_REPORT_NAMESPACES = frozenset(f"{NS_PREFIX}pacs.002.001.{v:02d}" for v in range(8, 13))
RETURN_NAMESPACES = frozenset(f"{NS_PREFIX}pacs.004.001.{v:02d}" for v in range(9, 12))

#: The raw status a pacs.004 PaymentReturn transaction is reported with; iso20022.yaml maps
#: it to RETURNED ("states: pacs.004: RETURNED").
RETURN_STATUS = "pacs.004"

#: Raw status of a query for a payment the bank does not know (404).
NOT_FOUND = "NOT_FOUND"

#: Raw status of an accepted submit whose answer carried no status report (HTTP 202, empty).
RECEIVED = "RCVD"

MAX_BODY_BYTES = 1_000_000
#: a pacs.002 nests about 8 levels deep
MAX_XML_DEPTH = 32
#: the encoding of an XML declaration (``<?xml version="1.0" encoding="GBK"?>``)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\sencoding\s*=\s*["']([^"']*)["']""")

_ID = re.compile(ID_PATTERN)
_MAX35 = re.compile(r"^[^\x00-\x1f]{1,35}$")
_TX_STATUS = re.compile(r"^[A-Z]{4}$")
_REASON = re.compile(r"^[A-Za-z0-9_]{1,35}$")
_AMOUNT = re.compile(r"^\d{1,18}(\.\d{1,5})?$")  # ActiveCurrencyAndAmount: no sign, no exponent
_CCY = re.compile(r"^[A-Z]{3}$")
_BIC = re.compile(r"^[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3})?$")
_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Za-z0-9]{1,30}$")
_UETR_NAMESPACE = uuid.UUID("6f1c3c52-2a8e-4e43-9a43-51d1d1b1c0de")


class IsoMessageError(ValueError):
    """The document is unsafe, not well-formed, or not a message this adapter reads."""


# --- safe XML ---------------------------------------------------------------------------


def parse_xml(body: bytes) -> ET.Element:
    """Parse untrusted XML into an ElementTree element, refusing any DOCTYPE (and with it
    every entity declaration) before anything is expanded. Tags are ``{namespace}local``."""
    if len(body) > MAX_BODY_BYTES:
        raise IsoMessageError(f"document larger than {MAX_BODY_BYTES} bytes")
    if body.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in body:
        # (XML has no NUL character: NUL bytes mean UTF-16 or UTF-32)
        raise IsoMessageError("document is UTF-16 or UTF-32; only UTF-8 is accepted")
    declared = _XML_ENCODING.match(body)
    if declared and declared.group(1).decode("latin-1").strip().lower() not in ("utf-8", "utf8"):
        encoding = declared.group(1).decode("latin-1")[:40]
        raise IsoMessageError(f"document declares encoding {encoding!r}; only UTF-8 is accepted")
    builder = ET.TreeBuilder()
    # The encoding is fixed: whatever else the document says, its bytes are read as UTF-8.
    parser = expat.ParserCreate(encoding="UTF-8", namespace_separator="}")
    depth = 0

    def name(raw: str) -> str:
        return "{" + raw if "}" in raw else raw

    def refuse_doctype(*_args: object) -> None:
        raise IsoMessageError("DOCTYPE is not allowed (no DTDs or entities)")

    def refuse_entity(*_args: object) -> None:
        raise IsoMessageError("entity declarations are not allowed")

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:
            raise IsoMessageError(f"elements nested deeper than {MAX_XML_DEPTH} levels")
        builder.start(name(tag), {name(k): v for k, v in attrs.items()})

    def end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(name(tag))

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_entity
    parser.UnparsedEntityDeclHandler = refuse_entity
    parser.ExternalEntityRefHandler = refuse_entity
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise IsoMessageError(f"not well-formed XML: {exc}") from None
    except IsoMessageError:
        raise
    except ValueError as exc:  # pragma: no cover - expat refusing an encoding it cannot read
        raise IsoMessageError(f"unreadable XML: {exc}") from None
    try:
        return builder.close()
    except AssertionError:  # pragma: no cover - expat already rejects unbalanced documents
        raise IsoMessageError("not well-formed XML") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ns(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _child(el: ET.Element | None, local: str) -> ET.Element | None:
    if el is None:
        return None
    for c in el:
        if _local(c.tag) == local:
            return c
    return None


def _children(el: ET.Element | None, local: str) -> list[ET.Element]:
    return [] if el is None else [c for c in el if _local(c.tag) == local]


def _find(el: ET.Element | None, *path: str) -> ET.Element | None:
    for step in path:
        el = _child(el, step)
    return el


def _text(el: ET.Element | None, *path: str) -> str | None:
    node = _find(el, *path)
    if node is None or node.text is None:
        return None
    text = node.text.strip()
    return text or None


# --- reading pacs.002 / pacs.004 --------------------------------------------------------


@dataclass(frozen=True)
class IsoTransaction:
    """One transaction of a status report or a return, in the message's own words."""

    end_to_end_id: str
    raw_status: str  # TxSts, the group's GrpSts, or RETURN_STATUS for a pacs.004
    reason_code: str | None
    amount: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True)
class IsoMessage:
    kind: Literal["pacs.002", "pacs.004"]
    namespace: str
    msg_id: str
    created_at: datetime
    transactions: tuple[IsoTransaction, ...]


def parse_amount(text: str | None) -> Decimal:
    """An ISO 20022 amount (``1250.00``) as an exact Decimal; never a float."""
    if text is None or not _AMOUNT.match(text.strip()):
        raise IsoMessageError(f"amount {text!r} is not an ISO 20022 decimal amount")
    return Decimal(text.strip())


def _datetime(text: str | None) -> datetime:
    if text is None:
        raise IsoMessageError("GrpHdr/CreDtTm is missing")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise IsoMessageError(f"GrpHdr/CreDtTm {text!r} is not an ISO date-time") from None
    # ISODateTime may be local time without an offset; read it as UTC (documented).
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _reason(infos: list[ET.Element]) -> str | None:
    for info in infos:
        code = _text(info, "Rsn", "Cd") or _text(info, "Rsn", "Prtry")
        if code is not None:
            if not _REASON.match(code):
                raise IsoMessageError(f"reason code {code!r} is not a code")
            return code
    return None


def _status(text: str | None, where: str) -> str:
    if text is None or not _TX_STATUS.match(text):
        raise IsoMessageError(f"{where}: status {text!r} is missing or not a 4-letter code")
    return text


def _end_to_end(text: str | None, where: str) -> str:
    if text is None:
        raise IsoMessageError(f"{where}: OrgnlEndToEndId is missing")
    if not _ID.match(text):
        raise IsoMessageError(f"{where}: OrgnlEndToEndId {text!r} is not an order id")
    return text


def _amount_of(el: ET.Element | None) -> tuple[Decimal | None, str | None]:
    if el is None:
        return None, None
    ccy = el.get("Ccy")
    if ccy is not None and not _CCY.match(ccy):
        raise IsoMessageError(f"currency {ccy!r} is not an ISO 4217 code")
    return parse_amount(el.text), ccy


def parse_message(body: bytes) -> IsoMessage:
    """Read a pacs.002 (.08-.12) or pacs.004 (.09-.11) document. Raises IsoMessageError."""
    root = parse_xml(body)
    namespace = _ns(root.tag)
    if _local(root.tag) != "Document":
        raise IsoMessageError(f"root element is {_local(root.tag)!r}, expected Document")
    if namespace in STATUS_REPORT_NAMESPACES:
        kind, body_name = "pacs.002", "FIToFIPmtStsRpt"
    elif namespace in RETURN_NAMESPACES:
        kind, body_name = "pacs.004", "PmtRtr"
    else:
        raise IsoMessageError(
            f"namespace {namespace or '(none)'!r} is not a supported pacs.002.001.08-12 or pacs.004.001.09-11"
        )
    message = _child(root, body_name)
    if message is None:
        raise IsoMessageError(f"{kind} document has no {body_name}")
    msg_id = _text(message, "GrpHdr", "MsgId")
    if msg_id is None or not _MAX35.match(msg_id):
        raise IsoMessageError("GrpHdr/MsgId is missing or longer than 35 characters")
    created_at = _datetime(_text(message, "GrpHdr", "CreDtTm"))

    txs: list[IsoTransaction] = []
    if kind == "pacs.002":
        groups = _children(message, "OrgnlGrpInfAndSts")
        group_status = next((s for g in groups if (s := _text(g, "GrpSts")) is not None), None)
        entries = _children(message, "TxInfAndSts")
        for i, tx in enumerate(entries, 1):
            where = f"TxInfAndSts #{i}"
            status = _text(tx, "TxSts") or group_status
            amount, ccy = _amount_of(_find(tx, "OrgnlTxRef", "IntrBkSttlmAmt"))
            txs.append(
                IsoTransaction(
                    _end_to_end(_text(tx, "OrgnlEndToEndId"), where),
                    _status(status, where),
                    _reason(_children(tx, "StsRsnInf")),
                    amount,
                    ccy,
                )
            )
        if not entries:
            # A status for the whole group only. We send one transaction per message with
            # MsgId = EndToEndId, so the original message id names the order.
            for i, group in enumerate(groups, 1):
                where = f"OrgnlGrpInfAndSts #{i}"
                status = _text(group, "GrpSts")
                if status is None:
                    continue
                original = _text(group, "OrgnlMsgId")
                if original is None or not _ID.match(original):
                    raise IsoMessageError(f"{where}: OrgnlMsgId is missing or not an order id")
                txs.append(
                    IsoTransaction(original, _status(status, where), _reason(_children(group, "StsRsnInf")))
                )
    else:
        for i, tx in enumerate(_children(message, "TxInf"), 1):
            where = f"TxInf #{i}"
            amount, ccy = _amount_of(_child(tx, "RtrdIntrBkSttlmAmt"))
            txs.append(
                IsoTransaction(
                    _end_to_end(_text(tx, "OrgnlEndToEndId"), where),
                    RETURN_STATUS,
                    _reason(_children(tx, "RtrRsnInf")),
                    amount,
                    ccy,
                )
            )
    if not txs:
        raise IsoMessageError(f"{kind} {msg_id} carries no transaction status")
    return IsoMessage(kind, namespace, msg_id, created_at, tuple(txs))


# --- writing pacs.008 -------------------------------------------------------------------


def format_amount(amount: Decimal, currency: str) -> str:
    """``amount`` with exactly the currency's ISO 4217 minor units (``1250`` EUR ->
    ``1250.00``). Raises ValueError when it has more decimals than the currency allows."""
    if isinstance(amount, (float, bool)) or not isinstance(amount, (Decimal, int)):
        raise ValueError("amount must be a Decimal, never a float")
    amount = Decimal(amount)
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"amount {amount} must be positive")
    exponent = minor_units(currency)
    with localcontext() as ctx:
        ctx.prec = 60
        quantum = Decimal(1).scaleb(-exponent)
        exact = amount.quantize(quantum)
        if exact != amount:
            raise ValueError(f"{amount} {currency} has more than {exponent} decimal places")
    text = f"{exact:f}"
    if not _AMOUNT.match(text):
        raise ValueError(f"{amount} {currency} does not fit an ISO 20022 amount (18 digits)")
    return text


def uetr_for(order_id: str) -> str:
    """A UUIDv4-shaped UETR that is the same for every send of one order."""
    raw = bytearray(uuid.uuid5(_UETR_NAMESPACE, order_id).bytes)
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4 as the XSD pattern requires
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


@dataclass(frozen=True)
class Iso20022Config:
    base_url: str
    #: HMAC-SHA256 secret for X-Channel-Signature, both directions (required even with mTLS:
    #: callbacks reach the gateway through the ingress, which does not check client certs).
    hmac_secret: str
    #: The paying side (our account at the debtor agent).
    debtor_name: str
    debtor_account: str  # IBAN, or another account id (sent as Othr/Id)
    debtor_agent_bic: str
    tolerance_s: int = 300
    timeout_s: float = 10.0
    settlement_method: str = "CLRG"  # INDA / INGA / COVE / CLRG
    charge_bearer: str = "SLEV"  # DEBT / CRED / SHAR / SLEV
    #: CdtrAcct/Id/Othr/SchmeNm/Prtry: how the bank (or its tokenising proxy) reads payee_ref.
    creditor_account_scheme: str = "TOKEN"
    #: Optional mutual TLS for our calls to the bank (PEM paths).
    client_cert: str | None = None
    client_key: str | None = None
    ca_bundle: str | None = None
    submit_path: str = "/payments"
    status_path: str = "/payments/{end_to_end_id}/status"

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("https://", "http://")):
            raise ValueError("Iso20022Config.base_url must be an http(s) URL")
        if not self.hmac_secret:
            raise ValueError("Iso20022Config.hmac_secret is empty")
        if not self.debtor_name or len(self.debtor_name) > 140:
            raise ValueError("Iso20022Config.debtor_name must be 1..140 characters")
        if not self.debtor_account or len(self.debtor_account) > 34:
            raise ValueError("Iso20022Config.debtor_account must be 1..34 characters")
        if not _BIC.match(self.debtor_agent_bic):
            raise ValueError("Iso20022Config.debtor_agent_bic is not a BIC")
        if self.settlement_method not in ("INDA", "INGA", "COVE", "CLRG"):
            raise ValueError("Iso20022Config.settlement_method must be INDA, INGA, COVE or CLRG")
        if self.charge_bearer not in ("DEBT", "CRED", "SHAR", "SLEV"):
            raise ValueError("Iso20022Config.charge_bearer must be DEBT, CRED, SHAR or SLEV")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("Iso20022Config: client_cert and client_key go together")
        if "{end_to_end_id}" not in self.status_path:
            raise ValueError("Iso20022Config.status_path must contain {end_to_end_id}")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for mutual TLS, or None for the default verification."""
        if self.client_cert is None and self.ca_bundle is None:
            return None
        ctx = ssl.create_default_context(cafile=self.ca_bundle)
        if self.client_cert is not None:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx


def build_pacs008(config: Iso20022Config, request: WithdrawalRequest, order_id: str, now: datetime) -> bytes:
    """The pacs.008.001.08 document for one payout. Raises ValueError for values that do
    not fit the message (ids over 35 characters, amounts with too many decimals)."""
    if not _MAX35.match(order_id):
        raise ValueError(f"order id {order_id!r} is longer than 35 characters (EndToEndId is Max35Text)")
    if len(request.payee_ref) > 34:
        raise ValueError("payee_ref is longer than 34 characters (CdtrAcct/Id/Othr/Id is Max34Text)")
    amount = format_amount(request.amount, request.currency)

    def el(parent: ET.Element, local: str, text: str | None = None, **attrs: str) -> ET.Element:
        node = ET.SubElement(parent, local, attrs)
        if text is not None:
            node.text = text
        return node

    def account(parent: ET.Element, value: str, scheme: str | None = None) -> None:
        ident = el(parent, "Id")
        if scheme is None and _IBAN.match(value):
            el(ident, "IBAN", value)
            return
        other = el(ident, "Othr")
        el(other, "Id", value)
        if scheme is not None:
            el(el(other, "SchmeNm"), "Prtry", scheme)

    # Unqualified tags under a default xmlns on the root: every element is in PACS008_NS.
    doc = ET.Element("Document", {"xmlns": PACS008_NS})
    transfer = el(doc, "FIToFICstmrCdtTrf")
    header = el(transfer, "GrpHdr")
    el(header, "MsgId", order_id)
    el(header, "CreDtTm", now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"))
    el(header, "NbOfTxs", "1")
    el(el(header, "SttlmInf"), "SttlmMtd", config.settlement_method)

    tx = el(transfer, "CdtTrfTxInf")
    payment_id = el(tx, "PmtId")
    el(payment_id, "InstrId", order_id)
    el(payment_id, "EndToEndId", order_id)
    el(payment_id, "TxId", order_id)
    el(payment_id, "UETR", uetr_for(order_id))
    el(tx, "IntrBkSttlmAmt", amount, Ccy=request.currency)
    el(tx, "ChrgBr", config.charge_bearer)
    el(el(tx, "Dbtr"), "Nm", config.debtor_name)
    account(el(tx, "DbtrAcct"), config.debtor_account)
    el(el(el(tx, "DbtrAgt"), "FinInstnId"), "BICFI", config.debtor_agent_bic)
    creditor_agent = el(el(tx, "CdtrAgt"), "FinInstnId")
    if _BIC.match(request.bank_code):
        el(creditor_agent, "BICFI", request.bank_code)
    else:
        el(el(creditor_agent, "Othr"), "Id", request.bank_code)
    # The creditor's name and real account are never in our hands (R22): payee_ref is the
    # card vault's token, resolved by the bank or its tokenising proxy.
    el(tx, "Cdtr")
    account(el(tx, "CdtrAcct"), request.payee_ref, config.creditor_account_scheme)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(doc, encoding="unicode").encode("utf-8")


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


__all__ = [
    "Iso20022Channel",
    "Iso20022Config",
    "IsoMessage",
    "IsoMessageError",
    "IsoTransaction",
    "build_pacs008",
    "format_amount",
    "parse_amount",
    "parse_message",
    "parse_xml",
    "uetr_for",
]
