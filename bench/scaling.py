"""Scaling out: 1, 2 and 4 worker processes (worker.py) on one task queue, same N of
happy-path withdrawals each, against one dev server (SQLite file).

    python -m bench.scaling [-n 100] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

from bench.report import machine_block, md_table, write_section
from bench.stack import BenchStack, delays, run_withdrawals, script_all

HAPPY = {"scenario": "success", "params": {"after_s": 0.2}}


async def main_async(n: int, counts: list[int]) -> list[dict]:
    stack = BenchStack(delays_doc=delays(version="bench-scaling"), worker=False).start()
    out = []
    try:
        client = None
        for k in counts:
            names = [f"worker-{k}-{i}" for i in range(k)]
            for name in names:
                stack.spawn_worker(name)
            client = client or await stack.client()
            await stack.wait_worker_ready(client)
            await asyncio.sleep(3)  # let every worker connect and poll
            warm = [f"SW-{uuid.uuid4().hex[:8]}" for _ in range(k * 2)]
            await script_all(stack.sim, [(w, HAPPY) for w in warm])
            await run_withdrawals(client, warm)
            wids = [f"SC-{uuid.uuid4().hex[:10]}" for _ in range(n)]
            await script_all(stack.sim, [(w, HAPPY) for w in wids])
            r = await run_withdrawals(client, wids, 50)
            print(f"{k} worker(s): {r}")
            out.append({"k": k, **r})
            for name in names:
                stack.stop(name)
    finally:
        stack.stop()
    base = out[0]["per_s"]
    rows = [
        [
            r["k"],
            r["n"],
            r["wall_s"],
            r["per_s"],
            r["per_s"] / base,
            r["statuses"],
            f"{r['load_before']} → {r['load_after']}",
        ]
        for r in out
    ]
    settings = {
        "N per run": n,
        "scenario": "success, callback after 0.2 s",
        "delays": "polls 1h, return_watch 0",
    }
    body = [
        "## Scaling out (`bench/scaling.py`)",
        "",
        machine_block(settings, f"python -m bench.scaling -n {n} --workers {','.join(map(str, counts))}"),
        md_table(
            [
                "worker processes",
                "N",
                "wall s",
                "withdrawals/s",
                "vs 1 worker",
                "final statuses",
                "load avg before → after",
            ],
            rows,
        ),
        "",
    ]
    write_section("scaling", "\n".join(body))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description="1, 2, 4 worker processes")
    p.add_argument("-n", type=int, default=100)
    p.add_argument("--workers", default="1,2,4")
    a = p.parse_args()
    asyncio.run(main_async(a.n, [int(x) for x in a.workers.split(",")]))


if __name__ == "__main__":
    main()
