"""Traces and their replay (issue #14 item 7; R23, R27, R30): the CSV format is checked line
by line; the generator is deterministic and follows its documented facts (docs/traces.md);
``sentinel replay`` plays a small trace through the real workflow on the time-skipping
server and prints false alarms, missed delays and time to notify that match the trace's
known outcomes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import yaml
from typer.testing import CliRunner

from sentinel.catalogue import default_catalogue
from sentinel.classifier import classify
from sentinel.traces import CST, MAINTENANCE, TraceError, TraceRow, generate, parse_trace, to_csv
from starter.cli import app
from starter.replay import shift_to
from starter.replay_one import events_for
from tests.support.workflow_harness import TEST_DELAYS

HEAD = "withdrawal_id,submitted_at,channel,bank,amount,currency,outcome,outcome_at,reported_by,codes,outage\n"


def test_generator_is_deterministic_and_round_trips():
    a, b = generate(days=7, count=500, seed=3), generate(days=7, count=500, seed=3)
    assert to_csv(a) == to_csv(b) and to_csv(a) != to_csv(generate(days=7, count=500, seed=4))
    assert parse_trace(to_csv(a)) == a


def test_generator_follows_its_facts():
    """docs/traces.md: nightly maintenance (ED06, arrives after the window), business-day
    batching of ISO 20022 (G002 on weekends and holidays), outage bursts (AB08, marked),
    and every code it writes is one the generic catalogue classifies as the trace means."""
    rows = generate(days=30, count=4000, seed=11)
    cat = default_catalogue()
    for r in rows:
        local = r.submitted_at.astimezone(CST)
        if "ED06" in r.codes:
            assert MAINTENANCE[0] <= local.time() < MAINTENANCE[1] and r.channel in ("generic", "wechat")
            assert (
                r.outcome_at.astimezone(CST).time() >= MAINTENANCE[1]
                or r.outcome_at.astimezone(CST).date() > local.date()
            )
        if r.channel == "iso20022" and local.weekday() >= 5:
            assert r.progress_code == "G002" and r.outcome_at.astimezone(CST).weekday() < 5
        if r.outage:
            assert r.progress_code == "AB08"
        for code in r.codes:
            assert classify(cat, "generic", "PROCESSING", code).mapped
    assert any(r.outage for r in rows) and any("ED06" in r.codes for r in rows)
    assert {r.outcome for r in rows} == {"SUCCEEDED", "FAILED"}
    assert sum(r.reported_by == "poll" for r in rows) > 0


@pytest.mark.parametrize(
    "line, error",
    [
        ("W1,2026-12-08T04:00:00Z,generic,ICBC,10.00,CNY,LOST,2026-12-08T04:01:00Z,callback,,", "outcome"),
        (
            "W1,2026-12-08T04:00:00,generic,ICBC,10.00,CNY,SUCCEEDED,2026-12-08T04:01:00Z,callback,,",
            "time zone",
        ),
        (
            "W1,2026-12-08T04:00:00Z,generic,ICBC,1e400,CNY,SUCCEEDED,2026-12-08T04:01:00Z,callback,,",
            "amount",
        ),
        ("W1,2026-12-08T04:00:00Z,generic,ICBC,10.00,CNY,FAILED,2026-12-08T04:01:00Z,callback,,", "code"),
        (
            "W1,2026-12-08T04:00:00Z,generic,ICBC,10.00,CNY,SUCCEEDED,2026-12-08T03:01:00Z,callback,,",
            "before",
        ),
        (
            "W1,2026-12-08T04:00:00Z,generic,ICBC,10.00,CNY,SUCCEEDED,2026-12-08T04:01:00Z,email,,",
            "reported_by",
        ),
    ],
)
def test_a_bad_line_is_named(line, error):
    with pytest.raises(TraceError, match=rf"line 2: .*{error}"):
        parse_trace(HEAD + line + "\n")


def test_shift_keeps_hours_of_the_week_and_callbacks_follow_starts():
    rows = parse_trace(
        HEAD + "W1,2026-01-05T04:00:00Z,generic,ICBC,10.00,CNY,SUCCEEDED,2026-01-05T04:00:00Z,callback,,\n"
    )
    moved, shift = shift_to(rows, datetime(2026, 12, 4, 23, 0, tzinfo=UTC))
    assert shift.days % 7 == 0 and moved[0].submitted_at >= datetime(2026, 12, 4, 23, 0, tzinfo=UTC)
    assert moved[0].submitted_at.weekday() == rows[0].submitted_at.weekday()
    start, callback, end = events_for(moved)
    assert callback.at - start.at == timedelta(seconds=1.5)  # at least a second later, plus the offset
    assert end.kind == "end"


def small_trace() -> list[TraceRow]:
    """30 withdrawals with known outcomes against TEST_DELAYS (threshold 10 min, grace 2 min,
    polls 1, 2, 5 min then every 5 min, manual check 1 h). Submitted at 12:00 Shanghai."""
    t0 = datetime(2026, 12, 8, 4, 0, tzinfo=UTC)
    rows = []

    def add(kind, n, took, reported="callback", codes=(), outcome="SUCCEEDED", bank="ICBC"):
        for i in range(n):
            sub = t0 + timedelta(minutes=7 * len(rows), seconds=13)
            rows.append(
                TraceRow(
                    f"{kind}{i}",
                    sub,
                    "generic",
                    bank,
                    Decimal("250.00"),
                    "CNY",
                    outcome,
                    sub + took,
                    reported,
                    tuple(codes),
                )
            )

    add("fast", 12, timedelta(minutes=3, seconds=7))  # never an exception
    add("false", 6, timedelta(minutes=20, seconds=11), bank="CCB")  # told at ~12 min, money 8 min later
    add(
        "late", 4, timedelta(minutes=45, seconds=17), reported="poll", bank="ABC"
    )  # told, money >30 min later
    add(
        "maint", 2, timedelta(minutes=55, seconds=3), codes=("ED06",), bank="BOC"
    )  # the bank says it is closed
    add("fail", 6, timedelta(minutes=1, seconds=31), codes=("AC04",), outcome="FAILED", bank="CMB")
    return rows


@pytest.mark.deadline(300)
def test_replay_prints_what_the_trace_says(tmp_path):
    """The replay's printed analysis matches the trace's known outcomes: 24 arrived and 6
    failed; 12 arrived later than the threshold, each with a delay notice (no missed delay);
    the 6 that arrived 8 minutes after their notice are the false alarms; every exception got
    a notice (time to notify counted for all 18)."""
    rows = small_trace()
    trace = tmp_path / "trace.csv"
    trace.write_text(to_csv(rows))
    delays = tmp_path / "delays.yaml"
    delays.write_text(yaml.safe_dump(TEST_DELAYS))
    result = CliRunner().invoke(app, ["replay", str(trace), "--delays", str(delays), "--workers", "2"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert " simulated days, 2 shards, 2 at once)" in out  # two shard processes
    assert "trace: 30 withdrawals, 24 succeeded, 6 failed, 0 in an outage; replayed 30" in out
    assert "outcomes recorded: FAILED 6, SUCCEEDED 24" in out
    assert "delay notices: 12; false alarms: 6 (rate 0.5, money within 1800 s)" in out
    assert "arrived later than the threshold: 12; missed delays (no notice): 0" in out
    notify = re.search(r"time to notify \(s\): n=(\d+) p50=([\d.]+) p95=([\d.]+)", out)
    assert notify and int(notify[1]) == 18 and float(notify[3]) < 60
