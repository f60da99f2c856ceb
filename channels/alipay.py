"""Alipay payouts (docs/channels/alipay.md): 单笔转账 ``alipay.fund.trans.uni.transfer``,
``alipay.fund.trans.common.query`` and the ``alipay.fund.trans.order.changed`` message.

Open-platform gateway protocol, public-key mode: every request is a form POST of the
common parameters plus ``biz_content`` (JSON), signed RSA2 (SHA256withRSA, PKCS#1 v1.5)
with the app's private key over ``k=v`` pairs sorted by key (``sign`` and empty values
left out). Every answer is ``{"<method>_response": {...}, "sign": "..."}`` and the sign
covers the raw text of the response node, verified with the Alipay public key.

Decisions (see the docs page for the reasons):

* gateway ``code`` 10000 -> the ``status`` field; 20000, and 40004 with sub_code
  SYSTEM_ERROR or without a sub_code -> ``ChannelUnavailable`` (unknown: query first);
  40004 with a sub_code -> raw status ``FAIL`` with the sub_code as the code;
  40001/40002/40006/20001 -> ``ChannelRejectedRequest``.
* An answer whose signature is missing or wrong is never acted on (``ChannelUnavailable``),
  except the request-error codes above, which cannot mean money moved.
* Query ``40004 ORDER_NOT_EXIST`` -> raw status ``NOT_FOUND`` (the workflow then resends
  the same ``out_biz_no``, which Alipay treats idempotently).

Amounts are ``Decimal`` and sent as a yuan string with two decimals; the payee identity is
resolved from the opaque ``payee_ref`` (a vault token) at send time and never logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_to_bytes, urlencode

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from channels.base import (
    CallbackEvent,
    CallbackRejected,
    ChannelRejectedRequest,
    ChannelUnavailable,
    HttpChannel,
)
from channels.rsa_keys import load_private_key, load_public_key  # noqa: F401  (re-exported)
from sentinel import safe_json
from sentinel.catalogue import Catalogue
from sentinel.models import ID_PATTERN, Observation, WithdrawalRequest

log = logging.getLogger(__name__)

#: Alipay's clock: request ``timestamp`` and ``notify_time`` are Beijing time.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

TRANSFER_METHOD = "alipay.fund.trans.uni.transfer"
QUERY_METHOD = "alipay.fund.trans.common.query"
NOTIFY_METHOD = "alipay.fund.trans.order.changed"

#: Gateway codes that say our request itself is wrong (missing/invalid parameter,
#: insufficient ISV permission, bad app_auth_token): an integration or set-up bug.
REQUEST_ERROR_CODES = frozenset({"40001", "40002", "40006", "20001"})

#: out_biz_no: Alipay accepts letters, digits, "-" and "_", up to 64 characters.
_OUT_BIZ_NO = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ID = re.compile(ID_PATTERN)
_WORD = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gbk", "gb2312": "gb2312", "gb18030": "gb18030"}
#: caps on a notify form, checked before anything else (the signature needs the whole form):
#: a notify has about 20 parameters and biz_content, the longest, is well under 4 KB
MAX_FORM_FIELDS = 64
MAX_FIELD_BYTES = 64 * 1024
_WS = re.compile(r"[ \t\n\r]*")


# --- keys and signatures ------------------------------------------------------------------


def sign_content(params: Mapping[str, Any], exclude: tuple[str, ...] = ("sign",)) -> str:
    """The string Alipay signs: ``k=v`` for every non-empty value, keys sorted, joined by
    ``&``; values raw (not URL-encoded)."""
    return "&".join(
        f"{k}={params[k]}"
        for k in sorted(params)
        if k not in exclude and params[k] is not None and params[k] != ""
    )


def rsa2_sign(key: rsa.RSAPrivateKey, content: str, charset: str = "utf-8") -> str:
    return base64.b64encode(key.sign(content.encode(charset), padding.PKCS1v15(), hashes.SHA256())).decode(
        "ascii"
    )


def rsa2_verify(key: rsa.RSAPublicKey, content: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature.replace(" ", "+"), validate=True)
        key.verify(raw, content, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def top_level_spans(text: str) -> dict[str, tuple[int, int]]:
    """(start, end) of the raw text of every value of a top-level JSON object, so the exact
    bytes Alipay signed can be checked. Raises ValueError for anything but one object
    (duplicate keys included: which one was signed would be ambiguous)."""
    decoder = json.JSONDecoder()
    pos = _WS.match(text, 0).end()
    if text[pos : pos + 1] != "{":
        raise ValueError("not a JSON object")
    pos = _WS.match(text, pos + 1).end()
    spans: dict[str, tuple[int, int]] = {}
    if text[pos : pos + 1] == "}":
        end = pos + 1
    else:
        while True:
            if text[pos : pos + 1] != '"':
                raise ValueError("expected a key")
            key, pos = decoder.raw_decode(text, pos)
            pos = _WS.match(text, pos).end()
            if text[pos : pos + 1] != ":":
                raise ValueError("expected ':'")
            pos = _WS.match(text, pos + 1).end()
            _, value_end = decoder.raw_decode(text, pos)
            if key in spans:
                raise ValueError(f"duplicate key {key!r}")
            spans[key] = (pos, value_end)
            pos = _WS.match(text, value_end).end()
            sep = text[pos : pos + 1]
            if sep == ",":
                pos = _WS.match(text, pos + 1).end()
                continue
            if sep != "}":
                raise ValueError("expected ',' or '}'")
            end = pos + 1
            break
    if text[end:].strip():
        raise ValueError("text after the object")
    return spans


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class AlipayConfig:
    """What the adapter needs (public-key mode, not public-key-certificate mode)."""

    app_id: str
    gateway_url: str  # https://openapi.alipay.com/gateway.do (sandbox: openapi-sandbox.dl.alipaydev.com)
    app_private_key_pem: str = field(repr=False)  # the app's RSA2 private key (PEM or bare base64)
    alipay_public_key_pem: str  # "支付宝公钥" of this app (PEM or bare base64)
    #: oldest signed notify timestamp accepted, seconds (None: no check). Alipay retries a
    #: message 8 times over ~25 h, so this stays wide; replays are stopped by notify_id.
    notify_tolerance_s: int | None = 48 * 3600
    #: how far ahead of our clock a signed notify may be dated, seconds (clock skew; the
    #: settings pass SENTINEL_CALLBACK_TOLERANCE_S). A notify dated later is refused.
    notify_future_skew_s: int = 300
    product_code: str = "TRANS_ACCOUNT_NO_PWD"
    biz_scene: str = "DIRECT_TRANSFER"
    order_title: str = "提现"
    #: identity_type sent with the payee identity the resolver returns by default.
    payee_identity_type: str = "ALIPAY_OPEN_ID"
    timeout_s: float = 10.0


@dataclass(frozen=True)
class AlipayPayee:
    """The payee as Alipay knows it. ``name``, when given, makes Alipay check it against
    the account's real name (required with ALIPAY_LOGON_ID)."""

    identity: str = field(repr=False)
    identity_type: str
    name: str | None = field(default=None, repr=False)


