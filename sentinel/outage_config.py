"""Outage detection's configuration (issue #14 item 3): the thresholds of
config/outage.yaml as a validated, frozen value (``load_outage_config``). Pure."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
        return float(min(self.alpha ** (1 / self.min_trials), 1 / self.min_ratio))


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
