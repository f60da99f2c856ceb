"""The outage watch's activities (issue #14 item 3): read the event record's window and
count it (sentinel/outage.py ``observe``), record a fired incident (the progress pages'
banner), alert operations once through the operator alert channel (``ops_email``, as the
withdrawal workflow's ``_alert_operators`` does), tell each affected user once per incident
through the notice channels that need no contact details (the in-app inbox, push), and at
resolution tell only those users that it is over.

Every delivery goes through the delivery log (``claim_delivery``: one row per key, a retried
activity never sends twice) and the notifiers; ``outage_notice`` rows say who was told."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.engine import Engine
from temporalio import activity

from notifiers.base import DeliveryError, Notifier
from runtime.config_files import HotFile
from sentinel.delivery import DeliveryStatus
from sentinel.links import make_link
from sentinel.models import NoticeRequest, WithdrawalRequest
from sentinel.outage import (
    Incident,
    IncidentInput,
    NoticeReport,
    Observation,
    OutageConfig,
    load_outage_config,
    observe,
    rows_since,
)
from sentinel.outage_notice import Order, render_outage_alert, render_outage_notice
from sentinel.render import Brand, RenderedNotice
from sentinel.taxonomy import ExceptionCategory, Severity, Stage, WithdrawalStatus
from store import incidents as store
from store.db import saved_id
from store.deliveries import claim_delivery, finish_delivery
from store.tables import NoticeDelivery, OutageIncident, WithdrawalRecord


def _request(record: WithdrawalRecord) -> WithdrawalRequest:
    """The notifiers' view of a withdrawal from its projection (no contact details: the
    channels used here need none)."""
    return WithdrawalRequest(
        withdrawal_id=record.withdrawal_id,
        user_id=record.user_id,
        amount=Decimal(record.amount),
        currency=record.currency,
        channel=record.channel,
        bank_code=record.bank_code,
        card_last4=record.card_last4,
        payee_ref="outage-notice",
        locale=record.locale,
        created_at=record.created_at if record.created_at.tzinfo else record.created_at.replace(tzinfo=UTC),
    )


def _operations(incident: Incident) -> WithdrawalRequest:
    """The operator alert is about an incident, not a withdrawal: its id stands for the order."""
    return WithdrawalRequest(
        withdrawal_id=incident.id,
        user_id="operations",
        amount=Decimal("0.01"),
        currency="CNY",
        channel=incident.channel if len(incident.channel) > 1 else "generic",
        bank_code=incident.bank if len(incident.bank) > 1 else "XX",
        card_last4="0000",
        payee_ref="outage-alert",
        locale="en-US",
    )


class OutageActivities:
    def __init__(
        self,
        engine: Engine,
        notifiers: dict[str, Notifier],
        config: HotFile,
        *,
        support_phone: str,
        app_base_url: str,
        link_secret: str,
        link_ttl_s: int,
        brand: Brand | None = None,
    ):
        self.engine = engine
        self.notifiers = notifiers
        self.config = config
        self.support_phone = support_phone
        self.app_base_url = app_base_url
        self.link_secret = link_secret
        self.link_ttl_s = link_ttl_s
        self.brand = brand or Brand()

    def current_config(self) -> OutageConfig:
        return self.config.derived(load_outage_config)

    # ----------------------------------------------------------------------- observe

    def _observe(self, now: datetime) -> Observation:
        cfg = self.current_config()
        rows = store.outage_rows(self.engine, rows_since(now, cfg), now, cfg.max_rows)
        return Observation(config=cfg, counts=observe(rows, now, cfg), rows=len(rows))

    @activity.defn(name="outage_observe")
    async def outage_observe(self, now: datetime) -> Observation:
        return await asyncio.to_thread(self._observe, now)

    # ----------------------------------------------------------------------- deliveries

    async def _deliver(
        self, key: str, channel: str, stage: str, notice: NoticeRequest, rendered: RenderedNotice
    ) -> bool:
        """One delivery through the delivery log; True when it is sent (now or before), False
        when the channel cannot reach the user. A failed send raises (the activity retries)."""
        notifier = self.notifiers.get(channel)
        if notifier is None or not notifier.can_reach(notice):
            return False
        row = NoticeDelivery(
            key=key[:200],
            withdrawal_id=notice.withdrawal.withdrawal_id,
            user_id=notice.withdrawal.user_id,
            channel=channel,
            provider=notifier.provider[:32],
            stage=stage,
            severity=notice.severity.value,
            template_id=rendered.template_id,
        )
        claim = await asyncio.to_thread(claim_delivery, self.engine, row)
        if not claim.send:
            return claim.status in ("sent", "delivered", "read")
        try:
            message_id = await notifier.send(notice, rendered)
        except DeliveryError as exc:
            await asyncio.to_thread(
                finish_delivery, self.engine, claim.row_id, status=DeliveryStatus.FAILED, error=str(exc)
            )
            raise
        await asyncio.to_thread(
            finish_delivery,
            self.engine,
            claim.row_id,
            status=DeliveryStatus.SENT,
            provider_message_id=message_id,
        )
        return True

    def _notice(self, key: str, channel: str, kind: str, record: WithdrawalRecord) -> NoticeRequest:
        return NoticeRequest(
            key=key[:200],
            channel=channel,
            stage=Stage.DETECTED if kind == "heads_up" else Stage.RESOLVED,
            category=ExceptionCategory.BANK_DELAY,
            severity=Severity.INFO,
            status=WithdrawalStatus(record.status)
            if record.status in WithdrawalStatus.__members__
            else WithdrawalStatus.PROCESSING,
            withdrawal=_request(record),
        )

    async def _tell(
        self, incident: Incident, kind: str, user_id: str, withdrawal_ids: list[str], cfg: OutageConfig
    ) -> int:
        found = await asyncio.to_thread(store.records, self.engine, withdrawal_ids)
        ordered = [found[w] for w in withdrawal_ids if w in found]
        if not ordered:
            return 0
        newest = ordered[0]
        link = make_link(
            self.app_base_url,
            "track",
            newest.withdrawal_id,
            user_id,
            self.link_secret,
            int(time.time()),
            self.link_ttl_s,
        )
        rendered = render_outage_notice(
            kind,
            newest.locale,
            incident.bank,
            [Order(r.withdrawal_id, r.card_last4) for r in ordered],
            link=link,
            support_phone=self.support_phone,
            brand=self.brand,
            incident_id=incident.id,
        )
        sent = 0
        stage = "OUTAGE" if kind == "heads_up" else "OUTAGE_RESOLVED"
        for channel in cfg.heads_up_channels:
            key = f"outage/{incident.id}/{user_id}/{kind}/{channel}"
            notice = self._notice(key, channel, kind, newest)
            sent += await self._deliver(key, channel, stage, notice, rendered)
        return sent

    async def _finish(self, incident: Incident, kind: str, cfg: OutageConfig, report: NoticeReport) -> None:
        """Deliver every claimed, undelivered notice of this kind (a retry finishes them)."""
        while True:
            pending = await asyncio.to_thread(
                store.undelivered, self.engine, incident.id, kind, cfg.max_users_per_sweep
            )
            if not pending:
                return
            for n in pending:
                report.delivered += await self._tell(
                    incident, kind, n.user_id, n.withdrawal_ids.split(","), cfg
                )
                await asyncio.to_thread(store.mark_delivered, self.engine, saved_id(n.id))
                activity.heartbeat(n.id)

    async def _alert(self, incident: Incident, kind: str, users: int = 0) -> bool:
        rendered = render_outage_alert(kind, incident, users)
        key = f"outage/{incident.id}/OPERATOR_ALERT/{kind}/ops_email"
        notice = NoticeRequest(
            key=key,
            channel="ops_email",
            stage=Stage.OPERATOR_ALERT,
            category=ExceptionCategory.BANK_DELAY,
            severity=Severity.HIGH,
            status=WithdrawalStatus.DELAYED,
            withdrawal=_operations(incident),
            alert=incident.summary()[:300],
        )
        return await self._deliver(key, "ops_email", "OPERATOR_ALERT", notice, rendered)

    # ----------------------------------------------------------------------- transitions

    @activity.defn(name="outage_fired")
    async def outage_fired(self, inp: IncidentInput) -> bool:
        """Record the incident (the banner) and alert operations once. True when alerted."""
        inc = inp.incident
        await asyncio.to_thread(
            store.record_incident,
            self.engine,
            OutageIncident(
                id=inc.id,
                bank_code=inc.bank,
                channel=inc.channel,
                fired_at=inc.fired_at,
                summary=inc.summary(),
                rates=inc.rates_json(),
                signals=",".join(s.name for s in inc.signals),
                config_version=inp.config.version,
            ),
        )
        return await self._alert(inc, "fired")

    @activity.defn(name="outage_heads_up")
    async def outage_heads_up(self, inp: IncidentInput) -> NoticeReport:
        """Tell the users with an open withdrawal on the incident's bank and channel who were
        not told yet (at most ``max_users_per_sweep`` a call: the next evaluation goes on)."""
        inc, cfg = inp.incident, inp.config
        report = NoticeReport()
        affected = await asyncio.to_thread(
            store.untold_affected, self.engine, inc.id, inc.bank, inc.channel, cfg.max_users_per_sweep
        )
        for user_id, rows in affected.items():
            if await asyncio.to_thread(
                store.claim_notice, self.engine, inc.id, user_id, "heads_up", [r.withdrawal_id for r in rows]
            ):
                report.users += 1
        await self._finish(inc, "heads_up", cfg, report)
        return report

    @activity.defn(name="outage_resolved")
    async def outage_resolved(self, inp: IncidentInput) -> NoticeReport:
        """Mark the incident resolved (the banner goes), tell those who got the heads-up,
        and tell operations."""
        inc, cfg = inp.incident, inp.config
        await asyncio.to_thread(store.resolve_incident, self.engine, inc.id, datetime.now(UTC))
        report = NoticeReport()
        for n in await asyncio.to_thread(store.told_users, self.engine, inc.id, "heads_up"):
            if await asyncio.to_thread(
                store.claim_notice, self.engine, inc.id, n.user_id, "resolved", n.withdrawal_ids.split(",")
            ):
                report.users += 1
        await self._finish(inc, "resolved", cfg, report)
        told = len(await asyncio.to_thread(store.told_users, self.engine, inc.id, "resolved"))
        await self._alert(inc, "resolved", told)
        return report
