"""The vocabulary every other module speaks: exception categories, payout states,
withdrawal statuses, severities, retry decisions and who can fix a problem.

Pure and sandbox-safe: no I/O, imported by workflows, activities and the gateway alike.
Requirement IDs: R1-R5 (the five scenarios), R26 (extra categories that real channel
codes need, see docs/reference/payout-codes.md), R31 (severity scale).
"""

from __future__ import annotations

from enum import Enum


class ExceptionCategory(str, Enum):
    """What went wrong, in the taxonomy of the requirements (R1-R5) plus the categories
    the real channel codes need (payout-codes.md, "Normalized categories used")."""

    BANK_DELAY = "BANK_DELAY"  # R1
    ACCOUNT_INFO_ERROR = "ACCOUNT_INFO_ERROR"  # R2
    RISK_HOLD = "RISK_HOLD"  # R3
    BALANCE_OR_LIMIT = "BALANCE_OR_LIMIT"  # R4
    PLATFORM_ERROR = "PLATFORM_ERROR"  # R5
    USER_ACCOUNT_RESTRICTED = "USER_ACCOUNT_RESTRICTED"
    REGULATORY = "REGULATORY"
    CHANNEL_REJECTED = "CHANNEL_REJECTED"
    DUPLICATE = "DUPLICATE"
    AWAITING_USER_ACTION = "AWAITING_USER_ACTION"
    CANCELLED = "CANCELLED"
    RETURNED_AFTER_SUCCESS = "RETURNED_AFTER_SUCCESS"


class PayoutState(str, Enum):
    """What a channel says about one payout order, normalised (payout-codes.md,
    Appendix A). This is the channel's word, not yet our decision."""

    SUBMITTED = "SUBMITTED"
    PROCESSING = "PROCESSING"
    AWAITING_USER = "AWAITING_USER"
    UNKNOWN = "UNKNOWN"  # timeout / system error: never a failure, query first
    HELD = "HELD"  # stopped by a risk check, waiting for a human
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    RETURNED = "RETURNED"  # showed success, then came back

    @property
    def is_final(self) -> bool:
        return self in _FINAL_PAYOUT_STATES


_FINAL_PAYOUT_STATES = frozenset(
    {PayoutState.SUCCEEDED, PayoutState.FAILED, PayoutState.CANCELLED, PayoutState.RETURNED}
)


class WithdrawalStatus(str, Enum):
    """Our status of a withdrawal: what the user and the operators see."""

    SUBMITTED = "SUBMITTED"
    PROCESSING = "PROCESSING"
    DELAYED = "DELAYED"
    UNDER_REVIEW = "UNDER_REVIEW"
    MANUAL_CHECK = "MANUAL_CHECK"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # funds returned to the platform balance
    RETURNED = "RETURNED"  # succeeded, then returned by the bank; funds back

    @property
    def is_final(self) -> bool:
        return self in (WithdrawalStatus.SUCCEEDED, WithdrawalStatus.FAILED, WithdrawalStatus.RETURNED)

    @property
    def needs_human(self) -> bool:
        return self in (WithdrawalStatus.UNDER_REVIEW, WithdrawalStatus.MANUAL_CHECK)


class Severity(str, Enum):
    """Severity scale (R31). The order matters: later is more severe."""

    INFO = "INFO"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class RetryDecision(str, Enum):
    """What may be done about a failed payout (payout-codes.md legend)."""

    AUTO_SAME_ORDER = "AUTO_SAME_ORDER"  # retry with the original order number
    AFTER_USER_FIX = "AFTER_USER_FIX"  # new payout once the user corrected their data
    AFTER_OPS_FIX = "AFTER_OPS_FIX"  # operations must act first (top-up, contract, code fix)
    QUERY_FIRST = "QUERY_FIRST"  # the status is unknown: query before anything
    WAIT = "WAIT"  # nothing to do but wait (cut-off, bank closed)
    NO_RETRY = "NO_RETRY"


class Fixer(str, Enum):
    """Who can fix the cause."""

    USER = "USER"
    OPERATIONS = "OPERATIONS"
    BANK = "BANK"
    NOBODY = "NOBODY"


class Stage(str, Enum):
    """The moment in a withdrawal's life a notice speaks about. Templates and the
    severity policy are keyed by category x stage."""

    DETECTED = "DETECTED"  # the exception is known (failure, hold, ...)
    DELAYED = "DELAYED"  # past the delay threshold and the grace period
    UNDER_REVIEW = "UNDER_REVIEW"  # a human looks at it (R15)
    DOCUMENTS_REQUESTED = "DOCUMENTS_REQUESTED"  # R18
    REVIEW_DELAYED = "REVIEW_DELAYED"  # review past its SLA: it takes longer, escalated
    DOCUMENTS_EXPIRED = "DOCUMENTS_EXPIRED"  # documents not received in time: funds returned
    MANUAL_CHECK = "MANUAL_CHECK"  # we are checking with the bank
    APPROVED = "APPROVED"  # review passed, payout released again
    REJECTED = "REJECTED"  # review rejected, funds returned
    RESOLVED = "RESOLVED"  # arrived after an earlier exception notice
    CORRECTION = "CORRECTION"  # an earlier notice turned out wrong: the bank contradicted it
    RETURNED = "RETURNED"  # bank returned the money after success
    OPERATOR_ALERT = "OPERATOR_ALERT"  # for operations, not for the user
