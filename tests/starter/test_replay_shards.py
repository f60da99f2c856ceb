"""The trace replay in shards (issue #14 item 7; docs/traces.md): a trace replayed in
parallel shard processes gives the figures of the same trace replayed in one process; the
work folder's database holds every shard's event rows; a shard that fails fails the replay
with its own error and stops the other shards."""

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
from starter.replay import LEAD, replay, shard_count, shift_to
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
    """30 withdrawals with known outcomes (test_trace_replay.small_trace): 2 shards give the
    same outcomes, delay notices, false alarms and missed delays as one process, and the
    work folder's database holds every row of both shards."""
    rows = small_trace()
    delays = tmp_path / "delays.yaml"
    delays.write_text(yaml.safe_dump(TEST_DELAYS))
    said: list[str] = []
    one = await replay(rows, delays_file=delays, work_dir=tmp_path / "one", workers=1, say=said.append)
    two = await replay(rows, delays_file=delays, work_dir=tmp_path / "two", workers=2, say=said.append)
    assert one["workers"] == 1 and two["workers"] == 2
    assert one["started"] == two["started"] == 30
    assert figures(two) == figures(one)
    f = figures(one)
    assert f["outcomes"] == {"FAILED": 6, "SUCCEEDED": 24}
    assert f["false_alarms"]["total"] == 6 and f["missed_delays"]["total"] == 0
    assert f["notified"] == 18

    [merged] = (tmp_path / "two").glob("replay-*.db")  # the one database the tuning reads
    shard_dbs = sorted((tmp_path / "two").glob("shard-*/replay-*.db"))
    assert len(shard_dbs) == 2
    in_shards = [keys_in(db) for db in shard_dbs]
    assert all(in_shards)
    assert sorted(keys_in(merged)) == sorted(k for keys in in_shards for k in keys)
    assert {w for w, _ in keys_in(merged)} == {r.withdrawal_id for r in rows}
    assert len(keys_in(merged)) == len(keys_in(next((tmp_path / "one").glob("replay-*.db"))))
    assert any(line.startswith("  [shard 2/2] ") for line in said)  # progress names the shard


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
