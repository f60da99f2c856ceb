"""One typed settings object, read from environment variables (prefix ``SENTINEL_``) and
an optional ``.env`` file. Every setting is documented in docs/configuration.md with its
default; ``python -m starter settings`` prints the values in force.

Secrets (the callback HMAC secret, SMTP password) come from here, never from code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from sentinel.provider_settings import (
    SECTIONS,
    AlipaySettings,
    AliyunSettings,
    FcmSettings,
    Iso20022Settings,
    JPushSettings,
    SmtpSettings,
    StripeSettings,
    TencentSettings,
    TwilioSettings,
    WeChatSettings,
    nest_flat_names,
)

ROOT = Path(__file__).resolve().parent.parent
#: the development payload key (its bytes spell "dev-payload-key-NOT-for-prod-use"): public
DEV_PAYLOAD_KEYS = "dev:ZGV2LXBheWxvYWQta2V5LU5PVC1mb3ItcHJvZC11c2U="
#: who the notices say to call, and whose name they carry, in development: fictional on
#: purpose (555-01xx numbers are reserved for fiction), refused in production
DEV_SUPPORT_PHONE = "555-0100"
DEV_BRAND_NAME = "Example Pay"
DEV_BRAND_NAME_ZH = "示例支付"
#: the development decision signing key (Ed25519 seed; its bytes spell "dev-decision-key-NOT-for-prod-!!"):
#: public, like its public half below, which a production worker must not trust
DEV_DECISION_SIGNING_KEY = "dev:ZGV2LWRlY2lzaW9uLWtleS1OT1QtZm9yLXByb2QtISE="
DEV_DECISION_PUBLIC_KEY = "dev:IaEmDKQsD9NbyI5WQQxfxfge///WpfOwUtMnWSC3MCc="


#: an origin the widget may be framed by: scheme, host (a leading "*." allowed), optional port
_ORIGIN = re.compile(r"https?://(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?")


class Settings(BaseSettings):
    # A section's variables keep their flat names: SENTINEL_WECHAT_MCH_ID is split once
    # after the prefix into the section wechat and its field mch_id.
    model_config = SettingsConfigDict(
        env_prefix="SENTINEL_",
        env_file=".env",
        extra="ignore",
        env_nested_delimiter="_",
        env_nested_max_split=1,
    )

    # Temporal
    temporal_address: str = Field("127.0.0.1:7233", description="host:port of the Temporal frontend")
    temporal_namespace: str = Field("default", description="Temporal namespace")
    temporal_ui: str = Field(
        "http://127.0.0.1:8233",
        max_length=300,
        description="base URL of the Temporal Web UI the operations console links to (the dev server's UI by default)",
    )
    task_queue: str = Field("withdrawal-sentinel", description="task queue of the worker")
    worker_max_cached_workflows: int = Field(
        250,
        description="workflows kept in worker memory; others are rebuilt from history when they wake (RSS bound)",
    )
    temporal_tls_cert: Path | None = Field(
        None,
        description="client certificate (PEM) this process shows the Temporal frontend (mTLS); set with "
        "SENTINEL_TEMPORAL_TLS_KEY; unset: plain connection (development)",
    )
    temporal_tls_key: Path | None = Field(None, description="private key (PEM) of SENTINEL_TEMPORAL_TLS_CERT")
    temporal_tls_ca: Path | None = Field(
        None, description="CA certificate (PEM) that signed the Temporal frontend's server certificate"
    )
    temporal_tls_server_name: str | None = Field(
        None,
        description="name to expect in the frontend's server certificate, when it is not the address's host",
    )
    payload_keys: SecretStr = Field(
        SecretStr(DEV_PAYLOAD_KEYS),
        description="AES-256 keys that encrypt workflow history payloads, id:base64key,... newest first "
        "(the newest encrypts, all decrypt); the default is a public development key: set your own",
    )

    # Application database (notices, inbox, parked callbacks)
    database_url: str = Field(
        "sqlite:///.data/sentinel.db",
        description="SQLAlchemy URL; postgresql+psycopg://user@host/db for production",
    )

    # Configuration as data
    delays_file: Path = Field(
        ROOT / "config" / "delays.yaml", description="delay thresholds per channel/bank"
    )
    risk_rules_file: Path = Field(
        ROOT / "config" / "risk_rules.yaml", description="risk rules (R12), re-read on change"
    )
    outage_file: Path = Field(
        ROOT / "config" / "outage.yaml",
        description="outage detection thresholds (issue #14), re-read at each evaluation",
    )
    eta_file: Path = Field(
        ROOT / "config" / "eta.yaml",
        description="the ETA of delay notices from past arrivals (R24), re-read on change",
    )

    # Channels: the generic bank protocol (also spoken by the simulator)
    channel_base_url: str = Field(
        "http://127.0.0.1:8701", description="base URL of the generic payout channel"
    )
    channel_secret: SecretStr = Field(
        SecretStr("dev-channel-secret"), description="HMAC-SHA256 secret shared with the generic channel"
    )
    callback_tolerance_s: int = Field(
        300,
        description="oldest callback timestamp accepted, seconds; also how far in the future a signed "
        "Alipay notify may be dated",
    )
    channel_timeout_s: float = Field(10.0, description="HTTP timeout for channel calls, seconds")

    # The channel adapters' own sections (sentinel/provider_settings.py):
    # SENTINEL_<SECTION>_<FIELD>, e.g. SENTINEL_WECHAT_MCH_ID is wechat.mch_id
    alipay: AlipaySettings = Field(default_factory=AlipaySettings, description=AlipaySettings.__doc__)

    wechat: WeChatSettings = Field(default_factory=WeChatSettings, description=WeChatSettings.__doc__)

    stripe: StripeSettings = Field(default_factory=StripeSettings, description=StripeSettings.__doc__)

    iso20022: Iso20022Settings = Field(default_factory=Iso20022Settings, description=Iso20022Settings.__doc__)

    # Email (R6)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings, description=SmtpSettings.__doc__)
    mail_from: str = Field("Withdrawals <no-reply@sentinel.example>", description="sender of notice emails")

    # Notices
    support_phone: str = Field(
        DEV_SUPPORT_PHONE,
        min_length=3,
        max_length=20,
        pattern=r"^\+?[0-9][0-9 -]*[0-9]$",
        description="your support hotline, printed in every notice on every channel (R19); the default is a "
        "fictional 555 number for development: production must set its own (refused otherwise)",
    )
    support_url: str = Field("https://pay.example/support", description="online support entry (R19)")
    brand_name: str = Field(
        DEV_BRAND_NAME,
        min_length=1,
        max_length=16,
        description="your brand as English notices name it (SMS tag [Example Pay]); the default is a fictional "
        "development brand: production must set its own (refused otherwise)",
    )
    brand_name_zh: str = Field(
        DEV_BRAND_NAME_ZH,
        min_length=1,
        max_length=8,
        description="your brand as Chinese notices name it (SMS tag 【示例支付】); development default is fictional: "
        "production must set its own (refused otherwise)",
    )
    sms_link: str = Field(
        "pay.example/w",
        max_length=40,
        pattern=r"^(https?://)?[A-Za-z0-9.-]+\.[A-Za-z]{2,}(/[A-Za-z0-9._~/-]*)?$",
        description="short link printed in SMS (they have no room for a signed deep link): opens the app's "
        "withdrawals page, where the user signs in and finds the order; China SMS templates register it as text",
    )
    app_base_url: str = Field(
        "https://pay.example/app", description="base of the deep links in notices (R16)"
    )
    link_secret: SecretStr = Field(
        SecretStr("dev-link-secret"), description="HMAC key of the signed deep links"
    )
    link_ttl_s: int = Field(7 * 86400, description="how long a deep link in a notice stays valid, seconds")
    notice_policy_file: Path = Field(
        ROOT / "config" / "notice_policy.yaml", description="severity and channels"
    )
    operator_email: str | None = Field("ops@sentinel.example", description="where operator alerts go")
    review_recipients: str | None = Field(
        None,
        max_length=1000,
        description="who gets the daily and weekly review reports by email, comma-separated "
        "(default: operator_email)",
    )
    spot_checks_per_day: int = Field(
        20, ge=0, le=1000, description="automated decisions drawn each day for a human spot check (R23)"
    )
    spot_checks_min_per_stratum: int = Field(
        1, ge=0, le=100, description="spot checks: at least this many of each category x route drawn"
    )
    spot_checks_seed: int = Field(0, description="spot checks: seed of the daily draw (with the day)")

    # Callbacks reach the gateway here (sent to the channel with each payout)
    callback_base_url: str = Field("http://127.0.0.1:8700", description="public base URL of the gateway")

    # Gateway
    gateway_host: str = Field("127.0.0.1", description="bind address of the HTTP gateway")
    gateway_port: int = Field(8700, description="port of the HTTP gateway")
    status_query_timeout_s: float = Field(
        1.0,
        gt=0,
        description="how long the gateway waits for a workflow's live status query before it answers "
        "from the app database's projection (status reads) or 503 (changes that need the live view), seconds",
    )

    # Notice providers (issue #5): data in providers_file, credentials here
    providers_file: Path = Field(
        ROOT / "config" / "providers.yaml", description="routes and provider data (no secrets)"
    )
    aliyun: AliyunSettings = Field(default_factory=AliyunSettings, description=AliyunSettings.__doc__)
    tencent: TencentSettings = Field(default_factory=TencentSettings, description=TencentSettings.__doc__)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings, description=TwilioSettings.__doc__)
    receipts_token: SecretStr | None = Field(
        None,
        description="secret path segment of the receipt URLs given to Aliyun and Tencent (they do not sign "
        "receipts): /v1/receipts/aliyun/<token>, /v1/receipts/tencent/<token>; redacted in the gateway's access "
        "log; unset: those endpoints answer 404",
    )
    fcm: FcmSettings = Field(default_factory=FcmSettings, description=FcmSettings.__doc__)
    jpush: JPushSettings = Field(default_factory=JPushSettings, description=JPushSettings.__doc__)

    # Gateway authentication (issue #3)
    api_keys_file: Path | None = Field(
        ROOT / "config" / "api_keys.dev.yaml",
        description="YAML of API keys (sha256 of each key, role, name); the dev file's keys are public: replace it",
    )
    reviewers_file: Path | None = Field(
        ROOT / "config" / "reviewers.dev.yaml",
        description="YAML of the consoles' accounts (name, role reviewer, supervisor or operator, argon2 password "
        "hash); the dev file's passwords are public: replace it",
    )
    user_token_secret: SecretStr = Field(
        SecretStr("dev-user-token-secret"), description="HMAC key of the signed end-user tokens"
    )
    user_token_ttl_s: int = Field(3600, description="lifetime of an end-user token, seconds")
    decision_signing_key: SecretStr = Field(
        SecretStr(DEV_DECISION_SIGNING_KEY),
        description="the gateway's Ed25519 key that signs review decisions, kid:base64(32-byte seed) "
        "(`python -m starter keys decision`); the default is public: set your own",
    )
    decision_public_keys: str = Field(
        DEV_DECISION_PUBLIC_KEY,
        description="the public keys the workflow accepts review decisions from, kid:base64,... (the current one "
        "and, during a rotation, the previous); the default verifies the public development key: production "
        "refuses it",
    )
    decision_token_ttl_s: int = Field(
        600, gt=0, le=3600, description="how long a signed review decision stays valid, seconds"
    )
    codec_cors_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:8233", "http://127.0.0.1:8233"],
        description="JSON list of browser origins (the Temporal UI) allowed to call /codec/encode and /codec/decode",
    )
    user_token_max_ttl_s: int = Field(
        30 * 86400,
        description="longest lifetime (expiry - issue time) of a user token minted or accepted, seconds",
    )

    # Web pages (issue #13): progress, records, inbox, the embeddable inbox widget
    pages_session_ttl_s: int = Field(
        8 * 3600,
        gt=0,
        description="longest life of a page session cookie, seconds (never past the user token's own expiry)",
    )
    pages_max_streams: int = Field(
        200,
        gt=0,
        description="live update streams (server-sent events) open at once per gateway process; "
        "past it a page answers 503 and falls back to reloading",
    )
    pages_stream_poll_s: float = Field(
        1.5, gt=0, description="how often an open live stream checks its withdrawal or inbox, seconds"
    )
    pages_signin_per_minute: int = Field(
        10, gt=0, description="sign-in attempts per client address per minute; more are answered 429"
    )
    pages_frame_ancestors: list[str] = Field(
        default_factory=lambda: ["'self'"],
        description="JSON list of the sites allowed to embed the inbox widget (/pages/widget) in a frame: "
        "origins like \"https://www.example.com\", or 'self'; it is the widget's CSP frame-ancestors. "
        "Every other page can never be framed",
    )

    # Development machine (issue #11)
    dev_mode: bool = Field(
        False,
        description="allow the public development credentials (dev-* secrets, config/api_keys.dev.yaml); "
        "without it the gateway and the worker refuse to start with them. Never set in production",
    )

    # Observability
    otlp_endpoint: str | None = Field(None, description="OTLP/HTTP traces endpoint; unset: no export")
    otel_console: bool = Field(False, description="print spans to stdout (debugging)")

    @model_validator(mode="before")
    @classmethod
    def _flat_names(cls, data: Any) -> Any:
        """``Settings(wechat_mch_id=...)`` as the environment variable names it."""
        return nest_flat_names(data)

    @field_validator("pages_frame_ancestors")
    @classmethod
    def _frame_ancestors(cls, value: list[str]) -> list[str]:
        """Each entry goes into a header: an origin (scheme://host[:port]) or 'self', nothing else."""
        bad = [v for v in value if v != "'self'" and not _ORIGIN.fullmatch(v)]
        if bad or not value:
            raise ValueError(f"pages_frame_ancestors: not an origin or 'self': {bad or 'an empty list'}")
        return value

    def temporal_ui_url(self) -> str:
        return self.temporal_ui.rstrip("/")


def documented_settings() -> Iterator[tuple[str, FieldInfo]]:
    """(environment variable, field) of every setting in the order of the model, each
    provider section's settings in its place (``SENTINEL_WECHAT_MCH_ID`` ...)."""
    for name, field in Settings.model_fields.items():
        section = SECTIONS.get(name)
        if section is None:
            yield f"SENTINEL_{name.upper()}", field
        else:
            for env, sub in section.env_names():
                yield env, section.model_fields[sub]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
