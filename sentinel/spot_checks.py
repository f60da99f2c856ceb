"""Spot checks of automated decisions (issue #14 item 6, R23): pure.

An automated decision is a status row of the event record that carries a category: the
classifier read a channel's code and the lifecycle routed the withdrawal (sentinel/lifecycle.py),
which shows as the status it put the withdrawal in (DELAYED, MANUAL_CHECK, UNDER_REVIEW,
FAILED, ...). The *route* of a decision here is that status.

Each day a stratified sample of the day's decisions goes to the spot-check queue: the
decisions are grouped by (category, route), each group (stratum) gets at least
``min_per_stratum`` (or all it has), and the rest of ``size`` is shared in proportion to the
groups' sizes (largest remainders). The draw is seeded (:func:`seed_for` of the day), so the
same day and seed give the same sample. A reviewer marks each one correct or wrong with the
right category; :func:`accuracy` gives the accuracy per category, and each wrong one becomes
a suggested catalogue change (:func:`suggestion`) for ``sentinel/codes/*.yaml``.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sentinel.analysis import EventRow
from sentinel.catalogue import Catalogue
from sentinel.taxonomy import ExceptionCategory

#: bounds (every input bounded): decisions looked at per day, sample size
MAX_DECISIONS = 100_000
MAX_SAMPLE = 1_000
CATEGORIES = tuple(c.value for c in ExceptionCategory)
VERDICTS = ("correct", "wrong")


@dataclass(frozen=True)
class Decision:
    key: str  # the event row's key: a decision is sampled once
    withdrawal_id: str
    at: datetime
    channel: str
    bank_code: str
    category: str
    route: str
    reason_code: str | None = None

    @property
    def stratum(self) -> tuple[str, str]:
        return (self.category, self.route)


def decisions_from(rows: list[EventRow]) -> list[Decision]:
    """The automated decisions among ``rows``: status rows with a category, with the channel
    and bank of their withdrawal's ``started`` row (``?`` when it is not among the rows)."""
    started = {r.withdrawal_id: r for r in rows if r.kind == "started"}
    out = []
    for r in rows:
        if r.kind != "status" or not r.category or not r.status:
            continue
        s = started.get(r.withdrawal_id)
        out.append(
            Decision(
                key=r.key,
                withdrawal_id=r.withdrawal_id,
                at=r.at,
                channel=(s.channel if s else None) or "?",
                bank_code=(s.bank_code if s else None) or "?",
                category=r.category,
                route=r.status,
                reason_code=r.reason_code,
            )
        )
        if len(out) >= MAX_DECISIONS:
            break
    return out


def seed_for(day: date, base: int = 0) -> int:
    """The seed of a day's draw: stable across runs and machines (not Python's hash)."""
    return int.from_bytes(hashlib.sha256(f"{base}/{day.isoformat()}".encode()).digest()[:8], "big")


def allocate(
    sizes: dict[tuple[str, str], int], size: int, min_per_stratum: int
) -> dict[tuple[str, str], int]:
    """How many of each stratum to draw: at least ``min_per_stratum`` each (or all it has),
    the rest of ``size`` in proportion to the strata's sizes, by largest remainder (ties by
    stratum name). The total is ``size`` unless the minimums alone exceed it (rare strata
    are what spot checks are for) or there are fewer decisions than that."""
    quota = {k: min(n, min_per_stratum) for k, n in sizes.items()}
    left = size - sum(quota.values())
    spare = {k: sizes[k] - quota[k] for k in sizes}
    pool = sum(spare.values())
    if left <= 0 or pool == 0:
        return quota
    left = min(left, pool)
    exact = {k: left * spare[k] / pool for k in sizes}
    for k in sizes:
        quota[k] += int(exact[k])
    rest = left - sum(int(v) for v in exact.values())
    for k in sorted(sizes, key=lambda k: (-(exact[k] - int(exact[k])), k)):
        if rest <= 0:
            break
        if quota[k] < sizes[k]:
            quota[k] += 1
            rest -= 1
    return quota


def sample(
    decisions: list[Decision], *, size: int, min_per_stratum: int = 1, seed: int = 0
) -> list[Decision]:
    """A stratified sample of ``decisions`` (see the module's docstring), ordered by time."""
    if not (0 <= size <= MAX_SAMPLE) or min_per_stratum < 0:
        raise ValueError(f"size must be 0..{MAX_SAMPLE} and min_per_stratum not negative")
    strata: dict[tuple[str, str], list[Decision]] = defaultdict(list)
    for d in sorted(decisions[:MAX_DECISIONS], key=lambda d: d.key):
        strata[d.stratum].append(d)
    quota = allocate({k: len(v) for k, v in strata.items()}, size, min_per_stratum)
    rng = random.Random(seed)
    picked: list[Decision] = []
    for k in sorted(strata):
        picked += rng.sample(strata[k], quota[k])
    return sorted(picked, key=lambda d: (d.at, d.key))


def accuracy(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per category (the one the system decided): reviewed, correct, wrong, accuracy.
    ``checks`` are reviewed spot checks (``category``, ``verdict``); unreviewed are skipped."""
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for c in checks:
        if c.get("verdict") not in VERDICTS:
            continue
        per[c["category"]][0] += 1
        per[c["category"]][1] += c["verdict"] == "correct"
    return {
        k: {"reviewed": n, "correct": ok, "wrong": n - ok, "accuracy": round(ok / n, 4)}
        for k, (n, ok) in sorted(per.items())
    }


def catalogue_file(catalogue: Catalogue, channel: str, code: str | None) -> str:
    """The file of sentinel/codes/ that defines ``code`` as ``channel`` sends it (a source
    may reuse another's codes through ``codes_from``); the channel's own file otherwise."""
    source = channel if channel in catalogue.sources else "generic"
    src = catalogue.sources[source]
    if code and code not in src.code_map and src.codes_from:
        source = src.codes_from
    return f"sentinel/codes/{source}.yaml"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def suggestion(check: dict[str, Any], catalogue: Catalogue) -> dict[str, Any]:
    """A wrong spot check as a suggested catalogue change: the file, and a YAML snippet of
    the entry with the category the reviewer gave (a person reviews and applies it)."""
    code = check.get("reason_code")
    target = catalogue_file(catalogue, check["channel"], code)
    note = (check.get("note") or "").replace("\n", " ")[:200]
    lines = [
        f"# {target}: spot check {check['id']} ({check.get('reviewer') or '?'}, "
        f"{str(check.get('reviewed_at') or '')[:10]}), withdrawal {check['withdrawal_id']}",
        f"# decided {check['category']} -> {check['route']}; the reviewer says {check['right_category']}",
    ]
    if note:
        lines.append(f"# note: {note}")
    if code:
        lines += [f"- code: {_q(code)}", f"  category: {check['right_category']}   # was {check['category']}"]
    else:
        lines += [
            "# no channel code: the status alone decided; review the source's `states:` mapping",
            f"#   category {check['category']} -> {check['right_category']}",
        ]
    return {
        "spot_check_id": check["id"],
        "file": target,
        "code": code,
        "from_category": check["category"],
        "to_category": check["right_category"],
        "yaml": "\n".join(lines) + "\n",
    }
