"""One withdrawal's status as the gateway answers it: live from its workflow's ``status``
query, or, when the workflow gives no answer within ``status_query_timeout_s`` (no worker
polling, a slow worker, Temporal unreachable), from the app database's projection (the
``WithdrawalRecord`` the workflow keeps up to date). The answer says which: ``source`` is
``live`` or ``projection``, ``as_of`` when it was true.

Reads fall back to the projection; changes that need the live view (document upload, link
receipts, an operator's decision) answer 503 at once instead: nothing was changed, retry.
Temporal refusing the query itself (INVALID_ARGUMENT) is 400 with its reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import Request
from pydantic import Field
from sqlalchemy.engine import Engine
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from gateway.auth import Principal
from gateway.deps import db
from gateway.errors import ApiError, rejected_by_temporal
from runtime.client import SentinelClient
from sentinel.models import WithdrawalView
from sentinel.policy import next_step
from sentinel.taxonomy import ExceptionCategory, Severity, WithdrawalStatus
from sentinel.user_view import UserStatusView, for_user
from store.repo import get_record
from store.tables import WithdrawalRecord

log = logging.getLogger(__name__)

#: a client waiting for the workflow may ask again after this many seconds
RETRY_AFTER_S = "5"


class StatusOut(WithdrawalView):
    """The workflow's ``WithdrawalView``, or the same fields from the projection, with where
    the answer came from. The projection knows the withdrawal's details, status, category,
    severity, reason code, review flag and review start; what only the workflow knows is
    null (order_id, attempt, subtype, eta, four_eyes, policy_version) or an empty list
    (timeline, notices, decisions, risk_hits, approvals, awaiting_documents)."""

    # The projection does not know these: null here, never null in a WithdrawalView (hence the ignores).
    order_id: str | None = Field(description="the channel order number; null from the projection")  # type: ignore[assignment]
    attempt: int | None = Field(1, description="payout attempt; null from the projection")  # type: ignore[assignment]
    four_eyes: bool | None = Field(False, description="two approvers needed; null from the projection")  # type: ignore[assignment]
    source: Literal["live", "projection"] = Field(
        description="live: the workflow answered; projection: it did not answer in time and this is the app "
        "database's copy, as of as_of"
    )
    as_of: datetime = Field(description="live: when the workflow answered; projection: its last update")


class UserStatusOut(UserStatusView):
    """What the owner's user token reads: the user's own story (``sentinel.user_view``),
    with where the answer came from. No reviewer names, decision reasons, approvals, risk
    rule details, operator alerts or staff-only timeline events."""

    source: Literal["live", "projection"] = Field(
        description="live: the workflow answered; projection: the app database's copy, as of as_of"
    )
    as_of: datetime = Field(description="live: when the workflow answered; projection: its last update")


def shown_to(view: StatusOut, who: Principal) -> StatusOut | UserStatusOut:
    """Staff and services read the whole view; a user token reads the user's view of it."""
    if not who.is_user:
        return view
    return UserStatusOut(**dict(for_user(view)), source=view.source, as_of=view.as_of)


class Unanswered(Exception):
    """The workflow gave no answer within the deadline, or Temporal failed."""


def not_tracked(withdrawal_id: str) -> ApiError:
    return ApiError(404, "not found", f"withdrawal {withdrawal_id} is not tracked")


def unavailable(withdrawal_id: str, why: str) -> ApiError:
    return ApiError(
        503,
        "temporarily unavailable",
        f"withdrawal {withdrawal_id}: the workflow did not answer ({why}); retry later",
        headers={"Retry-After": RETRY_AFTER_S},
    )


def utc(at: datetime | None) -> datetime | None:
    """Timestamps read back from the database may have lost their zone: they are UTC."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def projected(record: WithdrawalRecord) -> StatusOut:
    status = WithdrawalStatus(record.status)
    category = ExceptionCategory(record.category) if record.category else None
    return StatusOut(
        withdrawal_id=record.withdrawal_id,
        user_id=record.user_id,
        amount=record.amount,
        currency=record.currency,
        channel=record.channel,
        bank_code=record.bank_code,
        card_last4=record.card_last4,
        status=status,
        category=category,
        severity=Severity(record.severity),
        reason_code=record.reason_code,
        needs_review=record.needs_review,
        review_since=utc(record.review_since),
        next_step=next_step(status, category),
        order_id=None,
        attempt=None,
        four_eyes=None,
        source="projection",
        as_of=utc(record.updated_at),
    )


def check_owner(view: WithdrawalView, who: Principal) -> None:
    """A user token sees its own withdrawals only; staff and service roles see any."""
    if who.is_user and view.user_id != who.user_id:
        raise ApiError(403, "forbidden", "this withdrawal belongs to another user")


@dataclass
class Views:
    client: SentinelClient
    engine: Engine
    deadline_s: float
    clock: Callable[[], float]

    async def live(self, withdrawal_id: str) -> StatusOut:
        """The workflow's own answer. Raises RPCError NOT_FOUND (no such workflow), ApiError
        400 (Temporal refused the query) or Unanswered (no answer within the deadline)."""
        late = f"no answer within {self.deadline_s:g} s"
        try:
            # The query's own deadline ends the call at the server; the timeout also covers
            # the client's retries while Temporal is unreachable.
            async with asyncio.timeout(self.deadline_s):
                view = await self.client.status(withdrawal_id, timeout=timedelta(seconds=self.deadline_s))
        except TimeoutError:
            raise Unanswered(late) from None
        except WorkflowQueryFailedError as err:  # how the SDK reports INVALID_ARGUMENT on a query
            raise rejected_by_temporal(str(err)) from None
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise
            if err.status == RPCStatusCode.INVALID_ARGUMENT:
                raise rejected_by_temporal(err.message) from None
            if err.status in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED):
                raise Unanswered(late) from None
            raise Unanswered(f"Temporal: {err.status.name if err.status else err}") from None
        now = datetime.fromtimestamp(self.clock(), UTC)
        return StatusOut(**dict(view), source="live", as_of=now)

    async def live_or_503(self, withdrawal_id: str, who: Principal) -> StatusOut:
        """The live view, for changes that depend on it: 404 not tracked, 403 another user's,
        503 at once when the workflow does not answer in time (nothing changed: retry)."""
        try:
            view = await self.live(withdrawal_id)
        except RPCError:  # NOT_FOUND: live() raises no other
            raise not_tracked(withdrawal_id) from None
        except Unanswered as why:
            raise unavailable(withdrawal_id, f"{why}; nothing was changed") from None
        check_owner(view, who)
        return view

    async def status(self, withdrawal_id: str, who: Principal) -> StatusOut | UserStatusOut:
        """Live, or the projection when the workflow does not answer in time or is gone
        (past retention). 404 when neither knows the withdrawal; 403 for another user's.
        A user token gets the user's view of either (``shown_to``)."""
        try:
            view = await self.live(withdrawal_id)
        except (RPCError, Unanswered) as err:
            record = await db(get_record, self.engine, withdrawal_id)
            if record is None:
                if isinstance(err, RPCError):
                    raise not_tracked(withdrawal_id) from None
                raise unavailable(withdrawal_id, f"{err}; nothing is recorded for it yet") from None
            log.info("withdrawal %s: answered from the projection (%s)", withdrawal_id, err)
            view = projected(record)
        check_owner(view, who)
        return shown_to(view, who)


def views(request: Request) -> Views:
    state = request.app.state
    return Views(state.client, state.engine, state.settings.status_query_timeout_s, state.clock)
