"""The in-app inbox after a crash between claiming its delivery row and recording it sent
(issue #9 item 7; R8 exactly once, R21 the inbox the user sees), on SQLite and PostgreSQL.

The inbox is our own database: a takeover asks it (the message by its notice key) and finds
the message (the row becomes ``sent``, no second message) or writes it, exactly once. It
never ends ``unconfirmed`` (held), as a provider that cannot be asked would. The notice
activity runs as the worker runs it (``build_activities``, the notice policy in config/).
The same with real worker processes killed mid-insert: tests/activities/test_inbox_kill.py."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, inspect, text, update
from sqlmodel import Session, select
from temporalio.testing import ActivityEnvironment

import activities.notify as notify_module
import notifiers.inbox as inbox_module
import store.repo as repo
from activities.registry import build_activities
from notifiers.base import DeliveryError
from notifiers.inbox import InboxNotifier
from sentinel.models import NoticeRequest
from sentinel.taxonomy import ExceptionCategory, Severity, Stage, WithdrawalStatus
from store.db import engine_for
from store.repo import add_inbox_message, deliveries_for
from store.tables import InboxMessage, NoticeDelivery, utcnow
from tests.support.fake_providers import render
from tests.support.workflow_harness import make_request, make_settings


class Killed(BaseException):
    """The worker process dying (not an error any code path may catch)."""


def inbox_notice(wid: str, stage: Stage = Stage.DETECTED) -> NoticeRequest:
    return NoticeRequest(
        key=f"{wid}/{stage.value}/1/inbox",
        channel="inbox",
        stage=stage,
        category=ExceptionCategory.ACCOUNT_INFO_ERROR,
        severity=Severity.HIGH,
        status=WithdrawalStatus.FAILED,
        reason_code="AC04",
        withdrawal=make_request(wid, user_id=f"u-{wid}"),
    )


@pytest.fixture()
def deliver(tmp_path, database_url):
    """The worker's notice activity on the database under test, and its engine."""
    settings = make_settings(tmp_path, 9, database_url=database_url)
    fn = next(a for a in build_activities(settings) if getattr(a, "__name__", "") == "deliver_notice")
    return fn, engine_for(database_url)


def messages(engine, key: str) -> list[InboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(InboxMessage).where(InboxMessage.key == key)))


def make_stale(engine, key: str) -> None:
    """The attempt that claimed ``key`` is dead: its row has not moved for longer than the
    stale-row wait, so the next attempt may take it over."""
    with Session(engine) as session:
        session.execute(
            update(NoticeDelivery)
            .where(NoticeDelivery.key == key)
            .values(updated_at=utcnow() - timedelta(seconds=repo.STALE_SENDING_S + 5))
        )
        session.commit()


def test_the_inbox_key_is_unique_in_the_migrated_schema(database_url):
    """R8: the migrations give ``inbox_message.key`` a unique constraint (the idempotent
    insert rests on it), on SQLite and PostgreSQL."""
    engine = engine_for(database_url)
    uniques = inspect(engine).get_unique_constraints("inbox_message")
    assert {"name": "uq_inbox_message_key", "column_names": ["key"]} in [
        {"name": u["name"], "column_names": u["column_names"]} for u in uniques
    ]


async def test_message_written_then_crash_the_retry_finds_it(deliver, unique_id, monkeypatch):
    """R8, R21: the message was inserted, the worker died before the row said ``sent``: the
    takeover finds the message by its key, marks the row ``sent``, writes no second one."""
    fn, engine = deliver
    notice = inbox_notice(unique_id)
    real = notify_module.finish_delivery

    def die_before_logging_sent(engine_, row_id, *, status, **kw):
        if status == "sent" and not killed:
            killed.append(row_id)
            raise Killed("worker killed after the inbox insert committed")
        return real(engine_, row_id, status=status, **kw)

    killed: list[int] = []
    monkeypatch.setattr(notify_module, "finish_delivery", die_before_logging_sent)
    env = ActivityEnvironment()
    with pytest.raises(Killed):
        await env.run(fn, notice)
    [stored] = messages(engine, notice.key)
    [row] = deliveries_for(engine, unique_id)
    assert row.status == "sending"
    with pytest.raises(Exception, match="being sent by another attempt"):  # not stale yet: left alone
        await env.run(fn, notice)

    make_stale(engine, notice.key)
    result = await env.run(fn, notice)
    assert result.status == "sent" and result.provider_message_id == f"inbox:{stored.id}"
    assert result.detail == "found at the provider after an interrupted attempt"
    assert [m.id for m in messages(engine, notice.key)] == [stored.id]
    [row] = deliveries_for(engine, unique_id)
    assert (row.status, row.provider_message_id, row.attempts) == ("sent", f"inbox:{stored.id}", 2)
    assert (await env.run(fn, notice)).status == "duplicate"


