"""Inputs and outputs of the activities: the contract between the workflow and the
activity workers. Pure pydantic models, safe inside the workflow sandbox."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from sentinel.models import Observation, RiskHit, TrackingPolicy, WithdrawalRequest
from sentinel.notice_policy import NoticePolicy
from sentinel.taxonomy import ExceptionCategory, Severity, WithdrawalStatus


class _C(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InitInput(_C):
    request: WithdrawalRequest


class InitResult(_C):
    policy: TrackingPolicy
    notice_policy: NoticePolicy
    available_channels: list[str]
    parked: list[Observation] = Field(default_factory=list, description="callbacks that came before the start")
    parked_ids: list[int] = Field(
        default_factory=list,
        description="their rows: marked applied by the next progress write, once they are in the workflow's history",
    )
    risk_hits: list[RiskHit] = Field(default_factory=list, description="risk rules the withdrawal hit (R12)")
    four_eyes: bool = Field(False, description="two different reviewers must approve")


class ProgressUpdate(_C):
    """A status change, written to the withdrawal projection (records list, review queue)."""

    withdrawal_id: str
    status: WithdrawalStatus
    category: ExceptionCategory | None = None
    severity: Severity = Severity.INFO
    reason_code: str | None = None
    needs_review: bool = False
    at: datetime
    parked_applied: list[int] = Field(
        default_factory=list,
        description="parked callbacks the workflow has in its history (from init_tracking): marked applied now",
    )


class DocumentsUpload(_C):
    """The user uploaded the documents a reviewer asked for (R18)."""

    documents: list[str] = Field(min_length=1)
    reference: str = Field(min_length=1, max_length=128, description="where the documents are stored")


class NoticeAck(_C):
    """A user read or acknowledged a notice (inbox read mark, link opened, provider receipt)."""

    key: str = Field(min_length=1, max_length=200, description="the notice key or a delivery key under it")
    channel: str = Field(min_length=1, max_length=32)


class SubmitInput(_C):
    request: WithdrawalRequest
    order_id: str


class QueryInput(_C):
    channel: str
    order_id: str


class NoticeGivenUp(_C):
    """A notice the workflow stopped trying to deliver (retried until the channel's give-up
    time, or refused for good): the delivery log records it as ``given_up``."""

    key: str
    reason: str = Field(max_length=300)
