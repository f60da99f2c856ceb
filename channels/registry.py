"""The channel adapters this deployment speaks, each built from its own settings section
(``settings.alipay``, ``settings.wechat``, ...; sentinel/provider_settings.py declares which
settings turn an adapter on and which it then requires)."""

from __future__ import annotations

from channels.alipay import AlipayChannel, AlipayConfig
from channels.base import Channel
from channels.generic import GenericChannel
from channels.iso20022 import Iso20022Channel, Iso20022Config
from channels.stripe import StripeChannel, StripeConfig
from channels.wechatpay import WeChatPayChannel, WeChatPayConfig
from sentinel.catalogue import Catalogue, default_catalogue
from sentinel.settings import Settings


def build_channels(settings: Settings, catalogue: Catalogue | None = None) -> dict[str, Channel]:
    """The generic channel, and every adapter whose section is on. A section that is on
    but misses a required setting is refused (ValueError naming the variables)."""
    catalogue = catalogue or default_catalogue()
    channels: dict[str, Channel] = {
        "generic": GenericChannel(
            catalogue,
            settings.channel_base_url,
            settings.channel_secret.get_secret_value(),
            timeout_s=settings.channel_timeout_s,
            tolerance_s=settings.callback_tolerance_s,
        )
    }
    tolerance_s, timeout_s = settings.callback_tolerance_s, settings.channel_timeout_s
    if settings.alipay.enabled:
        settings.alipay.check_complete()
        channels["alipay"] = AlipayChannel(
            catalogue,
            AlipayConfig.from_settings(settings.alipay, tolerance_s=tolerance_s, timeout_s=timeout_s),
        )
    if settings.wechat.enabled:
        settings.wechat.check_complete()
        channels["wechat"] = WeChatPayChannel(
            catalogue,
            WeChatPayConfig.from_settings(settings.wechat, tolerance_s=tolerance_s, timeout_s=timeout_s),
        )
    if settings.stripe.enabled:
        settings.stripe.check_complete()
        channels["stripe"] = StripeChannel(
            catalogue,
            StripeConfig.from_settings(settings.stripe, tolerance_s=tolerance_s, timeout_s=timeout_s),
        )
    if settings.iso20022.enabled:
        settings.iso20022.check_complete()
        channels["iso20022"] = Iso20022Channel(
            catalogue,
            Iso20022Config.from_settings(settings.iso20022, tolerance_s=tolerance_s, timeout_s=timeout_s),
        )
    return channels
