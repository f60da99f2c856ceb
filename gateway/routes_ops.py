"""Operators: callbacks that were parked and never applied (the withdrawal was never
tracked, or the answer came after tracking ended), re-delivering one to its workflow, the
channel codes the catalogue does not map yet (R26, R34), and the exception analysis (R27)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from gateway import deps
from gateway.auth import OPERATOR, SUPERVISOR, Principal, require
from gateway.callbacks import RedeliverRefused, redeliver_parked
from gateway.deps import Out, db
from gateway.errors import ApiError, responses
from runtime.client import SentinelClient
from store.events import report_between
from store.repo import parked_callbacks, unmapped_codes

router = APIRouter(tags=["operations"])

OPS = (OPERATOR, SUPERVISOR)


class ParkedOut(BaseModel):
    id: int
    channel: str
    event_id: str
    withdrawal_id: str
    received_at: datetime
    delivered_at: datetime | None = None
    outcome: str | None = None
    observation: dict[str, Any]


class ParkedPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[ParkedOut]


class RedeliverOut(BaseModel):
    id: int
    withdrawal_id: str
    delivered: bool = True


class UnmappedOut(Out):
    channel: str
    raw_status: str
    raw_code: str
    subtype: str | None = None
    count: int
    first_seen: datetime
    last_seen: datetime
    last_withdrawal_id: str | None = None


class UnmappedPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[UnmappedOut]


def _parked_out(row) -> ParkedOut:
    obs = json.loads(row.observation_json)
    keep = ("order_id", "source", "raw_status", "raw_code", "event_id", "observed_at")
    summary = {k: obs.get(k) for k in keep}
    summary["state"] = (obs.get("classification") or {}).get("state")
    return ParkedOut(
        id=row.id,
        channel=row.channel,
        event_id=row.event_id,
        withdrawal_id=row.withdrawal_id,
        received_at=row.received_at,
        delivered_at=row.delivered_at,
        outcome=row.outcome,
        observation=summary,
    )


@router.get(
    "/v1/ops/parked-callbacks",
    response_model=ParkedPage,
    summary="Parked callbacks that need a person",
    description="Roles operator, supervisor. state: attention (default: undelivered or late), undelivered "
    "(the withdrawal is not tracked), late (came after tracking ended), all.",
    responses=responses(401, 403, 422),
)
async def parked(
    state: Literal["attention", "undelivered", "late", "all"] = "attention",
    limit: int = Query(50, ge=1, le=200),
    offset: deps.Offset = 0,
    who: Principal = Depends(require(*OPS)),
    engine=Depends(deps.engine),
) -> ParkedPage:
    rows, total = await db(parked_callbacks, engine, state, limit, offset)
    return ParkedPage(total=total, limit=limit, offset=offset, items=[_parked_out(r) for r in rows])


@router.post(
    "/v1/ops/parked-callbacks/{parked_id}/redeliver",
    response_model=RedeliverOut,
    summary="Send a parked callback to its workflow again",
    description="Roles operator, supervisor. Safe to repeat: the workflow acts on an event id once. "
    "409 when the withdrawal is not tracked or its tracking has ended.",
    responses=responses(401, 403, 404, 409, 413, 422, 503),
)
async def redeliver(
    parked_id: deps.RowId,
    who: Principal = Depends(require(*OPS)),
    engine=Depends(deps.engine),
    client: SentinelClient = Depends(deps.client),
) -> RedeliverOut:
    try:
        row = await redeliver_parked(client, engine, parked_id, who.actor, who.role)
    except RedeliverRefused as refused:
        raise ApiError(404 if refused.kind == "not found" else 409, refused.kind, refused.detail) from None
    return RedeliverOut(id=row.id, withdrawal_id=row.withdrawal_id)


@router.get(
    "/v1/ops/unmapped-codes",
    response_model=UnmappedPage,
    summary="Channel answers the code catalogue does not map, most recent first (R26)",
    description="Roles operator, supervisor. Counted from channel callbacks; add them to sentinel/codes/.",
    responses=responses(401, 403, 422),
)
async def unmapped(
    limit: int = Query(100, ge=1, le=500),
    offset: deps.Offset = 0,
    who: Principal = Depends(require(*OPS)),
    engine=Depends(deps.engine),
) -> UnmappedPage:
    rows, total = await db(unmapped_codes, engine, limit, offset)
    return UnmappedPage(
        total=total, limit=limit, offset=offset, items=[UnmappedOut.model_validate(r) for r in rows]
    )


@router.get(
    "/v1/ops/analysis",
    summary="The exception analysis of the withdrawals started in [since, until) (R27)",
    description="Roles operator, supervisor. Exception rates by channel, bank, amount band, hour of week, code "
    "and category; time to detect and to notify; false alarms and missed delays; notice read rates; unmapped "
    "codes by day. Each figure is defined in docs/analysis.md. Times without a zone are UTC.",
    responses=responses(400, 401, 403, 422),
)
async def analysis(
    since: datetime,
    until: datetime,
    margin_min: int = Query(
        30, ge=0, le=1440, description="false alarm: money within this many minutes of the delay notice"
    ),
    who: Principal = Depends(require(*OPS)),
    engine=Depends(deps.engine),
) -> dict[str, Any]:
    try:
        return await db(report_between, engine, since, until, timedelta(minutes=margin_min))
    except ValueError as exc:
        raise ApiError(400, "bad period", str(exc)) from None
