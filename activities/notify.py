"""The notice activity: render the notice from templates, claim its delivery row (unique
key: a retried activity never sends twice), hand it to the channel's notifier, and log
the outcome (R8). Channels plug in through ``notifiers.base.Notifier``."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import datetime, timezone

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from notifiers.base import DeliveryError, Notifier
from sentinel.catalogue import Catalogue
from sentinel.links import make_link
from sentinel.models import DeliveryResult, NoticeRequest
from sentinel.render import link_kind_for, render_notice
from store.repo import claim_delivery, finish_delivery
from store.tables import NoticeDelivery

class NotifyActivities:
    def __init__(
        self,
        engine: Engine,
        notifiers: dict[str, Notifier],
        catalogue: Catalogue,
        *,
        support_phone: str,
        support_url: str,
        app_base_url: str,
        link_secret: str,
        link_ttl_s: int,
        policy_version: str | None = None,
    ):
        self.engine = engine
        self.notifiers = notifiers
        self.catalogue = catalogue
        self.support_phone = support_phone
        self.support_url = support_url
        self.app_base_url = app_base_url
        self.link_secret = link_secret
        self.link_ttl_s = link_ttl_s
        self.policy_version = policy_version

    def _texts(self, notice: NoticeRequest) -> tuple[str | None, str | None]:
        if not notice.reason_code:
            return None, None
        entry = self.catalogue.lookup(notice.withdrawal.channel, notice.reason_code)
        if entry is None:
            return None, None
        locale = notice.withdrawal.locale
        return entry.reason_text(locale), entry.action_text(locale)

    @activity.defn(name="deliver_notice")
    async def deliver_notice(self, notice: NoticeRequest) -> DeliveryResult:
        notifier = self.notifiers.get(notice.channel)
        if notifier is None:
            raise ApplicationError(
                f"no notifier for channel {notice.channel!r}", type="UnknownChannel", non_retryable=True
            )
        if not notifier.can_reach(notice):
            return DeliveryResult(key=notice.key, channel=notice.channel, status="skipped", detail="no address")
        w = notice.withdrawal
        link = make_link(
            self.app_base_url, link_kind_for(notice), w.withdrawal_id, w.user_id, self.link_secret,
            int(time.time()), self.link_ttl_s,
        )
        reason_text, action_text = self._texts(notice)
        rendered = render_notice(
            notice,
            reason_text=reason_text,
            action_text=action_text,
            support_phone=self.support_phone,
            support_url=self.support_url,
            link=link,
            now=datetime.now(timezone.utc),
        )
        digest = hashlib.sha256(rendered.text.encode()).hexdigest()
        claim = await asyncio.to_thread(
            claim_delivery,
            self.engine,
            NoticeDelivery(
                key=notice.key,
                withdrawal_id=w.withdrawal_id,
                user_id=w.user_id,
                channel=notice.channel,
                provider=notifier.provider,
                stage=notice.stage.value,
                category=notice.category.value if notice.category else None,
                severity=notice.severity.value,
                template_id=rendered.template_id,
                policy_version=self.policy_version,
                text_sha256=digest,
            ),
        )
        if not claim.send:
            return DeliveryResult(
                key=notice.key, channel=notice.channel, status="duplicate", provider_message_id=claim.provider_message_id
            )
        try:
            message_id = await notifier.send(notice, rendered)
        except DeliveryError as exc:
            await asyncio.to_thread(finish_delivery, self.engine, claim.row_id, status="failed", error=str(exc))
            raise ApplicationError(
                str(exc),
                type="TransientDeliveryError" if exc.retryable else "PermanentDeliveryError",
                non_retryable=not exc.retryable,
            ) from None
        await asyncio.to_thread(
            finish_delivery, self.engine, claim.row_id, status="sent", provider_message_id=message_id,
            template_id=rendered.template_id, text_sha256=digest,
        )
        activity.logger.info("notice %s sent via %s (%s)", notice.key, notice.channel, message_id)
        return DeliveryResult(key=notice.key, channel=notice.channel, status="sent", provider_message_id=message_id)
