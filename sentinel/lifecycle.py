"""What a channel's failing answer means for the withdrawal, as a pure, total function
(issue #10, R5, R7, R15, R26, R29, R32).

The catalogue gives every code a category, a retry decision and who can fix it
(``sentinel/codes/*.yaml``). This module turns that into what the workflow *does*, so that
every decision the catalogue states is carried out and every notice can say only what is
really scheduled:

=====================================  ==============================================
catalogue says                          the workflow does
=====================================  ==============================================
unmapped code, PLATFORM_ERROR,          manual check, operators alerted
DUPLICATE, the payer's own funds
AUTO_SAME_ORDER                         sends the payout again after a backoff (bank
                                        offline: minutes to an hour; rate limit: seconds
                                        to minutes), bounded; then a manual check
WAIT on a limit (daily, count)          waits until the limit resets (the channel's next
                                        day) and sends it again; the user is told the date
WAIT on a bank cut-off                  the same: sends it again when the next day opens
RISK_HOLD                               the review desk (risk queue)
REGULATORY fixed by operations          the review desk (compliance queue: category
                                        REGULATORY)
AFTER_OPS_FIX                           manual check, operators alerted; the user is told
                                        "delayed, we are fixing it on our side", never
                                        "failed"
NO_RETRY fixed by operations            manual check, operators alerted (a person decides:
(holder deceased, ...)                  e.g. ISO MD07, NACHA R14/R15)
AFTER_USER_FIX                          final failure, funds back, the fix link
CANCELLED / NO_RETRY otherwise          final failure, funds back
=====================================  ==============================================

A resend never leaves two live orders: after a definite failure the earlier order is
final, so the resend is the next attempt number (``order_id_for(withdrawal, n + 1)``); the
same order number is reused only when the channel never got the order (NOT_FOUND, handled
by the workflow). Which categories also page operations is the notice policy's data
(``operator_alert_categories``); routes that hand the case to operations always do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

from sentinel.catalogue import Catalogue
from sentinel.models import Classification, TrackingPolicy
from sentinel.notice_policy import NoticePolicy
from sentinel.taxonomy import ExceptionCategory, Fixer, PayoutState, RetryDecision, Stage, WithdrawalStatus

_C = ExceptionCategory
_R = RetryDecision


class Route(str, Enum):
    """Where a failing answer takes the withdrawal."""

    RESEND = "RESEND"  # a passing refusal: the payout is sent again at ``at`` (next attempt)
    WAIT_AND_RESEND = "WAIT_AND_RESEND"  # a limit or cut-off: sent again when it resets, user told the date
    OPS_FIX = "OPS_FIX"  # our side must act first: manual check, operators alerted, "delayed"
    MANUAL_CHECK = "MANUAL_CHECK"  # a person checks (unmapped, duplicate, payer funds, resends used up)
    RISK_REVIEW = "RISK_REVIEW"  # the review desk
    COMPLIANCE_REVIEW = "COMPLIANCE_REVIEW"  # the review desk, compliance queue (category REGULATORY)
    USER_FIX = "USER_FIX"  # final failure; the user fixes the card or account (fix link)
    FAILED = "FAILED"  # final failure, nothing to fix


#: routes whose notice may not say "failed": the money is not final yet
NOT_FINAL = frozenset(
    {
        Route.RESEND,
        Route.WAIT_AND_RESEND,
        Route.OPS_FIX,
        Route.MANUAL_CHECK,
        Route.RISK_REVIEW,
        Route.COMPLIANCE_REVIEW,
    }
)
#: routes that always page operations
ALERTS = frozenset({Route.OPS_FIX, Route.MANUAL_CHECK})


@dataclass(frozen=True)
class Decision:
    route: Route
    why: str
    at: datetime | None = None  # RESEND / WAIT_AND_RESEND: when the payout is sent again
    alert_operators: bool = False


def next_reset(now: datetime, policy: TrackingPolicy) -> datetime:
    """The next moment a channel's daily limit resets (``limit_reset`` in delays.yaml, in
    the channel's own zone), strictly after ``now``."""
    zone = ZoneInfo(policy.limit_reset_tz)
    hour, minute = (int(x) for x in policy.limit_reset_at.split(":"))
    local = now.astimezone(zone)
    at = datetime.combine(local.date(), time(hour, minute), zone)
    if at <= local:
        at = datetime.combine(local.date() + timedelta(days=1), time(hour, minute), zone)
    return at.astimezone(now.tzinfo)


