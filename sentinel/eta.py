"""The ETA of a delayed withdrawal (R24; issue #14 item 4): from the arrival times in the
event record (sentinel/tuning.py ``arrivals``), the time until the money arrives among past
withdrawals of the same channel, bank and hour of week that were as late. Pure. Definitions
in docs/analysis.md ("ETA"); used by activities/eta.py when a withdrawal starts."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sentinel.analysis import as_utc, hour_of_week
from sentinel.tuning import Arrival, quantile


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
