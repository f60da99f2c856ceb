"""WithdrawalWorkflow on the time-skipping test server: every scenario of the foundation
issue. Real activities (SQLite inbox, delivery log, email to a real SMTP server); only the
channel's HTTP edge is scripted. Requirement IDs in the comments."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runtime.client import NotAwaitingReview
from sentinel.models import ReviewDecision
from sentinel.taxonomy import ExceptionCategory, Stage, WithdrawalStatus
from store.db import engine_for
from store.repo import deliveries_for, inbox, park_callback, unmapped_codes
from tests.support.decisions import signed
from tests.support.scripted_channel import UNAVAILABLE, ScriptedChannel
from tests.support.workflow_harness import make_request, make_settings, running
from workflows import search_attributes as sa


def stages(view) -> list[str]:
    return [n.stage.value for n in view.notices]


async def test_success_by_callback_before_first_poll(ts_env, tmp_path, smtp_server, unique_id):
    # R11, R23: the callback decides; no poll, and no notice for a plain success.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-1"))
        view = await handle.result()
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert channel.queries == []
    assert view.notices == []
    assert smtp_server.messages == []


async def test_account_error_notifies_inbox_and_email(ts_env, tmp_path, smtp_server, unique_id):
    # R2, R7, R8, R22, R32: precise reason, order number, card ending, in inbox and email.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "AC04", "evt-1"))
        view = await handle.result()
    assert view.status == WithdrawalStatus.FAILED
    assert view.category == ExceptionCategory.ACCOUNT_INFO_ERROR
    assert view.reason_code == "AC04"
    [notice] = view.notices
    assert notice.stage == Stage.DETECTED
    assert set(notice.delivered) == {"inbox", "email"}
    engine = engine_for(settings.database_url)
    messages, unread = inbox(engine, "u-42")
    assert unread == 1 and unique_id in messages[0].body and "1234" in messages[0].body
    assert "4111" not in messages[0].body
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["user42@example.com"]
    body = mail.content.decode()
    assert unique_id in body and "1234" in body
    rows = deliveries_for(engine, unique_id)
    assert sorted((r.channel, r.status) for r in rows) == [("email", "sent"), ("inbox", "sent")]


async def test_callback_twice_acts_once(ts_env, tmp_path, smtp_server, unique_id):
    # R11: the same delivery twice, and the same answer under a new event id: one notice.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        held = channel.callback(unique_id, "HELD", "FR01", "evt-1")
        await handle.signal("bank_callback", held)
        await handle.signal("bank_callback", held)
        await handle.signal("bank_callback", channel.callback(unique_id, "HELD", "FR01", "evt-2"))
        await ts_env.sleep(5)
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.UNDER_REVIEW
        assert stages(view) == ["UNDER_REVIEW"]
        whats = [e.what for e in view.timeline]
        assert "duplicate delivery ignored" in whats
        assert "same answer again, ignored" in whats
        await client.review(
            unique_id,
            await signed(
                ts_env, unique_id, ReviewDecision(decision="reject", reviewer="rev-1", reason="fraud pattern")
            ),
        )
        view = await handle.result()
    assert view.status == WithdrawalStatus.FAILED


async def test_delay_recovering_inside_grace_raises_no_alarm(ts_env, tmp_path, smtp_server, unique_id):
    # R23: past the threshold (10 min) but back inside the grace period (2 min): silence.
    channel = ScriptedChannel(queries=[("PROCESSING", None)])
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await ts_env.sleep(timedelta(minutes=11))
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.PROCESSING
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-ok"))
        view = await handle.result()
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert view.notices == []
    assert len(channel.queries) >= 2  # polling ran meanwhile (R10)


async def test_delay_past_threshold_notifies_exactly_once(ts_env, tmp_path, smtp_server, unique_id):
    # R1, R13, R23: one delay notice however many polls, DELAYED for operators, then resolved.
    channel = ScriptedChannel(queries=[("PROCESSING", None)])
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await ts_env.sleep(timedelta(minutes=40))
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.DELAYED
        assert stages(view) == ["DELAYED"]
        assert view.eta is not None
        assert len(channel.queries) >= 5
        desc = await handle.describe()
        assert desc.typed_search_attributes.get(sa.WITHDRAWAL_STATUS) == "DELAYED"
        assert desc.typed_search_attributes.get(sa.EXCEPTION_CATEGORY) == "BANK_DELAY"
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-ok"))
        view = await handle.result()
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert stages(view) == ["DELAYED", "RESOLVED"]
    assert view.notices[1].channels == view.notices[0].channels  # resolved where it was told


async def test_explicit_bank_delay_code_starts_grace(ts_env, tmp_path, smtp_server, unique_id):
    # R1, R23, R26: a channel code saying the bank is offline starts the grace period at once.
    channel = ScriptedChannel(queries=[("PROCESSING", None)])
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await handle.signal("bank_callback", channel.callback(unique_id, "PROCESSING", "AB08", "evt-1"))
        await ts_env.sleep(timedelta(minutes=3))
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.DELAYED  # 2 min grace, not the 10 min threshold
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-2"))
        view = await handle.result()
    assert stages(view) == ["DELAYED", "RESOLVED"]


async def test_unknown_submit_is_queried_never_failed(ts_env, tmp_path, smtp_server, unique_id):
    # R5: the channel did not answer; query first, then the final answer decides.
    channel = ScriptedChannel(submit=UNAVAILABLE, queries=[("UNKNOWN", None), ("SUCCEEDED", None)])
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        view = await handle.result()
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert view.notices == []
    assert len(channel.submits) == 3  # same order number each time: safe to repeat
    assert set(channel.submits) == {unique_id}
    assert len(channel.queries) == 2
    assert any("querying before anything else" in e.what for e in view.timeline)


async def test_not_found_after_lost_submit_resends_same_order(ts_env, tmp_path, smtp_server, unique_id):
    # R5 (Alipay rule): nothing found for the order -> resend the identical request.
    channel = ScriptedChannel(
        submit=[UNAVAILABLE, UNAVAILABLE, UNAVAILABLE, ("ACCEPTED", None)],
        queries=[("NOT_FOUND", None), ("SUCCEEDED", None)],
    )
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        view = await handle.result()
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert channel.submits == [unique_id] * 4


async def test_risk_hold_review_approve_releases_new_order(ts_env, tmp_path, smtp_server, unique_id):
    # R3, R15, R29, R34: "under review" first, reviewer approves, payout released again.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await handle.signal("bank_callback", channel.callback(unique_id, "HELD", "FR01", "evt-1"))
        await ts_env.sleep(5)
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.UNDER_REVIEW and view.needs_review
        assert (await handle.describe()).typed_search_attributes.get(sa.NEEDS_REVIEW) is True
        status = await client.review(
            unique_id,
            await signed(
                ts_env,
                unique_id,
                ReviewDecision(decision="approve", reviewer="rev-7", reason="customer verified by phone"),
            ),
        )
        assert status == "PROCESSING"
        new_order = f"{unique_id}_R2"
        assert channel.submits == [unique_id, new_order]
        await handle.signal("bank_callback", channel.callback(new_order, "SUCCEEDED", None, "evt-2"))
        view = await handle.result()
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert view.order_id == new_order and view.attempt == 2
    assert stages(view) == ["UNDER_REVIEW", "APPROVED", "RESOLVED"]
    assert [d.reviewer for d in view.decisions] == ["rev-7"]


async def test_review_reject_and_documents(ts_env, tmp_path, smtp_server, unique_id):
    # R15, R18, R29: documents requested (listed), then rejected: funds back, user told.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await handle.signal("bank_callback", channel.callback(unique_id, "HELD", None, "evt-1"))
        await ts_env.sleep(5)
        await client.review(
            unique_id,
            await signed(
                ts_env,
                unique_id,
                ReviewDecision(
                    decision="request_documents",
                    reviewer="rev-1",
                    reason="large amount",
                    documents=["id_photo", "transaction_proof"],
                ),
            ),
        )
        await client.review(
            unique_id,
            await signed(
                ts_env, unique_id, ReviewDecision(decision="reject", reviewer="rev-1", reason="no documents")
            ),
        )
        view = await handle.result()
        with pytest.raises(NotAwaitingReview):
            await client.review(
                unique_id,
                await signed(
                    ts_env, unique_id, ReviewDecision(decision="approve", reviewer="rev-2", reason="late")
                ),
            )
    assert view.status == WithdrawalStatus.FAILED
    assert stages(view) == ["UNDER_REVIEW", "DOCUMENTS_REQUESTED", "REJECTED"]


async def test_review_when_not_awaiting_is_refused(ts_env, tmp_path, smtp_server, unique_id):
    # R29: a decision for a withdrawal that is not under review is refused, not applied.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        with pytest.raises(NotAwaitingReview):
            await client.review(
                unique_id,
                await signed(
                    ts_env, unique_id, ReviewDecision(decision="approve", reviewer="rev-1", reason="x")
                ),
            )
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-1"))
        view = await handle.result()
    assert view.decisions == []


async def test_second_threshold_goes_to_manual_check_and_alerts_operators(
    ts_env, tmp_path, smtp_server, unique_id
):
    # R5, R29: no final answer within an hour: MANUAL_CHECK, operators alerted by email.
    channel = ScriptedChannel(queries=[("PROCESSING", None)])
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await ts_env.sleep(timedelta(minutes=65))
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.MANUAL_CHECK
        assert stages(view) == ["DELAYED", "MANUAL_CHECK", "OPERATOR_ALERT"]
        assert any(m.rcpt_tos == ["ops@sentinel.example"] for m in smtp_server.messages)
        await client.review(
            unique_id,
            await signed(
                ts_env,
                unique_id,
                ReviewDecision(decision="approve", reviewer="ops-1", reason="bank confirmed"),
            ),
        )
        assert channel.submits == [unique_id, unique_id]  # same order: the channel deduplicates
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-9"))
        view = await handle.result()
    assert view.status == WithdrawalStatus.SUCCEEDED


async def test_limit_failure(ts_env, tmp_path, smtp_server, unique_id):
    # R4: over the limit: refused, the user told why and what to do.
    channel = ScriptedChannel(submit=("FAILED", "AM02"))
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        view = await handle.result()
    assert view.status == WithdrawalStatus.FAILED
    assert view.category == ExceptionCategory.BALANCE_OR_LIMIT
    assert stages(view) == ["DETECTED"]


async def test_platform_funds_short_goes_to_operators(ts_env, tmp_path, smtp_server, unique_id):
    # R4/R5: the platform's own float is short (AM04): the user is not blamed; ops must act.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "AM04", "evt-1"))
        await ts_env.sleep(5)
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.MANUAL_CHECK
        assert "OPERATOR_ALERT" in stages(view)
        await client.review(
            unique_id,
            await signed(
                ts_env, unique_id, ReviewDecision(decision="reject", reviewer="ops-1", reason="cancelled")
            ),
        )
        await handle.result()


async def test_unmapped_code_goes_to_manual_check(ts_env, tmp_path, smtp_server, unique_id):
    # R26: a code not in the catalogue is never guessed: a person checks it.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "ZZ99", "evt-1"))
        await ts_env.sleep(5)
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.MANUAL_CHECK
        assert view.category == ExceptionCategory.PLATFORM_ERROR
        await client.review(
            unique_id,
            await signed(
                ts_env, unique_id, ReviewDecision(decision="reject", reviewer="ops-1", reason="bank refused")
            ),
        )
        view = await handle.result()
    assert view.status == WithdrawalStatus.FAILED


async def test_unmapped_answers_of_submit_and_poll_are_counted(ts_env, tmp_path, smtp_server, unique_id):
    # R26: an unmapped code is counted for operators wherever it comes from, not only from
    # callbacks: here the submit answers an unknown status and a poll an unknown code.
    channel = ScriptedChannel(submit=("WEIRD_STATE", None), queries=[("FAILED", "ZZ42")])
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await ts_env.sleep(timedelta(minutes=2))
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.MANUAL_CHECK, view.timeline
        await client.review(
            unique_id,
            await signed(
                ts_env, unique_id, ReviewDecision(decision="reject", reviewer="ops-1", reason="bank refused")
            ),
        )
        await handle.result()
    rows, total = unmapped_codes(engine_for(settings.database_url))
    seen = {(r.channel, r.raw_status, r.raw_code): r for r in rows}
    assert total == 2, seen
    assert seen[("generic", "WEIRD_STATE", "")].last_withdrawal_id == unique_id
    assert seen[("generic", "FAILED", "ZZ42")].count >= 1


async def test_paid_after_a_failure_notice_sends_a_correction(ts_env, tmp_path, smtp_server, unique_id):
    # issue #5 item 4: an earlier notice became wrong (we said failed, the bank says paid):
    # a correction goes to the channels it used, operations check, the reviewer confirms.
    channel = ScriptedChannel(submit=[("PROCESSING", None), ("SUCCEEDED", None)])
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "AC04", "evt-1"))
        await ts_env.sleep(5)
        assert (await client.status(unique_id)).status == WithdrawalStatus.FAILED
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-2"))
        await ts_env.sleep(5)
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.MANUAL_CHECK
        assert stages(view) == ["DETECTED", "CORRECTION", "OPERATOR_ALERT"]
        detected, correction = view.notices[0], view.notices[1]
        assert correction.channels == detected.channels and set(correction.delivered) == set(
            detected.channels
        )
        mails = [m for m in smtp_server.messages if m.rcpt_tos == ["user42@example.com"]]
        assert len(mails) == 2 and b"Correction" in mails[1].content
        await client.review(
            unique_id,
            await signed(
                ts_env,
                unique_id,
                ReviewDecision(decision="approve", reviewer="ops-1", reason="bank confirms paid"),
            ),
        )
        view = await handle.result()
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert channel.submits == [unique_id, unique_id]  # confirmed under the same order number
    assert stages(view)[-1] == "RESOLVED"


async def test_success_then_return(ts_env, tmp_path, smtp_server, unique_id):
    # R2 (returned after success): the return window after success catches the bank return.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-1"))
        await ts_env.sleep(timedelta(minutes=1))
        await handle.signal("bank_callback", channel.callback(unique_id, "RETURNED", "AC04", "evt-2"))
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-1"))
        view = await handle.result()
    assert view.status == WithdrawalStatus.RETURNED
    assert view.category == ExceptionCategory.ACCOUNT_INFO_ERROR
    assert stages(view) == ["RETURNED"]


async def test_repeated_start_is_harmless(ts_env, tmp_path, smtp_server, unique_id):
    # R34: the payment service may retry its start call.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        first = await client.start_withdrawal(make_request(unique_id))
        second = await client.start_withdrawal(make_request(unique_id))
        assert first.id == second.id
        assert (await first.describe()).run_id == (await second.describe()).run_id
        await first.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-1"))
        await first.result()
        third = await client.start_withdrawal(make_request(unique_id))  # after it finished
        assert (await third.describe()).run_id == (await first.describe()).run_id
    assert channel.submits == [unique_id]


async def test_callback_parked_before_start_is_delivered(ts_env, tmp_path, smtp_server, unique_id):
    # Never lost: a callback that came before tracking started is applied at start.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    early = channel.callback(unique_id, "FAILED", "AC04", "evt-early")
    assert park_callback(
        engine_for(settings.database_url), "generic", "evt-early", unique_id, early.model_dump_json()
    )
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        view = await handle.result()
    assert view.status == WithdrawalStatus.FAILED
    assert any("before tracking started" in e.what for e in view.timeline)
