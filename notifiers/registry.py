"""Builds the provider-backed notice channels (sms, voice, push) from the settings
(credentials) and ``config/providers.yaml`` (routes, sign names, templates): one
``ProviderChain`` per channel, with region routing, failover and a circuit breaker per
provider. Push reaches the device tokens the app registered (``store.repo.register_device``);
a token the provider reports dead is marked invalid."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from notifiers.base import Notifier
from notifiers.push_fcm import FcmConfig, FcmPushNotifier, ServiceAccount
from notifiers.push_jpush import JPushConfig, JPushNotifier
from notifiers.routing import DEFAULT_PUSH_ROUTES, ProviderChain
from notifiers.sms_aliyun import AliyunSmsConfig, AliyunSmsNotifier
from notifiers.sms_tencent import TencentSmsConfig, TencentSmsNotifier
from notifiers.sms_twilio import TwilioConfig, TwilioSmsNotifier
from notifiers.template_check import check_provider_templates
from notifiers.voice_aliyun import AliyunVoiceConfig, AliyunVoiceNotifier
from notifiers.voice_twilio import TwilioVoiceNotifier
from sentinel.notice_policy import load_notice_policy
from sentinel.policy import parse_duration
from sentinel.render import Brand
from sentinel.settings import Settings

log = logging.getLogger(__name__)


class BreakerSnapshots:
    """Writes a provider's breaker state to the database when it opens or closes, so that
    the operations console (another process) can show it (store/ops_health.py). The write
    runs in a thread, not awaited: a notice never waits for it, and a failed write is logged."""

    def __init__(self, engine):
        self.engine = engine
        self.worker = f"{socket.gethostname()}:{os.getpid()}"[:64]

    def __call__(self, channel: str, provider: str, breaker) -> None:
        from store.ops_health import save_breaker

        opened = breaker.opened_at is not None
        args = (
            self.engine,
            channel,
            provider,
            self.worker,
            "open" if opened else "closed",
            breaker.failures,
            datetime.now(UTC) if opened else None,
            float(breaker.cooldown_s),
        )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            save_breaker(*args)
            return
        future = loop.run_in_executor(None, save_breaker, *args)
        future.add_done_callback(_log_failure)


def _log_failure(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("breaker snapshot not saved: %s", future.exception())


def _secret(value) -> str:
    return value.get_secret_value() if value is not None else ""


def _push_providers(settings: Settings, engine) -> list[Notifier]:
    from store.repo import device_tokens, forget_device

    push: list[Notifier] = []
    if settings.fcm_service_account_file:
        push.append(
            FcmPushNotifier(
                FcmConfig(
                    ServiceAccount.from_file(settings.fcm_service_account_file),
                    api_base=settings.fcm_api_base,
                ),
                lambda user_id: device_tokens(engine, user_id, "fcm"),
                on_invalid_token=lambda user_id, token: forget_device(
                    engine, "fcm", token, "FCM: token unregistered", user_id
                ),
            )
        )
    if settings.jpush_app_key and settings.jpush_master_secret:
        push.append(
            JPushNotifier(
                JPushConfig(
                    settings.jpush_app_key,
                    _secret(settings.jpush_master_secret),
                    api_base=settings.jpush_api_base,
                ),
                lambda user_id: device_tokens(engine, user_id, "jpush"),
            )
        )
    return push


def _check_templates(settings: Settings, data: Mapping[str, Any]) -> None:
    """China SMS / voice templates must cover every notice the policy sends there (issue #10):
    refused outside development mode, logged in development."""
    policy = load_notice_policy(yaml.safe_load(settings.notice_policy_file.read_text(encoding="utf-8")))
    brand = Brand(settings.brand_name, settings.brand_name_zh, settings.sms_link)
    for problem in check_provider_templates(
        data, policy, brand=brand, support_phone=settings.support_phone, strict=not settings.dev_mode
    ):
        log.warning("provider templates: %s", problem)


def build_provider_notifiers(
    settings: Settings, data: Mapping[str, Any] | None = None, engine=None
) -> dict[str, Notifier]:
    """``{"sms": chain, "voice": chain, "push": chain}`` for the providers that have
    credentials; a channel with no configured provider is absent (the policy then skips
    it). Push needs ``engine`` (the device tokens)."""
    data = (
        data
        if data is not None
        else (yaml.safe_load(settings.providers_file.read_text(encoding="utf-8")) or {})
    )
    sms: list[Notifier] = []
    voice: list[Notifier] = []
    aliyun = data.get("aliyun") or {}
    if settings.aliyun_access_key_id and settings.aliyun_access_key_secret:
        creds = dict(
            access_key_id=settings.aliyun_access_key_id,
            access_key_secret=_secret(settings.aliyun_access_key_secret),
        )
        if aliyun.get("sms"):
            sms.append(AliyunSmsNotifier(AliyunSmsConfig(**creds, **aliyun["sms"])))
        if aliyun.get("voice"):
            voice.append(AliyunVoiceNotifier(AliyunVoiceConfig(**creds, **aliyun["voice"])))
    tencent = data.get("tencent") or {}
    if settings.tencent_secret_id and settings.tencent_secret_key and tencent:
        sms.append(
            TencentSmsNotifier(
                TencentSmsConfig(
                    secret_id=settings.tencent_secret_id,
                    secret_key=_secret(settings.tencent_secret_key),
                    **tencent,
                )
            )
        )
    twilio = data.get("twilio") or {}
    if settings.twilio_account_sid and settings.twilio_auth_token:
        cfg = TwilioConfig(
            account_sid=settings.twilio_account_sid, auth_token=_secret(settings.twilio_auth_token), **twilio
        )
        sms.append(TwilioSmsNotifier(cfg))
        if cfg.from_number:
            voice.append(TwilioVoiceNotifier(cfg))
    if any(isinstance(n, (AliyunSmsNotifier, AliyunVoiceNotifier, TencentSmsNotifier)) for n in sms + voice):
        _check_templates(settings, data)
    push = _push_providers(settings, engine) if engine is not None else []
    breaker = data.get("breaker") or {}
    options: dict[str, Any] = dict(
        failure_threshold=int(breaker.get("failure_threshold", 5)),
        cooldown_s=parse_duration(breaker.get("cooldown", 30)),
    )
    if engine is not None:
        options["on_breaker"] = BreakerSnapshots(engine)
    chains: dict[str, Notifier] = {}
    for channel, providers, routes in (
        ("sms", sms, data.get("sms_routes")),
        ("voice", voice, data.get("voice_routes")),
        ("push", push, data.get("push_routes") or [(r.prefix, r.providers) for r in DEFAULT_PUSH_ROUTES]),
    ):
        if not providers:
            continue
        names = {p.provider for p in providers}
        rules = [
            (prefix, [n for n in chain if n in names]) for prefix, chain in (routes or [("", sorted(names))])
        ]
        rules = [(prefix, chain) for prefix, chain in rules if chain]
        chains[channel] = ProviderChain(channel, providers, rules, **options)
    return chains
