"""Authentication and roles of the gateway (issue #3).

Every request except channel callbacks and provider receipts (which carry their own
signatures) sends ``Authorization: Bearer <credential>``. The credential is one of:

- an **API key** of a service or a member of staff. The keys file
  (``SENTINEL_API_KEYS_FILE``, YAML) holds only the SHA-256 of each key with its role and
  name; it is re-read when it changes (an invalid edit is refused, the previous keys stay).
  Roles: ``payment-service``, ``reviewer``, ``supervisor``, ``operator``.
- a **user token** for one end user, made by the platform's login service with
  :func:`sentinel.user_tokens.make_user_token` (the format is there;
  ``python -m starter token user U1`` for testing), keyed with ``SENTINEL_USER_TOKEN_SECRET``;
  it expires, and its lifetime is capped by ``SENTINEL_USER_TOKEN_MAX_TTL_S`` (30 days) both
  when it is made and when it is checked. A user token reads and acts on its own user's data
  only.

Answers: 401 when the credential is missing, unknown, malformed, tampered with or expired;
403 when it is valid but its role may not do this, or it belongs to another user.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.errors import ApiError
from runtime.config_files import HotFile
from sentinel.models import ID_PATTERN
from sentinel.user_tokens import TokenError, is_user_token, verify_user_token

log = logging.getLogger(__name__)

PAYMENT_SERVICE = "payment-service"
REVIEWER = "reviewer"
SUPERVISOR = "supervisor"
OPERATOR = "operator"
USER = "user"
ROLES = (PAYMENT_SERVICE, REVIEWER, SUPERVISOR, OPERATOR)
#: staff who may read any user's records for support
STAFF = (OPERATOR, SUPERVISOR)

_ID = re.compile(ID_PATTERN)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a named service or member of staff with a role, or an end user."""

    name: str
    role: str
    user_id: str | None = None

    @property
    def is_user(self) -> bool:
        return self.role == USER

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"user:{self.user_id}" if self.is_user else self.name


# --------------------------------------------------------------------------- API keys


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_keys(doc: dict[str, Any]) -> dict[str, Principal]:
    """Validate a keys document; sha256 -> principal."""
    entries = doc.get("keys")
    if not isinstance(entries, list):
        raise ValueError("'keys' must be a list")
    out: dict[str, Principal] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"keys[{i}] must be a mapping")
        digest, role, name = str(entry.get("sha256", "")).lower(), entry.get("role"), entry.get("name")
        if not _SHA256.match(digest):
            raise ValueError(f"keys[{i}].sha256 must be 64 hex digits")
        if role not in ROLES:
            raise ValueError(f"keys[{i}].role must be one of {', '.join(ROLES)}")
        if not isinstance(name, str) or not _ID.match(name):
            raise ValueError(f"keys[{i}].name must match {ID_PATTERN}")
        if digest in out:
            raise ValueError(f"keys[{i}]: the same key is listed twice")
        out[digest] = Principal(name=name, role=role)
    return out


class KeyStore:
    """API keys from the keys file, re-read when the file changes."""

    def __init__(self, path: Path | None):
        self._file = HotFile(path, parse_keys) if path else None
        self._doc: dict | None = None
        self._keys: dict[str, Principal] = {}
        self._refresh()  # fail at start-up on a missing or invalid file

    def _refresh(self) -> dict[str, Principal]:
        if self._file is None:
            return {}
        doc = self._file.get()
        if doc is not self._doc:
            self._keys, self._doc = parse_keys(doc), doc
        return self._keys

    def lookup(self, key: str) -> Principal | None:
        try:
            keys = self._refresh()
        except ValueError as exc:  # the file vanished before it was ever read
            log.error("API keys unavailable: %s", exc)
            return None
        return keys.get(hash_key(key))

    def names(self, roles: Iterable[str]) -> set[str]:
        wanted = set(roles)
        return {p.name for p in self._refresh().values() if p.role in wanted}


# --------------------------------------------------------------------------- dependencies

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="an API key (services, staff) or a signed user token (end users); see docs/gateway.md",
)


def _unauthorized(error: str, detail: str) -> ApiError:
    return ApiError(401, error, detail, headers={"WWW-Authenticate": "Bearer"})


def user_of_token(state: Any, credential: str) -> str:
    """The user id of a valid user token, checked with the app's secret, clock and longest
    lifetime (TokenError; ValueError when no secret is configured: user tokens are off)."""
    return verify_user_token(
        credential, state.settings.user_token_secret, state.clock(), state.settings.user_token_max_ttl_s
    )


async def principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    """The authenticated caller, or 401."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized("authentication required", "send Authorization: Bearer <API key or user token>")
    credential = credentials.credentials
    state = request.app.state
    if is_user_token(credential):
        try:
            user_id = user_of_token(state, credential)
        except TokenError as exc:
            raise _unauthorized("invalid user token", str(exc)) from None
        except ValueError:  # no secret configured: user tokens are off
            raise _unauthorized("invalid user token", "user tokens are not enabled") from None
        return Principal(name=f"user:{user_id}", role=USER, user_id=user_id)
    found = state.keys.lookup(credential)
    if found is None:
        raise _unauthorized("invalid API key", "the key is not known")
    return found


def require(*roles: str) -> Callable[..., Any]:
    """A dependency: the caller, if its role is one of ``roles``; 403 otherwise."""

    async def check(who: Principal = Depends(principal)) -> Principal:
        if who.role not in roles:
            raise ApiError(403, "forbidden", f"role {who.role} may not do this (allowed: {', '.join(roles)})")
        return who

    return check


def ensure_user_access(who: Principal, user_id: str, *, others: Iterable[str] = STAFF) -> None:
    """A user token acts on its own user only; the roles in ``others`` on anyone's."""
    if who.is_user:
        if who.user_id != user_id:
            raise ApiError(403, "forbidden", "a user token gives access to its own user's data only")
        return
    if who.role not in set(others):
        raise ApiError(403, "forbidden", f"role {who.role} may not access users' data here")