def _payer_side(cls: Classification) -> bool:
    return cls.category == _C.BALANCE_OR_LIMIT and (cls.subtype or "").startswith("payer")


def route_failure(
    cls: Classification,
    *,
    resends: int,
    waits: int,
    policy: TrackingPolicy,
    alert_categories: frozenset[ExceptionCategory] | set[ExceptionCategory],
    now: datetime,
) -> Decision:
    """The route of a FAILED or CANCELLED answer. ``resends``: automatic resends already
    made after passing refusals; ``waits``: resends already made after limit or cut-off
    waits. Total: every classification gets a route."""
    decision = _route(cls, resends=resends, waits=waits, policy=policy, now=now)
    alert = decision.route in ALERTS or (cls.category in alert_categories)
    return Decision(decision.route, decision.why, decision.at, alert)


def _route(
    cls: Classification, *, resends: int, waits: int, policy: TrackingPolicy, now: datetime
) -> Decision:
    category, retry = cls.category, cls.retry
    if not cls.mapped:
        return Decision(Route.MANUAL_CHECK, "a code the catalogue does not know: a person decides")
    if retry == _R.QUERY_FIRST:  # the classifier makes these UNKNOWN; a refusal that says so goes to a person
        return Decision(Route.MANUAL_CHECK, "the result is unknown: query, then a person decides")
    if category in (_C.PLATFORM_ERROR, _C.DUPLICATE) or _payer_side(cls):
        return Decision(Route.MANUAL_CHECK, f"{category.value if category else '-'}: a person checks first")
    if retry == _R.AUTO_SAME_ORDER:
        backoff = policy.rate_limit_retry_s if category == _C.BALANCE_OR_LIMIT else policy.auto_retry_s
        if resends < len(backoff):
            return Decision(
                Route.RESEND,
                f"refused for a passing reason; resend {resends + 1} of {len(backoff)}",
                at=now + timedelta(seconds=backoff[resends]),
            )
        return Decision(Route.MANUAL_CHECK, f"still refused after {len(backoff)} resends")
    if retry == _R.WAIT and category in (_C.BALANCE_OR_LIMIT, _C.BANK_DELAY):
        if waits < policy.max_limit_waits:
            what = "a limit" if category == _C.BALANCE_OR_LIMIT else "the bank's cut-off"
            return Decision(
                Route.WAIT_AND_RESEND, f"{what}: sent again when it resets", at=next_reset(now, policy)
            )
        return Decision(
            Route.MANUAL_CHECK, f"still refused after {policy.max_limit_waits} waits for the limit"
        )
    if category == _C.RISK_HOLD:
        return Decision(Route.RISK_REVIEW, "a risk check holds it: a reviewer decides")
    if category == _C.REGULATORY and cls.fixer != Fixer.USER:
        return Decision(Route.COMPLIANCE_REVIEW, "a compliance check: the compliance reviewers decide")
    if retry == _R.AFTER_OPS_FIX:
        return Decision(Route.OPS_FIX, "our side must act first (contract, configuration, funds)")
    if cls.fixer == Fixer.OPERATIONS and category != _C.CANCELLED:
        return Decision(Route.MANUAL_CHECK, "operations must look at it before anything else")
    if retry == _R.AFTER_USER_FIX or cls.fixer == Fixer.USER:
        return Decision(Route.USER_FIX, "the user must fix the card or account")
    return Decision(Route.FAILED, "final: nothing to retry")


