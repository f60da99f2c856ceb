"""WithdrawalWorkflow: one durable workflow per withdrawal (R33), id ``withdrawal-<id>``.

It submits the payout, then listens to both sides (R10, R11): ``bank_callback`` signals and
a polling activity on a backoff schedule; whichever answer comes first decides, later
duplicates are recorded and ignored. Timers: the delay threshold plus a grace period
(R23: a short blip raises no alarm), and a second threshold that moves the case to
MANUAL_CHECK and alerts operators. An unknown answer is never a failure: query first (R5).
Risk holds and manual checks wait for a reviewer's decision (R15, R29). Every change the
user must know about becomes a notice on the channels the notice policy names (R31).

What each answer, timer and decision means is the pure lifecycle function's
(sentinel/transitions.py); this module keeps the handlers, the loop and the activity calls
(by name, so the sandbox never imports httpx or SQLAlchemy) and carries the state in one
model (``CarriedState``, workflows/state.py). Notices: workflows/notices.py; review
handlers: workflows/review.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from sentinel.contracts import (
        CarriedState,
        InitInput,
        InitResult,
        ProgressUpdate,
        QueryInput,
        SubmitInput,
    )
    from sentinel.models import (
        Observation,
        ReviewDecision,
        TimelineEvent,
        TrackingPolicy,
        WithdrawalRequest,
        WithdrawalView,
    )
    from sentinel.orders import order_id_for
    from sentinel.taxonomy import WithdrawalStatus
    from sentinel.transition_types import (
        AlertOperators,
        Answer,
        Audit,
        Decided,
        Event,
        Log,
        Notify,
        QueryNow,
        Started,
        StopEscalations,
        Submit,
        TimerFired,
        Transition,
    )
    from sentinel.transitions import asks_routes, due_timers, next_wake, step, submit_unconfirmed
    from workflows import search_attributes as sa

    # The workflow's own helpers are loaded once, not on every run: the sandbox imports
    # again, for each new workflow run, every module it does not pass through, and these
    # three cost more than the rest of a short run's work (bench/throughput.py). They keep
    # the sandbox's rules by test instead (tests/workflows/test_determinism_rules.py).
    from workflows.review import Review
    from workflows.state import CHANNEL_RETRY, INIT_TIMEOUT, LIFECYCLE_ROUTES, lifecycle_of, store, view_of


@workflow.defn
class WithdrawalWorkflow(Review):
    @workflow.init
    def __init__(self, req: WithdrawalRequest, carried: CarriedState | None = None) -> None:
        # Started with one argument, the SDK decodes without type hints (their count differs
        # from the arguments'): the models are validated here. A continued run gets both typed.
        if isinstance(req, dict):
            req = WithdrawalRequest.model_validate(req)
        if isinstance(carried, dict):
            carried = CarriedState.model_validate(carried)
        self._req = req
        if carried is None:
            self.s = CarriedState(order_id=order_id_for(req.withdrawal_id, 1))
        else:
            self.s = carried
            self.s.runs = carried.runs + 1
        # what lives only in this run: handlers and deliveries in flight, what to write next
        self._pending_decisions = []
        self._decided = set()
        self._tasks = []
        self._sa_dirty = self._progress_dirty = self._poke = False

    @property
    def _policy(self) -> TrackingPolicy:
        assert self.s.policy is not None, "tracking has not started"
        return self.s.policy

    # --- entry point ------------------------------------------------------------------

    @workflow.run
    async def run(self, req: WithdrawalRequest, carried: CarriedState | None = None) -> WithdrawalView:
        if carried is None:
            await self._start(self._req)
        else:
            self._event(f"continued as new: run {self.s.runs}", "workflow", self.s.policy_version)
            self._sa_dirty = True
        while True:
            await self._track()
            await self._close()
            if self.s.status.is_final:
                break
            # a late answer reopened it (a correction): track again
        if self._tasks:
            await asyncio.gather(*self._tasks)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._view()

    async def _start(self, req: WithdrawalRequest) -> None:
        init: InitResult = await workflow.execute_local_activity(
            "init_tracking",
            InitInput(request=req),
            result_type=InitResult,
            start_to_close_timeout=INIT_TIMEOUT,
        )
        s = self.s
        s.policy, s.notice_policy, s.available = init.policy, init.notice_policy, init.available_channels
        s.policy_version = f"delays {init.policy.version}; notices {init.notice_policy.version}"
        self._event("tracking started", "workflow", s.policy_version)
        for obs in init.parked:
            self._event("callback received before tracking started", "callback", obs.event_id)
            s.incoming.append(obs)
        s.parked_to_mark = list(init.parked_ids)
        s.four_eyes = init.four_eyes
        s.decision_keys = dict(init.decision_keys)
        s.risk_hits = list(init.risk_hits)
        await self._finish(self._step(Started(tuple(init.risk_hits))))

    # --- the lifecycle: one pure step per event, then its actions ----------------------

    def _step(self, event: Event) -> Transition:
        """Run the lifecycle function on ``event``, keep its state, and carry out what needs
        no waiting (timeline, notices, alerts); ``_finish`` does the activity calls."""
        s = self.s
        before, category = s.status, s.category
        categories = frozenset(s.notice_policy.operator_alert_categories) if s.notice_policy else frozenset()
        t = step(lifecycle_of(s, self._req.withdrawal_id), event, s.policy, workflow.now(), categories)
        store(s, t.state)
        if s.status != before:
            self._sa_dirty = self._progress_dirty = True
        elif s.category != category:
            self._sa_dirty = True  # a refusal sent again later: the category shows it meanwhile
        for action in t.actions:
            if isinstance(action, Log):
                self._event(action.what, action.source, action.detail)
            elif isinstance(action, Notify):
                self._notify(action)
            elif isinstance(action, AlertOperators):
                if "ops_email" in s.available:
                    self._notify(action.notice)
            elif isinstance(action, StopEscalations):
                self._stop_escalations()
        return t

    async def _finish(self, t: Transition) -> None:
        """The transition's activity calls, in order: submissions, status queries, audits."""
        for action in t.actions:
            if isinstance(action, Submit):
                await self._submit(action)
            elif isinstance(action, QueryNow):
                await self._query(action)
            elif isinstance(action, Audit):
                await self._audit_decision(action.decision)

    async def _submit(self, action: Submit) -> None:
        await self._flush()
        try:
            obs = await workflow.execute_activity(
                "submit_payout",
                SubmitInput(request=self._req, order_id=action.order_id),
                result_type=Observation,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=CHANNEL_RETRY,
            )
            self._event(f"payout {action.order_id} submitted", "submit")
        except ActivityError as err:
            cause = getattr(err.cause, "type", None) or type(err.cause).__name__
            self._event("submission not confirmed; querying before anything else", "submit", str(err.cause))
            rejected = cause == "ChannelRejectedRequest"
            obs = submit_unconfirmed(action.order_id, self._req.channel, rejected, workflow.now())
        self.s.incoming.append(obs)

    async def _query(self, action: QueryNow) -> None:
        try:
            obs = await workflow.execute_activity(
                "query_payout",
                QueryInput(channel=self._req.channel, order_id=action.order_id),
                result_type=Observation,
                start_to_close_timeout=timedelta(seconds=20),
                retry_policy=CHANNEL_RETRY,
            )
        except ActivityError as err:
            self._event("status query failed; will query again", "poll", str(err.cause))
            return
        self.s.incoming.append(obs)

    async def _handle(self, obs: Observation) -> None:
        life = lifecycle_of(self.s, self._req.withdrawal_id)
        routes = workflow.patched(LIFECYCLE_ROUTES) if asks_routes(life, obs) else True
        await self._finish(self._step(Answer(obs, routes)))

    async def _apply_decision(self, decision: ReviewDecision) -> None:
        awaited = self.s.status.needs_human
        t = self._step(Decided(decision))
        if awaited:  # recorded, even when refused (the same reviewer approving twice)
            self.s.decisions.append(
                decision.model_copy(update={"token": None})
            )  # the token stays out of views
        await self._finish(t)

    # --- the loop -----------------------------------------------------------------------

    async def _track(self) -> None:
        while not self.s.status.is_final:
            await self._drain()
            if self.s.status.is_final:
                break
            await self._flush()
            await self._continue_as_new_if_long()
            if self.s.incoming or self._pending_decisions:
                continue
            now = workflow.now()
            life = lifecycle_of(self.s, self._req.withdrawal_id)
            wake = next_wake(life, self._policy, self._notice_deadlines())
            if wake is None or wake > now:
                await self._wait(None if wake is None else wake - now)
            if self._poke:
                self._poke = False
                continue
            if self.s.incoming or self._pending_decisions:
                continue
            await self._on_timers()

    async def _wait(self, timeout: timedelta | None) -> None:
        try:
            await workflow.wait_condition(
                lambda: bool(self.s.incoming) or bool(self._pending_decisions) or self._poke, timeout=timeout
            )
        except TimeoutError:
            pass

    async def _on_timers(self) -> None:
        self._notice_timers()
        life = lifecycle_of(self.s, self._req.withdrawal_id)
        for timer in due_timers(life, self._policy, workflow.now()):
            await self._finish(self._step(TimerFired(timer)))

    async def _drain(self) -> None:
        while self.s.incoming or self._pending_decisions:
            if self.s.incoming:
                await self._handle(self.s.incoming.pop(0))
            else:
                seq, decision = self._pending_decisions.pop(0)
                await self._apply_decision(decision)
                self._decided.add(seq)

    async def _close(self) -> None:
        """After the final state: keep listening for a bank return during the channel's
        window (after a success), and finish the notice work that outlives the final state
        (deferred sends, escalation ladders), then end."""
        s = self.s
        if (
            s.status == WithdrawalStatus.SUCCEEDED
            and self._policy.return_watch_s > 0
            and s.watch_until is None
        ):
            s.watch_until = workflow.now() + timedelta(seconds=self._policy.return_watch_s)
        while True:
            await self._drain()
            if not s.status.is_final:
                s.watch_until = None  # reopened: a later success watches anew
                return
            await self._flush()
            await self._continue_as_new_if_long()
            if s.incoming or self._pending_decisions:
                continue
            deadlines = self._notice_deadlines()
            if s.watch_until is not None and s.status == WithdrawalStatus.SUCCEEDED:
                deadlines.append(s.watch_until)
            if not deadlines:
                pending = [t for t in self._tasks if not t.done()]
                if not pending:
                    return
                await asyncio.gather(*pending)  # a delivery may come back batched (folding): a new deadline
                continue
            now = workflow.now()
            wake = min(deadlines)
            if wake > now:
                await self._wait(wake - now)
            if self._poke or s.incoming or self._pending_decisions:
                self._poke = False
                continue
            if s.watch_until is not None and workflow.now() >= s.watch_until:
                s.watch_until = None
            self._notice_timers()

    # --- long lives: continue-as-new (R33) ---------------------------------------------

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._policy.max_history_events
        )

    async def _continue_as_new_if_long(self) -> None:
        """Hand the whole state to a new run when the history is long, once nothing is in
        flight: deliveries finished (one may come back batched: kept as a deferred send),
        no callback or decision waiting, every handler done. Otherwise back to the loop,
        which applies what came in and asks again."""
        if not self._history_is_long():
            return
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.gather(*pending)
        if self.s.incoming or self._pending_decisions:
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.s.incoming or self._pending_decisions or not all(t.done() for t in self._tasks):
            return
        await self._flush()
        workflow.continue_as_new(args=[self._req, self.s])

    # --- signals and queries (review: workflows/review.py; read receipts: notices.py) ---

    @workflow.signal
    def bank_callback(self, obs: Observation) -> None:
        """A channel callback, already verified and classified by the gateway."""
        self.s.incoming.append(obs)

    @workflow.query
    def status(self) -> WithdrawalView:
        return self._view()

    # --- bookkeeping --------------------------------------------------------------------

    def _event(self, what: str, source: str, detail: str | None = None) -> None:
        self.s.timeline.append(TimelineEvent(at=workflow.now(), what=what, source=source, detail=detail))

    async def _flush(self) -> None:
        """Write what changed since the last flush: one search-attribute upsert and one
        projection update (a local activity), however many changes there were."""
        self._flush_search_attributes()
        s = self.s
        if not self._progress_dirty and not s.parked_to_mark:
            return
        self._progress_dirty = False
        parked, s.parked_to_mark = s.parked_to_mark, []
        await workflow.execute_local_activity(
            "record_progress",
            ProgressUpdate(
                withdrawal_id=self._req.withdrawal_id,
                status=s.status,
                category=s.category,
                severity=s.severity,
                reason_code=s.reason_code,
                needs_review=s.status.needs_human,
                at=workflow.now(),
                parked_applied=parked,
            ),
            start_to_close_timeout=timedelta(seconds=15),
        )

    def _flush_search_attributes(self) -> None:
        """One upsert for what changed since the workflow's current search attributes (set
        at start by the client, or by the last upsert); nothing to change, no upsert: each
        upsert is a billed action."""
        if not self._sa_dirty:
            return
        self._sa_dirty = False
        updates = sa.changes(self._req, self.s, workflow.info().typed_search_attributes)
        if updates:
            workflow.upsert_search_attributes(updates)

    def _view(self) -> WithdrawalView:
        return view_of(self._req, self.s)
