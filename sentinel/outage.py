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

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sentinel.analysis import EventRow, as_utc

SIGNALS = ("failure", "delay")
FINAL = frozenset({"SUCCEEDED", "FAILED", "RETURNED"})
#: bounds on what a config may say (every input bounded)
MAX_KEYS = 5000
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(value: Any) -> int:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 2h, 7d)")
    return int(float(m.group(1)) * _UNIT[m.group(2)])


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class OutageConfig:
    """config/outage.yaml, checked (docs/analysis.md documents every key)."""

    version: str = "default"
    evaluate_every_s: int = 60
    window_s: int = 1800
    baseline_s: int = 7 * 86400
    alpha: float = 1e-6
    resolve_alpha: float = 0.05
    min_trials: int = 12
    min_events: int = 6
    min_ratio: float = 2.0
    baseline_floor: float = 0.01
    fire_after: int = 1
    resolve_after: int = 3
    min_resolve_trials: int = 5
    slow_after_s: int = 900
    slow_after_by_channel: tuple[tuple[str, int], ...] = ()
    failure_statuses: tuple[str, ...] = ("FAILED",)
    failure_categories: tuple[str, ...] = ("CHANNEL_REJECTED", "PLATFORM_ERROR")
    ignore_categories: tuple[str, ...] = ()
    heads_up_channels: tuple[str, ...] = ("inbox",)
    max_users_per_sweep: int = 500
    max_rows: int = 200_000
    max_history_events: int = 2000

    def slow_after(self, channel: str) -> int:
        return dict(self.slow_after_by_channel).get(channel, self.slow_after_s)

    @property
    def max_slow_after_s(self) -> int:
        return max([self.slow_after_s, *(s for _, s in self.slow_after_by_channel)])

    def detection_time_s(self, channel: str, per_minute: float) -> int:
        """The stated detection time of a full outage (every verdict a failure, or every
        withdrawal slow) of a key with ``per_minute`` withdrawals a minute: the delay signal's
        first verdicts come ``slow_after`` after the outage began, ``min_trials`` of them take
        ``min_trials / per_minute`` minutes, the next evaluation comes within
        ``evaluate_every``, times ``fire_after`` evaluations. Valid when the key's baseline
        rate is at most ``full_outage_max_baseline`` and ``min_trials`` verdicts fit in the window."""
        gather = math.ceil(self.min_trials / per_minute * 60)
        return self.slow_after(channel) + gather + self.evaluate_every_s * self.fire_after

    @property
    def full_outage_max_baseline(self) -> float:
        """The highest baseline rate at which ``min_trials`` events out of ``min_trials``
        verdicts pass the test (p0 ** min_trials <= alpha and 1 >= min_ratio * p0)."""
        return min(self.alpha ** (1 / self.min_trials), 1 / self.min_ratio)


_NUMBERS: dict[str, tuple[type, float, float]] = {
    "alpha": (float, 1e-15, 0.5),
    "resolve_alpha": (float, 1e-6, 0.99),
    "min_trials": (int, 1, 100_000),
    "min_events": (int, 1, 100_000),
    "min_ratio": (float, 1.0, 1000.0),
    "baseline_floor": (float, 0.0, 0.99),
    "fire_after": (int, 1, 100),
    "resolve_after": (int, 1, 1000),
    "min_resolve_trials": (int, 1, 100_000),
    "max_users_per_sweep": (int, 1, 100_000),
    "max_rows": (int, 100, 10_000_000),
    "max_history_events": (int, 100, 50_000),
}
_DURATIONS = {
    "evaluate_every": ("evaluate_every_s", 5, 86400),
    "window": ("window_s", 60, 30 * 86400),
    "baseline": ("baseline_s", 3600, 90 * 86400),
}
_KNOWN = set(_NUMBERS) | set(_DURATIONS) | {"version", "slow_after", "failure", "notices"}


def _bounded(name: str, value: Any, kind: type, low: float, high: float) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: a number is required, got {value!r}")
    if kind is int and int(value) != value:
        raise ValueError(f"{name}: a whole number is required, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name}: {value!r} is outside [{low}, {high}]")
    return kind(value)


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 40 for v in value):
        raise ValueError(f"{where}: a list of names is required")
    return tuple(value)


