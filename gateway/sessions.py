"""Sessions of the web pages (issue #13, R20, R22): a user token (gateway/auth.py) is
exchanged once for a session cookie, so the token itself never sits in a browser.

The cookie ``sentinel_session`` is signed, not stored: every gateway process can check it::

    s1.<session id>.<base64url(name)>.<role>.<expiry, unix s>.<base64url(HMAC-SHA256(key, "s1|sid|name|role|exp"))>

where name and role are an end user's id and ``user``, or a member of staff's name and role
(gateway/auth.py: an API key signs staff in, for the consoles).

- the key is derived from ``SENTINEL_USER_TOKEN_SECRET`` (label ``page-session``), so a
  session cookie can never pass as a user token nor the other way round;
- the session id is 128 random bits, new at every sign-in (rotated: a cookie planted before
  sign-in is worthless after it);
- it expires at the earlier of the token's own expiry and ``SENTINEL_PAGES_SESSION_TTL_S``;
- HttpOnly, SameSite=Lax, Secure when the page is served over https;
- signing out forgets the session id in this process until the cookie would have expired
  anyway (other processes still accept it until then: the cookie is gone from the browser).

CSRF: every form and every POST of the pages carries ``csrf``, the HMAC of the session id
(:func:`csrf_for`); the sign-in form, before there is a session, uses a random value kept
in the ``sentinel_csrf`` cookie (double submit).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass

from pydantic import SecretStr

from sentinel.models import ID_PATTERN

COOKIE = "sentinel_session"
PRE_CSRF_COOKIE = "sentinel_csrf"
VERSION = "s1"
_ID = re.compile(ID_PATTERN)
_ROLE = re.compile(r"^[a-z-]{1,32}$")


class SessionError(ValueError):
    """The cookie is malformed, tampered with, expired or signed out."""


@dataclass(frozen=True)
class Session:
    sid: str
    name: str  # the user id of an end user, the key's name for staff
    role: str
    exp: int

    @property
    def user_id(self) -> str:
        return self.name


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(secret: SecretStr | str, label: str) -> bytes:
    """A key for ``label`` derived from the secret. Without a secret (user tokens are off)
    a random key of this process: staff sessions then last as long as the process."""
    raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not raw:
        return secrets.token_bytes(32)
    return hmac.new(raw.encode(), f"sentinel/{label}".encode(), hashlib.sha256).digest()


class Sessions:
    """Makes and checks session cookies and CSRF tokens; remembers signed-out sessions."""

    def __init__(self, secret: SecretStr | str, ttl_s: int):
        self._key = _key(secret, "page-session")
        self._csrf_key = _key(secret, "page-csrf")
        self.ttl_s = ttl_s
        self._signed_out: dict[str, int] = {}

    def _mac(self, sid: str, name_b64: str, role: str, exp: int) -> str:
        payload = f"{VERSION}|{sid}|{name_b64}|{role}|{exp}".encode()
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest())

    def start(self, name: str, role: str, until: int | None, now: float) -> tuple[Session, str]:
        """A new session (fresh id) and its cookie value; it ends at ``until`` (the user
        token's expiry) or after the session lifetime, whichever is first."""
        if not _ID.match(name) or not _ROLE.match(role):
            raise ValueError("invalid session name or role")
        sid = secrets.token_urlsafe(16)
        exp = int(now) + self.ttl_s if until is None else min(int(until), int(now) + self.ttl_s)
        name_b64 = _b64(name.encode())
        cookie = f"{VERSION}.{sid}.{name_b64}.{role}.{exp}.{self._mac(sid, name_b64, role, exp)}"
        return Session(sid, name, role, exp), cookie

    def check(self, cookie: str | None, now: float) -> Session:
        if not cookie:
            raise SessionError("not signed in")
        parts = cookie.split(".")
        if len(parts) != 6 or parts[0] != VERSION or not parts[4].isdigit():
            raise SessionError("malformed session")
        _, sid, name_b64, role, exp_text, mac = parts
        exp = int(exp_text)
        if not hmac.compare_digest(self._mac(sid, name_b64, role, exp).encode(), mac.encode()):
            raise SessionError("session signature does not match")
        try:
            name = _unb64(name_b64).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise SessionError("malformed session") from None
        if exp <= now:
            raise SessionError("session expired")
        if sid in self._signed_out:
            raise SessionError("signed out")
        return Session(sid, name, role, exp)

    def end(self, session: Session, now: float) -> None:
        self._signed_out = {s: e for s, e in self._signed_out.items() if e > now}  # forget the expired ones
        self._signed_out[session.sid] = session.exp

    def csrf_for(self, session: Session) -> str:
        return _b64(hmac.new(self._csrf_key, session.sid.encode(), hashlib.sha256).digest())

    def csrf_ok(self, session: Session, sent: str | None) -> bool:
        if not sent:
            return False
        return hmac.compare_digest(self.csrf_for(session), sent)


def new_pre_csrf() -> str:
    return secrets.token_urlsafe(16)


def pre_csrf_ok(cookie: str | None, sent: str | None) -> bool:
    if not cookie or not sent:
        return False
    return hmac.compare_digest(cookie.encode(), sent.encode())


class RateLimit:
    """At most ``per_minute`` events per key in any 60 s (sliding window), in this process."""

    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute = per_minute
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}

    def allow(self, key: str) -> float:
        """0 when allowed (and counted); otherwise the seconds to wait."""
        now = self.clock()
        seen = self._seen.setdefault(key, deque())
        while seen and seen[0] <= now - 60:
            seen.popleft()
        if len(seen) >= self.per_minute:
            return 60 - (now - seen[0])
        seen.append(now)
        if len(self._seen) > 10_000:  # forget idle addresses
            self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - 60}
        return 0.0
