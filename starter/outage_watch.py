"""Start the one outage watch (workflows/outage_watch.py) under its fixed id: idempotent,
a second start finds the running one (``make run`` and operators' scripts may both call it)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from sentinel.settings import Settings
from workflows.outage_watch import WORKFLOW_ID, OutageWatchWorkflow, WatchInput


async def ensure_outage_watch(client: Client, settings: Settings) -> str:
    """Start the watch unless it runs already; the run id of the running one."""
    handle = await client.start_workflow(
        OutageWatchWorkflow.run,
        WatchInput(),
        id=WORKFLOW_ID,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    return handle.result_run_id or ""
