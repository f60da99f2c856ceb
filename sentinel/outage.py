"""Outage detection (issue #14 item 3, R27): pure. Per (bank, channel), the failure rate and
the delay ("slow") rate in a recent sliding window against the same key's own baseline (a
longer window just before it), with an exact one-sided test (Fisher's, of the window against
the baseline) and minimum counts, so noise does not fire. Incidents follow Alertmanager's
lifecycle: a key whose test holds for ``fire_after`` evaluations in a row fires ONE incident
(both signals of a key are grouped in it, and it is inhibited from firing again while it
fires); it resolves when every signal that fired has recovered for ``resolve_after``
evaluations in a row (hysteresis: firing needs p <= ``alpha``, recovery needs p >
``resolve_alpha`` against the baseline frozen at firing). Definitions and the stated
detection time are in docs/analysis.md; thresholds are data (config/outage.yaml,
``load_outage_config``).

The module imports nothing but the standard library and sentinel.analysis (dataclasses of
plain values), so the outage-watch workflow runs ``step`` inside its sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sentinel.analysis import EventRow, as_utc
from sentinel.outage_config import (
    FINAL,
    MAX_KEYS,
    SIGNALS,
    OutageConfig,
    duration_s,
    load_outage_config,
)
from sentinel.outage_stats import (
    Counts,
    Verdict,
    baseline_rate,
    binomial_sf,
    fisher_sf,
    recovered,
    significance,
)

__all__ = [  # the configuration and the test live beside this module; callers import them here too
    "FINAL",
    "MAX_KEYS",
    "SIGNALS",
    "Counts",
    "OutageConfig",
    "Verdict",
    "baseline_rate",
    "binomial_sf",
    "duration_s",
    "fisher_sf",
    "load_outage_config",
    "recovered",
    "significance",
]


# --------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class KeyCounts:
    """One (bank, channel)'s verdicts: recent and baseline, per signal."""

    bank: str
    channel: str
    failure: Counts = Counts()
    failure_baseline: Counts = Counts()
    delay: Counts = Counts()
    delay_baseline: Counts = Counts()

    @property
    def key(self) -> str:
        return f"{self.bank}/{self.channel}"

    def recent(self, signal: str) -> Counts:
        counts: Counts = getattr(self, signal)
        return counts

    def baseline(self, signal: str) -> Counts:
        counts: Counts = getattr(self, f"{signal}_baseline")
        return counts


def rows_since(now: datetime, cfg: OutageConfig) -> datetime:
    """The earliest start whose rows ``observe`` needs."""
    return as_utc(now) - timedelta(seconds=cfg.window_s + cfg.baseline_s + cfg.max_slow_after_s)


def _failure_signal(row: EventRow, cfg: OutageConfig) -> bool:
    if row.category and row.category in cfg.ignore_categories:
        return False
    return (row.status in cfg.failure_statuses) or bool(
        row.category and row.category in cfg.failure_categories
    )


def observe(rows: Iterable[EventRow], now: datetime, cfg: OutageConfig) -> list[KeyCounts]:
    """The counts of every key from the event record's rows, as known at ``now`` (rows after
    ``now`` are ignored). Verdicts:

    - failure: at the first row that is a failure signal (a status in ``failure.statuses`` or
      a category in ``failure.categories``, not in ``failure.ignore_categories``) -> event, or
      at the first final status otherwise -> no event;
    - delay: at start + ``slow_after`` of the channel -> event when no final status came by then.

    A verdict counts in the recent window when its time is in (now - window, now], in the
    baseline when in (now - window - baseline, now - window]."""
    now = as_utc(now)
    recent_from = now - timedelta(seconds=cfg.window_s)
    base_from = recent_from - timedelta(seconds=cfg.baseline_s)
    started: dict[str, EventRow] = {}
    statuses: dict[str, list[EventRow]] = {}
    for r in rows:
        at = as_utc(r.at)
        if at > now:
            continue
        if r.kind == "started":
            started[r.withdrawal_id] = r
        elif r.kind == "status":
            statuses.setdefault(r.withdrawal_id, []).append(r)
    tallies: dict[tuple[str, str], dict[str, list[int]]] = {}

    def count(bank: str, channel: str, signal: str, at: datetime, bad: bool) -> None:
        if at <= base_from or at > now:
            return
        t = tallies.setdefault((bank, channel), {s: [0, 0, 0, 0] for s in SIGNALS})[signal]
        i = 0 if at > recent_from else 2
        t[i] += 1
        t[i + 1] += bad

    for wid, s in started.items():
        bank, channel = s.bank_code or "?", s.channel or "?"
        rows_of = sorted(statuses.get(wid, []), key=lambda r: as_utc(r.at))
        final_at = next((as_utc(r.at) for r in rows_of if r.status in FINAL), None)
        fail = next((r for r in rows_of if _failure_signal(r, cfg)), None)
        if fail is not None and (final_at is None or as_utc(fail.at) <= final_at):
            count(bank, channel, "failure", as_utc(fail.at), True)
        elif final_at is not None:
            count(bank, channel, "failure", final_at, False)
        due = as_utc(s.at) + timedelta(seconds=cfg.slow_after(channel))
        count(bank, channel, "delay", due, final_at is None or final_at > due)
    out = []
    for (bank, channel), t in sorted(tallies.items())[:MAX_KEYS]:
        f, d = t["failure"], t["delay"]
        out.append(
            KeyCounts(
                bank,
                channel,
                Counts(f[0], f[1]),
                Counts(f[2], f[3]),
                Counts(d[0], d[1]),
                Counts(d[2], d[3]),
            )
        )
    return out


