"""The command line (starter/cli.py, typer) for reviewers and operators (issue #3 item 5):
the review queue, decisions (the original ``review ID DECISION`` form still works), parked
callbacks, user tokens and migrations; decisions and re-delivery against a real worker on
the time-skipping server. Decisions go through the gateway's HTTP API with the reviewer's
own API key (issue #11): the key names the reviewer, never a ``--reviewer`` flag."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from sentinel.contracts import ProgressUpdate
from sentinel.decision_tokens import parse_public_keys, verify_decision
from sentinel.models import ReviewDecision
from sentinel.settings import get_settings
from sentinel.taxonomy import ExceptionCategory, WithdrawalStatus
from sentinel.user_tokens import verify_user_token
from starter.cli import app
from store.db import current_revision, engine_for, head_revision, make_engine
from store.repo import (
    audit_for,
    get_parked,
    park_callback,
    parked_for,
    record_unmapped,
    record_withdrawal,
    update_progress,
)
from tests.support.decisions import sign
from tests.support.gateway_harness import DEV_KEYS, HELD, gateway, settled
from tests.support.local_server import serve
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import make_request, make_settings

runner = CliRunner()


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """The CLI reads its settings from the environment (get_settings is cached: reset it)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("SENTINEL_DATABASE_URL", url)
    monkeypatch.setenv("SENTINEL_USER_TOKEN_SECRET", "cli-test-secret")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result


def queued(
    engine,
    wid: str,
    user: str,
    amount: str,
    status: WithdrawalStatus,
    category: ExceptionCategory,
    since: datetime,
) -> None:
    record_withdrawal(engine, make_request(wid, user_id=user, amount=amount), "SUBMITTED")
    update_progress(
        engine,
        ProgressUpdate(withdrawal_id=wid, status=status, category=category, needs_review=True, at=since),
    )


def test_token_user_prints_a_token_for_the_gateway(env):
    result = invoke("token", "user", "u-42", "--ttl", "120")
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert verify_user_token(token, "cli-test-secret", time.time()) == "u-42"
    assert verify_user_token(token, "cli-test-secret", time.time() + 100) == "u-42"
    result = invoke("token", "user", "not a user!")
    assert result.exit_code == 2


def test_keys_decision_prints_a_pair_that_signs_and_verifies(env):  # issue #11
    result = invoke("keys", "decision", "--kid", "k2026-12")
    assert result.exit_code == 0, result.output
    lines = dict(line.split("=", 1) for line in result.output.strip().splitlines())
    signing, public = lines["SENTINEL_DECISION_SIGNING_KEY"], lines["SENTINEL_DECISION_PUBLIC_KEYS"]
    decision = sign(
        ReviewDecision(decision="reject", reviewer="alice", reason="x"), "W1", 1_800_000_000.0, key=signing
    )
    claims = verify_decision(
        decision,
        withdrawal_id="W1",
        public_keys=parse_public_keys(public),
        now=datetime.fromtimestamp(1_800_000_000, UTC),
    )
    assert claims.kid == "k2026-12"
    assert invoke("keys", "decision", "--kid", "not ok!").exit_code == 2


def test_token_user_refuses_a_lifetime_over_the_cap(env, monkeypatch):  # R22, issue #11
    result = invoke("token", "user", "u-42", "--ttl", str(30 * 86400 + 1))
    assert result.exit_code == 2 and "longer than the cap" in result.output, result.output
    monkeypatch.setenv("SENTINEL_USER_TOKEN_MAX_TTL_S", "600")
    get_settings.cache_clear()
    result = invoke("token", "user", "u-42", "--ttl", "601")
    assert result.exit_code == 2 and "SENTINEL_USER_TOKEN_MAX_TTL_S" in result.output, result.output
    assert invoke("token", "user", "u-42", "--ttl", "600").exit_code == 0


