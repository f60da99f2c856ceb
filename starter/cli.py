"""Command line for the payment service, reviewers and operators (R34).

python -m starter up                      # the whole embedded stack + demo, until Ctrl-C
python -m starter start W1001 --user u1 --amount 100.00 --bank ICBC --last4 1234 --payee-ref vault:tok
python -m starter status W1001
python -m starter review list             # the review queue (filters: --category, --min-age, ...)
python -m starter review approve W1001 --reason "verified"   # through the gateway, as SENTINEL_API_KEY's owner
python -m starter review reject W1001 --reason "fraud ring"
python -m starter review docs W1001 --reason "source of funds" --documents bank_statement
python -m starter stuck                   # DELAYED / MANUAL_CHECK / UNDER_REVIEW, via visibility
python -m starter parked list             # parked callbacks that need a person
python -m starter parked redeliver 17 --operator ops
python -m starter token user u1           # a signed user token (for testing the gateway)
python -m starter analysis --since 2026-12-01 --until 2026-12-08   # exception analysis (R27)
python -m starter tune > delays.diff      # suggested delay thresholds as a diff of config/delays.yaml (R30)
python -m starter docs [--check]          # regenerate the generated docs
python -m starter keys decision --kid k1  # a new key pair that signs and verifies review decisions
python -m starter migrate                 # upgrade the application database (Alembic)
python -m starter settings                # the settings in force
"""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import UTC, datetime
from pathlib import Path

import typer

from sentinel.settings import ROOT, Settings, get_settings
from starter.commands import credentials, operators, review, withdrawals

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.command()
def up(
    data_dir: Path = typer.Option(ROOT / ".data", help="where the SQLite files, mails and logs go"),
    serve: bool = typer.Option(True, help="keep serving after the demo until Ctrl-C"),
    demo: bool = typer.Option(True, help="play one withdrawal per scenario"),
) -> None:
    """Start Temporal (SQLite), SMTP, the channel simulator, the gateway and the worker;
    play the demo; keep serving until Ctrl-C; then stop everything that was started."""
    from sqlalchemy import make_url

    from starter.devstack import DevStack

    stack = DevStack(
        data_dir=data_dir,
        # embedded defaults: the user's own SENTINEL_* settings (environment or .env) win
        extra_defaults={"SENTINEL_DELAYS_FILE": str(ROOT / "config" / "delays.demo.yaml")},
        user_settings_win=True,
    )
    settings = Settings(
        _env_file=None,
        temporal_address=f"127.0.0.1:{stack.ports.temporal}",  # what the children get, for this process too
    )
    try:
        print(
            f"starting Temporal dev server (SQLite {data_dir / 'temporal.db'}), UI http://127.0.0.1:{stack.ports.ui}",
            flush=True,
        )
        db_url = stack.database_url()
        hint = (
            " (embedded default; SENTINEL_DATABASE_URL=postgresql+psycopg://... for PostgreSQL)"
            if db_url == stack.defaults()["SENTINEL_DATABASE_URL"]
            else " (your SENTINEL_DATABASE_URL)"
        )
        print(f"app database: {make_url(db_url).render_as_string(hide_password=True)}{hint}", flush=True)
        stack.start_all()
        print(f"review schedules: {stack.ensure_schedules()}", flush=True)  # daily and weekly (issue #14)
        print(
            f"started: SMTP :{stack.ports.smtp} (mails in {data_dir / 'mail'}), simulator :{stack.ports.simulator},"
            f" gateway http://127.0.0.1:{stack.ports.gateway}/docs, worker; logs in {data_dir / 'logs'}",
            flush=True,
        )
        asyncio.run(_outage_watch(settings))
        print("outage watch running (workflow id outage-watch, config/outage.yaml)", flush=True)
        if demo:
            asyncio.run(_demo(settings, stack))
            report = stack.review_now("daily")
            print(
                "daily review: the review-daily schedule triggered once now (it reviews yesterday, UTC: empty "
                "on a fresh stack; `python -m starter analysis --since ... --until ...` covers any period); "
                + (
                    f"its report was mailed to operations: {report}"
                    if report
                    else "no report mail came within 90 s"
                ),
                flush=True,
            )
        from starter.demo import pages_help, scenarios

        print(
            "\n".join(
                pages_help(
                    f"http://127.0.0.1:{stack.ports.gateway}",
                    f"http://127.0.0.1:{stack.ports.ui}",
                    f"user-{scenarios()[2].name}",
                )
            ),
            flush=True,
        )
        _print_ui_help(stack)
        if serve:
            print("serving; press Ctrl-C to stop", flush=True)
            _wait_for_interrupt()
    finally:
        print("stopping ...", flush=True)
        stack.stop()
        print("stopped", flush=True)


