"""The outage tables through the store (store/incidents.py, migration 0008; issue #14 item 3),
on SQLite and PostgreSQL: an incident is recorded once and resolved once; the banner lookup;
the affected users (open withdrawals of the bank and channel, not told yet); one notice per
user, incident and kind; the bounded read of the event record."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from store.db import make_engine, migrate_engine
from store.events import append_event
from store.incidents import (
    INCIDENT_STATES,
    claim_notice,
    get_incident,
    incident_for,
    incident_for_withdrawal,
    incident_page,
    mark_delivered,
    outage_rows,
    record_incident,
    resolve_incident,
    told_users,
    undelivered,
    untold_affected,
)
from store.tables import OutageIncident, WithdrawalEvent
from store.withdrawals import record_withdrawal
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


def test_incident_page_open_first_then_latest_resolved_with_affected_counts(database_url):
    """Issue #14 items 3 and 5: the console's and the API's list, on both databases. The
    module's PostgreSQL database is shared: only this test's incidents (its bank codes) are
    checked, and totals as differences."""
    engine = make_engine(database_url)
    migrate_engine(engine)
    tag = uuid.uuid4().hex[:6].upper()
    banks = {name: f"{name}{tag}"[:16] for name in ("OPEN", "OLD", "NEW", "QUIET")}
    before = {state: incident_page(engine, state, 1, 0)[1] for state in INCIDENT_STATES}
    try:
        for name, fired, resolved, signals in [
            ("OLD", T0, T0 + timedelta(hours=5), "failure"),  # fired first, resolved last
            ("NEW", T0 + timedelta(hours=2), T0 + timedelta(hours=3), "delay"),
            ("OPEN", T0 + timedelta(hours=1), None, "failure,delay"),
            ("QUIET", T0 + timedelta(hours=4), None, "delay"),
        ]:
            bank = banks[name]
            record_incident(
                engine,
                OutageIncident(
                    id=f"{bank}-generic-x",
                    bank_code=bank,
                    channel="generic",
                    fired_at=fired,
                    summary=f"{bank} via generic: failure 80% vs baseline 1.0% (p=1.0e-09)",
                    signals=signals,
                    config_version="t",
                ),
            )
            if resolved:
                resolve_incident(engine, f"{bank}-generic-x", resolved)
        for wid, user, status, bank, channel in [
            (f"p{tag}", f"v1{tag}", "PROCESSING", banks["OPEN"], "generic"),
            (f"q{tag}", f"v1{tag}", "DELAYED", banks["OPEN"], "generic"),
            (f"r{tag}", f"v2{tag}", "SUCCEEDED", banks["OPEN"], "generic"),  # final: not affected
            (f"s{tag}", f"v3{tag}", "PROCESSING", banks["OPEN"], "alipay"),  # another channel
            (f"t{tag}", f"v3{tag}", "PROCESSING", banks["NEW"], "generic"),  # its incident resolved
        ]:
            record_withdrawal(
                engine,
                make_request(wid, user_id=user, bank_code=bank, channel=channel, created_at=T0),
                status,
            )
        claim_notice(engine, f"{banks['OPEN']}-generic-x", f"v1{tag}", "heads_up", [f"p{tag}", f"q{tag}"])
        claim_notice(engine, f"{banks['NEW']}-generic-x", f"v3{tag}", "heads_up", [f"t{tag}"])
        claim_notice(
            engine, f"{banks['NEW']}-generic-x", f"v3{tag}", "resolved", [f"t{tag}"]
        )  # not a heads-up

        rows, total = incident_page(engine, "all", 200, 0)
        mine = [r for r in rows if r["bank_code"] in banks.values()]
        assert [r["bank_code"] for r in mine] == [banks[n] for n in ("QUIET", "OPEN", "OLD", "NEW")]
        assert total - before["all"] == 4
        by_bank = {r["bank_code"]: r for r in mine}
        opened = by_bank[banks["OPEN"]]
        assert (opened["open_withdrawals"], opened["users_told"], opened["withdrawals_told"]) == (2, 1, 2)
        assert (by_bank[banks["QUIET"]]["open_withdrawals"], by_bank[banks["QUIET"]]["users_told"]) == (0, 0)
        new = by_bank[banks["NEW"]]
        assert (new["open_withdrawals"], new["users_told"], new["withdrawals_told"]) == (None, 1, 1)
        assert opened["signals"] == "failure,delay" and "80% vs baseline 1.0%" in opened["summary"]

        open_rows, open_total = incident_page(engine, "open", 200, 0)
        assert all(r["resolved_at"] is None for r in open_rows) and open_total - before["open"] == 2
        resolved_rows, resolved_total = incident_page(engine, "resolved", 200, 0)
        assert all(r["resolved_at"] is not None for r in resolved_rows)
        assert resolved_total - before["resolved"] == 2
        assert len(incident_page(engine, "all", 1, 0)[0]) == 1  # bounded
        paged = [r["id"] for r in incident_page(engine, "all", 2, 1)[0]]
        assert paged == [r["id"] for r in rows[1:3]]  # the same order a page at a time
        with pytest.raises(ValueError, match="state must be one of"):
            incident_page(engine, "firing")
    finally:
        engine.dispose()
