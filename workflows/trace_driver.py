"""The trace driver (issue #14 item 7): plays a trace of withdrawals through the real
withdrawal workflow at the trace's times. At each ``submitted_at`` an activity starts the
withdrawal the way the payment service does (starter/client.py), and at each ``outcome_at``
the trace says the channel reported by callback, an activity signals the callback the way
the gateway does; the simulator answers submits and polls from the same trace
(simulator/trace.py).

Run on the time-skipping test server, awaiting the driver's result lets the server jump from
one moment where something happens to the next: a month of traffic in minutes, every timer
of every withdrawal firing in order (starter/replay.py). Imports only sentinel and temporalio.

Everything the driver does is an (ordinary) activity: while one runs the test server does
not move its clock. The withdrawals are not child workflows: the test server stopped moving
its clock for good when an abandoned child of an earlier run of the driver completed (seen
here). The start activity returns only once the withdrawal has sent its payout (its first
workflow task is over): a signal that reaches a workflow during its first task, which runs
local activities, can wedge the test server ("invalid history builder state for action";
tests/workflow_harness.py).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from sentinel.traces import CHUNK, DriverInput, ReplayChunk

EVENTS_ACTIVITY = "trace_events"
START_ACTIVITY = "trace_start"
CALLBACK_ACTIVITY = "trace_callback"
STEP = timedelta(seconds=60)


@workflow.defn(name="TraceDriver")
class TraceDriverWorkflow:
    @workflow.run
    async def run(self, inp: DriverInput) -> int:
        chunk: ReplayChunk = await workflow.execute_activity(
            EVENTS_ACTIVITY, args=[inp.cursor, CHUNK], result_type=ReplayChunk, start_to_close_timeout=STEP
        )
        done = inp.done
        for event in chunk.events:
            wait = (event.at - workflow.now()).total_seconds()
            if wait > 0:
                await workflow.sleep(wait)
            if event.kind == "start" and event.request is not None:
                await workflow.execute_activity(START_ACTIVITY, event.request, start_to_close_timeout=STEP)
                done += 1
            elif event.kind == "callback":
                await workflow.execute_activity(
                    CALLBACK_ACTIVITY, args=[event.withdrawal_id, event.at], start_to_close_timeout=STEP
                )
        if chunk.next_cursor is None:
            return done
        workflow.continue_as_new(DriverInput(cursor=chunk.next_cursor, done=done))
