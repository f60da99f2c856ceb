"""The review desk (R15, R18, R29): the queue of withdrawals waiting for a person (risk
holds and manual checks), one case with everything needed to decide it, assignment, and
the decision. The reviewer is always the authenticated caller; every assignment and
decision is an audit row (who, when, what, why) beside the workflow's own record.

A decision reaches the workflow signed (issue #11): the gateway makes a decision token
(sentinel/decision_tokens.py) over the withdrawal, the caller's name and role, the decision,
the reason and documents, a fresh nonce and an expiry, with its Ed25519 key; the workflow
checks it and writes the decision's audit row itself (once per token), so a decision made
any other way than through here is refused and every applied one is audited.

Roles: reviewer and supervisor work the whole desk. Operators see it and decide manual
checks (MANUAL_CHECK: platform faults, unknown answers, unmapped codes), not risk holds.
Four-eyes (two different approvers above the configured amount) is enforced by the
workflow: the same person approving twice is 409.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from temporalio.service import RPCError, RPCStatusCode

from gateway import deps
from gateway.auth import OPERATOR, REVIEWER, SUPERVISOR, Principal, require
from gateway.deps import Out, RecordOut, WithdrawalId, db
from gateway.errors import ApiError, responses
from gateway.views import StatusOut, Unanswered, Views, projected, views
from runtime.client import DecisionRefused, FourEyesViolation, NotAwaitingReview, SentinelClient
from sentinel.decision_tokens import sign_decision
from sentinel.models import NoCard, ReviewDecision
from sentinel.taxonomy import ExceptionCategory, Stage, WithdrawalStatus
from store.repo import add_audit, assign_review, audit_for, get_record, review_queue_page, risk_hits_for

router = APIRouter(tags=["review desk"])

DESK = (REVIEWER, SUPERVISOR, OPERATOR)


@lru_cache(maxsize=1)
def known_documents() -> frozenset[str]:
    """Documents a reviewer may ask for: those every locale's templates can name."""
    from sentinel.render import LOCALES, load_templates

    names = [set(load_templates(locale).doc.documents) for locale in LOCALES]
    return frozenset(set.intersection(*names)) if names else frozenset()


