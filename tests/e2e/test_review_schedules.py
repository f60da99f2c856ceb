"""The review schedules on the real Temporal dev server (issue #14 item 5, R30): the dev
stack `make run` starts (separate processes: Temporal, the mail sink, the simulator, the
gateway, the worker) gets the daily and weekly schedules, idempotently; a triggered run of
the daily schedule emails its report, with the charts, to operations through the stack's
real aiosmtpd server."""

from __future__ import annotations

import asyncio
import email

import pytest

from runtime.client import connect
from sentinel.settings import ROOT, Settings
from starter.devstack import DevStack, Ports
from starter.schedules import SCHEDULES
from tests.support.common import free_port
from tests.support.fault_helpers import started

pytestmark = pytest.mark.e2e


@pytest.mark.deadline(240)
async def test_schedules_created_once_and_a_triggered_run_emails_the_report(tmp_path):
    """R30: `ensure` creates both schedules, a second `ensure` updates them (no duplicate);
    each is a calendar in UTC starting the review workflow; triggering the daily one runs the
    review and its report arrives by email with its PNG charts inline."""
    ports = Ports(
        temporal=free_port(), ui=free_port(), smtp=free_port(), simulator=free_port(), gateway=free_port()
    )
    stack = DevStack(
        data_dir=tmp_path,
        ports=ports,
        headless=True,
        env_overrides={"SENTINEL_DELAYS_FILE": str(ROOT / "config" / "delays.demo.yaml")},
    )
    with started(stack):
        assert await asyncio.to_thread(stack.ensure_schedules) == {
            "review-daily": "created",
            "review-weekly": "created",
        }
        assert await asyncio.to_thread(stack.ensure_schedules) == {
            "review-daily": "updated",
            "review-weekly": "updated",
        }
        client = await connect(Settings(_env_file=None, temporal_address=f"127.0.0.1:{ports.temporal}"))
        ids = [s.id async for s in await client.list_schedules()]
        assert sorted(ids) == sorted(SCHEDULES)
        daily = await client.get_schedule_handle("review-daily").describe()
        [cal] = daily.schedule.spec.calendars
        assert (cal.hour[0].start, cal.minute[0].start) == (
            0,
            15,
        ) and daily.schedule.spec.time_zone_name == "UTC"
        assert daily.schedule.action.workflow == "ReviewReport" and daily.schedule.action.args
        weekly = await client.get_schedule_handle("review-weekly").describe()
        assert weekly.schedule.spec.calendars[0].day_of_week[0].start == 1

        path = await asyncio.to_thread(stack.review_now, "daily")  # as `make run` does after its demo
        assert path is not None, "no review email arrived at the stack's SMTP server"
        msg = email.message_from_bytes(path.read_bytes())
        assert "daily review" in msg["Subject"]
        assert msg["To"] == "ops@sentinel.example" and msg["X-Review-Report"]
        pngs = [p for p in msg.walk() if p.get_content_type() == "image/png"]
        assert len(pngs) == 5 and all(p.get_payload(decode=True).startswith(b"\x89PNG") for p in pngs)
