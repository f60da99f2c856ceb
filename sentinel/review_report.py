"""The periodic review report (issue #14 item 5, R30): which period a daily or weekly run
covers, its charts (PNG, matplotlib's Agg backend) and its HTML. Pure: from the analysis
(sentinel/analysis.py), the spot-check accuracy and the suggested catalogue changes
(sentinel/spot_checks.py) to bytes and text; no file, database or network.

Charts are referenced in the HTML as ``cid:<name>`` (the email carries them as inline
parts); the API serves the same HTML with those links pointing at its chart routes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from pydantic import BaseModel

from sentinel.analysis import as_utc

KINDS = ("daily", "weekly")


def period(kind: str, at: datetime) -> tuple[datetime, datetime]:
    """The period a run at ``at`` reviews: ``daily`` the previous UTC day, ``weekly`` the
    previous ISO week (Monday 00:00 UTC to Monday 00:00 UTC)."""
    at = at.astimezone(UTC)
    today = datetime(at.year, at.month, at.day, tzinfo=UTC)
    if kind == "daily":
        return today - timedelta(days=1), today
    if kind == "weekly":
        monday = today - timedelta(days=today.weekday())
        return monday - timedelta(days=7), monday
    raise ValueError(f"kind must be one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    png: bytes


def _bar_png(title: str, labels: list[str], series: dict[str, list[float]], ylabel: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    n = max(1, len(series))
    width = 0.8 / n
    xs = list(range(len(labels)))
    for i, (name, values) in enumerate(series.items()):
        ax.bar([x + (i - (n - 1) / 2) * width for x in xs], values, width=width, label=name)
    ax.set_xticks(
        xs, labels, rotation=30 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center"
    )
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if n > 1:
        ax.legend(fontsize="small")
    if not labels:
        ax.text(0.5, 0.5, "no data in this period", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def charts(report: dict[str, Any], accuracy: dict[str, dict[str, Any]]) -> list[Chart]:
    """The report's charts: exception rate by channel and by bank, time to detect and to
    notify, false alarms and missed delays by bank, spot-check accuracy by category."""
    rates = report["exception_rates"]
    out = []
    for dim in ("channel", "bank"):
        groups = rates[f"by_{dim}"]
        out.append(
            Chart(
                f"exceptions_by_{dim}",
                f"Exception rate by {dim}",
                _bar_png(
                    f"Exception rate by {dim}",
                    list(groups),
                    {"rate": [g["rate"] or 0.0 for g in groups.values()]},
                    "share of withdrawals",
                ),
            )
        )
    t = {"detect": report["time_to_detect_s"], "notify": report["time_to_notify_s"]}
    out.append(
        Chart(
            "timing",
            "Time to detect and to notify",
            _bar_png(
                "Time to detect and to notify (seconds)",
                ["p50", "p95", "p99"],
                {name: [float(v[p] or 0.0) for p in ("p50", "p95", "p99")] for name, v in t.items()},
                "seconds",
            ),
        )
    )
    fa, md = report["false_alarms"]["by_bank"], report["missed_delays"]["by_bank"]
    banks = sorted(set(fa) | set(md))
    out.append(
        Chart(
            "alarms_by_bank",
            "False alarms and missed delays by bank",
            _bar_png(
                "False alarms and missed delays by bank",
                banks,
                {
                    "false alarms": [fa.get(b, {}).get("false_alarms", 0) for b in banks],
                    "missed delays": [md.get(b, {}).get("missed", 0) for b in banks],
                },
                "withdrawals",
            ),
        )
    )
    out.append(
        Chart(
            "spot_check_accuracy",
            "Spot-check accuracy by category",
            _bar_png(
                "Spot-check accuracy by category",
                list(accuracy),
                {"accuracy": [a["accuracy"] for a in accuracy.values()]},
                "share correct",
            ),
        )
    )
    return out


def _table(head: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('-' if v is None else str(v))}</td>" for v in r) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def headline(report: dict[str, Any]) -> dict[str, Any]:
    fa, md = report["false_alarms"], report["missed_delays"]
    notices = sum(v["delay_notices"] for v in fa["by_channel"].values())
    return {
        "withdrawals": report["withdrawals"],
        "exceptions": report["exception_rates"]["exceptions"],
        "exception_rate": report["exception_rates"]["rate"],
        "delay_notices": notices,
        "false_alarms": fa["total"],
        "false_alarm_rate": round(fa["total"] / notices, 4) if notices else None,
        "missed_delays": md["total"],
        "notify_p95_s": report["time_to_notify_s"]["p95"],
    }


def period_label(kind: str, since: datetime, until: datetime, to: str = " to ") -> str:
    """The period's days (UTC): ``2026-12-06`` for a daily report, ``2026-11-30 to 2026-12-06``
    (its last day included) for a weekly one."""
    since, until = as_utc(since).astimezone(UTC), as_utc(until).astimezone(UTC)
    if kind == "daily":
        return since.date().isoformat()
    return f"{since.date()}{to}{(until - timedelta(days=1)).date()}"


def subject(kind: str, since: datetime, until: datetime, report: dict[str, Any]) -> str:
    h = headline(report)
    span = period_label(kind, since, until)
    return (
        f"[withdrawal-sentinel] {kind} review {span}: {h['withdrawals']} withdrawals, "
        f"{h['false_alarms']} false alarms, {h['missed_delays']} missed delays"
    )


def render_html(
    kind: str,
    since: datetime,
    until: datetime,
    report: dict[str, Any],
    accuracy: dict[str, dict[str, Any]],
    suggestions: list[dict[str, Any]],
    chart_list: list[Chart],
) -> str:
    """The report as one HTML document; charts as ``<img src="cid:NAME">``."""
    h = headline(report)
    rates = report["exception_rates"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(subject(kind, since, until, report))}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:1em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;"
        "text-align:left}pre{background:#f6f6f6;padding:.5em;overflow:auto}</style></head><body>",
        f"<h1>{escape(kind.capitalize())} review: withdrawals started {escape(since.isoformat())} "
        f"to {escape(until.isoformat())}</h1>",
        _table(["figure", "value"], [[k.replace("_", " "), v] for k, v in h.items()]),
        "<p>Definitions: docs/analysis.md. False alarm: the money arrived within "
        f"{report['false_alarms']['margin_s']:.0f} s after the delay notice.</p>",
    ]
    for c in chart_list:
        parts.append(f"<h2>{escape(c.title)}</h2><img src='cid:{escape(c.name)}' alt='{escape(c.title)}'>")
    parts.append("<h2>Exception rate by channel</h2>")
    parts.append(
        _table(
            ["channel", "withdrawals", "exceptions", "rate"],
            [[k, v["withdrawals"], v["exceptions"], v["rate"]] for k, v in rates["by_channel"].items()],
        )
    )
    parts.append("<h2>Exception rate by category</h2>")
    parts.append(
        _table(
            ["category", "withdrawals", "rate"],
            [[k, v["withdrawals"], v["rate"]] for k, v in rates["by_category"].items()],
        )
    )
    for dim in ("channel", "bank"):
        parts.append(f"<h2>False alarms and missed delays by {dim}</h2>")
        fa, md = report["false_alarms"][f"by_{dim}"], report["missed_delays"][f"by_{dim}"]
        parts.append(
            _table(
                [dim, "delay notices", "false alarms", "arrived late", "missed"],
                [
                    [
                        k,
                        fa.get(k, {}).get("delay_notices", 0),
                        fa.get(k, {}).get("false_alarms", 0),
                        md.get(k, {}).get("arrived_late", 0),
                        md.get(k, {}).get("missed", 0),
                    ]
                    for k in sorted(set(fa) | set(md))
                ],
            )
        )
    parts.append("<h2>Spot checks: accuracy by category (verdicts given in the period)</h2>")
    parts.append(
        _table(
            ["category", "reviewed", "correct", "wrong", "accuracy"],
            [[k, a["reviewed"], a["correct"], a["wrong"], a["accuracy"]] for k, a in accuracy.items()],
        )
    )
    parts.append("<h2>Suggested catalogue changes (from wrong spot checks)</h2>")
    if not suggestions:
        parts.append("<p>(none)</p>")
    for s in suggestions:
        parts.append(f"<p>{escape(s['file'])}</p><pre>{escape(s['yaml'])}</pre>")
    unmapped = report.get("unmapped_codes", [])
    parts.append("<h2>Unmapped codes</h2>")
    parts.append(
        _table(
            ["day", "channel", "raw status", "raw code", "withdrawals"],
            [[u["day"], u["channel"], u["raw_status"], u["raw_code"], u["withdrawals"]] for u in unmapped],
        )
    )
    parts.append("</body></html>")
    return "\n".join(parts)


#: how render_html references a chart (``<img src='cid:NAME' ...>``)
_CHART_SRC = re.compile(r"src='cid:([A-Za-z0-9_.-]{1,40})'")
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.S | re.I)


def link_charts(html: str, url_of: Callable[[str], str]) -> str:
    """The report's HTML with each ``cid:NAME`` chart pointing at ``url_of(NAME)`` (the API's
    chart route, or the operations console's)."""
    return _CHART_SRC.sub(lambda m: f"src='{escape(url_of(m.group(1)))}'", html)


