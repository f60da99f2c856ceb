"""Threshold tuning (R30) and the data-driven ETA (R24) (sentinel/tuning.py, activities/eta.py,
``sentinel tune``; issue #14 item 4): the rule that a suggestion never produces a missed
delay on the data it came from, the projection of false alarms and time to notify, the
reviewable diff of config/delays.yaml (comments kept, valid, applies with patch), and the
ETA from the arrival times of the same channel, bank and hour of week."""

from __future__ import annotations

import random
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from activities.eta import EtaSource, load_eta_config
from runtime.config_files import HotFile
from sentinel.analysis import EventRow
from sentinel.eta import EtaConfig, EtaTable, eta_after, eta_hours
from sentinel.policy import resolve_tracking_policy
from sentinel.settings import ROOT, get_settings
from sentinel.tuning import (
    Arrival,
    TuningConfig,
    arrivals,
    better_grace,
    delays_diff,
    duration_text,
    feasible_threshold,
    project,
    project_samples,
    quantile,
    samples_of,
    suggest,
    tuned_text,
)
from starter.cli import app
from store.db import engine_for
from store.events import append_event
from store.tables import WithdrawalEvent
from store.withdrawals import record_withdrawal
from tests.support.workflow_harness import TEST_DELAYS, make_request

MON9 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC
DELAYS_TEXT = (ROOT / "config" / "delays.yaml").read_text()
DELAYS = yaml.safe_load(DELAYS_TEXT)
CFG = TuningConfig(quantile=0.95, step_s=300, min_samples=30, margin_s=1800)


def arrival(i: int, duration_s: float | None, channel="generic", bank="ICBC", at=MON9) -> Arrival:
    return Arrival(f"W{i}", channel, bank, at, duration_s)


def missed_on(items: list[Arrival], doc: dict) -> int:
    """Missed delays of ``items`` under ``doc`` (docs/analysis.md): arrived after the
    resolved threshold but before the notice (threshold + grace)."""
    missed = 0
    for a in items:
        if a.duration_s is None:
            continue
        p = resolve_tracking_policy(doc, a.channel, a.bank)
        missed += p.delay_threshold_s < a.duration_s <= p.delay_threshold_s + p.grace_s
    return missed


def test_arrivals_from_the_event_record():
    """R30: the time to the first SUCCEEDED of each started withdrawal; None when it never arrived."""
    rows = [
        EventRow("A", "started", MON9, channel="alipay", bank_code="CCB"),
        EventRow("A", "status", MON9 + timedelta(minutes=3), status="PROCESSING"),
        EventRow("A", "status", MON9 + timedelta(minutes=7), status="SUCCEEDED"),
        EventRow("B", "started", MON9),
        EventRow("B", "status", MON9 + timedelta(minutes=1), status="FAILED"),
        EventRow("C", "status", MON9, status="SUCCEEDED"),  # no start: not in the population
    ]
    got = arrivals(rows)
    assert [(a.withdrawal_id, a.channel, a.bank, a.duration_s) for a in got] == [
        ("A", "alipay", "CCB", 420.0),
        ("B", "?", "?", None),
    ]
    assert got[0].hour_of_week == "Mon 09"


def test_arrivals_keep_when_a_withdrawal_first_became_delayed():
    """R23, R30: the first DELAYED (the delay notice) is kept beside the arrival, so that the
    tuning can tell a delay the channel reported from one the threshold found."""
    rows = [
        EventRow("A", "started", MON9, channel="generic", bank_code="ABC"),
        EventRow("A", "status", MON9 + timedelta(minutes=10), status="DELAYED"),
        EventRow("A", "status", MON9 + timedelta(minutes=30), status="DELAYED"),
        EventRow("A", "status", MON9 + timedelta(minutes=22), status="SUCCEEDED"),
        EventRow("B", "started", MON9, channel="generic", bank_code="ABC"),
        EventRow("B", "status", MON9 + timedelta(minutes=3), status="SUCCEEDED"),
    ]
    a, b = arrivals(rows)
    assert (a.duration_s, a.delayed_at_s) == (1320.0, 600.0)
    assert (b.duration_s, b.delayed_at_s) == (180.0, None)
    # A was told 10 minutes after the start: with a 10-minute grace, the channel said so at once
    assert samples_of([a, b], 7200, 600) == [(1320.0, 0.0), (180.0, None)]
    # B's notice came with the threshold (2 h + 10 min): no report of the channel's
    late = Arrival("C", "generic", "ABC", MON9, 9000.0, 7800.0)
    assert samples_of([late], 7200, 600) == [(9000.0, None)]


