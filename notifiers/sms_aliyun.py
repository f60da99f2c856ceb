"""SMS through Alibaba Cloud (dysmsapi ``SendSms``, version 2017-05-25), signed with the
OpenAPI V3 signature (:mod:`notifiers.signing_aliyun`).

China SMS only carries registered templates: the text is fixed by the template approved in
the console, we only fill its variables. So this notifier does not send ``rendered.short``;
it maps the notice to a ``TemplateCode`` (by template id, stage, category, locale; see
:class:`TemplateRegistry`) and passes ``TemplateParam`` built from the notice fields
(order number, card ending ...; never the amount, never more than the last four digits).

Exactly-once: ``OutId`` = the notice key. Aliyun echoes it on the delivery receipt
(``SmsReport``), so every receipt maps back to one notice and a second send of the same
notice is visible; the at-most-once guard is the delivery row the notice activity claims
before calling us. After a crash between Aliyun accepting and the row saying so,
``find_sent`` looks the notice up by its OutId (``QuerySendDetails``), so it is not sent a
second time.

Errors: ``Code == "OK"`` -> ``BizId`` is the message id. Throttling
(``isv.BUSINESS_LIMIT_CONTROL``), ``isp.*``, 5xx, 429 and timeouts are retryable, and so is
any code that says *this account* cannot send now (quota, signature, template, RAM): the
routing chain then fails over. A bad number, a number on a block list, or refused content
(``isv.MOBILE_NUMBER_ILLEGAL`` ...) is not retryable: it is bad at every provider.
"""

from __future__ import annotations

import json
import uuid
from abc import abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

from notifiers.base import DeliveryError, Notifier
from notifiers.routing import http_request, json_body, status_is_retryable
from notifiers.signing_aliyun import sign_request
from sentinel.locales import template_locale
from sentinel.models import NoticeRequest
from sentinel.render import RenderedNotice, speak_digits, template_id_for
from sentinel.taxonomy import WithdrawalStatus

PROVIDER = "aliyun"
SMS_ENDPOINT = "https://dysmsapi.aliyuncs.com"
SMS_VERSION = "2017-05-25"

#: QuerySendDetails: at most 50 per page; mainland China time decides the SendDate
QUERY_PAGE_SIZE = 50
CHINA_TZ = timezone(timedelta(hours=8))

# --------------------------------------------------------------------------- templates

#: notice fields a template variable may take its value from
FIELD_NAMES = (
    "order_no",
    "card_last4",
    "bank_code",
    "title",
    "short",
    "link",
    "stage",
    "category",
    "status",
    "count",
    "orders",
    "reason",
    "order_tail",
    "support_phone",
    "support_spoken",
)
DEFAULT_PARAMS: tuple[tuple[str, str], ...] = (("order_no", "order_no"), ("card_last4", "card_last4"))


def notice_fields(notice: NoticeRequest, rendered: RenderedNotice) -> dict[str, str]:
    """Values for template variables. No amount: SMS and lock screens show the order
    number and the card ending only."""
    w = notice.withdrawal
    return {
        "order_no": w.withdrawal_id,
        "card_last4": w.card_last4,
        "bank_code": w.bank_code,
        "title": rendered.title,
        "short": rendered.short,
        "link": rendered.link,
        "stage": notice.stage.value,
        "category": notice.category.value if notice.category else "",
        "status": notice.status.value,
        # a digest (folding): how many withdrawals, and their order numbers
        "count": str(1 + len(notice.folded)),
        "orders": ",".join([w.withdrawal_id, *notice.folded]),
        # issue #10: the reason (its group's short phrase), the order's last digits, the support number
        "reason": rendered.reason_phrase,
        "order_tail": w.withdrawal_id[-4:],
        "support_phone": rendered.support_phone,
        "support_spoken": speak_digits(rendered.support_phone),
    }