# --------------------------------------------------------------------------- the lifecycle


@dataclass
class SignalState:
    """A signal of a firing incident: the baseline rate frozen when it fired."""

    name: str
    baseline_rate: float
    fired_rate: float
    p_value: float


@dataclass
class Incident:
    id: str
    bank: str
    channel: str
    fired_at: datetime
    signals: list[SignalState] = field(default_factory=list)
    ok_streak: int = 0

    @property
    def key(self) -> str:
        return f"{self.bank}/{self.channel}"

    def summary(self) -> str:
        parts = [
            f"{s.name} {s.fired_rate:.0%} vs baseline {s.baseline_rate:.1%} (p={s.p_value:.1e})"
            for s in self.signals
        ]
        return f"{self.bank} via {self.channel}: " + "; ".join(parts)

    def rates_json(self) -> str:
        """The signals' figures as data (table ``outage_incident``, column ``rates``)."""
        return json.dumps(
            [
                {"signal": s.name, "rate": s.fired_rate, "baseline": s.baseline_rate, "p": s.p_value}
                for s in self.signals
            ]
        )


@dataclass(frozen=True)
class SignalRate:
    """One signal's figures as the console and ``GET /v1/ops/incidents`` show them."""

    signal: str
    rate: str  # e.g. 80%
    baseline: str  # e.g. 1.0%
    p_value: str  # e.g. 3.2e-11


def shown_rates(stored: str | None) -> list[SignalRate]:
    """The figures of an incident's stored ``rates`` (``Incident.rates_json``), formatted as
    the summary states them; none for an empty or unreadable value (bounded: at most one
    entry per signal)."""
    try:
        items = json.loads(stored or "[]")
    except ValueError:
        return []
    out: list[SignalRate] = []
    for item in items if isinstance(items, list) else []:
        try:
            name, rate, base, p = (
                item["signal"],
                float(item["rate"]),
                float(item["baseline"]),
                float(item["p"]),
            )
        except (KeyError, TypeError, ValueError):
            continue
        if name in SIGNALS and all(o.signal != name for o in out):
            out.append(SignalRate(name, f"{rate:.0%}", f"{base:.1%}", f"{p:.1e}"))
    return out


@dataclass
class WatchState:
    """What the watch carries from one evaluation to the next (and across continue-as-new)."""

    firing: list[Incident] = field(default_factory=list)
    pending: dict[str, int] = field(default_factory=dict)  # key -> consecutive significant evaluations


@dataclass(frozen=True)
class Transition:
    kind: str  # fired, resolved
    incident: Incident


def incident_id(bank: str, channel: str, at: datetime) -> str:
    return f"{bank}-{channel}-{as_utc(at):%Y%m%dT%H%M%SZ}"[:64]


def step(
    state: WatchState, counts: list[KeyCounts], now: datetime, cfg: OutageConfig
) -> tuple[WatchState, list[Transition]]:
    """One evaluation: the new state and what changed (an incident fired, or resolved).
    A firing key fires nothing more (inhibited); a signal that turns significant while its
    key fires joins the incident silently (grouped)."""
    now = as_utc(now)
    by_key = {c.key: c for c in counts}
    transitions: list[Transition] = []
    firing: list[Incident] = []
    firing_keys = {i.key for i in state.firing}
    for inc in state.firing:
        c = by_key.get(inc.key)
        inc = replace(inc, signals=list(inc.signals))
        if c is not None:
            have = {s.name for s in inc.signals}
            for sig in SIGNALS:
                if sig in have:
                    continue
                v = significance(c.recent(sig), c.baseline(sig), cfg)
                if v.significant:
                    inc.signals.append(SignalState(sig, v.baseline_rate, v.rate or 0.0, v.p_value))
        verdicts = [recovered(c.recent(s.name), s.baseline_rate, cfg) if c else None for s in inc.signals]
        if any(v is False for v in verdicts):
            inc.ok_streak = 0
        elif verdicts and all(v is True for v in verdicts):
            inc.ok_streak += 1
        # None (too few verdicts): no evidence either way, the streak stays
        if inc.ok_streak >= cfg.resolve_after:
            transitions.append(Transition("resolved", inc))
        else:
            firing.append(inc)
    pending: dict[str, int] = {}
    for c in counts:
        if c.key in firing_keys:
            continue
        tests = {sig: significance(c.recent(sig), c.baseline(sig), cfg) for sig in SIGNALS}
        hot = {s: v for s, v in tests.items() if v.significant}
        if not hot:
            continue
        streak = state.pending.get(c.key, 0) + 1
        if streak < cfg.fire_after:
            pending[c.key] = streak
            continue
        inc = Incident(
            id=incident_id(c.bank, c.channel, now),
            bank=c.bank,
            channel=c.channel,
            fired_at=now,
            signals=[SignalState(s, v.baseline_rate, v.rate or 0.0, v.p_value) for s, v in hot.items()],
        )
        firing.append(inc)
        transitions.append(Transition("fired", inc))
    return WatchState(firing=firing, pending=pending), transitions


# --------------------------------------------------------------------------- the watch's messages


@dataclass
class Observation:
    """What one evaluation needs (the activity's answer): the config in force and every
    key's counts."""

    config: OutageConfig
    counts: list[KeyCounts] = field(default_factory=list)
    rows: int = 0


@dataclass
class IncidentInput:
    incident: Incident
    config: OutageConfig


@dataclass
class NoticeReport:
    users: int = 0
    delivered: int = 0