class DecisionBody(BaseModel):
    """A reviewer's decision. The reviewer is the caller, never a field of the body."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject", "request_documents"]
    reason: Annotated[str, NoCard] = Field(
        min_length=1, max_length=500, description="why: kept in the audit log and the timeline"
    )
    documents: list[str] = Field(default_factory=list, max_length=10, description="with request_documents")

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("reason must not be blank")
        return v.strip()

    @field_validator("documents")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [d for d in v if d not in known_documents()]
        if unknown:
            raise ValueError(f"unknown documents {unknown}; known: {', '.join(sorted(known_documents()))}")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _documents_match(self) -> DecisionBody:
        if self.decision == "request_documents" and not self.documents:
            raise ValueError("request_documents needs the list of documents")
        if self.decision != "request_documents" and self.documents:
            raise ValueError("documents are only for request_documents")
        return self


class DecisionOut(BaseModel):
    withdrawal_id: str
    decision: str
    reviewer: str
    status: str = Field(description="the withdrawal's status after the decision")


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: Annotated[str | None, NoCard] = Field(
        None, max_length=64, description="who works the case; default: the caller (self-assign)"
    )


class AssignOut(BaseModel):
    withdrawal_id: str
    assignee: str
    previous: str | None = None


class QueueItem(RecordOut):
    age_s: int | None = Field(None, description="seconds since the case entered the queue")


class QueuePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[QueueItem]


class RiskHitOut(Out):
    rule_id: str
    rule_version: str
    detail: str
    at: datetime


class AuditOut(Out):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    withdrawal_id: str | None = None
    detail: str | None = None


class Sla(BaseModel):
    review_since: datetime | None = None
    escalated: bool | None = Field(
        description="the review SLA passed: a supervisor was alerted, the user told (R29); null when the view "
        "is the projection (its notices are not known)"
    )
    escalated_at: datetime | None = None


class CaseOut(BaseModel):
    record: RecordOut
    view: StatusOut | None = Field(
        None,
        description="the workflow's status query (source: live); the projection (source: projection) when "
        "the workflow does not answer in time; null if the workflow is gone",
    )
    risk_hits: list[RiskHitOut]
    audit: list[AuditOut]
    sla: Sla


def _age(since: datetime | None, now: datetime) -> int | None:
    if since is None:
        return None
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return max(0, int((now - since).total_seconds()))


def _sla(view: StatusOut | None) -> Sla:
    if view is None:
        return Sla(escalated=False)
    if view.source == "projection":
        return Sla(review_since=view.review_since, escalated=None)
    since = view.review_since
    escalations = [
        n.at for n in view.notices if n.stage == Stage.REVIEW_DELAYED and (since is None or n.at >= since)
    ]
    return Sla(
        review_since=since,
        escalated=bool(escalations),
        escalated_at=min(escalations) if escalations else None,
    )


@router.get(
    "/v1/reviews",
    response_model=QueuePage,
    summary="The review queue, oldest first (R29)",
    description="Roles reviewer, supervisor, operator. Filters: category, status (UNDER_REVIEW or MANUAL_CHECK), "
    "min_age_s (waiting at least this long), min_amount, assignee, unassigned.",
    responses=responses(401, 403, 422),
)
async def queue(
    request: Request,
    category: ExceptionCategory | None = None,
    status: Literal["UNDER_REVIEW", "MANUAL_CHECK"] | None = None,
    min_age_s: float | None = Query(None, ge=0, le=10 * 365 * 86400, allow_inf_nan=False),
    min_amount: Decimal | None = Query(None, ge=0, max_digits=18, decimal_places=4),
    assignee: Annotated[str | None, Query(max_length=64), NoCard] = None,
    unassigned: bool = False,
    limit: int = Query(50, ge=1, le=200),
    offset: deps.Offset = 0,
    who: Principal = Depends(require(*DESK)),
    engine=Depends(deps.engine),
) -> QueuePage:
    now = datetime.fromtimestamp(request.app.state.clock(), UTC)
    rows, total = await db(
        review_queue_page,
        engine,
        category=category.value if category else None,
        status=status,
        older_than_s=min_age_s,
        min_amount=min_amount,
        assignee=assignee,
        unassigned=unassigned,
        now=now,
        limit=limit,
        offset=offset,
    )
    items = [
        QueueItem.model_validate(r).model_copy(update={"age_s": _age(r.review_since, now)}) for r in rows
    ]
    return QueuePage(total=total, limit=limit, offset=offset, items=items)


@router.get(
    "/v1/reviews/{withdrawal_id}",
    response_model=CaseOut,
    summary="One case: the record, the workflow's view, risk hits, the audit trail, the SLA",
    description="Roles reviewer, supervisor, operator. Decided cases stay readable. When the workflow does not "
    "answer in time, the view is the projection (source: projection).",
    responses=responses(400, 401, 403, 404, 422),
)
async def case(
    withdrawal_id: WithdrawalId,
    who: Principal = Depends(require(*DESK)),
    engine=Depends(deps.engine),
    v: Views = Depends(views),
) -> CaseOut:
    record = await db(get_record, engine, withdrawal_id)
    if record is None:
        raise ApiError(404, "not found", f"withdrawal {withdrawal_id} has no record")
    try:
        view = await v.live(withdrawal_id)
    except RPCError:  # NOT_FOUND: live() raises no other
        view = None  # past the namespace's retention: the record and the audit trail remain
    except Unanswered:
        view = projected(record)
    hits = await db(risk_hits_for, engine, withdrawal_id)
    audit = await db(audit_for, engine, withdrawal_id)
    return CaseOut(
        record=RecordOut.model_validate(record),
        view=view,
        risk_hits=[RiskHitOut.model_validate(h) for h in hits],
        audit=[AuditOut.model_validate(a) for a in audit],
        sla=_sla(view),
    )


@router.post(
    "/v1/reviews/{withdrawal_id}/assign",
    response_model=AssignOut,
    summary="Take a case (self-assign), or a supervisor assigns it",
    description="Reviewers and operators assign themselves; supervisors assign anyone who works the desk. "
    "Advisory: it does not stop another reviewer's decision (four-eyes needs a second person).",
    responses=responses(401, 403, 404, 409, 413, 422),
)
async def assign(
    withdrawal_id: WithdrawalId,
    request: Request,
    body: AssignBody | None = None,
    who: Principal = Depends(require(*DESK)),
    engine=Depends(deps.engine),
) -> AssignOut:
    target = (body.assignee if body else None) or who.name
    if target != who.name:
        if who.role != SUPERVISOR:
            raise ApiError(403, "forbidden", "only a supervisor assigns cases to others")
        if target not in request.app.state.keys.names(DESK):
            raise ApiError(
                422,
                "invalid request",
                [
                    {
                        "field": "assignee",
                        "loc": ["body", "assignee"],
                        "msg": f"{target!r} does not work the review desk",
                        "type": "value_error",
                    }
                ],
            )
    record = await db(get_record, engine, withdrawal_id)
    if record is None:
        raise ApiError(404, "not found", f"withdrawal {withdrawal_id} has no record")
    if not record.needs_review:
        raise ApiError(409, "not awaiting review", f"withdrawal {withdrawal_id} is {record.status}")
    if who.role == OPERATOR and record.status != WithdrawalStatus.MANUAL_CHECK.value:
        raise ApiError(403, "forbidden", "operators work manual checks only; this is a risk review")
    if not await db(assign_review, engine, withdrawal_id, target):
        raise ApiError(409, "not awaiting review", f"withdrawal {withdrawal_id} left the queue")
    previous = record.assignee
    await db(
        add_audit,
        engine,
        who.actor,
        who.role,
        "assign",
        withdrawal_id,
        f"assigned to {target}" + (f" (was {previous})" if previous else ""),
    )
    return AssignOut(withdrawal_id=withdrawal_id, assignee=target, previous=previous)


@router.post(
    "/v1/reviews/{withdrawal_id}/decision",
    response_model=DecisionOut,
    summary="Decide a case: approve, reject or request_documents, with the reason",
    description="Roles reviewer and supervisor; operators for MANUAL_CHECK cases. The reviewer is the caller. "
    "409 when the withdrawal is not awaiting review, or when four-eyes needs a different approver. The "
    "gateway signs the decision; the workflow checks the signature and writes the audit row.",
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
async def decide(
    withdrawal_id: WithdrawalId,
    body: DecisionBody,
    request: Request,
    who: Principal = Depends(require(*DESK)),
    client: SentinelClient = Depends(deps.client),
    v: Views = Depends(views),
) -> DecisionOut:
    if who.role == OPERATOR:
        view = await v.live_or_503(withdrawal_id, who)
        if view.status != WithdrawalStatus.MANUAL_CHECK:
            raise ApiError(
                403, "forbidden", f"operators decide manual checks only; this one is {view.status.value}"
            )
    settings = request.app.state.settings
    token = sign_decision(
        settings.decision_signing_key.get_secret_value(),
        withdrawal_id=withdrawal_id,
        reviewer=who.name,
        role=who.role,
        decision=body.decision,
        reason=body.reason,
        documents=body.documents,
        nonce=secrets.token_urlsafe(16),
        now=request.app.state.clock(),
        ttl_s=settings.decision_token_ttl_s,
    )
    decision = ReviewDecision(
        decision=body.decision, reviewer=who.name, reason=body.reason, documents=body.documents, token=token
    )
    try:
        after = await client.review(withdrawal_id, decision)
    except NotAwaitingReview as exc:
        raise ApiError(409, "not awaiting review", str(exc)) from None
    except FourEyesViolation as exc:
        raise ApiError(409, "four-eyes", str(exc)) from None
    except DecisionRefused as exc:
        # our own token refused: the worker does not trust this gateway's key (configuration)
        raise ApiError(
            503, "decision not accepted", f"the workflow refused the signed decision: {exc}"
        ) from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, "not found", f"withdrawal {withdrawal_id} is not tracked") from None
        raise
    # the audit row is the workflow's (activities/reviews.py): one per decision, whatever the path
    return DecisionOut(withdrawal_id=withdrawal_id, decision=body.decision, reviewer=who.name, status=after)
