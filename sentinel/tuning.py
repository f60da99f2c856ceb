"""Threshold tuning (R30) and the ETA of a delayed withdrawal (R24), from the arrival times
in the event record (issue #14 item 4). Pure: event rows in, suggestions, a unified diff of
config/delays.yaml and ETA figures out. Definitions in docs/analysis.md ("Threshold tuning",
"ETA").

The rule of a suggestion (no missed delay on the data it came from): a withdrawal is told of
a delay ``grace`` after its ``delay_threshold``; one that arrives after the threshold but
within the grace is a missed delay (docs/analysis.md). The suggested threshold T of a group is
the smallest step (``step``) at or above the ``quantile`` of its arrival times for which NO
arrival of the group falls in (T, T + grace]; when no such T exists below the group's
``manual_check``, T is the longest arrival rounded up to a step (nothing arrives later). So on
the data it was derived from, every withdrawal that arrived after T was told. A channel's T
holds for each of its banks (a subset of its arrivals has no arrival in the gap either); a
bank with its own section gets a T from all of its arrivals, on every channel.
"""

from __future__ import annotations

import bisect
import difflib
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sentinel.analysis import EventRow, as_utc, hour_of_week
from sentinel.models import TrackingPolicy
from sentinel.policy import resolve_tracking_policy, validate_delays_document

NO_BANK = "__none__"


@dataclass(frozen=True)
class TuningConfig:
    quantile: float = 0.95  # where the search for a threshold starts
    step_s: int = 300  # thresholds are multiples of this
    min_samples: int = 30  # fewer arrivals: no suggestion for the group
    margin_s: int = 1800  # a delay notice followed by the money within this is a false alarm
    min_change: float = 0.1  # a suggestion within 10 % of the current value is left out

    def __post_init__(self) -> None:
        if not 0.5 <= self.quantile < 1 or self.step_s < 60 or self.min_samples < 5 or self.margin_s < 0:
            raise ValueError("tuning: quantile in [0.5, 1), step >= 60 s, min_samples >= 5, margin >= 0")


@dataclass(frozen=True)
class Arrival:
    withdrawal_id: str
    channel: str
    bank: str
    started_at: datetime
    duration_s: float | None  # None: not arrived (failed, returned or still open)

    @property
    def hour_of_week(self) -> str:
        return hour_of_week(self.started_at)


def arrivals(rows: Iterable[EventRow]) -> list[Arrival]:
    """One Arrival per withdrawal with a ``started`` row: the time to its first SUCCEEDED."""
    started: dict[str, EventRow] = {}
    arrived: dict[str, datetime] = {}
    for r in rows:
        if r.kind == "started":
            started[r.withdrawal_id] = r
        elif r.kind == "status" and r.status == "SUCCEEDED":
            at = as_utc(r.at)
            if r.withdrawal_id not in arrived or at < arrived[r.withdrawal_id]:
                arrived[r.withdrawal_id] = at
    out = []
    for wid, s in sorted(started.items()):
        start = as_utc(s.at)
        done = arrived.get(wid)
        out.append(
            Arrival(
                wid,
                s.channel or "?",
                s.bank_code or "?",
                start,
                max(0.0, (done - start).total_seconds()) if done else None,
            )
        )
    return out


def quantile(values: list[float], q: float) -> float:
    """Nearest rank of the sorted ``values`` (not empty)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@dataclass(frozen=True)
class Projection:
    """What a threshold would have done to the group's arrivals (grace included)."""

    threshold_s: int
    notify_at_s: int  # threshold + grace: when the delay notice goes, after the start
    delay_notices: int  # arrivals later than that (each got a delay notice)
    false_alarms: int  # of those, the money came within the margin after the notice
    missed: int  # arrived after the threshold but before the notice: never told

    @property
    def false_alarm_rate(self) -> float | None:
        return round(self.false_alarms / self.delay_notices, 4) if self.delay_notices else None


def project(durations: list[float], threshold_s: float, grace_s: float, margin_s: float) -> Projection:
    d = sorted(durations)
    notify = threshold_s + grace_s
    after_threshold = len(d) - bisect.bisect_right(d, threshold_s)
    notices = len(d) - bisect.bisect_right(d, notify)
    within_margin = bisect.bisect_right(d, notify + margin_s) - bisect.bisect_right(d, notify)
    return Projection(int(threshold_s), int(notify), notices, within_margin, after_threshold - notices)


def feasible_threshold(durations: list[float], grace_s: float, cfg: TuningConfig, cap_s: float) -> int | None:
    """The rule (module docstring): the smallest step at or above the quantile with no
    arrival in (T, T + grace], below the manual check ``cap_s`` (a threshold at or past it is
    not a valid delays.yaml). None when there is no such step: no threshold below the manual
    check avoids a missed delay, so the group keeps the one it has."""
    d = sorted(durations)
    step = cfg.step_s
    longest = max(step, math.ceil(d[-1] / step) * step)
    t = max(step, math.ceil(quantile(d, cfg.quantile) / step) * step)
    while t <= longest:
        if t >= cap_s:
            return None
        lo, hi = bisect.bisect_right(d, t), bisect.bisect_right(d, t + grace_s)
        if lo == hi:
            return t
        t += step
    return longest if longest < cap_s else None


