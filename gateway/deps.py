"""Shared pieces of the routers: the app's client and engine, thread offloading for the
(synchronous) store, path parameters, and the response models."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from fastapi import Path, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine

from runtime.client import SentinelClient
from sentinel.models import ID_PATTERN, NoCard

T = TypeVar("T")

WithdrawalId = Annotated[
    str, Path(pattern=ID_PATTERN, description="the platform's withdrawal order number"), NoCard
]
UserId = Annotated[str, Path(pattern=ID_PATTERN, description="the platform's user id"), NoCard]
#: row ids are 32-bit integers in PostgreSQL
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="rows to skip")]


def client(request: Request) -> SentinelClient:
    return request.app.state.client


def engine(request: Request) -> Engine:
    return request.app.state.engine


async def db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a store function (one short transaction) off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def status_url(withdrawal_id: str) -> str:
    return f"/v1/withdrawals/{withdrawal_id}"


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RecordOut(Out):
    """One withdrawal as the records list and the review queue show it (the projection)."""

    withdrawal_id: str
    user_id: str
    amount: Decimal
    currency: str
    channel: str
    bank_code: str
    card_last4: str
    locale: str
    status: str
    category: str | None = None
    severity: str
    reason_code: str | None = None
    needs_review: bool
    review_since: datetime | None = None
    assignee: str | None = None
    created_at: datetime
    updated_at: datetime


class RecordsPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[RecordOut]


class Ok(BaseModel):
    ok: bool = True
