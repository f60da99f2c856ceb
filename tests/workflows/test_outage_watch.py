"""The outage watch on the time-skipping server (workflows/outage_watch.py, activities/outage.py;
issue #14 item 3, R27, R8, R21): from an event record with an ICBC outage it fires ONE
incident, alerts operations once by email, records the banner row, sends each affected user
ONE folded heads-up in the inbox (all their open ICBC withdrawals in one message), never a
second one; when the rates recover it resolves, tells only those users, and tells operations.
It continues as new when its history grows, carrying its state."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from sqlmodel import Session, select
from temporalio.worker import Worker

from activities.registry import build_activities
from sentinel.analysis import as_utc
from store.db import engine_for
from store.events import append_event
from store.incidents import get_incident, incident_for, told_users
from store.repo import record_withdrawal
from store.tables import InboxMessage, NoticeDelivery, WithdrawalEvent
from tests.support.workflow_harness import eventually, make_request, make_settings
from workflows.outage_watch import OutageWatchWorkflow, WatchInput

WATCH = {
    "version": "watch-test",
    "evaluate_every": "1m",
    "window": "30m",
    "baseline": "4h",
    "slow_after": {"default": "15m"},
    "notices": {"heads_up_channels": ["inbox", "push"]},
}


def settings_for(tmp_path: Path, smtp_port: int, **outage):
    path = tmp_path / "outage.yaml"
    path.write_text(yaml.safe_dump({**WATCH, **outage}))
    return make_settings(tmp_path, smtp_port, outage_file=path)


def seed(engine, now: datetime) -> None:
    """4 h of normal traffic on ICBC and CCB (one withdrawal every 2 minutes each, arriving
    after a minute); in the last 20 minutes every ICBC withdrawal is refused by the channel;
    from 31 minutes on, ICBC traffic is normal again (rows in the watch's future). Open ICBC
    withdrawals: u1 two, u2 one; u3's ICBC one has arrived; u4's is on CCB."""
    n = 0

    def withdrawal(bank: str, at: datetime, outcome: str | None, user: str = "", category: str | None = None):
        nonlocal n
        n += 1
        wid = f"{bank}-{n}"
        locale = "zh-CN" if user == "u1" else "en-US"
        req = make_request(
            wid, bank_code=bank, created_at=at, user_id=user or f"bulk-{bank}-{n}", locale=locale
        )
        record_withdrawal(engine, req, "SUBMITTED" if outcome is None else outcome, 600)
        if outcome is not None:
            append_event(
                engine,
                WithdrawalEvent(
                    key=f"{wid}/end",
                    withdrawal_id=wid,
                    kind="status",
                    at=at + timedelta(minutes=1),
                    status=outcome,
                    category=category,
                ),
            )
        return wid

    t = now - timedelta(hours=4, minutes=30)
    while t < now + timedelta(hours=2):
        for bank in ("ICBC", "CCB"):
            down = bank == "ICBC" and now - timedelta(minutes=20) <= t < now + timedelta(minutes=1)
            if down:
                withdrawal(bank, t, "FAILED", category="CHANNEL_REJECTED")
            elif t < now - timedelta(minutes=20) or t > now + timedelta(minutes=30):
                withdrawal(bank, t, "SUCCEEDED")
        t += timedelta(minutes=2)
    open_at = now - timedelta(minutes=5)
    withdrawal("ICBC", open_at, None, "u1")
    withdrawal("ICBC", open_at + timedelta(seconds=1), None, "u1")
    withdrawal("ICBC", open_at, None, "u2")
    withdrawal("ICBC", open_at, "SUCCEEDED", "u3")
    withdrawal("CCB", open_at, None, "u4")


def watch_worker(env, settings, task_queue):
    return Worker(
        env.client,
        task_queue=task_queue,
        workflows=[OutageWatchWorkflow],
        activities=build_activities(settings),
    )


async def test_an_outage_fires_once_tells_each_user_once_and_resolves(ts_env, tmp_path, smtp_server):
    """R27, R8, R21: one incident, one operator alert, one folded heads-up per affected user
    (inbox), the banner row while it fires; resolved when the window is normal again, with a
    resolved notice only to those told, and a resolved alert to operations."""
    settings = settings_for(tmp_path, smtp_server.port)
    engine = engine_for(settings.database_url)
    now = as_utc(await ts_env.get_current_time())
    seed(engine, now)
    tq = f"tq-{uuid.uuid4().hex[:8]}"
    async with watch_worker(ts_env, settings, tq):
        handle = await ts_env.client.start_workflow(
            OutageWatchWorkflow.run, WatchInput(max_evaluations=70), id=f"outage-{tq}", task_queue=tq
        )

        async def fired():
            assert incident_for(engine, "ICBC", "generic") is not None
            assert {n.user_id for n in told_users(engine, incident_for(engine, "ICBC", "generic").id)} == {
                "u1",
                "u2",
            }

        await eventually(fired, 20)  # the first evaluation runs at once (no timer before it)
        # a withdrawal started while the incident fires: its user is told at the next evaluation
        record_withdrawal(engine, make_request("ICBC-late", created_at=now, user_id="u5"), "SUBMITTED", 600)
        result = await handle.result()
    assert result.evaluations == 70
    assert len(result.fired) == 1 and result.fired == result.resolved and result.firing == []
    incident = get_incident(engine, result.fired[0])
    assert incident.bank_code == "ICBC" and incident.channel == "generic" and incident.signals == "failure"
    assert incident.resolved_at is not None and incident_for(engine, "ICBC", "generic") is None
    assert {n.user_id for n in told_users(engine, incident.id)} == {"u1", "u2", "u5"}
    assert {n.user_id for n in told_users(engine, incident.id, "resolved")} == {"u1", "u2", "u5"}
    with Session(engine) as session:
        inbox = list(session.exec(select(InboxMessage).where(InboxMessage.key.like("outage/%"))))
        deliveries = list(session.exec(select(NoticeDelivery).where(NoticeDelivery.key.like("outage/%"))))
    by_user = {}
    for m in inbox:
        by_user.setdefault(m.user_id, []).append(m)
    assert sorted(by_user) == ["u1", "u2", "u5"]
    for user, messages in by_user.items():
        heads_up = [m for m in messages if "/heads_up/" in m.key]
        resolved = [m for m in messages if "/resolved/" in m.key]
        assert len(heads_up) == 1 and len(resolved) == 1, user
    u1 = next(m for m in by_user["u1"] if "/heads_up/" in m.key)
    assert "ICBC-" in u1.body and u1.body.count("尾号") == 2  # both withdrawals in one message (zh-CN)
    assert "中国工商银行" in u1.title and "安全" in u1.title
    u2 = next(m for m in by_user["u2"] if "/heads_up/" in m.key)
    assert u2.title.startswith("Industrial and Commercial Bank of China transfers are slow right now")
    assert "Your withdrawal ICBC-" in u2.body and "is safe" in u2.body
    ops = [d for d in deliveries if d.channel == "ops_email"]
    assert sorted(d.stage for d in ops) == ["OPERATOR_ALERT", "OPERATOR_ALERT"] and all(
        d.status == "sent" for d in ops
    )
    subjects = sorted(m.content.decode() for m in smtp_server.messages)
    assert len(subjects) == 2
    assert "[outage] ICBC via generic" in subjects[0] + subjects[1]
    assert "[resolved] ICBC via generic" in subjects[0] + subjects[1]
    # push: no device registered, so no push delivery row at all
    assert {d.channel for d in deliveries} == {"inbox", "ops_email"}


async def test_the_watch_continues_as_new_and_carries_a_firing_incident(ts_env, tmp_path, smtp_server):
    """A short history limit: the watch continues as new every few evaluations, the firing
    incident is carried (it is not fired a second time), and it resolves in a later run."""
    settings = settings_for(tmp_path, smtp_server.port, max_history_events=100)
    engine = engine_for(settings.database_url)
    now = as_utc(await ts_env.get_current_time())
    seed(engine, now)
    tq = f"tq-{uuid.uuid4().hex[:8]}"
    async with watch_worker(ts_env, settings, tq):
        handle = await ts_env.client.start_workflow(
            OutageWatchWorkflow.run, WatchInput(max_evaluations=70), id=f"outage-{tq}", task_queue=tq
        )
        first_run = handle.result_run_id
        result = await handle.result()
        last = await ts_env.client.get_workflow_handle(f"outage-{tq}").describe()
    assert result.evaluations == 70 and last.run_id != first_run  # continued as new
    with Session(engine) as session:
        alerts = list(session.exec(select(NoticeDelivery).where(NoticeDelivery.channel == "ops_email")))
    assert sorted(a.key.split("/")[3] for a in alerts) == ["fired", "resolved"]
    incident_id = alerts[0].key.split("/")[1]
    assert get_incident(engine, incident_id).resolved_at is not None
    assert len(told_users(engine, incident_id)) == 2


async def test_the_dev_stack_starts_one_watch_idempotently(ts_env, tmp_path, smtp_server):
    """``make run`` starts the watch under its fixed id; a second start finds the running one."""
    from starter.outage_watch import ensure_outage_watch
    from workflows.outage_watch import WORKFLOW_ID

    settings = settings_for(tmp_path, smtp_server.port)
    settings = settings.model_copy(update={"task_queue": f"tq-{uuid.uuid4().hex[:8]}"})
    async with watch_worker(ts_env, settings, settings.task_queue):
        first = await ensure_outage_watch(ts_env.client, settings)
        second = await ensure_outage_watch(ts_env.client, settings)
        assert first and first == second
        desc = await ts_env.client.get_workflow_handle(WORKFLOW_ID).describe()
        assert desc.run_id == first and desc.workflow_type == "OutageWatch"
        await ts_env.client.get_workflow_handle(WORKFLOW_ID).terminate("test finished")
