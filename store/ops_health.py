"""Delivery health of the notice providers for the operations console (issue #13, R34).

Two sources:

- the delivery log (``notice_delivery``) over a recent window: per channel and provider,
  how many notices were sent (sent, delivered, read), failed (a provider's receipt said
  failed, or the last try failed and a retry is due), given up (the retry budget ran out),
  and are unknown (a crash mid-send the provider could not be asked about yet). A chained
  channel (several SMS providers) logs the chain's name; a sent row's message id names the
  provider that took it (``aliyun:...``), so sent notices are counted per real provider and
  the rest under the chain's name.
- the breaker snapshots (``provider_breaker``): the circuit breakers live in each worker's
  memory (notifiers/routing.py); the worker writes a row when one opens or closes
  (:func:`save_breaker`), and :func:`breakers` reads them back with the state they have now
  (an open breaker past its cool-down lets a trial through: ``half_open``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from store.tables import NoticeDelivery, ProviderBreaker

#: delivery status -> the console's column
OUTCOMES = {
    "sent": "sent",
    "delivered": "sent",
    "read": "sent",
    "failed": "failed",
    "given_up": "given_up",
    "unknown": "unknown",
    "unconfirmed": "unknown",
}
#: at most this many delivery rows are read for one window (bounded work per page view)
MAX_ROWS = 50_000


@dataclass
class ProviderHealth:
    channel: str
    provider: str
    sent: int = 0
    failed: int = 0
    given_up: int = 0
    unknown: int = 0
    breaker: str = "closed"
    breaker_workers: list[str] = field(default_factory=list)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def save_breaker(
    engine: Engine,
    channel: str,
    provider: str,
    worker: str,
    state: str,
    failures: int,
    opened_at: datetime | None,
    cooldown_s: float,
    now: datetime | None = None,
) -> None:
    """Upsert the snapshot of ``worker``'s breaker of ``provider``."""
    now = now or datetime.now(UTC)
    with Session(engine) as session:
        row = session.exec(
            select(ProviderBreaker).where(
                col(ProviderBreaker.channel) == channel,
                col(ProviderBreaker.provider) == provider[:32],
                col(ProviderBreaker.worker) == worker[:64],
            )
        ).first()
        if row is None:
            row = ProviderBreaker(channel=channel, provider=provider[:32], worker=worker[:64], state=state)
        row.state, row.failures, row.opened_at = state, failures, opened_at
        row.cooldown_s, row.updated_at = cooldown_s, now
        session.add(row)
        session.commit()


def breakers(engine: Engine, now: datetime | None = None) -> dict[tuple[str, str], tuple[str, list[str]]]:
    """(channel, provider) -> (state now, workers whose breaker is not closed). ``open``
    wins over ``half_open`` over ``closed`` across workers."""
    now = now or datetime.now(UTC)
    rank = {"closed": 0, "half_open": 1, "open": 2}
    out: dict[tuple[str, str], tuple[str, list[str]]] = {}
    with Session(engine) as session:
        for row in session.exec(select(ProviderBreaker).order_by(col(ProviderBreaker.id))):
            state = "closed"
            if row.state == "open" and row.opened_at is not None:
                cooled = _aware(row.opened_at) + timedelta(seconds=row.cooldown_s) <= now
                state = "half_open" if cooled else "open"
            key = (row.channel, row.provider)
            best, workers = out.get(key, ("closed", []))
            if state != "closed":
                workers = [*workers, row.worker]
            out[key] = (state if rank[state] > rank[best] else best, workers)
    return out


def delivery_health(engine: Engine, since: datetime, now: datetime | None = None) -> list[ProviderHealth]:
    """Per (channel, provider): the outcomes of the deliveries last changed since ``since``,
    with the breaker state; every provider with a breaker snapshot is listed, even idle."""
    health: dict[tuple[str, str], ProviderHealth] = {}

    def slot(channel: str, provider: str) -> ProviderHealth:
        return health.setdefault((channel, provider), ProviderHealth(channel, provider))

    with Session(engine) as session:
        rows = session.exec(
            select(
                NoticeDelivery.channel,
                NoticeDelivery.provider,
                NoticeDelivery.status,
                NoticeDelivery.provider_message_id,
            )
            .where(col(NoticeDelivery.updated_at) >= since, col(NoticeDelivery.status).in_(list(OUTCOMES)))
            .limit(MAX_ROWS)
        )
        for channel, provider, status, message_id in rows:
            outcome = OUTCOMES[status]
            if outcome == "sent" and "|" in provider and message_id and ":" in message_id:
                provider = message_id.split(":", 1)[0]
            entry = slot(channel, provider)
            setattr(entry, outcome, getattr(entry, outcome) + 1)
    for (channel, provider), (state, workers) in breakers(engine, now).items():
        entry = slot(channel, provider)
        entry.breaker, entry.breaker_workers = state, workers
    return sorted(health.values(), key=lambda h: (h.channel, h.provider))
