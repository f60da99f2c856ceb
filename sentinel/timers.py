"""When each lifecycle timer of a withdrawal is due (pure; R10, R23, R29). The workflow
sleeps until ``next_wake`` and then fires ``due_timers`` in order through
``sentinel.transitions.step``."""

from __future__ import annotations

from datetime import datetime, timedelta

from sentinel.models import TrackingPolicy
from sentinel.taxonomy import WithdrawalStatus
from sentinel.transition_types import LifecycleState, Timer

_S = WithdrawalStatus


def poll_due(s: LifecycleState) -> datetime | None:
    """The next status query, while the order is live and not waiting to be sent again."""
    if s.resend_at is not None:
        return None  # the last order was refused: nothing to ask about until it is sent again
    if s.status in (_S.PROCESSING, _S.DELAYED, _S.MANUAL_CHECK):
        return s.next_poll_at
    return None


def alarm_due(s: LifecycleState, p: TrackingPolicy) -> datetime | None:
    """The delay threshold plus the grace period (R23: a short blip raises no alarm); a
    channel that says the bank is slow starts the grace period at once."""
    if s.status != _S.PROCESSING or s.delay_notified or s.submitted_at is None:
        return None
    since = s.submitted_at + timedelta(seconds=p.delay_threshold_s)
    if s.delay_since is not None:
        since = min(since, s.delay_since)
    return since + timedelta(seconds=p.grace_s)


def manual_due(s: LifecycleState, p: TrackingPolicy) -> datetime | None:
    """The second threshold: still not final, a person checks."""
    if s.status not in (_S.PROCESSING, _S.DELAYED) or s.submitted_at is None:
        return None
    if s.resend_fresh:
        return None  # waiting for a limit to reset: the manual check counts from the resend
    return s.submitted_at + timedelta(seconds=p.manual_check_s)


def review_due(s: LifecycleState, p: TrackingPolicy) -> datetime | None:
    """The review SLA (R29); paused while the user's documents are awaited."""
    if not s.status.needs_human or s.review_escalated or s.review_since is None:
        return None
    if s.awaiting_documents:
        return None  # the clock is the user's, not the reviewer's
    return s.review_since + timedelta(seconds=p.review_sla_s)


def documents_due(s: LifecycleState) -> datetime | None:
    return s.documents_due if s.awaiting_documents else None


def deadlines(s: LifecycleState, p: TrackingPolicy) -> list[datetime]:
    return [
        d
        for d in (
            poll_due(s),
            alarm_due(s, p),
            manual_due(s, p),
            review_due(s, p),
            s.documents_due,
            s.resend_at,
        )
        if d is not None
    ]


def next_wake(s: LifecycleState, p: TrackingPolicy, others: list[datetime] | None = None) -> datetime | None:
    """The earliest lifecycle deadline, or of ``others`` (the notice timers)."""
    every = deadlines(s, p) + (others or [])
    return min(every) if every else None


def due_timers(s: LifecycleState, p: TrackingPolicy, now: datetime) -> tuple[Timer, ...]:
    """The timers due at ``now``, in the order they fire. An expired documents wait or a
    resend acts alone; the manual check wins over the delay alarm; a status query comes
    last (it fires if still armed after the others)."""
    if s.documents_due is not None and now >= s.documents_due and s.awaiting_documents:
        return (Timer.DOCUMENTS_EXPIRY,)
    if s.resend_at is not None and now >= s.resend_at:
        return (Timer.RESEND,)
    fired: list[Timer] = []
    review = review_due(s, p)
    if review is not None and now >= review:
        fired.append(Timer.REVIEW_SLA)
    manual, alarm, poll = manual_due(s, p), alarm_due(s, p), poll_due(s)
    if manual is not None and now >= manual:
        fired.append(Timer.MANUAL_CHECK)
    elif alarm is not None and now >= alarm:
        fired.append(Timer.DELAY_ALARM)
    if poll is not None and now >= poll:
        fired.append(Timer.POLL)
    return tuple(fired)
