"""The periodic review reports and the spot-check queue over HTTP (issue #14 items 5 and 6;
R23, R30). Reports: operators and supervisors. Spot checks: the review desk's roles
(reviewer, supervisor, operator), authenticated like gateway/routes_reviews.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field, model_validator

from gateway import deps
from gateway.auth import OPERATOR, REVIEWER, SUPERVISOR, Principal, require
from gateway.deps import db
from gateway.errors import ApiError, responses
from sentinel.catalogue import default_catalogue
from sentinel.review_report import link_charts
from sentinel.spot_checks import CATEGORIES
from store.reports import get_chart, get_report, list_reports
from store.spot_checks import AlreadyReviewed, get, mark, queue, suggestions_between

router = APIRouter(tags=["periodic review"])

OPS = (OPERATOR, SUPERVISOR)
DESK = (REVIEWER, SUPERVISOR, OPERATOR)


class ReportItem(BaseModel):
    id: int
    kind: str
    since: datetime
    until: datetime
    created_at: datetime
    emailed_at: datetime | None = None
    emailed_to: str | None = None
    summary: dict[str, Any]
    charts: list[str]


class ReportPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[ReportItem]


@router.get(
    "/v1/ops/reports",
    summary="The periodic review reports, newest period first (R30)",
    description="Roles operator, supervisor. Each report's headline figures and chart names; the HTML at "
    "/v1/ops/reports/{id}, each chart at /v1/ops/reports/{id}/charts/{name}.png.",
    responses=responses(401, 403, 422),
)
async def reports(
    kind: Literal["daily", "weekly"] | None = None,
    limit: int = Query(50, ge=1, le=200),
    offset: deps.Offset = 0,
    who: Principal = Depends(require(*OPS)),
    engine=Depends(deps.engine),
) -> ReportPage:
    items, total = await db(list_reports, engine, kind=kind, limit=limit, offset=offset)
    return ReportPage(total=total, limit=limit, offset=offset, items=[ReportItem(**i) for i in items])


@router.get(
    "/v1/ops/reports/{report_id}",
    summary="One review report as HTML (its charts linked)",
    description="Roles operator, supervisor. The operations console shows it too, at /pages/ops/reports/{id}.",
    response_class=HTMLResponse,
    responses=responses(401, 403, 404),
)
async def report_html(
    report_id: deps.RowId, who: Principal = Depends(require(*OPS)), engine=Depends(deps.engine)
) -> HTMLResponse:
    row = await db(get_report, engine, report_id)
    if row is None:
        raise ApiError(404, "not found", f"no review report {report_id}")
    return HTMLResponse(link_charts(row.html, lambda name: f"/v1/ops/reports/{report_id}/charts/{name}.png"))


@router.get(
    "/v1/ops/reports/{report_id}/charts/{name}.png",
    summary="One chart of a review report (PNG)",
    response_class=Response,
    responses=responses(401, 403, 404),
)
async def report_chart(
    report_id: deps.RowId,
    name: str,
    who: Principal = Depends(require(*OPS)),
    engine=Depends(deps.engine),
) -> Response:
    chart = await db(get_chart, engine, report_id, name[:40])
    if chart is None:
        raise ApiError(404, "not found", f"no chart {name!r} in review report {report_id}")
    return Response(chart.png, media_type="image/png")


class SpotCheckOut(BaseModel):
    id: int
    day: str
    withdrawal_id: str
    decided_at: datetime
    channel: str
    bank_code: str
    category: str
    route: str
    reason_code: str | None = None
    verdict: str | None = None
    right_category: str | None = None
    note: str | None = None
    reviewer: str | None = None
    reviewed_at: datetime | None = None


class SpotCheckPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[SpotCheckOut]


class Verdict(BaseModel):
    verdict: Literal["correct", "wrong"]
    right_category: str | None = Field(
        None, description="required when wrong: the category it should have had"
    )
    note: str | None = Field(None, max_length=500)

    @model_validator(mode="after")
    def _category(self) -> Verdict:
        if self.verdict == "wrong":
            if self.right_category not in CATEGORIES:
                raise ValueError(f"a wrong verdict needs right_category, one of {', '.join(CATEGORIES)}")
        elif self.right_category is not None:
            raise ValueError("right_category is given only with a wrong verdict")
        return self


@router.get(
    "/v1/spot-checks",
    summary="The spot-check queue: automated decisions drawn for a person to check (R23)",
    description="Roles reviewer, supervisor, operator. state=open (no verdict yet), reviewed or all.",
    responses=responses(401, 403, 422),
)
async def spot_checks(
    state: Literal["open", "reviewed", "all"] = "open",
    day: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$"),
    limit: int = Query(50, ge=1, le=200),
    offset: deps.Offset = 0,
    who: Principal = Depends(require(*DESK)),
    engine=Depends(deps.engine),
) -> SpotCheckPage:
    items, total = await db(queue, engine, state=state, limit=limit, offset=offset, day=day)
    return SpotCheckPage(total=total, limit=limit, offset=offset, items=[SpotCheckOut(**i) for i in items])


@router.post(
    "/v1/spot-checks/{check_id}",
    summary="Mark a spot check correct, or wrong with the right category",
    description="Roles reviewer, supervisor, operator. The first verdict stands (409 after it). A wrong one "
    "becomes a suggested catalogue change (GET /v1/spot-checks/suggestions).",
    responses=responses(401, 403, 404, 409, 413, 422),
)
async def spot_check_verdict(
    check_id: int,
    body: Verdict,
    who: Principal = Depends(require(*DESK)),
    engine=Depends(deps.engine),
) -> SpotCheckOut:
    try:
        row = await db(
            mark,
            engine,
            check_id,
            verdict=body.verdict,
            reviewer=who.actor[:64],
            right_category=body.right_category,
            note=body.note,
        )
    except AlreadyReviewed:
        current = await db(get, engine, check_id) or {}
        first = {k: current.get(k) for k in ("verdict", "right_category", "reviewer")}
        raise ApiError(409, "already reviewed", first) from None
    if row is None:
        raise ApiError(404, "not found", f"no spot check {check_id}")
    return SpotCheckOut(**row)


class Suggestion(BaseModel):
    spot_check_id: int
    file: str
    code: str | None = None
    from_category: str
    to_category: str
    yaml: str


@router.get(
    "/v1/spot-checks/suggestions",
    summary="Suggested catalogue changes from wrong spot checks (YAML for sentinel/codes/*.yaml)",
    description="Roles reviewer, supervisor, operator. A person reviews each and edits the file.",
    responses=responses(401, 403, 422),
)
async def spot_check_suggestions(
    since: datetime | None = None,
    until: datetime | None = None,
    who: Principal = Depends(require(*DESK)),
    engine=Depends(deps.engine),
) -> list[Suggestion]:
    rows = await db(suggestions_between, engine, default_catalogue(), since, until)
    return [Suggestion(**r) for r in rows]
