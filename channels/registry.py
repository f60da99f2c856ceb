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

#: the adapters built from a settings section: channel name -> (section, config, adapter)
ADAPTERS = {
    "alipay": ("alipay", AlipayConfig, AlipayChannel),
    "wechat": ("wechat", WeChatPayConfig, WeChatPayChannel),
    "stripe": ("stripe", StripeConfig, StripeChannel),
    "iso20022": ("iso20022", Iso20022Config, Iso20022Channel),
}


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
    for channel, (name, config_type, adapter) in ADAPTERS.items():
        section = getattr(settings, name)
        if not section.enabled:
            continue
        section.check_complete()
        config = config_type.from_settings(
            section, tolerance_s=settings.callback_tolerance_s, timeout_s=settings.channel_timeout_s
        )
        channels[channel] = adapter(catalogue, config)
    return channels
