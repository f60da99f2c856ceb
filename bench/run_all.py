"""python -m bench: every benchmark with small defaults, one after the other."""

from __future__ import annotations

import asyncio
import sys

from bench import actions, body_limits, memory, notify_latency, scaling, throughput, timer_precision


def main() -> None:
    small = "--small" in sys.argv or len(sys.argv) == 1
    n = 60 if small else 200

    class A:
        return_watch = 0

    asyncio.run(actions.main_async(A()))
    asyncio.run(throughput.main_async(n, 50))
    asyncio.run(notify_latency.main_async([1, 5, 10, 20], 20, 60))
    asyncio.run(timer_precision.main_async(20, 5, 3))
    asyncio.run(body_limits.main_async(200, 20, 2))
    asyncio.run(scaling.main_async(n, [1, 2, 4]))
    asyncio.run(memory.main_async([1000, 10000]))


if __name__ == "__main__":
    main()
