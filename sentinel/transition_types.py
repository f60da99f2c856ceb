"""The vocabulary of the lifecycle function (``sentinel/transitions.py``): the state it
reads, the events it is given, the actions it asks for and the transition it returns.
Frozen values, no I/O (issue #10 item 1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sentinel.models import Observation, ReviewDecision, RiskHit
from sentinel.taxonomy import ExceptionCategory, Stage, WithdrawalStatus

# --- state ----------------------------------------------------------------------------


@dataclass
class LifecycleState:
    """What the lifecycle decides by: the withdrawal's status and its clocks. The workflow
    keeps it inside its one state model (workflows/state.py) and hands it over per event.
    ``step`` never changes the one it is given (it works on a copy; every container here is
    immutable), so a transition can be computed, compared and thrown away."""

    withdrawal_id: str
    status: WithdrawalStatus = WithdrawalStatus.SUBMITTED
    category: ExceptionCategory | None = None
    subtype: str | None = None
    reason_code: str | None = None
    attempt: int = 1
    order_id: str = ""
    eta: datetime | None = None
    # per submission
    submitted_at: datetime | None = None
    delay_since: datetime | None = None
    delay_notified: bool = False
    next_poll_at: datetime | None = None
    poll_index: int = 0
    same_order_resubmits: int = 0
    submitted_once: bool = False
    last_answer: tuple[str, str, str] | None = None
    seen_events: frozenset[str] = frozenset()
    # review
    four_eyes: bool = False
    approvals: tuple[str, ...] = ()
    review_since: datetime | None = None
    review_escalated: bool = False
    awaiting_documents: tuple[str, ...] = ()
    documents_due: datetime | None = None
    # resends after a refusal (sentinel/lifecycle.py)
    resend_at: datetime | None = None
    resend_fresh: bool = False
    resends: int = 0
    limit_waits: int = 0
    # notices already given
    exception_notified: bool = False
    operators_alerted: bool = False


# --- events ---------------------------------------------------------------------------


class Timer(StrEnum):
    """The lifecycle's timers (the notice timers, deferred sends and escalation ladders,
    are the notice scheduler's: workflows/notices.py)."""

    DOCUMENTS_EXPIRY = "DOCUMENTS_EXPIRY"
    RESEND = "RESEND"
    REVIEW_SLA = "REVIEW_SLA"
    MANUAL_CHECK = "MANUAL_CHECK"
    DELAY_ALARM = "DELAY_ALARM"
    POLL = "POLL"


@dataclass(frozen=True)
class Started:
    """Tracking began; ``risk_hits``: the platform's risk rules the withdrawal hit (R12)."""

    risk_hits: tuple[RiskHit, ...] = ()


@dataclass(frozen=True)
class Answer:
    """An observation of the channel (callback, poll, or a submission's own answer).
    ``routes``: refusals are routed by sentinel/lifecycle.py (the workflow's patch
    ``lifecycle-routes``; False only when replaying a history from before it)."""

    obs: Observation
    routes: bool = True


@dataclass(frozen=True)
class TimerFired:
    timer: Timer


@dataclass(frozen=True)
class Decided:
    """A reviewer's decision, its token already verified by the workflow."""

    decision: ReviewDecision


@dataclass(frozen=True)
class DocumentsUploaded:
    documents: tuple[str, ...]
    reference: str


@dataclass(frozen=True)
class NoticeRead:
    """The user read a notice: every pending escalation ladder stops (R21)."""

    stage: Stage


@dataclass(frozen=True)
class DeliveryGaveUp:
    """A notice could not be delivered (retried until its give-up time, or refused)."""

    stage: Stage
    channel: str
    why: str


@dataclass(frozen=True)
class AuditFailed:
    """The audit row of an applied review decision could not be written."""

    reviewer: str
    decision: str


Event = (
    Started | Answer | TimerFired | Decided | DocumentsUploaded | NoticeRead | DeliveryGaveUp | AuditFailed
)

#: every kind of event, for the totality test (one example each is built there)
EVENT_KINDS: tuple[type, ...] = (
    Started,
    Answer,
    TimerFired,
    Decided,
    DocumentsUploaded,
    NoticeRead,
    DeliveryGaveUp,
    AuditFailed,
)

# --- actions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Log:
    """A line of the withdrawal's timeline."""

    what: str
    source: str
    detail: str | None = None


@dataclass(frozen=True)
class Notify:
    """A notice to send, with the facts it states (the status, reason and schedule as they
    are when it is decided). ``to_used``: on the channels the user was told on before;
    ``channels``: exactly these; neither: the notice policy's first rung."""

    stage: Stage
    category: ExceptionCategory | None
    status: WithdrawalStatus
    subtype: str | None = None
    reason_code: str | None = None
    eta: datetime | None = None
    variant: str | None = None
    retry_at: datetime | None = None
    documents: tuple[str, ...] = ()
    alert: str | None = None
    to_used: bool = False
    channels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class AlertOperators:
    """Page operations (ops e-mail, where available) with this alert notice."""

    notice: Notify


@dataclass(frozen=True)
class Submit:
    """Send the payout now under ``order_id`` (``same_order``: the identical request again,
    the channel never got it). The submission's answer comes back as an ``Answer``."""

    order_id: str
    same_order: bool = False


@dataclass(frozen=True)
class QueryNow:
    """Ask the channel for the order's status now; the next query is due at ``next_at``."""

    order_id: str
    next_at: datetime


@dataclass(frozen=True)
class QueryAt:
    """The next status query is due at ``at`` (kept in the state: ``next_poll_at``)."""

    at: datetime


@dataclass(frozen=True)
class ResubmitAt:
    """The refused payout is sent again at ``at`` as ``order_id`` (the next attempt)."""

    at: datetime
    order_id: str


@dataclass(frozen=True)
class WaitUntil:
    """Nothing happens before ``at`` unless an answer or a person comes first."""

    at: datetime
    why: str


@dataclass(frozen=True)
class OpenManualCheck:
    why: str


@dataclass(frozen=True)
class OpenReview:
    queue: str  # "risk" or "compliance"


@dataclass(frozen=True)
class StopEscalations:
    """Every pending escalation ladder of this withdrawal stops."""


@dataclass(frozen=True)
class Audit:
    """Write the audit row of the decision just applied (once per token)."""

    decision: ReviewDecision


Action = (
    Log
    | Notify
    | AlertOperators
    | Submit
    | QueryNow
    | QueryAt
    | ResubmitAt
    | WaitUntil
    | OpenManualCheck
    | OpenReview
    | StopEscalations
    | Audit
)


@dataclass(frozen=True)
class Transition:
    """The state after an event and the actions to carry out, in order. ``ignored``: why
    nothing changed (a duplicate, a late answer, a decision that does not apply)."""

    state: LifecycleState
    actions: tuple[Action, ...] = field(default_factory=tuple)
    ignored: str | None = None

    @property
    def status(self) -> WithdrawalStatus:
        return self.state.status

    @property
    def category(self) -> ExceptionCategory | None:
        return self.state.category

    def of(self, kind: type) -> list[Action]:
        """The actions of one kind, in order (for tests and the route table)."""
        return [a for a in self.actions if isinstance(a, kind)]
