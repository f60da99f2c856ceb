"""Worker processes killed while inbox inserts are slow, on PostgreSQL (issue #9 item 7;
R8 exactly once, R21 the inbox the user sees).

Three worker processes (tests/support/inbox_kill_worker.py: the real notice activity, retried as
Temporal retries it) deliver the same 24 inbox notices; PostgreSQL makes every inbox insert
slow with two triggers: a DETECTED notice sleeps in the INSERT statement, a DELAYED one in
its COMMIT. One worker is killed (SIGKILL) while its INSERT sleeps (that message is never
written: the transaction dies with the connection), another while its COMMIT sleeps (that
message is written, and the log never hears of it); a new worker starts. Afterwards every
notice is in the inbox exactly once and no inbox delivery row is ``unconfirmed``.

The workers take over a row left ``sending`` after 4 s instead of 60 s (``STALE_S``), so
the test runs in about 20-30 s. Skipped, with the reason, when PostgreSQL is absent."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from sentinel.models import NoticeRequest
from sentinel.settings import ROOT
from sentinel.taxonomy import ExceptionCategory, Severity, Stage, WithdrawalStatus
from store.db import engine_for
from store.tables import InboxMessage, NoticeDelivery
from tests.support.workflow_harness import make_request

pytestmark = [pytest.mark.postgres, pytest.mark.deadline(180)]

SLOW_S = 1.5  # how long each inbox insert sleeps (in its statement or in its commit)
STALE_S = 4.0  # a row left "sending" this long is taken over (production: 60 s); > SLOW_S
PER_STAGE = 12  # notices per stage (DETECTED: slow statement, DELAYED: slow commit)
CONCURRENCY = 4  # notices a worker delivers at once
WAIT_S = 90.0  # generous bound for a stage of the test (never reached when all is well)

#: PostgreSQL makes inbox inserts slow, and names the key a session is inserting or
#: committing in its application_name (``w1:insert:<key>``), so the test sees where it is
SLOW_INBOX = [
    f"""CREATE FUNCTION slow_inbox() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM set_config('application_name',
                         split_part(current_setting('application_name'), ':', 1) || ':' || TG_ARGV[0] || ':' || NEW.key,
                         false);
      PERFORM pg_sleep({SLOW_S});
      RETURN NEW;
    END $$""",
    "CREATE TRIGGER slow_insert BEFORE INSERT ON inbox_message FOR EACH ROW "
    "WHEN (NEW.stage = 'DETECTED') EXECUTE FUNCTION slow_inbox('insert')",
    "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON inbox_message DEFERRABLE INITIALLY DEFERRED "
    "FOR EACH ROW WHEN (NEW.stage = 'DELAYED') EXECUTE FUNCTION slow_inbox('commit')",
]


def notice(wid: str, stage: Stage) -> NoticeRequest:
    category, status = (
        (ExceptionCategory.ACCOUNT_INFO_ERROR, WithdrawalStatus.FAILED)
        if stage == Stage.DETECTED
        else (ExceptionCategory.BANK_DELAY, WithdrawalStatus.DELAYED)
    )
    return NoticeRequest(
        key=f"{wid}/{stage.value}/1/inbox",
        channel="inbox",
        stage=stage,
        category=category,
        severity=Severity.HIGH if stage == Stage.DETECTED else Severity.MEDIUM,
        status=status,
        reason_code="AC04" if stage == Stage.DETECTED else None,
        withdrawal=make_request(wid, user_id=f"u-{wid}"),
    )


class Worker:
    """One worker process (tests/support/inbox_kill_worker.py) started by this test."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log):
        self.name, self.proc, self.log = name, proc, log

    @classmethod
    async def start(cls, name: str, url: str, notices: list[NoticeRequest], folder: Path) -> Worker:
        path = folder / f"{name}.json"
        path.write_text(json.dumps([n.model_dump(mode="json") for n in notices]))
        env = {
            **os.environ,
            "SENTINEL_DATABASE_URL": f"{url}?application_name={name}",
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        log = open(folder / f"{name}.log", "wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.inbox_kill_worker",
            str(path),
            str(STALE_S),
            str(CONCURRENCY),
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        return cls(name, proc, log)

    async def ready(self) -> None:
        line = await asyncio.wait_for(self.proc.stdout.readline(), WAIT_S)
        assert line == b"ready\n", f"{self.name} did not start: {line!r}"

    def go(self) -> None:
        self.proc.stdin.write(b"go\n")

    async def outcomes(self) -> dict[str, str]:
        out, _ = await asyncio.wait_for(self.proc.communicate(), WAIT_S)
        assert self.proc.returncode == 0, f"{self.name} failed (exit {self.proc.returncode}); see its log"
        return json.loads(out.decode().strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()  # SIGKILL
        self.log.close()


async def start_together(workers: list[Worker]) -> None:
    await asyncio.gather(*(w.ready() for w in workers))
    for w in workers:
        w.go()


def sleeping_in(engine, worker: str, phase: str) -> str | None:
    """The notice key ``worker`` is inserting (``insert``) or committing (``commit``) right
    now, inside the slow trigger; None when it is not there."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event = 'PgSleep' AND application_name LIKE :pattern LIMIT 1"
            ),
            {"pattern": f"{worker}:{phase}:%"},
        ).scalar()


async def kill_when_sleeping(engine, worker: Worker, phase: str) -> str:
    """SIGKILL ``worker`` while one of its inbox inserts sleeps in ``phase``; the key."""
    deadline = time.monotonic() + WAIT_S
    while (found := sleeping_in(engine, worker.name, phase)) is None:
        assert worker.proc.returncode is None, f"{worker.name} ended before it was caught in its {phase}"
        assert time.monotonic() < deadline, f"{worker.name} was never seen in an inbox {phase}"
        await asyncio.sleep(0.02)
    worker.kill()
    await worker.proc.wait()
    return found.split(":", 2)[2]


async def test_workers_killed_mid_insert_leave_every_inbox_notice_exactly_once(postgres_url, tmp_path):
    """R8, R21: killed in the middle of an inbox insert (statement or commit), the notice is
    taken over, found or written, and ends ``sent`` with exactly one inbox message; no inbox
    delivery is ``unconfirmed`` (before the inbox could be asked, these were held)."""
    engine = engine_for(postgres_url)
    with engine.begin() as conn:
        for statement in SLOW_INBOX:
            conn.execute(text(statement))
    run = uuid.uuid4().hex[:6]
    detected = [notice(f"K{run}D{i:02d}", Stage.DETECTED) for i in range(PER_STAGE)]
    delayed = [notice(f"K{run}L{i:02d}", Stage.DELAYED) for i in range(PER_STAGE)]
    keys = {n.key for n in detected + delayed}
    started: list[Worker] = []
    try:
        # w1 begins with the slow statements, w2 with the slow commits, w3 in between
        orders = {
            "w1": detected + delayed,
            "w2": delayed + detected,
            "w3": [n for pair in zip(detected, delayed, strict=False) for n in pair],
        }
        started += [await Worker.start(name, postgres_url, order, tmp_path) for name, order in orders.items()]
        await start_together(started)
        w1, w2, w3 = started
        inserting, committing = await asyncio.gather(
            kill_when_sleeping(engine, w1, "insert"), kill_when_sleeping(engine, w2, "commit")
        )
        w4 = await Worker.start("w4", postgres_url, detected[::-1] + delayed[::-1], tmp_path)
        started.append(w4)
        await start_together([w4])
        outcomes = [await w3.outcomes(), await w4.outcomes()]
    finally:
        for w in started:
            w.kill()
    logs = "".join((tmp_path / f"{w.name}.log").read_text(errors="replace") for w in (w3, w4))
    taken = {
        key: "found" if f"notice {key} was already sent" in logs else "written"
        for key in (inserting, committing)
    }
    print(f"\nkilled w1 inserting {inserting}, w2 committing {committing}; the takeover: {taken}")

    for seen in outcomes:  # each survivor saw every notice settled, none held
        assert set(seen) == keys
        assert set(seen.values()) <= {"sent", "duplicate"}, Counter(seen.values())
    with Session(engine) as session:
        stored = list(session.exec(select(InboxMessage).where(InboxMessage.key.in_(keys))))
        rows = {r.key: r for r in session.exec(select(NoticeDelivery).where(NoticeDelivery.key.in_(keys)))}
    per_key = Counter(m.key for m in stored)
    assert per_key == Counter(keys), "every inbox notice exactly once"
    assert Counter(r.status for r in rows.values()) == Counter({"sent": len(keys)})
    assert all(rows[m.key].provider_message_id == f"inbox:{m.id}" for m in stored)
    for key in (inserting, committing):  # the killed attempts' rows were taken over
        assert key in keys and rows[key].attempts >= 2, (key, rows[key].attempts)
