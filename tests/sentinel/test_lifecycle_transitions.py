"""The lifecycle as a pure, total function (issue #10 item 1): ``step(state, event, policy,
now) -> Transition`` (sentinel/transitions.py), checked without Temporal.

Totality is generated, not hand-listed: every withdrawal status x every event kind (each
payout state of an answer, each timer, each decision, documents, a read receipt, a notice
or audit given up) x a few clock states gives a transition, and one that does nothing says
why. Then the paths one by one: resends (R5), limit waits, operations fixes, reviews (R15,
R18, R29), the delay alarm after the grace period (R23), corrections and returns."""

from __future__ import annotations

import itertools
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta

import pytest

from sentinel.catalogue import default_catalogue
from sentinel.classifier import classify
from sentinel.lifecycle import next_reset
from sentinel.models import Classification, Observation, ReviewDecision, RiskHit, TrackingPolicy
from sentinel.taxonomy import ExceptionCategory, PayoutState, Stage, WithdrawalStatus
from sentinel.transition_types import (
    EVENT_KINDS,
    AlertOperators,
    Answer,
    Audit,
    AuditFailed,
    Decided,
    DeliveryGaveUp,
    DocumentsUploaded,
    LifecycleState,
    Log,
    NoticeRead,
    Notify,
    OpenManualCheck,
    OpenReview,
    QueryAt,
    QueryNow,
    ResubmitAt,
    Started,
    StopEscalations,
    Submit,
    Timer,
    TimerFired,
    WaitUntil,
)
from sentinel.transitions import asks_routes, due_timers, next_wake, step, submit_unconfirmed

_S = WithdrawalStatus
_C = ExceptionCategory
NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
POLICY = TrackingPolicy(
    version="t",
    delay_threshold_s=600,
    grace_s=120,
    manual_check_s=7200,
    poll_schedule_s=[60, 120, 300],
    unknown_poll_s=15,
    return_watch_s=300,
    review_sla_s=3600,
    documents_wait_s=86400,
    eta_hours=24,
)
ALERTS = frozenset({_C.PLATFORM_ERROR, _C.DUPLICATE})
WID = "wd-life-1"
CAT = default_catalogue()


def _obs(status: str, code: str | None = None, *, channel: str = "alipay", **kw) -> Observation:
    return Observation(
        order_id=kw.pop("order_id", WID),
        source=kw.pop("source", "callback"),
        channel=channel,
        raw_status=status,
        raw_code=code,
        classification=kw.pop("cls", None) or classify(CAT, channel, status, code),
        observed_at=NOW,
        **kw,
    )


def _state(status: _S = _S.PROCESSING, **kw) -> LifecycleState:
    base = dict(
        withdrawal_id=WID,
        status=status,
        order_id=WID,
        submitted_at=NOW - timedelta(seconds=30),
        next_poll_at=NOW + timedelta(seconds=30),
        submitted_once=True,
    )
    base.update(kw)
    return LifecycleState(**base)


def _decision(kind: str, reviewer: str = "rev-1", token: str | None = "dt1.x.y") -> ReviewDecision:
    docs = ["id_photo"] if kind == "request_documents" else []
    return ReviewDecision(decision=kind, reviewer=reviewer, reason="checked", documents=docs, token=token)


# --- totality (generated) -----------------------------------------------------------------


def _examples_of_every_event():
    """At least one example of every event kind, every payout state and every timer."""
    for st in PayoutState:
        cls = Classification(state=st, category=_C.BANK_DELAY if st == PayoutState.PROCESSING else None)
        yield Answer(_obs(st.value, cls=cls, event_id=f"e-{st.value}"))
        yield Answer(_obs(st.value, cls=cls), routes=False)
    for timer in Timer:
        yield TimerFired(timer)
    for kind in ("approve", "reject", "request_documents"):
        yield Decided(_decision(kind))
    yield Started()
    yield Started(
        (RiskHit(rule_id="r1", rule_version="1", description="d", documents=["id_photo"], detail="x"),)
    )
    yield DocumentsUploaded(("id_photo",), "upload-1")
    yield NoticeRead(Stage.DELAYED)
    yield DeliveryGaveUp(Stage.DELAYED, "sms", "refused")
    yield DeliveryGaveUp(Stage.OPERATOR_ALERT, "ops_email", "refused")
    yield AuditFailed("rev-1", "approve")


