"""Callback intake: verify and parse the channel's native callback, classify it, and hand
it to the withdrawal's workflow. A callback for a withdrawal that is not tracked (yet) is
parked in the database and delivered when the workflow starts: never dropped (R11). An
answer the code catalogue does not map is counted for operators (``unmapped_code``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Literal

from sqlalchemy.engine import Engine
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from channels.base import Channel, withdrawal_id_for
from runtime.client import SentinelClient
from sentinel.models import Observation
from store.repo import (
    add_audit,
    count_unmapped,
    get_parked,
    mark_parked_delivered,
    park_callback,
    parked_for,
)
from store.tables import ParkedCallback

log = logging.getLogger(__name__)


def _ids(rows: Iterable[ParkedCallback]) -> list[int]:
    """The ids of parked rows read from the database (such a row always has one)."""
    return [r.id for r in rows if r.id is not None]


async def deliver_observation(
    client: SentinelClient, engine: Engine, channel: Channel, obs: Observation
) -> Literal["delivered", "parked", "closed"]:
    withdrawal_id = withdrawal_id_for(obs.order_id)
    await count_unmapped(engine, channel.name, obs, withdrawal_id)
    try:
        await client.report_callback(withdrawal_id, obs)
        return "delivered"
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    await asyncio.to_thread(
        park_callback,
        engine,
        channel.name,
        obs.event_id or obs.dedup_key,
        withdrawal_id,
        obs.model_dump_json(),
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
        await asyncio.to_thread(mark_parked_delivered, engine, _ids(rows))
        return "delivered"
    # Tracking has ended: the callback is kept and put on the audit trail for operators
    # (a return after the return window needs a person), not applied.
    await asyncio.to_thread(mark_parked_delivered, engine, _ids(rows), "late")
    await asyncio.to_thread(
        add_audit,
        engine,
        "channel:" + channel.name,
        "channel",
        "late_callback",
        withdrawal_id,
        f"{obs.raw_status} {obs.raw_code or ''} after tracking ended ({desc.status.name if desc.status else '?'})",
    )
    log.warning("callback %s for closed withdrawal %s recorded, not applied", obs.event_id, withdrawal_id)
    return "closed"


class RedeliverRefused(Exception):
    """A parked callback could not be re-delivered: ``kind`` is ``not found``, ``not tracked``
    (no workflow yet: it stays parked) or ``tracking ended`` (a late answer: for a person)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


async def redeliver_parked(client: SentinelClient, engine: Engine, parked_id: int, actor: str, role: str):
    """Send a parked callback to its running workflow again (an operator's action; safe to
    repeat: the workflow acts on an event id once), mark it ``redelivered`` and audit it.
    Returns the row; raises :class:`RedeliverRefused`."""
    row = await asyncio.to_thread(get_parked, engine, parked_id)
    if row is None:
        raise RedeliverRefused("not found", f"no parked callback {parked_id}")
    obs = Observation.model_validate_json(row.observation_json)
    try:
        await client.report_callback(row.withdrawal_id, obs)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        try:
            desc = await client.handle(row.withdrawal_id).describe()
        except RPCError as err2:
            if err2.status != RPCStatusCode.NOT_FOUND:
                raise
            raise RedeliverRefused(
                "not tracked",
                f"withdrawal {row.withdrawal_id} is not tracked; the callback "
                "stays parked and is applied when tracking starts",
            ) from None
        if desc.status != WorkflowExecutionStatus.RUNNING:
            state = desc.status.name if desc.status else "closed"
            raise RedeliverRefused(
                "tracking ended",
                f"withdrawal {row.withdrawal_id} is {state}: a late answer needs a person, not the workflow",
            ) from None
        raise
    await asyncio.to_thread(mark_parked_delivered, engine, _ids([row]), "redelivered")
    await asyncio.to_thread(
        add_audit,
        engine,
        actor,
        role,
        "redeliver_callback",
        row.withdrawal_id,
        f"parked callback {row.id} ({row.channel} {row.event_id}: {obs.raw_status} {obs.raw_code or ''}) re-sent",
    )
    return row
