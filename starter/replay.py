"""Replays a trace of withdrawals through the real workflow on the time-skipping test server
(issue #14 item 7; docs/traces.md), then prints the exception analysis of what the workflows
recorded (sentinel/analysis.py) beside what the trace itself says.

The trace is dealt round-robin into shards of at most ``shard_rows`` withdrawals (at least K
shards), K replayed at once, each in its own process with its own test server, worker and
SQLite database (starter/replay_shards.py running starter/replay_one.py); one shard replays in
this process. Shards are kept small because a test server's CPU per withdrawal grows with the
withdrawals it holds (docs/traces.md). The withdrawals of a trace are
independent (every traced user is new, no risk rules, no outage watch), so the split changes
no figure. The trace is moved forward by whole weeks once, here, from the wall clock, so that
it starts after every shard's server clock (a server starts at the wall clock and only moves
forward): all shards share the shift, hours of the week stay as in the trace, and the analysis
period is the same for all. The shards' event rows are copied into one database in the work
folder (``replay-*.db``), which the analysis reads.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sentinel.traces import TraceRow, summary
from starter.replay_one import replay_one, replay_settings
from starter.replay_shards import merge_events, run_shards, split
from store.db import engine_for
from store.events import report_between

WEEK = timedelta(days=7)
#: the trace's first submit is moved to at least this long after the wall clock: time for the
#: last queued shard's process and test server to start (a server's clock starts at the wall
#: clock; the servers skip the wait)
LEAD = timedelta(days=1)
#: the most shards a replay runs at once
MAX_WORKERS = 64
#: the most withdrawals one shard replays by default: measured on 2 cores, CPU per withdrawal
#: (worker and test server) is about 86 ms at 250 rows per test server, 94 at 500 and 99 at
#: 1,000 (docs/traces.md); smaller shards cost more process and server starts
SHARD_ROWS = 500
#: bounds of ``shard_rows``
MAX_SHARD_ROWS = 1_000_000


def shift_to(rows: list[TraceRow], not_before: datetime) -> tuple[list[TraceRow], timedelta]:
    """``rows`` moved forward by the fewest whole weeks that put the first submit at or after
    ``not_before`` (hours of the week unchanged)."""
    if not rows:
        return rows, timedelta(0)
    behind = (not_before - rows[0].submitted_at).total_seconds()
    weeks = max(0, math.ceil(behind / WEEK.total_seconds()))
    shift = WEEK * weeks
    moved = [replace(r, submitted_at=r.submitted_at + shift, outcome_at=r.outcome_at + shift) for r in rows]
    return moved, shift


def shard_count(workers: int | None, rows: int) -> int:
    """How many shards: ``workers`` (default: the machine's CPUs), at most one per row, at
    least one. ValueError outside 1..MAX_WORKERS."""
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be 1..{MAX_WORKERS}, got {workers}")
    wanted = workers if workers is not None else (os.cpu_count() or 1)
    return max(1, min(wanted, MAX_WORKERS, rows))


def plan(workers: int | None, rows: int, shard_rows: int = SHARD_ROWS) -> tuple[int, int]:
    """``(shards, at once)`` for ``rows`` withdrawals: ``at once`` is :func:`shard_count`,
    and there are enough shards that none holds more than ``shard_rows`` (at most one per
    row). ValueError when ``shard_rows`` is outside 1..MAX_SHARD_ROWS."""
    if not 1 <= shard_rows <= MAX_SHARD_ROWS:
        raise ValueError(f"shard_rows must be 1..{MAX_SHARD_ROWS}, got {shard_rows}")
    at_once = shard_count(workers, rows)
    return max(at_once, min(rows, math.ceil(rows / shard_rows))), at_once


async def replay(
    rows: list[TraceRow],
    *,
    delays_file: Path | None = None,
    work_dir: Path | None = None,
    margin: timedelta = timedelta(minutes=30),
    say: Callable[[str], None] = print,
    workers: int | None = None,
    shard_rows: int | None = None,
) -> dict:
    """Replay ``rows`` in shards of at most ``shard_rows`` (default SHARD_ROWS), ``workers`` at once (see
    :func:`plan`); returns ``{"trace": ..., "analysis": ..., "wall_s": ..., "workers": ...,
    "shards": ..., ...}``. A failing shard fails the replay (starter.replay_shards.ShardError)."""
    if not rows:
        raise ValueError("the trace is empty")
    n_shards, k = plan(workers, len(rows), SHARD_ROWS if shard_rows is None else shard_rows)
    own_dir = work_dir is None
    work = Path(work_dir or tempfile.mkdtemp(prefix="sentinel-replay-"))
    began = time.monotonic()
    try:
        settings = replay_settings(work, delays_file)
        ordered = sorted(rows, key=lambda r: (r.submitted_at, r.withdrawal_id))
        rows, shift = shift_to(ordered, datetime.now(UTC) + LEAD)
        say(
            f"replaying {len(rows)} withdrawals (moved {shift.days} days forward) "
            + (
                f"in {n_shards} shards, {k} at once in their own processes"
                if n_shards > 1
                else "in this process"
            )
        )
        if n_shards == 1:
            started = await replay_one(rows, settings, say)
        else:
            done = await run_shards(split(rows, n_shards), work, delays_file, say, at_once=k)
            started = sum(d.started for d in done)
            copied = merge_events([d.database_url for d in done], settings.database_url)
            say(f"  {copied} event rows of {n_shards} shards copied into {settings.database_url}")
        engine = engine_for(settings.database_url)
        since = rows[0].submitted_at
        until = rows[-1].submitted_at + timedelta(seconds=1)
        report = report_between(engine, since, until, margin)
        engine.dispose()
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
    wall = time.monotonic() - began
    return {
        "started": started,
        "workers": k,
        "shards": n_shards,
        "wall_s": round(wall, 1),
        "simulated_days": round((rows[-1].outcome_at - rows[0].submitted_at) / timedelta(days=1), 1),
        "shift_days": shift.days,
        "trace": summary(rows, timedelta(hours=2)),
        "analysis": report,
    }


def headline(result: dict) -> dict:
    """The figures the replay prints: false-alarm rate, missed delays, time to notify."""
    a = result["analysis"]
    fa, md = a["false_alarms"], a["missed_delays"]
    notices = sum(v["delay_notices"] for v in fa["by_channel"].values())
    late = sum(v["arrived_late"] for v in md["by_channel"].values())
    return {
        "withdrawals": a["withdrawals"],
        "outcomes": a["outcomes"],
        "delay_notices": notices,
        "false_alarms": fa["total"],
        "false_alarm_rate": round(fa["total"] / notices, 4) if notices else None,
        "arrived_late": late,
        "missed_delays": md["total"],
        "time_to_notify_s": a["time_to_notify_s"],
        "time_to_detect_s": a["time_to_detect_s"],
    }


def format_headline(result: dict) -> str:
    h = headline(result)
    t = result["trace"]
    n = h["time_to_notify_s"]
    return "\n".join(
        [
            f"trace: {t['withdrawals']} withdrawals, {t['succeeded']} succeeded, {t['failed']} failed, "
            f"{t['in_outage']} in an outage; replayed {result['started']} in {result['wall_s']} s "
            f"({result['simulated_days']} simulated days, {result['shards']} "
            + (f"shards, {result['workers']} at once)" if result["shards"] > 1 else "shard)"),
            f"outcomes recorded: {', '.join(f'{k} {v}' for k, v in h['outcomes'].items())}",
            f"delay notices: {h['delay_notices']}; false alarms: {h['false_alarms']} "
            f"(rate {h['false_alarm_rate']}, money within {result['analysis']['false_alarms']['margin_s']:.0f} s)",
            f"arrived later than the threshold: {h['arrived_late']}; missed delays (no notice): {h['missed_delays']}",
            f"time to notify (s): n={n['count']} p50={n['p50']} p95={n['p95']} p99={n['p99']}",
        ]
    )
