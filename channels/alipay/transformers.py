"""Alipay wire types and their mapping to our model: the methods and codes, the
configuration, the payee, yuan amounts, and the parsing of the form-encoded notify.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_to_bytes

from channels.base import (
    CallbackRejected,
    ChannelRejectedRequest,
    ChannelUnavailable,
)
from sentinel.models import ID_PATTERN, WithdrawalRequest
from sentinel.provider_settings import AlipaySettings, secret

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

    @classmethod
    def from_settings(cls, section: AlipaySettings, *, tolerance_s: int, timeout_s: float) -> AlipayConfig:
        """From ``settings.alipay`` (complete: see ``check_complete``); ``tolerance_s`` is
        SENTINEL_CALLBACK_TOLERANCE_S, how far ahead a signed notify may be dated."""
        return cls(
            app_id=section.app_id or "",
            gateway_url=section.gateway_url,
            app_private_key_pem=secret(section.app_private_key),
            alipay_public_key_pem=section.public_key or "",
            notify_tolerance_s=section.notify_tolerance_s,
            notify_future_skew_s=tolerance_s,
            order_title=section.order_title,
            timeout_s=timeout_s,
        )


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