def _clock_states(status: _S):
    """Each status with its clocks in the states the workflow can reach."""
    yield _state(status, submitted_once=False, submitted_at=None, next_poll_at=None)
    yield _state(status)
    yield _state(
        status, review_since=NOW - timedelta(hours=2), awaiting_documents=("id_photo",), documents_due=NOW
    )
    yield _state(status, resend_at=NOW - timedelta(seconds=1), resends=1, category=_C.BANK_DELAY)
    yield _state(
        status, resend_at=NOW, resend_fresh=True, limit_waits=1, four_eyes=True, approvals=("rev-1",)
    )
    yield _state(status, submitted_at=NOW - timedelta(hours=3), delay_since=NOW - timedelta(hours=1))


def test_every_event_kind_has_examples():
    kinds = {type(e) for e in _examples_of_every_event()}
    assert kinds == set(EVENT_KINDS)


@pytest.mark.parametrize("status", list(_S), ids=[s.value for s in _S])
def test_every_status_and_event_gives_a_transition_or_says_why_not(status):
    """R33: total. Every (status x event) gives a transition; one that changes nothing
    (no action but the timeline, same status) names why it was ignored; the state given
    is never changed; what the transition asks for fits its state."""
    count = 0
    for state, event in itertools.product(_clock_states(status), _examples_of_every_event()):
        before = replace(state)
        t = step(state, event, POLICY, NOW, ALERTS)
        count += 1
        assert state == before, "step changed the state it was given"
        doing = [a for a in t.actions if not isinstance(a, Log)]
        if t.ignored is not None:
            assert not doing, (status, event, t)
            assert t.status == state.status
        else:
            assert doing or t.state != state, (status, event, t)
        for a in t.of(Submit):
            assert isinstance(a, Submit) and a.order_id == t.state.order_id
            assert t.status in (_S.PROCESSING, _S.DELAYED)
        if t.status.is_final and t.of(Submit) == []:
            assert not t.of(QueryNow)
        for a in t.of(AlertOperators):
            assert isinstance(a, AlertOperators) and a.notice.channels == ("ops_email",)
        for a in t.of(Notify):
            assert isinstance(a, Notify) and a.stage != Stage.OPERATOR_ALERT
    assert count == 6 * len(list(_examples_of_every_event())) >= 200


def test_a_policy_is_needed_only_once_tracking_runs():
    """Documents and read receipts can arrive before tracking starts (no policy yet)."""
    t = step(_state(_S.SUBMITTED, submitted_once=False), DocumentsUploaded(("id_photo",), "u"), None, NOW)
    assert t.ignored == "no documents were requested"
    with pytest.raises(ValueError, match="no tracking policy"):
        step(_state(_S.SUBMITTED, submitted_once=False), Started(), None, NOW)


# --- start --------------------------------------------------------------------------------


def test_start_submits_the_first_order_and_schedules_the_first_query():
    t = step(LifecycleState(withdrawal_id=WID, order_id=WID), Started(), POLICY, NOW)
    assert t.status == _S.PROCESSING
    assert t.of(Submit) == [Submit(WID)]
    assert t.state.next_poll_at == NOW + timedelta(seconds=60) and t.state.submitted_at == NOW


