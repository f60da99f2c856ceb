"""Email through any SMTP server (aiosmtplib): a text part and an HTML part. The
Message-ID is derived from the notice key, so a re-sent notice is recognisable downstream."""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
from aiosmtplib.email import extract_recipients, extract_sender, flatten_message

from notifiers.base import DeliveryError, Notifier, passing_point_of_no_return
from sentinel.models import NoticeRequest
from sentinel.provider_settings import SmtpSettings
from sentinel.render import RenderedNotice


class SmtpConfig:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout_s: float = 15.0,
    ):
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls, self.timeout_s = username, password, starttls, timeout_s

    @classmethod
    def from_settings(cls, section: SmtpSettings, sender: str) -> SmtpConfig:
        """From ``settings.smtp``; ``sender`` is SENTINEL_MAIL_FROM."""
        return cls(
            host=section.host,
            port=section.port,
            sender=sender,
            username=section.username,
            password=section.password.get_secret_value() if section.password else None,
            starttls=section.starttls,
        )


def message_id_for(key: str, sender: str) -> str:
    domain = sender.rsplit("@", 1)[-1].strip("> ") or "sentinel.local"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def build_message(
    cfg: SmtpConfig, to: str, rendered: RenderedNotice, key: str, withdrawal_id: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = cfg.sender
    msg["To"] = to
    msg["Subject"] = rendered.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id_for(key, cfg.sender)
    msg["X-Withdrawal-Order"] = withdrawal_id  # R8: every notice carries the order number
    msg["Content-Language"] = rendered.locale
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


class EmailNotifier(Notifier):
    channel = "email"
    provider = "smtp"
    marks_point_of_no_return = True

    def __init__(self, cfg: SmtpConfig):
        self.cfg = cfg

    def recipient(self, notice: NoticeRequest) -> str | None:
        return notice.withdrawal.contact.email

    def can_reach(self, notice: NoticeRequest) -> bool:
        return bool(self.recipient(notice))

    async def send(self, notice: NoticeRequest, rendered: RenderedNotice) -> str:
        to = self.recipient(notice)
        if not to:
            raise DeliveryError("no email address", retryable=False)
        msg = build_message(self.cfg, to, rendered, notice.key, notice.withdrawal.withdrawal_id)
        try:
            async with aiosmtplib.SMTP(
                hostname=self.cfg.host,
                port=self.cfg.port,
                username=self.cfg.username,
                password=self.cfg.password,
                start_tls=self.cfg.starttls,
                timeout=self.cfg.timeout_s,
            ) as smtp:
                await smtp.mail(extract_sender(msg) or self.cfg.sender)
                for rcpt in extract_recipients(msg):
                    await smtp.rcpt(rcpt)
                # From here on the server may accept the message: a crash past this point
                # leaves it unknown whether the email went out (notice activity).
                await passing_point_of_no_return()
                await smtp.data(flatten_message(msg, cte_type="7bit"))
        except aiosmtplib.SMTPRecipientRefused as exc:
            raise DeliveryError(f"recipient refused: {exc}", retryable=False) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {type(exc).__name__}: {exc}") from exc
        return msg["Message-ID"]


class OperatorEmailNotifier(EmailNotifier):
    """Operator alerts (stuck payouts, unmapped codes, platform faults) by email."""

    channel = "ops_email"

    def __init__(self, cfg: SmtpConfig, operator_address: str):
        super().__init__(cfg)
        self.operator_address = operator_address

    def recipient(self, notice: NoticeRequest) -> str | None:
        return self.operator_address
