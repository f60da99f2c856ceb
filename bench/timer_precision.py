"""Timer precision: when the delay notice went out minus when it was due
(submission + delay_threshold + grace). Two clocks: the notice record's `at` (workflow time)
and the SMTP sink accepting the email (wall clock), both against the submission event's
`at` in the workflow timeline.

    python -m bench.timer_precision [-n 20] [--threshold 5] [--grace 3]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

from bench.mailsink import MailSink
from bench.measure import loadavg, summary_ms
from bench.report import machine_block, md_table, write_section
from bench.stack import BenchStack, delays, script_all, start_all

SLOW = {"steps": [{"after_s": 0, "status": "PROCESSING"}, {"after_s": 86400, "status": "SUCCEEDED"}]}


async def main_async(n: int, threshold: float, grace: float) -> dict:
    doc = delays(
        version="bench-timer", delay_threshold=f"{threshold:g}s", grace=f"{grace:g}s", poll_schedule=["1h"]
    )
    stack = BenchStack(delays_doc=doc, mail=False).start()
    try:
        with MailSink(stack.ports.smtp, r"TP-[0-9a-f]{10}") as sink:
            client = await stack.client()
            await stack.wait_worker_ready(client)
            wids = [f"TP-{uuid.uuid4().hex[:10]}" for _ in range(n)]
            await script_all(stack.sim, [(w, SLOW) for w in wids])
            load0 = loadavg()
            await start_all(client, wids, 50)
            await asyncio.sleep(threshold + grace + 8)
            rec, mail, missing = [], [], 0
            for w in wids:
                v = await client.status(w)
                sub = next((e.at for e in v.timeline if e.what.endswith("submitted")), None)
                delay = [nr for nr in v.notices if nr.stage.value.upper().startswith("DELAY")]
                if sub is None or not delay:
                    missing += 1
                    continue
                due = sub.timestamp() + threshold + grace
                rec.append(delay[0].at.timestamp() - due)
                if w in sink.first:
                    mail.append(sink.first[w] - due)
            load1 = loadavg()
            for w in wids:
                await client.handle(w).terminate("bench done")
    finally:
        stack.stop()
    r, m = summary_ms(rec), summary_ms(mail)
    print(f"notice record - due: {r}\nemail accepted - due: {m}\nmissing: {missing}")
    rows = [
        ["notice record `at` − due", r["n"], r["p50"], r["p95"], r["p99"], r["max"]],
        ["email accepted (SMTP) − due", m["n"], m["p50"], m["p95"], m["p99"], m["max"]],
    ]
    settings = {
        "N (started together)": n,
        "delay_threshold / grace": f"{threshold:g} s / {grace:g} s",
        "polls": "1h (no poll before the alarm)",
        "load avg before / after": f"{load0} / {load1}",
        "withdrawals without a delay notice": missing,
    }
    body = [
        "## Timer precision (`bench/timer_precision.py`)",
        "",
        machine_block(
            settings, f"python -m bench.timer_precision -n {n} --threshold {threshold:g} --grace {grace:g}"
        ),
        md_table(["measure", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows),
        "",
        "due = the timeline's submission event + delay_threshold + grace. Target: within 2 s.",
        "",
    ]
    write_section("timer_precision", "\n".join(body))
    return {"record": r, "mail": m, "missing": missing}


def main() -> None:
    p = argparse.ArgumentParser(description="delay notice time minus its threshold")
    p.add_argument("-n", type=int, default=20)
    p.add_argument("--threshold", type=float, default=5)
    p.add_argument("--grace", type=float, default=3)
    a = p.parse_args()
    asyncio.run(main_async(a.n, a.threshold, a.grace))


if __name__ == "__main__":
    main()
