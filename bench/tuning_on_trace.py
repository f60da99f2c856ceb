"""Threshold tuning on the shipped 30-day trace (issue #14 done-when; R27, R30): replay the
trace with config/delays.yaml, feed the replay's event record to ``sentinel tune``'s rule
(sentinel/tuning.py, its default settings), replay the same trace with the suggested
thresholds, and compare false alarms and missed delays.

    python -m bench.tuning_on_trace
    python -m bench.tuning_on_trace --trace bench/traces/month-1000-seed1.csv

Prints both runs' figures and writes them to docs/benchmarks.md (section ``tuning_on_trace``).
The test of the same loop on a small trace is tests/starter/test_tuning_on_trace.py.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.measure import loadavg
from bench.report import machine_block, md_table, write_section
from sentinel.settings import ROOT
from sentinel.traces import parse_trace
from sentinel.tuning import TuningConfig, arrivals, report, suggest, tuned_text
from starter.replay import headline, replay
from store.db import engine_for
from store.events import events_between

TRACE = "bench/traces/month-1000-seed1.csv"
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


async def main_async(trace: str) -> dict:
    import yaml

    rows = parse_trace((ROOT / trace).read_text(encoding="utf-8"))
    shipped = ROOT / "config" / "delays.yaml"
    cfg = TuningConfig()
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="sentinel-tune-") as tmp:
        work = Path(tmp)
        before = await replay(rows, delays_file=shipped, work_dir=work / "before")
        [db] = (work / "before").glob("replay-*.db")
        engine = engine_for(f"sqlite:///{db}")
        found = suggest(arrivals(events_between(engine, *EVER)), yaml.safe_load(shipped.read_text()), cfg)
        engine.dispose()
        print(report(found))
        tuned = work / "tuned.yaml"
        tuned.write_text(tuned_text(shipped.read_text(encoding="utf-8"), found), encoding="utf-8")
        after = await replay(rows, delays_file=tuned, work_dir=work / "after")
    b, a = headline(before), headline(after)
    print("shipped:", b)
    print("tuned:  ", a)
    table = md_table(
        [
            "thresholds",
            "delay notices",
            "false alarms",
            "false-alarm rate",
            "arrived later than threshold",
            "missed delays",
            "notice after the start p50 / p95 s",
            "notify p95 s",
            "wall s",
        ],
        [
            [
                name,
                h["delay_notices"],
                h["false_alarms"],
                f"{h['false_alarm_rate']:.4f}",
                h["arrived_late"],
                h["missed_delays"],
                f"{h['time_to_detect_s']['p50']:.0f} / {h['time_to_detect_s']['p95']:.0f}",
                h["time_to_notify_s"]["p95"],
                r["wall_s"],
            ]
            for name, h, r in (("config/delays.yaml", b, before), ("suggested by sentinel tune", a, after))
        ],
    )
    changes = md_table(
        ["section", "name", "threshold now s", "suggested s", "grace now s", "suggested grace s", "arrivals"],
        [
            [s.section, s.name, s.current_s, s.suggested_s, s.grace_s, s.suggested_grace_s, s.samples]
            for s in found
        ],
    )
    body = [
        "## Threshold tuning on the shipped trace (`bench/tuning_on_trace.py`)",
        "",
        machine_block(
            {
                "trace": f"file {trace} ({len(rows)} withdrawals)",
                "tuning": f"quantile {cfg.quantile}, min_samples {cfg.min_samples}, margin {cfg.margin_s} s",
                "load average before → after": f"{load_before} → {loadavg()}",
            },
            f"python -m bench.tuning_on_trace --trace {trace}",
        ),
        changes,
        "",
        table,
        "",
    ]
    write_section("tuning_on_trace", "\n".join(body))
    return {"shipped": b, "tuned": a}


def main() -> None:
    p = argparse.ArgumentParser(description="threshold tuning on a replayed trace")
    p.add_argument("--trace", default=TRACE)
    a = p.parse_args()
    asyncio.run(main_async(a.trace))


if __name__ == "__main__":
    main()
