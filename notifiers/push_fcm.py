"""Push through Firebase Cloud Messaging, HTTP v1
(``POST {api_base}/v1/projects/{project_id}/messages:send``), authorised with an OAuth2
access token of a service account.

The access token comes from the service account's own key, no Google library needed:
an RS256-signed JWT (``iss`` = client_email, ``scope`` =
``https://www.googleapis.com/auth/firebase.messaging``, ``aud`` = token_uri, ``iat``,
``exp`` <= 1 h) is exchanged at ``token_uri`` with the JWT-bearer grant
(``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>``); the token is
cached until shortly before ``expires_in`` runs out, and dropped on a 401.

Device tokens come from an injected lookup ``tokens_for(user_id) -> list[str]``; no token,
no reach (``can_reach`` False, the notice activity skips the channel). One message per
device token:

* ``notification``: title = ``rendered.push_title`` (no order number, at most 40
  columns), body = ``rendered.push_body`` (at most 110, support number included). Both
  are lock-screen text: never the amount (checked here).
* ``data``: ``withdrawal_id``, ``stage``, ``link``, ``notice_key`` (for the app's ack).
* ``android.collapse_key`` / ``android.notification.tag`` / ``apns-collapse-id`` = the
  withdrawal id: a newer notice about the same withdrawal replaces the older one on the
  device instead of piling up.

Errors: ``UNREGISTERED`` / 404 and ``SENDER_ID_MISMATCH`` mean the token is dead (reported
to ``on_invalid_token`` so the caller can forget it); 429 ``QUOTA_EXCEEDED``, 5xx
``INTERNAL`` / ``UNAVAILABLE``, timeouts and credential problems are retryable;
``INVALID_ARGUMENT`` is final. One delivered device is a success (a retry would notify the
others twice); the message id is the first message name.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from notifiers.base import DeliveryError, HttpClientOwner, HttpNotifier
from notifiers.routing import http_request, json_body, status_is_retryable
from sentinel.formatting import format_amount
from sentinel.models import NoticeRequest
from sentinel.render import RenderedNotice
from sentinel.taxonomy import Severity

PROVIDER = "fcm"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


# --------------------------------------------------------------------------- JWT + OAuth2


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rs256_jwt(claims: Mapping[str, Any], private_key_pem: str, key_id: str | None = None) -> str:
    """A compact JWS (RFC 7515) signed RSASSA-PKCS1-v1_5 with SHA-256."""
    key = serialization.load_pem_private_key(private_key_pem.encode("utf-8"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the service account key is not an RSA key")
    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if key_id:
        header["kid"] = key_id
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode("utf-8")) for part in (header, dict(claims))
    )
    sig = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(sig)}"


@dataclass(frozen=True)
class ServiceAccount:
    project_id: str
    client_email: str
    private_key: str  # PEM
    private_key_id: str | None = None
    token_uri: str = GOOGLE_TOKEN_URI

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> ServiceAccount:
        """From the JSON key file Google hands out (``type: service_account``)."""
        return cls(
            project_id=str(info["project_id"]),
            client_email=str(info["client_email"]),
            private_key=str(info["private_key"]),
            private_key_id=info.get("private_key_id"),
            token_uri=str(info.get("token_uri") or GOOGLE_TOKEN_URI),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> ServiceAccount:
        return cls.from_info(json.loads(Path(path).read_text(encoding="utf-8")))


class ServiceAccountTokens:
    """OAuth2 access tokens for a service account (JWT-bearer grant), cached until
    ``refresh_margin_s`` before they expire."""

    def __init__(
        self,
        account: ServiceAccount,
        *,
        scope: str = FCM_SCOPE,
        token_uri: str | None = None,
        http: HttpClientOwner,
        clock: Callable[[], float] = time.time,
        lifetime_s: int = 3600,
        refresh_margin_s: float = 300.0,
    ):
        self.account = account
        self.scope = scope
        self.token_uri = token_uri or account.token_uri
        self.http = http
        self.clock = clock
        self.lifetime_s = min(lifetime_s, 3600)  # Google's maximum
        self.refresh_margin_s = refresh_margin_s
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def assertion(self, now: int) -> str:
        claims = {
            "iss": self.account.client_email,
            "scope": self.scope,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + self.lifetime_s,
        }
        return rs256_jwt(claims, self.account.private_key, self.account.private_key_id)

    def invalidate(self) -> None:
        self._token = None
        self._expires_at = 0.0

    async def token(self) -> str:
        async with self._lock:
            if self._token and self.clock() < self._expires_at - self.refresh_margin_s:
                return self._token
            now = int(self.clock())
            response = await http_request(
                self.http.client,
                PROVIDER,
                "POST",
                self.token_uri,
                data={"grant_type": JWT_BEARER, "assertion": self.assertion(now)},
            )
            if response.status_code != 200:
                # a rejected key is a configuration problem of this provider: retryable, so
                # the chain can fail over (and the breaker opens)
                raise DeliveryError(
                    f"fcm: token endpoint answered HTTP {response.status_code}", retryable=True
                )
            data = json_body(response, PROVIDER)
            token = data.get("access_token")
            if not token:
                raise DeliveryError("fcm: token endpoint gave no access_token", retryable=True)
            self._token = str(token)
            self._expires_at = now + float(data.get("expires_in", 3600))
            return self._token


# --------------------------------------------------------------------------- the notifier


@dataclass
class FcmConfig:
    service_account: ServiceAccount | Mapping[str, Any]  # the key file's JSON, or a ServiceAccount
    api_base: str = "https://fcm.googleapis.com"
    token_uri: str | None = None  # overrides the key file's token_uri
    ttl_s: int = 86400
    timeout_s: float = 10.0


def lock_screen_safe(notice: NoticeRequest, *texts: str) -> None:
    """Push text shows on a locked screen: the amount must not appear (the card ending and
    the order number may). Raises a final DeliveryError: a template bug, not a send fault."""
    w = notice.withdrawal
    amounts = {format_amount(w.amount, w.currency, w.locale), f"{w.amount:,}", str(w.amount)}
    # a number standing on its own: "1" must not match inside "card ending 1234"
    alternatives = sorted(amounts, key=len, reverse=True)
    pattern = re.compile("|".join(rf"(?<![\d.,]){re.escape(a)}(?![\d])" for a in alternatives))
    for text in texts:
        if pattern.search(text):
            raise DeliveryError("push text would show the amount on the lock screen", retryable=False)


def push_data(notice: NoticeRequest, rendered: RenderedNotice) -> dict[str, str]:
    return {
        "withdrawal_id": notice.withdrawal.withdrawal_id,
        "stage": notice.stage.value,
        "link": rendered.link,
        "notice_key": notice.key,
    }


class FcmPushNotifier(HttpNotifier):
    channel = "push"
    provider = PROVIDER

    def __init__(
        self,
        cfg: FcmConfig,
        tokens_for: Callable[[str], Sequence[str]],
        *,
        on_invalid_token: Callable[[str, str], object] | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.cfg = cfg
        self.account = (
            cfg.service_account
            if isinstance(cfg.service_account, ServiceAccount)
            else ServiceAccount.from_info(cfg.service_account)
        )
        self.tokens_for = tokens_for
        self.on_invalid_token = on_invalid_token
        self.use_client(client, cfg.timeout_s)
        self.tokens = ServiceAccountTokens(self.account, token_uri=cfg.token_uri, http=self, clock=clock)
        self.url = f"{cfg.api_base.rstrip('/')}/v1/projects/{self.account.project_id}/messages:send"

    def devices(self, notice: NoticeRequest) -> list[str]:
        return list(dict.fromkeys(t for t in self.tokens_for(notice.withdrawal.user_id) if t))

    def can_reach(self, notice: NoticeRequest) -> bool:
        return bool(self.devices(notice))

    def message(self, token: str, notice: NoticeRequest, rendered: RenderedNotice) -> dict[str, Any]:
        wid = notice.withdrawal.withdrawal_id
        urgent = notice.severity.rank >= Severity.HIGH.rank
        return {
            "message": {
                "token": token,
                "notification": {"title": rendered.push_title, "body": rendered.push_body},
                "data": push_data(notice, rendered),
                "android": {
                    "collapse_key": wid,
                    "priority": "HIGH" if urgent else "NORMAL",
                    "ttl": f"{int(self.cfg.ttl_s)}s",
                    "notification": {"tag": wid},
                },
                "apns": {
                    "headers": {"apns-collapse-id": wid, "apns-priority": "10" if urgent else "5"},
                    "payload": {"aps": {"sound": "default", "thread-id": wid}},
                },
            }
        }

    async def _send_one(self, token: str, notice: NoticeRequest, rendered: RenderedNotice) -> str:
        body = self.message(token, notice, rendered)
        for attempt in (1, 2):
            access = await self.tokens.token()
            response = await http_request(
                self.client,
                PROVIDER,
                "POST",
                self.url,
                json=body,
                headers={"authorization": f"Bearer {access}"},
            )
            if response.status_code == 401 and attempt == 1:
                self.tokens.invalidate()  # expired or revoked early: fetch a new one, once
                continue
            break
        if response.status_code == 200:
            name = json_body(response, PROVIDER).get("name")
            if name:
                return str(name)
            raise DeliveryError("fcm: answer without a message name", retryable=True)
        raise self._error(response, token, notice)

    def _error(self, response: httpx.Response, token: str, notice: NoticeRequest) -> DeliveryError:
        status = response.status_code
        try:
            error = response.json().get("error", {})
        except (ValueError, AttributeError):
            error = {}
        codes = {d.get("errorCode") for d in error.get("details", []) if isinstance(d, dict)} - {None}
        code = next(iter(codes), None) or error.get("status") or str(status)
        message = f"fcm: HTTP {status} {code}"
        if code in ("UNREGISTERED", "SENDER_ID_MISMATCH") or status == 404:
            if self.on_invalid_token is not None:
                self.on_invalid_token(notice.withdrawal.user_id, token)
            return DeliveryError(f"{message} (device token is no longer valid)", retryable=False)
        if status_is_retryable(status) or status in (401, 403):
            return DeliveryError(message, retryable=True)
        return DeliveryError(message, retryable=False)

    async def send(self, notice: NoticeRequest, rendered: RenderedNotice) -> str:
        devices = self.devices(notice)
        if not devices:
            raise DeliveryError("fcm: no device token", retryable=False)
        lock_screen_safe(notice, rendered.push_title, rendered.push_body)
        results = await asyncio.gather(
            *(self._send_one(t, notice, rendered) for t in devices), return_exceptions=True
        )
        sent = [r for r in results if isinstance(r, str)]
        if sent:
            return sent[0] if len(sent) == 1 else f"{sent[0]} (+{len(sent) - 1})"
        for r in results:  # nothing delivered: unexpected errors propagate as they are
            if isinstance(r, BaseException) and not isinstance(r, DeliveryError):
                raise r
        errors = [r for r in results if isinstance(r, DeliveryError)]
        retryable = any(e.retryable for e in errors)
        raise DeliveryError("; ".join(str(e) for e in errors), retryable=retryable)
