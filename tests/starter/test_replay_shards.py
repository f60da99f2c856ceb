"""The trace replay in shards (issue #14 item 7; docs/traces.md): a trace replayed in
shard processes, a bounded number at once, gives the figures of the same trace replayed in
one process; the work folder's database holds every shard's event rows; a shard that fails
fails the replay with its own error and stops the other shards."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlmodel import col

from sentinel.traces import TraceRow
from starter.replay import LEAD, MAX_SHARD_ROWS, plan, replay, shard_count, shift_to
from starter.replay_shards import ShardError, run_shards, split
from store.db import make_engine
from store.tables import WithdrawalEvent
from tests.starter.test_trace_replay import small_trace
from tests.support.workflow_harness import TEST_DELAYS


def test_shards_are_dealt_round_robin_and_counted_within_bounds(monkeypatch):
    rows = small_trace()
    shards = split(rows, 4)
    assert [len(s) for s in shards] == [8, 8, 7, 7]
    assert sorted((r for s in shards for r in s), key=rows.index) == rows
    assert shards[1][:2] == [rows[1], rows[5]]
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert shard_count(None, 1000) == 6  # default: the CPUs
    assert shard_count(None, 3) == 3  # at most one per row
    assert shard_count(4, 1000) == 4
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert shard_count(None, 1000) == 1
    for bad in (0, -1, 65):
        with pytest.raises(ValueError, match="workers must be 1..64"):
            shard_count(bad, 1000)


def test_a_long_trace_is_cut_into_small_shards_run_a_few_at_once():
    assert plan(2, 10000, 500) == (20, 2)
    assert plan(2, 10001, 500) == (21, 2)  # none holds more than 500
    assert plan(4, 1000, 500) == (4, 4)  # at least one shard per worker
    assert plan(1, 400, 500) == (1, 1)  # one shard: replayed in the caller's process
    assert plan(2, 3, 1) == (3, 2)  # at most one shard per row
    assert plan(8, 3, 500) == (3, 3)
    for bad in (0, -5, MAX_SHARD_ROWS + 1):
        with pytest.raises(ValueError, match="shard_rows must be 1.."):
            plan(2, 100, bad)


def keys_in(db: Path) -> list[tuple[str, str]]:
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return [
                (r.withdrawal_id, r.key)
                for r in conn.execute(select(col(WithdrawalEvent.withdrawal_id), col(WithdrawalEvent.key)))
            ]
    finally:
        engine.dispose()


def figures(result: dict) -> dict:
    """What the analysis says about the trace, without the latencies (which vary with the
    machine by milliseconds)."""
    a = result["analysis"]
    return {
        "withdrawals": a["withdrawals"],
        "outcomes": a["outcomes"],
        "exception_rates": a["exception_rates"],
        "false_alarms": a["false_alarms"],
        "missed_delays": a["missed_delays"],
        "notices": a["notices"],
        "notified": a["time_to_notify_s"]["count"],
        "detected": a["time_to_detect_s"]["count"],
        "period": (a["since"], a["until"]),
    }


@pytest.mark.deadline(240)
async def test_sharded_replay_gives_the_figures_of_one_process(tmp_path):
    """30 withdrawals with known outcomes (test_trace_replay.small_trace): 3 shards of at
    most 10, 2 at once, give the same outcomes, delay notices, false alarms and missed delays
    as one process; the third starts only when one of the first two has ended; the work
    folder's database holds every row of the three shards."""
    rows = small_trace()
    delays = tmp_path / "delays.yaml"
    delays.write_text(yaml.safe_dump(TEST_DELAYS))
    said: list[str] = []
    one = await replay(rows, delays_file=delays, work_dir=tmp_path / "one", workers=1, say=said.append)
    at = len(said)
    two = await replay(
        rows, delays_file=delays, work_dir=tmp_path / "two", workers=2, shard_rows=10, say=said.append
    )
    assert (one["workers"], one["shards"]) == (1, 1) and (two["workers"], two["shards"]) == (2, 3)
    assert one["started"] == two["started"] == 30
    lines = said[at:]
    third = min(i for i, line in enumerate(lines) if line.startswith("  [shard 3/3] "))
    ended = [i for i, line in enumerate(lines) if line.endswith(" s") and " withdrawals in " in line]
    assert len(ended) == 3 and ended[0] < third  # a slot was free before the third began
    assert figures(two) == figures(one)
    f = figures(one)
    assert f["outcomes"] == {"FAILED": 6, "SUCCEEDED": 24}
    assert f["false_alarms"]["total"] == 6 and f["missed_delays"]["total"] == 0
    assert f["notified"] == 18

    [merged] = (tmp_path / "two").glob("replay-*.db")  # the one database the tuning reads
    shard_dbs = sorted((tmp_path / "two").glob("shard-*/replay-*.db"))
    assert len(shard_dbs) == 3
    in_shards = [keys_in(db) for db in shard_dbs]
    assert all(in_shards)
    assert sorted(keys_in(merged)) == sorted(k for keys in in_shards for k in keys)
    assert {w for w, _ in keys_in(merged)} == {r.withdrawal_id for r in rows}
    assert len(keys_in(merged)) == len(keys_in(next((tmp_path / "one").glob("replay-*.db"))))
    assert any(line.startswith("  [shard 2/3] ") for line in said)  # progress names the shard


def living_processes_mentioning(text: str) -> list[int]:
    """Ids of running processes whose command line holds ``text`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode("utf-8", "replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.deadline(120)
async def test_a_failing_shard_fails_the_replay_and_stops_the_others(tmp_path):
    """Shard 2's rows start in 2001, before its test server's clock: it fails, its error
    reaches the caller naming the shard, and shard 1 (a good replay) is stopped."""
    good, _ = shift_to(small_trace(), datetime.now(UTC) + LEAD)
    past: list[TraceRow] = [
        replace(r, submitted_at=r.submitted_at.replace(year=2001), outcome_at=r.outcome_at.replace(year=2001))
        for r in small_trace()[:3]
    ]
    assert past[0].outcome_at - past[0].submitted_at < timedelta(days=1)
    delays = tmp_path / "delays.yaml"
    delays.write_text(yaml.safe_dump(TEST_DELAYS))
    with pytest.raises(
        ShardError, match=r"(?s)shard 2/2 of the replay failed.*not after the test server's clock"
    ):
        await run_shards([good, past], tmp_path / "work", delays, say=lambda _: None)
    assert living_processes_mentioning(str(tmp_path / "work")) == []
    assert not (tmp_path / "work" / "shard-2" / "result.json").exists()


@pytest.mark.deadline(120)
async def test_a_failing_shard_starts_no_more_shards(tmp_path):
    """One at a time: shard 1 (rows in 2001) fails, and shards 2 and 3 are never started."""
    good, _ = shift_to(small_trace(), datetime.now(UTC) + LEAD)
    past = [
        replace(r, submitted_at=r.submitted_at.replace(year=2001), outcome_at=r.outcome_at.replace(year=2001))
        for r in small_trace()[:3]
    ]
    delays = tmp_path / "delays.yaml"
    delays.write_text(yaml.safe_dump(TEST_DELAYS))
    with pytest.raises(ShardError, match=r"shard 1/3 of the replay failed"):
        await run_shards(
            [past, good[:5], good[5:10]], tmp_path / "work", delays, say=lambda _: None, at_once=1
        )
    assert (tmp_path / "work" / "shard-1").exists()
    assert not (tmp_path / "work" / "shard-2").exists() and not (tmp_path / "work" / "shard-3").exists()
    assert living_processes_mentioning(str(tmp_path / "work")) == []
