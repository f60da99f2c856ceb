"""Temporal actions per withdrawal for each scenario, counted from the histories.

    python -m bench.actions [--return-watch 0]

Counting rule (Temporal Cloud actions, https://docs.temporal.io/cloud/actions): one action
each for workflow started, activity scheduled (plus one per retry attempt), timer started,
signal received, update accepted, search-attribute upsert, child workflow started, external
signal/cancel, memo modification, continue-as-new; local activities: all the local-activity
markers recorded by one workflow task count as ONE action; other markers one each. Queries
are billed too but leave no trace in a history: not counted here (the benchmarks send none
during the counted runs except a status poll for the risk-hold case, noted)."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from bench.measure import count_actions, history_events, loadavg
from bench.report import machine_block, md_table, write_section
from bench.stack import BenchStack, delays, request_for, script_all

args_timeout = 20.0

SCENARIOS: list[tuple[str, dict]] = [
    ("success", {"scenario": "success", "params": {"after_s": 0.5}}),
    ("no_callback_success (polling)", {"scenario": "no_callback_success", "params": {"after_s": 0.5}}),
    ("account_error", {"scenario": "account_error", "params": {"after_s": 0.5}}),
    ("limit", {"scenario": "limit", "params": {"after_s": 0.5}}),
    ("system_error_then_final", {"scenario": "system_error_then_final", "params": {"final_after_s": 2.0}}),
    ("bank_delay", {"scenario": "bank_delay", "params": {"slow_after_s": 0.5, "delay_s": 8.0}}),
    (
        "success_then_return",
        {"scenario": "success_then_return", "params": {"success_after_s": 0.5, "return_after_s": 2.0}},
    ),
    ("risk_hold + approve", {"scenario": "risk_hold", "params": {"after_s": 0.5}}),
]


async def one(stack: BenchStack, client, label: str, spec: dict) -> dict:
    from sentinel.decision_tokens import sign_decision
    from sentinel.models import ReviewDecision
    from sentinel.settings import DEV_DECISION_SIGNING_KEY
    from sentinel.taxonomy import WithdrawalStatus

    wid = f"ACT-{uuid.uuid4().hex[:8]}"
    await script_all(
        stack.sim, [(wid, spec), (f"{wid}_R1", {"scenario": "success", "params": {"after_s": 0.5}})]
    )
    await client.start_withdrawal(request_for(wid))
    note = ""
    if spec["scenario"] == "risk_hold":
        deadline = time.monotonic() + 60
        while (await client.status(wid)).status != WithdrawalStatus.UNDER_REVIEW:
            assert time.monotonic() < deadline, "risk hold never reached UNDER_REVIEW"
            await asyncio.sleep(0.3)
        # signed as the gateway signs (the dev stack's worker trusts the development key)
        token = sign_decision(
            DEV_DECISION_SIGNING_KEY,
            withdrawal_id=wid,
            reviewer="bench-alice",
            role="reviewer",
            decision="approve",
            reason="bench",
            documents=[],
            nonce=uuid.uuid4().hex,
            now=time.time(),
            ttl_s=600,
        )
        await client.review(
            wid, ReviewDecision(decision="approve", reviewer="bench-alice", reason="bench", token=token)
        )
        note = "1 update (review approve)"
    try:
        final = (await asyncio.wait_for(client.result(wid), args_timeout)).status.value
    except TimeoutError:
        view = await client.status(wid)
        final = f"still open after {args_timeout:.0f} s ({view.status.value}); terminated"
        print(f"{label}: {final}; last timeline: {[e.what for e in view.timeline[-4:]]}")
        await client.handle(wid).terminate("bench: counted while open")
    events = await history_events(client.client, f"withdrawal-{wid}")
    c = count_actions(events)
    return {"label": label, "final": final, "note": note, **c}


async def main_async(args) -> list[dict]:
    doc = delays(
        version="bench-actions",
        delay_threshold="6s",
        grace="2s",
        poll_schedule=["3s", "5s"],
        unknown_poll="1s",
        return_watch=args.return_watch,
    )
    stack = BenchStack(delays_doc=doc).start()
    try:
        client = await stack.client()
        await stack.wait_worker_ready(client)
        load0 = loadavg()
        results = await asyncio.gather(*(one(stack, client, label, spec) for label, spec in SCENARIOS))
        load1 = loadavg()
    finally:
        stack.stop()
    rows = []
    for r in results:
        kinds = ", ".join(f"{k} {v}" for k, v in r["kinds"].items())
        rows.append([r["label"], r["final"], r["total"], kinds, r["events"]])
        print(f"{r['label']:34s} {r['final']:10s} actions={r['total']:3d}  {kinds}")
    happy = next(r for r in results if r["label"] == "success")
    settings = {
        "delays": f"delay_threshold 6s, grace 2s, poll_schedule [3s, 5s], unknown_poll 1s, "
        f"return_watch {args.return_watch}",
        "load average before / after": f"{load0} → {load1}",
        "happy path activities": ", ".join(f"{k}×{v}" for k, v in happy["activities"].items())
        + f"; local-activity markers {happy['local_activity_markers']}",
    }
    body = [
        "## Temporal actions per withdrawal (`bench/actions.py`)",
        "",
        machine_block(settings, f"python -m bench.actions --return-watch {args.return_watch}"),
        "Counting rule (Temporal Cloud, <https://docs.temporal.io/cloud/actions>): one action each for "
        "workflow started, activity scheduled (and each retry attempt), timer started, signal received, "
        "update accepted, search-attribute upsert, child workflow / external signal / cancel, memo change, "
        "continue-as-new; all local-activity markers of one workflow task = one action; other markers one "
        "each. Queries are billed but invisible in histories: not counted.",
        "",
        md_table(["scenario", "final", "actions", "by kind", "history events"], rows),
        "",
        f"**Happy path: {happy['total']} actions** (target ≤ 8: "
        f"{'met' if happy['total'] <= 8 else 'MISSED'}).",
        "",
    ]
    write_section("actions", "\n".join(body))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--return-watch", default="0", help="return_watch of the delays file (0 = none)")
    args = p.parse_args()
    if args.return_watch.isdigit():
        args.return_watch = int(args.return_watch)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
