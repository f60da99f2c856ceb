"""Outage detection, pure (sentinel/outage.py; issue #14 item 3, R27): the exact binomial
test, the configuration's checks, the counting of verdicts from event rows, the
Alertmanager-like lifecycle (fire once, grouped, inhibited while firing, resolved with
hysteresis), and properties: noise at baseline rates raises no incident, an injected
outage fires within the stated detection time and resolves after recovery."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel.analysis import EventRow
from sentinel.outage import (
    Counts,
    Incident,
    KeyCounts,
    SignalRate,
    SignalState,
    WatchState,
    baseline_rate,
    binomial_sf,
    duration_s,
    fisher_sf,
    load_outage_config,
    observe,
    recovered,
    shown_rates,
    significance,
    step,
)
from sentinel.settings import ROOT

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SHIPPED = yaml.safe_load((ROOT / "config" / "outage.yaml").read_text())
#: the shipped thresholds with a 6-hour baseline (so generated traces stay small)
CFG = load_outage_config({**SHIPPED, "baseline": "4h", "slow_after": {"default": "15m"}})


def started(wid: str, at: datetime, bank="ICBC", channel="generic") -> EventRow:
    return EventRow(withdrawal_id=wid, kind="started", at=at, key=f"{wid}/s", channel=channel, bank_code=bank)


def status(wid: str, at: datetime, st: str, category: str | None = None) -> EventRow:
    return EventRow(
        withdrawal_id=wid, kind="status", at=at, key=f"{wid}/{st}/{at}", status=st, category=category
    )


# --------------------------------------------------------------------------- the test itself


def brute_sf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


@pytest.mark.parametrize("n", [0, 1, 5, 12, 40])
@pytest.mark.parametrize("p", [0.0, 0.01, 0.05, 0.3, 0.9, 1.0])
def test_binomial_tail_is_exact(n, p):
    """R27: the p-value is the exact upper tail, checked against the sum of the pmf."""
    for k in range(0, n + 2):
        assert binomial_sf(k, n, p) == pytest.approx(
            brute_sf(k, n, p) if k <= n else 0.0, rel=1e-9, abs=1e-300
        )


def test_binomial_tail_of_large_counts_is_finite_and_monotone():
    """R27: thousands of verdicts (a busy bank) do not overflow, and more events are rarer."""
    tails = [binomial_sf(k, 5000, 0.02) for k in (50, 100, 150, 200)]
    assert tails[0] > 0.9 and tails == sorted(tails, reverse=True) and tails[-1] < 1e-12


def test_minimum_counts_hold_even_when_the_p_value_is_tiny():
    """R27: 5 failures out of 5 against a 1% baseline is p = 1e-10, but fewer than
    min_trials verdicts and min_events events never fire."""
    base = Counts(10_000, 100)
    assert binomial_sf(5, 5, 0.01) < 1e-9 and not significance(Counts(5, 5), base, CFG).significant
    assert significance(Counts(12, 6), base, CFG).significant
    assert not significance(Counts(200, 5), Counts(100_000, 1), CFG).significant  # 5 < min_events


def test_the_rate_must_be_min_ratio_times_the_baseline():
    """R27: a statistically significant but small rise (a busy bank at 1.3x its baseline)
    is not an outage."""
    base = Counts(1_000_000, 10_000)
    v = significance(Counts(100_000, 1300), base, CFG)
    assert v.p_value < CFG.alpha and not v.significant
    assert significance(Counts(100_000, 2100), base, CFG).significant


def brute_fisher(k, n, kb, nb):
    big_k, big_n = k + kb, n + nb
    return sum(
        math.comb(big_k, x) * math.comb(big_n - big_k, n - x) for x in range(k, min(n, big_k) + 1)
    ) / math.comb(big_n, n)


@pytest.mark.parametrize(
    ("k", "n", "kb", "nb"),
    [(0, 10, 3, 50), (3, 10, 3, 50), (6, 12, 1, 300), (12, 12, 0, 40), (5, 5, 0, 0), (2, 30, 40, 60)],
)
def test_fisher_tail_is_exact(k, n, kb, nb):
    """R27: the p-value is the exact hypergeometric upper tail."""
    assert fisher_sf(Counts(n, k), Counts(nb, kb)) == pytest.approx(brute_fisher(k, n, kb, nb), rel=1e-9)


def test_a_key_without_a_baseline_cannot_fire():
    """R27: compared with its own baseline only: a new bank whose every withdrawal fails
    has nothing to differ from, and raises nothing until it has a baseline."""
    assert fisher_sf(Counts(100, 100), Counts(0, 0)) == 1.0
    assert not significance(Counts(100, 100), Counts(0, 0), CFG).significant
    assert significance(Counts(100, 100), Counts(300, 3), CFG).significant


def test_baseline_rate_floor_and_smoothing():
    """R27: a clean baseline is not zero (floor, half an event)."""
    assert baseline_rate(Counts(0, 0), CFG) == 0.5
    assert baseline_rate(Counts(1000, 0), CFG) == CFG.baseline_floor
    assert baseline_rate(Counts(1000, 99), CFG) == pytest.approx(99.5 / 1001)


def test_recovery_needs_enough_verdicts_and_a_high_p_value():
    """R27: hysteresis: recovery is judged only on min_resolve_trials verdicts, and only
    when the window is not even mildly above the frozen baseline."""
    assert recovered(Counts(4, 0), 0.02, CFG) is None
    assert recovered(Counts(10, 0), 0.02, CFG) is True
    assert recovered(Counts(10, 1), 0.02, CFG) is True  # p = 0.18
    assert recovered(Counts(10, 2), 0.02, CFG) is False  # p = 0.016: still suspicious, not firing either
    assert not significance(Counts(10, 2), Counts(1000, 20), CFG).significant


# --------------------------------------------------------------------------- configuration


def test_shipped_config_is_valid_and_documented():
    """R30: config/outage.yaml loads, and docs/analysis.md names every one of its keys."""
    cfg = load_outage_config(SHIPPED)
    assert cfg.alpha == 1e-6 and cfg.window_s == 1800 and cfg.baseline_s == 7 * 86400
    assert cfg.slow_after("wechat") == 36 * 3600 and cfg.slow_after("generic") == 900
    doc = (ROOT / "docs" / "analysis.md").read_text()
    for key in SHIPPED:
        assert f"`{key}`" in doc, key


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"alpha": 0.9}, "alpha"),
        ({"min_trials": 0}, "min_trials"),
        ({"min_trials": 2.5}, "whole number"),
        ({"min_events": 20}, "min_events cannot exceed"),
        ({"alpha": 1e-3, "resolve_alpha": 1e-4}, "hysteresis"),
        ({"baseline": "2h", "window": "3h"}, "baseline must be longer"),
        ({"window": "10s"}, "window"),
        ({"surprise": 1}, "unknown settings"),
        ({"slow_after": {"default": "15m", "weird": 1}}, "slow_after"),
        ({"failure": {"statuses": "FAILED"}}, "list of names"),
        ({"evaluate_every": "soon"}, "not a duration"),
        ({"alpha": True}, "a number"),
    ],
)
def test_bad_configs_are_refused(change, message):
    """R30: a broken edit is refused with a reason (the last good file stays in force)."""
    with pytest.raises(ValueError, match=message):
        load_outage_config({**SHIPPED, **change})


def test_durations():
    assert duration_s("90s") == 90 and duration_s("15m") == 900 and duration_s("2h") == 7200
    assert duration_s(30) == 30 and duration_s("7d") == 7 * 86400
    with pytest.raises(ValueError):
        duration_s(True)


# --------------------------------------------------------------------------- observing rows


def test_observe_counts_verdicts_in_the_recent_and_baseline_windows():
    """R27: failure verdicts at the failure row (or the final status), delay verdicts at
    start + slow_after, split between the recent window and the baseline before it."""
    now = T0
    rows = [
        # recent: fast success, failure by category, a slow one still open
        started("A", now - timedelta(minutes=20)),
        status("A", now - timedelta(minutes=19), "SUCCEEDED"),
        started("B", now - timedelta(minutes=20)),
        status("B", now - timedelta(minutes=19), "PROCESSING", "CHANNEL_REJECTED"),
        started("C", now - timedelta(minutes=25)),
        # baseline: a user's own bad card is not a bank failure
        started("D", now - timedelta(hours=2)),
        status("D", now - timedelta(hours=2) + timedelta(minutes=1), "FAILED", "ACCOUNT_INFO_ERROR"),
        # another key
        started("E", now - timedelta(minutes=20), bank="CCB"),
        status("E", now - timedelta(minutes=2), "SUCCEEDED"),
        # a row after `now` is not known yet
        status("C", now + timedelta(minutes=1), "SUCCEEDED"),
    ]
    by = {c.key: c for c in observe(rows, now, CFG)}
    icbc = by["ICBC/generic"]
    assert icbc.failure == Counts(2, 1)  # A (success), B (rejected); C has no verdict yet
    assert icbc.failure_baseline == Counts(1, 0)  # D: ignored category -> not a failure
    # delay verdicts at start + 15 min: A, B at now-5m, C at now-10m (still open: slow)
    # B's failure row is not final: B has no final status by its due time -> slow as well
    assert icbc.delay == Counts(3, 2)
    assert icbc.delay_baseline == Counts(1, 0)
    assert by["CCB/generic"].delay == Counts(1, 1)  # E arrived after 18 minutes


def test_observe_ignores_verdicts_older_than_the_baseline():
    now = T0
    old = now - timedelta(seconds=CFG.window_s + CFG.baseline_s + CFG.slow_after("generic") + 60)
    rows = [started("A", old), status("A", old + timedelta(seconds=30), "FAILED")]
    assert observe(rows, now, CFG) == []


# --------------------------------------------------------------------------- the lifecycle


def key_counts(failure=(0, 0), delay=(0, 0), fb=(1000, 10), db=(1000, 10), bank="ICBC") -> KeyCounts:
    return KeyCounts(bank, "generic", Counts(*failure), Counts(*fb), Counts(*delay), Counts(*db))


def run(states_counts, cfg=CFG):
    state, log = WatchState(), []
    for i, counts in enumerate(states_counts):
        state, transitions = step(state, counts, T0 + timedelta(minutes=i), cfg)
        log.append([(t.kind, t.incident.id, tuple(s.name for s in t.incident.signals)) for t in transitions])
    return state, log


def test_an_incident_fires_once_and_is_inhibited_while_firing():
    """R27: one alert per incident, however many evaluations the outage lasts."""
    bad = [key_counts(failure=(20, 15))]
    state, log = run([bad] * 10)
    fired = [t for ts in log for t in ts]
    assert fired == [("fired", "ICBC-generic-20261207T090000Z", ("failure",))]
    assert [i.key for i in state.firing] == ["ICBC/generic"]


def test_both_signals_of_a_key_are_grouped_in_one_incident():
    """R27: a bank that fails and is slow is one incident, one alert; a signal that turns
    bad later joins the firing incident without a new alert."""
    state, log = run([[key_counts(failure=(20, 15), delay=(20, 18))]])
    assert log == [[("fired", "ICBC-generic-20261207T090000Z", ("failure", "delay"))]]
    state, log = run([[key_counts(failure=(20, 15))], [key_counts(failure=(20, 15), delay=(20, 18))]])
    assert sum(len(ts) for ts in log) == 1
    assert [s.name for s in state.firing[0].signals] == ["failure", "delay"]


def test_keys_are_independent():
    state, log = run([[key_counts(failure=(20, 15)), key_counts(bank="CCB", failure=(20, 0))]])
    assert [t[1] for t in log[0]] == ["ICBC-generic-20261207T090000Z"]


def test_resolution_needs_resolve_after_good_evaluations_in_a_row():
    """R27: hysteresis: resolved after resolve_after evaluations that look normal; a
    suspicious one in between restarts the count; too few verdicts leave it as it is."""
    bad, good = [key_counts(failure=(20, 15))], [key_counts(failure=(20, 0))]
    thin, grey = [key_counts(failure=(3, 0))], [key_counts(failure=(20, 2))]  # grey: p ~ 0.017 at p0 ~ 0.01
    state, log = run([bad, good, good, grey, good, thin, good, good])
    kinds = [t[0] for ts in log for t in ts]
    assert kinds == ["fired", "resolved"] and log[7] and log[7][0][0] == "resolved"
    assert state.firing == []


def test_grey_zone_neither_fires_nor_resolves():
    """R27: between alpha and resolve_alpha nothing changes: no flapping."""
    grey = [key_counts(failure=(20, 2))]
    _, log = run([grey] * 5)
    assert log == [[]] * 5
    _, log = run([[key_counts(failure=(20, 15))]] + [grey] * 10)
    assert [t[0] for ts in log for t in ts] == ["fired"]


def test_a_new_outage_after_resolution_is_a_new_incident():
    bad, good = [key_counts(failure=(20, 15))], [key_counts(failure=(20, 0))]
    _, log = run([bad, good, good, good, bad])
    ids = [t[1] for ts in log for t in ts]
    assert [t[0] for ts in log for t in ts] == ["fired", "resolved", "fired"] and ids[0] == ids[1] != ids[2]


def test_fire_after_waits_for_consecutive_significant_evaluations():
    cfg = replace(CFG, fire_after=3)
    bad, ok = [key_counts(failure=(20, 15))], [key_counts(failure=(20, 0))]
    _, log = run([bad, bad, ok, bad, bad, bad], cfg)
    assert [i for i, ts in enumerate(log) if ts] == [5]


def test_the_state_survives_a_round_trip_through_the_workflow_payload_converter():
    """The watch carries its state across continue-as-new (Temporal's JSON converter)."""
    from temporalio.converter import DataConverter

    state, _ = run([[key_counts(failure=(20, 15))]])
    conv = DataConverter.default.payload_converter
    back = conv.from_payloads(conv.to_payloads([state]), [WatchState])[0]
    assert back == state


# --------------------------------------------------------------------------- properties


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    p=st.floats(0.0005, 0.3),
    baseline_n=st.integers(0, 20_000),
    recent_n=st.integers(0, 2_000),
)
def test_noise_at_the_baseline_rate_never_fires(seed, p, baseline_n, recent_n):
    """R27: counts drawn at the key's own rate, in the baseline and the recent window alike,
    never fire (each evaluation's false-fire probability is at most alpha = 1e-6, so
    300 examples x 2 signals firing would mean a broken test)."""
    rnd = random.Random(seed)
    kb = sum(rnd.random() < p for _ in range(baseline_n))
    k = sum(rnd.random() < p for _ in range(recent_n))
    v = significance(Counts(recent_n, k), Counts(baseline_n, kb), CFG)
    assert not v.significant, (v, kb, k)


