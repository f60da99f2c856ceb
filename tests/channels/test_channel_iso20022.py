"""The ISO 20022 adapter (channels/iso20022.py) against a local bank served by a real
uvicorn on 127.0.0.1: the bank checks our pacs.008 structurally (namespace, element order,
EndToEndId, amount and currency) and the X-Channel-Signature HMAC, and answers pacs.002 /
pacs.004 documents from a script. Callbacks are built here and signed with a test secret."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import ssl
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from channels.base import CallbackRejected, ChannelRejectedRequest, ChannelUnavailable
from channels.iso20022 import (
    PACS008_NS,
    Iso20022Channel,
    Iso20022Config,
    IsoMessageError,
    format_amount,
    parse_amount,
    parse_message,
    uetr_for,
)
from sentinel.catalogue import default_catalogue
from sentinel.models import WithdrawalRequest
from sentinel.signing import SIGNATURE_HEADER, SignatureError, sign, verify
from sentinel.taxonomy import ExceptionCategory, PayoutState
from tests.support.common import free_port
from tests.support.local_server import serve

BANK_SECRET = "iso-test-secret"
NS = "urn:iso:std:iso:20022:tech:xsd:"
_ids = itertools.count(1)

#: The XSD sequence of CdtTrfTxInf (pacs.008.001.08) for the elements we may send.
CDT_TRF_ORDER = [
    "PmtId",
    "PmtTpInf",
    "IntrBkSttlmAmt",
    "IntrBkSttlmDt",
    "SttlmPrty",
    "InstdAmt",
    "XchgRate",
    "ChrgBr",
    "ChrgsInf",
    "InstgAgt",
    "InstdAgt",
    "UltmtDbtr",
    "InitgPty",
    "Dbtr",
    "DbtrAcct",
    "DbtrAgt",
    "DbtrAgtAcct",
    "CdtrAgt",
    "CdtrAgtAcct",
    "Cdtr",
    "CdtrAcct",
    "UltmtCdtr",
    "Purp",
    "RmtInf",
]
MINOR_UNITS = {"EUR": 2, "USD": 2, "JPY": 0, "KWD": 3}
UETR = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}$")


def new_order_id() -> str:
    return f"E2E{int(time.time())}x{next(_ids)}"


def withdrawal(
    order_id: str, amount: str = "1250", currency: str = "EUR", bank_code: str = "COBADEFFXXX"
) -> WithdrawalRequest:
    return WithdrawalRequest(
        withdrawal_id=order_id[:30],
        user_id="U1",
        amount=Decimal(amount),
        currency=currency,
        channel="iso20022",
        bank_code=bank_code,
        card_last4="1234",
        payee_ref="vault:tok_8f2",
    )


# --- documents the bank sends -----------------------------------------------------------


def pacs002(
    txs: list[tuple[str, str | None, str | None]],
    *,
    version: str = "10",
    msg_id: str | None = None,
    created: str = "2026-11-27T10:00:00Z",
    group: tuple[str, str, str | None] | None = None,
) -> bytes:
    """txs: (OrgnlEndToEndId, TxSts, reason code); group: (OrgnlMsgId, GrpSts, reason)."""
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{NS}pacs.002.001.{version}"><FIToFIPmtStsRpt>',
        f"<GrpHdr><MsgId>{msg_id or f'BANK{next(_ids)}'}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>",
    ]
    if group is not None:
        reason = f"<StsRsnInf><Rsn><Cd>{group[2]}</Cd></Rsn></StsRsnInf>" if group[2] else ""
        parts.append(
            f"<OrgnlGrpInfAndSts><OrgnlMsgId>{group[0]}</OrgnlMsgId><OrgnlMsgNmId>pacs.008.001.08</OrgnlMsgNmId>"
            f"<GrpSts>{group[1]}</GrpSts>{reason}</OrgnlGrpInfAndSts>"
        )
    for i, (e2e, status, code) in enumerate(txs):
        parts.append(f"<TxInfAndSts><StsId>S{i}</StsId><OrgnlEndToEndId>{e2e}</OrgnlEndToEndId>")
        if status:
            parts.append(f"<TxSts>{status}</TxSts>")
        if code:
            parts.append(
                f"<StsRsnInf><Orgtr><Nm>Bank</Nm></Orgtr><Rsn><Cd>{code}</Cd></Rsn><AddtlInf>see code</AddtlInf></StsRsnInf>"
            )
        parts.append("</TxInfAndSts>")
    parts.append("</FIToFIPmtStsRpt></Document>")
    return "".join(parts).encode()


def pacs004(
    txs: list[tuple[str, str | None, str, str]],
    *,
    version: str = "09",
    msg_id: str | None = None,
    created: str = "2026-11-28T08:30:00+01:00",
) -> bytes:
    """txs: (OrgnlEndToEndId, return reason code, amount text, currency)."""
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{NS}pacs.004.001.{version}"><PmtRtr>',
        f"<GrpHdr><MsgId>{msg_id or f'RTR{next(_ids)}'}</MsgId><CreDtTm>{created}</CreDtTm><NbOfTxs>{len(txs)}</NbOfTxs>"
        "<SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf></GrpHdr>",
    ]
    for i, (e2e, code, amount, ccy) in enumerate(txs):
        reason = f"<RtrRsnInf><Rsn><Cd>{code}</Cd></Rsn></RtrRsnInf>" if code else ""
        parts.append(
            f"<TxInf><RtrId>R{i}</RtrId><OrgnlEndToEndId>{e2e}</OrgnlEndToEndId>"
            f'<RtrdIntrBkSttlmAmt Ccy="{ccy}">{amount}</RtrdIntrBkSttlmAmt>{reason}</TxInf>'
        )
    parts.append("</PmtRtr></Document>")
    return "".join(parts).encode()


def signed(body: bytes, secret: str = BANK_SECRET, t: int | None = None) -> dict[str, str]:
    return {
        SIGNATURE_HEADER: sign(secret, body, int(time.time()) if t is None else t),
        "Content-Type": "application/xml",
    }


# --- a local bank -----------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def check_pacs008(body: bytes) -> dict[str, Any]:
    """Structural checks a receiving bank makes; returns the fields or raises ValueError."""
    root = ET.fromstring(body)
    if root.tag != f"{{{PACS008_NS}}}Document":
        raise ValueError(f"root {root.tag}")
    for el in root.iter():
        if not el.tag.startswith(f"{{{PACS008_NS}}}"):
            raise ValueError(f"element {el.tag} outside the pacs.008.001.08 namespace")
    (transfer,) = list(root)
    if _local(transfer.tag) != "FIToFICstmrCdtTrf":
        raise ValueError("no FIToFICstmrCdtTrf")
    header, *txs = list(transfer)
    if [_local(c.tag) for c in header] != ["MsgId", "CreDtTm", "NbOfTxs", "SttlmInf"]:
        raise ValueError(f"GrpHdr children {[_local(c.tag) for c in header]}")
    if header[2].text != "1" or len(txs) != 1:
        raise ValueError("one transaction per message")
    dt.datetime.fromisoformat(header[1].text or "")
    (tx,) = txs
    names = [_local(c.tag) for c in tx]
    if names != sorted(names, key=CDT_TRF_ORDER.index):
        raise ValueError(f"CdtTrfTxInf out of XSD order: {names}")
    for required in ("PmtId", "IntrBkSttlmAmt", "ChrgBr", "Dbtr", "DbtrAgt", "CdtrAgt", "Cdtr"):
        if required not in names:
            raise ValueError(f"{required} missing")
    q = lambda path: tx.find("/".join(f"{{{PACS008_NS}}}{p}" for p in path.split("/")))  # noqa: E731
    e2e = q("PmtId/EndToEndId").text
    if not e2e or len(e2e) > 35 or e2e != header[0].text:
        raise ValueError("EndToEndId must be the MsgId, max 35")
    if [_local(c.tag) for c in q("PmtId")] != ["InstrId", "EndToEndId", "TxId", "UETR"]:
        raise ValueError("PmtId order")
    if not UETR.match(q("PmtId/UETR").text or ""):
        raise ValueError("UETR is not a UUIDv4")
    amt = q("IntrBkSttlmAmt")
    ccy, text = amt.get("Ccy"), amt.text or ""
    if ccy not in MINOR_UNITS or not re.fullmatch(r"\d{1,18}(\.\d{1,5})?", text):
        raise ValueError(f"amount {text!r} {ccy!r}")
    decimals = len(text.split(".")[1]) if "." in text else 0
    if decimals != MINOR_UNITS[ccy]:
        raise ValueError(f"{ccy} amount {text} must have {MINOR_UNITS[ccy]} decimals")
    return {
        "e2e": e2e,
        "amount_text": text,
        "amount": Decimal(text),
        "currency": ccy,
        "creditor_account": q("CdtrAcct/Id/Othr/Id").text,
        "creditor_agent": q("CdtrAgt/FinInstnId"),
        "debtor_agent": q("DbtrAgt/FinInstnId/BICFI").text,
    }


class FakeBank:
    def __init__(self) -> None:
        self.received: dict[str, dict[str, Any]] = {}
        self.status: dict[str, bytes] = {}  # e2e -> document the status endpoint answers
        self.script: dict[str, tuple[int, bytes]] = {}  # e2e -> answer to the submit
        self.posts = 0
        self.app = FastAPI()

        def authentic(raw: bytes, request: Request) -> bool:
            try:
                verify(BANK_SECRET, raw, request.headers.get(SIGNATURE_HEADER), time.time())
            except SignatureError:
                return False
            return True

        @self.app.post("/payments")
        async def payments(request: Request) -> Response:
            raw = await request.body()
            self.posts += 1
            if not authentic(raw, request):
                return Response("bad signature", status_code=401)
            if not request.headers.get("content-type", "").startswith("application/xml"):
                return Response("application/xml expected", status_code=415)
            try:
                fields = check_pacs008(raw)
            except (ValueError, ET.ParseError, AttributeError) as exc:
                return Response(f"schema: {exc}", status_code=400)
            e2e = fields["e2e"]
            if e2e in self.received:
                return Response("duplicate EndToEndId", status_code=409)
            fields["callback"] = request.headers.get("x-callback-url")
            self.received[e2e] = fields
            if e2e in self.script:
                status, body = self.script.pop(e2e)
                return Response(body, status_code=status, media_type="application/xml")
            self.status[e2e] = pacs002([(e2e, "ACTC", None)])
            return Response(self.status[e2e], media_type="application/xml")

        @self.app.get("/payments/{e2e}/status")
        async def status(e2e: str, request: Request) -> Response:
            if not authentic(b"", request):
                return Response("bad signature", status_code=401)
            if e2e not in self.status:
                return Response("no such payment", status_code=404)
            return Response(self.status[e2e], media_type="application/xml")


def config(url: str, **overrides: Any) -> Iso20022Config:
    values: dict[str, Any] = dict(
        hmac_secret=BANK_SECRET,
        debtor_name="ACME Payouts Ltd",
        debtor_account="DE89370400440532013000",
        debtor_agent_bic="DEUTDEFFXXX",
    )
    values.update(overrides)
    return Iso20022Config(url, **values)


@pytest.fixture(scope="module")
async def bank():
    fake = FakeBank()
    async with serve(fake.app) as url:
        fake.url = url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture()
async def channel(bank):
    ch = Iso20022Channel(default_catalogue(), config(bank.url))
    yield ch
    await ch.aclose()


def observe(channel: Iso20022Channel, headers: dict[str, str], body: bytes):
    event = channel.parse_callback(headers, body, time.time())
    return event, channel.observe(
        event.order_id, event.raw_status, event.raw_code, "callback", event.occurred_at, event.event_id
    )


# --- submit -----------------------------------------------------------------------------


async def test_submit_sends_a_valid_pacs008(bank, channel):
    order_id = new_order_id()
    obs = await channel.submit(
        withdrawal(order_id, "1250", "EUR"), order_id, "https://sentinel.example/v1/callbacks/iso20022"
    )
    assert obs.source == "submit" and obs.raw_status == "ACTC"
    assert obs.classification.state == PayoutState.SUBMITTED
    got = bank.received[order_id]
    assert (
        got["amount_text"] == "1250.00" and got["amount"] == Decimal("1250.00") and got["currency"] == "EUR"
    )
    assert isinstance(got["amount"], Decimal)
    assert got["creditor_account"] == "vault:tok_8f2"
    assert got["debtor_agent"] == "DEUTDEFFXXX"
    assert got["creditor_agent"][0].text == "COBADEFFXXX"
    assert got["callback"] == "https://sentinel.example/v1/callbacks/iso20022"


@pytest.mark.parametrize(
    ("amount", "currency", "text"), [("1250", "JPY", "1250"), ("1.5", "KWD", "1.500"), ("0.1", "USD", "0.10")]
)
async def test_amounts_carry_the_currency_minor_units(bank, channel, amount, currency, text):
    order_id = new_order_id()
    await channel.submit(withdrawal(order_id, amount, currency), order_id, None)
    assert bank.received[order_id]["amount_text"] == text


async def test_a_bank_code_that_is_not_a_bic_goes_as_other_id(bank, channel):
    order_id = new_order_id()
    await channel.submit(withdrawal(order_id, bank_code="ICBC"), order_id, None)
    agent = bank.received[order_id]["creditor_agent"]
    assert [_local(c.tag) for c in agent] == ["Othr"] and agent[0][0].text == "ICBC"


@pytest.mark.parametrize(
    ("order_id", "amount", "currency"),
    [("E2E-too-many-decimals", "12.345", "EUR"), ("E2E-yen-cents", "10.5", "JPY"), ("E" * 36, "10", "EUR")],
)
async def test_what_does_not_fit_a_pacs008_is_refused_before_sending(
    bank, channel, order_id, amount, currency
):
    posts = bank.posts
    with pytest.raises(ChannelRejectedRequest):
        await channel.submit(withdrawal(order_id, amount, currency), order_id, None)
    assert bank.posts == posts


async def test_resending_the_same_order_asks_the_bank_instead_of_paying_again(bank, channel):
    order_id = new_order_id()
    await channel.submit(withdrawal(order_id), order_id, None)
    bank.status[order_id] = pacs002([(order_id, "ACSP", None)])
    obs = await channel.submit(withdrawal(order_id), order_id, None)  # the bank answers 409
    assert obs.source == "submit" and obs.raw_status == "ACSP"
    assert obs.classification.state == PayoutState.PROCESSING
    assert len([e for e in bank.received if e == order_id]) == 1


async def test_submit_answers(bank, channel):
    accepted = new_order_id()
    bank.script[accepted] = (202, b"")
    assert (await channel.submit(withdrawal(accepted), accepted, None)).raw_status == "RCVD"

    rejected = new_order_id()
    bank.script[rejected] = (422, pacs002([(rejected, "RJCT", "AC04")]))
    obs = await channel.submit(withdrawal(rejected), rejected, None)
    assert (obs.raw_status, obs.raw_code) == ("RJCT", "AC04")
    assert obs.classification.category == ExceptionCategory.ACCOUNT_INFO_ERROR

    broken = new_order_id()
    bank.script[broken] = (503, b"maintenance")
    with pytest.raises(ChannelUnavailable):
        await channel.submit(withdrawal(broken), broken, None)

    refused = new_order_id()
    bank.script[refused] = (400, b"schema validation failed")
    with pytest.raises(ChannelRejectedRequest):
        await channel.submit(withdrawal(refused), refused, None)

    garbled = new_order_id()
    bank.script[garbled] = (200, b"<html>oops</html>")
    with pytest.raises(ChannelUnavailable):
        await channel.submit(withdrawal(garbled), garbled, None)


async def test_a_wrong_secret_is_refused_by_the_bank(bank):
    ch = Iso20022Channel(default_catalogue(), config(bank.url, hmac_secret="not-the-secret"))
    try:
        with pytest.raises(ChannelRejectedRequest, match="401"):
            await ch.submit(withdrawal(new_order_id()), new_order_id(), None)
        with pytest.raises(ChannelRejectedRequest, match="401"):
            await ch.query(new_order_id())
    finally:
        await ch.aclose()


async def test_unreachable_bank_is_unknown():
    port = free_port()
    ch = Iso20022Channel(default_catalogue(), config(f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(ChannelUnavailable):
            await ch.submit(withdrawal("E2E1"), "E2E1", None)
        with pytest.raises(ChannelUnavailable):
            await ch.query("E2E1")
    finally:
        await ch.aclose()


# --- query ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "state", "category"),
    [
        (lambda e: pacs002([(e, "ACSP", None)]), PayoutState.PROCESSING, None),
        (lambda e: pacs002([(e, "ACCC", None)], version="12"), PayoutState.SUCCEEDED, None),
        (
            lambda e: pacs002([(e, "RJCT", "AC04")], version="08"),
            PayoutState.FAILED,
            ExceptionCategory.ACCOUNT_INFO_ERROR,
        ),
        (
            lambda e: pacs002([("OTHER1", "ACCC", None), (e, "PDNG", "TM01")]),
            PayoutState.PROCESSING,
            ExceptionCategory.BANK_DELAY,
        ),
        (
            lambda e: pacs004([(e, "AC04", "1250.00", "EUR")]),
            PayoutState.RETURNED,
            ExceptionCategory.ACCOUNT_INFO_ERROR,
        ),
    ],
)
async def test_query_reads_the_status_report(bank, channel, document, state, category):
    order_id = new_order_id()
    await channel.submit(withdrawal(order_id), order_id, None)
    bank.status[order_id] = document(order_id)
    obs = await channel.query(order_id)
    assert obs.source == "poll" and obs.order_id == order_id
    assert obs.classification.state == state
    assert obs.classification.category == category


async def test_query_of_an_unknown_payment_is_not_found(bank, channel):
    obs = await channel.query(new_order_id())
    assert obs.raw_status == "NOT_FOUND"
    assert obs.classification.state == PayoutState.UNKNOWN  # the workflow resends the same order


async def test_query_answers_that_cannot_be_read_are_unknown(bank, channel):
    order_id = new_order_id()
    bank.status[order_id] = b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"
    with pytest.raises(ChannelUnavailable):
        await channel.query(order_id)
    bank.status[order_id] = pacs002([("SOMEONE_ELSE", "ACCC", None)])
    with pytest.raises(ChannelUnavailable):
        await channel.query(order_id)


# --- callbacks --------------------------------------------------------------------------


def test_pacs002_rjct_ac04_is_failed_account_info(channel):
    body = pacs002([("W1001", "RJCT", "AC04")], msg_id="BANKMSG1", created="2026-11-27T10:00:00+08:00")
    event, obs = observe(channel, signed(body), body)
    assert (event.event_id, event.order_id, event.raw_status, event.raw_code) == (
        "BANKMSG1/W1001",
        "W1001",
        "RJCT",
        "AC04",
    )
    assert event.occurred_at == dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    assert obs.classification.state == PayoutState.FAILED
    assert obs.classification.category == ExceptionCategory.ACCOUNT_INFO_ERROR


@pytest.mark.parametrize("version", ["08", "09", "10", "11", "12"])
def test_pacs002_acsp_is_processing_in_every_supported_version(channel, version):
    body = pacs002([("W1001", "ACSP", None)], version=version)
    _, obs = observe(channel, signed(body), body)
    assert obs.classification.state == PayoutState.PROCESSING


def test_pacs002_accc_is_succeeded(channel):
    body = pacs002([("W1001", "ACCC", None)])
    _, obs = observe(channel, signed(body), body)
    assert obs.classification.state == PayoutState.SUCCEEDED


@pytest.mark.parametrize("version", ["09", "10", "11"])
def test_pacs004_with_ac04_is_returned(channel, version):
    body = pacs004([("W1001", "AC04", "1250.00", "EUR")], version=version, msg_id="RTR77")
    event, obs = observe(channel, signed(body), body)
    assert (event.event_id, event.raw_status, event.raw_code) == ("RTR77/W1001", "pacs.004", "AC04")
    assert event.occurred_at == dt.datetime(2026, 11, 28, 7, 30, tzinfo=dt.UTC)
    assert obs.classification.state == PayoutState.RETURNED
    assert obs.classification.category == ExceptionCategory.ACCOUNT_INFO_ERROR


def test_pacs004_without_a_reason_is_a_plain_return(channel):
    body = pacs004([("W1001", None, "10.00", "EUR")])
    _, obs = observe(channel, signed(body), body)
    assert obs.classification.state == PayoutState.RETURNED
    assert obs.classification.category == ExceptionCategory.RETURNED_AFTER_SUCCESS


def test_prefixed_namespaces_and_naive_times_are_read(channel):
    body = (
        f'<p:Document xmlns:p="{NS}pacs.002.001.09"><p:FIToFIPmtStsRpt><p:GrpHdr><p:MsgId>M1</p:MsgId>'
        "<p:CreDtTm>2026-11-27T10:00:00</p:CreDtTm></p:GrpHdr><p:TxInfAndSts><p:OrgnlEndToEndId>W1001</p:OrgnlEndToEndId>"
        "<p:TxSts>RJCT</p:TxSts><p:StsRsnInf><p:Rsn><p:Prtry>X99</p:Prtry></p:Rsn></p:StsRsnInf></p:TxInfAndSts>"
        "</p:FIToFIPmtStsRpt></p:Document>"
    ).encode()
    event, obs = observe(channel, signed(body), body)
    assert event.raw_code == "X99"  # proprietary: unmapped, goes to a manual check
    assert event.occurred_at == dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
    assert obs.classification.state == PayoutState.FAILED and obs.classification.mapped is False


def test_group_status_only_names_the_order_through_the_original_message_id(channel):
    body = pacs002([], group=("W1001", "RJCT", "FF01"))
    event, obs = observe(channel, signed(body), body)
    assert (event.order_id, event.raw_status, event.raw_code) == ("W1001", "RJCT", "FF01")
    assert obs.classification.category == ExceptionCategory.PLATFORM_ERROR


def test_transaction_without_txsts_takes_the_group_status(channel):
    body = pacs002([("W1001", None, None)], group=("W1001", "ACCC", None))
    event, _ = observe(channel, signed(body), body)
    assert event.raw_status == "ACCC"


def test_several_transactions_need_parse_callback_all(channel):
    body = pacs002([("W1001", "ACCC", None), ("W1002", "RJCT", "AC01")], msg_id="BATCH9")
    with pytest.raises(CallbackRejected) as err:
        channel.parse_callback(signed(body), body, time.time())
    assert err.value.status == 400 and "parse_callback_all" in err.value.reason
    events = channel.parse_callback_all(signed(body), body, time.time())
    assert [(e.event_id, e.order_id, e.raw_status, e.raw_code) for e in events] == [
        ("BATCH9/W1001", "W1001", "ACCC", None),
        ("BATCH9/W1002", "W1002", "RJCT", "AC01"),
    ]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"><FIToFIPmtStsRpt><GrpHdr><MsgId>&lol9;</MsgId>
<CreDtTm>2026-11-27T10:00:00Z</CreDtTm></GrpHdr></FIToFIPmtStsRpt></Document>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"><FIToFIPmtStsRpt><GrpHdr><MsgId>&x;</MsgId>
<CreDtTm>2026-11-27T10:00:00Z</CreDtTm></GrpHdr></FIToFIPmtStsRpt></Document>"""


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (BILLION_LAUGHS, "DOCTYPE"),
        (XXE, "DOCTYPE"),
        (b'<?xml version="1.0"?><!DOCTYPE Document SYSTEM "http://127.0.0.1:9/x.dtd"><Document/>', "DOCTYPE"),
        (b"<Document>&undefined;</Document>", "well-formed"),
        (b"<Document><unclosed></Document>", "well-formed"),
        (b"", "well-formed"),
        (b'<Foo xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"/>', "root"),
        (f'<Document xmlns="{PACS008_NS}"><FIToFICstmrCdtTrf/></Document>'.encode(), "namespace"),
        (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"/>', "namespace"),
        (pacs002([("W1001", "ACCC", None)], version="07"), "namespace"),
        (pacs002([("W1001", "ACCC", None)], version="13"), "namespace"),
        (pacs004([("W1001", "AC04", "1.00", "EUR")], version="08"), "namespace"),
        (b"<Document><FIToFIPmtStsRpt/></Document>", "namespace"),
        (f'<Document xmlns="{NS}pacs.002.001.10"><PmtRtr/></Document>'.encode(), "FIToFIPmtStsRpt"),
        (pacs002([]), "no transaction"),
        (pacs002([("", "ACCC", None)]), "OrgnlEndToEndId"),
        (pacs002([("W 1001/..", "ACCC", None)]), "OrgnlEndToEndId"),
        (pacs002([("W1001", "accepted", None)]), "status"),
        (pacs002([("W1001", None, None)]), "status"),
        (pacs002([("W1001", "RJCT", "AC04; DROP")]), "reason code"),
        (pacs002([("W1001", "ACCC", None)], created="yesterday"), "CreDtTm"),
        (pacs002([("W1001", "ACCC", None)], msg_id="M" * 36), "MsgId"),
        (pacs004([("W1001", "AC04", "1.25e3", "EUR")]), "amount"),
        (pacs004([("W1001", "AC04", "-5.00", "EUR")]), "amount"),
        (pacs004([("W1001", "AC04", "5.00", "euro")]), "currency"),
    ],
)
def test_unsafe_or_malformed_documents_are_400(channel, body, reason):
    with pytest.raises(CallbackRejected) as err:
        channel.parse_callback(signed(body), body, time.time())
    assert err.value.status == 400
    assert reason in err.value.reason


