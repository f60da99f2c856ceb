"""WithdrawalWorkflow: one durable workflow per withdrawal (R33), id ``withdrawal-<id>``.

It submits the payout, then listens to both sides (R10, R11): ``bank_callback`` signals and
a polling activity on a backoff schedule; whichever answer comes first decides, later
duplicates are recorded and ignored. Timers: the delay threshold plus a grace period
(R23: a short blip raises no alarm), and a second threshold that moves the case to
MANUAL_CHECK and alerts operators. An unknown answer is never a failure: query first (R5).
Risk holds and manual checks wait for a reviewer's decision (R15, R29). Every change the
user must know about becomes a notice on the channels the notice policy names (R31).

Only decisions live here; all I/O is in activities (called by name, so the sandbox never
imports httpx or SQLAlchemy).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.exceptions import TimeoutError as GaveUp

with workflow.unsafe.imports_passed_through():
    from channels.base import order_id_for
    from sentinel.contracts import (
        CarriedState,
        DecisionAudit,
        DecisionKeys,
        DeferredSend,
        DocumentsUpload,
        InitInput,
        InitResult,
        NoticeAck,
        NoticeGivenUp,
        ProgressUpdate,
        QueryInput,
        SubmitInput,
    )
    from sentinel.decision_tokens import (
        DecisionClaims,
        DecisionTokenError,
        key_is_known,
        read_claims,
        verify_decision,
    )
    from sentinel.lifecycle import Route, route_failure, route_return
    from sentinel.models import (
        Classification,
        DeliveryResult,
        NoticeRecord,
        NoticeRequest,
        Observation,
        ReviewDecision,
        RiskHit,
        TimelineEvent,
        WithdrawalRequest,
        WithdrawalView,
    )
    from sentinel.policy import next_step
    from sentinel.taxonomy import (
        ExceptionCategory,
        Fixer,
        PayoutState,
        RetryDecision,
        Severity,
        Stage,
        WithdrawalStatus,
    )
    from workflows import search_attributes as sa

# Activity options: explicit timeouts, retry policies and non-retryable error types.
INIT_TIMEOUT = timedelta(seconds=15)
# Submit and query: a few quick tries; past them the answer counts as unknown (query later).
CHANNEL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
    non_retryable_error_types=["ChannelRejectedRequest", "UnknownChannel"],
)
#: notices: retried on a capped backoff until the channel's give-up time of the notice
#: policy (``retry``), as long as they stay true (the activity checks on each retry)
NOTICE_NON_RETRYABLE = ["UnknownChannel", "PermanentDeliveryError"]
MAX_SAME_ORDER_RESUBMITS = 3
#: patch id: deferred notices on folded channels are held as batched (one message at the
#: end of quiet or legal hours), fold windows ending at night wait for morning
FOLD_DEFERRED = "fold-deferred-notices"
#: patch id: a failing answer is routed by sentinel/lifecycle.py (resends, limit waits,
#: operations fixes, compliance review) instead of ending FAILED or in a manual check
LIFECYCLE_ROUTES = "lifecycle-routes"
#: patch id: a review decision sent as a signal applies only with a valid decision token
#: (issue #11); histories from before it applied unsigned ones
SIGNED_DECISIONS = "signed-review-decisions"
#: the audit row of an applied decision: retried for about a quarter of an hour, then an
#: operator alert (the decision itself stands)
AUDIT_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=20)
USER_STAGES_WITHOUT_EXCEPTION = {Stage.RESOLVED, Stage.APPROVED, Stage.OPERATOR_ALERT}


def _unknown(subtype: str) -> Classification:
    return Classification(
        state=PayoutState.UNKNOWN,
        category=ExceptionCategory.PLATFORM_ERROR,
        subtype=subtype,
        retry=RetryDecision.QUERY_FIRST,
        fixer=Fixer.NOBODY,
    )


@workflow.defn
class WithdrawalWorkflow:
    @workflow.init
    def __init__(self, req: WithdrawalRequest, carried: CarriedState | None = None) -> None:
        # Started with one argument, the SDK decodes without type hints (their count differs
        # from the arguments'): the models are validated here. A continued run gets both typed.
        if isinstance(req, dict):
            req = WithdrawalRequest.model_validate(req)
        if isinstance(carried, dict):
            carried = CarriedState.model_validate(carried)
        self._req = req
        self._status = WithdrawalStatus.SUBMITTED
        self._category: ExceptionCategory | None = None
        self._subtype: str | None = None
        self._reason_code: str | None = None
        self._severity = Severity.INFO
        self._attempt = 1
        self._order_id = order_id_for(req.withdrawal_id, 1)
        self._timeline: list[TimelineEvent] = []
        self._notices: list[NoticeRecord] = []
        self._decisions: list[ReviewDecision] = []
        self._incoming: list[Observation] = []
        self._pending_decisions: list[tuple[int, ReviewDecision]] = []
        self._decided: set[int] = set()
        self._decision_seq = 0
        self._seen_events: set[str] = set()
        self._last_answer: tuple[str, str, str | None] | None = None
        self._stage_seq: dict[str, int] = {}
        self._channels_used: list[str] = []
        self._exception_notified = False
        self._operators_alerted = False
        self._tasks: list[asyncio.Task] = []
        self._eta: datetime | None = None
        self._policy_version: str | None = None
        # per submission
        self._submitted_at: datetime | None = None
        self._delay_since: datetime | None = None
        self._delay_notified = False
        self._next_poll_at: datetime | None = None
        self._poll_index = 0
        self._same_order_resubmits = 0
        self._sa_dirty = False
        self._progress_dirty = False
        self._poke = False
        # review
        self._submitted_once = False
        self._risk_hits: list[RiskHit] = []
        self._four_eyes = False
        self._approvals: list[str] = []
        self._review_since: datetime | None = None
        self._review_escalated = False
        self._awaiting_documents: list[str] = []
        self._documents_due: datetime | None = None
        # notices deferred to quiet/legal hours: (send at, record key, request)
        self._deferred: list[tuple[datetime, str, NoticeRequest]] = []
        # parked callbacks from init_tracking, marked applied by the next progress write
        self._parked_to_mark: list[int] = []
        # after a success: watched for a bank return until then
        self._watch_until: datetime | None = None
        # a refused payout sent again (sentinel/lifecycle.py): when, and how many so far
        self._resend_at: datetime | None = None
        self._resend_fresh = False  # after a limit wait: the delay clock starts again
        self._resends = 0
        self._limit_waits = 0
        # review decisions: the public keys that verify their tokens, the nonces already used
        self._decision_keys: dict[str, str] = {}
        self._used_nonces: list[str] = []
        self._runs = 1
        if carried is not None:
            self._restore(carried)

    # --- entry point ------------------------------------------------------------------

    @workflow.run
    async def run(self, req: WithdrawalRequest, carried: CarriedState | None = None) -> WithdrawalView:
        if carried is None:
            await self._start(self._req)
        else:
            self._event(f"continued as new: run {self._runs}", "workflow", self._policy_version)
            self._sa_dirty = True
        while True:
            await self._track()
            await self._close()
            if self._status.is_final:
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
        self._policy = init.policy
        self._notice_policy = init.notice_policy
        self._available = init.available_channels
        self._policy_version = f"delays {init.policy.version}; notices {init.notice_policy.version}"
        self._event("tracking started", "workflow", self._policy_version)
        for obs in init.parked:
            self._event("callback received before tracking started", "callback", obs.event_id)
            self._incoming.append(obs)
        self._parked_to_mark = list(init.parked_ids)

        self._four_eyes = init.four_eyes
        self._decision_keys = dict(init.decision_keys)
        if init.risk_hits:
            await self._hold_for_risk(init.risk_hits)
        else:
            await self._submit()

    # --- long lives: continue-as-new (R33) ---------------------------------------------

    #: the workflow's own fields carried to the next run as they are (CarriedState names them
    #: without the leading underscore); sets, tuples and the deferred sends are converted
    _CARRIED = (
        "policy",
        "notice_policy",
        "available",
        "policy_version",
        "status",
        "category",
        "subtype",
        "reason_code",
        "severity",
        "attempt",
        "order_id",
        "timeline",
        "notices",
        "decisions",
        "incoming",
        "decision_seq",
        "stage_seq",
        "channels_used",
        "exception_notified",
        "operators_alerted",
        "eta",
        "submitted_at",
        "delay_since",
        "delay_notified",
        "next_poll_at",
        "poll_index",
        "same_order_resubmits",
        "submitted_once",
        "risk_hits",
        "four_eyes",
        "approvals",
        "review_since",
        "review_escalated",
        "awaiting_documents",
        "documents_due",
        "parked_to_mark",
        "watch_until",
        "resend_at",
        "resend_fresh",
        "resends",
        "limit_waits",
        "decision_keys",
        "used_nonces",
    )

    def _carry(self) -> CarriedState:
        fields = {name: getattr(self, f"_{name}") for name in self._CARRIED}
        return CarriedState(
            runs=self._runs,
            seen_events=sorted(self._seen_events),
            last_answer=list(self._last_answer) if self._last_answer else None,
            deferred=[DeferredSend(at=at, key=key, notice=notice) for at, key, notice in self._deferred],
            **fields,
        )

    def _restore(self, carried: CarriedState) -> None:
        for name in self._CARRIED:
            setattr(self, f"_{name}", getattr(carried, name))
        self._runs = carried.runs + 1
        self._seen_events = set(carried.seen_events)
        last = carried.last_answer
        self._last_answer = (str(last[0]), str(last[1]), last[2]) if last else None
        self._deferred = [(d.at, d.key, d.notice) for d in carried.deferred]

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
        if self._incoming or self._pending_decisions:
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._incoming or self._pending_decisions or not all(t.done() for t in self._tasks):
            return
        await self._flush()
        workflow.continue_as_new(args=[self._req, self._carry()])

    # --- signals, updates, queries ----------------------------------------------------

    @workflow.signal
    def bank_callback(self, obs: Observation) -> None:
        """A channel callback, already verified and classified by the gateway."""
        self._incoming.append(obs)

    @workflow.signal
    def review_decision(self, decision: ReviewDecision) -> None:
        """Fire-and-forget form of ``review``; a decision that does not apply is recorded.
        Without a valid decision token it is recorded and ignored (anyone who can reach
        Temporal can send a signal; only the gateway can sign)."""
        if workflow.patched(SIGNED_DECISIONS):
            try:
                claims = self._verify_decision(decision)
            except DecisionTokenError as exc:
                self._event(
                    f"review decision '{decision.decision}' by {decision.reviewer} ignored: {exc}", "review"
                )
                return
            self._used_nonces.append(claims.nonce)
        self._decision_seq += 1
        self._pending_decisions.append((self._decision_seq, decision))

    @workflow.signal
    def documents_uploaded(self, upload: DocumentsUpload) -> None:
        """The user uploaded what a reviewer asked for: the case goes back to the queue."""
        if not self._awaiting_documents:
            self._event(
                "documents received while none were requested; kept for the reviewer",
                "user",
                ", ".join(upload.documents),
            )
            return
        self._event(f"documents uploaded: {', '.join(upload.documents)}", "user", upload.reference)
        self._awaiting_documents = []
        self._documents_due = None
        self._review_since = workflow.now()
        self._review_escalated = False
        self._poke = True

    @workflow.update
    async def review(self, decision: ReviewDecision) -> str:
        """A reviewer's decision; rejected before it is written to history when the
        withdrawal is not awaiting review or the decision token does not prove it. Returns
        the status after the decision."""
        if decision.token is not None:
            self._used_nonces.append(read_claims(decision.token).nonce)
            if not key_is_known(decision.token, self._decision_keys):
                # signed with a key this workflow has not heard of (a rotation since it
                # started, or it started before decisions were signed): the worker's keys now
                keys = await workflow.execute_local_activity(
                    "decision_keys", result_type=DecisionKeys, start_to_close_timeout=INIT_TIMEOUT
                )
                self._decision_keys = dict(keys.keys)
                try:
                    verify_decision(
                        decision,
                        withdrawal_id=self._req.withdrawal_id,
                        public_keys=self._decision_keys,
                        now=workflow.now(),
                        manual_check=self._status == WithdrawalStatus.MANUAL_CHECK,
                    )
                except DecisionTokenError as exc:
                    self._event(
                        f"review decision '{decision.decision}' by {decision.reviewer} refused: {exc}",
                        "review",
                    )
                    raise ApplicationError(
                        str(exc), type="InvalidDecisionToken", non_retryable=True
                    ) from None
        self._decision_seq += 1
        seq = self._decision_seq
        self._pending_decisions.append((seq, decision))
        await workflow.wait_condition(lambda: seq in self._decided)
        return self._status.value

    @review.validator
    def _validate_review(self, decision: ReviewDecision) -> None:
        if not self._status.needs_human or self._pending_decisions:
            raise ApplicationError(
                f"withdrawal {self._req.withdrawal_id} is {self._status.value}, not awaiting review",
                type="NotAwaitingReview",
                non_retryable=True,
            )
        try:
            self._verify_decision(decision, unknown_key_ok=True)
        except DecisionTokenError as exc:
            raise ApplicationError(str(exc), type="InvalidDecisionToken", non_retryable=True) from None
        if decision.decision == "approve" and decision.reviewer in self._approvals:
            raise ApplicationError(
                f"{decision.reviewer} has approved already; four-eyes needs a different reviewer",
                type="SameReviewer",
                non_retryable=True,
            )

    def _verify_decision(self, decision: ReviewDecision, unknown_key_ok: bool = False) -> DecisionClaims:
        """The decision token's claims, if it proves this decision (sentinel/decision_tokens.py)."""
        return verify_decision(
            decision,
            withdrawal_id=self._req.withdrawal_id,
            public_keys=self._decision_keys,
            now=workflow.now(),
            used_nonces=self._used_nonces,
            manual_check=self._status == WithdrawalStatus.MANUAL_CHECK,
            unknown_key_ok=unknown_key_ok,
        )

    @workflow.query
    def status(self) -> WithdrawalView:
        return self._view()

    # --- submission and tracking ----------------------------------------------------

    async def _submit(self) -> None:
        now = workflow.now()
        self._submitted_at = now
        self._delay_since = None
        self._delay_notified = False
        self._poll_index = 0
        self._next_poll_at = now + timedelta(seconds=self._policy.poll_schedule_s[0])
        self._last_answer = None
        self._submitted_once = True
        self._set_status(WithdrawalStatus.PROCESSING)
        await self._flush()
        try:
            obs = await workflow.execute_activity(
                "submit_payout",
                SubmitInput(request=self._req, order_id=self._order_id),
                result_type=Observation,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=CHANNEL_RETRY,
            )
            self._event(f"payout {self._order_id} submitted", "submit")
        except ActivityError as err:
            cause = getattr(err.cause, "type", None) or type(err.cause).__name__
            if cause == "ChannelRejectedRequest":
                cls = Classification(
                    state=PayoutState.FAILED,
                    category=ExceptionCategory.PLATFORM_ERROR,
                    subtype="integration",
                    retry=RetryDecision.AFTER_OPS_FIX,
                    fixer=Fixer.OPERATIONS,
                )
            else:
                cls = _unknown("submit-unanswered")
            self._event("submission not confirmed; querying before anything else", "submit", str(err.cause))
            obs = Observation(
                order_id=self._order_id,
                source="submit",
                channel=self._req.channel,
                raw_status="NO_ANSWER" if cls.state == PayoutState.UNKNOWN else "REJECTED_REQUEST",
                classification=cls,
                observed_at=workflow.now(),
            )
        self._incoming.append(obs)

    async def _track(self) -> None:
        while not self._status.is_final:
            await self._drain()
            if self._status.is_final:
                break
            await self._flush()
            await self._continue_as_new_if_long()
            if self._incoming or self._pending_decisions:
                continue
            now = workflow.now()
            wake = self._next_wake()
            if wake is None or wake > now:
                timeout = None if wake is None else wake - now
                try:
                    await workflow.wait_condition(
                        lambda: bool(self._incoming) or bool(self._pending_decisions) or self._poke,
                        timeout=timeout,
                    )
                except TimeoutError:
                    pass
            if self._poke:
                self._poke = False
                continue
            if self._incoming or self._pending_decisions:
                continue
            await self._on_timers()

    def _next_wake(self) -> datetime | None:
        deadlines = [
            d
            for d in (
                self._poll_due(),
                self._alarm_due(),
                self._manual_due(),
                self._review_due(),
                self._documents_due,
                self._resend_at,
            )
            if d is not None
        ] + self._notice_deadlines()
        return min(deadlines) if deadlines else None

    def _poll_due(self) -> datetime | None:
        if self._resend_at is not None:
            return None  # the last order was refused: nothing to ask about until it is sent again
        if self._status in (
            WithdrawalStatus.PROCESSING,
            WithdrawalStatus.DELAYED,
            WithdrawalStatus.MANUAL_CHECK,
        ):
            return self._next_poll_at
        return None

    def _alarm_due(self) -> datetime | None:
        if self._status != WithdrawalStatus.PROCESSING or self._delay_notified or self._submitted_at is None:
            return None
        since = self._submitted_at + timedelta(seconds=self._policy.delay_threshold_s)
        if self._delay_since is not None:
            since = min(since, self._delay_since)
        return since + timedelta(seconds=self._policy.grace_s)

    def _manual_due(self) -> datetime | None:
        if (
            self._status not in (WithdrawalStatus.PROCESSING, WithdrawalStatus.DELAYED)
            or self._submitted_at is None
        ):
            return None
        if self._resend_fresh:
            return None  # waiting for a limit to reset: the manual check counts from the resend
        return self._submitted_at + timedelta(seconds=self._policy.manual_check_s)

    def _review_due(self) -> datetime | None:
        if not self._status.needs_human or self._review_escalated or self._review_since is None:
            return None
        if self._awaiting_documents:
            return None  # the clock is the user's, not the reviewer's
        return self._review_since + timedelta(seconds=self._policy.review_sla_s)

    async def _on_timers(self) -> None:
        self._notice_timers()
        now = workflow.now()
        if self._documents_due is not None and now >= self._documents_due and self._awaiting_documents:
            self._documents_expired()
            return
        if self._resend_at is not None and now >= self._resend_at:
            await self._resend()
            return
        review = self._review_due()
        if review is not None and now >= review:
            self._escalate_review()
        manual, alarm, poll = self._manual_due(), self._alarm_due(), self._poll_due()
        if manual is not None and now >= manual:
            waited = int(self._policy.manual_check_s)
            await self._to_manual_check(None, f"no final answer after {waited} s")
        elif alarm is not None and now >= alarm:
            self._delay_alarm()
        if poll is not None and now >= poll and self._poll_due() is not None:
            await self._poll()

    async def _poll(self) -> None:
        now = workflow.now()
        schedule = self._policy.poll_schedule_s
        if self._status == WithdrawalStatus.MANUAL_CHECK:
            wait = schedule[-1]
        else:
            self._poll_index += 1
            wait = schedule[min(self._poll_index, len(schedule) - 1)]
        self._next_poll_at = now + timedelta(seconds=wait)
        try:
            obs = await workflow.execute_activity(
                "query_payout",
                QueryInput(channel=self._req.channel, order_id=self._order_id),
                result_type=Observation,
                start_to_close_timeout=timedelta(seconds=20),
                retry_policy=CHANNEL_RETRY,
            )
        except ActivityError as err:
            self._event("status query failed; will query again", "poll", str(err.cause))
            return
        self._incoming.append(obs)

    async def _drain(self) -> None:
        while self._incoming or self._pending_decisions:
            if self._incoming:
                await self._handle(self._incoming.pop(0))
            else:
                seq, decision = self._pending_decisions.pop(0)
                await self._apply_decision(decision)
                self._decided.add(seq)

    # --- what an answer means ---------------------------------------------------------

    async def _handle(self, obs: Observation) -> None:
        if obs.event_id:
            if obs.event_id in self._seen_events:
                self._event("duplicate delivery ignored", obs.source, obs.event_id)
                return
            self._seen_events.add(obs.event_id)
        if obs.order_id != self._order_id:
            self._event(
                f"answer for earlier order {obs.order_id} recorded, ignored", obs.source, obs.raw_status
            )
            return
        cls = obs.classification
        if self._status.is_final:
            if self._status == WithdrawalStatus.SUCCEEDED and cls.state in (
                PayoutState.RETURNED,
                PayoutState.FAILED,
            ):
                self._event(f"channel: {obs.raw_status} {obs.raw_code or ''}".strip(), obs.source)
                self._returned(cls, obs)
            elif self._status == WithdrawalStatus.FAILED and cls.state == PayoutState.SUCCEEDED:
                self._event(f"channel: {obs.raw_status} {obs.raw_code or ''}".strip(), obs.source)
                self._contradicted(obs)
            else:
                self._event(f"late answer {obs.raw_status} recorded, ignored", obs.source, obs.raw_code)
            return
        answer = (obs.raw_status, obs.raw_code or "", cls.state.value)
        if answer == self._last_answer:
            if obs.source == "callback":
                self._event("same answer again, ignored", obs.source, obs.raw_status)
            return
        self._last_answer = answer
        self._event(f"channel: {obs.raw_status} {obs.raw_code or ''}".strip(), obs.source)

        state = cls.state
        if state in (PayoutState.SUBMITTED, PayoutState.PROCESSING):
            self._still_processing(cls)
        elif state == PayoutState.AWAITING_USER:
            self._category, self._subtype = ExceptionCategory.AWAITING_USER_ACTION, cls.subtype
            self._notify(Stage.DETECTED, ExceptionCategory.AWAITING_USER_ACTION)
        elif state == PayoutState.UNKNOWN:
            await self._unknown(cls, obs)
        elif state == PayoutState.SUCCEEDED:
            self._succeeded()
        elif state == PayoutState.HELD:
            self._to_review(cls, obs)
        elif state in (PayoutState.FAILED, PayoutState.CANCELLED) and workflow.patched(LIFECYCLE_ROUTES):
            await self._route_failure(cls, obs)
        elif state in (PayoutState.FAILED, PayoutState.CANCELLED):
            payer_side = cls.category == ExceptionCategory.BALANCE_OR_LIMIT and (
                cls.subtype or ""
            ).startswith("payer")
            if (
                not cls.mapped
                or cls.category in (ExceptionCategory.PLATFORM_ERROR, ExceptionCategory.DUPLICATE)
                or payer_side
            ):
                await self._to_manual_check(cls, f"{obs.raw_status} {obs.raw_code or ''}".strip(), obs)
            elif cls.category == ExceptionCategory.RISK_HOLD:
                self._to_review(cls, obs)
            else:
                self._failed(cls, obs)
        elif state == PayoutState.RETURNED:
            self._returned(cls, obs)

    async def _route_failure(self, cls: Classification, obs: Observation) -> None:
        """A refusal: what the catalogue decided for its code is carried out (sentinel/lifecycle.py)."""
        decision = route_failure(
            cls,
            resends=self._resends,
            waits=self._limit_waits,
            policy=self._policy,
            alert_categories=set(self._notice_policy.operator_alert_categories),
            now=workflow.now(),
        )
        answer = f"{obs.raw_status} {obs.raw_code or ''}".strip()
        self._event(f"route {decision.route.value}: {decision.why}", "workflow", answer)
        route = decision.route
        if route in (Route.RESEND, Route.WAIT_AND_RESEND):
            self._category, self._subtype, self._reason_code = cls.category, cls.subtype, obs.raw_code
            self._resend_at = decision.at
            self._sa_dirty = True
            if route == Route.RESEND:
                self._resends += 1
                return  # the delay alarm still counts from the first submission (R23)
            self._limit_waits += 1
            self._resend_fresh = True
            self._eta = None
            self._delay_notified = True
            self._set_status(WithdrawalStatus.DELAYED)
            self._notify(Stage.DELAYED, cls.category, variant="LIMIT_WAIT", retry_at=decision.at)
        elif route == Route.OPS_FIX:
            await self._to_manual_check(cls, answer, obs, variant="OPS_FIX")
        elif route == Route.MANUAL_CHECK:
            await self._to_manual_check(cls, answer, obs)
        elif route in (Route.RISK_REVIEW, Route.COMPLIANCE_REVIEW):
            self._to_review(cls, obs)
        else:
            self._failed(cls, obs)
            if decision.alert_operators:
                self._alert_operators(cls.category, force=True)

    async def _resend(self) -> None:
        """Send the refused payout again. The earlier order is final (refused), so the new
        one is the next attempt number: never two live orders for one withdrawal."""
        fresh = self._resend_fresh
        self._resend_at, self._resend_fresh = None, False
        self._attempt += 1
        self._order_id = order_id_for(self._req.withdrawal_id, self._attempt)
        self._event(f"sending the payout again as {self._order_id}", "workflow")
        submitted_at, delay_notified, delay_since = (
            self._submitted_at,
            self._delay_notified,
            self._delay_since,
        )
        was_delayed = self._status == WithdrawalStatus.DELAYED and not fresh
        await self._submit()
        if not fresh:
            # the thresholds keep counting from the first submission; a delay already told stays told
            self._submitted_at, self._delay_notified, self._delay_since = (
                submitted_at,
                delay_notified,
                delay_since,
            )
            if was_delayed:
                self._set_status(WithdrawalStatus.DELAYED)

    def _still_processing(self, cls: Classification) -> None:
        if cls.category == ExceptionCategory.BANK_DELAY and self._delay_since is None:
            # The channel itself says the bank is slow: the grace period starts now (R1, R23).
            self._delay_since = workflow.now()
            self._subtype = cls.subtype
        elif cls.category == ExceptionCategory.BALANCE_OR_LIMIT and (cls.subtype or "").startswith("payer"):
            # Platform float is short: the user only sees a delay; operations must top up.
            if self._delay_since is None:
                self._delay_since = workflow.now()
            self._alert_operators(cls.category)

    async def _unknown(self, cls: Classification, obs: Observation) -> None:
        if obs.raw_status == "NOT_FOUND" and obs.source == "poll":
            # The channel never got the order: resend the identical request (same order number).
            if self._same_order_resubmits < MAX_SAME_ORDER_RESUBMITS:
                self._same_order_resubmits += 1
                self._event("channel has no such order; resending the same order", "poll")
                submitted_at = self._submitted_at
                await self._submit()
                self._submitted_at = submitted_at  # thresholds keep counting from the first try
                return
            await self._to_manual_check(cls, "channel still has no such order after resending", obs)
            return
        # Never a failure: query first, and soon (R5).
        self._next_poll_at = workflow.now() + timedelta(seconds=self._policy.unknown_poll_s)

    # --- transitions ------------------------------------------------------------------

    def _delay_alarm(self) -> None:
        self._delay_notified = True
        self._category = ExceptionCategory.BANK_DELAY
        self._eta = workflow.now() + timedelta(hours=self._policy.eta_hours)
        self._set_status(WithdrawalStatus.DELAYED)
        self._event("delay confirmed after the grace period", "timer")
        if self._resend_at is not None:
            # refused and waiting to be sent again: say so, not "with the bank" (issue #10)
            self._notify(
                Stage.DELAYED, ExceptionCategory.BANK_DELAY, variant="RETRYING", retry_at=self._resend_at
            )
        else:
            self._notify(Stage.DELAYED, ExceptionCategory.BANK_DELAY)

    def _succeeded(self) -> None:
        self._eta = None
        self._resend_at, self._resend_fresh = None, False
        self._set_status(WithdrawalStatus.SUCCEEDED)
        if self._exception_notified:
            # Tell the user it is resolved, on the channels used before (send_resolved).
            self._notify(Stage.RESOLVED, self._category, channels=list(self._channels_used))

    def _contradicted(self, obs: Observation) -> None:
        """The bank reports paid after we told the user it failed (funds back to the
        balance): the earlier notice was wrong. Tell the user so, on the channels it went
        to, and hand the case to operations (the money may now be in two places). A
        reviewer's approve confirms the payout with the bank (same order number), reject
        keeps the failure."""
        self._set_status(WithdrawalStatus.MANUAL_CHECK)
        self._event(
            "the bank reports paid after the failure notice: correction sent, manual check",
            "workflow",
            obs.event_id,
        )
        self._next_poll_at = workflow.now() + timedelta(seconds=self._policy.poll_schedule_s[-1])
        self._notify(Stage.CORRECTION, self._category, channels=list(self._channels_used))
        self._alert_operators(self._category, force=True)

    def _failed(self, cls: Classification, obs: Observation) -> None:
        self._category, self._subtype, self._reason_code = cls.category, cls.subtype, obs.raw_code
        self._set_status(WithdrawalStatus.FAILED)
        self._notify(Stage.DETECTED, cls.category)

    def _returned(self, cls: Classification, obs: Observation) -> None:
        routed = workflow.patched(LIFECYCLE_ROUTES)
        if routed and not cls.mapped:
            # a return code we do not know: the user hears "returned", not a guessed cause
            self._category = ExceptionCategory.RETURNED_AFTER_SUCCESS
        else:
            self._category = cls.category if cls.category else ExceptionCategory.RETURNED_AFTER_SUCCESS
        self._subtype, self._reason_code = cls.subtype, obs.raw_code
        self._set_status(WithdrawalStatus.RETURNED)
        self._notify(Stage.RETURNED, self._category)
        if routed and route_return(cls, set(self._notice_policy.operator_alert_categories)):
            self._alert_operators(
                self._category, force=True, alert=f"bank return with code {obs.raw_code or '-'}"
            )

    def _to_review(self, cls: Classification, obs: Observation) -> None:
        self._category = cls.category or ExceptionCategory.RISK_HOLD
        self._subtype, self._reason_code = cls.subtype, obs.raw_code
        self._set_status(WithdrawalStatus.UNDER_REVIEW)
        self._notify(Stage.UNDER_REVIEW, self._category)  # R15: "under review" first

    async def _to_manual_check(
        self, cls: Classification | None, why: str, obs: Observation | None = None, variant: str | None = None
    ) -> None:
        if self._status == WithdrawalStatus.MANUAL_CHECK:
            return
        self._category = cls.category if cls and cls.category else ExceptionCategory.PLATFORM_ERROR
        self._subtype = cls.subtype if cls else "stuck"
        if obs is not None:
            self._reason_code = obs.raw_code
        self._set_status(WithdrawalStatus.MANUAL_CHECK)
        self._event(f"manual check: {why}", "workflow")
        self._next_poll_at = workflow.now() + timedelta(seconds=self._policy.poll_schedule_s[-1])
        self._notify(Stage.MANUAL_CHECK, self._category, variant=variant)
        self._alert_operators(self._category, force=True)

    async def _hold_for_risk(self, hits: list[RiskHit]) -> None:
        """Platform risk rules hit: hold before anything is paid, tell the user (R12, R15, R18)."""
        self._risk_hits = hits
        for hit in hits:
            self._event(f"risk rule {hit.rule_id} hit (rules {hit.rule_version})", "risk", hit.detail)
        self._category, self._subtype = ExceptionCategory.RISK_HOLD, "platform-rules"
        self._set_status(WithdrawalStatus.UNDER_REVIEW)
        documents = sorted({d for hit in hits for d in hit.documents})
        self._notify(Stage.UNDER_REVIEW, ExceptionCategory.RISK_HOLD, documents=documents)

    def _escalate_review(self) -> None:
        """No decision within the review SLA: a supervisor is alerted, the user told (R29)."""
        self._review_escalated = True
        waited = int(self._policy.review_sla_s)
        self._event(f"review not decided within {waited} s; escalated to a supervisor", "timer")
        self._notify(Stage.REVIEW_DELAYED, self._category, documents=self._awaiting_documents)
        self._alert_operators(self._category, force=True)

    def _documents_expired(self) -> None:
        self._event(
            "requested documents not received in time; cancelled",
            "timer",
            ", ".join(self._awaiting_documents),
        )
        documents = self._awaiting_documents
        self._awaiting_documents, self._documents_due = [], None
        self._set_status(WithdrawalStatus.FAILED)
        self._notify(Stage.DOCUMENTS_EXPIRED, self._category, documents=documents)

    def _alert_operators(
        self, category: ExceptionCategory | None, force: bool = False, alert: str | None = None
    ) -> None:
        if self._operators_alerted and not force:
            return
        self._operators_alerted = True
        if "ops_email" in self._available:
            self._notify(Stage.OPERATOR_ALERT, category, channels=["ops_email"], alert=alert)

    async def _apply_decision(self, decision: ReviewDecision) -> None:
        if not self._status.needs_human:
            self._event(
                f"review decision '{decision.decision}' by {decision.reviewer} ignored: {self._status.value}",
                "review",
            )
            return
        if await self._apply_review(decision) and decision.token is not None:
            await self._audit_decision(decision)

    async def _audit_decision(self, decision: ReviewDecision) -> None:
        """The audit row of an applied decision (who, role, what, why, the status after),
        once per token: the same row whether it came from the gateway, the CLI or a direct
        update (issue #11)."""
        claims = read_claims(decision.token)
        docs = f" (documents: {', '.join(decision.documents)})" if decision.documents else ""
        try:
            await workflow.execute_activity(
                "record_decision",
                DecisionAudit(
                    withdrawal_id=self._req.withdrawal_id,
                    actor=claims.reviewer,
                    role=claims.role,
                    action=f"review:{decision.decision}",
                    nonce=claims.nonce,
                    detail=f"{decision.reason}{docs} -> {self._status.value}"[:1000],
                ),
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=AUDIT_RETRY,
            )
        except ActivityError as err:
            self._event("could not write the audit row of the review decision", "review", str(err.cause))
            self._alert_operators(
                self._category,
                force=True,
                alert=f"The audit row of {claims.reviewer}'s {decision.decision} was not written.",
            )

    async def _apply_review(self, decision: ReviewDecision) -> bool:
        """Apply a decision to a case awaiting review; False when it is refused (the same
        reviewer approving twice)."""
        self._decisions.append(decision.model_copy(update={"token": None}))  # the token stays out of views
        self._event(f"review: {decision.decision} by {decision.reviewer}", "review", decision.reason)
        if decision.decision == "request_documents":
            self._awaiting_documents = list(decision.documents)
            self._documents_due = workflow.now() + timedelta(seconds=self._policy.documents_wait_s)
            self._notify(Stage.DOCUMENTS_REQUESTED, self._category, documents=decision.documents)
            return True
        if decision.decision == "reject":
            self._awaiting_documents, self._documents_due = [], None
            self._set_status(WithdrawalStatus.FAILED)
            self._notify(Stage.REJECTED, self._category)
            return True
        if self._four_eyes and not self._approvals:
            self._approvals.append(decision.reviewer)
            self._event(f"first approval by {decision.reviewer}; a second reviewer must approve", "review")
            return True
        if decision.reviewer in self._approvals:
            self._event(f"second approval by the same reviewer {decision.reviewer} refused", "review")
            return False
        self._approvals.append(decision.reviewer)
        # approve: release the payout. Never sent (platform risk rules): the first order number.
        # After a channel's risk hold the held order is dead, so a new order number; after a
        # manual check the same one (the channel deduplicates).
        self._notify(Stage.APPROVED, self._category)
        if self._submitted_once and self._status == WithdrawalStatus.UNDER_REVIEW:
            self._attempt += 1
            self._order_id = order_id_for(self._req.withdrawal_id, self._attempt)
        self._category = self._subtype = self._reason_code = None
        self._awaiting_documents, self._documents_due = [], None
        await self._submit()
        return True

    async def _close(self) -> None:
        """After the final state: keep listening for a bank return during the channel's
        window (after a success), and finish the notice work that outlives the final state
        (deferred sends, escalation ladders), then end."""
        if (
            self._status == WithdrawalStatus.SUCCEEDED
            and self._policy.return_watch_s > 0
            and self._watch_until is None
        ):
            self._watch_until = workflow.now() + timedelta(seconds=self._policy.return_watch_s)
        while True:
            await self._drain()
            if not self._status.is_final:
                self._watch_until = None  # reopened: a later success watches anew
                return
            await self._flush()
            await self._continue_as_new_if_long()
            if self._incoming or self._pending_decisions:
                continue
            deadlines = self._notice_deadlines()
            if self._watch_until is not None and self._status == WithdrawalStatus.SUCCEEDED:
                deadlines.append(self._watch_until)
            if not deadlines:
                pending = [t for t in self._tasks if not t.done()]
                if not pending:
                    return
                await asyncio.gather(*pending)  # a delivery may come back batched (folding): a new deadline
                continue
            now = workflow.now()
            wake = min(deadlines)
            if wake > now:
                try:
                    await workflow.wait_condition(
                        lambda: bool(self._incoming) or bool(self._pending_decisions) or self._poke,
                        timeout=wake - now,
                    )
                except TimeoutError:
                    pass
            if self._poke or self._incoming or self._pending_decisions:
                self._poke = False
                continue
            if self._watch_until is not None and workflow.now() >= self._watch_until:
                self._watch_until = None
            self._notice_timers()

    # --- notices ------------------------------------------------------------------------

    def _reachable(self, channel: str) -> bool:
        contact = self._req.contact
        if channel == "email":
            return bool(contact.email)
        if channel in ("sms", "voice"):
            return bool(contact.phone)
        return True

    def _notify(
        self,
        stage: Stage,
        category: ExceptionCategory | None,
        *,
        channels: list[str] | None = None,
        documents: list[str] | None = None,
        alert: str | None = None,
        variant: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Decide a notice: severity, rung-0 channels, escalation deadline; then send or
        defer each channel's delivery (R13, R21, R31)."""
        policy = self._notice_policy
        severity = policy.severity(category, stage)
        escalate_after = None
        if channels is None:
            channels = [c for c in policy.rung(severity, 0, self._available) if c != "ops_email"]
            escalate_after = policy.escalation_after(severity)
        channels = [c for c in channels if c in self._available and self._reachable(c)]
        seq = self._stage_seq.get(stage.value, 0) + 1
        self._stage_seq[stage.value] = seq
        now = workflow.now()
        record = NoticeRecord(
            key=f"{self._req.withdrawal_id}/{stage.value}/{seq}",
            stage=stage,
            category=category,
            severity=severity,
            status=self._status,
            channels=channels,
            at=now,
            escalate_at=now + timedelta(seconds=escalate_after) if escalate_after else None,
            documents=documents or [],
            alert=alert,
            variant=variant,
            retry_at=retry_at,
        )
        self._notices.append(record)
        if stage != Stage.OPERATOR_ALERT:
            self._severity = severity
            self._sa_dirty = self._progress_dirty = True
        if stage not in USER_STAGES_WITHOUT_EXCEPTION:
            self._exception_notified = True
            for c in channels:
                if c not in self._channels_used:
                    self._channels_used.append(c)
        for channel in channels:
            self._schedule(record, channel, 0)

    def _schedule(self, record: NoticeRecord, channel: str, rung: int) -> None:
        """Send now, or defer to the next opening of quiet / legal hours (never dropped)."""
        contact = self._req.contact
        now = workflow.now()
        at = self._notice_policy.send_at(channel, record.severity, now, contact.timezone, contact.phone)
        notice = NoticeRequest(
            key=f"{record.key}/{channel}" + (f"/r{rung}" if rung else ""),
            channel=channel,
            stage=record.stage,
            category=record.category,
            subtype=self._subtype,
            severity=record.severity,
            status=record.status,
            reason_code=self._reason_code,
            withdrawal=self._req,
            eta=self._eta,
            documents=record.documents,
            rung=rung,
            alert=record.alert,
            variant=record.variant,
            retry_at=record.retry_at,
        )
        if at <= now:
            self._tasks.append(asyncio.create_task(self._deliver(record, notice)))
            return
        record.deferred.append(f"{channel}@{at.isoformat()}")
        self._event(
            f"{record.stage.value} notice via {channel} deferred (quiet or legal hours)",
            "notice",
            at.isoformat(),
        )
        if not workflow.patched(FOLD_DEFERRED):
            self._deferred.append((at, record.key, notice))
            return
        after = self._notice_policy.escalation_after(record.severity)
        if record.escalate_at is not None and after:
            # the ladder counts from when the user can first get the notice, not from the night
            record.escalate_at = max(record.escalate_at, at + timedelta(seconds=after))
        fold = self._notice_policy.fold
        if fold is not None and channel in fold.channels:
            # held as batched in the delivery log: every notice of this user released at the
            # same moment (the end of quiet or legal hours) goes out as one message
            self._tasks.append(
                asyncio.create_task(self._deliver(record, notice.model_copy(update={"hold_until": at})))
            )
        else:
            self._deferred.append((at, record.key, notice))

    def _record(self, key: str) -> NoticeRecord:
        return next(r for r in self._notices if r.key == key)

    def _still_true(self, record: NoticeRecord) -> bool:
        """Re-check before a late send: the withdrawal is still where the notice says and
        nobody has read it yet."""
        return record.read_at is None and (
            record.status == self._status or record.stage == Stage.OPERATOR_ALERT
        )

    def _notice_deadlines(self) -> list[datetime]:
        return [at for at, _, _ in self._deferred] + [r.escalate_at for r in self._notices if r.escalate_at]

    def _notice_timers(self) -> None:
        now = workflow.now()
        due = [d for d in self._deferred if d[0] <= now]
        for entry in due:
            self._deferred.remove(entry)
            _, key, notice = entry
            record = self._record(key)
            if self._still_true(record):
                contact = self._req.contact
                at = self._notice_policy.send_at(
                    notice.channel, record.severity, now, contact.timezone, contact.phone
                )
                if at > now and workflow.patched(FOLD_DEFERRED):
                    # a fold window that ended outside quiet or legal hours: wait for the
                    # opening, held with the user's other notices released then
                    self._event(
                        f"{record.stage.value} notice via {notice.channel} deferred (quiet or legal hours)",
                        "notice",
                        at.isoformat(),
                    )
                    fold = self._notice_policy.fold
                    if fold is not None and notice.channel in fold.channels:
                        held = notice.model_copy(update={"hold_until": at})
                        self._tasks.append(asyncio.create_task(self._deliver(record, held)))
                    else:
                        self._deferred.append((at, key, notice))
                    continue
                self._tasks.append(asyncio.create_task(self._deliver(record, notice)))
            else:
                record.dropped.append(notice.channel)
                self._event(
                    f"deferred {record.stage.value} notice via {notice.channel} dropped: no longer true",
                    "notice",
                    self._status.value,
                )
        for record in self._notices:
            if record.escalate_at is not None and record.escalate_at <= now:
                self._escalate(record)

    def _escalate(self, record: NoticeRecord) -> None:
        """Unread past the deadline: the next rung of the ladder (R21), if still true."""
        record.escalate_at = None
        if not self._still_true(record):
            self._event(f"escalation of {record.stage.value} notice cancelled: no longer true", "notice")
            return
        record.rung += 1
        channels = [
            c
            for c in self._notice_policy.rung(record.severity, record.rung, self._available)
            if self._reachable(c)
        ]
        self._event(
            f"{record.stage.value} notice unread; escalating to rung {record.rung}",
            "notice",
            ", ".join(channels) or "no channel available",
        )
        for channel in channels:
            if channel not in record.channels:
                record.channels.append(channel)
            self._schedule(record, channel, record.rung)
        after = self._notice_policy.escalation_after(record.severity)
        more = self._notice_policy.rung(record.severity, record.rung + 1, self._available)
        if after and more:
            record.escalate_at = workflow.now() + timedelta(seconds=after)

    @workflow.signal
    def notice_read(self, ack: NoticeAck) -> None:
        """The user read or acknowledged a notice on any channel: every pending ladder of
        this withdrawal stops, and deferred copies of what was read are not sent (R21)."""
        record = next((r for r in self._notices if ack.key == r.key or ack.key.startswith(r.key + "/")), None)
        if record is None:
            self._event("read receipt for an unknown notice ignored", ack.channel, ack.key)
            return
        if record.read_at is None:
            record.read_at = workflow.now()
            self._event(f"{record.stage.value} notice read via {ack.channel}", ack.channel)
        for r in self._notices:
            if r.escalate_at is not None:
                r.escalate_at = None
                self._event(f"escalation of {r.stage.value} notice stopped: the user has read it", "notice")
        self._poke = True

    async def _deliver(self, record: NoticeRecord, notice: NoticeRequest) -> None:
        retry = self._notice_policy.retry
        give_up_s = retry.give_up_after(notice.channel)
        try:
            result = await workflow.execute_activity(
                "deliver_notice",
                notice,
                result_type=DeliveryResult,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(seconds=give_up_s),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=retry.initial_interval_s),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=retry.max_interval_s),
                    maximum_attempts=0,
                    non_retryable_error_types=NOTICE_NON_RETRYABLE,
                ),
            )
        except ActivityError as err:
            await self._given_up(record, notice, err, give_up_s)
            return
        if result.status in ("sent", "duplicate"):
            record.delivered.append(notice.channel)
        elif result.status == "batched" and result.send_at is not None:
            # folding: the user just got a notice about another withdrawal on this channel, or
            # this one waits for the end of quiet or legal hours; it goes out with the user's
            # others released at the same moment (one message)
            self._deferred.append(
                (result.send_at, record.key, notice.model_copy(update={"hold_until": None}))
            )
            if notice.hold_until is None:
                record.deferred.append(f"{notice.channel}@{result.send_at.isoformat()}")
                self._event(
                    f"{notice.stage.value} notice via {notice.channel} batched to fold with the user's others",
                    "notice",
                    result.send_at.isoformat(),
                )
            self._poke = True
        elif result.status == "folded":
            record.delivered.append(notice.channel)
            self._event(
                f"{notice.stage.value} notice via {notice.channel} folded into one message",
                "notice",
                result.detail,
            )
        else:
            record.suppressed.append(notice.channel)
            self._event(
                f"{notice.stage.value} notice via {notice.channel} {result.status}", "notice", result.detail
            )

    async def _given_up(
        self, record: NoticeRecord, notice: NoticeRequest, err: ActivityError, give_up_s: float
    ) -> None:
        """A notice could not be delivered: retried until the channel's give-up time, or
        refused for good. The delivery log says so, and operators are alerted (the inbox
        still has the notice)."""
        record.failed.append(notice.channel)
        cause = err.cause
        if isinstance(cause, GaveUp) or err.retry_state == RetryState.TIMEOUT:
            why = (
                f"not delivered within {int(give_up_s // 3600) or 1} h of retries"
                if give_up_s >= 3600
                else f"not delivered within {int(give_up_s)} s of retries"
            )
        else:
            why = f"refused: {cause}" if cause is not None else str(err)
        why = why[:200]
        self._event(f"{notice.stage.value} notice via {notice.channel} given up", "notice", why)
        try:
            await workflow.execute_activity(
                "give_up_notice",
                NoticeGivenUp(key=notice.key, reason=why),
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=20),
            )
        except ActivityError as mark_err:
            self._event(
                "could not mark the notice given up in the delivery log", "notice", str(mark_err.cause)
            )
        if notice.channel != "ops_email" and notice.stage != Stage.OPERATOR_ALERT:
            self._alert_operators(
                self._category,
                force=True,
                alert=f"The {notice.stage.value} notice via {notice.channel} was given up: {why}.",
            )
            self._poke = True

    # --- bookkeeping --------------------------------------------------------------------

    def _event(self, what: str, source: str, detail: str | None = None) -> None:
        self._timeline.append(TimelineEvent(at=workflow.now(), what=what, source=source, detail=detail))

    def _set_status(self, status: WithdrawalStatus) -> None:
        if status == self._status:
            return
        if status.needs_human and not self._status.needs_human:
            self._review_since = workflow.now()
            self._review_escalated = False
            self._approvals = []
        self._status = status
        self._event(f"status {status.value}", "workflow")
        self._sa_dirty = True
        self._progress_dirty = True

    async def _flush(self) -> None:
        """Write what changed since the last flush: one search-attribute upsert and one
        projection update (a local activity), however many changes there were."""
        self._flush_search_attributes()
        if not self._progress_dirty and not self._parked_to_mark:
            return
        self._progress_dirty = False
        parked, self._parked_to_mark = self._parked_to_mark, []
        await workflow.execute_local_activity(
            "record_progress",
            ProgressUpdate(
                withdrawal_id=self._req.withdrawal_id,
                status=self._status,
                category=self._category,
                severity=self._severity,
                reason_code=self._reason_code,
                needs_review=self._status.needs_human,
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
        wanted = [
            (sa.WITHDRAWAL_STATUS, self._status.value),
            (sa.CHANNEL, self._req.channel),
            (sa.BANK_CODE, self._req.bank_code),
            (sa.SEVERITY, self._severity.value),
            (sa.NEEDS_REVIEW, self._status.needs_human),
            (sa.EXCEPTION_CATEGORY, self._category.value if self._category else None),
        ]
        current = workflow.info().typed_search_attributes
        updates = []
        for key, value in wanted:
            if current.get(key) == value:
                continue
            updates.append(key.value_set(value) if value is not None else key.value_unset())
        if updates:
            workflow.upsert_search_attributes(updates)

    def _view(self) -> WithdrawalView:
        r = self._req
        return WithdrawalView(
            withdrawal_id=r.withdrawal_id,
            user_id=r.user_id,
            amount=r.amount,
            currency=r.currency,
            channel=r.channel,
            bank_code=r.bank_code,
            card_last4=r.card_last4,
            status=self._status,
            category=self._category,
            subtype=self._subtype,
            severity=self._severity,
            reason_code=self._reason_code,
            order_id=self._order_id,
            attempt=self._attempt,
            needs_review=self._status.needs_human,
            next_step=next_step(self._status, self._category),
            eta=self._eta,
            timeline=list(self._timeline),
            notices=list(self._notices),
            decisions=list(self._decisions),
            risk_hits=list(self._risk_hits),
            four_eyes=self._four_eyes,
            approvals=list(self._approvals),
            awaiting_documents=list(self._awaiting_documents),
            review_since=self._review_since if self._status.needs_human else None,
            policy_version=self._policy_version,
        )
