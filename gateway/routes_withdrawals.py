"""Withdrawals: start tracking (payment service), the status and progress query and the
user's records list (R16), the user's document upload (R18) and deep-link read receipts
(R21)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway import deps
from gateway.auth import (
    OPERATOR,
    PAYMENT_SERVICE,
    REVIEWER,
    SUPERVISOR,
    USER,
    Principal,
    ensure_user_access,
    require,
)
from gateway.deps import RecordOut, RecordsPage, UserId, WithdrawalId, db, status_url
from gateway.errors import ApiError, responses
from gateway.views import StatusOut, UserStatusOut, Views, views
from runtime.client import SentinelClient
from sentinel.contracts import DocumentsUpload, NoticeAck
from sentinel.models import NoCard, WithdrawalRequest
from store.events import append_event
from store.repo import add_audit, get_record, payee_fingerprint, user_withdrawals
from store.tables import WithdrawalEvent, utcnow

router = APIRouter(tags=["withdrawals"])


class Started(BaseModel):
    workflow_id: str = Field(description="the Temporal workflow id, withdrawal-<withdrawal_id>")
    status_url: str = Field(description="where to read the status")


class Accepted(BaseModel):
    ok: bool = True
    status_url: str


class LinkAck(BaseModel):
    """The user opened the deep link of a notice (its key is in the link)."""

    model_config = ConfigDict(extra="forbid")
    key: Annotated[str, NoCard] = Field(
        min_length=1, max_length=200, description="the notice key, e.g. W1001/DETECTED/1"
    )


_SAME_FIELDS = ("user_id", "amount", "currency", "channel", "bank_code", "card_last4")


@router.post(
    "/v1/withdrawals",
    status_code=202,
    response_model=Started,
    summary="Start tracking a withdrawal (idempotent on withdrawal_id)",
    description="Role payment-service. A repeat returns the same workflow; the same id with different details is 409. "
    "400 when Temporal refuses the start as invalid (e.g. an id longer than the server allows).",
    responses=responses(400, 401, 403, 409, 413, 422, 503),
)
async def start(
    req: WithdrawalRequest,
    who: Principal = Depends(require(PAYMENT_SERVICE)),
    client: SentinelClient = Depends(deps.client),
    engine=Depends(deps.engine),
) -> Started:
    record = await db(get_record, engine, req.withdrawal_id)
    if record is not None:
        differs = [f for f in _SAME_FIELDS if getattr(record, f) != getattr(req, f)]
        if record.payee_fingerprint != payee_fingerprint(req.payee_ref):
            differs.append("payee_ref")
        if differs:
            raise ApiError(
                409,
                "withdrawal exists with other details",
                f"withdrawal {req.withdrawal_id} is tracked already; differing fields: {', '.join(differs)}",
            )
    handle = await client.start_withdrawal(req)
    return Started(workflow_id=handle.id, status_url=status_url(req.withdrawal_id))


@router.get(
    "/v1/withdrawals/{withdrawal_id}",
    response_model=StatusOut | UserStatusOut,
    summary="Status, reason, timeline, notices, next step, ETA (R16)",
    description="Roles payment-service, reviewer, supervisor, operator: the whole view. The owner's user token: "
    "the user's view (UserStatusOut): no reviewer names, decision reasons, approvals, risk rule details, "
    "operator alerts or staff-only timeline events. "
    "Live from the workflow (source: live); when it does not answer within the configured deadline, from the "
    "app database's projection (source: projection, as_of: its last update; timeline and notices empty). "
    "503 only when neither can answer.",
    responses=responses(400, 401, 403, 404, 422, 503),
)
async def status(
    withdrawal_id: WithdrawalId,
    who: Principal = Depends(require(PAYMENT_SERVICE, REVIEWER, SUPERVISOR, OPERATOR, USER)),
    v: Views = Depends(views),
) -> StatusOut | UserStatusOut:
    return await v.status(withdrawal_id, who)


@router.get(
    "/v1/users/{user_id}/withdrawals",
    response_model=RecordsPage,
    summary="The user's withdrawal records, newest first, with paging (R16)",
    description="The user's own token; roles payment-service, supervisor, operator.",
    responses=responses(401, 403, 422),
)
async def records(
    user_id: UserId,
    limit: int = Query(20, ge=1, le=200),
    offset: deps.Offset = 0,
    who: Principal = Depends(require(USER, PAYMENT_SERVICE, SUPERVISOR, OPERATOR)),
    engine=Depends(deps.engine),
) -> RecordsPage:
    ensure_user_access(who, user_id, others=(PAYMENT_SERVICE, SUPERVISOR, OPERATOR))
    rows, total = await db(user_withdrawals, engine, user_id, limit, offset)
    return RecordsPage(
        total=total, limit=limit, offset=offset, items=[RecordOut.model_validate(r) for r in rows]
    )


@router.post(
    "/v1/withdrawals/{withdrawal_id}/documents",
    status_code=202,
    response_model=Accepted,
    summary="The user uploaded the documents a reviewer asked for (R18)",
    description="The owner's user token. 409 when the withdrawal is not waiting for documents. "
    "The case goes back to the review queue. 503 when the workflow does not answer in time (retry).",
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
)
async def upload_documents(
    withdrawal_id: WithdrawalId,
    upload: DocumentsUpload,
    who: Principal = Depends(require(USER)),
    client: SentinelClient = Depends(deps.client),
    engine=Depends(deps.engine),
    v: Views = Depends(views),
) -> Accepted:
    view = await v.live_or_503(withdrawal_id, who)
    if not view.awaiting_documents:
        raise ApiError(
            409,
            "not waiting for documents",
            f"withdrawal {withdrawal_id} is {view.status.value} and no documents are requested",
        )
    await client.upload_documents(withdrawal_id, upload)
    await db(
        add_audit,
        engine,
        who.actor,
        who.role,
        "documents_uploaded",
        withdrawal_id,
        f"{', '.join(upload.documents)} (reference {upload.reference}); requested: {', '.join(view.awaiting_documents)}",
    )
    return Accepted(status_url=status_url(withdrawal_id))


@router.post(
    "/v1/withdrawals/{withdrawal_id}/notices/ack",
    response_model=deps.Ok,
    summary="The user opened a notice's deep link: its escalation stops (R21)",
    description="The owner's user token. 404 when the withdrawal has no notice with this key. "
    "503 when the workflow does not answer in time (retry).",
    responses=responses(400, 401, 403, 404, 413, 422, 503),
)
async def ack_notice(
    withdrawal_id: WithdrawalId,
    body: LinkAck,
    who: Principal = Depends(require(USER)),
    client: SentinelClient = Depends(deps.client),
    v: Views = Depends(views),
    engine=Depends(deps.engine),
) -> deps.Ok:
    view = await v.live_or_503(withdrawal_id, who)
    if not any(body.key == n.key or body.key.startswith(n.key + "/") for n in view.notices):
        raise ApiError(404, "no such notice", f"withdrawal {withdrawal_id} has no notice {body.key!r}")
    await client.notice_read(withdrawal_id, NoticeAck(key=body.key, channel="link"))
    await db(
        append_event,
        engine,
        WithdrawalEvent(  # the event record (R27): first open counts
            key=f"read/link/{body.key}"[:200],
            withdrawal_id=withdrawal_id,
            kind="read",
            at=utcnow(),
            notice_channel="link",
            notice_key=body.key,
        ),
    )
    return deps.Ok()
