"""SMS through Twilio (``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, HTTP Basic
``AccountSid:AuthToken``, form fields ``To``, ``From`` or ``MessagingServiceSid``, ``Body``,
``StatusCallback``). The body is ``rendered.short`` (one SMS segment with
the brand tag, short link and support number; docs/notices.md).

Exactly-once: Twilio's Messages API takes no idempotency key, so the guard is the delivery
row the notice activity claims before sending. The notice key still reaches Twilio: it is
appended to the ``StatusCallback`` URL (``?notice_key=...``), so every status callback maps
back to exactly one notice. Callbacks are authenticated with :func:`verify_signature`
(``X-Twilio-Signature`` = base64 HMAC-SHA1 over the full URL followed by the POST
parameters sorted by name, each as name + value, keyed with the auth token).

Errors: 201 -> ``sid``. 429, 5xx, timeouts, 401/403/404 (credentials or account: another
provider may work) are retryable; a 400 for a number that is invalid, not mobile or
unsubscribed (21211, 21214, 21217, 21401, 21421, 21610, 21614) is final, and so is any
other 400 (the request itself is wrong).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from notifiers.base import DeliveryError, Notifier
from notifiers.routing import http_request, json_body, status_is_retryable
from sentinel.models import NoticeRequest
from sentinel.render import RenderedNotice

PROVIDER = "twilio"
API_VERSION = "2010-04-01"
RECIPIENT_ERROR_CODES = frozenset({21211, 21214, 21217, 21401, 21421, 21610, 21614})


# --------------------------------------------------------------------------- callback signatures


def signature(auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> str:
    """``X-Twilio-Signature`` for a request to ``url`` (exactly as configured, query string
    included) with POST parameters ``params``."""
    items = params.items() if isinstance(params, Mapping) else params
    data = url + "".join(f"{k}{v}" for k, v in sorted(items, key=lambda kv: (kv[0], kv[1])))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(
    auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]], header: str | None
) -> bool:
    """Constant-time check of an ``X-Twilio-Signature`` header (status callbacks)."""
    if not header:
        return False
    return hmac.compare_digest(signature(auth_token, url, params), header)


def with_notice_key(url: str, key: str) -> str:
    """The status-callback URL carrying the notice key."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [("notice_key", key)]
    return urlunsplit(parts._replace(query=urlencode(query)))


# --------------------------------------------------------------------------- shared client


@dataclass
class TwilioConfig:
    account_sid: str
    auth_token: str
    from_number: str | None = None  # E.164 sender, or
    messaging_service_sid: str | None = None  # a Messaging Service (SMS only)
    api_base: str = "https://api.twilio.com"
    status_callback_url: str | None = None  # our public callback endpoint; notice_key is appended
    exclude_prefixes: tuple[str, ...] = ()  # e.g. ("+86",) when mainland numbers go elsewhere only
    timeout_s: float = 10.0


def twilio_error(response: httpx.Response, what: str) -> DeliveryError:
    try:
        data = response.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    code = data.get("code")
    message = " ".join(
        f"twilio {what}: HTTP {response.status_code} {code or ''} {data.get('message', '')}".split()
    )
    status = response.status_code
    if status_is_retryable(status) or status in (401, 403, 404, 409):
        return DeliveryError(message, retryable=True)
    # 4xx: RECIPIENT_ERROR_CODES (bad / landline / unsubscribed number) or a request
    # Twilio will refuse however often it is sent
    return DeliveryError(message, retryable=False)


class TwilioClient:
    def __init__(self, cfg: TwilioConfig, client: httpx.AsyncClient | None = None):
        self.cfg = cfg
        self._client = client

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.cfg.timeout_s)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def url(self, resource: str) -> str:
        return f"{self.cfg.api_base.rstrip('/')}/{API_VERSION}/Accounts/{self.cfg.account_sid}/{resource}"

    async def create(self, resource: str, form: Mapping[str, str], what: str) -> str:
        response = await http_request(
            self.client,
            PROVIDER,
            "POST",
            self.url(resource),
            data=dict(form),
            auth=(self.cfg.account_sid, self.cfg.auth_token),
            headers={"accept": "application/json"},
        )
        if response.status_code in (200, 201):
            sid = json_body(response, PROVIDER).get("sid")
            if sid:
                return str(sid)
            raise DeliveryError(f"twilio {what}: no sid in the answer", retryable=True)
        raise twilio_error(response, what)

    def reaches(self, phone: str | None) -> bool:
        if not phone:
            return False
        return not any(phone.startswith(p) for p in self.cfg.exclude_prefixes)

    def callback(self, notice: NoticeRequest) -> dict[str, str]:
        if not self.cfg.status_callback_url:
            return {}
        return {"StatusCallback": with_notice_key(self.cfg.status_callback_url, notice.key)}


class TwilioSmsNotifier(Notifier):
    channel = "sms"
    provider = PROVIDER

    def __init__(self, cfg: TwilioConfig, *, client: httpx.AsyncClient | None = None):
        if not (cfg.from_number or cfg.messaging_service_sid):
            raise ValueError("twilio sms needs from_number or messaging_service_sid")
        self.cfg = cfg
        self.api = TwilioClient(cfg, client)

    def can_reach(self, notice: NoticeRequest) -> bool:
        return self.api.reaches(notice.withdrawal.contact.phone)

    def form(self, notice: NoticeRequest, rendered: RenderedNotice) -> dict[str, Any]:
        phone = notice.withdrawal.contact.phone
        if not phone:
            raise DeliveryError("no phone number", retryable=False)
        sender = (
            {"MessagingServiceSid": self.cfg.messaging_service_sid}
            if self.cfg.messaging_service_sid
            else {"From": self.cfg.from_number}
        )
        return {"To": phone, **sender, "Body": rendered.short, **self.api.callback(notice)}

    async def send(self, notice: NoticeRequest, rendered: RenderedNotice) -> str:
        return await self.api.create("Messages.json", self.form(notice, rendered), "Messages")

    async def aclose(self) -> None:
        await self.api.aclose()
