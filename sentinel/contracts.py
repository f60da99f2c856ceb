"""Inputs and outputs of the activities: the contract between the workflow and the
activity workers. Pure pydantic models, safe inside the workflow sandbox."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sentinel.models import Observation, TrackingPolicy, WithdrawalRequest
from sentinel.policy import NoticePolicy


class _C(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InitInput(_C):
    withdrawal_id: str
    channel: str
    bank_code: str


class InitResult(_C):
    policy: TrackingPolicy
    notice_policy: NoticePolicy
    available_channels: list[str]
    parked: list[Observation] = Field(default_factory=list, description="callbacks that came before the start")


class SubmitInput(_C):
    request: WithdrawalRequest
    order_id: str


class QueryInput(_C):
    channel: str
    order_id: str
