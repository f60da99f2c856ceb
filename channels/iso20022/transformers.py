"""ISO 20022 wire types and their mapping to our model: reading pacs.002 status reports and
pacs.004 returns, writing the pacs.008 credit transfer, the connection's configuration.
"""

from __future__ import annotations

import re
import ssl
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Literal
from xml.etree import ElementTree as ET

from channels.iso20022.safe_xml import (
    IsoMessageError,
    parse_xml,
    xml_child,
    xml_children,
    xml_find,
    xml_local,
    xml_ns,
    xml_text,
)
from sentinel.currencies import minor_units
from sentinel.models import ID_PATTERN, WithdrawalRequest
from sentinel.provider_settings import Iso20022Settings, secret

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


_ID = re.compile(ID_PATTERN)
_MAX35 = re.compile(r"^[^\x00-\x1f]{1,35}$")
_TX_STATUS = re.compile(r"^[A-Z]{4}$")
_REASON = re.compile(r"^[A-Za-z0-9_]{1,35}$")
_AMOUNT = re.compile(r"^\d{1,18}(\.\d{1,5})?$")  # ActiveCurrencyAndAmount: no sign, no exponent
_CCY = re.compile(r"^[A-Z]{3}$")
_BIC = re.compile(r"^[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3})?$")
_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Za-z0-9]{1,30}$")
_UETR_NAMESPACE = uuid.UUID("6f1c3c52-2a8e-4e43-9a43-51d1d1b1c0de")


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
        code = xml_text(info, "Rsn", "Cd") or xml_text(info, "Rsn", "Prtry")
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
    namespace = xml_ns(root.tag)
    if xml_local(root.tag) != "Document":
        raise IsoMessageError(f"root element is {xml_local(root.tag)!r}, expected Document")
    kind: Literal["pacs.002", "pacs.004"]
    if namespace in STATUS_REPORT_NAMESPACES:
        kind, body_name = "pacs.002", "FIToFIPmtStsRpt"
    elif namespace in RETURN_NAMESPACES:
        kind, body_name = "pacs.004", "PmtRtr"
    else:
        raise IsoMessageError(
            f"namespace {namespace or '(none)'!r} is not a supported pacs.002.001.08-12 or pacs.004.001.09-11"
        )
    message = xml_child(root, body_name)
    if message is None:
        raise IsoMessageError(f"{kind} document has no {body_name}")
    msg_id = xml_text(message, "GrpHdr", "MsgId")
    if msg_id is None or not _MAX35.match(msg_id):
        raise IsoMessageError("GrpHdr/MsgId is missing or longer than 35 characters")
    created_at = _datetime(xml_text(message, "GrpHdr", "CreDtTm"))

    txs: list[IsoTransaction] = []
    if kind == "pacs.002":
        groups = xml_children(message, "OrgnlGrpInfAndSts")
        group_status = next((s for g in groups if (s := xml_text(g, "GrpSts")) is not None), None)
        entries = xml_children(message, "TxInfAndSts")
        for i, tx in enumerate(entries, 1):
            where = f"TxInfAndSts #{i}"
            status = xml_text(tx, "TxSts") or group_status
            amount, ccy = _amount_of(xml_find(tx, "OrgnlTxRef", "IntrBkSttlmAmt"))
            txs.append(
                IsoTransaction(
                    _end_to_end(xml_text(tx, "OrgnlEndToEndId"), where),
                    _status(status, where),
                    _reason(xml_children(tx, "StsRsnInf")),
                    amount,
                    ccy,
                )
            )
        if not entries:
            # A status for the whole group only. We send one transaction per message with
            # MsgId = EndToEndId, so the original message id names the order.
            for i, group in enumerate(groups, 1):
                where = f"OrgnlGrpInfAndSts #{i}"
                status = xml_text(group, "GrpSts")
                if status is None:
                    continue
                original = xml_text(group, "OrgnlMsgId")
                if original is None or not _ID.match(original):
                    raise IsoMessageError(f"{where}: OrgnlMsgId is missing or not an order id")
                txs.append(
                    IsoTransaction(
                        original, _status(status, where), _reason(xml_children(group, "StsRsnInf"))
                    )
                )
    else:
        for i, tx in enumerate(xml_children(message, "TxInf"), 1):
            where = f"TxInf #{i}"
            amount, ccy = _amount_of(xml_child(tx, "RtrdIntrBkSttlmAmt"))
            txs.append(
                IsoTransaction(
                    _end_to_end(xml_text(tx, "OrgnlEndToEndId"), where),
                    RETURN_STATUS,
                    _reason(xml_children(tx, "RtrRsnInf")),
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

    @classmethod
    def from_settings(
        cls, section: Iso20022Settings, *, tolerance_s: int, timeout_s: float
    ) -> Iso20022Config:
        """From ``settings.iso20022`` (complete: see ``check_complete``)."""
        return cls(
            base_url=section.base_url or "",
            hmac_secret=secret(section.secret),
            debtor_name=section.debtor_name,
            debtor_account=section.debtor_account or "",
            debtor_agent_bic=section.debtor_agent_bic or "",
            tolerance_s=tolerance_s,
            timeout_s=timeout_s,
        )


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