def test_the_false_fire_rate_is_below_alpha():
    """R27, the stated confidence: with a loose alpha (1e-2) and no guards, 20,000 seeded
    draws of 200 recent and 2,000 baseline verdicts at one rate fire at most alpha of the
    time (the exact test is conservative)."""
    cfg = replace(CFG, alpha=1e-2, min_trials=1, min_events=1, min_ratio=1.0)
    rnd = random.Random(14)
    fired = 0
    for _ in range(20_000):
        k = sum(rnd.random() < 0.05 for _ in range(200))
        kb = sum(rnd.random() < 0.05 for _ in range(2000))
        fired += significance(Counts(200, k), Counts(2000, kb), cfg).significant
    assert fired / 20_000 <= 0.01


def trace(
    seed, per_minute, p_fail, p_slow, outage_kind, start, outage_at, outage_end, until, banks=("ICBC", "CCB")
):
    """Synthetic event rows: Poisson arrivals per bank; normal withdrawals arrive after 30 s
    to 5 min, with probability p_slow after 1 h, with p_fail fail; ICBC withdrawals started
    in [outage_at, outage_end) all fail (``failure``) or stay open until the outage ends
    plus 1 h (``delay``)."""
    rnd = random.Random(seed)
    rows = []
    for bank in banks:
        t, n = start, 0
        while t < until:
            t += timedelta(seconds=rnd.expovariate(per_minute / 60))
            n += 1
            wid = f"{bank}{n}"
            rows.append(started(wid, t, bank=bank))
            down = bank == "ICBC" and outage_at <= t < outage_end
            if down and outage_kind == "failure":
                rows.append(status(wid, t + timedelta(seconds=30), "FAILED", "CHANNEL_REJECTED"))
            elif down:
                rows.append(status(wid, outage_end + timedelta(hours=1), "SUCCEEDED"))
            elif rnd.random() < p_fail:
                rows.append(
                    status(wid, t + timedelta(seconds=rnd.uniform(30, 300)), "FAILED", "CHANNEL_REJECTED")
                )
            else:
                late = (
                    timedelta(hours=1) if rnd.random() < p_slow else timedelta(seconds=rnd.uniform(30, 300))
                )
                rows.append(status(wid, t + late, "SUCCEEDED"))
    return rows