def test_start_with_risk_hits_holds_for_review_before_anything_is_paid():
    """R12, R15, R18: under review first, with the documents the rules ask for."""
    hits = tuple(
        RiskHit(rule_id=f"r{i}", rule_version="7", description="d", documents=docs, detail="x")
        for i, docs in enumerate((["proof_of_address", "id_photo"], ["id_photo"]))
    )
    t = step(LifecycleState(withdrawal_id=WID, order_id=WID), Started(hits), POLICY, NOW)
    assert t.status == _S.UNDER_REVIEW and t.category == _C.RISK_HOLD and not t.of(Submit)
    assert t.of(OpenReview) == [OpenReview("risk")]
    (n,) = t.of(Notify)
    assert (
        isinstance(n, Notify)
        and n.stage == Stage.UNDER_REVIEW
        and n.documents == ("id_photo", "proof_of_address")
    )
    assert t.state.review_since == NOW


# --- answers ------------------------------------------------------------------------------


def test_duplicates_earlier_orders_and_repeats_are_ignored():
    """R10, R11: whichever answer comes first decides; the rest are recorded, ignored."""
    s = _state(seen_events=frozenset({"e1"}))
    assert step(s, Answer(_obs("SUCCESS", event_id="e1")), POLICY, NOW).ignored == "duplicate delivery"
    t = step(s, Answer(_obs("SUCCESS", order_id=f"{WID}_R2", event_id="e2")), POLICY, NOW)
    assert t.ignored == "an earlier order's answer" and "e2" in t.state.seen_events
    s = _state(last_answer=("SUCCESS", "", "SUCCEEDED"))
    assert step(s, Answer(_obs("SUCCESS")), POLICY, NOW).ignored == "the same answer again"


def test_an_unknown_answer_is_queried_never_failed():
    """R5: an unknown answer is never a failure; query again soon."""
    t = step(_state(), Answer(_obs("NO_ANSWER", cls=Classification(state=PayoutState.UNKNOWN))), POLICY, NOW)
    assert t.status == _S.PROCESSING and t.of(QueryAt) == [QueryAt(NOW + timedelta(seconds=15))]


def test_not_found_resends_the_same_order_three_times_then_a_person_checks():
    cls = Classification(state=PayoutState.UNKNOWN, category=_C.PLATFORM_ERROR)
    s = _state()
    for n in range(1, 4):
        t = step(s, Answer(_obs("NOT_FOUND", cls=cls, source="poll")), POLICY, NOW)
        assert t.of(Submit) == [Submit(WID, same_order=True)] and t.state.same_order_resubmits == n
        assert t.state.submitted_at == s.submitted_at  # the thresholds keep counting
        s = t.state
    t = step(s, Answer(_obs("NOT_FOUND", cls=cls, source="poll")), POLICY, NOW)
    assert t.status == _S.MANUAL_CHECK and t.of(AlertOperators) and not t.of(Submit)


def test_a_passing_refusal_is_sent_again_as_the_next_order_after_a_backoff():
    """Issue #10: ISO RJCT AB08 (bank offline) is resent, never two live orders."""
    obs = _obs("RJCT", "AB08", channel="iso20022")
    t = step(_state(), Answer(obs), POLICY, NOW, ALERTS)
    assert t.status == _S.PROCESSING and not t.of(Notify), "a resend tells the user nothing at once"
    at = NOW + timedelta(seconds=POLICY.auto_retry_s[0])
    assert t.of(ResubmitAt) == [ResubmitAt(at, f"{WID}_R2")] and t.state.resend_at == at
    assert due_timers(t.state, POLICY, at) == (Timer.RESEND,)
    assert next_wake(t.state, POLICY) == min(at, t.state.submitted_at + timedelta(seconds=720))
    r = step(t.state, TimerFired(Timer.RESEND), POLICY, at)
    assert r.of(Submit) == [Submit(f"{WID}_R2")] and r.state.attempt == 2 and r.state.resend_at is None
    assert r.state.submitted_at == t.state.submitted_at, "the delay alarm counts from the first submission"


