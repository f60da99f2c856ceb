"""A trace replay in shards (issue #14 item 7; docs/traces.md): the rows split round-robin,
each shard replayed in its own process (``python -m starter.replay_one``) with its own
time-skipping test server, worker and SQLite database, a bounded number at once (the next
starts when one ends); then the shards' event rows copied into one database for the
analysis (starter/replay.py).

One replay is bound by the serial chain of moments through one test server and one Python
process (about one core); shards use the other cores. A shard that fails fails the replay:
the others are stopped and :class:`ShardError` carries the failing shard's standard error.
Each shard is started in a process group of its own, so stopping it stops its test server too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Table, insert, select
from sqlmodel import SQLModel

from sentinel.settings import ROOT
from sentinel.traces import TraceRow, to_csv
from store.db import engine_for, make_engine

#: the module a shard runs (its ``main``)
SHARD_MODULE = "starter.replay_one"
#: lines of a failing shard's standard error kept for the error message
ERROR_TAIL_LINES = 40
#: the longest line read from a shard's output
LINE_LIMIT = 64 * 1024
#: real seconds a stopped shard gets to end before it is killed
STOP_WAIT_S = 5.0
#: event rows copied per statement when merging
COPY_BATCH = 2000


class ShardError(RuntimeError):
    """A shard of the replay failed: the replay has no result."""


@dataclass(frozen=True)
class ShardResult:
    number: int
    started: int
    database_url: str


def split(rows: list[TraceRow], k: int) -> list[list[TraceRow]]:
    """``rows`` dealt round-robin into ``k`` shards (each keeps the rows' order)."""
    return [rows[i::k] for i in range(k)]


def _child_env() -> dict[str, str]:
    """The shard's environment: this one, with this checkout first on the path (the shard runs
    the same code as the parent) and unbuffered output (progress line by line)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def _start(number: int, rows: list[TraceRow], work: Path, delays_file: Path | None):
    folder = work / f"shard-{number}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rows.csv").write_text(to_csv(rows), encoding="utf-8")
    args = ["--rows", str(folder / "rows.csv"), "--work", str(folder), "--out", str(folder / "result.json")]
    if delays_file is not None:
        args += ["--delays", str(delays_file)]
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        SHARD_MODULE,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_child_env(),
        start_new_session=True,
        limit=LINE_LIMIT,
    )


async def _watch(number: int, of: int, proc, folder: Path, say: Callable[[str], None]) -> ShardResult:
    """Pass the shard's progress on to ``say`` (naming the shard), keep the end of its
    standard error, and read its result; ShardError when it fails."""
    tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)

    async def progress() -> None:
        while line := await proc.stdout.readline():
            say(f"  [shard {number}/{of}] {line.decode('utf-8', 'replace').rstrip()}")

    async def errors() -> None:
        while line := await proc.stderr.readline():
            tail.append(line.decode("utf-8", "replace").rstrip())

    await asyncio.gather(progress(), errors())
    status = await proc.wait()
    if status != 0:
        said = "\n".join(tail) or "(nothing on standard error)"
        raise ShardError(f"shard {number}/{of} of the replay failed (exit status {status}):\n{said}")
    found = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    return ShardResult(number=number, started=int(found["started"]), database_url=str(found["database_url"]))


async def _stop(procs: list) -> None:
    """End every shard still running (its whole process group: the shard and its test
    server), politely first."""
    running = [p for p in procs if p.returncode is None]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_WAIT_S):
                for proc in running:
                    await proc.wait()
        running = [p for p in running if p.returncode is None]
        if not running:
            return


async def run_shards(
    shards: list[list[TraceRow]],
    work: Path,
    delays_file: Path | None,
    say: Callable[[str], None] = print,
    at_once: int | None = None,
) -> list[ShardResult]:
    """Replay each of ``shards`` (rows already moved forward, the same shift for all) in its
    own process, ``at_once`` at a time (default: all), each in ``work/shard-N``; their results
    in shard order. The first shard to fail stops the running ones, starts no more, and
    raises its ShardError."""
    of = len(shards)
    slots = asyncio.Semaphore(at_once or of)
    procs: list = []
    failed = asyncio.Event()  # set before a failing shard frees its slot: nothing starts after it

    async def one(number: int, rows: list[TraceRow]) -> ShardResult | None:
        async with slots:
            if failed.is_set():
                return None
            began = time.monotonic()
            try:
                proc = await _start(number, rows, work, delays_file)
                procs.append(proc)
                result = await _watch(number, of, proc, work / f"shard-{number}", say)
            except BaseException:
                failed.set()
                raise
            say(f"  [shard {number}/{of}] {result.started} withdrawals in {time.monotonic() - began:.1f} s")
            return result

    tasks = [asyncio.ensure_future(one(n, rows)) for n, rows in enumerate(shards, 1)]
    try:
        for finished in asyncio.as_completed(tasks):
            await finished
        results = [t.result() for t in tasks]
        return sorted((r for r in results if r is not None), key=lambda r: r.number)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _stop(procs)


def _events_table() -> Table:
    return SQLModel.metadata.tables["withdrawal_event"]


def merge_events(sources: list[str], into: str) -> int:
    """Copy the event rows (store.tables.WithdrawalEvent) of the databases ``sources`` into
    the database ``into`` (brought to the current schema), one source after the other in its
    row order, ids given anew; returns how many rows were copied. The withdrawals of shards
    are distinct, so no row's key repeats."""
    table = _events_table()
    columns = [c for c in table.columns if c.name != "id"]
    dest = engine_for(into)
    copied = 0
    try:
        for url in sources:
            src = make_engine(url)
            try:
                with src.connect() as read, dest.begin() as write:
                    result = read.execute(select(*columns).order_by(table.c.id)).mappings()
                    while batch := result.fetchmany(COPY_BATCH):
                        write.execute(insert(table), [dict(r) for r in batch])
                        copied += len(batch)
            finally:
                src.dispose()
    finally:
        dest.dispose()
    return copied
