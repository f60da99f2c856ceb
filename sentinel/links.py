"""Signed, expiring deep links for notices (R9 self-service entry, R16 progress link,
R22 anti-phishing / sensitive actions).

A link opens one page of the app for one withdrawal of one user::

    https://pay.example/app/bank-cards/fix?wid=W1001&uid=u1&exp=1767225600&sig=<43 chars>

``sig`` is the URL-safe base64 (no padding) of HMAC-SHA256(secret, payload) where the
payload is ``"v1\\n<kind>\\n<wid>\\n<uid>\\n<exp>"``. Changing the page (kind), the
withdrawal, the user or the expiry breaks the signature. A valid track link opens the
progress page of that one withdrawal without a login (gateway/page_progress.py), showing
only the user's view (sentinel/user_view.py): what the notice itself already said. Every
action (fixing a card, uploading documents, the records and the inbox) still asks for the
user's login, and a second confirmation for identity-sensitive actions such as changing a
card (R22): the link never grants more than that read.

Pure: no I/O, the caller passes ``now`` (unix seconds).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

from sentinel.models import ID_PATTERN

# kind -> path under the app's base URL
KINDS: dict[str, str] = {
    "fix_card": "bank-cards/fix",  # R18 one-click fix of card details
    "upload_documents": "withdrawals/documents",  # R18 documents for a review
    "track": "withdrawals/track",  # R16 progress of one withdrawal
}
_KIND_BY_PATH = {path: kind for kind, path in KINDS.items()}
_ID = re.compile(ID_PATTERN)
_PARAMS = ("wid", "uid", "exp", "sig")
MAX_TTL_S = 30 * 86400


class LinkError(ValueError):
    """The link is malformed, tampered with or expired (the message says which)."""


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("the link secret must not be empty")
    return key


def _sign(secret: str | bytes, kind: str, withdrawal_id: str, user_id: str, exp: int) -> str:
    payload = "\n".join(("v1", kind, withdrawal_id, user_id, str(exp))).encode()
    mac = hmac.new(_key(secret), payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def make_link(
    base_url: str,
    kind: str,
    withdrawal_id: str,
    user_id: str,
    secret: str | bytes,
    now: int,
    ttl_s: int,
) -> str:
    """A signed deep link to ``kind``'s page for this withdrawal, valid ``ttl_s`` seconds."""
    if kind not in KINDS:
        raise ValueError(f"unknown link kind {kind!r}; known: {sorted(KINDS)}")
    parts = urlsplit(base_url)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("base_url must be an http(s) URL without query or fragment")
    for name, value in (("withdrawal_id", withdrawal_id), ("user_id", user_id)):
        if not _ID.match(value or ""):
            raise ValueError(f"{name} is not a valid identifier")
    if not isinstance(ttl_s, int) or isinstance(ttl_s, bool) or not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be an integer between 1 and {MAX_TTL_S}")
    exp = int(now) + ttl_s
    query = urlencode(
        {
            "wid": withdrawal_id,
            "uid": user_id,
            "exp": exp,
            "sig": _sign(secret, kind, withdrawal_id, user_id, exp),
        }
    )
    return f"{base_url.rstrip('/')}/{KINDS[kind]}?{query}"


def verify_link(url: str, secret: str | bytes, now: int) -> dict[str, object]:
    """Check a link made by :func:`make_link`.

    Returns ``{"kind", "withdrawal_id", "user_id", "exp"}``; raises :class:`LinkError`
    (a ValueError) saying why the link is refused: malformed, tampered or expired.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        raise LinkError("malformed link") from None
    kind = next((k for path, k in _KIND_BY_PATH.items() if parts.path.rstrip("/").endswith("/" + path)), None)
    if kind is None:
        raise LinkError("unknown link kind (path)")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise LinkError("malformed query string") from None
    names = [name for name, _ in pairs]
    if sorted(names) != sorted(_PARAMS):
        raise LinkError(f"link must carry exactly the parameters {', '.join(_PARAMS)}")
    params = dict(pairs)
    raw_exp = params["exp"]
    if not (raw_exp.isascii() and raw_exp.isdigit()) or str(int(raw_exp)) != raw_exp:
        raise LinkError("exp is not a plain number")
    exp = int(raw_exp)
    expected = _sign(secret, kind, params["wid"], params["uid"], exp)
    if not hmac.compare_digest(expected.encode(), params["sig"].encode()):
        raise LinkError("signature does not match (link tampered with)")
    if now >= exp:
        raise LinkError("link expired")
    return {"kind": kind, "withdrawal_id": params["wid"], "user_id": params["uid"], "exp": exp}