def test_review_list_shows_the_queue_with_filters(env):
    engine = engine_for(env)
    now = datetime.now(UTC)
    queued(
        engine,
        "W-old",
        "u-1",
        "60000.00",
        WithdrawalStatus.UNDER_REVIEW,
        ExceptionCategory.RISK_HOLD,
        now - timedelta(hours=3),
    )
    queued(
        engine,
        "W-new",
        "u-2",
        "300.00",
        WithdrawalStatus.MANUAL_CHECK,
        ExceptionCategory.PLATFORM_ERROR,
        now - timedelta(minutes=5),
    )
    record_withdrawal(engine, make_request("W-done", user_id="u-3"), "SUCCEEDED")

    result = invoke("review", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [ln.split()[0] for ln in lines[:-1]] == ["W-old", "W-new"]  # oldest first
    assert "3h00m" in lines[0] or "2h59m" in lines[0]
    assert lines[-1] == "2 case(s) waiting"

    result = invoke("review", "list", "--status", "MANUAL_CHECK", "--json")
    assert [json.loads(ln)["withdrawal_id"] for ln in result.output.splitlines()] == ["W-new"]
    result = invoke("review", "list", "--min-amount", "50000", "--json")
    assert [json.loads(ln)["withdrawal_id"] for ln in result.output.splitlines()] == ["W-old"]
    result = invoke("review", "list", "--min-age", "3600", "--category", "RISK_HOLD", "--json")
    [row] = [json.loads(ln) for ln in result.output.splitlines()]
    assert row["withdrawal_id"] == "W-old" and row["amount"] == "60000.0000" and row["age_s"] >= 3 * 3600 - 5


def test_unmapped_lists_codes_to_add_to_the_catalogue(env):
    # R26: operators list what the catalogue did not map, then add it
    engine = engine_for(env)
    assert invoke("unmapped").output.strip() == "0 unmapped code(s)"
    t0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    record_unmapped(engine, "alipay", "FAIL", "NEW_SUB_CODE", "unmapped", "W1", at=t0)
    record_unmapped(engine, "alipay", "FAIL", "NEW_SUB_CODE", "unmapped", "W2", at=t0 + timedelta(hours=2))
    record_unmapped(engine, "stripe", "weird", None, "unmapped-status", "W3", at=t0 + timedelta(hours=1))
    result = invoke("unmapped")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:4] == ["channel", "status", "code", "count"]
    assert lines[1].split()[:4] == ["alipay", "FAIL", "NEW_SUB_CODE", "2"]  # most recent first
    assert "2026-11-01 08:00:00" in lines[1] and "2026-11-01 10:00:00" in lines[1] and lines[1].endswith("W2")
    assert lines[2].split()[:4] == ["stripe", "weird", "-", "1"]
    assert lines[-1] == "2 unmapped code(s)"


def test_parked_list_and_migrate(env):
    engine = engine_for(env)
    obs = {"order_id": "W9", "raw_status": "SUCCEEDED", "raw_code": None}
    park_callback(engine, "generic", "evt-9", "W9", json.dumps(obs))
    result = invoke("parked", "list")
    assert result.exit_code == 0, result.output
    assert "W9" in result.output and "evt-9" in result.output and "undelivered" in result.output
    assert result.output.strip().endswith("1 parked callback(s)")
    assert invoke("parked", "list", "--state", "late").output.strip() == "0 parked callback(s)"
    assert invoke("parked", "list", "--state", "weird").exit_code == 2

    result = invoke("migrate")
    assert result.exit_code == 0 and result.output.strip() == f"database at revision {head_revision()}"


