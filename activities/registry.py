"""Builds every activity from the settings: the one place where configuration meets I/O."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from activities.channel import ChannelActivities
from activities.eta import EtaSource, load_eta_config
from activities.notify import NotifyActivities
from activities.outage import OutageActivities
from activities.reviews import ReviewActivities
from activities.tracking import TrackingActivities
from channels.registry import build_channels
from notifiers.base import Notifier
from notifiers.email import EmailNotifier, OperatorEmailNotifier, SmtpConfig
from notifiers.inbox import InboxNotifier
from notifiers.registry import build_provider_notifiers
from runtime.config_files import HotFile
from sentinel.catalogue import default_catalogue
from sentinel.decision_tokens import parse_public_keys
from sentinel.notice_policy import load_notice_policy
from sentinel.outage import load_outage_config
from sentinel.policy import validate_delays_document
from sentinel.render import Brand
from sentinel.risk import load_ruleset
from sentinel.settings import Settings
from store.db import engine_for


def build_notifiers(settings: Settings, engine) -> dict[str, Notifier]:
    smtp = SmtpConfig.from_settings(settings.smtp, settings.mail_from)
    notifiers: dict[str, Notifier] = {"inbox": InboxNotifier(engine), "email": EmailNotifier(smtp)}
    if settings.operator_email:
        notifiers["ops_email"] = OperatorEmailNotifier(smtp, settings.operator_email)
    notifiers.update(build_provider_notifiers(settings, engine=engine))
    return notifiers


def build_activities(
    settings: Settings, channels: dict | None = None, clock: Callable[[], datetime] | None = None
) -> list[Callable]:
    """All activities; ``channels`` replaces the channel adapters (tests script them);
    ``clock`` the time a sent notice is recorded at (the trace replay's server clock)."""
    engine = engine_for(settings.database_url)
    catalogue = default_catalogue()
    notifiers = build_notifiers(settings, engine)
    delays = HotFile(settings.delays_file, validate_delays_document)
    notice_policy = HotFile(settings.notice_policy_file, load_notice_policy)
    channels = channels or build_channels(settings, catalogue)
    risk_rules = HotFile(settings.risk_rules_file, load_ruleset)
    decision_keys = parse_public_keys(settings.decision_public_keys)  # a bad list stops the worker at start
    eta = EtaSource(engine, HotFile(settings.eta_file, load_eta_config))
    tracking = TrackingActivities(
        engine, delays, notice_policy, risk_rules, sorted(notifiers), decision_keys, eta=eta
    )
    reviews = ReviewActivities(engine, decision_keys)
    channel = ChannelActivities(channels, settings.callback_base_url, engine)
    notify = NotifyActivities(
        engine,
        notifiers,
        catalogue,
        support_phone=settings.support_phone,
        support_url=settings.support_url,
        brand=Brand(settings.brand_name, settings.brand_name_zh, settings.sms_link),
        app_base_url=settings.app_base_url,
        link_secret=settings.link_secret.get_secret_value(),
        link_ttl_s=settings.link_ttl_s,
        notice_policy=notice_policy,
        clock=clock,
    )
    outage = OutageActivities(
        engine,
        notifiers,
        HotFile(settings.outage_file, load_outage_config),
        support_phone=settings.support_phone,
        app_base_url=settings.app_base_url,
        link_secret=settings.link_secret.get_secret_value(),
        link_ttl_s=settings.link_ttl_s,
        brand=Brand(settings.brand_name, settings.brand_name_zh, settings.sms_link),
    )
    return [
        tracking.init_tracking,
        tracking.record_progress,
        channel.submit_payout,
        channel.query_payout,
        notify.deliver_notice,
        notify.give_up_notice,
        reviews.record_decision,
        reviews.current_decision_keys,
        outage.outage_observe,
        outage.outage_fired,
        outage.outage_heads_up,
        outage.outage_resolved,
    ]
