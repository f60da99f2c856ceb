"""SMS through Tencent Cloud (``sms`` ``SendSms``, version 2021-01-11), signed with
``TC3-HMAC-SHA256`` (:mod:`notifiers.signing_tencent`).

Like Aliyun, mainland SMS only carries approved templates: the notice picks a
``TemplateId`` (same registry rules as :mod:`notifiers.sms_aliyun`) and the variables go
in ``TemplateParamSet`` (positional).

Exactly-once: ``SessionContext`` = the notice key; Tencent returns it on the send result
and on the status report callback, so every receipt maps back to one notice.

Answer: ``Response.SendStatusSet[0].Code == "Ok"`` -> ``SerialNo`` is the message id.
``Response.Error`` (auth, request limits, internal errors) and per-number codes are
classified like Aliyun's: a bad number / number on the do-not-disturb list / content with
sensitive words is final; throttling, ``InternalError.*``, 5xx, timeouts and account or
configuration problems are retryable so the chain can fail over.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from notifiers.base import DeliveryError, HttpNotifier
from notifiers.provider_templates import TemplateRegistry, has_prefix, notice_fields, template_keys
from notifiers.routing import http_request, json_body, status_is_retryable
from notifiers.signing_tencent import sign_request
from sentinel.models import NoticeRequest
from sentinel.render import RenderedNotice

PROVIDER = "tencent"

#: the recipient or the content is bad: no retry, no failover
NON_RETRYABLE_CODES = frozenset(
    {
        "InvalidParameterValue.IncorrectPhoneNumber",
        "FailedOperation.PhoneNumberInBlacklist",
        "FailedOperation.PhoneNumberParseFail",
        "FailedOperation.ContainSensitiveWord",
        "InvalidParameterValue.ContentLengthLimit",
        "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
        "UnsupportedOperation.UnsupportedRegion",
    }
)


def tencent_code_is_retryable(code: str) -> bool:
    return code not in NON_RETRYABLE_CODES


@dataclass
class TencentSmsConfig:
    secret_id: str
    secret_key: str
    sms_sdk_app_id: str  # e.g. "1400006666"
    sign_name: str
    templates: Mapping[str, Any]  # see notifiers.provider_templates.TemplateRegistry; params are positional
    endpoint: str = "https://sms.tencentcloudapi.com"
    region: str = "ap-guangzhou"
    service: str = "sms"  # the credential-scope service; cannot be derived from a test host
    version: str = "2021-01-11"
    token: str | None = None  # temporary credentials
    country_prefixes: tuple[str, ...] = ("+86",)
    timeout_s: float = 10.0


class TencentSmsNotifier(HttpNotifier):
    channel = "sms"
    provider = PROVIDER

    def __init__(
        self,
        cfg: TencentSmsConfig,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.cfg = cfg
        self.registry = TemplateRegistry(cfg.templates)
        self.use_client(client, cfg.timeout_s)
        self.clock = clock
        parts = urlsplit(cfg.endpoint)
        if not parts.scheme or not parts.netloc:
            raise ValueError(f"endpoint must be scheme://host, got {cfg.endpoint!r}")
        self.host = parts.netloc
        self.url = f"{parts.scheme}://{parts.netloc}/"

    def can_reach(self, notice: NoticeRequest) -> bool:
        phone = notice.withdrawal.contact.phone
        return has_prefix(phone, self.cfg.country_prefixes) and self.registry.lookup(notice) is not None

    def request_body(self, notice: NoticeRequest, rendered: RenderedNotice) -> dict[str, Any]:
        phone = notice.withdrawal.contact.phone
        if not phone:
            raise DeliveryError("no phone number", retryable=False)
        spec = self.registry.lookup(notice)
        if spec is None:
            raise DeliveryError(f"tencent: no SMS template for {template_keys(notice)[0]}", retryable=False)
        return {
            "PhoneNumberSet": [phone],  # E.164, as Tencent wants it
            "SmsSdkAppId": self.cfg.sms_sdk_app_id,
            "SignName": self.cfg.sign_name,
            "TemplateId": spec.code,
            "TemplateParamSet": spec.positional(notice_fields(notice, rendered)),
            "SessionContext": notice.key,
        }

    async def send(self, notice: NoticeRequest, rendered: RenderedNotice) -> str:
        payload = json.dumps(
            self.request_body(notice, rendered), ensure_ascii=False, separators=(",", ":")
        ).encode()
        signed = sign_request(
            secret_id=self.cfg.secret_id,
            secret_key=self.cfg.secret_key,
            service=self.cfg.service,
            host=self.host,
            action="SendSms",
            version=self.cfg.version,
            region=self.cfg.region,
            token=self.cfg.token,
            payload=payload,
            timestamp=int(self.clock()),
        )
        response = await http_request(
            self.client, PROVIDER, "POST", self.url, headers=signed.headers, content=payload
        )
        if status_is_retryable(response.status_code):
            raise DeliveryError(f"tencent SendSms: HTTP {response.status_code}", retryable=True)
        body = json_body(response, PROVIDER).get("Response")
        if not isinstance(body, dict):
            raise DeliveryError(f"tencent SendSms: HTTP {response.status_code}, no Response", retryable=True)
        error = body.get("Error")
        if isinstance(error, dict):
            code = str(error.get("Code", ""))
            raise DeliveryError(
                f"tencent SendSms: {code} {error.get('Message', '')}".strip(),
                retryable=tencent_code_is_retryable(code),
            )
        statuses = body.get("SendStatusSet") or []
        if not statuses or not isinstance(statuses[0], dict):
            raise DeliveryError("tencent SendSms: empty SendStatusSet", retryable=True)
        status = statuses[0]
        code = str(status.get("Code", ""))
        if code == "Ok" and status.get("SerialNo"):
            return str(status["SerialNo"])
        raise DeliveryError(
            f"tencent SendSms: {code} {status.get('Message', '')}".strip(),
            retryable=tencent_code_is_retryable(code),
        )
