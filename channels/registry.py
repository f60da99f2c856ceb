"""The channel adapters this deployment speaks, built from the settings."""

from __future__ import annotations

from channels.alipay import AlipayChannel, AlipayConfig
from channels.base import Channel
from channels.generic import GenericChannel
from channels.iso20022.client import Iso20022Channel
from channels.iso20022.transformers import Iso20022Config
from channels.stripe import StripeChannel, StripeConfig
from channels.wechatpay import WeChatPayChannel, WeChatPayConfig
from sentinel.catalogue import Catalogue, default_catalogue
from sentinel.settings import Settings


def build_channels(settings: Settings, catalogue: Catalogue | None = None) -> dict[str, Channel]:
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
    if settings.alipay_app_id:
        if settings.alipay_app_private_key is None or not settings.alipay_public_key:
            raise ValueError(
                "SENTINEL_ALIPAY_APP_ID is set: set SENTINEL_ALIPAY_APP_PRIVATE_KEY and SENTINEL_ALIPAY_PUBLIC_KEY too"
            )
        channels["alipay"] = AlipayChannel(
            catalogue,
            AlipayConfig(
                app_id=settings.alipay_app_id,
                gateway_url=settings.alipay_gateway_url,
                app_private_key_pem=settings.alipay_app_private_key.get_secret_value(),
                alipay_public_key_pem=settings.alipay_public_key,
                notify_tolerance_s=settings.alipay_notify_tolerance_s,
                notify_future_skew_s=settings.callback_tolerance_s,
                order_title=settings.alipay_order_title,
                timeout_s=settings.channel_timeout_s,
            ),
        )
    if settings.wechat_mch_id:
        missing = [
            name
            for name in (
                "wechat_appid",
                "wechat_merchant_private_key",
                "wechat_merchant_serial_no",
                "wechat_apiv3_key",
            )
            if not getattr(settings, name)
        ] + ([] if settings.wechat_platform_public_keys else ["wechat_platform_public_keys"])
        if missing:
            raise ValueError(
                f"SENTINEL_WECHAT_MCH_ID is set: also set {', '.join('SENTINEL_' + m.upper() for m in missing)}"
            )
        channels["wechat"] = WeChatPayChannel(
            catalogue,
            WeChatPayConfig(
                mch_id=settings.wechat_mch_id,
                appid=settings.wechat_appid,
                base_url=settings.wechat_base_url,
                merchant_private_key_pem=settings.wechat_merchant_private_key.get_secret_value(),
                merchant_serial_no=settings.wechat_merchant_serial_no,
                platform_public_keys=settings.wechat_platform_public_keys,
                apiv3_key=settings.wechat_apiv3_key.get_secret_value().encode("utf-8"),
                tolerance_s=settings.callback_tolerance_s,
                transfer_scene_id=settings.wechat_transfer_scene_id,
                scene_report_infos=tuple(tuple(p) for p in settings.wechat_scene_report_infos),
                transfer_remark=settings.wechat_transfer_remark,
                timeout_s=settings.channel_timeout_s,
            ),
        )
    if settings.stripe_secret_key:
        if settings.stripe_webhook_secret is None:
            raise ValueError("SENTINEL_STRIPE_SECRET_KEY is set: set SENTINEL_STRIPE_WEBHOOK_SECRET too")
        channels["stripe"] = StripeChannel(
            catalogue,
            StripeConfig(
                api_base=settings.stripe_api_base,
                secret_key=settings.stripe_secret_key.get_secret_value(),
                webhook_secret=settings.stripe_webhook_secret.get_secret_value(),
                tolerance_s=settings.callback_tolerance_s,
                timeout_s=settings.channel_timeout_s,
                stripe_account=settings.stripe_account,
            ),
        )
    if settings.iso20022_base_url:
        missing = [
            n
            for n in ("iso20022_secret", "iso20022_debtor_account", "iso20022_debtor_agent_bic")
            if not getattr(settings, n)
        ]
        if missing:
            raise ValueError(
                f"SENTINEL_ISO20022_BASE_URL is set: also set {', '.join('SENTINEL_' + m.upper() for m in missing)}"
            )
        channels["iso20022"] = Iso20022Channel(
            catalogue,
            Iso20022Config(
                base_url=settings.iso20022_base_url,
                hmac_secret=settings.iso20022_secret.get_secret_value(),
                debtor_name=settings.iso20022_debtor_name,
                debtor_account=settings.iso20022_debtor_account,
                debtor_agent_bic=settings.iso20022_debtor_agent_bic,
                tolerance_s=settings.callback_tolerance_s,
                timeout_s=settings.channel_timeout_s,
            ),
        )
    return channels
