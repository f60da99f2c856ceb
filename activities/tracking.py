"""Start-of-tracking activity: resolve the timers for this channel/bank from the delay
configuration, the notice policy, the channels this deployment can deliver, and any
callback that arrived before the workflow started (kept, never lost)."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine
from temporalio import activity

from activities.config_files import HotFile
from sentinel.contracts import InitInput, InitResult
from sentinel.models import Observation
from sentinel.policy import NoticePolicy, resolve_tracking_policy
from store.repo import mark_parked_delivered, parked_for


class TrackingActivities:
    def __init__(self, engine: Engine, delays: HotFile, notice_policy: HotFile, available_channels: list[str]):
        self.engine = engine
        self.delays = delays
        self.notice_policy = notice_policy
        self.available_channels = available_channels

    @activity.defn(name="init_tracking")
    async def init_tracking(self, inp: InitInput) -> InitResult:
        policy = resolve_tracking_policy(self.delays.get(), inp.channel, inp.bank_code)
        notice_policy = NoticePolicy.model_validate(self.notice_policy.get())
        rows = await asyncio.to_thread(parked_for, self.engine, inp.withdrawal_id)
        parked = [Observation.model_validate_json(r.observation_json) for r in rows]
        await asyncio.to_thread(mark_parked_delivered, self.engine, [r.id for r in rows])
        return InitResult(
            policy=policy, notice_policy=notice_policy, available_channels=self.available_channels, parked=parked
        )