def test_bad_signatures_are_401(channel):
    body = pacs002([("W1001", "ACCC", None)])
    cases = [
        (signed(body, secret="other-secret"), body),
        (signed(body), body.replace(b"ACCC", b"RJCT")),
        (signed(body, t=int(time.time()) - 301), body),
        ({}, body),
        ({SIGNATURE_HEADER: "garbage"}, body),
    ]
    for headers, sent in cases:
        with pytest.raises(CallbackRejected) as err:
            channel.parse_callback(headers, sent, time.time())
        assert err.value.status == 401


def test_signature_is_checked_before_the_xml_is_parsed(channel):
    with pytest.raises(CallbackRejected) as err:
        channel.parse_callback(signed(b"x", secret="other-secret"), BILLION_LAUGHS, time.time())
    assert err.value.status == 401


# --- amounts ----------------------------------------------------------------------------


def test_amounts_are_decimals_never_floats():
    assert parse_amount("1250.00") == Decimal("1250.00") and isinstance(parse_amount("1250.00"), Decimal)
    assert str(parse_amount("1250.00")) == "1250.00"
    message = parse_message(pacs004([("W1001", "AC04", "1250.00", "EUR")]))
    (tx,) = message.transactions
    assert isinstance(tx.amount, Decimal) and tx.amount == Decimal("1250.00") and tx.currency == "EUR"
    for bad in ("1.25e3", "NaN", "Infinity", "1,250.00", " ", "1.123456"):
        with pytest.raises(IsoMessageError):
            parse_amount(bad)
    assert format_amount(Decimal("1250"), "EUR") == "1250.00"
    assert format_amount(Decimal("0.5"), "BHD") == "0.500"
    assert format_amount(Decimal("99999999999999.99"), "USD") == "99999999999999.99"
    with pytest.raises(ValueError):
        format_amount(1250.0, "EUR")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        format_amount(Decimal("1.001"), "EUR")


