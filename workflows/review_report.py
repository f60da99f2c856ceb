"""The periodic review (issue #14 items 5 and 6; R23, R30): a daily and a weekly Temporal
Schedule (starter/schedules.py) start this workflow. It reviews the period before the
moment it runs (the previous UTC day or ISO week: sentinel/review_report.py ``period``),
draws the day's spot checks (daily runs), computes and stores the report with its charts,
and emails it to operations. Imports only sentinel and temporalio.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from sentinel.review_report import ReviewInput, ReviewOutput, period

#: the schedules' ids and what they run (starter/schedules.py)
DAILY, WEEKLY = "daily", "weekly"
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5), maximum_attempts=20
)


@workflow.defn(name="ReviewReport")
class ReviewReportWorkflow:
    @workflow.run
    async def run(self, kind: str) -> ReviewOutput:
        since, until = period(kind, workflow.now())
        drawn = 0
        if kind == DAILY:  # spot checks of the day under review (R23)
            drawn = await workflow.execute_activity(
                "draw_spot_checks",
                since.date().isoformat(),
                result_type=int,
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=RETRY,
            )
        out: ReviewOutput = await workflow.execute_activity(
            "build_review_report",
            ReviewInput(kind=kind, since=since, until=until),
            result_type=ReviewOutput,
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RETRY,
        )
        emailed = await workflow.execute_activity(
            "email_review_report",
            out.report_id,
            result_type=str,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        return out.model_copy(update={"emailed": emailed, "spot_checks_drawn": drawn})
