"""Operators: parked callbacks, codes no catalogue maps, the exception analysis (R27)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime
from pathlib import Path

import typer

from sentinel.settings import ROOT, get_settings
from starter.commands.common import CommandSet, app_engine, connect_client

commands = CommandSet()


# --------------------------------------------------------------------------- operators

parked_app = typer.Typer(no_args_is_help=True, help="Parked callbacks: never applied, need a person.")


@parked_app.command("list")
def parked_list(
    state: str = typer.Option("attention", help="attention (undelivered or late), undelivered, late, all"),
    limit: int = typer.Option(50, min=1, max=500),
) -> None:
    """Parked callbacks: undelivered (the withdrawal is not tracked) or late (after tracking ended)."""
    from store.callbacks import parked_callbacks

    try:
        rows, total = parked_callbacks(app_engine(), state, limit, 0)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        raise typer.Exit(2) from None
    for r in rows:
        obs = json.loads(r.observation_json)
        print(
            f"{r.id:>6} {r.channel:10} {r.withdrawal_id:24} {r.event_id:28} "
            f"{obs.get('raw_status', '?')} {obs.get('raw_code') or ''} "
            f"received {r.received_at:%Y-%m-%d %H:%M:%S} {r.outcome or 'undelivered'}"
        )
    print(f"{total} parked callback(s)")


@parked_app.command("redeliver")
def parked_redeliver(
    parked_id: int,
    operator: str = typer.Option(os.environ.get("USER", "operator"), help="who re-sends it (audit log)"),
) -> None:
    """Send a parked callback to its workflow again (safe to repeat)."""
    from gateway.callbacks import RedeliverRefused, redeliver_parked

    async def go():
        return await redeliver_parked(await connect_client(), app_engine(), parked_id, operator, "cli")

    try:
        row = asyncio.run(go())
    except RedeliverRefused as refused:
        print(f"refused: {refused}", file=sys.stderr)
        raise typer.Exit(2) from None
    print(f"re-delivered parked callback {row.id} to withdrawal {row.withdrawal_id}")


@commands.command
def unmapped(limit: int = typer.Option(50, min=1, max=500)) -> None:
    """Answers the code catalogue does not map (R26), most recent first: add each one to
    sentinel/codes/<source>.yaml (docs/error-codes.md) so the next one is classified."""
    from store.callbacks import unmapped_codes

    rows, total = unmapped_codes(app_engine(), limit, 0)
    if rows:
        print(
            f"{'channel':10} {'status':16} {'code':14} {'count':>6}  {'first seen':19}  {'last seen':19}  last withdrawal"
        )
    for r in rows:
        print(
            f"{r.channel:10} {r.raw_status:16} {r.raw_code or '-':14} {r.count:>6}  "
            f"{r.first_seen:%Y-%m-%d %H:%M:%S}  {r.last_seen:%Y-%m-%d %H:%M:%S}  {r.last_withdrawal_id or ''}"
        )
    print(f"{total} unmapped code(s)")


@commands.command
def tune(
    since: datetime | None = typer.Option(
        None,
        help="withdrawals started at or after (ISO date or time, UTC without a zone; default 28 days ago)",
    ),
    until: datetime | None = typer.Option(None, help="... and before this (default now)"),
    delays: Path | None = typer.Option(None, help="the delays file to diff (default: SENTINEL_DELAYS_FILE)"),
    quantile: float = typer.Option(0.95, help="where the search for a threshold starts"),
    min_samples: int = typer.Option(30, help="fewer arrivals in a group: no suggestion"),
    margin_min: int = typer.Option(
        30, min=0, help="false alarm: money within this many minutes of the notice"
    ),
) -> None:
    """Suggest delay thresholds from past arrival times (R30, docs/analysis.md "Threshold
    tuning"): a unified diff of the delays file on stdout (review it, then apply it with
    `patch -p1`), each suggestion's projected false alarms, missed delays and time to notify
    on stderr."""
    from datetime import UTC, timedelta

    import yaml

    from sentinel.analysis import as_utc
    from sentinel.tuning import TuningConfig, arrivals, delays_diff, report, suggest
    from store.events import events_between

    until_at = as_utc(until) if until else datetime.now(UTC)
    since_at = as_utc(since) if since else until_at - timedelta(days=28)
    if until_at <= since_at:
        raise typer.BadParameter("until must be later than since", param_hint="--until")
    path = delays or get_settings().delays_file
    text = Path(path).read_text(encoding="utf-8")
    try:
        cfg = TuningConfig(quantile=quantile, min_samples=min_samples, margin_s=margin_min * 60)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    found = suggest(
        arrivals(events_between(app_engine(), since_at, until_at)), yaml.safe_load(text) or {}, cfg
    )
    try:
        rel = str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        rel = Path(path).name
    sys.stderr.write(report(found))
    sys.stdout.write(delays_diff(text, found, rel))


@commands.command
def analysis(
    since: datetime = typer.Option(
        ..., help="withdrawals started at or after (ISO date or time; UTC without a zone)"
    ),
    until: datetime = typer.Option(..., help="... and before this"),
    fmt: str = typer.Option("markdown", "--format", help="markdown or json"),
    margin_min: int = typer.Option(
        30, min=0, help="false alarm: money within this many minutes of the delay notice"
    ),
) -> None:
    """The exception analysis of the withdrawals started in [since, until) (R27, docs/analysis.md)."""
    from datetime import timedelta

    from sentinel.analysis import to_markdown
    from store.events import report_between

    if fmt not in ("markdown", "json"):
        raise typer.BadParameter("markdown or json", param_hint="--format")
    try:
        report = report_between(app_engine(), since, until, timedelta(minutes=margin_min))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--until") from None
    print(json.dumps(report, indent=2) if fmt == "json" else to_markdown(report))