def test_uetr_is_stable_per_order_and_uuid4_shaped():
    assert uetr_for("W1001") == uetr_for("W1001") != uetr_for("W1002")
    assert UETR.match(uetr_for("W1001"))


# --- transport --------------------------------------------------------------------------


async def test_callbacks_over_http_and_the_ack(channel):
    app = FastAPI()

    @app.post("/v1/callbacks/iso20022")
    async def receive(request: Request) -> Response:
        try:
            events = channel.parse_callback_all(dict(request.headers), await request.body(), time.time())
        except CallbackRejected as rejected:
            return JSONResponse({"error": rejected.reason}, status_code=rejected.status)
        status, content_type, body = channel.ack()
        return Response(
            body, status_code=status, media_type=content_type, headers={"X-Events": str(len(events))}
        )

    async with serve(app) as base, httpx.AsyncClient() as client:
        url = base + "/v1/callbacks/iso20022"
        body = pacs002([("W1", "ACCC", None), ("W2", "ACSP", None)])
        ok = await client.post(url, content=body, headers=signed(body))
        assert ok.status_code == 200 and ok.json() == {"received": True} and ok.headers["x-events"] == "2"
        assert (
            await client.post(url, content=BILLION_LAUGHS, headers=signed(BILLION_LAUGHS))
        ).status_code == 400
        assert (await client.post(url, content=body, headers=signed(body, secret="x"))).status_code == 401


