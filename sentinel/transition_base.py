"""Building blocks of one lifecycle step (sentinel/transitions.py): the state copy, the
ordered actions, and the moves every path shares (status, notices, alerts, submission)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sentinel.models import TrackingPolicy
from sentinel.taxonomy import ExceptionCategory, Stage, WithdrawalStatus
from sentinel.transition_types import Action, AlertOperators, LifecycleState, Log, Notify, QueryAt, Submit

_S = WithdrawalStatus
#: notices that do not count as "the user was told of an exception"
USER_STAGES_WITHOUT_EXCEPTION = frozenset({Stage.RESOLVED, Stage.APPROVED, Stage.OPERATOR_ALERT})


class Base:
    """One step: a copy of the state changed in place and the actions in order."""

    def __init__(
        self,
        s: LifecycleState,
        policy: TrackingPolicy | None,
        now: datetime,
        alert_categories: frozenset[ExceptionCategory],
    ) -> None:
        self.s, self.policy, self.now, self.alert_categories = s, policy, now, alert_categories
        self.actions: list[Action] = []

    @property
    def p(self) -> TrackingPolicy:
        """The tracking policy; only documents and read receipts can come before it is known."""
        if self.policy is None:
            raise ValueError("tracking has not started: no tracking policy yet")
        return self.policy

    # --- building blocks --------------------------------------------------------------

    def log(self, what: str, source: str, detail: str | None = None) -> None:
        self.actions.append(Log(what, source, detail))

    def set_status(self, status: WithdrawalStatus) -> None:
        s = self.s
        if status == s.status:
            return
        if status.needs_human and not s.status.needs_human:
            s.review_since, s.review_escalated, s.approvals = self.now, False, ()
        s.status = status
        self.log(f"status {status.value}", "workflow")

    def notice(
        self,
        stage: Stage,
        category: ExceptionCategory | None,
        *,
        variant: str | None = None,
        retry_at: datetime | None = None,
        documents: Sequence[str] = (),
        alert: str | None = None,
        to_used: bool = False,
        channels: tuple[str, ...] | None = None,
    ) -> Notify:
        s = self.s
        return Notify(
            stage=stage,
            category=category,
            status=s.status,
            subtype=s.subtype,
            reason_code=s.reason_code,
            eta=s.eta,
            variant=variant,
            retry_at=retry_at,
            documents=tuple(documents),
            alert=alert,
            to_used=to_used,
            channels=channels,
        )

    def notify(
        self,
        stage: Stage,
        category: ExceptionCategory | None,
        *,
        variant: str | None = None,
        retry_at: datetime | None = None,
        documents: Sequence[str] = (),
        to_used: bool = False,
    ) -> None:
        n = self.notice(
            stage, category, variant=variant, retry_at=retry_at, documents=documents, to_used=to_used
        )
        self.actions.append(n)
        if stage not in USER_STAGES_WITHOUT_EXCEPTION:
            self.s.exception_notified = True

    def alert(
        self, category: ExceptionCategory | None, force: bool = False, alert: str | None = None
    ) -> None:
        if self.s.operators_alerted and not force:
            return
        self.s.operators_alerted = True
        notice = self.notice(Stage.OPERATOR_ALERT, category, alert=alert, channels=("ops_email",))
        self.actions.append(AlertOperators(notice))

    def submit(self, same_order: bool = False) -> None:
        s = self.s
        s.submitted_at, s.delay_since, s.delay_notified = self.now, None, False
        s.poll_index = 0
        s.next_poll_at = self.now + timedelta(seconds=self.p.poll_schedule_s[0])
        s.last_answer, s.submitted_once = None, True
        self.set_status(_S.PROCESSING)
        self.actions.append(Submit(s.order_id, same_order))

    def query_at(self, at: datetime) -> None:
        self.s.next_poll_at = at
        self.actions.append(QueryAt(at))
