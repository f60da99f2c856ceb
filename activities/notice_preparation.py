"""What the notice activity does before it sends: the notice policy's verdict for this
user (inhibition, the per-user cap, the fold window) and the rendered notice (the
catalogue's reason and action texts, the signed deep link, the templates). The activity
class in ``activities.notify`` inherits it."""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from notifiers.base import Notifier
from runtime.config_files import HotFile
from sentinel.catalogue import Catalogue
from sentinel.links import make_link
from sentinel.locales import template_locale
from sentinel.models import NoticeRequest
from sentinel.notice_policy import load_notice_policy
from sentinel.render import Brand, RenderedNotice, render_notice
from sentinel.template_files import link_kind_for
from store.deliveries import (
    recent_notices,
)


class NoticePreparation:
    """The notice activity's settings and its steps before a send."""

    def __init__(
        self,
        engine: Engine,
        notifiers: dict[str, Notifier],
        catalogue: Catalogue,
        *,
        support_phone: str,
        support_url: str,
        app_base_url: str,
        brand: Brand | None = None,
        link_secret: str,
        link_ttl_s: int,
        notice_policy: HotFile | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        self.engine = engine
        #: when a notice counts as sent in the event record: the wall clock; the trace replay
        #: (starter/replay.py) gives the time-skipping server's clock instead
        self.clock = clock or (lambda: datetime.now(UTC))
        self.notifiers = notifiers
        self.catalogue = catalogue
        self.support_phone = support_phone
        self.support_url = support_url
        self.brand = brand or Brand()
        self.app_base_url = app_base_url
        self.link_secret = link_secret
        self.link_ttl_s = link_ttl_s
        self.notice_policy = notice_policy

    def _policy_check(self, notice: NoticeRequest) -> tuple[str | None, str | None, datetime | None]:
        """(reason not to interrupt the user, policy version, end of the fold window to
        wait for), from the policy in force and the user's recent notices in the delivery
        log (inhibition, per-user cap, folding)."""
        if self.notice_policy is None:
            return None, None, None
        policy = self.notice_policy.derived(load_notice_policy)
        windows = [r.window_s for r in policy.inhibit] + ([policy.cap.window_s] if policy.cap else [])
        windows += [policy.fold.window_s] if policy.fold else []
        if not windows:
            return None, policy.version, None
        now = datetime.now(UTC)
        recent = recent_notices(self.engine, notice.withdrawal.user_id, now - timedelta(seconds=max(windows)))
        recent = [
            r
            for r in recent
            if not (r.withdrawal_id == notice.withdrawal.withdrawal_id and r.stage == notice.stage)
        ]
        reason = policy.suppression(
            channel=notice.channel,
            stage=notice.stage,
            category=notice.category,
            severity=notice.severity,
            withdrawal_id=notice.withdrawal.withdrawal_id,
            recent=recent,
            now=now,
        )
        until = (
            None
            if reason
            else policy.fold_until(
                channel=notice.channel,
                severity=notice.severity,
                withdrawal_id=notice.withdrawal.withdrawal_id,
                recent=recent,
                now=now,
            )
        )
        return reason, policy.version, until

    def _policy_version(self) -> str | None:
        return (
            self.notice_policy.derived(load_notice_policy).version if self.notice_policy is not None else None
        )

    def _may_be_batched(self, notice: NoticeRequest) -> bool:
        """Only a channel the policy folds can have a batched row to come back to (the
        lookup is skipped for every other delivery)."""
        if self.notice_policy is None:
            return False
        fold = self.notice_policy.derived(load_notice_policy).fold
        return fold is not None and notice.channel in fold.channels

    def _texts(self, notice: NoticeRequest) -> tuple[str | None, str | None]:
        if not notice.reason_code:
            return None, None
        entry = self.catalogue.lookup(notice.withdrawal.channel, notice.reason_code)
        if entry is None:
            return None, None
        locale = template_locale(notice.withdrawal.locale)
        return entry.reason_text(locale), entry.action_text(locale)

    def _link(self, notice: NoticeRequest) -> str:
        w = notice.withdrawal
        return make_link(
            self.app_base_url,
            link_kind_for(notice),
            w.withdrawal_id,
            w.user_id,
            self.link_secret,
            int(time.time()),
            self.link_ttl_s,
        )

    def _render(self, notice: NoticeRequest) -> RenderedNotice:
        reason_text, action_text = self._texts(notice)
        return render_notice(
            notice,
            reason_text=reason_text,
            action_text=action_text,
            support_phone=self.support_phone,
            support_url=self.support_url,
            link=self._link(notice),
            now=datetime.now(UTC),
            brand=self.brand,
        )
