"""The dev stack (``make run``, ``python -m starter up``) takes the user's settings over its
embedded defaults (issue #12, item 7): ``SENTINEL_DATABASE_URL=postgresql+psycopg://... make run``
runs the gateway and the worker on PostgreSQL, while the wiring between the processes it
starts stays its own. The last test starts the real stack on PostgreSQL and sees a
withdrawal's rows land there (R8: the delivery log; R30: configuration, not code)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from runtime.client import SentinelClient
from sentinel.models import Contact, WithdrawalRequest
from sentinel.settings import ROOT, Settings
from sentinel.taxonomy import WithdrawalStatus
from starter.devstack import DevStack, Ports
from store.db import engine_for
from store.repo import deliveries_for
from tests.support.common import free_port
from tests.support.fault_helpers import started

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _stack(tmp_path: Path, **kw) -> DevStack:
    return DevStack(data_dir=tmp_path / "data", env_file=tmp_path / ".env", **kw)


def test_user_database_url_wins_over_the_embedded_sqlite(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINEL_DATABASE_URL", PG)
    env = _stack(tmp_path, user_settings_win=True).env()
    assert env["SENTINEL_DATABASE_URL"] == PG
    assert _stack(tmp_path, user_settings_win=True).database_url() == PG


def test_without_user_settings_win_the_stack_keeps_its_own_database(tmp_path, monkeypatch):
    """The end-to-end tests' stacks stay isolated from the developer's environment."""
    monkeypatch.setenv("SENTINEL_DATABASE_URL", PG)
    stack = _stack(tmp_path)
    assert stack.env()["SENTINEL_DATABASE_URL"] == f"sqlite:///{tmp_path / 'data' / 'sentinel.db'}"


def test_embedded_default_applies_when_the_user_set_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("SENTINEL_DATABASE_URL", raising=False)
    monkeypatch.delenv("SENTINEL_DELAYS_FILE", raising=False)
    demo = str(ROOT / "config" / "delays.demo.yaml")
    stack = _stack(tmp_path, user_settings_win=True, extra_defaults={"SENTINEL_DELAYS_FILE": demo})
    env = stack.env()
    assert env["SENTINEL_DATABASE_URL"] == f"sqlite:///{tmp_path / 'data' / 'sentinel.db'}"
    assert env["SENTINEL_DELAYS_FILE"] == demo


def test_a_setting_in_the_env_file_wins_too(tmp_path, monkeypatch):
    """A .env file is read by the children themselves: the stack must not mask it."""
    monkeypatch.delenv("SENTINEL_DATABASE_URL", raising=False)
    monkeypatch.delenv("SENTINEL_DELAYS_FILE", raising=False)
    (tmp_path / ".env").write_text(f"sentinel_database_url={PG}\nSENTINEL_DELAYS_FILE=config/delays.yaml\n")
    stack = _stack(tmp_path, user_settings_win=True, extra_defaults={"SENTINEL_DELAYS_FILE": "demo.yaml"})
    env = stack.env()
    assert "SENTINEL_DATABASE_URL" not in env and "SENTINEL_DELAYS_FILE" not in env
    assert stack.database_url() == PG


def test_the_wiring_between_the_processes_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINEL_TEMPORAL_ADDRESS", "elsewhere:7233")
    monkeypatch.setenv("SENTINEL_GATEWAY_PORT", "1")
    stack = _stack(tmp_path, user_settings_win=True, ports=Ports(temporal=17233, gateway=18700))
    env = stack.env()
    assert env["SENTINEL_TEMPORAL_ADDRESS"] == "127.0.0.1:17233"
    assert env["SENTINEL_GATEWAY_PORT"] == "18700"
    assert env["SENTINEL_DEV_MODE"] == "1"


def test_env_overrides_have_the_last_word(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINEL_DATABASE_URL", PG)
    stack = _stack(
        tmp_path, user_settings_win=True, env_overrides={"SENTINEL_DATABASE_URL": "sqlite:///x.db"}
    )
    assert stack.env()["SENTINEL_DATABASE_URL"] == "sqlite:///x.db"


@pytest.mark.e2e
@pytest.mark.postgres
async def test_the_whole_stack_runs_on_postgresql_by_one_variable(tmp_path, monkeypatch, postgres_url):
    """R8, R11: ``SENTINEL_DATABASE_URL`` set by the user; the stack started as ``make run``
    starts it (user settings win); a withdrawal refused by the bank is recorded and its
    notices are logged in PostgreSQL, and no SQLite app database is made."""
    monkeypatch.setenv("SENTINEL_DATABASE_URL", postgres_url)
    ports = Ports(
        temporal=free_port(), ui=free_port(), smtp=free_port(), simulator=free_port(), gateway=free_port()
    )
    stack = DevStack(
        data_dir=tmp_path / "data",
        ports=ports,
        headless=True,
        extra_defaults={"SENTINEL_DELAYS_FILE": str(ROOT / "config" / "delays.demo.yaml")},
        user_settings_win=True,
        env_file=tmp_path / ".env",  # no developer's .env in the way
    )
    assert stack.database_url() == postgres_url
    wid = f"PG-{uuid.uuid4().hex[:8]}"
    with started(stack):
        async with httpx.AsyncClient() as http:
            (
                await http.put(
                    f"{stack.simulator_url}/_sim/scripts/{wid}", json={"scenario": "account_error"}
                )
            ).raise_for_status()
        client = await SentinelClient.connect(
            Settings(_env_file=None, temporal_address=f"127.0.0.1:{ports.temporal}")  # type: ignore[call-arg]
        )
        await client.start_withdrawal(
            WithdrawalRequest(
                withdrawal_id=wid,
                user_id=f"u-{wid}",
                amount="88.80",
                currency="CNY",
                channel="generic",
                bank_code="CMB",
                card_last4="4321",
                payee_ref="vault:tok_pg",
                locale="zh-CN",
                contact=Contact(email="pg@example.com"),
            )
        )
        engine = engine_for(postgres_url)
        deadline = time.monotonic() + 60
        while True:
            view = await client.status(wid)
            rows = deliveries_for(engine, wid)
            if view.status.is_final and {r.channel for r in rows} >= {"inbox", "email"}:
                break
            assert time.monotonic() < deadline, f"status {view.status}, rows {[r.channel for r in rows]}"
            await asyncio.sleep(0.3)
    assert view.status == WithdrawalStatus.FAILED and view.reason_code == "AC04"
    assert engine.dialect.name == "postgresql"
    assert not (tmp_path / "data" / "sentinel.db").exists(), "the embedded SQLite default was used"
