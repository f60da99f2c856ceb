"""Command line for the payment service, reviewers and operators (R34).

    python -m starter up                      # the whole embedded stack + demo, until Ctrl-C
    python -m starter start W1001 --user u1 --amount 100.00 --bank ICBC --last4 1234 --payee-ref vault:tok
    python -m starter status W1001
    python -m starter review W1001 approve --reviewer alice --reason "verified"
    python -m starter stuck                   # DELAYED / MANUAL_CHECK / UNDER_REVIEW, via visibility
    python -m starter settings                # the settings in force
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from decimal import Decimal
from pathlib import Path

import typer

from sentinel.models import Contact, ReviewDecision, WithdrawalRequest
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

    stack = DevStack(data_dir=data_dir, env_overrides={
        "SENTINEL_DELAYS_FILE": str(ROOT / "config" / "delays.demo.yaml"),
    })
    settings = Settings(_env_file=None, **{  # what the children get, for this process too
        "temporal_address": f"127.0.0.1:{stack.ports.temporal}",
    })
    try:
        print(f"starting Temporal dev server (SQLite {data_dir / 'temporal.db'}), UI http://127.0.0.1:{stack.ports.ui}",
              flush=True)
        stack.start_all()
        print(f"started: SMTP :{stack.ports.smtp} (mails in {data_dir / 'mail'}), simulator :{stack.ports.simulator},"
              f" gateway http://127.0.0.1:{stack.ports.gateway}/docs, worker; logs in {data_dir / 'logs'}", flush=True)
        if demo:
            asyncio.run(_demo(settings, stack))
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
    await run_demo(client, f"http://127.0.0.1:{stack.ports.simulator}", f"http://127.0.0.1:{stack.ports.gateway}")


def _print_ui_help(stack) -> None:
    print(
        f"""Temporal UI: http://127.0.0.1:{stack.ports.ui}/namespaces/default/workflows
Filters for stuck payouts (paste into the UI's query box):
  WithdrawalStatus="DELAYED"
  NeedsReview=true
  WithdrawalStatus="MANUAL_CHECK" OR WithdrawalStatus="UNDER_REVIEW"
  ExceptionCategory="ACCOUNT_INFO_ERROR" AND BankCode="ICBC"
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
        withdrawal_id=withdrawal_id, user_id=user, amount=Decimal(amount), currency=currency, channel=channel,
        bank_code=bank, card_last4=last4, payee_ref=payee_ref, locale=locale, contact=Contact(email=email, phone=phone),
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


@app.command()
def review(
    withdrawal_id: str,
    decision: str = typer.Argument(..., help="approve | reject | request_documents"),
    reviewer: str = typer.Option(...),
    reason: str = typer.Option(...),
    documents: list[str] = typer.Option([], help="with request_documents: id_photo, transaction_proof, ..."),
) -> None:
    """Send a reviewer's decision."""
    from starter.client import NotAwaitingReview

    async def go():
        try:
            st = await (await _client()).review(
                withdrawal_id, ReviewDecision(decision=decision, reviewer=reviewer, reason=reason, documents=documents)
            )
        except NotAwaitingReview as exc:
            print(f"refused: {exc}", file=sys.stderr)
            raise typer.Exit(2)
        print(st)

    asyncio.run(go())


@app.command()
def stuck(query: str = typer.Option(
    'WithdrawalStatus="DELAYED" OR WithdrawalStatus="MANUAL_CHECK" OR WithdrawalStatus="UNDER_REVIEW"',
    help="a Temporal visibility query")) -> None:
    """List withdrawals waiting on a bank or a person (visibility query, no PII)."""
    from workflows import search_attributes as sa

    async def go():
        client = await _client()
        async for wf in client.client.list_workflows(query):
            attrs = wf.typed_search_attributes
            print(f"{wf.id:40} {attrs.get(sa.WITHDRAWAL_STATUS) or '-':14} {attrs.get(sa.EXCEPTION_CATEGORY) or '-':22}"
                  f" {attrs.get(sa.CHANNEL) or '-':8} {attrs.get(sa.BANK_CODE) or '-':8} started {wf.start_time:%Y-%m-%d %H:%M:%S}")

    asyncio.run(go())


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
Secrets (`SENTINEL_CHANNEL_SECRET`, `SENTINEL_LINK_SECRET`, `SENTINEL_SMTP_PASSWORD`) have
development defaults so that `make run` works out of the box; production sets them from a
secret store (see docs/deployment.md). They never appear in logs or workflow history.
"""


def settings_markdown() -> str:
    rows = []
    for name, f in Settings.model_fields.items():
        d = f.default
        if hasattr(d, "get_secret_value"):
            d = "(secret) " + d.get_secret_value()
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
