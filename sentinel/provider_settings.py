"""The settings of each channel adapter and notice provider, one section per provider
(``settings.alipay``, ``settings.wechat``, ``settings.aliyun`` ...). Each adapter or notifier
builds itself from its own section, and the section declares which of its settings turns
the provider on (``enabled_by``) and which it then requires (``required_when_enabled``).

The environment variables keep their flat names: ``SENTINEL_<SECTION>_<FIELD>`` (e.g.
``SENTINEL_WECHAT_MCH_ID`` is ``settings.wechat.mch_id``); :class:`sentinel.settings.Settings`
reads them so, and also takes the flat names as keyword arguments.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ProviderSection(BaseModel):
    """One provider's settings. Subclasses set ``name`` (the ``Settings`` field and the
    environment prefix), ``enabled_by`` and ``required_when_enabled``."""

    model_config = ConfigDict(extra="ignore")

    #: the Settings field that holds the section, and the prefix of its variables
    name: ClassVar[str]
    #: the setting whose value turns the provider on (None: always on)
    enabled_by: ClassVar[str | None] = None
    #: the settings the provider needs once it is on
    required_when_enabled: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def env_name(cls, field: str) -> str:
        """``SENTINEL_WECHAT_MCH_ID`` for the section ``wechat`` and the field ``mch_id``."""
        return f"SENTINEL_{cls.name}_{field}".upper()

    @classmethod
    def env_names(cls) -> Iterator[tuple[str, str]]:
        """(environment variable, field name) of every setting of the section, in order."""
        for field in cls.model_fields:
            yield cls.env_name(field), field

    @property
    def enabled(self) -> bool:
        return self.enabled_by is None or bool(getattr(self, self.enabled_by))

    def missing(self) -> list[str]:
        """The environment variables of the required settings that are not set."""
        return [self.env_name(f) for f in self.required_when_enabled if not getattr(self, f)]

    @property
    def complete(self) -> bool:
        """On, with every required setting set."""
        return self.enabled and not self.missing()

    def check_complete(self) -> None:
        """Raise ValueError naming the missing settings of a provider that is on."""
        missing = self.missing()
        if self.enabled and missing:
            on = self.env_name(self.enabled_by) if self.enabled_by else self.name
            raise ValueError(f"{on} is set: also set {', '.join(missing)}")


def secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


# --------------------------------------------------------------------------- channel adapters


class AlipaySettings(ProviderSection):
    """Alipay (docs/channels/alipay.md): the adapter is built when ``app_id`` is set."""

    name: ClassVar[str] = "alipay"
    enabled_by: ClassVar[str | None] = "app_id"
    required_when_enabled: ClassVar[tuple[str, ...]] = ("app_private_key", "public_key")

    app_id: str | None = Field(None, description="Alipay AppID; unset: no Alipay adapter")
    gateway_url: str = Field(
        "https://openapi.alipay.com/gateway.do", description="Alipay open-platform gateway URL"
    )
    app_private_key: SecretStr | None = Field(
        None, description="the app's RSA2 private key, PEM or bare base64"
    )
    public_key: str | None = Field(
        None, description="the app's Alipay public key (支付宝公钥), PEM or bare base64"
    )
    notify_tolerance_s: int = Field(172800, description="oldest signed Alipay notify accepted, seconds")
    order_title: str = Field("提现", description="title of the transfer in the payee's Alipay bill")


class WeChatSettings(ProviderSection):
    """WeChat Pay 商家转账 (docs/channels/wechatpay.md): built when ``mch_id`` is set."""

    name: ClassVar[str] = "wechat"
    enabled_by: ClassVar[str | None] = "mch_id"
    required_when_enabled: ClassVar[tuple[str, ...]] = (
        "appid",
        "merchant_private_key",
        "merchant_serial_no",
        "apiv3_key",
        "platform_public_keys",
    )

    mch_id: str | None = Field(None, description="WeChat Pay merchant id (商户号); unset: no WeChat adapter")
    appid: str | None = Field(None, description="AppID the payees' OpenIDs belong to")
    base_url: str = Field("https://api.mch.weixin.qq.com", description="WeChat Pay API v3 base URL")
    merchant_private_key: SecretStr | None = Field(
        None, description="merchant API private key (apiclient_key.pem)"
    )
    merchant_serial_no: str | None = Field(None, description="serial number of the merchant API certificate")
    platform_public_keys: dict[str, str] = Field(
        default_factory=dict, description="JSON {serial or PUB_KEY_ID: PEM} of the WeChat Pay keys"
    )
    apiv3_key: SecretStr | None = Field(None, description="APIv3 key, 32 characters")
    transfer_scene_id: str = Field("1000", description="转账场景ID granted to the merchant")
    scene_report_infos: list[tuple[str, str]] = Field(
        default_factory=list, description="JSON [[info_type, info_content], ...] the scene requires"
    )
    transfer_remark: str = Field(
        "提现", description="transfer remark shown to the user, at most 32 characters"
    )


class StripeSettings(ProviderSection):
    """Stripe payouts: built when ``secret_key`` is set."""

    name: ClassVar[str] = "stripe"
    enabled_by: ClassVar[str | None] = "secret_key"
    required_when_enabled: ClassVar[tuple[str, ...]] = ("webhook_secret",)

    api_base: str = Field("https://api.stripe.com", description="Stripe API base URL")
    secret_key: SecretStr | None = Field(None, description="Stripe secret key; set to enable Stripe payouts")
    webhook_secret: SecretStr | None = Field(
        None, description="signing secret of the Stripe webhook endpoint"
    )
    account: str | None = Field(None, description="Stripe Connect account to act on (Stripe-Account header)")


class Iso20022Settings(ProviderSection):
    """An ISO 20022 bank connection: built when ``base_url`` is set."""

    name: ClassVar[str] = "iso20022"
    enabled_by: ClassVar[str | None] = "base_url"
    required_when_enabled: ClassVar[tuple[str, ...]] = ("secret", "debtor_account", "debtor_agent_bic")

    base_url: str | None = Field(None, description="the bank's ISO 20022 endpoint; set to enable")
    secret: SecretStr | None = Field(None, description="HMAC secret shared with the bank (both directions)")
    debtor_name: str = Field("Withdrawal Platform Ltd", description="our name as the paying party")
    debtor_account: str | None = Field(None, description="our account (IBAN or other id) at the bank")
    debtor_agent_bic: str | None = Field(None, description="our bank's BIC")


# --------------------------------------------------------------------------- notice providers


class SmtpSettings(ProviderSection):
    """Email (R6): the SMTP server the notices go through."""

    name: ClassVar[str] = "smtp"

    host: str = Field("127.0.0.1", description="SMTP server host")
    port: int = Field(8025, description="SMTP server port")
    username: str | None = Field(None, description="SMTP login, if the server needs one")
    password: SecretStr | None = Field(None, description="SMTP password")
    starttls: bool = Field(False, description="upgrade the SMTP connection with STARTTLS")


class AliyunSettings(ProviderSection):
    """Aliyun SMS and voice: on when both credentials are set (and providers.yaml has the section)."""

    name: ClassVar[str] = "aliyun"
    enabled_by: ClassVar[str | None] = "access_key_id"
    required_when_enabled: ClassVar[tuple[str, ...]] = ("access_key_secret",)

    access_key_id: str | None = Field(
        None, description="Aliyun RAM AccessKey id; enables Aliyun SMS and voice"
    )
    access_key_secret: SecretStr | None = Field(None, description="Aliyun RAM AccessKey secret")

    def credentials(self) -> dict[str, Any]:
        return {"access_key_id": self.access_key_id, "access_key_secret": secret(self.access_key_secret)}


class TencentSettings(ProviderSection):
    """Tencent Cloud SMS: on when both credentials are set (and providers.yaml has the section)."""

    name: ClassVar[str] = "tencent"
    enabled_by: ClassVar[str | None] = "secret_id"
    required_when_enabled: ClassVar[tuple[str, ...]] = ("secret_key",)

    secret_id: str | None = Field(None, description="Tencent Cloud SecretId; enables Tencent SMS")
    secret_key: SecretStr | None = Field(None, description="Tencent Cloud SecretKey")

    def credentials(self) -> dict[str, Any]:
        return {"secret_id": self.secret_id, "secret_key": secret(self.secret_key)}


class TwilioSettings(ProviderSection):
    """Twilio SMS and voice: on when both credentials are set."""

    name: ClassVar[str] = "twilio"
    enabled_by: ClassVar[str | None] = "account_sid"
    required_when_enabled: ClassVar[tuple[str, ...]] = ("auth_token",)

    account_sid: str | None = Field(None, description="Twilio account SID; enables Twilio SMS and voice")
    auth_token: SecretStr | None = Field(None, description="Twilio auth token (also checks status callbacks)")

    def credentials(self) -> dict[str, Any]:
        return {"account_sid": self.account_sid, "auth_token": secret(self.auth_token)}


class FcmSettings(ProviderSection):
    """Push through Firebase Cloud Messaging (HTTP v1): on when the key file is set."""

    name: ClassVar[str] = "fcm"
    enabled_by: ClassVar[str | None] = "service_account_file"

    service_account_file: Path | None = Field(
        None, description="Firebase service-account key file (JSON); enables push through FCM HTTP v1"
    )
    api_base: str = Field("https://fcm.googleapis.com", description="FCM API base URL")


class JPushSettings(ProviderSection):
    """Push through JPush v3: on when both credentials are set."""

    name: ClassVar[str] = "jpush"
    enabled_by: ClassVar[str | None] = "app_key"
    required_when_enabled: ClassVar[tuple[str, ...]] = ("master_secret",)

    app_key: str | None = Field(None, description="JPush AppKey; enables push through JPush v3")
    master_secret: SecretStr | None = Field(None, description="JPush Master Secret")
    api_base: str = Field(
        "https://api.jpush.cn", description="JPush API base (https://bjapi.push.jiguang.cn for Beijing)"
    )


#: every section, by its Settings field name
SECTIONS: dict[str, type[ProviderSection]] = {
    s.name: s
    for s in (
        AlipaySettings,
        WeChatSettings,
        StripeSettings,
        Iso20022Settings,
        SmtpSettings,
        AliyunSettings,
        TencentSettings,
        TwilioSettings,
        FcmSettings,
        JPushSettings,
    )
}


def nest_flat_names(data: Any) -> Any:
    """Keyword arguments with the flat names (``wechat_mch_id=...``) moved into their
    section (``wechat={"mch_id": ...}``); a flat name wins over the environment's value."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for name, section in SECTIONS.items():
        flat = {
            key[len(name) + 1 :]: out.pop(key)
            for key in list(out)
            if key.startswith(name + "_") and key[len(name) + 1 :] in section.model_fields
        }
        if flat:
            current = out.get(name) or {}
            if isinstance(current, BaseModel):
                current = current.model_dump()
            out[name] = {**current, **flat}
    return out
