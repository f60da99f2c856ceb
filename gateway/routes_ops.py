"""Operators: callbacks that were parked and never applied (the withdrawal was never
tracked, or the answer came after tracking ended), re-delivering one to its workflow, the
channel codes the catalogue does not map yet (R26, R34), the exception analysis (R27) and the
outage incidents (issue #14 item 3)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from gateway import deps
from gateway.auth import OPERATOR, SUPERVISOR, Principal, require
from gateway.callbacks import RedeliverRefused, redeliver_parked
from gateway.deps import Out, db
from gateway.errors import ApiError, responses
from runtime.client import SentinelClient
from sentinel.analysis import as_utc
from sentinel.outage import shown_rates
from store.callbacks import parked_callbacks, unmapped_codes
from store.events import report_between
from store.incidents import incident_page

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


class IncidentRate(BaseModel):
    signal: str = Field(description="failure or delay")
    rate: str = Field(description="the rate in the window that fired it, e.g. 80%")
    baseline: str = Field(description="the bank and channel's own baseline rate, e.g. 1.0%")
    p_value: str = Field(description="the test's p-value, e.g. 3.2e-11")


class IncidentOut(BaseModel):
    id: str = Field(description="BANK-channel-firedAtUTC")
    bank_code: str
    channel: str
    signals: list[str] = Field(description="failure, delay or both")
    fired_at: datetime
    resolved_at: datetime | None = Field(None, description="null while the incident is open")
    summary: str
    rates: list[IncidentRate] = Field(description="each signal's figures, read from the summary")
    open_withdrawals: int | None = Field(
        None, description="open withdrawals of the bank and channel now; null once resolved"
    )
    users_told: int = Field(description="users sent a heads-up")
    withdrawals_told: int = Field(description="withdrawals their heads-ups named")


#: the fields ``incidents`` forms from a stored row rather than copies
FORMED = ("signals", "rates", "fired_at", "resolved_at")


class IncidentPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[IncidentOut]


@router.get(
    "/v1/ops/incidents",
    response_model=IncidentPage,
    summary="Outage incidents: open ones first (newest first), then resolved ones (latest resolved first)",
    description="Roles operator, supervisor. state: all (default), open, resolved. rates: each signal's rate in "
    "the window that fired it against the bank and channel's own baseline, as recorded when it fired. "
    "open_withdrawals: the open withdrawals of the bank and channel now (open incidents only); users_told and "
    "withdrawals_told: the heads-up notices sent. Definitions in docs/analysis.md.",
    responses=responses(401, 403, 422),
)
async def incidents(
    state: Literal["all", "open", "resolved"] = "all",
    limit: int = Query(50, ge=1, le=200),
    offset: deps.Offset = 0,
    who: Principal = Depends(require(*OPS)),
    engine=Depends(deps.engine),
) -> IncidentPage:
    rows, total = await db(incident_page, engine, state, limit, offset)
    items = [
        IncidentOut(
            **{k: v for k, v in r.items() if k in IncidentOut.model_fields and k not in FORMED},
            fired_at=as_utc(r["fired_at"]),
            resolved_at=as_utc(r["resolved_at"]) if r["resolved_at"] else None,
            signals=[s for s in r["signals"].split(",") if s],
            rates=[IncidentRate(**vars(rate)) for rate in shown_rates(r["rates"])],
        )
        for r in rows
    ]
    return IncidentPage(total=total, limit=limit, offset=offset, items=items)
