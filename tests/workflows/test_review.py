"""Risk rules and the review desk inside the workflow (issue #3): a rule hit holds the
payout before it is sent (R12, R15, R18), four-eyes above the configured amount, the review
SLA escalates (R29), requested documents are waited for with their own timer. A decision
applies only with a decision token signed by the gateway (issue #11): a direct update
without one is refused before it reaches history, an unsigned signal is recorded and
ignored, and the workflow writes the audit row of each decision it applies."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType

from runtime.client import DecisionRefused, FourEyesViolation
from sentinel.contracts import DocumentsUpload
from sentinel.decision_tokens import new_signing_key, public_key_of, read_claims
from sentinel.models import ReviewDecision
from sentinel.taxonomy import ExceptionCategory, WithdrawalStatus
from store.db import engine_for
from store.repo import audit_for, get_record, review_queue, risk_hits_for
from tests.support.decisions import sign, signed
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import make_request, make_settings, running


def stages(view) -> list[str]:
    return [n.stage.value for n in view.notices]


def approve(reviewer: str) -> ReviewDecision:
    return ReviewDecision(decision="approve", reviewer=reviewer, reason="checked")


async def test_large_amount_is_held_before_payout(ts_env, tmp_path, smtp_server, unique_id):
    # R12, R15, R18: nothing is paid out; the user hears "under review" and what to send.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id, amount="60000.00"))
        await ts_env.sleep(5)
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.UNDER_REVIEW
        assert view.category == ExceptionCategory.RISK_HOLD
        assert [h.rule_id for h in view.risk_hits] == ["large_amount"]
        assert channel.submits == []
        engine = engine_for(settings.database_url)
        [hit] = risk_hits_for(engine, unique_id)
        assert hit.rule_version == "2026-11-27.1"
        [case] = review_queue(engine)
        assert case.withdrawal_id == unique_id and case.needs_review
        mail = smtp_server.messages[0].content.decode()
        assert "ID photo" in mail or "ID" in mail
        await client.review(unique_id, await signed(ts_env, unique_id, approve("rev-1")))
        assert channel.submits == [unique_id]  # first order number: nothing had been sent
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-1"))
        view = await handle.result()
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert stages(view)[:2] == ["UNDER_REVIEW", "APPROVED"]
    record = get_record(engine, unique_id)
    assert record.status == "SUCCEEDED" and not record.needs_review


async def test_four_eyes_needs_two_different_reviewers(ts_env, tmp_path, smtp_server, unique_id):
    # R29: above the four-eyes line one approval is not enough, and nobody approves twice.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id, amount="250000.00"))
        await ts_env.sleep(5)
        assert (await client.status(unique_id)).four_eyes
        assert (
            await client.review(unique_id, await signed(ts_env, unique_id, approve("rev-1")))
            == "UNDER_REVIEW"
        )
        with pytest.raises(FourEyesViolation):
            await client.review(unique_id, await signed(ts_env, unique_id, approve("rev-1")))
        assert channel.submits == []
        assert (
            await client.review(unique_id, await signed(ts_env, unique_id, approve("rev-2"))) == "PROCESSING"
        )
        view = await client.status(unique_id)
        assert view.approvals == ["rev-1", "rev-2"]
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-1"))
        await handle.result()
    assert channel.submits == [unique_id]


async def test_review_sla_escalates_once(ts_env, tmp_path, smtp_server, unique_id):
    # R29: no decision within the SLA (1 h here): supervisor alerted, user told it takes longer.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id, amount="60000.00"))
        await ts_env.sleep(timedelta(minutes=30))
        assert stages(await client.status(unique_id)) == ["UNDER_REVIEW"]
        await ts_env.sleep(timedelta(hours=3))
        view = await client.status(unique_id)
        assert stages(view) == ["UNDER_REVIEW", "REVIEW_DELAYED", "OPERATOR_ALERT"]
        assert any("escalated" in e.what for e in view.timeline)
        await client.review(
            unique_id,
            await signed(
                ts_env,
                unique_id,
                ReviewDecision(decision="reject", reviewer="sup-1", reason="declined"),
                role="supervisor",
            ),
        )
        view = await handle.result()
    assert view.status == WithdrawalStatus.FAILED


async def test_documents_uploaded_return_the_case_to_review(ts_env, tmp_path, smtp_server, unique_id):
    # R18: the reviewer asks, the user uploads, the case is back in the queue, then approved.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id, amount="60000.00"))
        await ts_env.sleep(5)
        await client.review(
            unique_id,
            await signed(
                ts_env,
                unique_id,
                ReviewDecision(
                    decision="request_documents",
                    reviewer="rev-1",
                    reason="source of funds",
                    documents=["bank_statement"],
                ),
            ),
        )
        view = await client.status(unique_id)
        assert view.awaiting_documents == ["bank_statement"]
        await ts_env.sleep(timedelta(hours=10))  # the review SLA does not run while the user's clock runs
        assert "REVIEW_DELAYED" not in stages(await client.status(unique_id))
        await client.upload_documents(
            unique_id, DocumentsUpload(documents=["bank_statement"], reference="doc-77")
        )
        await ts_env.sleep(5)
        view = await client.status(unique_id)
        assert view.awaiting_documents == [] and view.status == WithdrawalStatus.UNDER_REVIEW
        await client.review(unique_id, await signed(ts_env, unique_id, approve("rev-1")))
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-1"))
        view = await handle.result()
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert any("documents uploaded" in e.what for e in view.timeline)


async def test_documents_not_received_in_time_cancel(ts_env, tmp_path, smtp_server, unique_id):
    # R18: the documents timer (2 days here) ends the wait: cancelled, funds back, user told.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id, amount="60000.00"))
        await ts_env.sleep(5)
        await client.review(
            unique_id,
            await signed(
                ts_env,
                unique_id,
                ReviewDecision(
                    decision="request_documents",
                    reviewer="rev-1",
                    reason="source of funds",
                    documents=["id_photo"],
                ),
            ),
        )
        view = await handle.result()
    assert view.status == WithdrawalStatus.FAILED
    assert stages(view) == ["UNDER_REVIEW", "DOCUMENTS_REQUESTED", "DOCUMENTS_EXPIRED"]
    assert channel.submits == []


async def test_velocity_rule_reads_the_users_history(ts_env, tmp_path, smtp_server, unique_id):
    # R12: the sixth withdrawal within an hour is held; the first five are not.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        for i in range(6):
            await client.start_withdrawal(make_request(f"{unique_id}-{i}", payee_ref="vault:tok_same"))
            await ts_env.sleep(2)
        statuses = [(await client.status(f"{unique_id}-{i}")).status for i in range(6)]
        for i in range(6):
            await client.handle(f"{unique_id}-{i}").terminate("test done")
    assert statuses[:5] == [WithdrawalStatus.PROCESSING] * 5
    assert statuses[5] == WithdrawalStatus.UNDER_REVIEW


def audit_rows(settings, wid: str) -> list[tuple[str, str, str]]:
    return [(a.actor, a.role, a.action) for a in audit_for(engine_for(settings.database_url), wid)]


def whats(view) -> list[str]:
    return [e.what for e in view.timeline]


async def test_a_direct_update_needs_a_valid_decision_token(ts_env, tmp_path, smtp_server, unique_id):
    # R29, issue #11: the Temporal UI or `temporal workflow update` reach the workflow without
    # the gateway. No token, a forged, expired or misdirected one, another reviewer's, or a
    # token used before: refused by the validator, so never written to history.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id, amount="250000.00"))  # four-eyes
        await ts_env.sleep(5)
        now = await ts_env.get_current_time()
        refused = {
            "no token": approve("rev-1"),
            "forged": sign(approve("rev-1"), unique_id, now, key=new_signing_key("dev", bytes(range(32)))),
            "expired": sign(approve("rev-1"), unique_id, now - timedelta(minutes=11)),
            "another withdrawal": sign(approve("rev-1"), f"{unique_id}-x", now),
            "another reviewer": sign(approve("mallory"), unique_id, now, reviewer="rev-1"),
        }
        for _case, decision in refused.items():
            with pytest.raises(DecisionRefused):
                await client.review(unique_id, decision)
        first = sign(approve("rev-1"), unique_id, now)
        assert await client.review(unique_id, first) == "UNDER_REVIEW"
        with pytest.raises(DecisionRefused, match="already used"):
            await client.review(unique_id, first)  # replayed as it was
        nonce = read_claims(first.token).nonce
        with pytest.raises(DecisionRefused, match="already used"):
            await client.review(unique_id, sign(approve("rev-2"), unique_id, now, nonce=nonce))
        view = await client.status(unique_id)
        history = await handle.fetch_history()
    assert view.status == WithdrawalStatus.UNDER_REVIEW and view.approvals == ["rev-1"]
    assert channel.submits == []
    assert [d.token for d in view.decisions] == [None]  # the token stays out of the views
    accepted = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    assert len(accepted) == 1
    assert audit_rows(settings, unique_id) == [("rev-1", "reviewer", "review:approve")]


async def test_unsigned_signals_do_not_approve_a_four_eyes_case(ts_env, tmp_path, smtp_server, unique_id):
    # R29, issue #11: three review_decision signals named alice, alice, mallory approved a
    # 250,000 CNY four-eyes case. Now each is recorded and ignored; signed signals apply,
    # a replayed one is ignored, and each applied one has its audit row.
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id, amount="250000.00"))
        await ts_env.sleep(5)
        for who in ("alice", "alice", "mallory"):
            await handle.signal("review_decision", approve(who))
        await ts_env.sleep(5)
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.UNDER_REVIEW
        assert view.approvals == [] and view.decisions == [] and channel.submits == []
        ignored = [w for w in whats(view) if "ignored: the decision carries no decision token" in w]
        assert len(ignored) == 3
        assert audit_rows(settings, unique_id) == []

        alice = await signed(ts_env, unique_id, approve("alice"))
        await handle.signal("review_decision", alice)
        await handle.signal("review_decision", alice)  # replayed
        await handle.signal("review_decision", await signed(ts_env, unique_id, approve("bob")))
        await ts_env.sleep(5)
        view = await client.status(unique_id)
        assert view.approvals == ["alice", "bob"] and channel.submits == [unique_id]
        assert any("ignored: decision token already used" in w for w in whats(view))
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-1"))
        view = await handle.result()
    assert view.status == WithdrawalStatus.SUCCEEDED
    assert audit_rows(settings, unique_id) == [
        ("alice", "reviewer", "review:approve"),
        ("bob", "reviewer", "review:approve"),
    ]


async def test_a_key_the_workflow_does_not_know_is_fetched_from_the_worker(
    ts_env, tmp_path, smtp_server, unique_id
):
    # issue #11: a key rotation while a case waits. The workflow learnt the keys when it
    # started; a token signed with a newer key makes it ask the worker for the keys it
    # trusts now: refused while the worker does not list the key, applied once it does.
    old, new = new_signing_key("old", bytes(range(32))), new_signing_key("new", bytes(range(1, 33)))
    channel = ScriptedChannel()
    before = make_settings(tmp_path, smtp_server.port, decision_public_keys=public_key_of(old))
    after = make_settings(
        tmp_path, smtp_server.port, decision_public_keys=f"{public_key_of(new)},{public_key_of(old)}"
    )
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with running(ts_env, before, channel, task_queue, max_cached_workflows=0) as client:
        await client.start_withdrawal(make_request(unique_id, amount="60000.00"))
        await ts_env.sleep(5)
        with pytest.raises(DecisionRefused, match="unknown key 'new'"):
            await client.review(unique_id, await signed(ts_env, unique_id, approve("rev-1"), key=new))
        client.started.clear()  # the workflow outlives this worker
    async with running(ts_env, after, channel, task_queue, max_cached_workflows=0) as client:
        client.started.append(unique_id)
        assert (
            await client.review(unique_id, await signed(ts_env, unique_id, approve("rev-1"), key=new))
            == "PROCESSING"
        )
        view = await client.status(unique_id)
    assert channel.submits == [unique_id]
    assert any("refused: decision token signed with unknown key 'new'" in w for w in whats(view))
    assert audit_rows(after, unique_id) == [("rev-1", "reviewer", "review:approve")]