def test_a_reported_delay_is_told_a_grace_after_the_report():
    """R23: the channel says the bank is slow at 0; with 10 minutes of grace the user hears at
    10 minutes, and money at 22 minutes makes that a false alarm; a 25-minute grace waits
    past it, and the 90-minute arrival is still told (59 minutes before its money)."""
    samples = [(22.8 * 60, 0.0), (90 * 60, 0.0), (60.0, None)]
    p = project_samples(samples, 7200, 600, 1800)
    assert (p.delay_notices, p.false_alarms, p.missed) == (2, 1, 0)
    q = project_samples(samples, 7200, 1500, 1800)
    assert (q.delay_notices, q.false_alarms, q.missed) == (1, 0, 0)
    assert better_grace(samples, 7200, 600, CFG, 86400) == 1500
    # without reported delays the projection is the durations' one
    plain = [(d, None) for d, _ in samples]
    assert project_samples(plain, 1800, 600, 1800) == project([d for d, _ in samples], 1800, 600, 1800)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    samples=st.lists(
        st.tuples(st.floats(1, 3 * 86400), st.one_of(st.none(), st.floats(0, 86400))),
        min_size=1,
        max_size=200,
    ),
    threshold=st.integers(600, 86400),
    grace=st.integers(0, 3600),
)
def test_the_grace_never_adds_a_missed_delay_or_a_false_alarm(samples, threshold, grace):
    """R23, R30: whatever the arrivals, the suggested grace is the current one or a longer
    one with strictly fewer false alarms and no missed delay, within max_grace and before the
    manual check."""
    cap = threshold + 2 * 3600
    g = better_grace(samples, threshold, grace, CFG, cap)
    was = project_samples(samples, threshold, grace, 1800)
    if g == grace:
        return
    will = project_samples(samples, threshold, g, 1800)
    assert grace < g <= CFG.max_grace_s and threshold + g < cap and g % CFG.step_s == 0
    assert will.missed == 0 and will.false_alarms < was.false_alarms


def test_a_grace_suggestion_is_written_to_the_diff():
    """R30: a bank whose channel reports short maintenance delays (told at 10 min, money at
    20 to 25 min) gets a longer grace in its section; the file stays valid."""
    rows = []
    for i in range(40):
        wid = f"M{i}"
        rows.append(EventRow(wid, "started", MON9, channel="generic", bank_code="ABC"))
        if i < 8:  # reported slow at once, told after the grace (10 min), money within 25 min
            rows.append(EventRow(wid, "status", MON9 + timedelta(minutes=10), status="DELAYED"))
            rows.append(EventRow(wid, "status", MON9 + timedelta(minutes=20 + i % 5), status="SUCCEEDED"))
        else:
            rows.append(EventRow(wid, "status", MON9 + timedelta(minutes=2), status="SUCCEEDED"))
    text = (ROOT / "config" / "delays.yaml").read_text(encoding="utf-8")
    found = suggest(arrivals(rows), yaml.safe_load(text), CFG)
    [s] = [x for x in found if (x.section, x.name) == ("banks", "ABC")]
    assert s.current.false_alarms == 8 and s.suggested.false_alarms == 0 and s.suggested.missed == 0
    assert s.suggested_grace_s > s.grace_s == 600
    new = yaml.safe_load(tuned_text(text, found))
    assert new["banks"]["ABC"]["grace"] == duration_text(s.suggested_grace_s)
    assert "+    grace: " in delays_diff(text, found)


