"""The workflow's review handlers (R15, R18, R29; issue #11): a reviewer's decision as an
update (refused before it is written to history when it does not apply) or a signal
(recorded and ignored without a valid token), documents the user uploaded, and the audit
row of each decision applied. What a decision does is the lifecycle's
(sentinel/transitions.py)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from sentinel.contracts import DecisionAudit, DecisionKeys, DocumentsUpload
    from sentinel.decision_tokens import (
        DecisionClaims,
        DecisionTokenError,
        key_is_known,
        read_claims,
        verify_decision,
    )
    from sentinel.models import ReviewDecision
    from sentinel.taxonomy import WithdrawalStatus
    from sentinel.transition_types import AuditFailed, DocumentsUploaded

from workflows.notices import Notices
from workflows.state import AUDIT_RETRY, INIT_TIMEOUT, SIGNED_DECISIONS


class Review(Notices):
    """Mixed into WithdrawalWorkflow."""

    _pending_decisions: list[tuple[int, ReviewDecision]]
    _decided: set[int]

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
            self.s.used_nonces.append(claims.nonce)
        self.s.decision_seq += 1
        self._pending_decisions.append((self.s.decision_seq, decision))

    @workflow.signal
    def documents_uploaded(self, upload: DocumentsUpload) -> None:
        """The user uploaded what a reviewer asked for: the case goes back to the queue."""
        if self._step(DocumentsUploaded(tuple(upload.documents), upload.reference)).ignored is None:
            self._poke = True

    @workflow.update
    async def review(self, decision: ReviewDecision) -> str:
        """A reviewer's decision; rejected before it is written to history when the
        withdrawal is not awaiting review or the decision token does not prove it. Returns
        the status after the decision."""
        s = self.s
        if decision.token is not None:
            s.used_nonces.append(read_claims(decision.token).nonce)
            if not key_is_known(decision.token, s.decision_keys):
                # signed with a key this workflow has not heard of (a rotation since it
                # started, or it started before decisions were signed): the worker's keys now
                keys = await workflow.execute_local_activity(
                    "decision_keys", result_type=DecisionKeys, start_to_close_timeout=INIT_TIMEOUT
                )
                s.decision_keys = dict(keys.keys)
                try:
                    verify_decision(
                        decision,
                        withdrawal_id=self._req.withdrawal_id,
                        public_keys=s.decision_keys,
                        now=workflow.now(),
                        manual_check=s.status == WithdrawalStatus.MANUAL_CHECK,
                    )
                except DecisionTokenError as exc:
                    self._event(
                        f"review decision '{decision.decision}' by {decision.reviewer} refused: {exc}",
                        "review",
                    )
                    raise ApplicationError(
                        str(exc), type="InvalidDecisionToken", non_retryable=True
                    ) from None
        s.decision_seq += 1
        seq = s.decision_seq
        self._pending_decisions.append((seq, decision))
        await workflow.wait_condition(lambda: seq in self._decided)
        return self.s.status.value

    @review.validator
    def _validate_review(self, decision: ReviewDecision) -> None:
        if not self.s.status.needs_human or self._pending_decisions:
            raise ApplicationError(
                f"withdrawal {self._req.withdrawal_id} is {self.s.status.value}, not awaiting review",
                type="NotAwaitingReview",
                non_retryable=True,
            )
        try:
            self._verify_decision(decision, unknown_key_ok=True)
        except DecisionTokenError as exc:
            raise ApplicationError(str(exc), type="InvalidDecisionToken", non_retryable=True) from None
        if decision.decision == "approve" and decision.reviewer in self.s.approvals:
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
            public_keys=self.s.decision_keys,
            now=workflow.now(),
            used_nonces=self.s.used_nonces,
            manual_check=self.s.status == WithdrawalStatus.MANUAL_CHECK,
            unknown_key_ok=unknown_key_ok,
        )

    async def _audit_decision(self, decision: ReviewDecision) -> None:
        """The audit row of an applied decision (who, role, what, why, the status after),
        once per token: the same row whether it came from the gateway, the CLI or a direct
        update (issue #11)."""
        assert decision.token is not None
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
                    detail=f"{decision.reason}{docs} -> {self.s.status.value}"[:1000],
                ),
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=AUDIT_RETRY,
            )
        except ActivityError as err:
            self._event("could not write the audit row of the review decision", "review", str(err.cause))
            self._step(AuditFailed(claims.reviewer, decision.decision))
