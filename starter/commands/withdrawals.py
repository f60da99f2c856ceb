"""Withdrawals: start tracking one, its status, the stuck ones (visibility)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import typer

from sentinel.models import Contact, WithdrawalRequest
from starter.commands.common import CommandSet, connect_client

commands = CommandSet()


@commands.command
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
        handle = await (await connect_client()).start_withdrawal(req)
        print(handle.id)

    asyncio.run(go())


@commands.command
def status(withdrawal_id: str) -> None:
    """Print the status, timeline and notices of a withdrawal as JSON."""

    async def go():
        view = await (await connect_client()).status(withdrawal_id)
        print(view.model_dump_json(indent=2))

    asyncio.run(go())


@commands.command
def stuck(
    query: str = typer.Option(
        'WithdrawalStatus="DELAYED" OR WithdrawalStatus="MANUAL_CHECK" OR WithdrawalStatus="UNDER_REVIEW"',
        help="a Temporal visibility query",
    ),
) -> None:
    """List withdrawals waiting on a bank or a person (visibility query, no PII)."""
    from workflows import search_attributes as sa

    async def go():
        client = await connect_client()
        async for wf in client.client.list_workflows(query):
            attrs = wf.typed_search_attributes
            print(
                f"{wf.id:40} {attrs.get(sa.WITHDRAWAL_STATUS) or '-':14} {attrs.get(sa.EXCEPTION_CATEGORY) or '-':22}"
                f" {attrs.get(sa.CHANNEL) or '-':8} {attrs.get(sa.BANK_CODE) or '-':8} started {wf.start_time:%Y-%m-%d %H:%M:%S}"
            )

    asyncio.run(go())
