"""The bare baseline: a workflow with the same number of activities as the withdrawal's
happy path (regular and local, counted from a history by bench/throughput.py), each a
no-op, and no logic. Its worker runs in its own process, like the sentinel worker.

    python -m bench.bare --address 127.0.0.1:7233 --task-queue bench-bare
    python -m bench.bare --address 127.0.0.1:7233 --task-queue bench-bare-enc --encrypted

``--encrypted`` gives the bare worker the product's data converter (payloads sealed with
AES-GCM by runtime/codec.py, the development key): the same transport as the withdrawal
workflow, so that the ratio measures the workflow's own work, not the encryption.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

TASK_QUEUE = "bench-bare"


@activity.defn
def noop(i: int) -> int:
    return i


@workflow.defn
class BareWorkflow:
    @workflow.run
    async def run(self, activities: int, local_activities: int) -> int:
        for i in range(local_activities):
            await workflow.execute_local_activity(noop, i, start_to_close_timeout=timedelta(seconds=15))
        for i in range(activities):
            await workflow.execute_activity(noop, i, start_to_close_timeout=timedelta(seconds=30))
        return activities + local_activities


def encrypted_converter():
    """The product's data converter with the development payload key."""
    from runtime.codec import converter_for
    from sentinel.settings import DEV_PAYLOAD_KEYS, Settings

    return converter_for(Settings(_env_file=None, payload_keys=DEV_PAYLOAD_KEYS))


async def serve(address: str, task_queue: str, encrypted: bool = False) -> None:
    if encrypted:
        client = await Client.connect(address, data_converter=encrypted_converter())
    else:
        client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[BareWorkflow],
        activities=[noop],
        activity_executor=ThreadPoolExecutor(max_workers=8),
    ):
        await stop.wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--task-queue", default=TASK_QUEUE)
    p.add_argument("--encrypted", action="store_true", help="payloads sealed like the product's")
    a = p.parse_args()
    asyncio.run(serve(a.address, a.task_queue, a.encrypted))
