"""What the benchmarks measure: the Temporal actions in a workflow's history, a process's
RSS and CPU time, percentiles of latencies, the machine's load. Measure, don't assert:
nothing here fails on a timing."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any


def loadavg() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f} / {b:.2f} / {c:.2f}"


# --- histories and actions --------------------------------------------------------------

# Event types that are billable actions (https://docs.temporal.io/cloud/actions).
# MarkerRecorded of local activities: all local-activity markers recorded in one workflow
# task count as ONE action; other markers (version/patch, side effect) count one each.
BILLABLE = {
    "WORKFLOW_EXECUTION_STARTED": "workflow started",
    "ACTIVITY_TASK_SCHEDULED": "activity scheduled",
    "TIMER_STARTED": "timer started",
    "WORKFLOW_EXECUTION_SIGNALED": "signal received",
    "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES": "search attribute upsert",
    "WORKFLOW_EXECUTION_UPDATE_ACCEPTED": "update accepted",
    "START_CHILD_WORKFLOW_EXECUTION_INITIATED": "child workflow started",
    "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED": "signal sent",
    "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED": "cancel sent",
    "WORKFLOW_PROPERTIES_MODIFIED": "memo upsert",
    "WORKFLOW_EXECUTION_CONTINUED_AS_NEW": "continue-as-new",
}


def _etype(event) -> str:
    from temporalio.api.enums.v1 import EventType

    return EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")


async def history_events(client, workflow_id: str) -> list:
    handle = client.get_workflow_handle(workflow_id)
    return [e async for e in handle.fetch_history_events()]


def count_actions(events: list) -> dict[str, Any]:
    """Billable actions of one history, by kind, plus activity retries (each retry attempt
    is an action too; the ATTEMPT of a started activity > 1 means retries)."""
    kinds: dict[str, int] = {}
    la_tasks: set[int] = set()
    other_markers = 0
    retries = 0
    activity_types: dict[str, int] = {}
    for e in events:
        t = _etype(e)
        if t in BILLABLE:
            kinds[BILLABLE[t]] = kinds.get(BILLABLE[t], 0) + 1
            if t == "ACTIVITY_TASK_SCHEDULED":
                name = e.activity_task_scheduled_event_attributes.activity_type.name
                activity_types[name] = activity_types.get(name, 0) + 1
        elif t == "MARKER_RECORDED":
            a = e.marker_recorded_event_attributes
            if a.marker_name == "core_local_activity":
                la_tasks.add(a.workflow_task_completed_event_id)
            else:
                other_markers += 1
        elif t == "ACTIVITY_TASK_STARTED":
            retries += max(0, e.activity_task_started_event_attributes.attempt - 1)
    if la_tasks:
        kinds["local activities (per workflow task)"] = len(la_tasks)
    if other_markers:
        kinds["other markers"] = other_markers
    if retries:
        kinds["activity retries"] = retries
    local_markers = sum(
        1
        for e in events
        if _etype(e) == "MARKER_RECORDED"
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )
    return {
        "total": sum(kinds.values()),
        "kinds": kinds,
        "events": len(events),
        "activities": activity_types,
        "local_activity_markers": local_markers,
    }


# --- process sampling -------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User+system CPU seconds of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary_ms(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "n": len(ms),
        "p50": pct(ms, 50),
        "p95": pct(ms, 95),
        "p99": pct(ms, 99),
        "max": max(ms) if ms else float("nan"),
        "mean": statistics.fmean(ms) if ms else float("nan"),
    }
