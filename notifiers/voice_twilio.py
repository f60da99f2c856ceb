"""Voice call through Twilio (``POST .../Calls.json`` with inline ``Twiml``): the callee
hears ``rendered.voice`` (a script made for listening: digits in small groups, no
brackets or arrows, the order number's last digits only) in their language, twice::

    <Response><Say language="zh-CN" loop="2">...</Say></Response>

Same credentials, error classification and ``StatusCallback`` (with the notice key) as
:mod:`notifiers.sms_twilio`. The call sid is the message id.
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape, quoteattr

import httpx

from notifiers.base import DeliveryError, HttpNotifier
from notifiers.sms_twilio import PROVIDER, TwilioClient, TwilioConfig
from sentinel.models import NoticeRequest
from sentinel.render import RenderedNotice

#: notice locale -> <Say language=...>
DEFAULT_LANGUAGES: Mapping[str, str] = {"zh-CN": "zh-CN", "en-US": "en-US"}


def twiml_say(text: str, language: str, *, loop: int = 2, voice: str | None = None) -> str:
    attrs = f" language={quoteattr(language)}"
    if voice:
        attrs += f" voice={quoteattr(voice)}"
    if loop != 1:
        attrs += f' loop="{int(loop)}"'
    return f"<Response><Say{attrs}>{escape(text)}</Say></Response>"


class TwilioVoiceNotifier(HttpNotifier):
    channel = "voice"
    provider = PROVIDER

    def __init__(
        self,
        cfg: TwilioConfig,
        *,
        languages: Mapping[str, str] = DEFAULT_LANGUAGES,
        voice: str | None = None,
        loop: int = 2,
        client: httpx.AsyncClient | None = None,
    ):
        if not cfg.from_number:
            raise ValueError("twilio voice needs from_number (a voice-capable Twilio number)")
        self.cfg = cfg
        self.languages = dict(languages)
        self.voice = voice
        self.loop = loop
        self.use_client(client, cfg.timeout_s)
        self.api = TwilioClient(cfg, self)

    def can_reach(self, notice: NoticeRequest) -> bool:
        return self.api.reaches(notice.withdrawal.contact.phone)

    def form(self, notice: NoticeRequest, rendered: RenderedNotice) -> dict[str, str]:
        phone = notice.withdrawal.contact.phone
        if not phone:
            raise DeliveryError("no phone number", retryable=False)
        language = self.languages.get(rendered.locale, rendered.locale)
        twiml = twiml_say(rendered.voice, language, loop=self.loop, voice=self.voice)
        form = {"To": phone, "From": self.cfg.from_number or "", "Twiml": twiml, **self.api.callback(notice)}
        if "StatusCallback" in form:
            form["StatusCallbackEvent"] = "completed"
        return form

    async def send(self, notice: NoticeRequest, rendered: RenderedNotice) -> str:
        return await self.api.create("Calls.json", self.form(notice, rendered), "Calls")
