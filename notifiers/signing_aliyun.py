"""Alibaba Cloud OpenAPI V3 request signature (``ACS3-HMAC-SHA256``). Pure: no I/O, no clock
(the caller passes the date and the nonce).

The scheme, from the official "V3 request structure and signature" page::

    CanonicalRequest = Method \\n CanonicalURI \\n CanonicalQueryString \\n
                       CanonicalHeaders \\n SignedHeaders \\n HashedRequestPayload
    StringToSign     = "ACS3-HMAC-SHA256" \\n hex(sha256(CanonicalRequest))
    Signature        = hex(hmac_sha256(AccessKeySecret, StringToSign))
    Authorization    = ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<h1;h2>,Signature=<sig>

* CanonicalURI: ``/`` for RPC-style APIs (dysmsapi, dyvmsapi), each path segment
  RFC 3986-encoded otherwise.
* CanonicalQueryString: parameters sorted by name, names and values RFC 3986-encoded
  (space -> ``%20``, ``*`` -> ``%2A``, ``~`` kept), ``name=value`` joined by ``&``.
* CanonicalHeaders: ``host``, ``content-type`` and every ``x-acs-*`` header, names lower
  case and sorted, values trimmed, ``name:value\\n`` each. SignedHeaders: their names
  joined by ``;``.
* HashedRequestPayload: hex sha256 of the body (of ``b""`` when there is none), also sent
  as the ``x-acs-content-sha256`` header.

The official worked example (RunInstances, nonce 3156853299f313e23d1673dc12e1703d, date
2023-10-26T10:22:32Z) is reproduced byte for byte in tests/notifiers/test_notifier_signing.py.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

Params = Mapping[str, str] | Iterable[tuple[str, str]]


def percent_encode(value: str) -> str:
    """RFC 3986: only ``A-Z a-z 0-9 - _ . ~`` stay as they are (UTF-8 for the rest)."""
    return quote(value, safe="-_.~")


def _pairs(params: Params | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    return [(str(k), str(v)) for k, v in items]


def canonical_uri(path: str) -> str:
    if not path or path == "/":
        return "/"
    return "/".join(percent_encode(segment) for segment in path.split("/"))


def canonical_query(params: Params | None) -> str:
    """Also the query string that goes on the wire, so what is sent is what is signed."""
    encoded = sorted((percent_encode(k), percent_encode(v)) for k, v in _pairs(params))
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(CanonicalHeaders, SignedHeaders) from every header that takes part in the signature."""
    signed = sorted(
        (name.lower(), str(value).strip())
        for name, value in headers.items()
        if name.lower() in ("host", "content-type") or name.lower().startswith("x-acs-")
    )
    return "".join(f"{n}:{v}\n" for n, v in signed), ";".join(n for n, _ in signed)


def canonical_request(
    method: str, path: str, params: Params | None, headers: Mapping[str, str], payload_hash: str
) -> tuple[str, str]:
    """(CanonicalRequest, SignedHeaders)."""
    header_block, signed_headers = canonical_headers(headers)
    text = "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query(params),
            header_block,
            signed_headers,
            payload_hash,
        )
    )
    return text, signed_headers


def string_to_sign(canonical: str) -> str:
    return f"{ALGORITHM}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"


def signature(access_key_secret: str, to_sign: str) -> str:
    return hmac.new(access_key_secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(access_key_id: str, signed_headers: str, sig: str) -> str:
    return f"{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={sig}"


def acs_date(when: datetime) -> str:
    """``x-acs-date``: ISO 8601 UTC, seconds, ``Z``."""
    if when.tzinfo is None:
        raise ValueError("the signing date needs a time zone")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SignedRequest:
    method: str
    url: str  # endpoint + path + canonical query string
    headers: dict[str, str]  # includes Host and Authorization
    body: bytes
    canonical_request: str
    string_to_sign: str
    signature: str


def sign_request(
    *,
    method: str,
    endpoint: str,
    action: str,
    version: str,
    access_key_id: str,
    access_key_secret: str,
    date: datetime,
    nonce: str,
    path: str = "/",
    params: Params | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    security_token: str | None = None,
) -> SignedRequest:
    """Sign one request. ``endpoint`` is ``scheme://host[:port]``; ``params`` go in the
    query string (RPC style: ``"in": "query"``)."""
    parts = urlsplit(endpoint)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"endpoint must be scheme://host, got {endpoint!r}")
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {
        "host": parts.netloc,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": acs_date(date),
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": payload_hash,
    }
    if content_type:
        headers["content-type"] = content_type
    if security_token:
        headers["x-acs-security-token"] = security_token
    canonical, signed_headers = canonical_request(method, path, params, headers, payload_hash)
    to_sign = string_to_sign(canonical)
    sig = signature(access_key_secret, to_sign)
    headers["authorization"] = authorization(access_key_id, signed_headers, sig)
    query = canonical_query(params)
    url = f"{parts.scheme}://{parts.netloc}{canonical_uri(path)}" + (f"?{query}" if query else "")
    return SignedRequest(method.upper(), url, headers, body, canonical, to_sign, sig)