def test_a_daily_limit_waits_for_the_reset_and_says_the_date():
    """Issue #10: WeChat MONEY_LIMIT waits to the next day, and the user is told when."""
    obs = _obs("FAIL", "MONEY_LIMIT", channel="wechat")
    cls = obs.classification
    assert cls.state == PayoutState.FAILED, cls
    t = step(_state(), Answer(obs), POLICY, NOW, ALERTS)
    reset = next_reset(NOW, POLICY)
    assert t.status == _S.DELAYED and t.state.resend_fresh
    assert t.of(WaitUntil)[0] == WaitUntil(reset, "a limit: sent again when it resets")
    (n,) = t.of(Notify)
    assert (
        isinstance(n, Notify) and n.variant == "LIMIT_WAIT" and n.retry_at == reset and n.status == _S.DELAYED
    )
    assert manual_free(t.state)


def manual_free(s: LifecycleState) -> bool:
    return Timer.MANUAL_CHECK not in due_timers(s, POLICY, NOW + timedelta(days=2))


def test_an_operations_fix_is_a_manual_check_with_an_alert_never_failed():
    """Issue #10: Alipay PRODUCT_NOT_SIGN is our contract: delayed, fixing on our side."""
    t = step(_state(), Answer(_obs("FAIL", "PRODUCT_NOT_SIGN")), POLICY, NOW, ALERTS)
    assert t.status == _S.MANUAL_CHECK and t.of(OpenManualCheck)
    (n,) = t.of(Notify)
    assert isinstance(n, Notify) and n.stage == Stage.MANUAL_CHECK and n.variant == "OPS_FIX"
    assert len(t.of(AlertOperators)) == 1
    assert t.state.next_poll_at == NOW + timedelta(seconds=300)


def test_a_final_refusal_fails_with_the_facts_it_states():
    t = step(_state(), Answer(_obs("FAIL", "PAYEE_NOT_EXIST")), POLICY, NOW, ALERTS)
    assert t.status == _S.FAILED
    (n,) = t.of(Notify)
    assert isinstance(n, Notify) and n.stage == Stage.DETECTED and n.status == _S.FAILED
    assert n.reason_code == "PAYEE_NOT_EXIST" and n.category == t.category


def test_before_the_routes_a_refusal_ended_as_it_did():
    """Histories from before the patch lifecycle-routes replay the old way."""
    t = step(_state(), Answer(_obs("RJCT", "AB08", channel="iso20022"), routes=False), POLICY, NOW)
    assert t.status in (_S.FAILED, _S.MANUAL_CHECK) and not t.of(ResubmitAt)


def test_success_after_an_exception_notice_tells_the_user_on_the_same_channels():
    t = step(_state(_S.DELAYED, exception_notified=True), Answer(_obs("SUCCESS")), POLICY, NOW)
    assert t.status == _S.SUCCEEDED
    (n,) = t.of(Notify)
    assert isinstance(n, Notify) and n.stage == Stage.RESOLVED and n.to_used
    assert not step(_state(), Answer(_obs("SUCCESS")), POLICY, NOW).of(Notify)


def test_a_success_after_the_failure_notice_is_corrected_and_checked():
    t = step(_state(_S.FAILED), Answer(_obs("SUCCESS")), POLICY, NOW)
    assert t.status == _S.MANUAL_CHECK
    assert [a.stage for a in t.of(Notify)] == [Stage.CORRECTION] and t.of(AlertOperators)
    late = step(_state(_S.SUCCEEDED), Answer(_obs("PROCESSING")), POLICY, NOW)
    assert late.ignored == "a late answer after the final status"


def test_an_unknown_return_code_pages_operations():
    cls = Classification(state=PayoutState.RETURNED, category=_C.ACCOUNT_INFO_ERROR, mapped=False)
    obs = _obs("RETURNED", "ZZ99", cls=cls)
    s = _state(_S.SUCCEEDED)
    assert asks_routes(s, obs)
    t = step(s, Answer(obs), POLICY, NOW, ALERTS)
    assert t.status == _S.RETURNED and t.category == _C.RETURNED_AFTER_SUCCESS
    (alert,) = t.of(AlertOperators)
    assert isinstance(alert, AlertOperators) and alert.notice.alert == "bank return with code ZZ99"
    assert not asks_routes(_state(), _obs("SUCCESS")), "only refusals and returns ask for the routes"


