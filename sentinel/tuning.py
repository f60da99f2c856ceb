"""Threshold tuning (R30), from the arrival times in the event record (issue #14 item 4).
Pure: event rows in, suggestions and a unified diff of config/delays.yaml out. Definitions in
docs/analysis.md ("Threshold tuning"); the ETA from the same arrivals is sentinel/eta.py.

The rule of a suggestion (no missed delay on the data it came from): a withdrawal is told of
a delay ``grace`` after its ``delay_threshold``; one that arrives after the threshold but
within the grace is a missed delay (docs/analysis.md). The suggested threshold T of a group is
the smallest step (``step``) at or above the ``quantile`` of its arrival times for which NO
arrival of the group falls in (T, T + grace]; when no such T exists below the group's
``manual_check``, T is the longest arrival rounded up to a step (nothing arrives later). So on
the data it was derived from, every withdrawal that arrived after T was told. A channel's T
holds for each of its banks (a subset of its arrivals has no arrival in the gap either); a
bank with its own section gets a T from all of its arrivals, on every channel.

The grace (R23: a short blip raises no alarm) is tuned for the delays the channel itself
reports (a maintenance or cut-off code: the grace starts at the report, not at the
threshold): the smallest longer grace, up to ``max_grace``, with fewer false alarms and still
no missed delay (:func:`better_grace`).
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
    max_grace_s: int = 3600  # the grace the tuning may suggest at most (R23: a blip, not a day)

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
    #: seconds after the start when the withdrawal first became DELAYED (its delay notice)
    delayed_at_s: float | None = None

    @property
    def hour_of_week(self) -> str:
        return hour_of_week(self.started_at)


def arrivals(rows: Iterable[EventRow]) -> list[Arrival]:
    """One Arrival per withdrawal with a ``started`` row: the time to its first SUCCEEDED."""
    started: dict[str, EventRow] = {}
    arrived: dict[str, datetime] = {}
    delayed: dict[str, datetime] = {}
    for r in rows:
        if r.kind == "started":
            started[r.withdrawal_id] = r
        elif r.kind == "status" and r.status in ("SUCCEEDED", "DELAYED"):
            first = arrived if r.status == "SUCCEEDED" else delayed
            at = as_utc(r.at)
            if r.withdrawal_id not in first or at < first[r.withdrawal_id]:
                first[r.withdrawal_id] = at
    out = []
    for wid, s in sorted(started.items()):
        start = as_utc(s.at)
        done, late = arrived.get(wid), delayed.get(wid)
        out.append(
            Arrival(
                wid,
                s.channel or "?",
                s.bank_code or "?",
                start,
                max(0.0, (done - start).total_seconds()) if done else None,
                max(0.0, (late - start).total_seconds()) if late else None,
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
    """:func:`project_samples` for arrivals that no channel reported slow."""
    return project_samples([(d, None) for d in durations], threshold_s, grace_s, margin_s)


#: one arrival for a projection: its duration and, when the channel said the bank was slow
#: before the threshold, how long after the start it said so (the grace starts then)
Sample = tuple[float, float | None]


def project_samples(samples: list[Sample], threshold_s: float, grace_s: float, margin_s: float) -> Projection:
    """What a threshold and grace would have done to the arrivals: a withdrawal is told
    ``grace`` after the threshold, or after its channel reported it slow if that came first
    (sentinel/timers.py ``alarm_due``)."""
    notices = false_alarms = missed = 0
    for duration, slow_at in samples:
        notify = (threshold_s if slow_at is None else min(threshold_s, slow_at)) + grace_s
        if duration > notify:
            notices += 1
            false_alarms += duration <= notify + margin_s
        elif duration > threshold_s:
            missed += 1
    return Projection(int(threshold_s), int(threshold_s + grace_s), notices, false_alarms, missed)


def samples_of(items: list[Arrival], threshold_s: float, grace_s: float) -> list[Sample]:
    """The arrived withdrawals of ``items`` as samples. One that became DELAYED earlier than
    the threshold's alarm (threshold + grace) was reported slow by its channel ``grace``
    before that; one that arrived within the grace after such a report left no trace of it,
    and a longer grace would not tell it either."""
    out: list[Sample] = []
    for a in items:
        if a.duration_s is None:
            continue
        early = a.delayed_at_s is not None and a.delayed_at_s < threshold_s + grace_s - 60
        slow_at = max(0.0, a.delayed_at_s - grace_s) if early and a.delayed_at_s is not None else None
        out.append((a.duration_s, slow_at))
    return out


def better_grace(
    samples: list[Sample], threshold_s: float, grace_s: float, cfg: TuningConfig, cap_s: float
) -> int:
    """The grace for the delays the channels report (R23: a short blip raises no alarm): the
    smallest step from the current grace up to ``max_grace`` (and below the manual check
    after the threshold) with the fewest false alarms and no missed delay on the samples;
    the current grace when no step has fewer false alarms than it."""
    if not any(slow_at is not None for _, slow_at in samples):
        return int(grace_s)
    best_fa = project_samples(samples, threshold_s, grace_s, cfg.margin_s).false_alarms
    best = int(grace_s)
    g = (int(grace_s) // cfg.step_s + 1) * cfg.step_s
    while g <= cfg.max_grace_s and threshold_s + g < cap_s and best_fa > 0:
        p = project_samples(samples, threshold_s, g, cfg.margin_s)
        if p.missed == 0 and p.false_alarms < best_fa:
            best, best_fa = g, p.false_alarms
        g += cfg.step_s
    return best


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
    #: the grace suggested with the threshold (``grace_s`` when it stays)
    suggested_grace_s: int
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
        found = _tuned(group, durations, policy, cfg)
        if found is not None:
            out.append(Suggestion(section, name, *found, _by_hour(group)))
    return out


def _tuned(
    group: list[Arrival], durations: list[float], policy: TrackingPolicy, cfg: TuningConfig
) -> tuple[int, int, int, int, Projection, Projection, int] | None:
    """One group's threshold (the rule) and grace (:func:`better_grace`), or None when
    neither changes: no threshold below the manual check avoids a missed delay, the change
    is below ``min_change`` and mends no missed delay, or it adds false alarms where none is
    missed (no tuning, it mends nothing)."""
    current, grace = int(policy.delay_threshold_s), int(policy.grace_s)
    samples = samples_of(group, current, grace)
    was = project_samples(samples, current, grace, cfg.margin_s)
    t = feasible_threshold(durations, grace, cfg, policy.manual_check_s)
    if t is None or (abs(t - current) < cfg.min_change * current and was.missed == 0):
        t = current
    elif was.missed == 0 and project_samples(samples, t, grace, cfg.margin_s).false_alarms > was.false_alarms:
        t = current
    # the grace for the new threshold, and for the current one: the fewer false alarms win,
    # the new threshold on a tie (it tells sooner or misses less)
    options = []
    for threshold in dict.fromkeys((t, current)):
        g = better_grace(samples, threshold, grace, cfg, policy.manual_check_s)
        options.append((project_samples(samples, threshold, g, cfg.margin_s), threshold, g))
    will, t, g = min(options, key=lambda o: (o[0].missed, o[0].false_alarms))
    if (t, g) == (current, grace):
        return None
    return current, t, grace, len(durations), was, will, g


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


def _set_value(lines: list[str], section: str, name: str, key: str, value: str, comment: str) -> list[str]:
    """``section.name.key = value`` in the YAML text, comments and order kept:
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
    new_line = f"    {key}: {value}   # {comment}"
    if entry is None:
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        return lines[:end] + [f"  {name}:", new_line] + lines[end:]
    lines[entry] = re.sub(r":\s*\{\}", ":", lines[entry])
    entry_end = next((i for i in range(entry + 1, end) if re.match(r"^  \S", lines[i])), end)
    for i in range(entry + 1, entry_end):
        if re.match(rf"^    {key}:", lines[i]):
            lines[i] = new_line
            return lines
    return lines[: entry + 1] + [new_line] + lines[entry + 1 :]


def tuned_text(text: str, suggestions: list[Suggestion]) -> str:
    """The delays file with the suggestions applied (comments and order kept), checked as the
    worker would load it."""
    import yaml

    lines = text.splitlines()
    for s in suggestions:
        figures = (
            f"false alarms {s.current.false_alarm_rate} -> {s.suggested.false_alarm_rate}, "
            f"missed {s.current.missed} -> {s.suggested.missed}"
        )
        if s.suggested_s != s.current_s:
            why = f"tuned: {s.samples} arrivals, was {duration_text(s.current_s)}; {figures}"
            lines = _set_value(lines, s.section, s.name, "delay_threshold", duration_text(s.suggested_s), why)
        if s.suggested_grace_s != s.grace_s:
            why = f"tuned: {s.samples} arrivals, was {duration_text(s.grace_s)}; {figures}"
            lines = _set_value(lines, s.section, s.name, "grace", duration_text(s.suggested_grace_s), why)
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
            f"{duration_text(s.suggested_s)}, grace {duration_text(s.grace_s)} -> "
            f"{duration_text(s.suggested_grace_s)} ({s.samples} arrivals)\n"
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
