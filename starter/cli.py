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
python -m starter keys decision --kid k1  # a new key pair that signs and verifies review decisions
python -m starter migrate                 # upgrade the application database (Alembic)
python -m starter settings                # the settings in force
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import typer
from typer.core import TyperGroup

from sentinel.models import Contact, WithdrawalRequest
from sentinel.settings import ROOT, Settings, get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _client():
    from starter.client import SentinelClient

    return SentinelClient.connect(get_settings())


@app.command()
def up(
    data_dir: Path = typer.Option(ROOT / ".data", help="where the SQLite files, mails and logs go"),
    serve: bool = typer.Option(True, help="keep serving after the demo until Ctrl-C"),
    demo: bool = typer.Option(True, help="play one withdrawal per scenario"),
) -> None:
    """Start Temporal (SQLite), SMTP, the channel simulator, the gateway and the worker;
    play the demo; keep serving until Ctrl-C; then stop everything that was started."""
    from starter.devstack import DevStack

    stack = DevStack(
        data_dir=data_dir,
        env_overrides={
            "SENTINEL_DELAYS_FILE": str(ROOT / "config" / "delays.demo.yaml"),
        },
    )
    settings = Settings(
        _env_file=None,
        **{  # what the children get, for this process too
            "temporal_address": f"127.0.0.1:{stack.ports.temporal}",
        },
    )
    try:
        print(
            f"starting Temporal dev server (SQLite {data_dir / 'temporal.db'}), UI http://127.0.0.1:{stack.ports.ui}",
            flush=True,
        )
        stack.start_all()
        print(f"review schedules: {stack.ensure_schedules()}", flush=True)  # daily and weekly (issue #14)
        print(
            f"started: SMTP :{stack.ports.smtp} (mails in {data_dir / 'mail'}), simulator :{stack.ports.simulator},"
            f" gateway http://127.0.0.1:{stack.ports.gateway}/docs, worker; logs in {data_dir / 'logs'}",
            flush=True,
        )
        if demo:
            asyncio.run(_demo(settings, stack))
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


async def _demo(settings: Settings, stack) -> None:
    from starter.client import SentinelClient
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


@app.command()
def start(
    withdrawal_id: str,
    user: str = typer.Option(..., help="user id"),
    amount: str = typer.Option(..., help="decimal string, e.g. 100.00"),
    currency: str = "CNY",
    channel: str = "generic",
    bank: str = typer.Option(..., help="bank code, e.g. ICBC"),
    last4: str = typer.Option(..., help="last four digits of the card"),
    payee_ref: str = typer.Option(..., help="card vault reference (never the card number)"),
    locale: str = "zh-CN",
    email: str | None = None,
    phone: str | None = None,
) -> None:
    """Start tracking a withdrawal (idempotent)."""
    req = WithdrawalRequest(
        withdrawal_id=withdrawal_id,
        user_id=user,
        amount=Decimal(amount),
        currency=currency,
        channel=channel,
        bank_code=bank,
        card_last4=last4,
        payee_ref=payee_ref,
        locale=locale,
        contact=Contact(email=email, phone=phone),
    )

    async def go():
        handle = await (await _client()).start_withdrawal(req)
        print(handle.id)

    asyncio.run(go())


@app.command()
def status(withdrawal_id: str) -> None:
    """Print the status, timeline and notices of a withdrawal as JSON."""

    async def go():
        view = await (await _client()).status(withdrawal_id)
        print(view.model_dump_json(indent=2))

    asyncio.run(go())


# --------------------------------------------------------------------------- review desk (R29)