def test_a_submission_never_confirmed_is_unknown_or_an_integration_refusal():
    unknown = submit_unconfirmed(WID, "alipay", False, NOW)
    assert unknown.classification.state == PayoutState.UNKNOWN and unknown.raw_status == "NO_ANSWER"
    refused = submit_unconfirmed(WID, "alipay", True, NOW)
    assert refused.classification.category == _C.PLATFORM_ERROR and refused.raw_status == "REJECTED_REQUEST"


# --- timers -------------------------------------------------------------------------------


def test_the_delay_alarm_waits_for_the_grace_period():
    """R23: a short blip raises no alarm; past threshold plus grace the user is told."""
    s = _state(submitted_at=NOW, next_poll_at=NOW + timedelta(hours=1))
    assert due_timers(s, POLICY, NOW + timedelta(seconds=719)) == ()
    at = NOW + timedelta(seconds=720)
    assert due_timers(s, POLICY, at) == (Timer.DELAY_ALARM,)
    t = step(s, TimerFired(Timer.DELAY_ALARM), POLICY, at)
    assert t.status == _S.DELAYED and t.state.eta == at + timedelta(hours=24)
    (n,) = t.of(Notify)
    assert isinstance(n, Notify) and n.stage == Stage.DELAYED and n.eta == t.state.eta and n.variant is None
    assert step(t.state, TimerFired(Timer.DELAY_ALARM), POLICY, at).ignored == "no delay alarm is armed"


def test_the_manual_check_wins_over_the_alarm_and_the_query_comes_last():
    s = _state(submitted_at=NOW - timedelta(hours=3), next_poll_at=NOW)
    assert due_timers(s, POLICY, NOW) == (Timer.MANUAL_CHECK, Timer.POLL)
    t = step(s, TimerFired(Timer.MANUAL_CHECK), POLICY, NOW)
    assert t.status == _S.MANUAL_CHECK and t.of(AlertOperators)
    q = step(t.state, TimerFired(Timer.POLL), POLICY, NOW)
    assert q.of(QueryNow) == [QueryNow(WID, NOW + timedelta(seconds=300))]


def test_polls_follow_the_schedule_then_repeat_its_last_wait():
    s = _state()
    waits = []
    for _ in range(4):
        t = step(s, TimerFired(Timer.POLL), POLICY, NOW)
        waits.append((t.state.next_poll_at - NOW).total_seconds())
        s = t.state
    assert waits == [120, 300, 300, 300]


def test_the_review_sla_escalates_once_and_the_documents_wait_cancels():
    """R29: a review past its SLA goes to a supervisor and the user is told; R18: documents
    not received in time cancel the withdrawal, funds back."""
    s = _state(_S.UNDER_REVIEW, review_since=NOW - timedelta(seconds=3600), category=_C.RISK_HOLD)
    assert due_timers(s, POLICY, NOW) == (Timer.REVIEW_SLA,)
    t = step(s, TimerFired(Timer.REVIEW_SLA), POLICY, NOW)
    assert [a.stage for a in t.of(Notify)] == [Stage.REVIEW_DELAYED] and t.of(AlertOperators)
    assert due_timers(t.state, POLICY, NOW + timedelta(days=9)) == ()
    d = replace(s, awaiting_documents=("id_photo",), documents_due=NOW)
    assert due_timers(d, POLICY, NOW) == (Timer.DOCUMENTS_EXPIRY,), "the documents wait acts alone"
    x = step(d, TimerFired(Timer.DOCUMENTS_EXPIRY), POLICY, NOW)
    assert x.status == _S.FAILED and [a.stage for a in x.of(Notify)] == [Stage.DOCUMENTS_EXPIRED]
    assert x.state.awaiting_documents == ()


# --- people -------------------------------------------------------------------------------


