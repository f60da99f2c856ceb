"""Tracking activities (local, cheap): at the start, resolve the timers for this
channel/bank, the notice policy, the deliverable channels, any callback that came before
the start (kept, never lost), record the withdrawal and run the risk rules (R12), and hand over the public keys that
verify review decisions (issue #11); on each
status change, update the withdrawal's projection (records list, review queue)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from temporalio import activity

from activities.eta import EtaSource
from runtime.config_files import HotFile
from sentinel.contracts import InitInput, InitResult, ProgressUpdate
from sentinel.models import Observation
from sentinel.notice_policy import load_notice_policy
from sentinel.policy import resolve_tracking_policy
from sentinel.risk import evaluate, history_windows, load_ruleset
from sentinel.taxonomy import WithdrawalStatus
from store.repo import (
    mark_parked_delivered,
    parked_for,
    payee_fingerprint,
    record_risk_hits,
    record_withdrawal,
    update_progress,
    user_history,
)


class TrackingActivities:
    def __init__(
        self,
        engine: Engine,
        delays: HotFile,
        notice_policy: HotFile,
        risk_rules: HotFile,
        available_channels: list[str],
        decision_keys: dict[str, str] | None = None,
        eta: EtaSource | None = None,
    ):
        self.engine = engine
        self.delays = delays
        self.notice_policy = notice_policy
        self.risk_rules = risk_rules
        self.available_channels = available_channels
        self.decision_keys = dict(decision_keys or {})
        self.eta = eta

    def _init(self, inp: InitInput) -> InitResult:
        req = inp.request
        policy = resolve_tracking_policy(self.delays.get(), req.channel, req.bank_code)
        if self.eta is not None:  # R24: the ETA of a delay notice from past arrivals (issue #14)
            alarm_after = policy.delay_threshold_s + policy.grace_s
            hours = self.eta.eta_hours(
                req.channel, req.bank_code, req.created_at, alarm_after, policy.eta_hours
            )
            policy = policy.model_copy(update={"eta_hours": hours})
        notice_policy = self.notice_policy.derived(load_notice_policy)
        ruleset = self.risk_rules.derived(load_ruleset)
        now = datetime.now(UTC)
        record_withdrawal(self.engine, req, WithdrawalStatus.SUBMITTED.value, policy.delay_threshold_s)
        history = user_history(
            self.engine,
            req.user_id,
            payee_fingerprint(req.payee_ref),
            history_windows(ruleset),
            now,
            req.withdrawal_id,
        )
        hits = evaluate(ruleset, req, history, now, req.card_added_at)
        record_risk_hits(self.engine, req.withdrawal_id, hits)
        # Read, not marked: the rows are marked applied by the workflow's first progress
        # write, which runs only once this result is in its history. A worker that dies
        # before that runs init again and reads them again (the workflow ignores an event id
        # it has seen), so a crash at any point neither loses nor doubles a callback.
        rows = parked_for(self.engine, req.withdrawal_id)
        parked = [Observation.model_validate_json(r.observation_json) for r in rows]
        return InitResult(
            policy=policy,
            notice_policy=notice_policy,
            available_channels=self.available_channels,
            parked=parked,
            parked_ids=[r.id for r in rows if r.id is not None],
            risk_hits=hits,
            four_eyes=ruleset.needs_four_eyes(req.amount, req.currency),
            decision_keys=self.decision_keys,
        )

    @activity.defn(name="init_tracking")
    async def init_tracking(self, inp: InitInput) -> InitResult:
        return await asyncio.to_thread(self._init, inp)

    @activity.defn(name="record_progress")
    async def record_progress(self, update: ProgressUpdate) -> None:
        await asyncio.to_thread(update_progress, self.engine, update)
        if update.parked_applied:
            await asyncio.to_thread(mark_parked_delivered, self.engine, update.parked_applied)
