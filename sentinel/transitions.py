"""The lifecycle of a withdrawal as a pure, total function (issue #10 item 1; R5, R10,
R11, R13, R15, R18, R23, R29):

    step(state, event, policy, now) -> Transition

``event`` is an answer of the channel, a timer firing, a review decision, documents
uploaded, a notice read, or a notice or audit write given up (sentinel/transition_types.py).
The transition holds the state after it and the actions to carry out in order: notices
with the facts they state, operator alerts, submissions, status queries, and the moments
the next thing is due. Every (status, event) pair gets a transition; one that changes
nothing says why (``ignored``). The workflow (workflows/withdrawal.py) keeps the handlers,
the loop and the activity calls; what a failing answer means is sentinel/lifecycle.py's.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sentinel.models import Classification, Observation, TrackingPolicy
from sentinel.orders import order_id_for
from sentinel.taxonomy import ExceptionCategory, Fixer, PayoutState, RetryDecision, Stage, WithdrawalStatus
from sentinel.timers import alarm_due, due_timers, manual_due, next_wake, poll_due, review_due
from sentinel.transition_answers import MAX_SAME_ORDER_RESUBMITS, Answers
from sentinel.transition_types import (
    Answer,
    Audit,
    AuditFailed,
    Decided,
    DeliveryGaveUp,
    DocumentsUploaded,
    Event,
    LifecycleState,
    NoticeRead,
    OpenReview,
    QueryNow,
    Started,
    StopEscalations,
    Timer,
    TimerFired,
    Transition,
    WaitUntil,
)

__all__ = ["step", "asks_routes", "due_timers", "next_wake", "submit_unconfirmed", "MAX_SAME_ORDER_RESUBMITS"]

_S = WithdrawalStatus
_C = ExceptionCategory


def step(
    state: LifecycleState,
    event: Event,
    policy: TrackingPolicy | None,
    now: datetime,
    alert_categories: frozenset[ExceptionCategory] = frozenset(),
) -> Transition:
    """The transition ``event`` makes from ``state`` at ``now``. ``alert_categories``: the
    categories whose refusals also page operations (the notice policy's data). ``policy``
    is None only before tracking started (no timer, answer or decision is handled then)."""
    run = _Run(replace(state), policy, now, alert_categories)
    ignored = run.on(event)
    return Transition(run.s, tuple(run.actions), ignored)


def asks_routes(state: LifecycleState, obs: Observation) -> bool:
    """Whether the answer's transition depends on ``Answer.routes``: a refusal or a return
    that passes the duplicate checks. The workflow asks its patch only then, where the
    code before the lifecycle function asked it."""
    if obs.event_id and obs.event_id in state.seen_events or obs.order_id != state.order_id:
        return False
    st = obs.classification.state
    if state.status.is_final:
        return state.status == _S.SUCCEEDED and st in (PayoutState.RETURNED, PayoutState.FAILED)
    answer = (obs.raw_status, obs.raw_code or "", st.value)
    if answer == state.last_answer:
        return False
    return st in (PayoutState.FAILED, PayoutState.CANCELLED, PayoutState.RETURNED)


def submit_unconfirmed(order_id: str, channel: str, rejected: bool, now: datetime) -> Observation:
    """The answer a submission gets when the channel never confirmed it: refused as
    malformed (``rejected``: our integration, operations fix it), or no answer (unknown:
    query before anything else, R5)."""
    if rejected:
        cls = Classification(
            state=PayoutState.FAILED,
            category=_C.PLATFORM_ERROR,
            subtype="integration",
            retry=RetryDecision.AFTER_OPS_FIX,
            fixer=Fixer.OPERATIONS,
        )
    else:
        cls = Classification(
            state=PayoutState.UNKNOWN,
            category=_C.PLATFORM_ERROR,
            subtype="submit-unanswered",
            retry=RetryDecision.QUERY_FIRST,
            fixer=Fixer.NOBODY,
        )
    return Observation(
        order_id=order_id,
        source="submit",
        channel=channel,
        raw_status="REJECTED_REQUEST" if rejected else "NO_ANSWER",
        classification=cls,
        observed_at=now,
    )


class _Run(Answers):
    """One step: answers (sentinel/transition_answers.py), the start, timers and people."""

    # --- dispatch ---------------------------------------------------------------------

    def on(self, event: Event) -> str | None:
        if isinstance(event, Started):
            return self.started(event)
        if isinstance(event, Answer):
            return self.answer(event)
        if isinstance(event, TimerFired):
            return self.timer(event.timer)
        if isinstance(event, Decided):
            return self.decided(event)
        if isinstance(event, DocumentsUploaded):
            return self.documents_uploaded(event)
        if isinstance(event, NoticeRead):
            self.actions.append(StopEscalations())
            return None
        if isinstance(event, DeliveryGaveUp):
            if event.channel == "ops_email" or event.stage == Stage.OPERATOR_ALERT:
                return "an operator alert that was not delivered pages nobody again"
            self.alert(
                self.s.category,
                force=True,
                alert=f"The {event.stage.value} notice via {event.channel} was given up: {event.why}.",
            )
            return None
        if isinstance(event, AuditFailed):
            self.alert(
                self.s.category,
                force=True,
                alert=f"The audit row of {event.reviewer}'s {event.decision} was not written.",
            )
            return None
        raise TypeError(f"not a lifecycle event: {event!r}")  # pragma: no cover - the union is closed

    # --- start ----------------------------------------------------------------------

    def started(self, event: Started) -> str | None:
        if self.s.submitted_once or self.s.status != _S.SUBMITTED:
            return f"already started ({self.s.status.value})"
        if not event.risk_hits:
            self.submit()
            return None
        for hit in event.risk_hits:  # platform risk rules: hold before anything is paid (R12, R15, R18)
            self.log(f"risk rule {hit.rule_id} hit (rules {hit.rule_version})", "risk", hit.detail)
        self.s.category, self.s.subtype = _C.RISK_HOLD, "platform-rules"
        self.set_status(_S.UNDER_REVIEW)
        self.actions.append(OpenReview("risk"))
        documents = sorted({d for hit in event.risk_hits for d in hit.documents})
        self.notify(Stage.UNDER_REVIEW, _C.RISK_HOLD, documents=documents)
        return None

    # --- timers -----------------------------------------------------------------------

    def timer(self, timer: Timer) -> str | None:
        """A timer fired; it acts only if it is still armed in this state."""
        s, p, now = self.s, self.p, self.now
        if timer == Timer.DOCUMENTS_EXPIRY:
            if s.documents_due is None or not s.awaiting_documents:
                return "no documents are awaited"
            self.log(
                "requested documents not received in time; cancelled",
                "timer",
                ", ".join(s.awaiting_documents),
            )
            documents = s.awaiting_documents
            s.awaiting_documents, s.documents_due = (), None
            self.set_status(_S.FAILED)
            self.notify(Stage.DOCUMENTS_EXPIRED, s.category, documents=documents)
        elif timer == Timer.RESEND:
            if s.resend_at is None:
                return "no resend is scheduled"
            self.resend()
        elif timer == Timer.REVIEW_SLA:
            if review_due(s, p) is None:
                return "no review clock runs"
            s.review_escalated = True  # no decision within the SLA: a supervisor, and the user told (R29)
            self.log(f"review not decided within {int(p.review_sla_s)} s; escalated to a supervisor", "timer")
            self.notify(Stage.REVIEW_DELAYED, s.category, documents=s.awaiting_documents)
            self.alert(s.category, force=True)
        elif timer == Timer.MANUAL_CHECK:
            if manual_due(s, p) is None:
                return "no manual-check clock runs"
            self.to_manual_check(None, f"no final answer after {int(p.manual_check_s)} s")
        elif timer == Timer.DELAY_ALARM:
            if alarm_due(s, p) is None:
                return "no delay alarm is armed"
            s.delay_notified, s.category = True, _C.BANK_DELAY
            s.eta = now + timedelta(hours=p.eta_hours)
            self.set_status(_S.DELAYED)
            self.log("delay confirmed after the grace period", "timer")
            if s.resend_at is not None:  # refused and sent again later: say so, not "with the bank"
                self.notify(Stage.DELAYED, _C.BANK_DELAY, variant="RETRYING", retry_at=s.resend_at)
            else:
                self.notify(Stage.DELAYED, _C.BANK_DELAY)
        else:  # Timer.POLL
            if poll_due(s) is None:
                return "nothing to ask the channel"
            schedule = p.poll_schedule_s
            if s.status == _S.MANUAL_CHECK:
                wait = schedule[-1]
            else:
                s.poll_index += 1
                wait = schedule[min(s.poll_index, len(schedule) - 1)]
            s.next_poll_at = now + timedelta(seconds=wait)
            self.actions.append(QueryNow(s.order_id, s.next_poll_at))
        return None

    def resend(self) -> None:
        """Send the refused payout again. The earlier order is final (refused), so the new
        one is the next attempt number: never two live orders for one withdrawal."""
        s = self.s
        fresh = s.resend_fresh
        s.resend_at, s.resend_fresh = None, False
        s.attempt += 1
        s.order_id = order_id_for(s.withdrawal_id, s.attempt)
        self.log(f"sending the payout again as {s.order_id}", "workflow")
        kept = (s.submitted_at, s.delay_notified, s.delay_since)
        was_delayed = s.status == _S.DELAYED and not fresh
        self.submit()
        if not fresh:  # the thresholds keep counting from the first submission; a delay told stays told
            s.submitted_at, s.delay_notified, s.delay_since = kept
            if was_delayed:
                self.set_status(_S.DELAYED)

    # --- people -----------------------------------------------------------------------

    def decided(self, event: Decided) -> str | None:
        s, d = self.s, event.decision
        if not s.status.needs_human:
            self.log(f"review decision '{d.decision}' by {d.reviewer} ignored: {s.status.value}", "review")
            return f"not awaiting review ({s.status.value})"
        self.log(f"review: {d.decision} by {d.reviewer}", "review", d.reason)
        if not self.review(event):
            return "the same reviewer approved already (four-eyes)"
        if d.token is not None:
            self.actions.append(Audit(d))
        return None

    def review(self, event: Decided) -> bool:
        """Apply a decision to a case awaiting review; False when it is refused (the same
        reviewer approving twice)."""
        s, d = self.s, event.decision
        if d.decision == "request_documents":
            s.awaiting_documents = tuple(d.documents)
            s.documents_due = self.now + timedelta(seconds=self.p.documents_wait_s)
            self.actions.append(WaitUntil(s.documents_due, "the user's documents"))
            self.notify(Stage.DOCUMENTS_REQUESTED, s.category, documents=d.documents)
            return True
        if d.decision == "reject":
            s.awaiting_documents, s.documents_due = (), None
            self.set_status(_S.FAILED)
            self.notify(Stage.REJECTED, s.category)
            return True
        if s.four_eyes and not s.approvals:
            s.approvals = (d.reviewer,)
            self.log(f"first approval by {d.reviewer}; a second reviewer must approve", "review")
            return True
        if d.reviewer in s.approvals:
            self.log(f"second approval by the same reviewer {d.reviewer} refused", "review")
            return False
        s.approvals = (*s.approvals, d.reviewer)
        # approve: release the payout. Never sent (platform risk rules): the first order number.
        # After a channel's risk hold the held order is dead, so a new order number; after a
        # manual check the same one (the channel deduplicates).
        self.notify(Stage.APPROVED, s.category)
        if s.submitted_once and s.status == _S.UNDER_REVIEW:
            s.attempt += 1
            s.order_id = order_id_for(s.withdrawal_id, s.attempt)
        s.category = s.subtype = s.reason_code = None
        s.awaiting_documents, s.documents_due = (), None
        self.submit()
        return True

    def documents_uploaded(self, event: DocumentsUploaded) -> str | None:
        s = self.s
        if not s.awaiting_documents:
            self.log(
                "documents received while none were requested; kept for the reviewer",
                "user",
                ", ".join(event.documents),
            )
            return "no documents were requested"
        self.log(f"documents uploaded: {', '.join(event.documents)}", "user", event.reference)
        s.awaiting_documents, s.documents_due = (), None
        s.review_since, s.review_escalated = self.now, False  # back in the queue
        return None
