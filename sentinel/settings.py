"""One typed settings object, read from environment variables (prefix ``SENTINEL_``) and
an optional ``.env`` file. Every setting is documented in docs/configuration.md with its
default; ``python -m starter settings`` prints the values in force.

Secrets (the callback HMAC secret, SMTP password) come from here, never from code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SENTINEL_", env_file=".env", extra="ignore")

    # Temporal
    temporal_address: str = Field("127.0.0.1:7233", description="host:port of the Temporal frontend")
    temporal_namespace: str = Field("default", description="Temporal namespace")
    task_queue: str = Field("withdrawal-sentinel", description="task queue of the worker")

    # Application database (notices, inbox, parked callbacks)
    database_url: str = Field(
        "sqlite:///.data/sentinel.db",
        description="SQLAlchemy URL; postgresql+psycopg://user@host/db for production",
    )

    # Configuration as data
    delays_file: Path = Field(ROOT / "config" / "delays.yaml", description="delay thresholds per channel/bank")
    risk_rules_file: Path = Field(ROOT / "config" / "risk_rules.yaml", description="risk rules (R12), re-read on change")

    # Channels: the generic bank protocol (also spoken by the simulator)
    channel_base_url: str = Field("http://127.0.0.1:8701", description="base URL of the generic payout channel")
    channel_secret: SecretStr = Field(
        SecretStr("dev-channel-secret"), description="HMAC-SHA256 secret shared with the generic channel"
    )
    callback_tolerance_s: int = Field(300, description="oldest callback timestamp accepted, seconds")
    channel_timeout_s: float = Field(10.0, description="HTTP timeout for channel calls, seconds")

    # Email (R6)
    smtp_host: str = Field("127.0.0.1", description="SMTP server host")
    smtp_port: int = Field(8025, description="SMTP server port")
    smtp_username: str | None = Field(None, description="SMTP login, if the server needs one")
    smtp_password: SecretStr | None = Field(None, description="SMTP password")
    smtp_starttls: bool = Field(False, description="upgrade the SMTP connection with STARTTLS")
    mail_from: str = Field("Withdrawals <no-reply@sentinel.example>", description="sender of notice emails")

    # Notices
    support_phone: str = Field("95188", description="support phone printed in every notice (R19)")
    support_url: str = Field("https://pay.example/support", description="online support entry (R19)")
    app_base_url: str = Field("https://pay.example/app", description="base of the deep links in notices (R16)")
    link_secret: SecretStr = Field(SecretStr("dev-link-secret"), description="HMAC key of the signed deep links")
    link_ttl_s: int = Field(7 * 86400, description="how long a deep link in a notice stays valid, seconds")
    notice_policy_file: Path = Field(ROOT / "config" / "notice_policy.yaml", description="severity and channels")
    operator_email: str | None = Field("ops@sentinel.example", description="where operator alerts go")

    # Callbacks reach the gateway here (sent to the channel with each payout)
    callback_base_url: str = Field("http://127.0.0.1:8700", description="public base URL of the gateway")

    # Gateway
    gateway_host: str = Field("127.0.0.1", description="bind address of the HTTP gateway")
    gateway_port: int = Field(8700, description="port of the HTTP gateway")

    # Observability
    otlp_endpoint: str | None = Field(None, description="OTLP/HTTP traces endpoint; unset: no export")
    otel_console: bool = Field(False, description="print spans to stdout (debugging)")

    def temporal_ui_url(self) -> str:
        return "http://127.0.0.1:8233"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
