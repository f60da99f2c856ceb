"""The in-app inbox: messages and the unread count (the app's red dot, R21); reading a
message tells the workflow, so pending escalation ladders stop."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from temporalio.service import RPCError, RPCStatusCode

from gateway import deps
from gateway.auth import OPERATOR, SUPERVISOR, USER, Principal, ensure_user_access, require
from gateway.deps import Out, UserId, db
from gateway.errors import ApiError, responses
from runtime.client import SentinelClient
from sentinel.contracts import NoticeAck
from store.repo import inbox, read_message

router = APIRouter(tags=["inbox"])


class MessageOut(Out):
    id: int = Field(description="message id, for POST .../inbox/{message_id}/read")
    key: str = Field(description="the notice's key (withdrawal/stage/attempt/channel)")
    user_id: str = Field(description="the owner")
    withdrawal_id: str = Field(description="the withdrawal it is about (R8)")
    stage: str = Field(description="which notice it is, e.g. DETECTED, DELAYED, UNDER_REVIEW, RESOLVED")
    severity: str = Field(description="INFO, LOW, MEDIUM, HIGH or CRITICAL: urgent ones pop up")
    locale: str = Field(description="language of title and body")
    title: str = Field(description="short title")
    body: str = Field(description="the text: reason, next step, order number, card ending")
    link: str | None = Field(None, description="signed deep link to the withdrawal's progress page")
    created_at: datetime = Field(description="when it was delivered to the inbox")
    read_at: datetime | None = Field(
        None, description="when the user read it on any channel; null: unread (red dot)"
    )


class InboxPage(BaseModel):
    unread: int = Field(description="unread messages in the whole inbox (the red dot's number)")
    messages: list[MessageOut] = Field(description="this page of messages, newest first")


class ReadOk(BaseModel):
    ok: bool = True
    read_at: datetime | None = Field(None, description="when it was first read")


@router.get(
    "/v1/users/{user_id}/inbox",
    response_model=InboxPage,
    summary="In-app messages, newest first, and the unread count (R21)",
    description="The user's own token; roles supervisor and operator (support) may read it.",
    responses=responses(401, 403, 422),
)
async def user_inbox(
    user_id: UserId,
    limit: int = Query(50, ge=1, le=200),
    offset: deps.Offset = 0,
    who: Principal = Depends(require(USER, SUPERVISOR, OPERATOR)),
    engine=Depends(deps.engine),
) -> InboxPage:
    ensure_user_access(who, user_id)
    messages, unread = await db(inbox, engine, user_id, limit, offset)
    return InboxPage(unread=unread, messages=[MessageOut.model_validate(m) for m in messages])


@router.post(
    "/v1/users/{user_id}/inbox/{message_id}/read",
    response_model=ReadOk,
    summary="Mark a message read; the withdrawal's escalation ladders stop (R21)",
    description="The user's own token only. Idempotent. 503 when the workflow could not be told (retry).",
    responses=responses(401, 403, 404, 413, 422, 503),
)
async def read(
    user_id: UserId,
    message_id: deps.RowId,
    who: Principal = Depends(require(USER)),
    engine=Depends(deps.engine),
    client: SentinelClient = Depends(deps.client),
) -> ReadOk:
    ensure_user_access(who, user_id, others=())
    msg = await db(read_message, engine, user_id, message_id)
    if msg is None:
        raise ApiError(404, "not found", "no such message for this user")
    try:
        await client.notice_read(msg.withdrawal_id, NoticeAck(key=msg.key, channel="inbox"))
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: tracking has ended, nothing to stop
            raise
    return ReadOk(read_at=msg.read_at)
