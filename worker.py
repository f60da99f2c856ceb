"""Runs the Temporal worker: the withdrawal workflow, the outage watch and their activities.

    python worker.py            # settings from SENTINEL_* environment variables / .env

It refuses to start with the public development credentials unless SENTINEL_DEV_MODE=1
(sentinel/dev_credentials.py; the gateway does the same).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from activities.registry import build_activities
from activities.review import build_review_activities
from sentinel.dev_credentials import DevCredentialsRefused, check_at_start
from sentinel.settings import Settings, get_settings
from workflows.outage_watch import OutageWatchWorkflow
from workflows.review_report import ReviewReportWorkflow
from workflows.withdrawal import WithdrawalWorkflow

log = logging.getLogger("worker")


def precompile_workflows() -> int:
    """Write the bytecode of the workflow modules. The sandbox imports them afresh for every
    workflow it starts or wakes from history; without a .pyc (PYTHONDONTWRITEBYTECODE, as in
    the container image) each import compiles the source again, which was a quarter of the
    worker's CPU in the throughput benchmark (docs/benchmarks.md). Read-only code: skipped."""
    import py_compile
    from pathlib import Path

    done = 0
    for source in (Path(__file__).resolve().parent / "workflows").glob("*.py"):
        try:
            py_compile.compile(str(source), doraise=True)
            done += 1
        except (OSError, py_compile.PyCompileError) as exc:
            log.warning("could not precompile %s: %s", source.name, exc)
    return done


def build_worker(client: Client, settings: Settings, **options) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[WithdrawalWorkflow, OutageWatchWorkflow, ReviewReportWorkflow],
        # the withdrawal's activities, and the periodic review's (issue #14: report, spot checks)
        activities=[*build_activities(settings), *build_review_activities(settings)],
        activity_executor=ThreadPoolExecutor(max_workers=8),
        max_cached_workflows=settings.worker_max_cached_workflows,
        **options,
    )


async def main() -> None:
    from runtime.client import connect

    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    settings = get_settings()
    try:
        check_at_start(settings, "worker")  # public dev credentials only with SENTINEL_DEV_MODE=1
    except DevCredentialsRefused as refused:
        raise SystemExit(str(refused)) from None
    client = None
    for attempt in range(60):  # Temporal may still be starting (or restarting): wait for it
        try:
            client = await connect(settings, service_name="withdrawal-sentinel-worker")
            break
        except RuntimeError as exc:
            logging.warning("Temporal at %s not reachable (%s); retrying", settings.temporal_address, exc)
            await asyncio.sleep(min(1 + attempt, 5))
    if client is None:
        raise SystemExit(f"Temporal at {settings.temporal_address} did not answer")
    precompile_workflows()
    worker = build_worker(client, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logging.info("worker polling task queue %s on %s", settings.task_queue, settings.temporal_address)
    async with worker:
        await stop.wait()
    logging.info("worker stopped")


if __name__ == "__main__":
    asyncio.run(main())
