"""The user's view of a withdrawal (sentinel/user_view.py): a whitelist of what the owner
may read, the timeline in plain words, the user's notices only (R16, R22, R29)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sentinel.models import NoticeRecord, ReviewDecision, RiskHit, TimelineEvent, WithdrawalView
from sentinel.taxonomy import ExceptionCategory, Severity, Stage, WithdrawalStatus
from sentinel.user_view import UserStatusView, for_user, plain_event

AT = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
REASON = "salary slip matches the employer register"
THRESHOLD = "amount 60000.00 CNY >= 50000"


def event(what: str, source: str, detail: str | None = None) -> TimelineEvent:
    return TimelineEvent(at=AT, what=what, source=source, detail=detail)


def notice(stage: Stage, key: str, **extra) -> NoticeRecord:
    return NoticeRecord(
        key=key,
        stage=stage,
        category=ExceptionCategory.RISK_HOLD,
        severity=Severity.MEDIUM,
        status=WithdrawalStatus.UNDER_REVIEW,
        channels=["inbox"],
        delivered=["inbox"],
        at=AT,
        **extra,
    )


def desk_view() -> WithdrawalView:
    """A withdrawal held by a risk rule, escalated and approved by two named reviewers."""
    return WithdrawalView(
        withdrawal_id="W1",
        user_id="U1",
        amount=Decimal("60000.00"),
        currency="CNY",
        channel="generic",
        bank_code="ICBC",
        card_last4="1234",
        status=WithdrawalStatus.PROCESSING,
        category=ExceptionCategory.RISK_HOLD,
        subtype="platform-rules",
        reason_code="RISK",
        order_id="W1",
        next_step="wait for the bank",
        eta=AT,
        four_eyes=True,
        approvals=["alice", "bob"],
        awaiting_documents=["id_photo"],
        policy_version="p-7",
        review_since=AT,
        risk_hits=[
            RiskHit(
                rule_id="large_amount",
                rule_version="2026-11-27.1",
                description="large amounts",
                detail=THRESHOLD,
                documents=["id_photo"],
            )
        ],
        decisions=[
            ReviewDecision(decision="approve", reviewer="alice", reason=REASON),
            ReviewDecision(decision="approve", reviewer="bob", reason=REASON),
        ],
        timeline=[
            event("tracking started", "workflow", "p-7"),
            event("risk rule large_amount hit (rules 2026-11-27.1)", "risk", THRESHOLD),
            event("risk rule new_card hit (rules 2026-11-27.1)", "risk", "card added 60 s ago"),
            event("UNDER_REVIEW notice via inbox sent", "notice", "provider msg-9"),
            event("review not decided within 3600 s; escalated to a supervisor", "timer"),
            event("first approval by alice; a second reviewer must approve", "review"),
            event("second approval by the same reviewer alice refused", "review"),
            event("review: approve by bob", "review", REASON),
            event("documents uploaded: id_photo", "user", "ref-77"),
            event("channel: PROCESSING", "callback", "evt-1"),
            event("payout W1 submitted", "submit"),
        ],
        notices=[
            notice(
                Stage.UNDER_REVIEW,
                "W1/UNDER_REVIEW/0",
                documents=["id_photo"],
                read_at=AT,
                rung=1,
                failed=["sms"],
                escalate_at=AT,
            ),
            notice(Stage.OPERATOR_ALERT, "W1/OPERATOR_ALERT/0", alert="review SLA missed by alice"),
            notice(Stage.APPROVED, "W1/APPROVED/0"),
        ],
    )


def test_the_user_reads_none_of_the_desks_details():
    # R22, R29: no reviewer names, reasons, approvals, rule ids or thresholds, operator alerts.
    text = for_user(desk_view()).model_dump_json()
    for secret in (
        "alice",
        "bob",
        REASON,
        THRESHOLD,
        "card added",
        "large_amount",
        "new_card",
        "2026-11-27.1",
        "OPERATOR_ALERT",
        "SLA missed",
        "supervisor",
        "provider msg",
        "evt-1",
        "ref-77",
        "p-7",
        "platform-rules",
        "sms",
    ):
        assert secret not in text, secret


def test_the_user_keeps_what_their_notices_told_them():
    # R16: status, category, reason code, amount, last four, ETA, next step, documents asked for,
    # the user's notices with their read state, the timeline in plain words.
    mine = for_user(desk_view())
    assert (
        mine.status,
        mine.category,
        mine.reason_code,
        mine.amount,
        mine.card_last4,
        mine.eta,
        mine.next_step,
    ) == (
        WithdrawalStatus.PROCESSING,
        ExceptionCategory.RISK_HOLD,
        "RISK",
        Decimal("60000.00"),
        "1234",
        AT,
        "wait for the bank",
    )
    assert mine.awaiting_documents == ["id_photo"]
    assert [(n.key, n.read_at) for n in mine.notices] == [("W1/UNDER_REVIEW/0", AT), ("W1/APPROVED/0", None)]
    assert mine.notices[0].documents == ["id_photo"]
    assert [e.what for e in mine.timeline] == [
        "withdrawal received",
        "held for a security review",  # two rules hit: said once
        "the review takes longer than usual",
        "first approval given; a second approval is needed",
        "review passed",
        "documents uploaded: id_photo",
        "payout sent to the bank",
    ]


def test_only_whitelisted_fields_reach_the_user():
    # R22: a field added to the desk's view later does not reach the user unless listed here.
    assert set(UserStatusView.model_fields) == {
        "withdrawal_id",
        "user_id",
        "amount",
        "currency",
        "channel",
        "bank_code",
        "card_last4",
        "status",
        "category",
        "reason_code",
        "next_step",
        "eta",
        "awaiting_documents",
        "timeline",
        "notices",
    }
    assert set(for_user(desk_view()).notices[0].model_dump()) == {
        "key",
        "stage",
        "category",
        "status",
        "channels",
        "delivered",
        "documents",
        "read_at",
        "at",
    }


def test_an_event_with_no_plain_words_is_not_shown():
    assert plain_event(event("manual check: channel answered 500 three times", "workflow")).what == (
        "we are checking the payout with the bank"
    )
    assert plain_event(event("review decision 'approve' by bob ignored: PROCESSING", "review")) is None
    assert plain_event(event("something new", "workflow")) is None
    assert plain_event(event("tracking started", "notice")) is None  # the source counts too