def _cert(subject: str, key, issuer_cert=None, issuer_key=None, *, ca: bool = False, server: bool = False):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
        if server:
            import ipaddress

            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
    return builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())


def _write(path: Path, cert=None, key=None) -> str:
    data = b""
    if cert is not None:
        data += cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        data += key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    path.write_bytes(data)
    return str(path)


async def test_mutual_tls_to_the_bank(tmp_path):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Test Bank CA", ca_key, ca=True)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    server = _cert("bank.test", server_key, ca, ca_key, server=True)
    client = _cert("sentinel", client_key, ca, ca_key)
    ca_file = _write(tmp_path / "ca.pem", ca)
    fake = FakeBank()
    tls = dict(
        ssl_certfile=_write(tmp_path / "server.pem", server),
        ssl_keyfile=_write(tmp_path / "server.key", key=server_key),
        ssl_ca_certs=ca_file,
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )
    async with serve(fake.app, **tls) as url:
        with_cert = Iso20022Channel(
            default_catalogue(),
            config(
                url,
                client_cert=_write(tmp_path / "client.pem", client),
                client_key=_write(tmp_path / "client.key", key=client_key),
                ca_bundle=ca_file,
            ),
        )
        without_cert = Iso20022Channel(default_catalogue(), config(url, ca_bundle=ca_file))
        try:
            order_id = new_order_id()
            assert (await with_cert.submit(withdrawal(order_id), order_id, None)).raw_status == "ACTC"
            with pytest.raises(ChannelUnavailable):
                await without_cert.submit(withdrawal(new_order_id()), new_order_id(), None)
        finally:
            await with_cert.aclose()
            await without_cert.aclose()


def test_config_is_checked():
    with pytest.raises(ValueError):
        config("ftp://bank")
    with pytest.raises(ValueError):
        config("https://bank", hmac_secret="")
    with pytest.raises(ValueError):
        config("https://bank", debtor_agent_bic="not a bic")
    with pytest.raises(ValueError):
        config("https://bank", client_cert="/x.pem")  # without its key
    with pytest.raises(ValueError):
        config("https://bank", settlement_method="CASH")


def test_ack_is_json_received_true(channel):
    assert channel.ack() == (200, "application/json", b'{"received":true}')
