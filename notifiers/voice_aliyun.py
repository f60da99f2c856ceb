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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from notifiers.sms_aliyun import AliyunTemplateNotifier, aliyun_phone
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


class AliyunVoiceNotifier(AliyunTemplateNotifier):
    channel = "voice"
    action = "SingleCallByTts"
    id_field = "CallId"
    missing_template = "aliyun voice: no TTS template"
    cfg: AliyunVoiceConfig

    def request_params(self, notice: NoticeRequest, rendered: RenderedNotice) -> dict[str, str]:
        phone, spec, values = self.template_values(notice, rendered)
        return {
            "CalledShowNumber": self.cfg.called_show_number,
            "CalledNumber": aliyun_phone(phone),
            "TtsCode": spec.code,
            "TtsParam": json.dumps(values, ensure_ascii=False, separators=(",", ":")),
            "PlayTimes": str(self.cfg.play_times),
            "OutId": notice.key,
        }
