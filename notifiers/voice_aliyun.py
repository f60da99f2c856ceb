"""Voice call through Alibaba Cloud (dyvmsapi ``SingleCallByTts``, version 2017-05-25):
a registered text-to-speech template (``TtsCode``) read to a mainland number, variables in
``TtsParam`` (JSON), the caller id ``CalledShowNumber`` being a number bought in the
console. Same V3 signature, template registry and error classes as
:mod:`notifiers.sms_aliyun`.

Exactly-once: ``OutId`` = the notice key (returned on the call receipt). ``CallId`` is the
message id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

import httpx

from notifiers.base import DeliveryError, Notifier
from notifiers.sms_aliyun import (
    PROVIDER,
    AliyunRpc,
    TemplateRegistry,
    aliyun_phone,
    has_prefix,
    notice_fields,
    template_keys,
)
from sentinel.models import NoticeRequest
from sentinel.render import RenderedNotice


@dataclass
class AliyunVoiceConfig:
    access_key_id: str
    access_key_secret: str
    called_show_number: str  # the caller id bought in the console
    templates: Mapping[str, Any]  # TtsCode per notice, see TemplateRegistry
    endpoint: str = "https://dyvmsapi.aliyuncs.com"
    version: str = "2017-05-25"
    play_times: int = 2
    security_token: str | None = None
    country_prefixes: tuple[str, ...] = ("+86",)
    timeout_s: float = 10.0


class AliyunVoiceNotifier(Notifier):
    channel = "voice"
    provider = PROVIDER

    def __init__(
        self,
        cfg: AliyunVoiceConfig,
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

    def request_params(self, notice: NoticeRequest, rendered: RenderedNotice) -> dict[str, str]:
        phone = notice.withdrawal.contact.phone
        if not phone:
            raise DeliveryError("no phone number", retryable=False)
        spec = self.registry.lookup(notice)
        if spec is None:
            raise DeliveryError(f"aliyun voice: no TTS template for {template_keys(notice)[0]}", retryable=False)
        values = spec.values(notice_fields(notice, rendered))
        return {
            "CalledShowNumber": self.cfg.called_show_number,
            "CalledNumber": aliyun_phone(phone),
            "TtsCode": spec.code,
            "TtsParam": json.dumps(values, ensure_ascii=False, separators=(",", ":")),
            "PlayTimes": str(self.cfg.play_times),
            "OutId": notice.key,
        }

    async def send(self, notice: NoticeRequest, rendered: RenderedNotice) -> str:
        return await self.rpc.call("SingleCallByTts", self.request_params(notice, rendered), "CallId")

    async def aclose(self) -> None:
        await self.rpc.aclose()