def test_four_eyes_needs_two_different_reviewers_then_releases_a_new_order():
    """R29: four-eyes; after a channel's hold the held order is dead: the next order number."""
    s = _state(_S.UNDER_REVIEW, four_eyes=True, category=_C.RISK_HOLD, subtype="s", reason_code="RC")
    first = step(s, Decided(_decision("approve", "rev-1")), POLICY, NOW)
    assert first.status == _S.UNDER_REVIEW and first.state.approvals == ("rev-1",) and first.of(Audit)
    same = step(first.state, Decided(_decision("approve", "rev-1")), POLICY, NOW)
    assert not same.of(Audit) and not same.of(Submit)
    second = step(first.state, Decided(_decision("approve", "rev-2")), POLICY, NOW)
    (n,) = second.of(Notify)
    assert isinstance(n, Notify) and n.stage == Stage.APPROVED
    assert (n.status, n.reason_code) == (_S.UNDER_REVIEW, "RC"), "the notice states the facts when decided"
    assert second.of(Submit) == [Submit(f"{WID}_R2")] and second.status == _S.PROCESSING
    assert second.category is None and [type(a) for a in second.actions][-2:] == [Submit, Audit]


def test_a_manual_check_approval_confirms_the_same_order():
    t = step(_state(_S.MANUAL_CHECK), Decided(_decision("approve")), POLICY, NOW)
    assert t.of(Submit) == [Submit(WID)]


def test_reject_and_request_documents():
    s = _state(_S.UNDER_REVIEW, category=_C.RISK_HOLD)
    r = step(s, Decided(_decision("reject")), POLICY, NOW)
    assert r.status == _S.FAILED and [a.stage for a in r.of(Notify)] == [Stage.REJECTED]
    d = step(s, Decided(_decision("request_documents")), POLICY, NOW)
    due = NOW + timedelta(days=1)
    assert d.state.awaiting_documents == ("id_photo",) and d.of(WaitUntil) == [
        WaitUntil(due, "the user's documents")
    ]
    assert review_paused(d.state)
    u = step(d.state, DocumentsUploaded(("id_photo",), "ref"), POLICY, NOW + timedelta(hours=1))
    assert u.state.awaiting_documents == () and u.state.review_since == NOW + timedelta(hours=1)


def review_paused(s: LifecycleState) -> bool:
    return Timer.REVIEW_SLA not in due_timers(s, POLICY, NOW + timedelta(days=30))


def test_a_decision_when_nobody_waits_for_one_is_ignored_and_unsigned_ones_are_not_audited():
    t = step(_state(), Decided(_decision("approve")), POLICY, NOW)
    assert t.ignored == "not awaiting review (PROCESSING)" and not t.of(Submit)
    u = step(_state(_S.MANUAL_CHECK), Decided(_decision("reject", token=None)), POLICY, NOW)
    assert u.status == _S.FAILED and not u.of(Audit)


def test_read_receipts_stop_escalations_and_lost_notices_page_operations_once():
    assert step(_state(), NoticeRead(Stage.DELAYED), POLICY, NOW).of(StopEscalations) == [StopEscalations()]
    t = step(_state(operators_alerted=True), DeliveryGaveUp(Stage.DELAYED, "sms", "refused"), POLICY, NOW)
    (a,) = t.of(AlertOperators)
    assert (
        isinstance(a, AlertOperators)
        and a.notice.alert == "The DELAYED notice via sms was given up: refused."
    )
    assert step(_state(), DeliveryGaveUp(Stage.OPERATOR_ALERT, "ops_email", "x"), POLICY, NOW).ignored


def test_the_state_fields_are_all_read_or_written():
    """No dead field in the lifecycle's state: each is named by the lifecycle modules."""
    from pathlib import Path

    src = "".join(
        (Path(__file__).resolve().parents[2] / "sentinel" / f).read_text()
        for f in ("transitions.py", "transition_base.py", "transition_answers.py", "timers.py")
    )
    for f in fields(LifecycleState):
        assert f".{f.name}" in src, f.name
