"""A worker process that dies (``os._exit``) right after one activity has done its work and
before its result can reach the workflow's history: a kill at the worst moment, for the
crash tests (tests/workflows/test_parked_handover.py). Settings come from ``SENTINEL_*`` variables.

    python -m tests.support.crashing_worker ACTIVITY TASK_QUEUE
"""

from __future__ import annotations

import asyncio
import os
import sys
import typing

from temporalio import activity
from temporalio.worker import Worker

from activities.registry import build_activities
from runtime.client import connect
from sentinel.settings import Settings
from workflows.withdrawal import WithdrawalWorkflow

#: the exit code the test expects: anything else means the worker failed for another reason
DIED = 86


async def main(target: str, task_queue: str) -> None:
    settings = Settings(_env_file=None)
    activities = build_activities(settings)
    real = next(a for a in activities if getattr(a, "__name__", "") == target)

    async def then_die(arg):  # type: ignore[no-untyped-def]
        await real(arg)
        sys.stdout.write(f"{target} done; dying before its result is recorded\n")
        sys.stdout.flush()
        os._exit(DIED)

    hints = typing.get_type_hints(real)  # the same argument and result types
    arg_type = next(t for name, t in hints.items() if name != "return")
    then_die.__annotations__ = {"arg": arg_type, "return": hints.get("return")}
    then_die = activity.defn(name=target)(then_die)
    activities = [then_die if a is real else a for a in activities]
    client = await connect(settings)
    async with Worker(client, task_queue=task_queue, workflows=[WithdrawalWorkflow], activities=activities):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