def test_projection_counts_notices_false_alarms_and_missed_delays():
    """R30, R23: a 10-minute threshold with 5 minutes of grace tells at 15 minutes; an
    arrival at 12 minutes is missed, one at 20 minutes a false alarm (within 30 minutes of
    the notice), one at 2 hours a true delay."""
    p = project([60, 720, 1200, 7200], 600, 300, 1800)
    assert (p.notify_at_s, p.delay_notices, p.false_alarms, p.missed) == (900, 2, 1, 1)
    assert p.false_alarm_rate == 0.5


def test_the_threshold_skips_a_gap_with_arrivals_in_the_grace():
    """R30, the rule: the 95th percentile is 10 min, but an arrival at 12 min would be
    missed with a 10-min threshold and 5 min grace: the next step without one wins."""
    durations = [60.0] * 94 + [600.0, 720.0, 1000.0, 1300.0, 2400.0, 9000.0]
    assert quantile(durations, 0.95) == 600
    t = feasible_threshold(durations, 300, CFG, 86400)
    assert t == 1500  # 10m has 12m in its grace, 15m has 16m40 (1000 s), 20m has 21m40 (1300 s)
    assert project(durations, t, 300, 1800).missed == 0


def test_without_a_gap_below_manual_check_there_is_no_suggestion():
    """A threshold at or past the manual check is not a valid delays.yaml (the policy refuses
    it): when every step below it has an arrival in its grace, the group keeps its threshold."""
    durations = [float(s) for s in range(60, 7200, 60)]  # an arrival every minute up to 2 h
    assert feasible_threshold(durations, 600, CFG, 3600) is None
    assert feasible_threshold(durations, 600, CFG, 8000) == 7200  # nothing arrives after 2 h


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    durations=st.lists(st.floats(1, 5 * 86400), min_size=1, max_size=300),
    grace=st.integers(0, 7200),
    q=st.floats(0.5, 0.99),
    cap=st.integers(3600, 3 * 86400),
)
def test_the_rule_never_misses_a_delay_on_its_own_data(durations, grace, q, cap):
    """R30: whatever the arrivals, the suggested threshold leaves no arrival inside the
    grace after it (no missed delay), starts at the quantile, and is the smallest step that
    does so (below the cap)."""
    cfg = TuningConfig(quantile=q, step_s=300, min_samples=5, margin_s=1800)
    t = feasible_threshold(durations, grace, cfg, cap)
    start = max(300, -(-quantile(durations, q) // 300) * 300)
    if t is None:  # every step from the quantile up to the manual check misses a delay
        steps = range(int(start), cap, 300)
        assert all(project(durations, s, grace, 1800).missed > 0 for s in steps)
        return
    assert t < cap  # a valid delays.yaml: the manual check comes after the threshold
    assert project(durations, t, grace, 1800).missed == 0
    assert t % 300 == 0 and t >= min(quantile(durations, q), max(durations))
    if start <= t - 300:  # the step below was tried and had an arrival in its grace
        assert project(durations, t - 300, grace, 1800).missed > 0


@settings(max_examples=40, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_suggestions_applied_to_delays_yaml_miss_no_delay_on_their_data(seed):
    """R30: per channel, and per bank with its own section (ABC: 6h on every channel),
    the suggestions applied to config/delays.yaml give zero missed delays on the arrivals
    they came from, whatever the mix of channels and banks."""
    rnd = random.Random(seed)
    items = []
    for i in range(600):
        channel = rnd.choice(["generic", "alipay", "iso20022"])
        bank = rnd.choice(["ICBC", "CCB", "ABC"])
        slow = rnd.random() < 0.1
        d = rnd.expovariate(1 / (7200 if slow else 300)) if rnd.random() > 0.05 else None
        items.append(arrival(i, d, channel, bank))
    found = suggest(items, DELAYS, CFG)
    new = yaml.safe_load(tuned_text(DELAYS_TEXT, found))
    assert missed_on(items, new) == 0
    assert {(s.section, s.name) for s in found} <= {
        ("channels", "generic"),
        ("channels", "alipay"),
        ("channels", "iso20022"),
        ("banks", "ABC"),
    }


def test_suggestions_lower_false_alarms_without_missed_delays():
    """R30: a channel whose money mostly comes within 50 minutes, with a 30-minute threshold
    and 10 minutes of grace, cries wolf (and misses those arriving in the grace); the
    suggestion waits a little longer: fewer false alarms, no missed delay, the true delays
    (6 to 9 hours) still told."""
    rnd = random.Random(7)
    items = [arrival(i, rnd.uniform(60, 3000), "alipay", "CCB") for i in range(300)]
    items += [arrival(1000 + i, rnd.uniform(6 * 3600, 9 * 3600), "alipay", "CCB") for i in range(10)]
    doc = {**DELAYS, "channels": {**DELAYS["channels"], "alipay": {"delay_threshold": "30m", "grace": "10m"}}}
    [s] = suggest(items, doc, CFG)
    assert (s.section, s.name, s.current_s) == ("channels", "alipay", 1800)
    assert s.current.false_alarms > 0 and s.current.missed > 0
    assert s.suggested.missed == 0 and s.suggested.false_alarms < s.current.false_alarms
    assert s.suggested.notify_at_s == s.suggested_s + 600 and s.suggested_s == 3000
    assert s.suggested.delay_notices == 10  # every true delay is told, 1 h after its start


def test_small_groups_and_small_changes_are_left_out():
    items = [arrival(i, 300.0, "alipay") for i in range(29)]
    assert suggest(items, DELAYS, CFG) == []  # 29 < min_samples
    items = [arrival(i, float(60 + i), "generic") for i in range(100)]
    doc = {**DELAYS, "channels": {"generic": {"delay_threshold": "5m", "grace": "1m"}}}
    assert suggest(items, doc, CFG) == []  # 5m already: no change


def test_the_diff_keeps_comments_is_valid_and_applies_with_patch(tmp_path):
    """R30: a reviewable unified diff of config/delays.yaml: only delay_threshold lines
    change or are added (with a comment saying why), every comment stays, the result loads,
    and ``patch -p1`` applies it."""
    rnd = random.Random(3)
    items = [arrival(i, rnd.uniform(30, 900), "generic", "ICBC") for i in range(200)]
    items += [arrival(500 + i, rnd.uniform(60, 1200), "stripe", "CCB") for i in range(50)]
    items += [arrival(900 + i, rnd.uniform(3600, 5 * 3600), "generic", "ABC") for i in range(50)]
    items += [arrival(1200 + i, rnd.uniform(60, 600), "newchannel", "CCB") for i in range(50)]
    found = suggest(items, DELAYS, CFG)
    assert {(s.section, s.name) for s in found} == {
        ("channels", "generic"),
        ("channels", "stripe"),
        ("banks", "ABC"),
        ("channels", "newchannel"),
    }
    diff = delays_diff(DELAYS_TEXT, found)
    assert diff.startswith("--- a/config/delays.yaml\n+++ b/config/delays.yaml\n")
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert all("delay_threshold" in line or line == "+  newchannel:" for line in changed), changed
    new = tuned_text(DELAYS_TEXT, found)
    assert all(line in new for line in DELAYS_TEXT.splitlines() if line.strip().startswith("#"))
    doc = yaml.safe_load(new)
    assert doc["channels"]["newchannel"]["delay_threshold"] == duration_text(
        next(s.suggested_s for s in found if s.name == "newchannel")
    )
    assert doc["channels"]["stripe"]["manual_check"] == "5d"  # the rest of the section untouched
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "delays.yaml").write_text(DELAYS_TEXT)
    (tmp_path / "delays.diff").write_text(diff)
    done = subprocess.run(["patch", "-p1", "-i", "delays.diff"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "config" / "delays.yaml").read_text() == new
    assert missed_on(items, doc) == 0
    assert delays_diff(DELAYS_TEXT, []) == ""


# --------------------------------------------------------------------------- ETA (R24)


def test_eta_is_the_conditional_quantile_of_the_same_hour_of_week():
    """R24: after 2 h without the money, the ETA is the 90th percentile of the arrival times
    of past withdrawals of that channel, bank and hour of week that took longer than 2 h,
    counted from now; with too few, the channel and bank, then the channel, then None."""
    monday = [arrival(i, 3600 * (2 + i / 10), at=MON9) for i in range(40)]  # 2h06 .. 5h54
    tuesday = [arrival(100 + i, 3600 * 10.0, at=MON9 + timedelta(days=1)) for i in range(40)]
    table = EtaTable.build(monday + tuesday)
    cfg = EtaConfig(quantile=0.9, min_samples=30, min_eta_s=900)
    seconds, group = eta_after(table, "generic", "ICBC", MON9 + timedelta(days=7), 7200, cfg)
    assert group == "generic/ICBC/Mon 09"
    assert seconds == pytest.approx(3600 * (2 + 36 / 10) - 7200)  # 36th of the 40 later ones
    seconds, group = eta_after(table, "generic", "ICBC", MON9 + timedelta(hours=5), 7200, cfg)
    assert group == "generic/ICBC"  # Mon 14: no data of its own
    assert eta_after(table, "alipay", "ICBC", MON9, 7200, cfg) is None
    assert eta_after(table, "generic", "ICBC", MON9, 11 * 3600, cfg) is None  # none took that long
    assert eta_hours(table, "alipay", "ICBC", MON9, 7200, 24.0, cfg) == 24.0  # the fixed figure
    fast = EtaTable.build([arrival(i, 7300.0) for i in range(40)])
    assert eta_after(fast, "generic", "ICBC", MON9, 7200, cfg)[0] == 900  # never sooner than min_eta


def test_eta_source_reads_the_record_rebuilds_on_refresh_and_falls_back(tmp_path):
    """R24: the activity side: the table comes from the event record, is rebuilt only when
    older than ``refresh``, a disabled or broken source gives the fixed figure."""
    engine = engine_for(f"sqlite:///{tmp_path / 'eta.db'}")
    now = datetime.now(UTC).replace(microsecond=0)
    started = now - timedelta(days=1)
    for i in range(40):
        req = make_request(f"E{i}", bank_code="CCB", created_at=started)
        record_withdrawal(engine, req, "SUBMITTED", 600)
        append_event(
            engine,
            WithdrawalEvent(
                key=f"E{i}/ok",
                withdrawal_id=f"E{i}",
                kind="status",
                at=started + timedelta(hours=3),
                status="SUCCEEDED",
            ),
        )
    config = tmp_path / "eta.yaml"
    config.write_text(yaml.safe_dump({"enabled": True, "min_samples": 30, "refresh": "10m"}))
    ticks = [0.0]
    source = EtaSource(engine, HotFile(config, load_eta_config), clock=lambda: ticks[0])
    hours = source.eta_hours("generic", "CCB", started + timedelta(days=7), 7200, 24.0)
    assert hours == pytest.approx(1.0)  # all arrived after 3 h: 1 h after a notice at 2 h
    record_withdrawal(engine, make_request("E-late", bank_code="CCB", created_at=started), "SUBMITTED", 600)
    assert source.table(86400, 600, 1000) is source.table(86400, 600, 1000)  # cached
    ticks[0] = 601.0
    assert "generic/CCB" in source.table(86400 * 28, 600, 1000).groups  # rebuilt
    config.write_text(yaml.safe_dump({"enabled": False}))
    assert source.eta_hours("generic", "CCB", started, 7200, 24.0) == 24.0
    config.write_text(yaml.safe_dump({"enabled": True}))
    assert source.eta_hours("alipay", "CCB", started, 7200, 24.0) == 24.0  # no data for alipay
    with pytest.raises(ValueError, match="unknown settings"):
        load_eta_config({"surprise": 1})
    load_eta_config(yaml.safe_load((ROOT / "config" / "eta.yaml").read_text()))  # the shipped file


def test_init_tracking_carries_the_eta_from_the_data(tmp_path):
    """R24: the activity the workflow already runs at the start puts the data's figure in the
    withdrawal's policy: the workflow promises arrival eta_hours after its delay notice, no
    Temporal action is added."""
    from activities.tracking import TrackingActivities
    from sentinel.contracts import InitInput

    engine = engine_for(f"sqlite:///{tmp_path / 'init.db'}")
    delays = tmp_path / "delays.yaml"
    delays.write_text(
        yaml.safe_dump(
            {**DELAYS, "defaults": {**DELAYS["defaults"], "delay_threshold": "1h", "grace": "10m"}}
        )
    )

    class Fixed:
        def eta_hours(self, channel, bank, started_at, alarm_after_s, fixed):
            assert (channel, bank, alarm_after_s, fixed) == (
                "generic",
                "ICBC",
                7200 + 600,
                24.0,
            )  # channels.generic: 2h
            return 2.5

    acts = TrackingActivities(
        engine,
        HotFile(delays),
        HotFile(ROOT / "config" / "notice_policy.yaml"),
        HotFile(ROOT / "config" / "risk_rules.yaml"),
        ["inbox"],
        eta=Fixed(),
    )
    result = acts._init(InitInput(request=make_request("I1")))
    assert result.policy.eta_hours == 2.5 and result.policy.delay_threshold_s == 7200


# --------------------------------------------------------------------------- the command


@pytest.fixture()
def cli_db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("SENTINEL_DATABASE_URL", url)
    get_settings.cache_clear()
    yield engine_for(url)
    get_settings.cache_clear()


def test_sentinel_tune_prints_a_diff_and_the_projection(cli_db, tmp_path):
    """R30: ``sentinel tune --since ... > delays.diff``: the diff on stdout, the projection
    on stderr; nothing to suggest is an empty diff."""
    rnd = random.Random(5)
    for i in range(60):
        at = MON9 + timedelta(minutes=i)
        record_withdrawal(cli_db, make_request(f"T{i}", channel="alipay", created_at=at), "SUBMITTED", 7200)
        append_event(
            cli_db,
            WithdrawalEvent(
                key=f"T{i}/ok",
                withdrawal_id=f"T{i}",
                kind="status",
                at=at + timedelta(seconds=rnd.uniform(60, 1200)),
                status="SUCCEEDED",
            ),
        )
    runner = CliRunner()
    args = [
        "tune",
        "--since",
        "2026-11-30",
        "--until",
        "2026-12-01",
        "--delays",
        str(ROOT / "config/delays.yaml"),
    ]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output + done.stderr
    assert done.stdout.startswith("--- a/config/delays.yaml\n+++ b/config/delays.yaml\n")
    assert (
        "+    delay_threshold: " in done.stdout and "channels.alipay: delay_threshold 2h -> " in done.stderr
    )
    done = runner.invoke(app, ["tune", "--since", "2026-10-01", "--until", "2026-10-02"])
    assert done.exit_code == 0 and done.stdout == "" and "no threshold change" in done.stderr
    done = runner.invoke(app, ["tune", "--since", "2026-12-01", "--until", "2026-11-30"])
    assert done.exit_code != 0


def test_no_suggestion_adds_false_alarms_where_none_is_missed():
    """R30: a channel told at 2 h 10 min has no false alarm and misses no delay; the 95th
    percentile (60 min) would tell the four 85-minute arrivals 15 minutes before their money
    (four false alarms) and mend nothing: that is no tuning, so there is no suggestion
    (bench.tuning_on_trace found it on the shipped trace)."""
    doc = {
        "version": "t",
        "defaults": {
            **TEST_DELAYS["defaults"],
            "delay_threshold": "2h",
            "grace": "10m",
            "manual_check": "4h",
        },
    }
    durations = [60.0] * 90 + [3600.0] * 6 + [5100.0] * 4
    items = [arrival(i, d) for i, d in enumerate(durations)]
    cfg = TuningConfig(quantile=0.95, step_s=300, min_samples=30, margin_s=1800)
    assert feasible_threshold(durations, 600, cfg, 4 * 3600) == 3600
    assert project(durations, 3600, 600, 1800).false_alarms == 4
    assert suggest(items, doc, cfg) == []
