"""Write the figures to docs/benchmarks.md: a section per benchmark between markers
``<!-- bench:NAME -->`` ... ``<!-- /bench:NAME -->``, with the machine it ran on (CPUs, RAM,
versions, the load average) and the command that reproduces it."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path
from typing import Any

from bench.measure import loadavg

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"


def machine() -> dict[str, str]:
    import temporalio

    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "cpus (nproc)": str(os.cpu_count()),
        "RAM": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "Python": platform.python_version(),
        "temporalio": temporalio.__version__,
        "OS": platform.platform(),
        "date (UTC)": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "load average (1/5/15 min) at start": loadavg(),
    }


# --- docs/benchmarks.md -----------------------------------------------------------------

HEADER = """# Benchmarks

Figures measured on the machine named in each section by the scripts in `bench/` (one command
each; `python -m bench` runs all with small defaults). Every figure comes with the load
average of the machine when it was taken: other processes (test suites) may have been
running at the same time on the same 2 cores. Nothing in the test suite asserts a timing.

Each section is rewritten by its script between its markers.
"""


def machine_block(settings: dict[str, Any], command: str) -> str:
    m = machine()
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in m.items()]
    lines += [f"| {k} | {v} |" for k, v in settings.items()]
    return "\n".join(lines) + f"\n\nReproduce: `{command}`\n"


def write_section(name: str, body: str) -> None:
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = DOC.read_text() if DOC.exists() else HEADER
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
    print(f"[bench] wrote section {name} of {DOC}")


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(c) for c in r) + " |")
    return "\n".join(out)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)
