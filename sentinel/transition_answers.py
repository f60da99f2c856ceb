"""What an answer of the channel does to a withdrawal (part of sentinel/transitions.py):
in flight, unknown (query first, R5), succeeded, held, refused (routed by
sentinel/lifecycle.py), returned, or contradicting an earlier failure."""

from __future__ import annotations

from datetime import timedelta

from sentinel.lifecycle import Route, route_failure, route_return
from sentinel.models import Classification, Observation
from sentinel.orders import order_id_for
from sentinel.taxonomy import ExceptionCategory, PayoutState, Stage, WithdrawalStatus
from sentinel.transition_base import Base
from sentinel.transition_types import Answer, OpenManualCheck, OpenReview, ResubmitAt, WaitUntil

_S = WithdrawalStatus
_C = ExceptionCategory
#: the channel said it has no such order: the identical request is sent again, this often
MAX_SAME_ORDER_RESUBMITS = 3


class Answers(Base):
    def answer(self, event: Answer) -> str | None:
        s, obs = self.s, event.obs
        if obs.event_id:
            if obs.event_id in s.seen_events:
                self.log("duplicate delivery ignored", obs.source, obs.event_id)
                return "duplicate delivery"
            s.seen_events = s.seen_events | {obs.event_id}
        if obs.order_id != s.order_id:
            self.log(f"answer for earlier order {obs.order_id} recorded, ignored", obs.source, obs.raw_status)
            return "an earlier order's answer"
        cls = obs.classification
        said = f"channel: {obs.raw_status} {obs.raw_code or ''}".strip()
        if s.status.is_final:
            if s.status == _S.SUCCEEDED and cls.state in (PayoutState.RETURNED, PayoutState.FAILED):
                self.log(said, obs.source)
                self.returned(cls, obs, event.routes)
                return None
            if s.status == _S.FAILED and cls.state == PayoutState.SUCCEEDED:
                self.log(said, obs.source)
                self.contradicted(obs)
                return None
            self.log(f"late answer {obs.raw_status} recorded, ignored", obs.source, obs.raw_code)
            return "a late answer after the final status"
        answer = (obs.raw_status, obs.raw_code or "", cls.state.value)
        if answer == s.last_answer:
            if obs.source == "callback":
                self.log("same answer again, ignored", obs.source, obs.raw_status)
            return "the same answer again"
        s.last_answer = answer
        self.log(said, obs.source)
        state = cls.state
        if state in (PayoutState.SUBMITTED, PayoutState.PROCESSING):
            self.still_processing(cls)
        elif state == PayoutState.AWAITING_USER:
            s.category, s.subtype = _C.AWAITING_USER_ACTION, cls.subtype
            self.notify(Stage.DETECTED, _C.AWAITING_USER_ACTION)
        elif state == PayoutState.UNKNOWN:
            self.unknown(cls, obs)
        elif state == PayoutState.SUCCEEDED:
            self.succeeded()
        elif state == PayoutState.HELD:
            self.to_review(cls, obs)
        elif state in (PayoutState.FAILED, PayoutState.CANCELLED) and event.routes:
            self.route(cls, obs)
        elif state in (PayoutState.FAILED, PayoutState.CANCELLED):
            self.legacy_failure(cls, obs)
        elif state == PayoutState.RETURNED:
            self.returned(cls, obs, event.routes)
        return None

    def still_processing(self, cls: Classification) -> None:
        s = self.s
        if cls.category == _C.BANK_DELAY and s.delay_since is None:
            # the channel itself says the bank is slow: the grace period starts now (R1, R23)
            s.delay_since, s.subtype = self.now, cls.subtype
        elif cls.category == _C.BALANCE_OR_LIMIT and (cls.subtype or "").startswith("payer"):
            # platform float is short: the user only sees a delay; operations must top up
            if s.delay_since is None:
                s.delay_since = self.now
            self.alert(cls.category)

    def unknown(self, cls: Classification, obs: Observation) -> None:
        s = self.s
        if obs.raw_status == "NOT_FOUND" and obs.source == "poll":
            # the channel never got the order: the identical request again (same order number)
            if s.same_order_resubmits < MAX_SAME_ORDER_RESUBMITS:
                s.same_order_resubmits += 1
                self.log("channel has no such order; resending the same order", "poll")
                submitted_at = s.submitted_at
                self.submit(same_order=True)
                s.submitted_at = submitted_at  # the thresholds keep counting from the first try
                return
            self.to_manual_check(cls, "channel still has no such order after resending", obs)
            return
        self.query_at(self.now + timedelta(seconds=self.p.unknown_poll_s))  # never a failure: query (R5)

    def route(self, cls: Classification, obs: Observation) -> None:
        """A refusal: what the catalogue decided for its code is carried out (sentinel/lifecycle.py)."""
        s = self.s
        decision = route_failure(
            cls,
            resends=s.resends,
            waits=s.limit_waits,
            policy=self.p,
            alert_categories=self.alert_categories,
            now=self.now,
        )
        answer = f"{obs.raw_status} {obs.raw_code or ''}".strip()
        self.log(f"route {decision.route.value}: {decision.why}", "workflow", answer)
        route = decision.route
        if route in (Route.RESEND, Route.WAIT_AND_RESEND):
            assert decision.at is not None
            s.category, s.subtype, s.reason_code = cls.category, cls.subtype, obs.raw_code
            s.resend_at = decision.at
            self.actions.append(ResubmitAt(decision.at, order_id_for(s.withdrawal_id, s.attempt + 1)))
            if route == Route.RESEND:
                s.resends += 1
                return  # the delay alarm still counts from the first submission (R23)
            s.limit_waits += 1
            s.resend_fresh, s.eta, s.delay_notified = True, None, True
            self.set_status(_S.DELAYED)
            self.actions.append(WaitUntil(decision.at, decision.why))
            self.notify(Stage.DELAYED, cls.category, variant="LIMIT_WAIT", retry_at=decision.at)
        elif route == Route.OPS_FIX:
            self.to_manual_check(cls, answer, obs, variant="OPS_FIX")
        elif route == Route.MANUAL_CHECK:
            self.to_manual_check(cls, answer, obs)
        elif route in (Route.RISK_REVIEW, Route.COMPLIANCE_REVIEW):
            self.to_review(cls, obs)
        else:
            self.failed(cls, obs)
            if decision.alert_operators:
                self.alert(cls.category, force=True)

    def legacy_failure(self, cls: Classification, obs: Observation) -> None:
        """Refusals in histories from before the routes (patch lifecycle-routes)."""
        payer_side = cls.category == _C.BALANCE_OR_LIMIT and (cls.subtype or "").startswith("payer")
        if not cls.mapped or cls.category in (_C.PLATFORM_ERROR, _C.DUPLICATE) or payer_side:
            self.to_manual_check(cls, f"{obs.raw_status} {obs.raw_code or ''}".strip(), obs)
        elif cls.category == _C.RISK_HOLD:
            self.to_review(cls, obs)
        else:
            self.failed(cls, obs)

    def succeeded(self) -> None:
        s = self.s
        s.eta, s.resend_at, s.resend_fresh = None, None, False
        self.set_status(_S.SUCCEEDED)
        if s.exception_notified:  # resolved: on the channels used before (send_resolved)
            self.notify(Stage.RESOLVED, s.category, to_used=True)

    def contradicted(self, obs: Observation) -> None:
        """The bank reports paid after the user was told it failed (funds back): a
        correction on the channels it went to, and a manual check (the money may be in two
        places). Approve confirms under the same order number, reject keeps the failure."""
        self.set_status(_S.MANUAL_CHECK)
        self.log(
            "the bank reports paid after the failure notice: correction sent, manual check",
            "workflow",
            obs.event_id,
        )
        self.actions.append(OpenManualCheck("the bank contradicted a failure"))
        self.query_at(self.now + timedelta(seconds=self.p.poll_schedule_s[-1]))
        self.notify(Stage.CORRECTION, self.s.category, to_used=True)
        self.alert(self.s.category, force=True)

    def failed(self, cls: Classification, obs: Observation) -> None:
        s = self.s
        s.category, s.subtype, s.reason_code = cls.category, cls.subtype, obs.raw_code
        self.set_status(_S.FAILED)
        self.notify(Stage.DETECTED, cls.category)

    def returned(self, cls: Classification, obs: Observation, routes: bool) -> None:
        s = self.s
        if routes and not cls.mapped:
            s.category = _C.RETURNED_AFTER_SUCCESS  # an unknown return code: "returned", no guessed cause
        else:
            s.category = cls.category if cls.category else _C.RETURNED_AFTER_SUCCESS
        s.subtype, s.reason_code = cls.subtype, obs.raw_code
        self.set_status(_S.RETURNED)
        self.notify(Stage.RETURNED, s.category)
        if routes and route_return(cls, self.alert_categories):
            self.alert(s.category, force=True, alert=f"bank return with code {obs.raw_code or '-'}")

    def to_review(self, cls: Classification, obs: Observation) -> None:
        s = self.s
        s.category = cls.category or _C.RISK_HOLD
        s.subtype, s.reason_code = cls.subtype, obs.raw_code
        self.set_status(_S.UNDER_REVIEW)
        self.actions.append(OpenReview("compliance" if s.category == _C.REGULATORY else "risk"))
        self.notify(Stage.UNDER_REVIEW, s.category)  # R15: "under review" first

    def to_manual_check(
        self,
        cls: Classification | None,
        why: str,
        obs: Observation | None = None,
        variant: str | None = None,
    ) -> None:
        s = self.s
        if s.status == _S.MANUAL_CHECK:
            return
        s.category = cls.category if cls and cls.category else _C.PLATFORM_ERROR
        s.subtype = cls.subtype if cls else "stuck"
        if obs is not None:
            s.reason_code = obs.raw_code
        self.set_status(_S.MANUAL_CHECK)
        self.log(f"manual check: {why}", "workflow")
        self.actions.append(OpenManualCheck(why))
        self.query_at(self.now + timedelta(seconds=self.p.poll_schedule_s[-1]))
        self.notify(Stage.MANUAL_CHECK, s.category, variant=variant)
        self.alert(s.category, force=True)