@dataclass(frozen=True)
class TemplateSpec:
    """A registered provider template: its code and where each variable comes from."""

    code: str
    params: tuple[tuple[str, str], ...] = DEFAULT_PARAMS  # (variable name, notice field)
    text: str | None = (
        None  # the registered text, ${name} for a variable (checked: notifiers/template_check.py)
    )

    @classmethod
    def parse(cls, value: Any) -> TemplateSpec:
        """``"SMS_123"`` | ``{"code": "SMS_123", "params": {"order": "order_no"}}`` |
        ``{"code": "1234567", "params": ["order_no", "card_last4"]}`` (positional)."""
        if isinstance(value, TemplateSpec):
            spec = value
        elif isinstance(value, str):
            spec = cls(value)
        elif isinstance(value, Mapping):
            raw = value.get("params")
            if raw is None:
                params = DEFAULT_PARAMS
            elif isinstance(raw, Mapping):
                params = tuple((str(k), str(v)) for k, v in raw.items())
            else:
                params = tuple((str(v), str(v)) for v in raw)
            spec = cls(str(value["code"]), params, value.get("text"))
        else:
            raise TypeError(f"template must be a code or a mapping, got {type(value).__name__}")
        if not spec.code:
            raise ValueError("template code must not be empty")
        unknown = sorted({f for _, f in spec.params} - set(FIELD_NAMES))
        if unknown:
            raise ValueError(f"template {spec.code}: unknown notice fields {unknown}; known: {FIELD_NAMES}")
        return spec

    def values(self, fields: Mapping[str, str]) -> dict[str, str]:
        return {name: fields[src] for name, src in self.params}

    def positional(self, fields: Mapping[str, str]) -> list[str]:
        return [fields[src] for _, src in self.params]


def template_keys(notice: NoticeRequest) -> list[str]:
    """Lookup order, most specific first: ``zh-CN/DETECTED/BANK_DELAY``,
    ``zh-CN/DETECTED``, ``DETECTED/failed`` (a failed or returned withdrawal: the money is
    back, whatever the category), ``DETECTED/BANK_DELAY``, ``DETECTED``, ``default``."""
    locale = template_locale(notice.withdrawal.locale)
    stage = notice.stage.value
    category = notice.category.value if notice.category else "default"
    keys = []
    try:
        keys.append(template_id_for(notice))
    except Exception:  # no renderer template: the explicit keys below still apply
        pass
    if notice.folded:  # a digest of several withdrawals has its own registered template
        keys = [f"{locale}/DIGEST", "DIGEST"]
    failed = (
        [f"{stage}/failed"] if notice.status in (WithdrawalStatus.FAILED, WithdrawalStatus.RETURNED) else []
    )
    keys += [
        f"{locale}/{stage}/{category}",
        f"{locale}/{stage}",
        *failed,
        f"{stage}/{category}",
        stage,
        "default",
    ]
    return list(dict.fromkeys(keys))


class TemplateRegistry:
    """Provider templates keyed by notice (see :func:`template_keys`). Data, e.g.::

    {"DETECTED/ACCOUNT_INFO_ERROR": "SMS_460001",
     "DELAYED": {"code": "SMS_460002", "params": {"order": "order_no", "card": "card_last4"}},
     "default": "SMS_460000"}
    """

    def __init__(self, templates: Mapping[str, Any]):
        self.templates = {str(k): TemplateSpec.parse(v) for k, v in templates.items()}

    def lookup(self, notice: NoticeRequest) -> TemplateSpec | None:
        for key in template_keys(notice):
            if key in self.templates:
                return self.templates[key]
        return None


def has_prefix(phone: str | None, prefixes: Sequence[str] | None) -> bool:
    if not phone:
        return False
    return not prefixes or any(phone.startswith(p) for p in prefixes)


def aliyun_phone(e164: str) -> str:
    """Mainland numbers as 11 digits, others as country code + number, no ``+``."""
    return e164[3:] if e164.startswith("+86") else e164.lstrip("+")


# --------------------------------------------------------------------------- RPC client

