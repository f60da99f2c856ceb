"""Inputs and outputs of the activities: the contract between the workflow and the
activity workers. Pure pydantic models, safe inside the workflow sandbox."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sentinel.models import (
    DOCUMENT_KINDS,
    DocumentKind,
    NoCard,
    NoticeRecord,
    NoticeRequest,
    Observation,
    ReviewDecision,
    RiskHit,
    TimelineEvent,
    TrackingPolicy,
    WithdrawalRequest,
)
from sentinel.notice_policy import NoticePolicy
from sentinel.taxonomy import ExceptionCategory, Severity, WithdrawalStatus


class _C(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class InitInput(_C):
    request: WithdrawalRequest


class InitResult(_C):
    policy: TrackingPolicy
    notice_policy: NoticePolicy
    available_channels: list[str]
    parked: list[Observation] = Field(
        default_factory=list, description="callbacks that came before the start"
    )
    parked_ids: list[int] = Field(
        default_factory=list,
        description="their rows: marked applied by the next progress write, once they are in the workflow's history",
    )
    risk_hits: list[RiskHit] = Field(default_factory=list, description="risk rules the withdrawal hit (R12)")
    four_eyes: bool = Field(False, description="two different reviewers must approve")
    decision_keys: dict[str, str] = Field(
        default_factory=dict,
        description="public keys (key id -> base64) whose signed review decisions the workflow accepts",
    )


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

    documents: list[DocumentKind] = Field(
        min_length=1,
        max_length=len(DOCUMENT_KINDS),
        description="which of the requested documents (each once)",
    )
    reference: Annotated[str, NoCard] = Field(
        min_length=1, max_length=128, description="where the documents are stored"
    )

    @field_validator("documents")
    @classmethod
    def _each_once(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))


class NoticeAck(_C):
    """A user read or acknowledged a notice (inbox read mark, link opened, provider receipt)."""

    key: Annotated[str, NoCard] = Field(
        min_length=1, max_length=200, description="the notice key or a delivery key under it"
    )
    channel: Annotated[str, NoCard] = Field(min_length=1, max_length=32)


class DecisionAudit(_C):
    """A review decision the workflow applied: one audit row, written once per nonce."""

    withdrawal_id: str
    actor: str
    role: str
    action: str
    detail: str = Field(max_length=1000)
    nonce: str = Field(max_length=64, description="the decision token's nonce: a repeat writes no second row")


class DecisionKeys(_C):
    """The public decision keys the worker trusts now (a rotation, or a workflow started
    before decisions were signed)."""

    keys: dict[str, str] = Field(default_factory=dict)


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


class DeferredSend(_C):
    """A notice delivery waiting for its moment (quiet or legal hours, a fold window)."""

    at: datetime
    key: str
    notice: NoticeRequest


class CarriedState(_C):
    """The workflow's one state model: everything a withdrawal's workflow knows (the
    lifecycle part is handed to sentinel/transitions.py per event), and what it hands to its
    next run when the history grows long (continue-as-new, R33): a withdrawal can live for
    months (a manual check polling every 30 minutes, a return watch, a review waiting for
    documents). In-flight deliveries, callbacks and decisions are drained before the
    hand-over, so none is lost. ``policy`` and ``notice_policy`` are None only before
    tracking started."""

    runs: int = Field(1, ge=1, description="how many runs came before this one")
    policy: TrackingPolicy | None = None
    notice_policy: NoticePolicy | None = None
    available: list[str] = Field(default_factory=list)
    policy_version: str | None = None
    status: WithdrawalStatus = WithdrawalStatus.SUBMITTED
    category: ExceptionCategory | None = None
    subtype: str | None = None
    reason_code: str | None = None
    severity: Severity = Severity.INFO
    attempt: int = 1
    order_id: str = ""
    timeline: list[TimelineEvent] = Field(default_factory=list)
    notices: list[NoticeRecord] = Field(default_factory=list)
    decisions: list[ReviewDecision] = Field(default_factory=list)
    incoming: list[Observation] = Field(default_factory=list)
    decision_seq: int = 0
    seen_events: list[str] = Field(default_factory=list)
    last_answer: list[str | None] | None = None
    stage_seq: dict[str, int] = Field(default_factory=dict)
    channels_used: list[str] = Field(default_factory=list)
    exception_notified: bool = False
    operators_alerted: bool = False
    eta: datetime | None = None
    submitted_at: datetime | None = None
    delay_since: datetime | None = None
    delay_notified: bool = False
    next_poll_at: datetime | None = None
    poll_index: int = 0
    same_order_resubmits: int = 0
    submitted_once: bool = False
    risk_hits: list[RiskHit] = Field(default_factory=list)
    four_eyes: bool = False
    approvals: list[str] = Field(default_factory=list)
    review_since: datetime | None = None
    review_escalated: bool = False
    awaiting_documents: list[str] = Field(default_factory=list)
    documents_due: datetime | None = None
    deferred: list[DeferredSend] = Field(default_factory=list)
    parked_to_mark: list[int] = Field(default_factory=list)
    watch_until: datetime | None = None
    resend_at: datetime | None = None
    resend_fresh: bool = False
    resends: int = 0
    limit_waits: int = 0
    decision_keys: dict[str, str] = Field(default_factory=dict)
    used_nonces: list[str] = Field(
        default_factory=list, description="nonces of the decision tokens already used"
    )