PayeeResolver = Callable[[WithdrawalRequest], Awaitable[AlipayPayee]]


def yuan(amount: Decimal) -> str:
    """A positive Decimal as Alipay's two-decimal yuan string; sub-fen amounts are refused
    (never rounded)."""
    if not isinstance(amount, Decimal):
        raise ChannelRejectedRequest(f"amount must be a Decimal, got {type(amount).__name__}")
    if not amount.is_finite() or amount <= 0:
        raise ChannelRejectedRequest("amount must be a positive number")
    cents = amount.quantize(Decimal("0.01"))
    if cents != amount:
        raise ChannelRejectedRequest(f"amount {amount} has more precision than one fen")
    return f"{cents:.2f}"


# --- the adapter --------------------------------------------------------------------------


class AlipayChannel(HttpChannel):
    name = "alipay"

    def __init__(
        self,
        catalogue: Catalogue,
        config: AlipayConfig,
        *,
        client: httpx.AsyncClient | None = None,
        resolve_payee: PayeeResolver | None = None,
    ):
        super().__init__(catalogue, config, client)
        self._app_key = load_private_key(config.app_private_key_pem)
        self._alipay_key = load_public_key(config.alipay_public_key_pem)
        self._resolve_payee = resolve_payee or self._payee_from_ref

    async def _payee_from_ref(self, request: WithdrawalRequest) -> AlipayPayee:
        return AlipayPayee(identity=request.payee_ref, identity_type=self.config.payee_identity_type)

    # --- requests ---------------------------------------------------------------------

    def signed_params(
        self, method: str, biz: Mapping[str, Any], notify_url: str | None = None
    ) -> dict[str, str]:
        params = {
            "app_id": self.config.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        if notify_url:
            params["notify_url"] = notify_url
        params["sign"] = rsa2_sign(self._app_key, sign_content(params))
        return params

    async def _call(
        self, method: str, biz: Mapping[str, Any], notify_url: str | None = None
    ) -> dict[str, Any]:
        body = urlencode(self.signed_params(method, biz, notify_url), encoding="utf-8").encode("ascii")
        try:
            resp = await self._client.post(
                self.config.gateway_url,
                content=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded;charset=utf-8",
                    "Accept": "application/json",
                },
            )
        except httpx.HTTPError as exc:
            raise ChannelUnavailable(f"{method}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise ChannelUnavailable(f"{method}: HTTP {resp.status_code}")
        if resp.status_code != 200:
            raise ChannelRejectedRequest(f"{method}: HTTP {resp.status_code} from the gateway")
        return self.verified_node(method, resp.content)

    def verified_node(self, method: str, body: bytes) -> dict[str, Any]:
        """The response node of ``method`` after checking its signature."""
        node_key = method.replace(".", "_") + "_response"
        try:
            if safe_json.too_deep(body):
                raise ValueError("nested too deep")
            text = body.decode("utf-8")
            spans = top_level_spans(text)
        except (UnicodeDecodeError, ValueError):
            raise ChannelUnavailable(f"{method}: unreadable answer") from None
        key = node_key if node_key in spans else "error_response" if "error_response" in spans else None
        if key is None:
            raise ChannelUnavailable(f"{method}: answer has no {node_key}")
        start, end = spans[key]
        raw = text[start:end]
        node = json.loads(raw)
        if not isinstance(node, dict):
            raise ChannelUnavailable(f"{method}: {key} is not an object")
        code, sub_code = _text(node.get("code")), _text(node.get("sub_code"))
        sign = json.loads(text[slice(*spans["sign"])]) if "sign" in spans else None
        if not isinstance(sign, str) or not sign:
            if code in REQUEST_ERROR_CODES:
                raise ChannelRejectedRequest(
                    f"{method}: gateway code {code} {sub_code or ''} (unsigned)".rstrip()
                )
            raise ChannelUnavailable(f"{method}: unsigned answer (code {code}); not trusted")
        candidates = [raw] + ([raw.replace("\\/", "/")] if "\\/" in raw else [])
        if not any(rsa2_verify(self._alipay_key, c.encode("utf-8"), sign) for c in candidates):
            raise ChannelUnavailable(f"{method}: answer signature does not verify; not trusted")
        return node

    # --- Channel ----------------------------------------------------------------------

    async def submit(
        self, request: WithdrawalRequest, order_id: str, callback_url: str | None
    ) -> Observation:
        self._check_order_id(order_id)
        if request.currency != "CNY":
            raise ChannelRejectedRequest(f"Alipay pays CNY only, not {request.currency}")
        amount = yuan(request.amount)
        try:
            payee = await self._resolve_payee(request)
        except (ChannelUnavailable, ChannelRejectedRequest):
            raise
        except Exception as exc:  # the vault: nothing was sent, so the result is not unknown
            raise ChannelUnavailable(f"payee lookup failed: {type(exc).__name__}") from None
        payee_info = {"identity": payee.identity, "identity_type": payee.identity_type}
        if payee.name:
            payee_info["name"] = payee.name
        biz = {
            "out_biz_no": order_id,
            "trans_amount": amount,
            "product_code": self.config.product_code,
            "biz_scene": self.config.biz_scene,
            "order_title": self.config.order_title,
            "payee_info": payee_info,
        }
        node = await self._call(TRANSFER_METHOD, biz, callback_url)
        obs = self._transfer_answer(order_id, node)
        log.info("alipay submit order=%s -> %s %s", order_id, obs.raw_status, obs.raw_code or "")
        return obs

    def _transfer_answer(self, order_id: str, node: Mapping[str, Any]) -> Observation:
        code, sub_code = _text(node.get("code")), _text(node.get("sub_code"))
        now = datetime.now(UTC)
        if code == "10000":
            self._check_echo(node, order_id, TRANSFER_METHOD)
            status = _word(node.get("status"), "status", TRANSFER_METHOD) or "10000"
            return self.observe(
                order_id, status, _word(node.get("error_code"), "error_code", TRANSFER_METHOD), "submit", now
            )
        if code == "40004" and sub_code and sub_code != "SYSTEM_ERROR":
            return self.observe(order_id, "FAIL", _word(sub_code, "sub_code", TRANSFER_METHOD), "submit", now)
        raise self._not_a_business_answer(TRANSFER_METHOD, code, sub_code)

    async def query(self, order_id: str) -> Observation:
        self._check_order_id(order_id)
        biz = {
            "out_biz_no": order_id,
            "product_code": self.config.product_code,
            "biz_scene": self.config.biz_scene,
        }
        node = await self._call(QUERY_METHOD, biz)
        code, sub_code = _text(node.get("code")), _text(node.get("sub_code"))
        now = datetime.now(UTC)
        if code == "10000":
            self._check_echo(node, order_id, QUERY_METHOD)
            status = _word(node.get("status"), "status", QUERY_METHOD)
            if status is None:
                raise ChannelUnavailable(f"{QUERY_METHOD}: answer without a status")
            return self.observe(
                order_id, status, _word(node.get("error_code"), "error_code", QUERY_METHOD), "poll", now
            )
        if code == "40004" and sub_code == "ORDER_NOT_EXIST":
            # Not (yet) known to Alipay: never a failure. The workflow resends the same out_biz_no.
            return self.observe(order_id, "NOT_FOUND", None, "poll", now)
        if code == "40004" and sub_code and sub_code != "SYSTEM_ERROR":
            raise ChannelRejectedRequest(f"{QUERY_METHOD}: 40004 {sub_code}")
        raise self._not_a_business_answer(QUERY_METHOD, code, sub_code)

    @staticmethod
    def _not_a_business_answer(method: str, code: str | None, sub_code: str | None) -> Exception:
        if code in REQUEST_ERROR_CODES:
            return ChannelRejectedRequest(f"{method}: gateway code {code} {sub_code or ''}".rstrip())
        # 20000, 40004 SYSTEM_ERROR / without sub_code, anything new: the result is unknown.
        return ChannelUnavailable(f"{method}: gateway code {code} {sub_code or ''}; result unknown".rstrip())

    @staticmethod
    def _check_order_id(order_id: str) -> None:
        if not _OUT_BIZ_NO.match(order_id or ""):
            raise ChannelRejectedRequest(
                f"order id {order_id!r} is not a valid out_biz_no (letters, digits, - and _)"
            )

    @staticmethod
    def _check_echo(node: Mapping[str, Any], order_id: str, method: str) -> None:
        echoed = node.get("out_biz_no")
        if echoed is not None and echoed != order_id:
            raise ChannelUnavailable(f"{method}: answer is about out_biz_no {echoed!r}, not {order_id!r}")

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> CallbackEvent:
        params, charset = _parse_form(headers, body)
        sign = params.get("sign")
        if not sign:
            raise CallbackRejected(401, "notify has no sign")
        if params.get("sign_type", "RSA2") != "RSA2":
            raise CallbackRejected(401, f"sign_type {params.get('sign_type')!r} not accepted; RSA2 only")
        # rsaCheckV1: sign and sign_type are not part of the signed content.
        content = sign_content(params, exclude=("sign", "sign_type"))
        try:
            content_bytes = content.encode(charset)
        except UnicodeEncodeError:
            raise CallbackRejected(400, f"notify does not fit its charset {charset}") from None
        if not rsa2_verify(self._alipay_key, content_bytes, sign):
            raise CallbackRejected(401, "notify signature does not verify")
        if params.get("app_id") != self.config.app_id:
            raise CallbackRejected(401, "notify is for another app_id")

        occurred = _notify_time(params)
        ahead = occurred.timestamp() - now
        if ahead > self.config.notify_future_skew_s:
            raise CallbackRejected(
                401,
                f"notify is dated {ahead:.0f} s in the future (more than the "
                f"{self.config.notify_future_skew_s} s of clock skew allowed)",
            )
        tolerance = self.config.notify_tolerance_s
        if tolerance is not None and -ahead > tolerance:
            raise CallbackRejected(401, "notify timestamp outside the accepted window")
        if params.get("msg_method", NOTIFY_METHOD) != NOTIFY_METHOD:
            raise CallbackRejected(400, f"unexpected msg_method {params.get('msg_method')!r}")
        event_id = params.get("notify_id") or ""
        if not _word_or_id(event_id):
            raise CallbackRejected(400, "notify_id is missing or malformed")
        try:
            biz = safe_json.loads(params.get("biz_content") or "", "biz_content")
        except safe_json.JsonRefused as exc:
            raise CallbackRejected(400, str(exc)) from None
        if not isinstance(biz, dict):
            raise CallbackRejected(400, "biz_content must be a JSON object")
        order_id, status, code = biz.get("out_biz_no"), biz.get("status"), biz.get("error_code")
        if not isinstance(order_id, str) or not _ID.match(order_id):
            raise CallbackRejected(400, "out_biz_no is missing or malformed")
        if not isinstance(status, str) or not _WORD.match(status):
            raise CallbackRejected(400, "status is missing or malformed")
        if code in ("", None):
            code = None
        elif not isinstance(code, str) or not _WORD.match(code):
            raise CallbackRejected(400, "error_code is malformed")
        return CallbackEvent(event_id, order_id, status, code, occurred)

    def ack(self) -> tuple[int, str, bytes]:
        # The message service stops retrying once it reads "success".
        return 200, "text/plain", b"success"


# --- helpers --------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _word(value: Any, what: str, method: str) -> str | None:
    """A status or code from an answer: None when absent, else a short code word."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _WORD.match(value):
        raise ChannelUnavailable(f"{method}: {what} is not a code word")
    return value


def _word_or_id(value: str) -> bool:
    return 0 < len(value) <= 128 and re.fullmatch(r"[A-Za-z0-9_.:-]+", value) is not None


def _raw_pairs(body: bytes) -> list[tuple[bytes, bytes]]:
    """The form's (name, value) pairs, percent-decoded but still in the form's charset:
    one pass over the body, refused at the first field past the caps. (The separators
    ``&``, ``=``, ``+`` and ``%`` never occur inside a GBK or GB18030 character.)"""
    segments = body.split(b"&", MAX_FORM_FIELDS)
    if len(segments) > MAX_FORM_FIELDS:
        raise CallbackRejected(400, f"notify has more than {MAX_FORM_FIELDS} fields")
    pairs = []
    for segment in segments:
        if not segment:
            continue
        name, _, value = segment.partition(b"=")
        if len(segment) > MAX_FIELD_BYTES:
            raise CallbackRejected(400, f"a notify field is longer than {MAX_FIELD_BYTES} bytes")
        pairs.append(
            (unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" ")))
        )
    return pairs


def _charset_of(headers: Mapping[str, str], pairs: list[tuple[bytes, bytes]]) -> str:
    # The form's own (signed) charset field wins over the header.
    declared = next((value.decode("latin-1") for name, value in pairs if name == b"charset"), None)
    if declared is None:
        lowered = {k.lower(): v for k, v in headers.items()}
        m = re.search(r"charset=([A-Za-z0-9_-]+)", lowered.get("content-type", ""))
        declared = m.group(1) if m else "utf-8"
    charset = _CHARSETS.get(declared.strip().lower())
    if charset is None:
        raise CallbackRejected(400, f"unsupported charset {declared!r}")
    return charset


def _parse_form(headers: Mapping[str, str], body: bytes) -> tuple[dict[str, str], str]:
    """The notify's parameters, read once with caps (count and size of the fields)."""
    pairs = _raw_pairs(body)
    charset = _charset_of(headers, pairs)
    params: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        try:
            key, value = raw_name.decode(charset), raw_value.decode(charset)
        except UnicodeDecodeError:
            raise CallbackRejected(400, f"body is not a {charset} form") from None
        if key in params:
            raise CallbackRejected(400, f"parameter {key!r} appears twice")
        params[key] = value
    if not params:
        raise CallbackRejected(400, "empty notify")
    return params, charset


def _notify_time(params: Mapping[str, str]) -> datetime:
    """utc_timestamp (ms, message service) or notify_time (Beijing time)."""
    raw_ms = params.get("utc_timestamp")
    if raw_ms:
        try:
            if not raw_ms.isdigit():
                raise ValueError(raw_ms)
            return datetime.fromtimestamp(int(raw_ms) / 1000, tz=UTC)
        except (ValueError, OverflowError, OSError):
            raise CallbackRejected(400, "utc_timestamp is not a time in milliseconds") from None
    raw = params.get("notify_time")
    if raw:
        try:
            return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
        except ValueError:
            raise CallbackRejected(400, "notify_time is not yyyy-MM-dd HH:mm:ss") from None
    raise CallbackRejected(400, "notify has neither utc_timestamp nor notify_time")
