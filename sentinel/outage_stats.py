"""Outage detection's statistics (issue #14 item 3, R27): exact one-sided tests of a recent
window's failure or delay count against the same bank's baseline (Fisher's; the binomial
tail for recovery against the rate frozen at firing). Pure, standard library only."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sentinel.outage_config import OutageConfig

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
