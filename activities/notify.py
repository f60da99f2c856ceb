"""The notice activity: render the notice from templates, claim its delivery row (unique
key: a retried activity never sends twice), hand it to the channel's notifier, and log
the outcome (R8). Channels plug in through ``notifiers.base.Notifier``."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from notifiers.base import DeliveryError, Notifier
from sentinel.catalogue import Catalogue
from sentinel.links import make_link
from sentinel.models import DeliveryResult, NoticeRequest
from sentinel.render import link_kind_for, render_notice
from activities.config_files import HotFile
from sentinel.notice_policy import load_notice_policy
from store.repo import claim_delivery, finish_delivery, recent_notices, record_suppressed
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
        notice_policy: HotFile | None = None,
    ):
        self.engine = engine
        self.notifiers = notifiers
        self.catalogue = catalogue
        self.support_phone = support_phone
        self.support_url = support_url
        self.app_base_url = app_base_url
        self.link_secret = link_secret
        self.link_ttl_s = link_ttl_s
        self.notice_policy = notice_policy

    def _suppression(self, notice: NoticeRequest) -> tuple[str | None, str | None]:
        """(reason not to interrupt the user, policy version), from the policy in force and
        the user's recent notices in the delivery log (inhibition, per-user cap)."""
        if self.notice_policy is None:
            return None, None
        policy = load_notice_policy(self.notice_policy.get())
        windows = [r.window_s for r in policy.inhibit] + ([policy.cap.window_s] if policy.cap else [])
        if not windows:
            return None, policy.version
        now = datetime.now(timezone.utc)
        recent = recent_notices(self.engine, notice.withdrawal.user_id, now - timedelta(seconds=max(windows)))
        recent = [r for r in recent if not (r.withdrawal_id == notice.withdrawal.withdrawal_id and r.stage == notice.stage)]
        reason = policy.suppression(
            channel=notice.channel, stage=notice.stage, category=notice.category, severity=notice.severity,
            withdrawal_id=notice.withdrawal.withdrawal_id, recent=recent, now=now,
        )
        return reason, policy.version

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
        reason, policy_version = await asyncio.to_thread(self._suppression, notice)
        row = NoticeDelivery(
            key=notice.key,
            withdrawal_id=w.withdrawal_id,
            user_id=w.user_id,
            channel=notice.channel,
            provider=notifier.provider[:32],
            stage=notice.stage.value,
            category=notice.category.value if notice.category else None,
            severity=notice.severity.value,
            template_id=rendered.template_id,
            policy_version=policy_version,
            text_sha256=digest,
        )
        if reason is not None:
            await asyncio.to_thread(record_suppressed, self.engine, row, reason)
            return DeliveryResult(key=notice.key, channel=notice.channel, status="suppressed", detail=reason)
        claim = await asyncio.to_thread(claim_delivery, self.engine, row)
        if not claim.send:
            if claim.status == "sending":
                # another attempt is sending right now: let the retry policy come back later
                raise ApplicationError(f"{notice.key} is being sent by another attempt", type="DeliveryInProgress")
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
