"""Records workflow histories for the replay test (tests/workflows/test_replay.py).

    .venv/bin/python -m tests.record_histories

Run it only when a workflow change is deliberately incompatible and every running workflow
has finished (otherwise guard the change with workflow.patched() and keep the old files)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

from aiosmtpd.controller import Controller
from temporalio.testing import WorkflowEnvironment

from sentinel.models import ReviewDecision
from tests.support.common import free_port
from tests.support.decisions import signed
from tests.support.scripted_channel import ScriptedChannel
from tests.support.smtp import SmtpSink
from tests.support.temporal import DEV_CONVERTER
from tests.support.workflow_harness import make_request, make_settings, running
from workflows import search_attributes as sa

OUT = Path(__file__).resolve().parents[1] / "workflows" / "histories"


async def scenario(env, settings, name: str) -> None:
    wid = f"replay-{name}-{uuid.uuid4().hex[:6]}"
    submit = ("ACCEPTED", None)
    queries = [("PROCESSING", None)]
    channel = ScriptedChannel(submit=submit, queries=queries)
    async with running(env, settings, channel) as client:
        if name == "large_amount_approved":
            handle = await client.start_withdrawal(make_request(wid, amount="60000.00"))
            await env.sleep(5)
            await client.review(
                wid, await signed(env, wid, ReviewDecision(decision="approve", reviewer="rev-1", reason="ok"))
            )
            await handle.signal("bank_callback", channel.callback(wid, "SUCCEEDED", None, "evt-1"))
        else:
            handle = await client.start_withdrawal(make_request(wid))
            if name == "account_error":
                await handle.signal("bank_callback", channel.callback(wid, "FAILED", "AC04", "evt-1"))
            elif name == "delayed_then_success":
                await env.sleep(timedelta(minutes=40))
                await handle.signal("bank_callback", channel.callback(wid, "SUCCEEDED", None, "evt-1"))
            elif name == "risk_hold_rejected":
                await handle.signal("bank_callback", channel.callback(wid, "HELD", "FR01", "evt-1"))
                await env.sleep(5)
                await client.review(
                    wid,
                    await signed(
                        env, wid, ReviewDecision(decision="reject", reviewer="rev-1", reason="fraud")
                    ),
                )
            elif name == "success_then_return":
                await handle.signal("bank_callback", channel.callback(wid, "SUCCEEDED", None, "evt-1"))
                await env.sleep(60)
                await handle.signal("bank_callback", channel.callback(wid, "RETURNED", "AC04", "evt-2"))
        await handle.result()
        history = await handle.fetch_history()
    (OUT / f"{name}.json").write_text(history.to_json())
    print("recorded", name, len(history.events), "events")


async def main() -> None:
    sink = SmtpSink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    beside = Path(sys.executable).parent / "temporal-test-server"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(beside) if beside.exists() else shutil.which("temporal-test-server"),
        data_converter=DEV_CONVERTER,
    )
    await sa.register(env.client)
    tmp = Path(tempfile.mkdtemp())
    settings = make_settings(tmp, sink.port)
    OUT.mkdir(exist_ok=True)
    for name in (
        "account_error",
        "delayed_then_success",
        "risk_hold_rejected",
        "success_then_return",
        "large_amount_approved",
    ):
        await scenario(env, settings, name)
    await env.shutdown()
    controller.stop()


if __name__ == "__main__":
    asyncio.run(main())
