"""Tencent Cloud API 3.0 request signature (``TC3-HMAC-SHA256``). Pure: no I/O, no clock
(the caller passes the timestamp).

The scheme, from the official "Signature v3" page::

    CanonicalRequest = Method \\n "/" \\n CanonicalQueryString \\n CanonicalHeaders \\n
                       SignedHeaders \\n hex(sha256(payload))
    StringToSign     = "TC3-HMAC-SHA256" \\n Timestamp \\n Date/service/tc3_request \\n
                       hex(sha256(CanonicalRequest))
    SecretDate    = HMAC_SHA256("TC3" + SecretKey, Date)     # Date: UTC date of Timestamp
    SecretService = HMAC_SHA256(SecretDate, service)
    SecretSigning = HMAC_SHA256(SecretService, "tc3_request")
    Signature     = hex(HMAC_SHA256(SecretSigning, StringToSign))
    Authorization = TC3-HMAC-SHA256 Credential=<SecretId>/<scope>, SignedHeaders=<h1;h2>, Signature=<sig>

CanonicalHeaders: at least ``content-type`` and ``host``; names *and values* lower case and
trimmed, sorted by name, ``name:value\\n`` each. The current docs also sign ``x-tc-action``
(its value lower-cased). For POST the canonical query string is empty.

The official worked examples (cvm DescribeInstances, timestamp 1551113065) are reproduced
in tests/notifiers/test_notifier_signing.py.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

ALGORITHM = "TC3-HMAC-SHA256"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def utc_date(timestamp: int) -> str:
    """The credential-scope date: the UTC (never local) date of the timestamp."""
    return datetime.fromtimestamp(int(timestamp), tz=UTC).strftime("%Y-%m-%d")


def credential_scope(timestamp: int, service: str) -> str:
    return f"{utc_date(timestamp)}/{service}/tc3_request"


def canonical_headers(headers: Mapping[str, str], signed: Sequence[str]) -> tuple[str, str]:
    """(CanonicalHeaders, SignedHeaders) for the header names in ``signed``."""
    lower = {k.lower(): str(v) for k, v in headers.items()}
    names = sorted({s.lower() for s in signed})
    missing = [n for n in names if n not in lower]
    if missing:
        raise ValueError(f"headers to sign are missing: {missing}")
    return "".join(f"{n}:{lower[n].strip().lower()}\n" for n in names), ";".join(names)


def canonical_request(
    method: str, headers: Mapping[str, str], signed: Sequence[str], payload: bytes | str, query: str = ""
) -> tuple[str, str]:
    """(CanonicalRequest, SignedHeaders). ``payload`` is hashed exactly as sent."""
    header_block, signed_headers = canonical_headers(headers, signed)
    text = "\n".join((method.upper(), "/", query, header_block, signed_headers, sha256_hex(payload)))
    return text, signed_headers


def string_to_sign(timestamp: int, scope: str, canonical: str) -> str:
    return f"{ALGORITHM}\n{int(timestamp)}\n{scope}\n{sha256_hex(canonical)}"


def signing_key(secret_key: str, date: str, service: str) -> bytes:
    secret_date = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    secret_service = _hmac(secret_date, service)
    return _hmac(secret_service, "tc3_request")


def signature(secret_key: str, timestamp: int, service: str, to_sign: str) -> str:
    key = signing_key(secret_key, utc_date(timestamp), service)
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(secret_id: str, scope: str, signed_headers: str, sig: str) -> str:
    return f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={signed_headers}, Signature={sig}"


@dataclass(frozen=True)
class SignedRequest:
    headers: dict[str, str]  # Authorization, Content-Type, Host and the X-TC-* headers
    body: bytes
    canonical_request: str
    string_to_sign: str
    signature: str


def sign_request(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    host: str,
    action: str,
    version: str,
    payload: bytes,
    timestamp: int,
    region: str | None = None,
    token: str | None = None,
    language: str | None = None,
    content_type: str = JSON_CONTENT_TYPE,
    sign_action: bool = True,
) -> SignedRequest:
    """Headers for ``POST https://<host>/`` with a JSON body. ``host`` is the Host header
    exactly as sent (``host[:port]``)."""
    headers = {
        "Content-Type": content_type,
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Timestamp": str(int(timestamp)),
        "X-TC-Version": version,
    }
    if region:
        headers["X-TC-Region"] = region
    if token:
        headers["X-TC-Token"] = token
    if language:
        headers["X-TC-Language"] = language
    signed = ["content-type", "host"] + (["x-tc-action"] if sign_action else [])
    canonical, signed_headers = canonical_request("POST", headers, signed, payload)
    scope = credential_scope(timestamp, service)
    to_sign = string_to_sign(timestamp, scope, canonical)
    sig = signature(secret_key, timestamp, service, to_sign)
    headers["Authorization"] = authorization(secret_id, scope, signed_headers, sig)
    return SignedRequest(headers, payload, canonical, to_sign, sig)