@dataclass(frozen=True)
class Suggestion:
    section: str  # channels or banks
    name: str
    current_s: int
    suggested_s: int
    grace_s: int
    samples: int
    current: Projection
    suggested: Projection
    #: hour of week -> (arrivals, p90 seconds), for the reviewer (delays.yaml has no hours)
    by_hour: dict[str, tuple[int, float]] = field(default_factory=dict)


def _by_hour(items: list[Arrival]) -> dict[str, tuple[int, float]]:
    groups: dict[str, list[float]] = defaultdict(list)
    for a in items:
        if a.duration_s is not None:
            groups[a.hour_of_week].append(a.duration_s)
    return {h: (len(v), quantile(v, 0.9)) for h, v in sorted(groups.items())}


def suggest(items: list[Arrival], doc: Mapping[str, Any], cfg: TuningConfig) -> list[Suggestion]:
    """Suggestions for every channel with data, and every bank that has its own section in
    ``doc`` (its figures win over its channels'), each from at least ``min_samples``
    arrivals; changes below ``min_change`` are left out."""
    out: list[Suggestion] = []
    by_channel: dict[str, list[Arrival]] = defaultdict(list)
    by_bank: dict[str, list[Arrival]] = defaultdict(list)
    bank_sections = set((doc.get("banks") or {}).keys())
    for a in items:
        (by_bank if a.bank in bank_sections else by_channel)[
            a.bank if a.bank in bank_sections else a.channel
        ].append(a)
    groups = [
        ("channels", k, v, resolve_tracking_policy(doc, k, NO_BANK)) for k, v in sorted(by_channel.items())
    ]
    groups += [("banks", k, v, _bank_policy(doc, k, v)) for k, v in sorted(by_bank.items())]
    for section, name, group, policy in groups:
        durations = [a.duration_s for a in group if a.duration_s is not None]
        if len(durations) < cfg.min_samples:
            continue
        t = feasible_threshold(durations, policy.grace_s, cfg, policy.manual_check_s)
        if t is None:  # no threshold below the manual check avoids a missed delay: keep it
            continue
        current = int(policy.delay_threshold_s)
        was = project(durations, current, policy.grace_s, cfg.margin_s)
        if abs(t - current) < cfg.min_change * current and was.missed == 0:
            continue
        will = project(durations, t, policy.grace_s, cfg.margin_s)
        if was.missed == 0 and will.false_alarms > was.false_alarms:
            continue  # a change that adds false alarms and mends no missed delay is no tuning
        out.append(
            Suggestion(
                section,
                name,
                current,
                t,
                int(policy.grace_s),
                len(durations),
                was,
                will,
                _by_hour(group),
            )
        )
    return out


def _bank_policy(doc: Mapping[str, Any], bank: str, group: list[Arrival]) -> TrackingPolicy:
    """A bank's section applies on every channel: the longest grace and manual check of its
    channels (the rule must hold on each)."""
    policies = [resolve_tracking_policy(doc, ch, bank) for ch in sorted({a.channel for a in group})]
    return max(policies, key=lambda p: (p.grace_s, p.manual_check_s))


# --------------------------------------------------------------------------- the diff


def duration_text(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_TOP = re.compile(r"^(\w[\w-]*):\s*(#.*)?$")


def _set_threshold(lines: list[str], section: str, name: str, value: str, comment: str) -> list[str]:
    """``section.name.delay_threshold = value`` in the YAML text, comments and order kept:
    the line is replaced, or added under the entry, or the entry added to the section."""
    lines = list(lines)
    start = next((i for i, line in enumerate(lines) if re.match(rf"^{section}:\s*(#.*)?$", line)), None)
    if start is None:
        lines += ["", f"{section}:"]
        start = len(lines) - 1
    end = next((i for i in range(start + 1, len(lines)) if _TOP.match(lines[i])), len(lines))
    entry = next(
        (
            i
            for i in range(start + 1, end)
            if re.match(rf"^  {re.escape(name)}:\s*(\{{\}})?\s*(#.*)?$", lines[i])
        ),
        None,
    )
    new_line = f"    delay_threshold: {value}   # {comment}"
    if entry is None:
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        return lines[:end] + [f"  {name}:", new_line] + lines[end:]
    lines[entry] = re.sub(r":\s*\{\}", ":", lines[entry])
    entry_end = next((i for i in range(entry + 1, end) if re.match(r"^  \S", lines[i])), end)
    for i in range(entry + 1, entry_end):
        if re.match(r"^    delay_threshold:", lines[i]):
            lines[i] = new_line
            return lines
    return lines[: entry + 1] + [new_line] + lines[entry + 1 :]


def tuned_text(text: str, suggestions: list[Suggestion]) -> str:
    """The delays file with the suggestions applied (comments and order kept), checked as the
    worker would load it."""
    import yaml

    lines = text.splitlines()
    for s in suggestions:
        comment = (
            f"tuned: {s.samples} arrivals, was {duration_text(s.current_s)}; false alarms "
            f"{s.current.false_alarm_rate} -> {s.suggested.false_alarm_rate}, "
            f"missed {s.current.missed} -> {s.suggested.missed}"
        )
        lines = _set_threshold(lines, s.section, s.name, duration_text(s.suggested_s), comment)
    new = "\n".join(lines) + ("\n" if text.endswith("\n") else "")
    validate_delays_document(yaml.safe_load(new))
    return new


def delays_diff(text: str, suggestions: list[Suggestion], path: str = "config/delays.yaml") -> str:
    """The suggestions as a unified diff of the delays file (empty when nothing changes),
    for ``patch -p1`` from the repository's root."""
    new = tuned_text(text, suggestions)
    return "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
        )
    )


