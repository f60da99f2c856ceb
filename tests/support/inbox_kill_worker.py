"""A notice worker process for tests/activities/test_inbox_kill.py. It runs the real notice activity
(``deliver_notice`` as ``build_activities`` builds it, on ``SENTINEL_DATABASE_URL``) for
every notice of a JSON file, in the file's order, a few at a time, and retries each one
as Temporal would (another attempt is sending it, or the provider could not be asked:
try again shortly) until it has an outcome.

    python -m tests.support.inbox_kill_worker NOTICES.json STALE_S CONCURRENCY

It prints ``ready`` once built, waits for a line on stdin (so that every worker starts
together), then prints ``{notice key: outcome}`` as one JSON line and exits. ``STALE_S``
replaces the 60 s after which a row left ``sending`` counts as dead, so that a takeover
happens within the test's time."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import store.repo as repo
from activities.registry import build_activities
from sentinel.models import NoticeRequest
from sentinel.settings import Settings

#: pause before the next attempt of a notice another attempt holds (Temporal: 2 s, doubling)
RETRY_S = 0.2
RETRIED = ("DeliveryInProgress", "TransientDeliveryError")


async def deliver(fn, notice: NoticeRequest, slots: asyncio.Semaphore) -> str:
    while True:
        async with slots:  # a slot per attempt, free while waiting to retry (as a Temporal worker)
            try:
                return (await ActivityEnvironment().run(fn, notice)).status
            except ApplicationError as err:
                if err.type not in RETRIED:
                    raise
        await asyncio.sleep(RETRY_S)


async def main() -> None:
    path, stale_s, concurrency = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    repo.STALE_SENDING_S = stale_s
    notices = [NoticeRequest.model_validate(n) for n in json.loads(path.read_text())]
    fn = next(
        a
        for a in build_activities(Settings(_env_file=None))
        if getattr(a, "__name__", "") == "deliver_notice"
    )
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    slots = asyncio.Semaphore(concurrency)
    outcomes = await asyncio.gather(*(deliver(fn, n, slots) for n in notices))
    print(json.dumps({n.key: o for n, o in zip(notices, outcomes, strict=False)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
