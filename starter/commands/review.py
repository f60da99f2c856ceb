"""The review desk (R29): the queue and decisions, sent through the gateway."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal

import typer
from typer.core import TyperGroup

from sentinel.settings import get_settings
from starter.commands.common import app_engine

# --------------------------------------------------------------------------- review desk (R29)


class _ReviewGroup(TyperGroup):
    """``review`` subcommands; the original form ``review ID DECISION ...`` still works."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["decide", *args]
        return super().resolve_command(ctx, args)


app = typer.Typer(cls=_ReviewGroup, no_args_is_help=True, help="The review desk: the queue and decisions.")


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
        raise typer.Exit(2) from None
    try:
        DecisionBody(
            decision=decision, reason=reason, documents=documents
        )  # the gateway's own rules, before sending
    except ValueError as exc:
        print(f"invalid decision: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    url = gateway or get_settings().callback_base_url
    try:
        answer = asyncio.run(post_decision(url, api_key, withdrawal_id, decision, reason, documents))
    except DeskRefused as exc:
        print(f"refused ({exc.status}): {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    except httpx.HTTPError as exc:
        print(f"the gateway at {url} did not answer: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(answer["status"])


@app.command("list")
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

    from store.reviews import review_queue_page

    now = datetime.now(UTC)
    rows, total = review_queue_page(
        app_engine(),
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
        since = r.review_since.replace(tzinfo=r.review_since.tzinfo or UTC) if r.review_since else None
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


@app.command("approve")
def review_approve(
    withdrawal_id: str,
    reason: str = _REASON,
    api_key: str = _API_KEY,
    gateway: str | None = _GATEWAY,
    reviewer: str | None = _NO_REVIEWER,
) -> None:
    """Approve: the payout is released (four-eyes: a second, different reviewer may be needed)."""
    _decide(withdrawal_id, "approve", reason, [], api_key, gateway, reviewer)


@app.command("reject")
def review_reject(
    withdrawal_id: str,
    reason: str = _REASON,
    api_key: str = _API_KEY,
    gateway: str | None = _GATEWAY,
    reviewer: str | None = _NO_REVIEWER,
) -> None:
    """Reject: the withdrawal fails and the funds go back to the user's balance."""
    _decide(withdrawal_id, "reject", reason, [], api_key, gateway, reviewer)


@app.command("docs")
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


@app.command("decide", hidden=True)
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
