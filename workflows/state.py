"""The workflow's one state model (``CarriedState``, sentinel/contracts.py) and its
lifecycle part handed to the pure lifecycle function (sentinel/transitions.py); the
activity options and patch ids the workflow modules share."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from sentinel.contracts import CarriedState
    from sentinel.models import WithdrawalRequest, WithdrawalView
    from sentinel.policy import next_step
    from sentinel.transition_types import LifecycleState

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
#: the audit row of an applied decision: retried for about a quarter of an hour, then an
#: operator alert (the decision itself stands)
AUDIT_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=20)

#: patch id: deferred notices on folded channels are held as batched (one message at the
#: end of quiet or legal hours), fold windows ending at night wait for morning
FOLD_DEFERRED = "fold-deferred-notices"
#: patch id: a failing answer is routed by sentinel/lifecycle.py (resends, limit waits,
#: operations fixes, compliance review) instead of ending FAILED or in a manual check
LIFECYCLE_ROUTES = "lifecycle-routes"
#: patch id: a review decision sent as a signal applies only with a valid decision token
#: (issue #11); histories from before it applied unsigned ones
SIGNED_DECISIONS = "signed-review-decisions"

#: the fields the lifecycle reads and writes, under the same names in both models
_SAME = (
    "status",
    "category",
    "subtype",
    "reason_code",
    "attempt",
    "order_id",
    "eta",
    "submitted_at",
    "delay_since",
    "delay_notified",
    "next_poll_at",
    "poll_index",
    "same_order_resubmits",
    "submitted_once",
    "four_eyes",
    "review_since",
    "review_escalated",
    "documents_due",
    "resend_at",
    "resend_fresh",
    "resends",
    "limit_waits",
    "exception_notified",
    "operators_alerted",
)


def lifecycle_of(s: CarriedState, withdrawal_id: str) -> LifecycleState:
    """The lifecycle part of the workflow's state."""
    last = s.last_answer
    return LifecycleState(
        withdrawal_id=withdrawal_id,
        approvals=tuple(s.approvals),
        awaiting_documents=tuple(s.awaiting_documents),
        last_answer=(str(last[0]), str(last[1]), str(last[2])) if last else None,
        seen_events=frozenset(s.seen_events),
        **{name: getattr(s, name) for name in _SAME},
    )


def store(s: CarriedState, life: LifecycleState) -> None:
    """Write a transition's state back into the workflow's state."""
    for name in _SAME:
        setattr(s, name, getattr(life, name))
    s.approvals = list(life.approvals)
    s.awaiting_documents = list(life.awaiting_documents)
    s.last_answer = list(life.last_answer) if life.last_answer else None
    if len(life.seen_events) != len(s.seen_events):
        s.seen_events = sorted(life.seen_events)


def view_of(req: WithdrawalRequest, s: CarriedState) -> WithdrawalView:
    """The status query's answer: the withdrawal as operators and support see it."""
    return WithdrawalView(
        withdrawal_id=req.withdrawal_id,
        user_id=req.user_id,
        amount=req.amount,
        currency=req.currency,
        channel=req.channel,
        bank_code=req.bank_code,
        card_last4=req.card_last4,
        status=s.status,
        category=s.category,
        subtype=s.subtype,
        severity=s.severity,
        reason_code=s.reason_code,
        order_id=s.order_id,
        attempt=s.attempt,
        needs_review=s.status.needs_human,
        next_step=next_step(s.status, s.category),
        eta=s.eta,
        timeline=list(s.timeline),
        notices=list(s.notices),
        decisions=list(s.decisions),
        risk_hits=list(s.risk_hits),
        four_eyes=s.four_eyes,
        approvals=list(s.approvals),
        awaiting_documents=list(s.awaiting_documents),
        review_since=s.review_since if s.status.needs_human else None,
        policy_version=s.policy_version,
    )