def report(suggestions: list[Suggestion]) -> str:
    """For the reviewer, beside the diff: each suggestion's projection."""
    if not suggestions:
        return "no threshold change suggested\n"
    out = []
    for s in suggestions:
        cur, sug = s.current, s.suggested
        out.append(
            f"{s.section}.{s.name}: delay_threshold {duration_text(s.current_s)} -> "
            f"{duration_text(s.suggested_s)} (grace {duration_text(s.grace_s)}, {s.samples} arrivals)\n"
            f"  current:   notice at {duration_text(cur.notify_at_s)}, {cur.delay_notices} notices, "
            f"false alarms {cur.false_alarms} ({cur.false_alarm_rate}), missed {cur.missed}\n"
            f"  suggested: notice at {duration_text(sug.notify_at_s)}, {sug.delay_notices} notices, "
            f"false alarms {sug.false_alarms} ({sug.false_alarm_rate}), missed {sug.missed}"
        )
        slow = sorted(s.by_hour.items(), key=lambda kv: -kv[1][1])[:3]
        if slow:
            out.append(
                "  slowest hours of week (p90): "
                + ", ".join(f"{h} {duration_text(int(p))}" for h, (_, p) in slow)
            )
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- ETA (R24)


@dataclass(frozen=True)
class EtaConfig:
    quantile: float = 0.9
    min_samples: int = 30
    min_eta_s: int = 900  # never promise sooner than this after the notice

    def __post_init__(self) -> None:
        if not 0.5 <= self.quantile < 1 or self.min_samples < 5 or self.min_eta_s < 60:
            raise ValueError("eta: quantile in [0.5, 1), min_samples >= 5, min_eta >= 60 s")


@dataclass
class EtaTable:
    """Sorted arrival times per (channel, bank, hour of week), (channel, bank) and channel."""

    groups: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def build(cls, items: Iterable[Arrival]) -> EtaTable:
        groups: dict[str, list[float]] = defaultdict(list)
        for a in items:
            if a.duration_s is None:
                continue
            for key in (f"{a.channel}/{a.bank}/{a.hour_of_week}", f"{a.channel}/{a.bank}", a.channel):
                groups[key].append(a.duration_s)
        return cls({k: sorted(v) for k, v in groups.items()})


def eta_after(
    table: EtaTable, channel: str, bank: str, started_at: datetime, elapsed_s: float, cfg: EtaConfig
) -> tuple[float, str] | None:
    """Seconds from now (``elapsed_s`` after the start) until the money arrives with
    probability ``quantile``, among past withdrawals of the same channel, bank and hour of
    week that had not arrived after ``elapsed_s`` either (at least ``min_samples`` of them;
    else the same channel and bank, else the channel), and which group answered. None: too
    few such arrivals anywhere (the fixed ``eta_hours`` of delays.yaml then)."""
    for key in (f"{channel}/{bank}/{hour_of_week(as_utc(started_at))}", f"{channel}/{bank}", channel):
        d = table.groups.get(key, [])
        later = d[bisect.bisect_right(d, elapsed_s) :]
        if len(later) >= cfg.min_samples:
            return max(cfg.min_eta_s, quantile(later, cfg.quantile) - elapsed_s), key
    return None


def eta_hours(
    table: EtaTable,
    channel: str,
    bank: str,
    started_at: datetime,
    alarm_after_s: float,
    fixed_hours: float,
    cfg: EtaConfig,
) -> float:
    """The ``eta_hours`` a withdrawal's policy carries (the workflow promises arrival
    ``eta_hours`` after its delay notice, which goes ``alarm_after_s`` = threshold + grace
    after the start): from the distribution, else the fixed figure."""
    found = eta_after(table, channel, bank, started_at, alarm_after_s, cfg)
    return fixed_hours if found is None else round(found[0] / 3600, 3)