def test_migrate_a_fresh_database(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("SENTINEL_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        assert invoke("migrate").exit_code == 0
    finally:
        get_settings.cache_clear()
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_bad_decisions_are_refused_before_the_gateway(env):
    # nothing listens at the default gateway URL in this test: a refusal here comes first
    result = invoke("review", "docs", "W1", "--api-key", "k", "--reason", "x", "--documents", "passport_scan")
    assert (
        result.exit_code == 2 and "invalid decision" in result.output and "unknown documents" in result.output
    )
    result = invoke("review", "W1", "maybe", "--api-key", "k", "--reason", "x")
    assert result.exit_code == 2 and "invalid decision" in result.output


def test_a_decision_names_no_reviewer_of_its_own(env, monkeypatch):  # issue #11
    # the reviewer is the API key's owner: a --reviewer flag is refused, and so is no key at all
    result = invoke("review", "approve", "W1", "--reviewer", "mallory", "--api-key", "k", "--reason", "x")
    assert result.exit_code == 2 and "owner of the API key" in result.output
    monkeypatch.delenv("SENTINEL_API_KEY", raising=False)
    result = invoke("review", "approve", "W1", "--reason", "x")
    assert result.exit_code == 2 and "--api-key" in result.output


async def test_decisions_and_redelivery_against_a_worker(
    ts_env, tmp_path, smtp_server, unique_id, monkeypatch
):
    # R29, issue #11: the CLI decides through the gateway (a real HTTP server) with the
    # reviewer's API key; the gateway names and signs, the workflow writes the audit row.
    settings = make_settings(tmp_path, smtp_server.port)
    monkeypatch.setenv("SENTINEL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SENTINEL_DELAYS_FILE", str(settings.delays_file))
    monkeypatch.setenv("SENTINEL_TEMPORAL_ADDRESS", ts_env.client.service_client.config.target_host)
    monkeypatch.setenv("SENTINEL_API_KEY", DEV_KEYS["alice"])
    get_settings.cache_clear()
    try:
        async with gateway(ts_env, settings) as gw, serve(gw.app) as url:
            monkeypatch.setenv("SENTINEL_GATEWAY_URL", url)
            client = gw.sentinel
            held, other = f"{unique_id}-a", f"{unique_id}-b"
            for wid in (held, other):
                await client.start_withdrawal(make_request(wid, user_id=f"u-{wid}", amount=HELD))
                gw.started.add(wid)

            async def wait_held(wid):
                for _ in range(200):
                    view = await client.status(wid)
                    if view.status == WithdrawalStatus.UNDER_REVIEW and settled(view):
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError("not held")

            await wait_held(held)
            await wait_held(other)
            # the CLI runs its own event loop: give it a thread
            result = await asyncio.to_thread(invoke, "review", "list", "--json")
            assert {held, other} <= {json.loads(ln)["withdrawal_id"] for ln in result.output.splitlines()}

            result = await asyncio.to_thread(invoke, "review", "approve", held, "--reason", "verified")
            assert result.exit_code == 0, result.output
            assert result.output.strip() == "PROCESSING"
            result = await asyncio.to_thread(
                invoke, "review", "reject", held, "--api-key", DEV_KEYS["bob"], "--reason", "late"
            )
            assert result.exit_code == 2 and "refused (409)" in result.output
            result = await asyncio.to_thread(
                invoke, "review", "approve", other, "--api-key", "not-a-key", "--reason", "x"
            )
            assert result.exit_code == 2 and "refused (401)" in result.output
            result = await asyncio.to_thread(
                invoke,
                "review",
                other,
                "request_documents",
                "--api-key",
                DEV_KEYS["carol"],
                "--reason",
                "source of funds",
                "--documents",
                "bank_statement",
            )
            assert result.exit_code == 0 and result.output.strip() == "UNDER_REVIEW"  # the original form
            assert (await client.status(other)).awaiting_documents == ["bank_statement"]
            engine = engine_for(settings.database_url)
            [audit] = audit_for(engine, held)  # one row, the workflow's, naming the key's owner
            assert (audit.actor, audit.role, audit.action, audit.detail) == (
                "alice",
                "reviewer",
                "review:approve",
                "verified -> PROCESSING",
            )
            assert audit.ref
            [audit] = audit_for(engine, other)
            assert (audit.actor, audit.role, audit.action) == (
                "carol",
                "supervisor",
                "review:request_documents",
            )

            # an operator re-sends a parked callback; an unknown one is refused
            channel = ScriptedChannel()
            obs = channel.callback(held, "SUCCEEDED", None, "evt-cli")
            park_callback(engine, "generic", "evt-cli", held, obs.model_dump_json())
            [row] = parked_for(engine, held)
            row_id = row.id
            result = await asyncio.to_thread(invoke, "parked", "redeliver", str(row_id), "--operator", "ops")
            assert result.exit_code == 0, result.output
            assert get_parked(engine, row_id).outcome == "redelivered"
            assert audit_for(engine, held)[-1].action == "redeliver_callback"
            result = await asyncio.to_thread(invoke, "parked", "redeliver", "99999")
            assert result.exit_code == 2 and "not found" in result.output
            for _ in range(100):
                if (await client.status(held)).status == WithdrawalStatus.SUCCEEDED:
                    break
                await asyncio.sleep(0.05)
            assert (await client.status(held)).status == WithdrawalStatus.SUCCEEDED
    finally:
        get_settings.cache_clear()
