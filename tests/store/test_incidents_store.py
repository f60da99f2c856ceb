"""The outage tables through the store (store/incidents.py, migration 0008; issue #14 item 3),
on SQLite and PostgreSQL: an incident is recorded once and resolved once; the banner lookup;
the affected users (open withdrawals of the bank and channel, not told yet); one notice per
user, incident and kind; the bounded read of the event record."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from store.db import make_engine, migrate_engine
from store.events import append_event
from store.incidents import (
    claim_notice,
    get_incident,
    incident_for,
    incident_for_withdrawal,
    mark_delivered,
    outage_rows,
    record_incident,
    resolve_incident,
    told_users,
    undelivered,
    untold_affected,
)
from store.repo import record_withdrawal
from store.tables import OutageIncident, WithdrawalEvent
from tests.support.workflow_harness import make_request

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_incidents_notices_and_affected_users(database_url):
    """R27, R8: the store side of an incident's life, on both databases."""
    engine = make_engine(database_url)
    migrate_engine(engine)
    tag = uuid.uuid4().hex[:6]
    bank = f"B{tag}".upper()[:16]
    try:

        def incident() -> OutageIncident:
            return OutageIncident(
                id=f"{bank}-generic-{tag}",
                bank_code=bank,
                channel="generic",
                fired_at=T0,
                summary="failure 80% vs baseline 1%",
                signals="failure",
                config_version="t",
            )

        assert record_incident(engine, incident()) is True
        assert record_incident(engine, incident()) is False  # a retried activity
        inc = incident()
        assert (
            incident_for(engine, bank, "generic").id == inc.id
            and incident_for(engine, bank, "alipay") is None
        )
        users = {f"u1{tag}", f"u2{tag}", f"u3{tag}"}
        for wid, user, status, b in [
            (f"a{tag}", f"u1{tag}", "PROCESSING", bank),
            (f"b{tag}", f"u1{tag}", "DELAYED", bank),
            (f"c{tag}", f"u2{tag}", "SUBMITTED", bank),
            (f"d{tag}", f"u3{tag}", "SUCCEEDED", bank),
            (f"e{tag}", f"u3{tag}", "PROCESSING", "OTHER"),
        ]:
            record_withdrawal(engine, make_request(wid, user_id=user, bank_code=b, created_at=T0), status)
        assert incident_for_withdrawal(engine, f"a{tag}").id == inc.id
        assert incident_for_withdrawal(engine, f"d{tag}") is None  # arrived
        assert incident_for_withdrawal(engine, f"e{tag}") is None  # another bank
        affected = untold_affected(engine, inc.id, bank, "generic", 10)
        assert set(affected) == {f"u1{tag}", f"u2{tag}"} and len(affected[f"u1{tag}"]) == 2
        assert len(untold_affected(engine, inc.id, bank, "generic", 1)) == 1  # bounded
        assert claim_notice(engine, inc.id, f"u1{tag}", "heads_up", [f"a{tag}", f"b{tag}"]) is True
        assert claim_notice(engine, inc.id, f"u1{tag}", "heads_up", [f"a{tag}"]) is False  # never twice
        assert set(untold_affected(engine, inc.id, bank, "generic", 10)) == {f"u2{tag}"}
        [pending] = undelivered(engine, inc.id, "heads_up", 10)
        assert pending.withdrawal_ids == f"a{tag},b{tag}"
        mark_delivered(engine, pending.id)
        assert undelivered(engine, inc.id, "heads_up", 10) == []
        assert [n.user_id for n in told_users(engine, inc.id)] == [f"u1{tag}"]
        assert told_users(engine, inc.id, "resolved") == [] and users
        assert resolve_incident(engine, inc.id, T0 + timedelta(hours=1)) is True
        assert resolve_incident(engine, inc.id, T0 + timedelta(hours=2)) is False  # the first time stays
        resolved_at = get_incident(engine, inc.id).resolved_at
        assert resolved_at.replace(tzinfo=resolved_at.tzinfo or UTC) == T0 + timedelta(hours=1)
        assert (
            incident_for(engine, bank, "generic") is None
            and incident_for_withdrawal(engine, f"a{tag}") is None
        )
    finally:
        engine.dispose()


def test_outage_rows_reads_started_and_status_rows_bounded(database_url):
    engine = make_engine(database_url)
    migrate_engine(engine)
    tag = uuid.uuid4().hex[:6]
    try:
        for i in range(5):
            wid = f"r{tag}{i}"
            record_withdrawal(engine, make_request(wid, created_at=T0 + timedelta(minutes=i)), "SUBMITTED")
            append_event(
                engine,
                WithdrawalEvent(key=f"{wid}/s", withdrawal_id=wid, kind="status", at=T0, status="SUCCEEDED"),
            )
            append_event(
                engine,
                WithdrawalEvent(key=f"{wid}/n", withdrawal_id=wid, kind="notice", at=T0, stage="DELAYED"),
            )
        rows = [r for r in outage_rows(engine, T0, T0 + timedelta(hours=1), 1000) if tag in r.withdrawal_id]
        assert sorted({r.kind for r in rows}) == ["started", "status"] and len(rows) == 10
        assert all(r.at.tzinfo is not None for r in rows)
        assert len(outage_rows(engine, T0, T0 + timedelta(hours=1), 3)) == 3
        later = outage_rows(engine, T0 + timedelta(minutes=3), T0 + timedelta(hours=1), 1000)
        assert {r.withdrawal_id for r in later if tag in r.withdrawal_id} == {f"r{tag}3", f"r{tag}4"}
    finally:
        engine.dispose()