#: the recipient or the content is bad: no retry, no failover
NON_RETRYABLE_CODES = frozenset(
    {
        "isv.MOBILE_NUMBER_ILLEGAL",
        "isv.MOBILE_COUNT_OVER_LIMIT",
        "isv.BLACK_KEY_CONTROL_LIMIT",
        "isv.SMS_CONTENT_ILLEGAL",
        "isv.PARAM_NOT_SUPPORT_URL",
        "isv.PARAM_LENGTH_LIMIT",
        "isv.CUSTOMER_REFUSED",
        "isv.INVALID_PARAMETERS",  # dyvms: bad called number
    }
)


def aliyun_code_is_retryable(code: str) -> bool:
    """Throttling (``isv.BUSINESS_LIMIT_CONTROL``, ``Throttling*``), platform errors
    (``isp.*``, ``ServiceUnavailable``) and account/config problems are retryable (another
    attempt or provider may succeed); recipient and content errors are not."""
    return code not in NON_RETRYABLE_CODES


class AliyunRpc:
    """One signed RPC-style call (parameters in the query string, empty body)."""

    def __init__(
        self,
        *,
        endpoint: str,
        version: str,
        access_key_id: str,
        access_key_secret: str,
        security_token: str | None = None,
        timeout_s: float = 10.0,
        client: httpx.AsyncClient | None = None,
        now: Callable[[], datetime] | None = None,
        nonce: Callable[[], str] | None = None,
        provider: str = PROVIDER,
    ):
        self.endpoint = endpoint.rstrip("/")
        self.version = version
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.security_token = security_token
        self.timeout_s = timeout_s
        self._client = client
        self.now = now or (lambda: datetime.now(UTC))
        self.nonce = nonce or (lambda: uuid.uuid4().hex)
        self.provider = provider

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def call_json(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        """The answer of a successful call (``Code`` OK); DeliveryError otherwise."""
        signed = sign_request(
            method="POST",
            endpoint=self.endpoint,
            action=action,
            version=self.version,
            access_key_id=self.access_key_id,
            access_key_secret=self.access_key_secret,
            date=self.now(),
            nonce=self.nonce(),
            params=params,
            security_token=self.security_token,
        )
        headers = {**signed.headers, "accept": "application/json"}
        response = await http_request(
            self.client, self.provider, "POST", signed.url, headers=headers, content=b""
        )
        data = json_body(response, self.provider)
        code = str(data.get("Code", ""))
        if response.status_code == 200 and code == "OK":
            return data
        message = (
            f"{self.provider} {action}: HTTP {response.status_code} {code or '-'} {data.get('Message', '')}"
        )
        message = message.strip()
        if status_is_retryable(response.status_code):
            raise DeliveryError(message, retryable=True)
        raise DeliveryError(message, retryable=aliyun_code_is_retryable(code) if code else True)

    async def call(self, action: str, params: Mapping[str, str], id_field: str) -> str:
        data = await self.call_json(action, params)
        if not data.get(id_field):
            raise DeliveryError(f"{self.provider} {action}: answer OK without {id_field}", retryable=True)
        return str(data[id_field])


# --------------------------------------------------------------------------- the notifier


@dataclass
class AliyunSmsConfig:
    access_key_id: str
    access_key_secret: str
    sign_name: str  # the approved signature, e.g. "某某支付"
    templates: Mapping[str, Any]  # see TemplateRegistry
    endpoint: str = SMS_ENDPOINT
    security_token: str | None = None  # STS credentials
    country_prefixes: tuple[str, ...] = ("+86",)  # domestic templates reach mainland numbers only
    timeout_s: float = 10.0
    version: str = field(default=SMS_VERSION)


class AliyunTemplateNotifier(Notifier):
    """One registered template per notice, sent through one signed Aliyun RPC action: the
    config, the template lookup, the reach check and the call are shared by SMS
    (:class:`AliyunSmsNotifier`) and voice (:class:`notifiers.voice_aliyun.AliyunVoiceNotifier`).
    A subclass names the action and builds its parameters in :meth:`request_params`."""

    provider = PROVIDER
    #: the RPC action, the answer field that holds the message id, and what a template is
    #: called in the "no template" error
    action: str
    id_field: str
    missing_template: str

    def __init__(
        self,
        cfg: Any,
        *,
        client: httpx.AsyncClient | None = None,
        now: Callable[[], datetime] | None = None,
        nonce: Callable[[], str] | None = None,
    ):
        self.cfg = cfg
        self.registry = TemplateRegistry(cfg.templates)
        self.rpc = AliyunRpc(
            endpoint=cfg.endpoint,
            version=cfg.version,
            access_key_id=cfg.access_key_id,
            access_key_secret=cfg.access_key_secret,
            security_token=cfg.security_token,
            timeout_s=cfg.timeout_s,
            client=client,
            now=now,
            nonce=nonce,
        )

    def can_reach(self, notice: NoticeRequest) -> bool:
        phone = notice.withdrawal.contact.phone
        return has_prefix(phone, self.cfg.country_prefixes) and self.registry.lookup(notice) is not None

    def template_values(
        self, notice: NoticeRequest, rendered: RenderedNotice
    ) -> tuple[str, TemplateSpec, dict[str, str]]:
        """The phone number, the template and its variable values, or a non-retryable
        DeliveryError when there is no number or no template for this notice."""
        phone = notice.withdrawal.contact.phone
        if not phone:
            raise DeliveryError("no phone number", retryable=False)
        spec = self.registry.lookup(notice)
        if spec is None:
            raise DeliveryError(f"{self.missing_template} for {template_keys(notice)[0]}", retryable=False)
        return phone, spec, spec.values(notice_fields(notice, rendered))

    @abstractmethod
    def request_params(self, notice: NoticeRequest, rendered: RenderedNotice) -> dict[str, str]:
        """The action's query parameters for this notice."""

    async def send(self, notice: NoticeRequest, rendered: RenderedNotice) -> str:
        return await self.rpc.call(self.action, self.request_params(notice, rendered), self.id_field)

    async def aclose(self) -> None:
        await self.rpc.aclose()


class AliyunSmsNotifier(AliyunTemplateNotifier):
    channel = "sms"
    action = "SendSms"
    id_field = "BizId"
    missing_template = "aliyun: no SMS template"
    cfg: AliyunSmsConfig

    def request_params(self, notice: NoticeRequest, rendered: RenderedNotice) -> dict[str, str]:
        phone, spec, values = self.template_values(notice, rendered)
        return {
            "PhoneNumbers": aliyun_phone(phone),
            "SignName": self.cfg.sign_name,
            "TemplateCode": spec.code,
            "TemplateParam": json.dumps(values, ensure_ascii=False, separators=(",", ":")),
            "OutId": notice.key,
        }

    async def find_sent(self, notice: NoticeRequest, tried: Collection[str] | None = None) -> str | None:
        """QuerySendDetails for the number on the days the notice may have gone out (China
        time, today and yesterday): the detail whose OutId is the notice key."""
        phone = notice.withdrawal.contact.phone
        if not phone:
            return None
        today = self.rpc.now().astimezone(CHINA_TZ).date()
        for day in (today, today - timedelta(days=1)):
            page = 1
            while True:
                data = await self.rpc.call_json(
                    "QuerySendDetails",
                    {
                        "PhoneNumber": aliyun_phone(phone),
                        "SendDate": day.strftime("%Y%m%d"),
                        "PageSize": str(QUERY_PAGE_SIZE),
                        "CurrentPage": str(page),
                    },
                )
                details = (data.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
                for d in details:
                    if d.get("OutId") == notice.key:
                        return f"OutId={notice.key} ({d.get('SendStatus', '?')})"
                if len(details) < QUERY_PAGE_SIZE:
                    break
                page += 1
        return None