async def _outage_watch(settings: Settings) -> None:
    from runtime.client import connect
    from starter.outage_watch import ensure_outage_watch

    await ensure_outage_watch(await connect(settings), settings)


async def _demo(settings: Settings, stack) -> None:
    from runtime.client import SentinelClient
    from starter.demo import run_demo

    client = await SentinelClient.connect(settings)
    await run_demo(
        client, f"http://127.0.0.1:{stack.ports.simulator}", f"http://127.0.0.1:{stack.ports.gateway}"
    )


def _print_ui_help(stack) -> None:
    print(
        f"""Filters for stuck payouts (paste into the Temporal UI's query box):
  WithdrawalStatus="DELAYED"
  NeedsReview=true
  WithdrawalStatus="MANUAL_CHECK" OR WithdrawalStatus="UNDER_REVIEW"
  ExceptionCategory="ACCOUNT_INFO_ERROR" AND BankCode="ICBC"
Payloads are encrypted; read one history in clear through the gateway's codec server:
  temporal workflow show --address 127.0.0.1:{stack.ports.temporal} -w withdrawal-<id> \\
    --codec-endpoint http://127.0.0.1:{stack.ports.gateway}/codec --codec-auth "Bearer dev-operator-key"
""",
        flush=True,
    )


def _wait_for_interrupt() -> None:
    stop = {"flag": False}

    def handler(*_):
        stop["flag"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop["flag"]:
        signal.pause() if hasattr(signal, "pause") else None


withdrawals.commands.register(app)
operators.commands.register(app)


@app.command()
def migrate(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Upgrade the application database (SENTINEL_DATABASE_URL) with the Alembic migrations."""
    from store.db import current_revision, make_engine
    from store.db import migrate as run

    url = get_settings().database_url
    run(url, revision)
    engine = make_engine(url)
    print(f"database at revision {current_revision(engine)}")
    engine.dispose()


def settings_markdown() -> str:
    from starter.docs_gen import settings_markdown as generate

    return generate()


@app.command()
def settings(markdown: bool = typer.Option(False, help="print the documentation table instead")) -> None:
    """Print the settings in force (secrets hidden)."""
    if markdown:
        print(settings_markdown(), end="")
        return
    print(json.dumps(get_settings().model_dump(mode="json"), indent=2, default=str))


@app.command()
def docs(
    check: bool = typer.Option(False, help="only compare; exit 1 when a generated doc is stale"),
) -> None:
    """Regenerate docs/configuration.md and the field tables of docs/gateway.md (issue #12)."""
    from starter.docs_gen import stale, write

    if check:
        paths = stale()
        for path in paths:
            print(f"stale: {path.relative_to(ROOT)} (run: python -m starter docs)")
        raise typer.Exit(1 if paths else 0)
    for path in write():
        print(f"rewrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    app()


ROUTES_START, ROUTES_END = "<!-- routes:start -->", "<!-- routes:end -->"


def routes_markdown() -> str:
    """The route table of docs/notices.md, generated from the catalogue, the lifecycle and
    the shipped policies (a test keeps the doc equal to it)."""

    import yaml

    from sentinel.catalogue import default_catalogue
    from sentinel.lifecycle import route_table
    from sentinel.notice_policy import load_notice_policy
    from sentinel.policy import resolve_tracking_policy

    settings = Settings(_env_file=None)
    notice_policy = load_notice_policy(yaml.safe_load(settings.notice_policy_file.read_text()))
    policy = resolve_tracking_policy(yaml.safe_load(settings.delays_file.read_text()), "generic", "-")
    rows = route_table(
        default_catalogue(),
        notice_policy,
        policy,
        ["inbox", "email", "sms", "push", "voice"],
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    out = [
        "| codes | category / retry / fixer | route | status the user sees | notice at once | channels | operators |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        codes = ", ".join(f"`{c}`" for c in r.codes[:4]) + (
            f" and {len(r.codes) - 4} more" if len(r.codes) > 4 else ""
        )
        cat = " / ".join(x.value if x else "-" for x in (r.category, r.retry, r.fixer))
        out.append(
            f"| {codes} | {cat} | {r.route.value} | {r.status.value} | {r.notice} | "
            f"{', '.join(r.channels) or '-'} | {'alerted' if r.alerts else '-'} |"
        )
    return "\n".join(out) + "\n"


@app.command()
def routes(markdown: bool = typer.Option(True, help="print the route table of docs/notices.md")) -> None:
    """What each group of channel codes leads to: the route, what the user is told, where."""
    typer.echo(routes_markdown(), nl=False)


app.add_typer(review.app, name="review")
app.add_typer(operators.parked_app, name="parked")
app.add_typer(credentials.token_app, name="token")
app.add_typer(credentials.keys_app, name="keys")
__import__("starter.cli_learning").cli_learning.register(
    app
)  # replay, trace, schedules, spot-checks (issue #14)
