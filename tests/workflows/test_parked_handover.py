"""Callbacks that came before tracking started are handed to the workflow exactly once
(issue #9 item 5, R10, R11, R33). ``init_tracking`` reads the parked callbacks; they are
marked applied only by the workflow's next progress write, which runs once init's result is
in the history. A worker killed right after init did its work (the worst moment: before its
result is recorded) loses nothing: the next worker runs init again, reads them again, and
the workflow applies each one once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

from sentinel.models import WithdrawalView
from sentinel.settings import ROOT
from sentinel.taxonomy import WithdrawalStatus
from store.db import engine_for
from store.repo import park_callback, parked_callbacks
from tests.support.crashing_worker import DIED
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import _SkippingHandle, make_request, make_settings, running


def _env(settings, target: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env.update(
        {
            "SENTINEL_TEMPORAL_ADDRESS": target,
            "SENTINEL_DATABASE_URL": settings.database_url,
            "SENTINEL_DELAYS_FILE": str(settings.delays_file),
            "SENTINEL_SMTP_PORT": str(settings.smtp_port),
            "SENTINEL_OPERATOR_EMAIL": settings.operator_email or "",
        }
    )
    return env


async def test_parked_callback_survives_a_worker_killed_right_after_init(ts_env, tmp_path, smtp_server):
    settings = make_settings(tmp_path, smtp_server.port)
    engine = engine_for(settings.database_url)
    channel = ScriptedChannel()
    wid = f"PARK-{uuid.uuid4().hex[:6]}"
    obs = channel.callback(wid, "FAILED", "AC04", "evt-early")
    assert park_callback(engine, "generic", obs.event_id, wid, obs.model_dump_json())

    task_queue = f"tq-crash-{uuid.uuid4().hex[:6]}"
    target = ts_env.client.service_client.config.target_host
    crashing = subprocess.Popen(
        [sys.executable, "-m", "tests.support.crashing_worker", "init_tracking", task_queue],
        cwd=ROOT,
        env=_env(settings, target),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        await ts_env.client.start_workflow(
            "WithdrawalWorkflow",
            make_request(wid),
            id=f"withdrawal-{wid}",
            task_queue=task_queue,
        )
        try:
            code = await asyncio.to_thread(crashing.wait, 60)
        except subprocess.TimeoutExpired:
            crashing.kill()
            code = None
        output = crashing.stdout.read().decode() if crashing.stdout else ""
        assert code == DIED, output
        assert "init_tracking done" in output
        # the crash came after init read the parked callback: it is still waiting, not lost
        waiting, _ = parked_callbacks(engine, "undelivered")
        assert [p.event_id for p in waiting] == ["evt-early"]

        async with running(ts_env, settings, channel, task_queue=task_queue) as client:
            view = WithdrawalView.model_validate(await _SkippingHandle(client.handle(wid), ts_env).result())
    finally:
        if crashing.poll() is None:
            crashing.kill()
    assert view.status == WithdrawalStatus.FAILED and view.reason_code == "AC04"
    early = [e for e in view.timeline if e.what == "callback received before tracking started"]
    assert [e.detail for e in early] == ["evt-early"]  # applied once, not lost, not twice
    assert sum(1 for e in view.timeline if e.what.startswith("channel: FAILED")) == 1
    waiting, _ = parked_callbacks(engine, "undelivered")
    assert waiting == []  # marked applied once it was in the history
    applied, _ = parked_callbacks(engine, "all")
    assert [(p.event_id, p.outcome) for p in applied] == [("evt-early", "applied")]
