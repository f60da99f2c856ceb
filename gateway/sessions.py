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

The inbox widget on another site (a third-party frame) gets no SameSite=Lax cookie: it signs
in with a short-lived **widget token** instead (:func:`make_widget_token`), posted once by the
frame itself, and the session then travels in the ``X-Sentinel-Session`` header of the
frame's own requests (and in the ``session`` query parameter of its event stream, which
EventSource cannot give a header), never in a cookie: a header is nothing another site can
make a browser send, so there is no ambient credential to forge requests with.

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


# --------------------------------------------------------------------------- widget tokens

WIDGET_VERSION = "wt1"
#: no widget token lives longer than this: it only opens the widget's frame once
WIDGET_TOKEN_MAX_TTL_S = 600


def _widget_mac(key: bytes, name_b64: str, exp: int) -> str:
    return _b64(hmac.new(key, f"{WIDGET_VERSION}|{name_b64}|{exp}".encode(), hashlib.sha256).digest())


def make_widget_token(user_id: str, secret: SecretStr | str, now: float, ttl_s: int = 300) -> str:
    """A short-lived token that opens the inbox widget for ``user_id`` on another site
    (docs/pages.md): ``wt1.<base64url(user id)>.<expiry>.<HMAC-SHA256>``, keyed with a key
    derived from ``SENTINEL_USER_TOKEN_SECRET`` (label ``widget-token``), so it is neither a
    user token nor a session. The platform's server makes it (or asks the gateway, with the
    user's token, at ``POST /pages/widget/token``) and puts it in the widget's script tag."""
    if not _ID.match(user_id):
        raise ValueError("invalid user id")
    if not 0 < ttl_s <= WIDGET_TOKEN_MAX_TTL_S:
        raise ValueError(f"a widget token lives 1..{WIDGET_TOKEN_MAX_TTL_S} s")
    raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not raw:
        raise ValueError("no user token secret: widget tokens are off")
    name_b64, exp = _b64(user_id.encode()), int(now) + ttl_s
    return f"{WIDGET_VERSION}.{name_b64}.{exp}.{_widget_mac(_key(raw, 'widget-token'), name_b64, exp)}"


def verify_widget_token(token: str, secret: SecretStr | str, now: float) -> tuple[str, int]:
    """(user id, expiry) of a valid widget token; SessionError otherwise (malformed,
    tampered with, expired, or claiming a lifetime past the cap)."""
    raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    parts = (token or "").split(".")
    if not raw or len(token) > 512 or len(parts) != 4 or parts[0] != WIDGET_VERSION or not parts[2].isdigit():
        raise SessionError("malformed widget token")
    _, name_b64, exp_text, mac = parts
    exp = int(exp_text)
    if not hmac.compare_digest(_widget_mac(_key(raw, "widget-token"), name_b64, exp).encode(), mac.encode()):
        raise SessionError("widget token signature does not match")
    if exp <= now:
        raise SessionError("widget token expired")
    if exp > now + WIDGET_TOKEN_MAX_TTL_S + 60:
        raise SessionError("widget token lives too long")
    try:
        user_id = _unb64(name_b64).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise SessionError("malformed widget token") from None
    if not _ID.match(user_id):
        raise SessionError("malformed widget token")
    return user_id, exp
