"""Runs the real workflow and the real activities against the time-skipping server; only
the channel's HTTP edge is scripted (tests/scripted_channel.py)."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import yaml
from temporalio.worker import Worker

from activities.registry import build_activities
from sentinel.models import Contact, WithdrawalRequest
from sentinel.settings import Settings
from starter.client import SentinelClient
from workflows.withdrawal import WithdrawalWorkflow

# Round figures so each test reads as a story: threshold 10 min, grace 2 min,
# manual check at 1 h, polls after 1, 2, 5 min then every 5 min.
TEST_DELAYS = {
    "version": "test-1",
    "defaults": {
        "delay_threshold": "10m",
        "grace": "2m",
        "manual_check": "1h",
        "poll_schedule": ["1m", "2m", "5m"],
        "unknown_poll": "15s",
        "return_watch": "5m",
        "review_sla": "1h",
        "documents_wait": "2d",
        "eta_hours": 24,
    },
}


def make_settings(tmp_path: Path, smtp_port: int, **overrides) -> Settings:
    delays = tmp_path / "delays.yaml"
    delays.write_text(yaml.safe_dump(overrides.pop("delays", TEST_DELAYS)))
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'app.db'}",
        delays_file=delays,
        smtp_port=smtp_port,
        operator_email="ops@sentinel.example",
        **overrides,
    )


def make_request(wid: str, **overrides) -> WithdrawalRequest:
    fields = dict(
        withdrawal_id=wid,
        user_id="u-42",
        amount="1250.00",
        currency="CNY",
        channel="generic",
        bank_code="ICBC",
        card_last4="1234",
        payee_ref="vault:tok_91",
        locale="en-US",
        contact=Contact(email="user42@example.com"),
    )
    fields.update(overrides)
    return WithdrawalRequest(**fields)


@asynccontextmanager
async def running(env, settings: Settings, channel):
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    activities = build_activities(settings, channels={"generic": channel})
    async with Worker(env.client, task_queue=task_queue, workflows=[WithdrawalWorkflow], activities=activities):
        yield SentinelClient(env.client, task_queue)
