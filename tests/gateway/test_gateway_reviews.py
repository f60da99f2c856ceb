"""The review desk over HTTP (issue #3; R12, R15, R18, R29) with a real worker on the
time-skipping server: the queue and its filters, one case with risk hits, audit trail and
SLA (escalation visible on the desk), assignment, decisions by the authenticated reviewer,
409 for decisions that do not apply, four-eyes, the documents round trip, and the audit
rows. The queue, assignment and audit run on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import SecretStr

from runtime.client import DecisionRefused
from sentinel.decision_tokens import new_signing_key
from sentinel.models import ReviewDecision
from sentinel.taxonomy import WithdrawalStatus
from store.repo import audit_for
from tests.support.gateway_harness import gateway, hold, offline_gateway, settled, whats
from tests.support.workflow_harness import eventually, make_settings

FOUR_EYES = "250000.00"  # CNY, above the four-eyes line


@pytest.fixture()
async def gw(ts_env, tmp_path, smtp_server):
    async with gateway(ts_env, make_settings(tmp_path, smtp_server.port)) as g:
        yield g


async def queue_ids(gw, who: str = "alice", **params) -> list[str]:
    resp = await gw.http.get("/v1/reviews", params=params, headers=gw.key(who))
    assert resp.status_code == 200, resp.text
    return [item["withdrawal_id"] for item in resp.json()["items"]]


def actions(gw, wid: str) -> list[tuple[str, str, str]]:
    return [(a.actor, a.role, a.action) for a in audit_for(gw.engine, wid)]


async def test_a_risk_hold_is_queued_assigned_and_decided(
    ts_env, tmp_path, smtp_server, unique_id, database_url
):
    settings = make_settings(tmp_path, smtp_server.port).model_copy(update={"database_url": database_url})
    async with gateway(ts_env, settings) as gw:
        await hold(gw, unique_id)
        await eventually(_in_queue(gw, unique_id))

        # the queue and its filters (R29)
        resp = await gw.http.get("/v1/reviews", params={"category": "RISK_HOLD"}, headers=gw.key("carol"))
        [item] = [i for i in resp.json()["items"] if i["withdrawal_id"] == unique_id]
        assert resp.json()["total"] >= 1
        assert item["status"] == "UNDER_REVIEW" and item["amount"] == "60000.0000" and item["age_s"] >= 0
        assert unique_id in await queue_ids(gw, min_amount="60000")
        assert unique_id not in await queue_ids(gw, min_amount="60000.01")
        assert unique_id not in await queue_ids(gw, category="PLATFORM_ERROR")
        assert unique_id not in await queue_ids(gw, status="MANUAL_CHECK")
        assert unique_id in await queue_ids(gw, status="UNDER_REVIEW", unassigned="true")
        assert unique_id not in await queue_ids(gw, min_age_s=3600)
        gw.clock.offset = 2 * 3600  # two hours later on the gateway's clock
        assert unique_id in await queue_ids(gw, min_age_s=3600)

        # the case: record, the workflow's view, the rule that hit with its version, the SLA
        case = (await gw.http.get(f"/v1/reviews/{unique_id}", headers=gw.key("alice"))).json()
        assert case["record"]["withdrawal_id"] == unique_id and case["view"]["status"] == "UNDER_REVIEW"
        assert [(h["rule_id"], h["rule_version"]) for h in case["risk_hits"]] == [
            ("large_amount", "2026-11-27.1")
        ]
        assert case["view"]["risk_hits"][0]["documents"] == ["id_photo", "transaction_proof"]
        assert case["sla"]["escalated"] is False and case["sla"]["review_since"]
        assert case["audit"] == []

        # assignment: self, not for others unless supervisor, only to desk staff
        resp = await gw.http.post(f"/v1/reviews/{unique_id}/assign", headers=gw.key("alice"))
        assert resp.status_code == 200 and resp.json() == {
            "withdrawal_id": unique_id,
            "assignee": "alice",
            "previous": None,
        }
        resp = await gw.http.post(
            f"/v1/reviews/{unique_id}/assign", json={"assignee": "alice"}, headers=gw.key("bob")
        )
        assert resp.status_code == 403
        resp = await gw.http.post(
            f"/v1/reviews/{unique_id}/assign", json={"assignee": "mallory"}, headers=gw.key("carol")
        )
        assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "assignee"
        resp = await gw.http.post(
            f"/v1/reviews/{unique_id}/assign", json={"assignee": "bob"}, headers=gw.key("carol")
        )
        assert resp.status_code == 200 and resp.json()["previous"] == "alice"
        assert unique_id in await queue_ids(gw, assignee="bob")
        assert unique_id not in await queue_ids(gw, assignee="alice")
        assert unique_id not in await queue_ids(gw, unassigned="true")
        resp = await gw.http.post(f"/v1/reviews/{unique_id}/assign", headers=gw.key("ops"))
        assert resp.status_code == 403 and "manual checks" in resp.json()["detail"]

        # bad decisions change nothing
        bad = [
            ({"decision": "approve", "reason": "ok", "reviewer": "carol"}, "reviewer"),  # never from the body
            ({"decision": "maybe", "reason": "ok"}, "decision"),
            ({"decision": "approve"}, "reason"),
            ({"decision": "approve", "reason": "   "}, "reason"),
            (
                {"decision": "request_documents", "reason": "need more", "documents": ["passport_scan"]},
                "documents",
            ),
            ({"decision": "approve", "reason": "ok", "documents": ["id_photo"]}, ""),
        ]
        for body, field in bad:
            resp = await gw.http.post(f"/v1/reviews/{unique_id}/decision", json=body, headers=gw.key("bob"))
            assert resp.status_code == 422, (body, resp.text)
            assert field in [e["field"] for e in resp.json()["detail"]], (body, resp.json())
        resp = await gw.http.post(
            f"/v1/reviews/{unique_id}/decision",
            content=b"{oops",
            headers={**gw.key("bob"), "Content-Type": "application/json"},
        )
        assert resp.status_code == 422 and resp.json()["error"] == "invalid request"
        resp = await gw.decide(unique_id, "ops", "approve")
        assert (
            resp.status_code == 403 and "UNDER_REVIEW" in resp.json()["detail"]
        )  # operators: manual checks only

        # the decision: the reviewer is the caller; a repeat is 409
        resp = await gw.decide(unique_id, "bob", "approve", reason="income verified")
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "withdrawal_id": unique_id,
            "decision": "approve",
            "reviewer": "bob",
            "status": "PROCESSING",
        }
        resp = await gw.decide(unique_id, "alice", "reject", reason="too late")
        assert resp.status_code == 409 and resp.json()["error"] == "not awaiting review"
        assert "PROCESSING" in resp.json()["detail"]
        await eventually(_not_in_queue(gw, unique_id))

        audit = audit_for(gw.engine, unique_id)
        assert [(a.actor, a.role, a.action) for a in audit] == [
            ("alice", "reviewer", "assign"),
            ("carol", "supervisor", "assign"),
            ("bob", "reviewer", "review:approve"),
        ]
        assert audit[1].detail == "assigned to bob (was alice)"
        assert audit[2].detail == "income verified -> PROCESSING" and audit[2].at is not None
        case = (await gw.http.get(f"/v1/reviews/{unique_id}", headers=gw.key("carol"))).json()
        assert [a["action"] for a in case["audit"]] == ["assign", "assign", "review:approve"]
        assert case["view"]["decisions"][0]["reviewer"] == "bob"
        assert case["record"]["needs_review"] is False and case["record"]["assignee"] is None


def _in_queue(gw, wid):
    async def check():
        assert wid in await queue_ids(gw, limit=200)

    return check


def _not_in_queue(gw, wid):
    async def check():
        assert wid not in await queue_ids(gw, limit=200)

    return check


async def test_four_eyes_over_http(gw, unique_id):
    # R29: above the line one approval is not enough, and the same person cannot give both.
    await hold(gw, unique_id, FOUR_EYES)
    resp = await gw.decide(unique_id, "alice", "approve")
    assert resp.status_code == 200 and resp.json()["status"] == "UNDER_REVIEW"  # first of two
    resp = await gw.decide(unique_id, "alice", "approve")
    assert resp.status_code == 409 and resp.json()["error"] == "four-eyes"
    assert "different reviewer" in resp.json()["detail"]
    resp = await gw.decide(unique_id, "bob", "approve")
    assert resp.status_code == 200 and resp.json()["status"] == "PROCESSING"
    view = await gw.view(unique_id)
    assert view.approvals == ["alice", "bob"]
    assert [a for _, _, a in actions(gw, unique_id)] == ["review:approve", "review:approve"]


async def test_decisions_are_signed_by_the_gateway_and_audited_once_by_the_workflow(gw, unique_id):
    # R29, issue #11: the workflow takes a decision only with the gateway's signature, and
    # writes the audit row itself: one per decision, naming the authenticated reviewer.
    await hold(gw, unique_id, FOUR_EYES)
    with pytest.raises(DecisionRefused, match="no decision token"):  # straight to Temporal, unsigned
        await gw.sentinel.review(unique_id, ReviewDecision(decision="approve", reviewer="alice", reason="x"))
    rogue_key = SecretStr(new_signing_key("dev", bytes(range(32))))  # a gateway the workers do not trust
    async with offline_gateway(
        gw.settings.model_copy(update={"decision_signing_key": rogue_key}), gw.sentinel
    ) as rogue:
        rogue.env = gw.env
        resp = await rogue.decide(unique_id, "alice", "approve")
    assert resp.status_code == 503 and resp.json()["error"] == "decision not accepted", resp.text
    assert "signature does not match" in resp.json()["detail"]
    assert audit_for(gw.engine, unique_id) == []

    resp = await gw.decide(unique_id, "alice", "approve", reason="first look")
    assert resp.status_code == 200 and resp.json()["status"] == "UNDER_REVIEW"
    resp = await gw.decide(unique_id, "bob", "approve", reason="second look")
    assert resp.status_code == 200 and resp.json()["status"] == "PROCESSING"
    rows = audit_for(gw.engine, unique_id)
    assert [(a.actor, a.role, a.action, a.detail) for a in rows] == [
        ("alice", "reviewer", "review:approve", "first look -> UNDER_REVIEW"),
        ("bob", "reviewer", "review:approve", "second look -> PROCESSING"),
    ]
    assert all(a.ref for a in rows) and rows[0].ref != rows[1].ref  # each row is its token's nonce
    view = await gw.view(unique_id)
    assert [d.reviewer for d in view.decisions] == ["alice", "bob"] and view.approvals == ["alice", "bob"]


async def test_conflicting_decisions_one_wins_the_other_is_409(gw, unique_id):
    await hold(gw, unique_id)
    approve, reject = await asyncio.gather(
        gw.decide(unique_id, "alice", "approve"), gw.decide(unique_id, "bob", "reject", reason="fraud ring")
    )
    assert sorted([approve.status_code, reject.status_code]) == [200, 409]
    assert len(actions(gw, unique_id)) == 1  # only the decision that applied is audited
    assert len((await gw.view(unique_id)).decisions) == 1


async def test_documents_requested_uploaded_and_back_in_the_queue(gw, unique_id):
    # R18: the reviewer asks over HTTP, the user uploads with their token, the case returns.
    req = await hold(gw, unique_id)
    user = gw.user(req.user_id)
    upload = {"documents": ["bank_statement"], "reference": "doc-77"}
    resp = await gw.http.post(f"/v1/withdrawals/{unique_id}/documents", json=upload, headers=user)
    assert resp.status_code == 409 and resp.json()["error"] == "not waiting for documents"

    resp = await gw.decide(
        unique_id, "carol", "request_documents", reason="source of funds", documents=["bank_statement"]
    )
    assert resp.status_code == 200 and resp.json()["status"] == "UNDER_REVIEW"
    view = await gw.view(unique_id)
    assert view.awaiting_documents == ["bank_statement"]

    resp = await gw.http.post(
        f"/v1/withdrawals/{unique_id}/documents", json=upload, headers=gw.user("someone-else")
    )
    assert resp.status_code == 403
    resp = await gw.http.post(f"/v1/withdrawals/{unique_id}/documents", json=upload, headers=gw.key("alice"))
    assert resp.status_code == 403
    resp = await gw.http.post(
        f"/v1/withdrawals/{unique_id}/documents", json={"documents": [], "reference": "x"}, headers=user
    )
    assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "documents"

    resp = await gw.http.post(f"/v1/withdrawals/{unique_id}/documents", json=upload, headers=user)
    assert resp.status_code == 202 and resp.json() == {
        "ok": True,
        "status_url": f"/v1/withdrawals/{unique_id}",
    }
    view = await gw.wait_for(unique_id, lambda v: not v.awaiting_documents)
    assert view.awaiting_documents == [] and view.status == WithdrawalStatus.UNDER_REVIEW
    assert "documents uploaded: bank_statement" in whats(view)
    resp = await gw.http.post(f"/v1/withdrawals/{unique_id}/documents", json=upload, headers=user)
    assert resp.status_code == 409  # nothing requested any more
    assert unique_id in await queue_ids(gw)

    resp = await gw.decide(unique_id, "alice", "approve", reason="statement fine")
    assert resp.status_code == 200 and resp.json()["status"] == "PROCESSING"
    assert actions(gw, unique_id) == [
        ("carol", "supervisor", "review:request_documents"),
        (f"user:{req.user_id}", "user", "documents_uploaded"),
        ("alice", "reviewer", "review:approve"),
    ]
    assert "doc-77" in audit_for(gw.engine, unique_id)[1].detail


async def test_review_sla_escalation_shows_in_the_case(gw, ts_env, unique_id):
    # R29: no decision within the SLA (1 h in the tests): escalated, visible on the desk.
    await hold(gw, unique_id)
    await ts_env.sleep(timedelta(hours=2))

    async def escalated():
        case = (await gw.http.get(f"/v1/reviews/{unique_id}", headers=gw.key("carol"))).json()
        assert case["sla"]["escalated"] is True, case["sla"]
        return case

    case = await eventually(escalated)
    assert case["sla"]["escalated_at"] >= case["sla"]["review_since"]
    assert "REVIEW_DELAYED" in [n["stage"] for n in case["view"]["notices"]]
    assert any("escalated" in e["what"] for e in case["view"]["timeline"])
    resp = await gw.decide(unique_id, "carol", "reject", reason="declined after escalation")
    assert resp.status_code == 200 and resp.json()["status"] == "FAILED"
    resp = await gw.decide(unique_id, "carol", "reject", reason="again")
    assert resp.status_code == 409  # FAILED: nothing awaits review


async def test_the_owner_sees_their_story_not_the_desks(gw, ts_env, unique_id):
    # R16, R22, R29: held by a risk rule, escalated past the review SLA (operators alerted),
    # approved by a named reviewer with a reason. The owner's token reads none of the desk's
    # details in the raw answer; staff still read all of them.
    req = await hold(gw, unique_id)
    await ts_env.sleep(timedelta(hours=2))
    await gw.wait_for(unique_id, lambda v: "OPERATOR_ALERT" in [n.stage for n in v.notices] and settled(v))
    reason = "payslip matched the employer register"
    assert (await gw.decide(unique_id, "bob", "approve", reason=reason)).status_code == 200
    staff = await gw.wait_for(unique_id, lambda v: bool(v.decisions) and settled(v))
    detail = staff.risk_hits[0].detail  # the rule's threshold, e.g. "amount 60000.00 CNY >= 50000"
    desk_only = ["bob", reason, detail, "large_amount", "OPERATOR_ALERT", "escalated to a supervisor"]

    for key in ("alice", "ops", "payment-service"):
        resp = await gw.http.get(f"/v1/withdrawals/{unique_id}", headers=gw.key(key))
        assert resp.status_code == 200 and [s for s in desk_only if s not in resp.text] == [], key
        assert resp.json()["decisions"][0]["reviewer"] == "bob"

    resp = await gw.http.get(f"/v1/withdrawals/{unique_id}", headers=gw.user(req.user_id))
    assert resp.status_code == 200, resp.text
    assert [s for s in desk_only if s in resp.text] == []
    mine = resp.json()
    assert not {"decisions", "approvals", "risk_hits", "order_id", "policy_version"} & set(mine)
    assert (mine["withdrawal_id"], mine["card_last4"], mine["source"]) == (unique_id, req.card_last4, "live")
    assert Decimal(mine["amount"]) == staff.amount and mine["next_step"]
    whats_seen = [e["what"] for e in mine["timeline"]]
    assert "held for a security review" in whats_seen and "review passed" in whats_seen
    stages = [n["stage"] for n in mine["notices"]]
    assert "UNDER_REVIEW" in stages and "REVIEW_DELAYED" in stages
    assert all("alert" not in n for n in mine["notices"])


async def test_unknown_case_is_404(gw, unique_id):
    assert (await gw.http.get(f"/v1/reviews/nope-{unique_id}", headers=gw.key("alice"))).status_code == 404
    assert (
        await gw.http.post(f"/v1/reviews/nope-{unique_id}/assign", headers=gw.key("alice"))
    ).status_code == 404
    resp = await gw.decide(f"nope-{unique_id}", "alice", "approve")
    assert resp.status_code == 404 and resp.json()["error"] == "not found"
