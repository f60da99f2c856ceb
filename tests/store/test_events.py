"""The exception event record (store/events.py; R27): the store writes that add its rows in
their own transaction, append-only enforcement, the period loader, the CLI command and the
operators' API. On SQLite and PostgreSQL where a database is involved."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from sentinel.contracts import ProgressUpdate
from sentinel.settings import get_settings
from sentinel.taxonomy import ExceptionCategory, WithdrawalStatus
from starter.cli import app
from store.db import engine_for
from store.events import AppendOnly, append_event, events_between, events_for, report_between
from store.repo import (
    add_inbox_message,
    claim_delivery,
    finish_delivery,
    read_message,
    record_unmapped,
    record_withdrawal,
    update_progress,
)
from store.tables import InboxMessage, NoticeDelivery, WithdrawalEvent
from tests.support.gateway_harness import bearer, offline_gateway
from tests.support.workflow_harness import make_request, make_settings

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday


def kinds(engine, wid: str) -> list[tuple]:
    return [(e.kind, e.status, e.category, e.reason_code) for e in events_for(engine, wid)]


def progress(engine, wid, status, at, category=None, code=None):
    update_progress(
        engine, ProgressUpdate(withdrawal_id=wid, status=status, category=category, reason_code=code, at=at)
    )


def story(engine, wid: str = "W1", T0: datetime = T0) -> None:  # noqa: N803
    """Started, delayed, told in the inbox, read, paid: what the workflow's activities write."""
    record_withdrawal(engine, make_request(wid, amount="1250.00", created_at=T0), "SUBMITTED", 600.0)
    progress(engine, wid, WithdrawalStatus.PROCESSING, T0 + timedelta(minutes=1))
    progress(engine, wid, WithdrawalStatus.DELAYED, T0 + timedelta(minutes=12), ExceptionCategory.BANK_DELAY)
    key = f"{wid}/DELAYED/1/inbox"
    claim = claim_delivery(
        engine,
        NoticeDelivery(
            key=key,
            withdrawal_id=wid,
            user_id="u-42",
            channel="inbox",
            provider="inbox",
            stage="DELAYED",
            severity="MEDIUM",
        ),
    )
    sent = WithdrawalEvent(
        key=f"notice/{key}",
        withdrawal_id=wid,
        kind="notice",
        at=T0 + timedelta(minutes=13),
        notice_channel="inbox",
        notice_key=key,
        stage="DELAYED",
        rung=0,
    )
    finish_delivery(engine, claim.row_id, status="sent", event=sent)
    msg = add_inbox_message(
        engine,
        InboxMessage(
            key=key,
            user_id="u-42",
            withdrawal_id=wid,
            stage="DELAYED",
            severity="MEDIUM",
            locale="en-US",
            title="t",
            body="b",
        ),
    )
    read_message(engine, "u-42", msg.id, at=T0 + timedelta(minutes=14))
    progress(engine, wid, WithdrawalStatus.SUCCEEDED, T0 + timedelta(minutes=30))


def test_store_writes_add_the_events_once(database_url):
    """R27: start, transitions, notice, read and unmapped code each leave one row; a
    repeated write (a retried activity, a second read) adds none."""
    engine = engine_for(database_url)
    story(engine)
    # repeated: the start, the last transition, the read, the delivery outcome
    assert not record_withdrawal(engine, make_request("W1", created_at=T0), "SUBMITTED", 600.0)
    progress(engine, "W1", WithdrawalStatus.SUCCEEDED, T0 + timedelta(minutes=30))
    msg = add_inbox_message(
        engine,
        InboxMessage(
            key="W1/DELAYED/1/inbox",
            user_id="u-42",
            withdrawal_id="W1",
            stage="DELAYED",
            severity="MEDIUM",
            locale="en-US",
            title="t",
            body="b",
        ),
    )
    read_message(engine, "u-42", msg.id)
    record_unmapped(engine, "generic", "WEIRD", "Z1", "unmapped", "W1", at=T0 + timedelta(minutes=5))
    record_unmapped(engine, "generic", "WEIRD", "Z1", "unmapped", "W1", at=T0 + timedelta(minutes=6))
    assert kinds(engine, "W1") == [
        ("started", "SUBMITTED", None, None),
        ("status", "PROCESSING", None, None),
        ("status", "DELAYED", "BANK_DELAY", None),
        ("notice", None, None, None),
        ("read", None, None, None),
        ("status", "SUCCEEDED", None, None),
        ("unmapped", "WEIRD", None, "Z1"),
    ]
    first = events_for(engine, "W1")[0]
    assert (first.channel, first.bank_code, first.amount_band, first.currency, first.delay_threshold_s) == (
        "generic",
        "ICBC",
        "1k-10k",
        "CNY",
        600,
    )
    read = events_for(engine, "W1")[4]
    assert (read.notice_channel, read.notice_key) == ("inbox", "W1/DELAYED/1/inbox")


