"""What a user sees of their own withdrawal (R16, R22, R29): the story their notices tell,
not the desk's. Pure: no I/O.

A whitelist: :class:`UserStatusView` lists every field a user may read, and
:func:`for_user` copies only those from the workflow's ``WithdrawalView``. Left out are
reviewer names, decision reasons, approvals, risk rules with their thresholds, operator
alerts, delivery internals, the channel's raw answers and everything else that is for staff.
Timeline events are kept only when there is a plain-words form of them for the user; the
words never carry a name, a reason or a rule detail.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from sentinel.models import NoticeRecord, TimelineEvent, WithdrawalView
from sentinel.taxonomy import ExceptionCategory, Stage, WithdrawalStatus

#: the notices addressed to the user; anything else (OPERATOR_ALERT, any stage added later) stays hidden
USER_STAGES = frozenset(
    {
        Stage.DETECTED,
        Stage.DELAYED,
        Stage.UNDER_REVIEW,
        Stage.DOCUMENTS_REQUESTED,
        Stage.REVIEW_DELAYED,
        Stage.DOCUMENTS_EXPIRED,
        Stage.MANUAL_CHECK,
        Stage.APPROVED,
        Stage.REJECTED,
        Stage.RESOLVED,
        Stage.CORRECTION,
        Stage.RETURNED,
    }
)

#: (event source, how its text starts, what the user reads; None: the text as it is, the
#: user's own action). A timeline event that matches none of these is not shown.
_PLAIN: tuple[tuple[str, str, str | None], ...] = (
    ("workflow", "tracking started", "withdrawal received"),
    ("submit", "payout ", "payout sent to the bank"),
    ("risk", "risk rule ", "held for a security review"),
    ("review", "review: approve ", "review passed"),
    ("review", "review: reject ", "review declined"),
    ("review", "review: request_documents ", "documents requested"),
    ("review", "first approval ", "first approval given; a second approval is needed"),
    ("user", "documents uploaded: ", None),
    ("timer", "delay confirmed", "payout delayed"),
    ("timer", "review not decided", "the review takes longer than usual"),
    ("timer", "requested documents not received", "requested documents not received in time; cancelled"),
    ("workflow", "manual check: ", "we are checking the payout with the bank"),
    (
        "workflow",
        "the bank reports paid after the failure notice",
        "the bank reports it paid after all; we are checking",
    ),
)


class _UserModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserEvent(_UserModel):
    at: datetime = Field(description="when it happened (UTC)")
    what: str = Field(description="in plain words, without names, reasons or rule details")


class UserNotice(_UserModel):
    """A notice sent to the user, as they can follow it (and acknowledge it by its key)."""

    key: str = Field(description="the notice's key, for the link read receipt (POST .../notices/ack)")
    stage: Stage = Field(description="which notice it is in the withdrawal's story")
    category: ExceptionCategory | None
    status: WithdrawalStatus | None
    channels: list[str] = Field(description="where it was sent")
    delivered: list[str] = Field(description="where it arrived")
    documents: list[str] = Field(description="documents it asked for")
    read_at: datetime | None = Field(description="when the user read it on any channel; null: unread")
    at: datetime = Field(description="when it was asked for")


class UserStatusView(_UserModel):
    """The withdrawal as its owner sees it."""

    withdrawal_id: str
    user_id: str
    amount: Decimal
    currency: str
    channel: str
    bank_code: str
    card_last4: str
    status: WithdrawalStatus = Field(description="where the withdrawal stands")
    category: ExceptionCategory | None = Field(description="the kind of trouble, when there is one")
    reason_code: str | None = Field(description="the channel's code behind it")
    next_step: str = Field(description="what happens next or what to do, in words")
    eta: datetime | None = Field(description="when the money is expected, when known")
    awaiting_documents: list[str] = Field(description="documents the user is asked to upload")
    timeline: list[UserEvent] = Field(description="what happened, in plain words, oldest first")
    notices: list[UserNotice] = Field(
        description="the notices addressed to the user (operator alerts left out)"
    )


def plain_event(event: TimelineEvent) -> UserEvent | None:
    """The user's words for a timeline event, or None when it is for staff only."""
    for source, start, plain in _PLAIN:
        if event.source == source and event.what.startswith(start):
            return UserEvent(at=event.at, what=event.what if plain is None else plain)
    return None


def user_notice(notice: NoticeRecord) -> UserNotice:
    return UserNotice(
        key=notice.key,
        stage=notice.stage,
        category=notice.category,
        status=notice.status,
        channels=list(notice.channels),
        delivered=list(notice.delivered),
        documents=list(notice.documents),
        read_at=notice.read_at,
        at=notice.at,
    )


def for_user(view: WithdrawalView) -> UserStatusView:
    """The owner's view of ``view``: only the whitelisted fields, the user's notices, and the
    timeline in plain words (the same words once, when several events say it in a row)."""
    timeline: list[UserEvent] = []
    for event in view.timeline:
        plain = plain_event(event)
        if plain is not None and not (timeline and timeline[-1].what == plain.what):
            timeline.append(plain)
    return UserStatusView(
        withdrawal_id=view.withdrawal_id,
        user_id=view.user_id,
        amount=view.amount,
        currency=view.currency,
        channel=view.channel,
        bank_code=view.bank_code,
        card_last4=view.card_last4,
        status=view.status,
        category=view.category,
        reason_code=view.reason_code,
        next_step=view.next_step,
        eta=view.eta,
        awaiting_documents=list(view.awaiting_documents),
        timeline=timeline,
        notices=[user_notice(n) for n in view.notices if n.stage in USER_STAGES],
    )
