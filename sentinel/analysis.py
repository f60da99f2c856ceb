"""The analysis of the exception event record (R27, R23, R30): pure, from a list of event
rows to a report (a JSON-ready dict) and its Markdown form. The definitions of every
figure are in docs/analysis.md; the record's rows are written by the activities and the
gateway (store/events.py).

The population is the withdrawals whose ``started`` row is among the rows; rows of other
withdrawals are ignored, except ``unmapped`` rows, which are counted by day whatever
withdrawal they came from.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

#: amount bands, in the currency's major unit (upper bound exclusive, label)
AMOUNT_BANDS: tuple[tuple[Decimal, str], ...] = (
    (Decimal(100), "<100"),
    (Decimal(1000), "100-1k"),
    (Decimal(10000), "1k-10k"),
    (Decimal(100000), "10k-100k"),
)
TOP_BAND = ">=100k"

#: statuses that mean something went wrong (a status row with one of them, or with a
#: category, is an exception)
EXCEPTION_STATUSES = frozenset({"DELAYED", "UNDER_REVIEW", "MANUAL_CHECK", "FAILED", "RETURNED"})
FINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "RETURNED"})
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def as_utc(at: datetime) -> datetime:
    """``at`` with its zone; a time without one is taken as UTC (SQLite stores UTC without it)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def amount_band(amount: Decimal) -> str:
    """The band of ``amount`` (major unit of its currency, no conversion between currencies)."""
    for upper, label in AMOUNT_BANDS:
        if amount < upper:
            return label
    return TOP_BAND


@dataclass(frozen=True)
class EventRow:
    """One row of the record, as the analysis reads it (see store.tables.WithdrawalEvent)."""

    withdrawal_id: str
    kind: str
    at: datetime
    key: str = ""
    channel: str | None = None
    bank_code: str | None = None
    amount_band: str | None = None
    currency: str | None = None
    delay_threshold_s: int | None = None
    status: str | None = None
    category: str | None = None
    reason_code: str | None = None
    notice_channel: str | None = None
    notice_key: str | None = None
    stage: str | None = None
    rung: int | None = None


def percentiles(values: list[float]) -> dict[str, Any]:
    """count, p50, p95, p99 by the nearest-rank method (None when there are no values)."""
    ordered = sorted(values)

    def rank(p: int) -> float | None:
        if not ordered:
            return None
        return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]

    return {"count": len(ordered), "p50": rank(50), "p95": rank(95), "p99": rank(99)}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def hour_of_week(at: datetime) -> str:
    """``Mon 09``: the weekday and hour of ``at`` in UTC."""
    return f"{DAYS[at.weekday()]} {at.hour:02d}"


def _group(key: str) -> str:
    """The notice a delivery key belongs to: ``withdrawal/STAGE/seq`` of
    ``withdrawal/STAGE/seq/channel[/rN]``."""
    return "/".join(key.split("/")[:3])


@dataclass
class _Withdrawal:
    started: EventRow
    statuses: list[EventRow] = field(default_factory=list)
    notices: list[EventRow] = field(default_factory=list)
    reads: list[EventRow] = field(default_factory=list)

    def dims(self) -> dict[str, str]:
        s = self.started
        return {
            "channel": s.channel or "?",
            "bank": s.bank_code or "?",
            "amount_band": s.amount_band or "?",
            "hour_of_week": hour_of_week(s.at),
        }

    def detected(self) -> EventRow | None:
        return next((r for r in self.statuses if r.category or r.status in EXCEPTION_STATUSES), None)

    def arrived_at(self) -> datetime | None:
        return next((r.at for r in self.statuses if r.status == "SUCCEEDED"), None)

    def outcome(self) -> EventRow | None:
        return next((r for r in reversed(self.statuses) if r.status in FINAL_STATUSES), None)

    def first_notice(self, stage: str | None = None, after: datetime | None = None) -> EventRow | None:
        return next(
            (
                n
                for n in self.notices
                if (stage is None and n.stage != "OPERATOR_ALERT" or n.stage == stage)
                and (after is None or n.at >= after)
            ),
            None,
        )


def _collect(rows: list[EventRow]) -> tuple[dict[str, _Withdrawal], list[EventRow]]:
    rows = sorted(rows, key=lambda r: (r.at, r.key))
    found = {r.withdrawal_id: _Withdrawal(r) for r in rows if r.kind == "started"}
    for r in rows:
        w = found.get(r.withdrawal_id)
        if w is not None:
            {"status": w.statuses, "notice": w.notices, "read": w.reads}.get(r.kind, []).append(r)
    return found, [r for r in rows if r.kind == "unmapped"]