async def test_crash_before_the_insert_the_retry_writes_it_once(deliver, unique_id, monkeypatch):
    """R8, R21: the worker died after claiming the row and before the insert: the takeover
    finds no message and writes it, once; the row is ``sent``, never ``unconfirmed``."""
    fn, engine = deliver
    notice = inbox_notice(unique_id)
    real = inbox_module.add_inbox_message
    killed: list[str] = []

    def die_before_inserting(engine_, message):
        if not killed:
            killed.append(message.key)
            raise Killed("worker killed before the inbox insert")
        return real(engine_, message)

    monkeypatch.setattr(inbox_module, "add_inbox_message", die_before_inserting)
    env = ActivityEnvironment()
    with pytest.raises(Killed):
        await env.run(fn, notice)
    assert messages(engine, notice.key) == [] and deliveries_for(engine, unique_id)[0].status == "sending"

    make_stale(engine, notice.key)
    result = await env.run(fn, notice)
    assert result.status == "sent" and result.detail is None
    [stored] = messages(engine, notice.key)
    [row] = deliveries_for(engine, unique_id)
    assert (row.status, row.provider_message_id, row.attempts) == ("sent", f"inbox:{stored.id}", 2)


def test_concurrent_inserts_of_one_key_keep_one_message(database_url, unique_id):
    """R8: six workers insert the same notice at once: one message, and every one of them
    gets its id back (none fails)."""
    engine = engine_for(database_url)
    key, workers = f"{unique_id}/DETECTED/1/inbox", 6
    barrier = threading.Barrier(workers)
    ids, errors = [], []

    def insert(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            ids.append(
                add_inbox_message(
                    engine,
                    InboxMessage(
                        key=key,
                        user_id=f"u-{unique_id}",
                        withdrawal_id=unique_id,
                        stage="DETECTED",
                        severity="HIGH",
                        locale="en-US",
                        title=f"attempt {n}",
                        body="Your withdrawal failed.",
                    ),
                ).id
            )
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and len(ids) == workers
    [stored] = messages(engine, key)
    assert set(ids) == {stored.id}


def _waiting_on_a_lock(engine) -> bool:
    """PostgreSQL: some session of this database waits for a lock (our insert waits)."""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar()
        )


@pytest.mark.parametrize("first_attempt", ["commits", "dies"])
async def test_an_insert_waiting_on_an_uncommitted_one_keeps_one_message(
    database_url,
    unique_id,
    first_attempt,
):
    """R8: an earlier attempt's insert of the key is still open (its worker is slow, or dead
    and not yet noticed) when the takeover inserts: the takeover waits for it, then returns
    the earlier message if it committed, or writes its own if it did not. One message."""
    engine = engine_for(database_url)
    key = f"{unique_id}-{first_attempt}/DETECTED/1/inbox"
    row = dict(
        key=key,
        user_id=f"u-{unique_id}",
        withdrawal_id=unique_id,
        stage="DETECTED",
        severity="HIGH",
        locale="en-US",
        body="Your withdrawal failed.",
    )
    earlier = Session(engine)
    earlier.add(InboxMessage(title="earlier attempt", **row))
    earlier.flush()  # inserted, not committed: the key is taken until it ends
    try:
        takeover = asyncio.create_task(
            asyncio.to_thread(add_inbox_message, engine, InboxMessage(title="takeover", **row))
        )
        if engine.dialect.name == "postgresql":  # make sure it really waits before the earlier one ends
            deadline = time.monotonic() + 30
            while not _waiting_on_a_lock(engine):
                assert time.monotonic() < deadline, "the takeover's insert never waited for the earlier one"
                await asyncio.sleep(0.05)
        else:
            await asyncio.sleep(0.3)  # SQLite: the takeover waits for the write lock (busy timeout 30 s)
        if first_attempt == "commits":
            earlier.commit()
        else:
            earlier.rollback()
        stored = await asyncio.wait_for(takeover, 60)
    finally:
        earlier.close()
    [only] = messages(engine, key)
    assert stored.id == only.id
    assert only.title == ("earlier attempt" if first_attempt == "commits" else "takeover")


async def test_an_unreachable_inbox_database_is_a_retryable_delivery_error(tmp_path):
    """R8: when the inbox database cannot be reached, asking and writing both fail as a
    retryable DeliveryError (the activity logs ``unknown``/``failed`` and retries; it never
    gives up on the notice or records it held)."""
    engine = create_engine(f"sqlite:///{tmp_path / 'missing-folder' / 'app.db'}")
    notifier = InboxNotifier(engine)
    notice = inbox_notice("W-UNREACHABLE")
    with pytest.raises(DeliveryError) as err:
        await notifier.find_sent(notice)
    assert err.value.retryable and "database unavailable" in str(err.value)
    with pytest.raises(DeliveryError) as err:
        await notifier.send(notice, render(notice))
    assert err.value.retryable
