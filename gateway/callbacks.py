"""Callback intake: verify and parse the channel's native callback, classify it, and hand
it to the withdrawal's workflow. A callback for a withdrawal that is not tracked (yet) is
parked in the database and delivered when the workflow starts: never dropped (R11)."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from sqlalchemy.engine import Engine
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from channels.base import Channel, withdrawal_id_for
from sentinel.models import Observation
from starter.client import SentinelClient
from store.repo import add_audit, mark_parked_delivered, park_callback, parked_for

log = logging.getLogger(__name__)


async def deliver_observation(
    client: SentinelClient, engine: Engine, channel: Channel, obs: Observation
) -> Literal["delivered", "parked", "closed"]:
    withdrawal_id = withdrawal_id_for(obs.order_id)
    try:
        await client.report_callback(withdrawal_id, obs)
        return "delivered"
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    await asyncio.to_thread(
        park_callback, engine, channel.name, obs.event_id or obs.dedup_key, withdrawal_id, obs.model_dump_json()
    )
    log.info("callback %s for untracked withdrawal %s parked", obs.event_id, withdrawal_id)
    # The workflow may have started between the signal and the park: deliver now if so.
    # (The workflow ignores a repeated event id, so delivering twice is harmless.)
    try:
        desc = await client.handle(withdrawal_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return "parked"
        raise
    rows = await asyncio.to_thread(parked_for, engine, withdrawal_id)
    if desc.status == WorkflowExecutionStatus.RUNNING:
        for row in rows:
            await client.report_callback(withdrawal_id, Observation.model_validate_json(row.observation_json))
        await asyncio.to_thread(mark_parked_delivered, engine, [r.id for r in rows])
        return "delivered"
    # Tracking has ended: the callback is kept and put on the audit trail for operators
    # (a return after the return window needs a person), not applied.
    await asyncio.to_thread(mark_parked_delivered, engine, [r.id for r in rows])
    await asyncio.to_thread(
        add_audit, engine, "channel:" + channel.name, "channel", "late_callback", withdrawal_id,
        f"{obs.raw_status} {obs.raw_code or ''} after tracking ended ({desc.status.name if desc.status else '?'})",
    )
    log.warning("callback %s for closed withdrawal %s recorded, not applied", obs.event_id, withdrawal_id)
    return "closed"
