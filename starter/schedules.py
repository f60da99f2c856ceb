"""The Temporal Schedules of the periodic review (issue #14 item 5, R30): a daily run at
00:15 UTC (the previous day) and a weekly run on Mondays at 00:30 UTC (the previous ISO
week) of the review workflow (workflows/review_report.py). Created idempotently by the dev
stack (``make run``) and by ``sentinel schedules ensure``: an existing schedule is updated to
this definition, never duplicated."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
)

from workflows.review_report import DAILY, WEEKLY, ReviewReportWorkflow

SCHEDULES = {
    f"review-{DAILY}": (DAILY, ScheduleCalendarSpec(hour=[ScheduleRange(0)], minute=[ScheduleRange(15)])),
    f"review-{WEEKLY}": (
        WEEKLY,
        ScheduleCalendarSpec(
            day_of_week=[ScheduleRange(1)], hour=[ScheduleRange(0)], minute=[ScheduleRange(30)]
        ),
    ),
}


def schedule_for(kind: str, spec: ScheduleCalendarSpec, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReviewReportWorkflow.run, kind, id=f"review-{kind}", task_queue=task_queue
        ),
        spec=ScheduleSpec(calendars=[spec], time_zone_name="UTC"),
        # a run still going when the next is due: the next waits; a missed run (server down)
        # is made up within a day
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.BUFFER_ONE, catchup_window=timedelta(days=1)),
    )


async def ensure_schedules(client: Client, task_queue: str) -> dict[str, str]:
    """Create the review schedules, or update them to this definition; returns what was
    done to each (``created`` or ``updated``)."""
    done = {}
    for schedule_id, (kind, spec) in SCHEDULES.items():
        schedule = schedule_for(kind, spec, task_queue)
        try:
            await client.create_schedule(schedule_id, schedule)
            done[schedule_id] = "created"
        except ScheduleAlreadyRunningError:
            handle = client.get_schedule_handle(schedule_id)

            def same(_input, schedule=schedule):
                return ScheduleUpdate(schedule=schedule)

            await handle.update(same)
            done[schedule_id] = "updated"
    return done