def route_return(
    cls: Classification, alert_categories: frozenset[ExceptionCategory] | set[ExceptionCategory]
) -> bool:
    """Whether a bank return (money back after a success) also pages operations: an unknown
    return code always does (a person reads it), and the policy's categories do."""
    return not cls.mapped or cls.state == PayoutState.RETURNED and cls.category in alert_categories


#: what the user sees on each route: the status, and the notice (stage, template variant)
#: sent at once (None: nothing at once; a delay notice follows only if the delay threshold
#: passes before the resend succeeds, and then it says the payout is being sent again)
SEEN: dict[Route, tuple[WithdrawalStatus, Stage | None, str | None]] = {
    Route.RESEND: (WithdrawalStatus.PROCESSING, None, None),
    Route.WAIT_AND_RESEND: (WithdrawalStatus.DELAYED, Stage.DELAYED, "LIMIT_WAIT"),
    Route.OPS_FIX: (WithdrawalStatus.MANUAL_CHECK, Stage.MANUAL_CHECK, "OPS_FIX"),
    Route.MANUAL_CHECK: (WithdrawalStatus.MANUAL_CHECK, Stage.MANUAL_CHECK, None),
    Route.RISK_REVIEW: (WithdrawalStatus.UNDER_REVIEW, Stage.UNDER_REVIEW, None),
    Route.COMPLIANCE_REVIEW: (WithdrawalStatus.UNDER_REVIEW, Stage.UNDER_REVIEW, None),
    Route.USER_FIX: (WithdrawalStatus.FAILED, Stage.DETECTED, None),
    Route.FAILED: (WithdrawalStatus.FAILED, Stage.DETECTED, None),
}


@dataclass(frozen=True)
class RouteRow:
    """One line of the route table: a group of catalogue codes and what happens to them."""

    category: ExceptionCategory | None
    retry: RetryDecision | None
    fixer: Fixer | None
    codes: tuple[str, ...]
    route: Route
    status: WithdrawalStatus
    notice: str
    channels: tuple[str, ...]
    alerts: bool


def route_table(
    catalogue: Catalogue,
    notice_policy: NoticePolicy,
    policy: TrackingPolicy,
    channels: list[str],
    now: datetime,
) -> list[RouteRow]:
    """Every refusal code of every catalogue, grouped by (category, retry, fixer, route):
    what the workflow does and what the user is told on which channels (docs/notices.md)."""
    groups: dict[
        tuple[ExceptionCategory | None, RetryDecision | None, Fixer | None, Route, bool], list[str]
    ] = {}
    for source, doc in sorted(catalogue.sources.items()):
        for entry in doc.codes:
            if entry.retry == RetryDecision.QUERY_FIRST:
                continue  # never a refusal: the answer counts as unknown and is queried (R5)
            cls = Classification(
                state=PayoutState.FAILED,
                category=entry.category,
                subtype=entry.subtype,
                retry=entry.retry,
                fixer=entry.fixer,
            )
            decision = route_failure(
                cls,
                resends=0,
                waits=0,
                policy=policy,
                alert_categories=set(notice_policy.operator_alert_categories),
                now=now,
            )
            key = (entry.category, entry.retry, entry.fixer, decision.route, decision.alert_operators)
            groups.setdefault(key, []).append(f"{source}:{entry.code}")
    rows = []
    for (category, retry, fixer, route, alerts), codes in sorted(
        groups.items(),
        key=lambda kv: (
            kv[0][3].value,
            kv[0][0].value if kv[0][0] else "",
            kv[0][1].value if kv[0][1] else "",
        ),
    ):
        status, stage, variant = SEEN[route]
        sent: tuple[str, ...]
        if stage is None:
            notice, sent = "none at once", ()
        else:
            severity = notice_policy.severity(category, stage)
            notice = stage.value + (f"/{variant}" if variant else "")
            sent = tuple(c for c in notice_policy.rung(severity, 0, channels) if c != "ops_email")
        rows.append(RouteRow(category, retry, fixer, tuple(codes), route, status, notice, sent, alerts))
    return rows