class _ReviewGroup(TyperGroup):
    """``review`` subcommands; the original form ``review ID DECISION ...`` still works."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["decide", *args]
        return super().resolve_command(ctx, args)


review_app = typer.Typer(
    cls=_ReviewGroup, no_args_is_help=True, help="The review desk: the queue and decisions."
)
app.add_typer(review_app, name="review")


def _engine():
    from store.db import engine_for

    return engine_for(get_settings().database_url)


def _decide(
    withdrawal_id: str,
    decision: str,
    reason: str,
    documents: list[str],
    api_key: str,
    gateway: str | None,
    reviewer: str | None,
) -> None:
    """Send the decision through the gateway's HTTP API with the reviewer's own API key:
    the gateway names the reviewer (the key's owner), signs the decision for the workflow,
    and the workflow writes the audit row (issue #11). Nothing here talks to Temporal."""
    import httpx

    from gateway.routes_reviews import DecisionBody
    from starter.desk import DeskRefused, post_decision

    if reviewer is not None:
        print(
            "--reviewer is no longer taken: the reviewer is the owner of the API key (--api-key, SENTINEL_API_KEY)",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    try:
        DecisionBody(
            decision=decision, reason=reason, documents=documents
        )  # the gateway's own rules, before sending
    except ValueError as exc:
        print(f"invalid decision: {exc}", file=sys.stderr)
        raise typer.Exit(2)
    url = gateway or get_settings().callback_base_url
    try:
        answer = asyncio.run(post_decision(url, api_key, withdrawal_id, decision, reason, documents))
    except DeskRefused as exc:
        print(f"refused ({exc.status}): {exc}", file=sys.stderr)
        raise typer.Exit(2)
    except httpx.HTTPError as exc:
        print(f"the gateway at {url} did not answer: {exc}", file=sys.stderr)
        raise typer.Exit(1)
    print(answer["status"])


@review_app.command("list")
def review_list(
    category: str | None = typer.Option(None, help="exception category, e.g. RISK_HOLD"),
    status: str | None = typer.Option(None, help="UNDER_REVIEW or MANUAL_CHECK"),
    min_age: float | None = typer.Option(None, help="waiting at least this many seconds"),
    min_amount: str | None = typer.Option(None, help="amount at least, e.g. 50000"),
    assignee: str | None = typer.Option(None),
    unassigned: bool = typer.Option(False, help="only cases nobody has taken"),
    limit: int = typer.Option(50, min=1, max=500),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """The review queue, oldest first (from the withdrawal records)."""
    from datetime import datetime

    from store.repo import review_queue_page

    now = datetime.now(UTC)
    rows, total = review_queue_page(
        _engine(),
        category=category,
        status=status,
        older_than_s=min_age,
        min_amount=Decimal(min_amount) if min_amount else None,
        assignee=assignee,
        unassigned=unassigned,
        now=now,
        limit=limit,
    )
    for r in rows:
        since = (
            r.review_since.replace(tzinfo=r.review_since.tzinfo or UTC) if r.review_since else None
        )
        age = int((now - since).total_seconds()) if since else None
        if as_json:
            print(
                json.dumps(
                    {
                        "withdrawal_id": r.withdrawal_id,
                        "user_id": r.user_id,
                        "status": r.status,
                        "category": r.category,
                        "amount": str(r.amount),
                        "currency": r.currency,
                        "age_s": age,
                        "assignee": r.assignee,
                    }
                )
            )
        else:
            print(
                f"{r.withdrawal_id:24} {r.status:13} {r.category or '-':22} {r.amount:>14} {r.currency}"
                f" {_age_text(age):>8} {r.assignee or '-'}"
            )
    if not as_json:
        print(f"{total} case(s) waiting" + (f", {len(rows)} shown" if len(rows) < total else ""))


def _age_text(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


_REASON = typer.Option(..., help="why (kept in the audit log and the timeline)")
_API_KEY = typer.Option(
    ...,
    envvar="SENTINEL_API_KEY",
    show_default=False,
    help="your own API key (reviewer, supervisor, operator): the gateway names you by it",
)
_GATEWAY = typer.Option(
    None, envvar="SENTINEL_GATEWAY_URL", help="base URL of the gateway; default SENTINEL_CALLBACK_BASE_URL"
)
_NO_REVIEWER = typer.Option(None, hidden=True, help="no longer taken: the API key names the reviewer")


@review_app.command("approve")
def review_approve(
    withdrawal_id: str,
    reason: str = _REASON,
    api_key: str = _API_KEY,
    gateway: str | None = _GATEWAY,
    reviewer: str | None = _NO_REVIEWER,
) -> None:
    """Approve: the payout is released (four-eyes: a second, different reviewer may be needed)."""
    _decide(withdrawal_id, "approve", reason, [], api_key, gateway, reviewer)


@review_app.command("reject")
def review_reject(
    withdrawal_id: str,
    reason: str = _REASON,
    api_key: str = _API_KEY,
    gateway: str | None = _GATEWAY,
    reviewer: str | None = _NO_REVIEWER,
) -> None:
    """Reject: the withdrawal fails and the funds go back to the user's balance."""
    _decide(withdrawal_id, "reject", reason, [], api_key, gateway, reviewer)


@review_app.command("docs")
def review_docs(
    withdrawal_id: str,
    reason: str = _REASON,
    documents: list[str] = typer.Option(
        ..., help="id_photo, transaction_proof, bank_statement, address_proof"
    ),
    api_key: str = _API_KEY,
    gateway: str | None = _GATEWAY,
    reviewer: str | None = _NO_REVIEWER,
) -> None:
    """Ask the user for documents (R18); the case returns to the queue when they upload."""
    _decide(withdrawal_id, "request_documents", reason, documents, api_key, gateway, reviewer)


@review_app.command("decide", hidden=True)
def review_decide(
    withdrawal_id: str,
    decision: str = typer.Argument(..., help="approve | reject | request_documents"),
    reason: str = _REASON,
    documents: list[str] = typer.Option([], help="with request_documents: id_photo, transaction_proof, ..."),
    api_key: str = _API_KEY,
    gateway: str | None = _GATEWAY,
    reviewer: str | None = _NO_REVIEWER,
) -> None:
    """Send a reviewer's decision (the original form: review ID DECISION ...)."""
    _decide(withdrawal_id, decision, reason, documents, api_key, gateway, reviewer)


@app.command()
def stuck(
    query: str = typer.Option(
        'WithdrawalStatus="DELAYED" OR WithdrawalStatus="MANUAL_CHECK" OR WithdrawalStatus="UNDER_REVIEW"',
        help="a Temporal visibility query",
    ),
) -> None:
    """List withdrawals waiting on a bank or a person (visibility query, no PII)."""
    from workflows import search_attributes as sa

    async def go():
        client = await _client()
        async for wf in client.client.list_workflows(query):
            attrs = wf.typed_search_attributes
            print(
                f"{wf.id:40} {attrs.get(sa.WITHDRAWAL_STATUS) or '-':14} {attrs.get(sa.EXCEPTION_CATEGORY) or '-':22}"
                f" {attrs.get(sa.CHANNEL) or '-':8} {attrs.get(sa.BANK_CODE) or '-':8} started {wf.start_time:%Y-%m-%d %H:%M:%S}"
            )

    asyncio.run(go())


# --------------------------------------------------------------------------- operators

parked_app = typer.Typer(no_args_is_help=True, help="Parked callbacks: never applied, need a person.")
app.add_typer(parked_app, name="parked")


@parked_app.command("list")
def parked_list(
    state: str = typer.Option("attention", help="attention (undelivered or late), undelivered, late, all"),
    limit: int = typer.Option(50, min=1, max=500),
) -> None:
    """Parked callbacks: undelivered (the withdrawal is not tracked) or late (after tracking ended)."""
    from store.repo import parked_callbacks

    try:
        rows, total = parked_callbacks(_engine(), state, limit, 0)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        raise typer.Exit(2)
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
        return await redeliver_parked(await _client(), _engine(), parked_id, operator, "cli")

    try:
        row = asyncio.run(go())
    except RedeliverRefused as refused:
        print(f"refused: {refused}", file=sys.stderr)
        raise typer.Exit(2)
    print(f"re-delivered parked callback {row.id} to withdrawal {row.withdrawal_id}")


@app.command()
def unmapped(limit: int = typer.Option(50, min=1, max=500)) -> None:
    """Answers the code catalogue does not map (R26), most recent first: add each one to
    sentinel/codes/<source>.yaml (docs/error-codes.md) so the next one is classified."""
    from store.repo import unmapped_codes

    rows, total = unmapped_codes(_engine(), limit, 0)
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


token_app = typer.Typer(no_args_is_help=True, help="Credentials for testing the gateway.")
app.add_typer(token_app, name="token")


@token_app.command("user")
def token_user(
    user_id: str,
    ttl: int | None = typer.Option(
        None, help="seconds; default SENTINEL_USER_TOKEN_TTL_S, at most SENTINEL_USER_TOKEN_MAX_TTL_S"
    ),
) -> None:
    """Print a signed user token (Authorization: Bearer <token>) for USER_ID."""
    import time

    from gateway.auth import make_user_token

    s = get_settings()
    try:
        print(
            make_user_token(
                user_id, s.user_token_secret, time.time(), ttl or s.user_token_ttl_s, s.user_token_max_ttl_s
            )
        )
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        raise typer.Exit(2)


keys_app = typer.Typer(no_args_is_help=True, help="Keys to configure a deployment with.")
app.add_typer(keys_app, name="keys")


@keys_app.command("decision")
def keys_decision(kid: str = typer.Option(..., help="key id, e.g. the year and month: k2026-12")) -> None:
    """Print a new Ed25519 key pair for review decisions: the signing key goes to the
    gateway only (SENTINEL_DECISION_SIGNING_KEY), the public key to the workers
    (SENTINEL_DECISION_PUBLIC_KEYS, beside the previous one during a rotation)."""
    from sentinel.decision_tokens import new_signing_key, public_key_of

    try:
        signing = new_signing_key(kid, os.urandom(32))
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        raise typer.Exit(2)
    print(f"SENTINEL_DECISION_SIGNING_KEY={signing}")
    print(f"SENTINEL_DECISION_PUBLIC_KEYS={public_key_of(signing)}")


@app.command()
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
        report = report_between(_engine(), since, until, timedelta(minutes=margin_min))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--until") from None
    print(json.dumps(report, indent=2) if fmt == "json" else to_markdown(report))


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


SETTINGS_DOC_HEAD = """# Configuration

All settings live in one typed object, `sentinel/settings.py` (pydantic-settings). Each is read
from an environment variable `SENTINEL_<NAME>` or from a `.env` file in the working directory;
`python -m starter settings` prints the values in force (secrets hidden). This page is generated
by `python -m starter settings --markdown > docs/configuration.md`; a test keeps it complete.

Operators change behaviour that must move without a code change in data files instead:
`config/delays.yaml` (delay thresholds, grace, polling per channel and bank), `config/risk_rules.yaml`
(risk rules, R12), `config/notice_policy.yaml` (severity and channels), `sentinel/codes/*.yaml` (the
error-code catalogue, docs/error-codes.md) and `sentinel/templates/*.yaml` (notice wording,
docs/notices.md). The YAML files under `config/` are re-read when they change; an invalid edit is
refused and the previous version stays in force.

| variable | default | meaning |
|---|---|---|
"""

SETTINGS_DOC_TAIL = """
Secrets (`SENTINEL_CHANNEL_SECRET`, `SENTINEL_LINK_SECRET`, `SENTINEL_USER_TOKEN_SECRET`,
`SENTINEL_PAYLOAD_KEYS`, `SENTINEL_DECISION_SIGNING_KEY`; and `SENTINEL_DECISION_PUBLIC_KEYS`, which
must not trust the development key) and the
API keys file (`SENTINEL_API_KEYS_FILE`, default `config/api_keys.dev.yaml`) have public development
defaults so that `make run` works out of the box. They are accepted only with `SENTINEL_DEV_MODE=1`
(which `make run`, the dev stack and the tests set): without it the gateway and the worker refuse to
start and name every setting that still holds a development value. Production sets them from a
secret store (see docs/deployment.md). Secrets never appear in logs or workflow history.
"""


def settings_markdown() -> str:
    rows = []
    for name, f in Settings.model_fields.items():
        d = f.get_default(call_default_factory=True)
        if hasattr(d, "get_secret_value"):
            d = "(secret) " + d.get_secret_value()
        elif isinstance(d, (list, dict)):
            d = json.dumps(d)  # as the environment variable takes it
        d = str(d).replace(str(ROOT) + "/", "")
        rows.append(f"| `SENTINEL_{name.upper()}` | `{d}` | {f.description} |")
    return SETTINGS_DOC_HEAD + "\n".join(rows) + "\n" + SETTINGS_DOC_TAIL


@app.command()
def settings(markdown: bool = typer.Option(False, help="print the documentation table instead")) -> None:
    """Print the settings in force (secrets hidden)."""
    if markdown:
        print(settings_markdown(), end="")
        return
    print(json.dumps(get_settings().model_dump(mode="json"), indent=2, default=str))


if __name__ == "__main__":
    app()


ROUTES_START, ROUTES_END = "<!-- routes:start -->", "<!-- routes:end -->"


def routes_markdown() -> str:
    """The route table of docs/notices.md, generated from the catalogue, the lifecycle and
    the shipped policies (a test keeps the doc equal to it)."""
    from datetime import datetime

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


__import__("starter.cli_learning").cli_learning.register(app)  # replay, trace, schedules, spot-checks (issue #14)
