"""Commands of the learning loop (issue #14 items 5 to 7), registered on ``sentinel``:

sentinel replay TRACE.csv [--delays FILE] [--workers K] [--shard-rows N]   # a trace through the real workflow, time-skipped
sentinel trace generate --days 30 --count 10000 --seed 1 --out trace.csv
sentinel schedules ensure                          # the daily and weekly review schedules
sentinel spot-checks draw --day 2026-12-07         # that day's sample into the queue
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import typer

from sentinel.settings import get_settings

trace_app = typer.Typer(no_args_is_help=True, help="synthetic traces of withdrawals (docs/traces.md)")
schedules_app = typer.Typer(no_args_is_help=True, help="Temporal Schedules of the periodic review")
spot_app = typer.Typer(no_args_is_help=True, help="spot checks of automated decisions (R23)")


def register(app: typer.Typer) -> None:
    app.command(name="replay")(replay)
    app.add_typer(trace_app, name="trace")
    app.add_typer(schedules_app, name="schedules")
    app.add_typer(spot_app, name="spot-checks")


def replay(
    trace: Path = typer.Argument(..., exists=True, dir_okay=False, help="trace CSV (docs/traces.md)"),
    delays: Path = typer.Option(
        None, exists=True, dir_okay=False, help="delays file (default config/delays.yaml)"
    ),
    margin_min: int = typer.Option(30, min=0, max=1440, help="false alarm: money within this many minutes"),
    as_json: bool = typer.Option(False, "--json", help="print the whole analysis as JSON too"),
    workers: int = typer.Option(
        None, min=1, max=64, help="shards replayed at once, one process each (default: the number of CPUs)"
    ),
    shard_rows: int = typer.Option(
        None,
        min=1,
        max=1_000_000,
        help="the most withdrawals in one shard (default: SHARD_ROWS, starter/replay.py)",
    ),
) -> None:
    """Play TRACE through the real workflow on the time-skipping test server, then print
    false alarms, missed delays and time to notify (docs/traces.md). The trace is split into
    shards of at most SHARD_ROWS withdrawals, WORKERS of them replayed at once in their own
    processes."""
    from sentinel.traces import TraceError, parse_trace
    from starter.replay import format_headline
    from starter.replay import replay as run

    try:
        rows = parse_trace(trace.read_text(encoding="utf-8"))
    except TraceError as exc:
        raise typer.BadParameter(str(exc), param_hint="TRACE") from None
    result = asyncio.run(
        run(
            rows,
            delays_file=delays,
            margin=timedelta(minutes=margin_min),
            workers=workers,
            shard_rows=shard_rows,
        )
    )
    print(format_headline(result))
    if as_json:
        print(json.dumps(result, indent=2, default=str))


@trace_app.command("generate")
def trace_generate(
    days: int = typer.Option(30, min=1, max=120),
    count: int = typer.Option(10000, min=1, max=200000),
    seed: int = typer.Option(1),
    start: datetime = typer.Option(None, help="first day (UTC; default 2026-12-07, a Monday)"),
    out: Path = typer.Option(None, help="write here instead of standard output"),
) -> None:
    """A synthetic trace from the documented facts (docs/traces.md); the same arguments give
    the same trace."""
    from sentinel.traces import DEFAULT_START, generate, to_csv

    begin = DEFAULT_START if start is None else (start if start.tzinfo else start.replace(tzinfo=UTC))
    text = to_csv(generate(days=days, count=count, seed=seed, start=begin))
    if out is None:
        print(text, end="")
    else:
        out.write_text(text, encoding="utf-8")
        print(f"wrote {count} withdrawals to {out}")


@schedules_app.command("ensure")
def schedules_ensure() -> None:
    """Create the daily and weekly review schedules, or update them to their definition."""
    from runtime.client import connect
    from starter.schedules import ensure_schedules

    async def go():
        settings = get_settings()
        client = await connect(settings)
        return await ensure_schedules(client, settings.task_queue)

    for schedule_id, what in asyncio.run(go()).items():
        print(f"{schedule_id}: {what}")


@spot_app.command("draw")
def spot_draw(day: str = typer.Option(None, help="YYYY-MM-DD (UTC); default yesterday")) -> None:
    """Put a day's stratified sample of automated decisions in the spot-check queue."""
    from store.db import engine_for
    from store.spot_checks import draw_day

    settings = get_settings()
    the_day = date.fromisoformat(day) if day else (datetime.now(UTC) - timedelta(days=1)).date()
    added = draw_day(
        engine_for(settings.database_url),
        the_day,
        size=settings.spot_checks_per_day,
        min_per_stratum=settings.spot_checks_min_per_stratum,
        seed=settings.spot_checks_seed,
    )
    print(f"{the_day}: {added} decisions added to the spot-check queue")
