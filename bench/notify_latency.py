"""Time to notify: from the channel callback's HTTP request (a signed FAILED/AC04 callback
POSTed to the gateway by this script; the simulator is scripted to send none) to the SMTP
sink (in-process aiosmtpd) accepting the first notice (the email of rung 0).

1. Closed loop at several concurrency levels: each of C streams posts its next callback when
   the previous one's mail arrived. The highest notices/s reached is the maximum load.
2. Open loop at half that maximum: callbacks posted at a fixed rate, whatever the answers
   (what a bank's burst looks like); p50/p95/p99 there is the figure the target is about.

    python -m bench.notify_latency [--levels 1,5,10,20] [--samples 20] [--open-samples 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import httpx

from bench.mailsink import MailSink
from bench.measure import loadavg, summary_ms
from bench.report import machine_block, md_table, write_section
from bench.stack import BenchStack, script_all, start_all
from sentinel.signing import SIGNATURE_HEADER, sign

SECRET = "dev-channel-secret"
NO_CALLBACK = {"steps": [{"after_s": 0, "status": "PROCESSING"}, {"after_s": 86400, "status": "SUCCEEDED"}]}


async def prepared(stack, client, n: int) -> list[str]:
    """``n`` withdrawals with the bank, the simulator scripted to send no callback."""
    from sentinel.taxonomy import WithdrawalStatus

    wids = [f"NL-{uuid.uuid4().hex[:10]}" for _ in range(n)]
    await script_all(stack.sim, [(w, NO_CALLBACK) for w in wids])
    await start_all(client, wids, 50)
    for w in wids:  # each must have submitted before its callback
        while (await client.status(w)).status != WithdrawalStatus.PROCESSING:
            await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    return wids


async def notify_once(stack, sink, http, w: str) -> float | None:
    """POST a signed FAILED/AC04 callback for ``w``; seconds until its first mail arrived
    (None: no mail within 30 s)."""
    body = json.dumps(
        {
            "event_id": f"evt-{w}",
            "order_id": w,
            "status": "FAILED",
            "code": "AC04",
            "occurred_at": "2026-11-27T00:00:00Z",
        }
    ).encode()
    t0 = time.time()
    r = await http.post(
        f"{stack.gw}/v1/callbacks/generic",
        content=body,
        headers={SIGNATURE_HEADER: sign(SECRET, body, int(t0))},
    )
    r.raise_for_status()
    deadline = time.monotonic() + 30
    while w not in sink.first and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return sink.first[w] - t0 if w in sink.first else None


async def level(stack, client, sink, http, c: int, samples: int) -> dict:
    """Closed loop: ``c`` streams, each posts its next callback when the last mail arrived."""
    wids = await prepared(stack, client, max(samples, c))
    queue = list(wids)
    results: list[float | None] = []
    load0 = loadavg()

    async def stream():
        while queue:
            results.append(await notify_once(stack, sink, http, queue.pop()))

    t_start = time.perf_counter()
    await asyncio.gather(*(stream() for _ in range(c)))
    wall = time.perf_counter() - t_start
    for w in wids:
        await client.handle(w).terminate("bench done")
    lat = [r for r in results if r is not None]
    return {
        "c": c,
        **summary_ms(lat),
        "no_mail_30s": len(results) - len(lat),
        "rate": len(lat) / wall,
        "load": f"{load0} → {loadavg()}",
    }


async def open_level(stack, client, sink, http, rate: float, samples: int) -> dict:
    """Post ``samples`` callbacks at ``rate`` per second (open loop); latency of each."""
    wids = await prepared(stack, client, samples)
    load0 = loadavg()
    tasks = []
    t_start = time.perf_counter()
    for i, w in enumerate(wids):
        await asyncio.sleep(max(0.0, t_start + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(notify_once(stack, sink, http, w)))
    results = await asyncio.gather(*tasks)
    for w in wids:
        await client.handle(w).terminate("bench done")
    lat = [r for r in results if r is not None]
    return {
        "rate_in": rate,
        **summary_ms(lat),
        "no_mail_30s": len(results) - len(lat),
        "load": f"{load0} → {loadavg()}",
    }


async def main_async(levels: list[int], samples: int, open_samples: int = 60) -> list[dict]:
    # the sink must listen before the worker sends: start the stack without mail, then the sink
    stack = BenchStack(mail=False).start()
    out = []
    half: dict | None = None
    try:
        with MailSink(stack.ports.smtp, r"NL-[0-9a-f]{10}") as sink:
            client = await stack.client()
            await stack.wait_worker_ready(client)
            async with httpx.AsyncClient(timeout=30) as http:
                await level(stack, client, sink, http, 1, 3)  # warm-up
                for c in levels:
                    r = await level(stack, client, sink, http, c, max(samples, c * 4))
                    print(f"concurrency {c}: {r}")
                    out.append(r)
                max_rate = max(r["rate"] for r in out)
                half = await open_level(stack, client, sink, http, max_rate / 2, open_samples)
                half["max_rate"] = max_rate
                print(f"open loop at half the maximum ({max_rate / 2:.1f}/s): {half}")
    finally:
        stack.stop()
    rows = [
        [r["c"], r["n"], r["p50"], r["p95"], r["p99"], r["max"], r["rate"], r["no_mail_30s"], r["load"]]
        for r in out
    ]
    settings = {
        "path": "POST signed callback → gateway → signal → workflow → deliver_notice(email) → SMTP accepted",
        "sink": "aiosmtpd in the benchmark process (time of DATA accepted)",
        "samples per level": f"max({samples}, 4×C); open loop: {open_samples}",
    }
    met = "met" if half["p99"] <= 300 else "missed"
    body = [
        "## Time to notify (`bench/notify_latency.py`)",
        "",
        machine_block(
            settings,
            f"python -m bench.notify_latency --levels {','.join(map(str, levels))} "
            f"--samples {samples} --open-samples {open_samples}",
        ),
        "Closed loop (C streams, each posts its next callback when the previous mail arrived); the "
        "highest notices/s is the maximum load:",
        "",
        md_table(
            [
                "concurrent callbacks",
                "n",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "notices/s",
                "no mail in 30 s",
                "load avg before → after",
            ],
            rows,
        ),
        "",
        f"Open loop at half the maximum ({half['max_rate']:.1f}/s → {half['rate_in']:.1f} callbacks/s, "
        f"{half['n']} samples): p50 {half['p50']:.0f} ms, p95 {half['p95']:.0f} ms, **p99 {half['p99']:.0f} ms**, "
        f"max {half['max']:.0f} ms, no mail in 30 s: {half['no_mail_30s']}, load {half['load']}.",
        "",
        f"Target: p99 ≤ 300 ms at half the measured maximum load: {met}.",
        "",
    ]
    write_section("notify_latency", "\n".join(body))
    return out + [half]


def main() -> None:
    p = argparse.ArgumentParser(description="time to notify")
    p.add_argument("--levels", default="1,5,10,20")
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--open-samples", type=int, default=60)
    a = p.parse_args()
    asyncio.run(main_async([int(x) for x in a.levels.split(",")], a.samples, a.open_samples))


if __name__ == "__main__":
    main()