def report_body(html: str) -> str:
    """What is inside the report's ``<body>``: the page that shows it inside another (the
    operations console) keeps its own head, styles and scripts and none of the report's."""
    found = _BODY.search(html)
    return found.group(1) if found else ""


def text_summary(
    kind: str,
    since: datetime,
    until: datetime,
    report: dict[str, Any],
    accuracy: dict[str, Any],
    suggestions: list[Any],
) -> str:
    """The plain-text part of the email."""
    h = headline(report)
    lines = [subject(kind, since, until, report), ""]
    lines += [f"{k.replace('_', ' ')}: {v}" for k, v in h.items()]
    lines += ["", "Spot-check accuracy:"] + [
        f"  {k}: {a['correct']}/{a['reviewed']}" for k, a in accuracy.items()
    ]
    lines += ["", f"Suggested catalogue changes: {len(suggestions)}"]
    return "\n".join(lines) + "\n"


# --- what the review workflow and its activities exchange (workflows/review_report.py) ---


class ReviewInput(BaseModel):
    kind: str
    since: datetime
    until: datetime


class ReviewOutput(BaseModel):
    report_id: int
    since: datetime | None = None
    until: datetime | None = None
    headline: dict[str, Any]
    emailed: str = ""
    spot_checks_drawn: int = 0