def load_outage_config(doc: Mapping[str, Any]) -> OutageConfig:
    """An OutageConfig from config/outage.yaml's document; ValueError for anything unknown,
    out of bounds or inconsistent (a broken edit is refused, the last good file stays)."""
    unknown = sorted(set(doc) - _KNOWN)
    if unknown:
        raise ValueError(f"unknown settings {unknown}; known: {sorted(_KNOWN)}")
    out: dict[str, Any] = {"version": str(doc.get("version", "unversioned"))[:40]}
    for name, (kind, low, high) in _NUMBERS.items():
        if name in doc:
            out[name] = _bounded(name, doc[name], kind, low, high)
    for name, (attr, low, high) in _DURATIONS.items():
        if name in doc:
            out[attr] = _bounded(name, duration_s(doc[name]), int, low, high)
    slow = doc.get("slow_after", {})
    if not isinstance(slow, Mapping) or set(slow) - {"default", "channels"}:
        raise ValueError("slow_after: a mapping with 'default' and 'channels' is required")
    if "default" in slow:
        out["slow_after_s"] = _bounded("slow_after.default", duration_s(slow["default"]), int, 60, 30 * 86400)
    channels = slow.get("channels") or {}
    if not isinstance(channels, Mapping) or len(channels) > 100:
        raise ValueError("slow_after.channels: a mapping of at most 100 channels is required")
    out["slow_after_by_channel"] = tuple(
        sorted(
            (str(c), _bounded(f"slow_after.channels.{c}", duration_s(v), int, 60, 30 * 86400))
            for c, v in channels.items()
        )
    )
    failure = doc.get("failure", {})
    if not isinstance(failure, Mapping) or set(failure) - {"statuses", "categories", "ignore_categories"}:
        raise ValueError("failure: a mapping of statuses, categories, ignore_categories is required")
    for key in ("statuses", "categories", "ignore_categories"):
        if key in failure:
            out[f"failure_{key}" if key != "ignore_categories" else key] = _names(
                failure[key], f"failure.{key}"
            )
    notices = doc.get("notices", {})
    if not isinstance(notices, Mapping) or set(notices) - {"heads_up_channels"}:
        raise ValueError("notices: a mapping with heads_up_channels is required")
    if "heads_up_channels" in notices:
        out["heads_up_channels"] = _names(notices["heads_up_channels"], "notices.heads_up_channels")
    cfg = OutageConfig(**out)
    if cfg.resolve_alpha <= cfg.alpha:
        raise ValueError("resolve_alpha must be above alpha (hysteresis)")
    if cfg.min_events > cfg.min_trials:
        raise ValueError("min_events cannot exceed min_trials")
    if cfg.window_s > cfg.baseline_s:
        raise ValueError("baseline must be longer than window")
    return cfg


# --------------------------------------------------------------------------- the test


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact (summed in log space, no library)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k, n + 1):
        term = math.exp(
            math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
        )
        total += term
        if i > n * p and term < total * 1e-17:
            break
    return min(1.0, total)


@dataclass(frozen=True)
class Counts:
    """Verdicts in a window: trials (withdrawals judged) and events (judged bad)."""

    trials: int = 0
    events: int = 0

    @property
    def rate(self) -> float | None:
        return self.events / self.trials if self.trials else None


@dataclass(frozen=True)
class Verdict:
    significant: bool
    p_value: float
    rate: float | None
    baseline_rate: float


def baseline_rate(baseline: Counts, cfg: OutageConfig) -> float:
    """The key's own rate in the baseline window, half an event added (a clean baseline is
    not zero) and not below ``baseline_floor``: what ``min_ratio`` multiplies, and what a
    firing signal's recovery is judged against (frozen when it fires)."""
    return max(cfg.baseline_floor, (baseline.events + 0.5) / (baseline.trials + 1))


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_sf(recent: Counts, baseline: Counts) -> float:
    """One-sided Fisher exact test: P(X >= recent.events) for X the events that fall in the
    recent window when the window and the baseline share one rate (hypergeometric, given
    all the events and verdicts of both). Exact and conservative, and it accounts for the
    baseline's own noise: a key without a baseline (a new bank) cannot be significant."""
    n, k = recent.trials, recent.events
    total_n, total_k = n + baseline.trials, k + baseline.events
    if k <= 0:
        return 1.0
    top = min(n, total_k)
    if k > top:
        return 0.0
    norm = _log_comb(total_n, n)
    p = 0.0
    for x in range(k, top + 1):
        term = math.exp(_log_comb(total_k, x) + _log_comb(total_n - total_k, n - x) - norm)
        p += term
        if term < p * 1e-17:
            break
    return min(1.0, p)


def significance(recent: Counts, baseline: Counts, cfg: OutageConfig) -> Verdict:
    """Fire condition of one signal: at least ``min_trials`` verdicts and ``min_events``
    events in the window, a rate at least ``min_ratio`` times the baseline rate, and the
    one-sided Fisher exact test of the window against the baseline at ``alpha``."""
    p0 = baseline_rate(baseline, cfg)
    rate = recent.rate
    if recent.trials < cfg.min_trials or recent.events < cfg.min_events or rate is None:
        return Verdict(False, 1.0, rate, p0)
    p = fisher_sf(recent, baseline)
    return Verdict(rate >= cfg.min_ratio * p0 and p <= cfg.alpha, p, rate, p0)


def recovered(recent: Counts, p0: float, cfg: OutageConfig) -> bool | None:
    """None: too few verdicts to tell; True: not even mildly above the baseline frozen at
    firing (p > ``resolve_alpha``)."""
    if recent.trials < cfg.min_resolve_trials:
        return None
    return binomial_sf(recent.events, recent.trials, p0) > cfg.resolve_alpha


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
        return getattr(self, signal)

    def baseline(self, signal: str) -> Counts:
        return getattr(self, f"{signal}_baseline")


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