def _exception_rates(found: dict[str, _Withdrawal]) -> dict[str, Any]:
    total = len(found)
    by: dict[str, dict[str, list[int]]] = {
        d: defaultdict(lambda: [0, 0]) for d in ("channel", "bank", "amount_band", "hour_of_week")
    }
    codes: dict[str, int] = defaultdict(int)
    categories: dict[str, int] = defaultdict(int)
    exceptions = 0
    for w in found.values():
        bad = w.detected() is not None
        exceptions += bad
        for dim, value in w.dims().items():
            by[dim][value][0] += 1
            by[dim][value][1] += bad
        for code in {r.reason_code for r in w.statuses if r.reason_code}:
            codes[code] += 1
        for cat in {r.category for r in w.statuses if r.category}:
            categories[cat] += 1
    out: dict[str, Any] = {"withdrawals": total, "exceptions": exceptions, "rate": _rate(exceptions, total)}
    for dim, groups in by.items():
        out[f"by_{dim}"] = {
            k: {"withdrawals": n, "exceptions": e, "rate": _rate(e, n)}
            for k, (n, e) in sorted(groups.items())
        }
    out["by_code"] = {k: {"withdrawals": n, "rate": _rate(n, total)} for k, n in sorted(codes.items())}
    out["by_category"] = {
        k: {"withdrawals": n, "rate": _rate(n, total)} for k, n in sorted(categories.items())
    }
    return out


def _timing(found: dict[str, _Withdrawal]) -> tuple[dict[str, Any], dict[str, Any]]:
    detect: list[float] = []
    notify: list[float] = []
    for w in found.values():
        d = w.detected()
        if d is None:
            continue
        detect.append((d.at - w.started.at).total_seconds())
        n = w.first_notice(after=d.at)
        if n is not None:
            notify.append((n.at - d.at).total_seconds())
    return percentiles(detect), percentiles(notify)


def _alarms(
    found: dict[str, _Withdrawal], margin: timedelta, default_threshold: timedelta
) -> tuple[dict[str, Any], dict[str, Any]]:
    false_by: dict[str, defaultdict[str, list[int]]] = {
        d: defaultdict(lambda: [0, 0]) for d in ("channel", "bank")
    }
    missed_by: dict[str, defaultdict[str, list[int]]] = {
        d: defaultdict(lambda: [0, 0]) for d in ("channel", "bank")
    }
    for w in found.values():
        dims = w.dims()
        arrived = w.arrived_at()
        delay_notice = w.first_notice("DELAYED")
        if delay_notice is not None:
            false_alarm = arrived is not None and timedelta(0) <= arrived - delay_notice.at <= margin
            for d in false_by:
                false_by[d][dims[d]][0] += 1
                false_by[d][dims[d]][1] += false_alarm
        threshold = (
            timedelta(seconds=w.started.delay_threshold_s)
            if w.started.delay_threshold_s
            else default_threshold
        )
        if arrived is not None and arrived - w.started.at > threshold:
            for d in missed_by:
                missed_by[d][dims[d]][0] += 1
                missed_by[d][dims[d]][1] += delay_notice is None
    false_alarms: dict[str, Any] = {
        "margin_s": margin.total_seconds(),
        "total": sum(f for _, f in false_by["channel"].values()),
    }
    missed: dict[str, Any] = {"total": sum(m for _, m in missed_by["channel"].values())}
    for d in ("channel", "bank"):
        false_alarms[f"by_{d}"] = {
            k: {"delay_notices": n, "false_alarms": f, "rate": _rate(f, n)}
            for k, (n, f) in sorted(false_by[d].items())
        }
        missed[f"by_{d}"] = {
            k: {"arrived_late": n, "missed": m, "rate": _rate(m, n)}
            for k, (n, m) in sorted(missed_by[d].items())
        }
    return false_alarms, missed


def _notices(found: dict[str, _Withdrawal]) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"sent": 0, "read": 0, "escalations": 0, "corrections": 0, "waits": []}
    )
    for w in found.values():
        for n in w.notices:
            c = per[n.notice_channel or "?"]
            c["sent"] += 1
            c["escalations"] += bool(n.rung)
            c["corrections"] += n.stage == "CORRECTION"
            key = n.notice_key or ""
            reads = [
                r.at
                for r in w.reads
                if r.at >= n.at
                and (
                    r.notice_key == key
                    or (r.notice_channel == "link" and _group(r.notice_key or "") == _group(key))
                )
            ]
            if reads:
                c["read"] += 1
                c["waits"].append((min(reads) - n.at).total_seconds())
    out = {}
    for channel, c in sorted(per.items()):
        out[channel] = {
            "sent": c["sent"],
            "read": c["read"],
            "read_rate": _rate(c["read"], c["sent"]),
            "time_to_read_s": percentiles(c["waits"]),
            "escalations": c["escalations"],
            "corrections": c["corrections"],
        }
    return {
        "by_channel": out,
        "escalations": sum(c["escalations"] for c in out.values()),
        "corrections": sum(c["corrections"] for c in out.values()),
    }


