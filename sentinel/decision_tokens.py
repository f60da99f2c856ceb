"""Signed review decisions (issue #11): proof of who decided, checked by the workflow.

A decision moves money, so the workflow applies one only with a **decision token** that
the gateway signs after it has authenticated the reviewer. The token binds the withdrawal,
the reviewer (the authenticated principal, never a free field), the reviewer's role, the
decision, a hash of the reason and documents, a single-use nonce and an expiry::

    dt1.<base64url(claims JSON)>.<base64url(Ed25519 signature of "dt1.<base64url(claims JSON)>")>

The signature is Ed25519 (asymmetric): only the gateway holds the private key
(``SENTINEL_DECISION_SIGNING_KEY``), the worker holds public keys only
(``SENTINEL_DECISION_PUBLIC_KEYS``, several during a rotation, told apart by the key id
``kid`` in the claims). Whoever can reach Temporal directly (the UI, ``temporal workflow
update``) cannot make a token, so cannot decide.

Pure: no I/O, no clock (the caller passes ``now``, the workflow passes ``workflow.now()``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sentinel.models import ID_PATTERN, ReviewDecision

VERSION = "dt1"
#: how long a token stays valid after the gateway signs it (the default of the gateway's setting)
DEFAULT_TTL_S = 600
#: how far ahead of the workflow's clock a token's issue time may be (the gateway's clock differs)
ISSUED_AHEAD_S = 60
#: who may decide: reviewers and supervisors everything, operators manual checks only
DESK_ROLES = ("reviewer", "supervisor", "operator")
MANUAL_CHECK_ONLY = ("operator",)

_ID = re.compile(ID_PATTERN)
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_MAX_TOKEN = 2048


def _load_exception_types() -> None:
    """cryptography's Rust core looks up the class of :class:`InvalidSignature` the first
    time it raises one. Inside Temporal's workflow sandbox that lookup fails and aborts the
    whole worker process (a forged token would stop the worker): raise one here, when this
    module is imported (outside the sandbox: the workflow passes it through), and the class
    is known from then on."""
    try:
        Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key().verify(bytes(64), b"")
    except InvalidSignature:
        pass


_load_exception_types()


class DecisionTokenError(ValueError):
    """The token is missing, malformed, forged, expired, used, or not for this decision."""


@dataclass(frozen=True)
class DecisionClaims:
    kid: str
    withdrawal_id: str
    reviewer: str
    role: str
    decision: str
    digest: str
    nonce: str
    issued: int
    expires: int


# --------------------------------------------------------------------------- keys


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_entries(text: str, what: str) -> list[tuple[str, bytes]]:
    entries = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kid, sep, b64 = part.partition(":")
        if not sep or not _KID.match(kid):
            raise ValueError(
                f"{what}: each key is <key id>:<base64 of 32 bytes>; key ids are letters, digits, _.-"
            )
        try:
            raw = base64.b64decode(b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{what}: key {kid!r} is not base64") from None
        if len(raw) != 32:
            raise ValueError(f"{what}: key {kid!r} must be 32 bytes (Ed25519), got {len(raw)}")
        entries.append((kid, raw))
    if not entries:
        raise ValueError(f"{what}: no key")
    return entries


def parse_signing_key(text: str) -> tuple[str, bytes]:
    """``kid:base64(32-byte Ed25519 seed)`` -> (kid, seed)."""
    entries = _key_entries(text, "decision signing key")
    if len(entries) != 1:
        raise ValueError("decision signing key: exactly one key (the gateway signs with one)")
    return entries[0]


def parse_public_keys(text: str) -> dict[str, str]:
    """``kid:base64(32-byte public key),...`` -> {kid: base64}; several during a rotation."""
    out: dict[str, str] = {}
    for kid, raw in _key_entries(text, "decision public keys"):
        if kid in out:
            raise ValueError(f"decision public keys: key id {kid!r} is listed twice")
        out[kid] = base64.b64encode(raw).decode("ascii")
    return out


def public_key_of(signing_key: str) -> str:
    """The ``kid:base64`` public key that verifies tokens signed with ``signing_key``."""
    kid, seed = parse_signing_key(signing_key)
    raw = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return f"{kid}:{base64.b64encode(raw).decode('ascii')}"


def new_signing_key(kid: str, seed: bytes) -> str:
    """A ``kid:base64`` signing key from 32 random bytes (``os.urandom(32)``)."""
    if not _KID.match(kid) or len(seed) != 32:
        raise ValueError("a key id of letters, digits, _.- and a 32-byte seed")
    return f"{kid}:{base64.b64encode(seed).decode('ascii')}"


# --------------------------------------------------------------------------- tokens


def digest(reason: str, documents: Iterable[str]) -> str:
    """What the reviewer wrote and asked for, bound into the token (SHA-256, base64url)."""
    text = json.dumps({"reason": reason, "documents": list(documents)}, ensure_ascii=False, sort_keys=True)
    return _b64(hashlib.sha256(text.encode("utf-8")).digest())


def sign_decision(
    signing_key: str,
    *,
    withdrawal_id: str,
    reviewer: str,
    role: str,
    decision: str,
    reason: str,
    documents: Iterable[str],
    nonce: str,
    now: float,
    ttl_s: float = DEFAULT_TTL_S,
) -> str:
    """A token for one decision, issued at ``now`` (unix seconds), valid for ``ttl_s``."""
    kid, seed = parse_signing_key(signing_key)
    if not _ID.match(withdrawal_id) or not _ID.match(reviewer):
        raise ValueError("withdrawal id and reviewer must be ids")
    if role not in DESK_ROLES:
        raise ValueError(f"role {role!r} may not decide")
    if not _KID.match(nonce) or len(nonce) < 16:
        raise ValueError("the nonce must be at least 16 characters of letters, digits, _.-")
    if ttl_s <= 0:
        raise ValueError("ttl must be positive")
    claims = {
        "kid": kid,
        "wid": withdrawal_id,
        "rev": reviewer,
        "role": role,
        "dec": decision,
        "h": digest(reason, documents),
        "n": nonce,
        "iat": int(now),
        "exp": int(now) + int(ttl_s),
    }
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    signed = f"{VERSION}.{body}"
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(signed.encode("ascii"))
    return f"{signed}.{_b64(signature)}"


def read_claims(token: str) -> DecisionClaims:
    """The claims of a token, NOT verified (which key to use; what an audit row says)."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN:
        raise DecisionTokenError("malformed decision token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise DecisionTokenError("malformed decision token")
    try:
        raw = json.loads(_unb64(parts[1]).decode("utf-8"))
        claims = DecisionClaims(
            kid=str(raw["kid"]),
            withdrawal_id=str(raw["wid"]),
            reviewer=str(raw["rev"]),
            role=str(raw["role"]),
            decision=str(raw["dec"]),
            digest=str(raw["h"]),
            nonce=str(raw["n"]),
            issued=int(raw["iat"]),
            expires=int(raw["exp"]),
        )
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise DecisionTokenError("malformed decision token") from None
    return claims


def key_is_known(token: str | None, public_keys: Mapping[str, str]) -> bool:
    """Whether ``public_keys`` holds the key the token names (False for no or a bad token)."""
    try:
        return token is not None and read_claims(token).kid in public_keys
    except DecisionTokenError:
        return False


def verify_decision(
    decision: ReviewDecision,
    *,
    withdrawal_id: str,
    public_keys: Mapping[str, str],
    now: datetime,
    used_nonces: Iterable[str] = (),
    manual_check: bool = False,
    unknown_key_ok: bool = False,
) -> DecisionClaims:
    """The claims of ``decision.token`` when it proves this decision; raises
    :class:`DecisionTokenError` saying why not: no token, malformed, unknown key, bad
    signature, expired (against ``now``), another withdrawal, a nonce already used, a
    reviewer, decision, reason or documents other than the signed ones, or a role that may
    not decide this case. With ``unknown_key_ok`` a key missing from ``public_keys`` skips
    the signature (the caller fetches the current keys and verifies again)."""
    token = decision.token
    if not token:
        raise DecisionTokenError("the decision carries no decision token: decide through the gateway")
    claims = read_claims(token)
    public = public_keys.get(claims.kid)
    if public is None and not unknown_key_ok:
        raise DecisionTokenError(f"decision token signed with unknown key {claims.kid!r}")
    if public is not None:
        signed, _, signature = token.rpartition(".")
        try:
            Ed25519PublicKey.from_public_bytes(base64.b64decode(public)).verify(
                _unb64(signature), signed.encode("ascii")
            )
        except (InvalidSignature, binascii.Error, ValueError):
            raise DecisionTokenError("decision token signature does not match") from None
    at = int(now.timestamp())
    if claims.expires <= at:
        raise DecisionTokenError("decision token expired")
    if claims.issued > at + ISSUED_AHEAD_S:
        raise DecisionTokenError("decision token issued in the future")
    if claims.withdrawal_id != withdrawal_id:
        raise DecisionTokenError(
            f"decision token is for withdrawal {claims.withdrawal_id}, not {withdrawal_id}"
        )
    if claims.nonce in set(used_nonces):
        raise DecisionTokenError("decision token already used")
    if claims.reviewer != decision.reviewer:
        raise DecisionTokenError(f"decision token is {claims.reviewer}'s, not {decision.reviewer}'s")
    if claims.decision != decision.decision or claims.digest != digest(decision.reason, decision.documents):
        raise DecisionTokenError("decision token was signed for another decision, reason or documents")
    if claims.role not in DESK_ROLES or (claims.role in MANUAL_CHECK_ONLY and not manual_check):
        raise DecisionTokenError(f"role {claims.role} may not decide this case")
    return claims