@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    per_minute=st.floats(1.0, 3.0),
    p_fail=st.floats(0.0, 0.05),
    p_slow=st.floats(0.0, 0.05),
    kind=st.sampled_from(["failure", "delay"]),
)
def test_an_injected_outage_fires_within_the_stated_detection_time_and_resolves(
    seed, per_minute, p_fail, p_slow, kind
):
    """R27: a full outage of ICBC (every withdrawal fails, or none arrives) raises ONE
    incident, for ICBC only, within ``detection_time_s`` (docs/analysis.md), while CCB's
    noise raises none; after the outage it resolves: the window holds only normal verdicts
    slow_after + window after the outage ends, then resolve_after good evaluations in a row
    are needed (noise in the grey zone can hold it longer: at most 3 windows here)."""
    cfg = CFG
    start = T0 - timedelta(seconds=cfg.baseline_s + cfg.window_s + cfg.max_slow_after_s)
    outage_at, outage_end = T0, T0 + timedelta(hours=1)
    until = outage_end + timedelta(hours=1, minutes=30)
    rows = trace(seed, per_minute, p_fail, p_slow, kind, start, outage_at, outage_end, until)
    rows.sort(key=lambda r: r.at)
    # the stated detection time, with the trace's own arrivals: the min_trials-th ICBC
    # withdrawal since the outage began, judged slow_after later, the next evaluation
    since = sorted(r.at for r in rows if r.kind == "started" and r.bank_code == "ICBC" and r.at >= outage_at)
    deadline = since[cfg.min_trials - 1] + timedelta(
        seconds=cfg.slow_after("generic") + cfg.evaluate_every_s * cfg.fire_after
    )
    resolve_by = outage_end + timedelta(seconds=cfg.slow_after("generic") + 3 * cfg.window_s)
    state, fired, resolved = WatchState(), [], []
    now = outage_at - timedelta(minutes=10)  # from before the outage: nothing fires there
    while now <= resolve_by and not resolved:
        state, transitions = step(state, observe(rows, now, cfg), now, cfg)
        for t in transitions:
            (fired if t.kind == "fired" else resolved).append((now, t.incident))
        now += timedelta(seconds=cfg.evaluate_every_s)
    assert [inc.key for _, inc in fired] == ["ICBC/generic"], fired
    assert outage_at <= fired[0][0] <= deadline
    assert [inc.key for _, inc in resolved] == ["ICBC/generic"] and resolved[0][0] <= resolve_by