def test_the_record_is_append_only(database_url):
    """R27: the store refuses to change or delete an event row; the same key twice is one row."""
    engine = engine_for(database_url)
    row = dict(key="k-1", withdrawal_id="W2", kind="status", at=T0, status="FAILED")
    assert append_event(engine, WithdrawalEvent(**row))
    assert not append_event(engine, WithdrawalEvent(**row))
    with Session(engine) as session:
        stored = session.exec(select(WithdrawalEvent).where(WithdrawalEvent.key == "k-1")).one()
        stored.status = "SUCCEEDED"
        session.add(stored)
        with pytest.raises(AppendOnly, match="no update"):
            session.commit()
    with Session(engine) as session:
        stored = session.exec(select(WithdrawalEvent).where(WithdrawalEvent.key == "k-1")).one()
        session.delete(stored)
        with pytest.raises(AppendOnly, match="no delete"):
            session.commit()
    assert [e.status for e in events_for(engine, "W2")] == ["FAILED"]


def test_period_loads_the_withdrawals_started_in_it(database_url):
    """R27: every row of a withdrawal started in [since, until), even written after until;
    nothing of one started before."""
    engine = engine_for(database_url)  # PostgreSQL: one database per module, so a period of its own
    t0 = T0 + timedelta(days=10)
    story(engine, "W3", t0)
    record_withdrawal(engine, make_request("W0", created_at=t0 - timedelta(days=1)), "SUBMITTED", 600.0)
    progress(
        engine, "W0", WithdrawalStatus.FAILED, t0 + timedelta(minutes=2), ExceptionCategory.PLATFORM_ERROR
    )
    rows = events_between(engine, t0, t0 + timedelta(minutes=20))
    assert {r.withdrawal_id for r in rows} == {"W3"} and len(rows) == 6
    assert all(r.at.tzinfo is not None for r in rows)
    report = report_between(engine, t0, t0 + timedelta(hours=1))
    assert report["withdrawals"] == 1 and report["false_alarms"]["total"] == 1  # paid 17 min after the notice
    assert report["notices"]["by_channel"]["inbox"]["read"] == 1
    with pytest.raises(ValueError, match="later than since"):
        report_between(engine, t0, t0)


@pytest.fixture()
def cli_db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("SENTINEL_DATABASE_URL", url)
    get_settings.cache_clear()
    yield engine_for(url)
    get_settings.cache_clear()


def test_cli_prints_the_report(cli_db):
    """R27: ``sentinel analysis`` in Markdown (default) and JSON; a bad period or format is refused."""
    story(cli_db)
    runner = CliRunner()
    done = runner.invoke(app, ["analysis", "--since", "2026-11-30", "--until", "2026-12-01"])
    assert done.exit_code == 0, done.output
    assert "# Exception analysis" in done.output and "| generic | 1 | 1 | 1.0 |" in done.output
    done = runner.invoke(
        app, ["analysis", "--since", "2026-11-30", "--until", "2026-12-01", "--format", "json"]
    )
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["since"] == "2026-11-30T00:00:00+00:00" and report["exception_rates"]["exceptions"] == 1
    done = runner.invoke(app, ["analysis", "--since", "2026-12-01", "--until", "2026-11-30"])
    assert done.exit_code == 2 and "later than since" in done.output
    done = runner.invoke(
        app, ["analysis", "--since", "2026-11-30", "--until", "2026-12-01", "--format", "xml"]
    )
    assert done.exit_code == 2


async def test_api_for_operators_only(tmp_path):
    """R27: GET /v1/ops/analysis answers operators and supervisors; 401 without a credential,
    403 for a reviewer or a user, 400 for an empty period."""
    settings = make_settings(tmp_path, 9)
    story(engine_for(settings.database_url))
    async with offline_gateway(settings) as gw:
        params = {"since": "2026-11-30T00:00:00Z", "until": "2026-12-01T00:00:00Z"}
        assert (await gw.http.get("/v1/ops/analysis", params=params)).status_code == 401
        assert (
            await gw.http.get("/v1/ops/analysis", params=params, headers=bearer("wrong"))
        ).status_code == 401
        assert (
            await gw.http.get("/v1/ops/analysis", params=params, headers=gw.key("alice"))
        ).status_code == 403
        assert (
            await gw.http.get("/v1/ops/analysis", params=params, headers=gw.user("u-42"))
        ).status_code == 403
        resp = await gw.http.get("/v1/ops/analysis", params=params, headers=gw.key("ops"))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["withdrawals"] == 1 and body["exception_rates"]["by_bank"]["ICBC"]["exceptions"] == 1
        assert body["notices"]["by_channel"]["inbox"]["time_to_read_s"]["p50"] == 60.0
        assert (
            await gw.http.get(
                "/v1/ops/analysis", params={**params, "margin_min": 10}, headers=gw.key("carol")
            )
        ).json()["false_alarms"]["total"] == 0
        bad = await gw.http.get(
            "/v1/ops/analysis",
            params={"since": params["until"], "until": params["since"]},
            headers=gw.key("ops"),
        )
        assert bad.status_code == 400 and "later than since" in bad.text