def _unmapped(rows: list[EventRow]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    for r in rows:
        seen[(r.at.date().isoformat(), r.channel or "?", r.status or "", r.reason_code or "")].add(
            r.withdrawal_id
        )
    return [
        {"day": day, "channel": ch, "raw_status": st, "raw_code": code, "withdrawals": len(ids)}
        for (day, ch, st, code), ids in sorted(seen.items())
    ]


def analyse(
    rows: list[EventRow],
    *,
    false_alarm_margin: timedelta = timedelta(minutes=30),
    default_threshold: timedelta = timedelta(minutes=30),
) -> dict[str, Any]:
    """The report of ``rows`` (see docs/analysis.md for each figure)."""
    found, unmapped = _collect(rows)
    detect, notify = _timing(found)
    false_alarms, missed = _alarms(found, false_alarm_margin, default_threshold)
    outcomes: dict[str, int] = defaultdict(int)
    for w in found.values():
        o = w.outcome()
        outcomes[o.status if o and o.status else "OPEN"] += 1
    return {
        "withdrawals": len(found),
        "outcomes": dict(sorted(outcomes.items())),
        "exception_rates": _exception_rates(found),
        "time_to_detect_s": detect,
        "time_to_notify_s": notify,
        "false_alarms": false_alarms,
        "missed_delays": missed,
        "notices": _notices(found),
        "unmapped_codes": _unmapped(unmapped),
    }


def _table(title: str, head: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return [f"### {title}", "", "(none)", ""]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join("-" if v is None else str(v) for v in row) + " |" for row in rows]
    return lines + [""]


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown, for people."""
    period = f"{report.get('since', '...')} to {report.get('until', '...')}"
    rates = report["exception_rates"]
    lines = [
        f"# Exception analysis, withdrawals started {period}",
        "",
        f"Withdrawals: {report['withdrawals']}; exceptions: {rates['exceptions']} (rate {rates['rate']}); "
        f"outcomes: {', '.join(f'{k} {v}' for k, v in report['outcomes'].items()) or 'none'}.",
        "",
    ]
    for dim in ("channel", "bank", "amount_band", "hour_of_week"):
        lines += _table(
            f"Exception rate by {dim.replace('_', ' ')}",
            [dim, "withdrawals", "exceptions", "rate"],
            [[k, v["withdrawals"], v["exceptions"], v["rate"]] for k, v in rates[f"by_{dim}"].items()],
        )
    for dim in ("code", "category"):
        lines += _table(
            f"Exception rate by {dim}",
            [dim, "withdrawals", "rate"],
            [[k, v["withdrawals"], v["rate"]] for k, v in rates[f"by_{dim}"].items()],
        )
    lines += _table(
        "Time to detect and to notify (seconds)",
        ["measure", "count", "p50", "p95", "p99"],
        [
            [name, t["count"], t["p50"], t["p95"], t["p99"]]
            for name, t in (("detect", report["time_to_detect_s"]), ("notify", report["time_to_notify_s"]))
        ],
    )
    fa, md = report["false_alarms"], report["missed_delays"]
    for dim in ("channel", "bank"):
        lines += _table(
            f"False alarms by {dim} (money within {fa['margin_s']:.0f} s of the delay notice)",
            [dim, "delay notices", "false alarms", "rate"],
            [[k, v["delay_notices"], v["false_alarms"], v["rate"]] for k, v in fa[f"by_{dim}"].items()],
        )
        lines += _table(
            f"Missed delays by {dim}",
            [dim, "arrived late", "no delay notice", "rate"],
            [[k, v["arrived_late"], v["missed"], v["rate"]] for k, v in md[f"by_{dim}"].items()],
        )
    lines += _table(
        "Notice effectiveness by channel",
        ["channel", "sent", "read", "read rate", "read p50 s", "read p95 s", "escalations", "corrections"],
        [
            [
                k,
                v["sent"],
                v["read"],
                v["read_rate"],
                v["time_to_read_s"]["p50"],
                v["time_to_read_s"]["p95"],
                v["escalations"],
                v["corrections"],
            ]
            for k, v in report["notices"]["by_channel"].items()
        ],
    )
    lines += _table(
        "Unmapped codes by day",
        ["day", "channel", "raw status", "raw code", "withdrawals"],
        [
            [u["day"], u["channel"], u["raw_status"], u["raw_code"], u["withdrawals"]]
            for u in report["unmapped_codes"]
        ],
    )
    return "\n".join(lines)
