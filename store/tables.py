"""Tables of the application database (sqlmodel). SQLite by default, PostgreSQL in
production (``SENTINEL_DATABASE_URL``). No card numbers anywhere: last four digits only.

- ``NoticeDelivery``: the notification log (R8). One row per (notice key, channel); the
  unique key makes a retried activity send at most once per delivery (exactly-once).
- ``InboxMessage``: the in-app inbox; unread rows are the app's red dot (R21).
- ``ParkedCallback``: callbacks for withdrawals not tracked yet; delivered at start (never lost).
- ``WithdrawalRecord``: projection of each withdrawal for lists, the review queue and risk rules.
- ``RiskHitRow``: each risk rule hit, with the rule's version (R12).
- ``AuditLog``: who did what, when and why (R29).
- ``UnmappedCode``: channel answers the code catalogue does not know, counted, for operators.
- ``DeviceToken``: the push addresses (FCM tokens, JPush registration ids) of each user's app.
- ``WithdrawalEvent``: the exception event record (R27), append-only: what the analysis reads.
- ``ProviderBreaker``: the last known circuit-breaker state of each notice provider in each
  worker (written by the worker when a breaker opens or closes), for the operations console.

The schema is created and changed by the Alembic migrations in ``alembic/versions``
(``store.db.migrate``); a change here needs a new migration (tests/store/test_migrations.py
fails until the migrations produce exactly these tables).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Column, LargeBinary, Numeric, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from sentinel.delivery import DeliveryStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class NoticeDelivery(SQLModel, table=True):
    __tablename__ = "notice_delivery"
    __table_args__ = (UniqueConstraint("key", name="uq_notice_delivery_key"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, description="withdrawal/stage/seq/channel")
    withdrawal_id: str = Field(index=True, max_length=64)
    user_id: str = Field(index=True, max_length=64)
    channel: str = Field(max_length=32)
    provider: str = Field(max_length=32)
    stage: str = Field(max_length=32)
    category: str | None = Field(default=None, max_length=40)
    severity: str = Field(max_length=16)
    template_id: str | None = Field(default=None, max_length=120)
    policy_version: str | None = Field(default=None, max_length=40)
    text_sha256: str | None = Field(default=None, max_length=64)
    status: str = Field(
        default=DeliveryStatus.QUEUED.value,
        max_length=16,
        description="sentinel/delivery.py DeliveryStatus: queued, sending, sent, delivered, failed, read, "
        "suppressed, unknown (a crash mid-send the "
        "provider could not be asked about yet), unconfirmed (the same with a provider that cannot be asked: "
        "held, never sent twice); batched -> folding -> folded "
        "(sent inside another delivery's digest, named by provider_message_id)",
    )
    attempts: int = 0
    provider_message_id: str | None = Field(default=None, max_length=200)
    error: str | None = Field(default=None, sa_column=Column(Text))
    send_after: datetime | None = Field(
        default=None, description="a batched notice: when its fold window ends"
    )
    notice_status: str | None = Field(
        default=None, max_length=16, description="withdrawal status the notice speaks of"
    )
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class InboxMessage(SQLModel, table=True):
    __tablename__ = "inbox_message"
    __table_args__ = (UniqueConstraint("key", name="uq_inbox_message_key"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200)
    user_id: str = Field(index=True, max_length=64)
    withdrawal_id: str = Field(index=True, max_length=64)
    stage: str = Field(max_length=32)
    severity: str = Field(max_length=16)
    locale: str = Field(max_length=8)
    title: str = Field(max_length=200)
    body: str = Field(sa_column=Column(Text, nullable=False))
    link: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    read_at: datetime | None = None


class ParkedCallback(SQLModel, table=True):
    __tablename__ = "parked_callback"
    __table_args__ = (UniqueConstraint("channel", "event_id", name="uq_parked_callback_event"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    event_id: str = Field(max_length=128)
    withdrawal_id: str = Field(index=True, max_length=64)
    observation_json: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None
    outcome: str | None = Field(
        default=None, max_length=16, description="applied, late (tracking had ended), redelivered"
    )


class WithdrawalRecord(SQLModel, table=True):
    """Projection of each withdrawal's state for queries: the user's withdrawal records
    (R16), the review queue (R29), and the history the risk rules read (R12). The workflow
    is the source of truth; this table follows it."""

    __tablename__ = "withdrawal_record"

    withdrawal_id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(index=True, max_length=64)
    amount: Decimal = Field(sa_column=Column(Numeric(18, 4), nullable=False))
    currency: str = Field(max_length=3)
    channel: str = Field(max_length=32)
    bank_code: str = Field(max_length=16)
    card_last4: str = Field(max_length=4)
    payee_fingerprint: str = Field(
        index=True, max_length=64, description="sha256 of payee_ref: same card, no card data"
    )
    locale: str = Field(max_length=8)
    status: str = Field(index=True, max_length=16)
    category: str | None = Field(default=None, max_length=40)
    severity: str = Field(default="INFO", max_length=16)
    reason_code: str | None = Field(default=None, max_length=64)
    needs_review: bool = Field(default=False, index=True)
    review_since: datetime | None = None
    assignee: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class RiskHitRow(SQLModel, table=True):
    __tablename__ = "risk_hit"

    id: int | None = Field(default=None, primary_key=True)
    withdrawal_id: str = Field(index=True, max_length=64)
    rule_id: str = Field(max_length=48)
    rule_version: str = Field(max_length=40)
    detail: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = Field(default_factory=utcnow)


class AuditLog(SQLModel, table=True):
    """Who did what, when and why: review decisions, assignments, re-deliveries (R29)."""

    __tablename__ = "audit_log"
    __table_args__ = (UniqueConstraint("withdrawal_id", "ref", name="uq_audit_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=64)
    role: str = Field(max_length=32)
    action: str = Field(max_length=48)
    withdrawal_id: str | None = Field(default=None, index=True, max_length=64)
    detail: str | None = Field(default=None, sa_column=Column(Text))
    #: what makes the row unique when its writer may repeat (a review decision's token nonce)
    ref: str | None = Field(default=None, max_length=64)


class UnmappedCode(SQLModel, table=True):
    """A (channel, raw status, raw code) the catalogue does not map: it sent a withdrawal to
    a person instead of a guess (R26). One row per combination, counted; operators add it
    to ``sentinel/codes/``."""

    __tablename__ = "unmapped_code"
    __table_args__ = (UniqueConstraint("channel", "raw_status", "raw_code", name="uq_unmapped_code"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    raw_status: str = Field(max_length=64)
    raw_code: str = Field(default="", max_length=64, description="empty when the answer had no code")
    subtype: str | None = Field(default=None, max_length=40, description="unmapped, unmapped-status, ...")
    count: int = 1
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
    last_withdrawal_id: str | None = Field(default=None, max_length=64)


class DeviceToken(SQLModel, table=True):
    """A push address of one of the user's devices, registered by the app (R20). A token
    the provider reports dead (FCM UNREGISTERED, JPush 1011) is marked invalid and no
    longer used; registering it again revives it."""

    __tablename__ = "device_token"
    __table_args__ = (UniqueConstraint("provider", "token", name="uq_device_token"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(index=True, max_length=64)
    provider: str = Field(max_length=16, description="fcm or jpush")
    token: str = Field(max_length=512)
    platform: str | None = Field(default=None, max_length=16, description="android, ios, web")
    registered_at: datetime = Field(default_factory=utcnow)
    invalid_at: datetime | None = None
    invalid_reason: str | None = Field(default=None, max_length=200)


class WithdrawalEvent(SQLModel, table=True):
    """One fact of a withdrawal's life, for the analysis of exceptions (R27, docs/analysis.md).
    Append-only: written once (``key`` makes a repeated write a no-op), never changed or
    deleted (store/events.py refuses it). ``kind`` says which columns are filled:
    ``started`` (channel, bank, amount band, currency, the delay threshold in force),
    ``status`` (a status transition: status, category, reason code), ``notice`` (a notice
    sent: notice channel, stage, rung, the status it speaks of), ``read`` (a notice read:
    notice channel ``inbox`` or ``link``, the notice key), ``unmapped`` (a channel answer the
    catalogue does not map: channel, raw status, raw code)."""

    __tablename__ = "withdrawal_event"
    __table_args__ = (UniqueConstraint("key", name="uq_withdrawal_event_key"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, description="idempotency key: the same fact is written once")
    withdrawal_id: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=16, description="started, status, notice, read, unmapped")
    at: datetime = Field(index=True)
    channel: str | None = Field(default=None, max_length=32, description="payout channel")
    bank_code: str | None = Field(default=None, max_length=16)
    amount_band: str | None = Field(
        default=None, max_length=16, description="<100, 100-1k, 1k-10k, 10k-100k, >=100k"
    )
    currency: str | None = Field(default=None, max_length=3)
    delay_threshold_s: int | None = Field(default=None, description="started: the delay threshold in force")
    status: str | None = Field(
        default=None, max_length=64, description="withdrawal status; unmapped: raw status"
    )
    category: str | None = Field(default=None, max_length=40)
    reason_code: str | None = Field(
        default=None, max_length=64, description="channel code; unmapped: raw code"
    )
    notice_channel: str | None = Field(
        default=None, max_length=32, description="inbox, email, sms, push, voice, link"
    )
    notice_key: str | None = Field(
        default=None, max_length=200, description="notice: its delivery key; read: the key read"
    )
    stage: str | None = Field(default=None, max_length=32)
    rung: int | None = Field(default=None, description="notice: escalation rung (0: the first notice)")


class ProviderBreaker(SQLModel, table=True):
    """A snapshot of one worker's circuit breaker of one notice provider (notifiers/routing.py),
    written when it opens or closes (store/ops_health.py). The breaker itself lives in the
    worker's memory; this row is what the operations console can read (R34)."""

    __tablename__ = "provider_breaker"
    __table_args__ = (UniqueConstraint("channel", "provider", "worker", name="uq_provider_breaker"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16, description="sms, voice, push")
    provider: str = Field(max_length=32)
    worker: str = Field(max_length=64, description="host:pid of the worker process")
    state: str = Field(max_length=16, description="open or closed")
    failures: int = 0
    opened_at: datetime | None = None
    cooldown_s: float = 30.0
    updated_at: datetime = Field(default_factory=utcnow)


class OutageIncident(SQLModel, table=True):
    """An outage of one bank on one channel (issue #14, docs/analysis.md "Outage detection"),
    fired by the outage watch: what the progress pages of affected withdrawals show as a
    banner while ``resolved_at`` is empty."""

    __tablename__ = "outage_incident"

    id: str = Field(primary_key=True, max_length=64, description="BANK-channel-firedAtUTC")
    bank_code: str = Field(index=True, max_length=16)
    channel: str = Field(max_length=32)
    fired_at: datetime
    resolved_at: datetime | None = None
    summary: str = Field(sa_column=Column(Text, nullable=False))
    signals: str = Field(max_length=40, description="failure, delay or both, comma separated")
    config_version: str = Field(max_length=40)
    rates: str | None = Field(
        default=None,
        sa_column=Column(Text, nullable=True),
        description="JSON: each signal's rate, baseline rate and p-value when it fired "
        "(sentinel/outage.py Incident.rates_json); empty before migration 0010",
    )


class OutageNotice(SQLModel, table=True):
    """A user told of an incident: one ``heads_up`` per user and incident at most (the
    unique key), and a ``resolved`` only to those with a ``heads_up``. ``delivered_at`` is
    set once every channel's delivery is done (a retried activity finishes the others)."""

    __tablename__ = "outage_notice"
    __table_args__ = (UniqueConstraint("incident_id", "user_id", "kind", name="uq_outage_notice"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(index=True, max_length=64)
    user_id: str = Field(max_length=64)
    kind: str = Field(max_length=16, description="heads_up or resolved")
    withdrawal_ids: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None


class SpotCheck(SQLModel, table=True):
    """One automated decision drawn for a human spot check (R23, sentinel/spot_checks.py):
    the decision (category, route, code) as the event record has it, and the reviewer's
    verdict once given (correct, or wrong with the right category)."""

    __tablename__ = "spot_check"
    __table_args__ = (UniqueConstraint("event_key", name="uq_spot_check_event_key"),)

    id: int | None = Field(default=None, primary_key=True)
    event_key: str = Field(max_length=200, description="the decision's event row: drawn once")
    day: str = Field(index=True, max_length=10, description="the day (UTC) whose sample it is in")
    withdrawal_id: str = Field(index=True, max_length=64)
    decided_at: datetime
    channel: str = Field(max_length=32)
    bank_code: str = Field(max_length=16)
    category: str = Field(max_length=40, description="what the system decided")
    route: str = Field(max_length=64, description="the status the decision led to")
    reason_code: str | None = Field(default=None, max_length=64)
    verdict: str | None = Field(
        default=None, max_length=8, description="correct or wrong; null: not reviewed"
    )
    right_category: str | None = Field(default=None, max_length=40)
    note: str | None = Field(default=None, max_length=500)
    reviewer: str | None = Field(default=None, max_length=64)
    reviewed_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ReviewReport(SQLModel, table=True):
    """A periodic review report (R30, workflows/review_report.py): the analysis of a period
    as JSON, its HTML (charts referenced as ``cid:<name>``), when it was emailed."""

    __tablename__ = "review_report"
    __table_args__ = (UniqueConstraint("key", name="uq_review_report_key"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=120, description="kind/since: one report per period")
    kind: str = Field(max_length=16, description="daily or weekly")
    since: datetime = Field(index=True)
    until: datetime
    summary_json: str = Field(sa_column=Column(Text, nullable=False))
    html: str = Field(sa_column=Column(Text, nullable=False))
    emailed_at: datetime | None = None
    emailed_to: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)


class ReviewChart(SQLModel, table=True):
    """A PNG chart of a review report."""

    __tablename__ = "review_chart"
    __table_args__ = (UniqueConstraint("report_id", "name", name="uq_review_chart_name"),)

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(index=True, foreign_key="review_report.id")
    name: str = Field(max_length=40)
    title: str = Field(max_length=200)
    png: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
