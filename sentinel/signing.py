"""HMAC-SHA256 signatures of the generic bank protocol (docs/channels/generic.md).

Header format (Stripe-style): ``X-Channel-Signature: t=<unix seconds>,v1=<hex>`` where
``hex = HMAC_SHA256(secret, f"{t}.".encode() + body)``. Pure: the caller passes ``now``.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Channel-Signature"


class SignatureError(ValueError):
    """The signature is missing, malformed, wrong or too old."""


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str | None, now: float, tolerance_s: int = 300) -> int:
    """Return the signed timestamp, or raise SignatureError with the reason."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise SignatureError("malformed signature header")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError("signature header has no valid t=") from None
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError("signature timestamp outside the tolerance window")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", [])):
        raise SignatureError("signature does not match")
    return timestamp