def test_an_incidents_rates_are_stored_as_data_and_shown_as_its_summary_states_them():
    # issue #14 items 3 and 5: the console and GET /v1/ops/incidents show each signal's rate
    # against its baseline from the incident's stored rates (column outage_incident.rates).
    incident = Incident(
        "ICBC-generic-x",
        "ICBC",
        "generic",
        T0,
        [SignalState("failure", 0.0104, 0.8, 3.2e-11), SignalState("delay", 0.2, 0.456, 0.00043)],
    )
    shown = shown_rates(incident.rates_json())
    assert shown == [
        SignalRate("failure", "80%", "1.0%", "3.2e-11"),
        SignalRate("delay", "46%", "20.0%", "4.3e-04"),
    ]
    for s in shown:  # the same figures as the summary the alert e-mail states
        assert f"{s.signal} {s.rate} vs baseline {s.baseline} (p={s.p_value})" in incident.summary()
    assert shown_rates(None) == [] and shown_rates("") == []  # an incident from before 0010
    assert shown_rates("not json") == [] and shown_rates('{"signal": "failure"}') == []
    assert shown_rates('[{"signal": "failure", "rate": "x", "baseline": 0, "p": 1}]') == []
    assert shown_rates('[{"signal": "other", "rate": 1, "baseline": 0, "p": 1}]') == []
