"""The outage watch (issue #14 item 3): one long-running workflow that every
``evaluate_every`` (config/outage.yaml, re-read at each evaluation) counts the event record's
window (activity ``outage_observe``) and runs the pure lifecycle (sentinel/outage.py ``step``)
here, deterministically. A fired incident: recorded and operations alerted once
(``outage_fired``), affected users told once each (``outage_heads_up``, again at each
evaluation while it fires, for withdrawals started since); a resolved one: ``outage_resolved``.
Withdrawal workflows are never signalled. The history is bounded: it continues as new with
its state past ``max_history_events``.

Started by the dev stack under the fixed id ``outage-watch`` (idempotent)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from sentinel.outage import IncidentInput, Observation, WatchState, step

WORKFLOW_ID = "outage-watch"
ACTIVITY_TIMEOUT = timedelta(minutes=2)
NOTICE_TIMEOUT = timedelta(minutes=10)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=1))


@dataclass
class WatchInput:
    state: WatchState = field(default_factory=WatchState)
    evaluations: int = 0
    #: stop after this many evaluations (tests; 0: run for ever)
    max_evaluations: int = 0


@dataclass
class WatchStatus:
    evaluations: int
    firing: list[str]
    fired: list[str]
    resolved: list[str]


@workflow.defn(name="OutageWatch")
class OutageWatchWorkflow:
    def __init__(self) -> None:
        self._state = WatchState()
        self._evaluations = 0
        self._fired: list[str] = []
        self._resolved: list[str] = []

    @workflow.query
    def status(self) -> WatchStatus:
        return WatchStatus(
            self._evaluations, [i.id for i in self._state.firing], list(self._fired), list(self._resolved)
        )

    @workflow.run
    async def run(self, inp: WatchInput) -> WatchStatus:
        self._state, self._evaluations = inp.state, inp.evaluations
        while True:
            obs: Observation = await workflow.execute_activity(
                "outage_observe",
                workflow.now(),
                result_type=Observation,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
            )
            cfg = obs.config
            self._state, transitions = step(self._state, obs.counts, workflow.now(), cfg)
            self._evaluations += 1
            for t in transitions:
                if t.kind == "fired":
                    self._fired.append(t.incident.id)
                    await self._run("outage_fired", IncidentInput(t.incident, cfg), ACTIVITY_TIMEOUT)
                else:
                    self._resolved.append(t.incident.id)
                    await self._run("outage_resolved", IncidentInput(t.incident, cfg), NOTICE_TIMEOUT)
            for inc in self._state.firing:  # the fired ones, and withdrawals started since
                await self._run("outage_heads_up", IncidentInput(inc, cfg), NOTICE_TIMEOUT)
            if inp.max_evaluations and self._evaluations >= inp.max_evaluations:
                return self.status()
            await workflow.sleep(timedelta(seconds=cfg.evaluate_every_s))
            if workflow.info().get_current_history_length() > cfg.max_history_events:
                workflow.continue_as_new(WatchInput(self._state, self._evaluations, inp.max_evaluations))

    async def _run(self, name: str, arg: IncidentInput, timeout: timedelta) -> None:
        await workflow.execute_activity(
            name,
            arg,
            start_to_close_timeout=timeout,
            heartbeat_timeout=timedelta(minutes=1) if timeout is NOTICE_TIMEOUT else None,
            retry_policy=RETRY,
        )
