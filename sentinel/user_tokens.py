"""End-user tokens: what the platform's login service gives a user so the gateway knows
whose data a request may read (docs/gateway.md). Pure: HMAC-SHA256 over the user id and the
issue and expiry times, no clock and no I/O (the caller passes ``now``).

    ut2.<base64url(user id)>.<issued, unix s>.<expiry, unix s>.<mac>
    mac = base64url(HMAC-SHA256(secret, "ut2|<user id>|<issued>|<expiry>"))

The lifetime (expiry - issued) is capped by ``max_ttl`` both when a token is made and when it
is checked, so a leaked token cannot outlive the cap. The gateway verifies them
(gateway/auth.py); ``python -m starter token user U1`` makes one for testing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from pydantic import SecretStr

from sentinel.models import ID_PATTERN

TOKEN_VERSION = "ut2"
#: the default of SENTINEL_USER_TOKEN_MAX_TTL_S: no user token lives longer
MAX_TTL_S = 30 * 86400
#: how far ahead of our clock a token's issue time may be (the login service's clock differs)
ISSUED_AHEAD_S = 300
_ID = re.compile(ID_PATTERN)


class TokenError(ValueError):
    """The user token is malformed, tampered with or expired (the message says which)."""


def _secret_bytes(secret: str | bytes | SecretStr) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("the user token secret must not be empty")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, user_id: str, iat: int, exp: int) -> str:
    return _b64(hmac.new(key, f"{TOKEN_VERSION}|{user_id}|{iat}|{exp}".encode(), hashlib.sha256).digest())


def make_user_token(
    user_id: str, secret: str | bytes | SecretStr, now: float, ttl: float, max_ttl: float = MAX_TTL_S
) -> str:
    """A signed token for ``user_id``, issued at ``now`` (unix seconds), valid for ``ttl``
    seconds; a ``ttl`` over ``max_ttl`` is refused (ValueError), not shortened."""
    if not _ID.match(user_id):
        raise ValueError(f"invalid user id {user_id!r}")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    if ttl > max_ttl:
        raise ValueError(
            f"ttl {ttl:g} s is longer than the cap of {max_ttl:g} s (SENTINEL_USER_TOKEN_MAX_TTL_S)"
        )
    iat = int(now)
    exp = iat + int(ttl)
    mac = _mac(_secret_bytes(secret), user_id, iat, exp)
    return f"{TOKEN_VERSION}.{_b64(user_id.encode())}.{iat}.{exp}.{mac}"


def is_user_token(credential: str) -> bool:
    return credential.startswith(TOKEN_VERSION + ".")


def verify_user_token(
    token: str, secret: str | bytes | SecretStr, now: float, max_ttl: float = MAX_TTL_S
) -> str:
    """The user id of a valid token; raises :class:`TokenError` otherwise (also for a token
    whose lifetime is over ``max_ttl`` or that was issued in the future)."""
    parts = token.split(".")
    if parts[0] == "ut1":
        raise TokenError("user token format ut1 (without issue time) is no longer accepted: get a new token")
    if len(parts) != 5 or parts[0] != TOKEN_VERSION:
        raise TokenError("malformed user token")
    _, uid_b64, iat_text, exp_text, mac = parts
    try:
        user_id = _unb64(uid_b64).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise TokenError("malformed user token") from None
    if not iat_text.isdigit() or not exp_text.isdigit() or not _ID.match(user_id):
        raise TokenError("malformed user token")
    iat, exp = int(iat_text), int(exp_text)
    if not hmac.compare_digest(_mac(_secret_bytes(secret), user_id, iat, exp), mac):
        raise TokenError("user token signature does not match")
    if exp - iat > max_ttl:
        raise TokenError(f"user token lifetime {exp - iat} s is over the cap of {max_ttl:g} s")
    if iat > now + ISSUED_AHEAD_S:
        raise TokenError("user token issued in the future")
    if exp <= now:
        raise TokenError("user token expired")
    return user_id
