"""Traces of withdrawals (issue #14 item 7): the CSV format the replay reads, and a
generator of synthetic traces built from documented facts (docs/traces.md gives every fact
and its source). Pure: text in, rows out; the generator is seeded and deterministic.

A trace row is one withdrawal as the channel saw it: when it was submitted, through which
channel and bank, how much, what finally happened (``outcome``) and when (``outcome_at``),
whether the channel told us by callback or we found it by polling (``reported_by``), the
channel's codes (``codes``: a progress code the channel answers while the payout is slow,
then for a failure the final code last), and optionally which outage it was caught in.

Amounts are Decimal strings; times are ISO 8601 with a zone (UTC in generated traces).
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from sentinel.models import WithdrawalRequest

COLUMNS = (
    "withdrawal_id",
    "submitted_at",
    "channel",
    "bank",
    "amount",
    "currency",
    "outcome",
    "outcome_at",
    "reported_by",
    "codes",
    "outage",
)
REQUIRED = COLUMNS[1:9]  # withdrawal_id (default: the row number), codes and outage may be absent
OUTCOMES = ("SUCCEEDED", "FAILED")
REPORTED_BY = ("callback", "poll")
#: bounds of what a trace may hold (every input bounded)
MAX_ROWS = 200_000
MAX_SPAN = timedelta(days=120)
MAX_CODES = 4


class TraceError(ValueError):
    """A trace that does not follow the format (docs/traces.md), with its line number."""


@dataclass(frozen=True)
class TraceRow:
    withdrawal_id: str
    submitted_at: datetime
    channel: str
    bank: str
    amount: Decimal
    currency: str
    outcome: str
    outcome_at: datetime
    reported_by: str
    codes: tuple[str, ...] = ()
    outage: str = ""

    @property
    def progress_code(self) -> str | None:
        """The code the channel answers while the payout is still on its way (a success's
        only code, a failure's codes but the last)."""
        slow = self.codes if self.outcome == "SUCCEEDED" else self.codes[:-1]
        return slow[0] if slow else None

    @property
    def final_code(self) -> str | None:
        return self.codes[-1] if self.outcome == "FAILED" and self.codes else None

    @property
    def duration(self) -> timedelta:
        return self.outcome_at - self.submitted_at


def _time(text: str, line: int, column: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TraceError(f"line {line}: {column} {text!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise TraceError(f"line {line}: {column} {text!r} needs a time zone")
    return at.astimezone(UTC)


def parse_trace(text: str) -> list[TraceRow]:
    """The rows of a trace CSV (header line first), sorted by submit time. TraceError names
    the first line that breaks the format."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise TraceError(f"line 1: missing column(s) {', '.join(missing)}")
    rows: list[TraceRow] = []
    seen: set[str] = set()
    for n, raw in enumerate(reader, start=2):
        if len(rows) >= MAX_ROWS:
            raise TraceError(f"line {n}: a trace holds at most {MAX_ROWS} rows")
        wid = (raw.get("withdrawal_id") or f"T{n - 1:06d}").strip()
        if not wid or len(wid) > 48 or not all(c.isalnum() or c in "-_" for c in wid) or wid in seen:
            raise TraceError(
                f"line {n}: withdrawal_id {wid!r} is empty, too long, not [A-Za-z0-9_-] or repeated"
            )
        seen.add(wid)
        outcome = (raw["outcome"] or "").strip().upper()
        if outcome not in OUTCOMES:
            raise TraceError(f"line {n}: outcome {raw['outcome']!r} is not one of {', '.join(OUTCOMES)}")
        reported = (raw["reported_by"] or "").strip().lower()
        if reported not in REPORTED_BY:
            raise TraceError(f"line {n}: reported_by {raw['reported_by']!r} is not callback or poll")
        try:
            amount = Decimal((raw["amount"] or "").strip())
        except ArithmeticError:
            raise TraceError(f"line {n}: amount {raw['amount']!r} is not a decimal number") from None
        if not amount.is_finite() or amount <= 0 or amount >= Decimal("1e12"):
            raise TraceError(f"line {n}: amount {raw['amount']!r} must be positive and below 10^12")
        submitted = _time(raw["submitted_at"] or "", n, "submitted_at")
        outcome_at = _time(raw["outcome_at"] or "", n, "outcome_at")
        if outcome_at < submitted:
            raise TraceError(f"line {n}: outcome_at is before submitted_at")
        codes = tuple(c.strip().upper() for c in (raw.get("codes") or "").split(";") if c.strip())
        if len(codes) > MAX_CODES or any(not c.isalnum() or len(c) > 16 for c in codes):
            raise TraceError(f"line {n}: codes must be at most {MAX_CODES} alphanumeric codes joined by ';'")
        if outcome == "FAILED" and not codes:
            raise TraceError(f"line {n}: a FAILED outcome needs its code")
        channel, bank = (raw["channel"] or "").strip(), (raw["bank"] or "").strip().upper()
        if not (2 <= len(channel) <= 32 and channel.isidentifier() and channel.islower()):
            raise TraceError(f"line {n}: channel {channel!r} must be a lower-case name")
        if not (1 <= len(bank) <= 16 and bank.isalnum()):
            raise TraceError(f"line {n}: bank {bank!r} must be an alphanumeric code")
        currency = (raw["currency"] or "").strip().upper()
        if len(currency) != 3 or not currency.isalpha():
            raise TraceError(f"line {n}: currency {currency!r} is not a 3-letter code")
        rows.append(
            TraceRow(
                withdrawal_id=wid,
                submitted_at=submitted,
                channel=channel,
                bank=bank,
                amount=amount,
                currency=currency,
                outcome=outcome,
                outcome_at=outcome_at,
                reported_by=reported,
                codes=codes,
                outage=(raw.get("outage") or "").strip()[:64],
            )
        )
    rows.sort(key=lambda r: (r.submitted_at, r.withdrawal_id))
    if rows and rows[-1].submitted_at - rows[0].submitted_at > MAX_SPAN:
        raise TraceError(f"the trace spans more than {MAX_SPAN.days} days")
    return rows


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_csv(rows: Iterable[TraceRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow(
            [
                r.withdrawal_id,
                _iso(r.submitted_at),
                r.channel,
                r.bank,
                str(r.amount),
                r.currency,
                r.outcome,
                _iso(r.outcome_at),
                r.reported_by,
                ";".join(r.codes),
                r.outage,
            ]
        )
    return out.getvalue()


# --- the generator's facts (docs/traces.md says where each comes from) -------------------

CST = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class ChannelFacts:
    share: float  # of all withdrawals
    median_s: float  # typical time to arrive (log-normal median)
    sigma: float  # log-normal spread
    currency: str
    banks: tuple[tuple[str, float], ...]  # bank code and its share of the channel
    callback_rate: float  # share of outcomes the channel reports by callback (the rest: polling)
    business_days_only: bool  # settles only on business days (batching, [S4] [S20])


CHANNELS: dict[str, ChannelFacts] = {
    # domestic bank card through the generic bank protocol: minutes, nightly maintenance
    "generic": ChannelFacts(
        0.55,
        180,
        0.9,
        "CNY",
        (("ICBC", 0.3), ("CCB", 0.25), ("ABC", 0.2), ("BOC", 0.15), ("CMB", 0.1)),
        0.9,
        False,
    ),
    # Alipay to balance / card, T0 within hours [S8]
    "alipay": ChannelFacts(0.25, 60, 1.0, "CNY", (("ALIPAY", 1.0),), 0.95, False),
    # WeChat Pay to bank card: 1-3 days, fastest next day [S12]
    "wechat": ChannelFacts(0.1, 26 * 3600, 0.35, "CNY", (("ICBC", 0.5), ("CCB", 0.5)), 0.8, False),
    # ISO 20022 credit transfers: business-day batches, cut-off then next business day [S4] [S20]
    "iso20022": ChannelFacts(0.1, 40 * 60, 0.8, "EUR", (("DEUTDEFF", 0.5), ("BNPAFRPP", 0.5)), 0.7, True),
}
#: failure codes by channel (generic and iso20022 speak ISO 20022 reason codes) and their share
FAILURES: tuple[tuple[str, float], ...] = (("AC04", 0.006), ("AC01", 0.006), ("BE01", 0.004))
#: nightly maintenance window of the domestic banks, China Standard Time (assumption: see docs)
MAINTENANCE = (time(0, 0), time(1, 30))
#: PBOC HVPS (large-value system) closed hours, CST [S20]: Mon-Thu 17:15-20:30, Fri 17:15-24:00
HVPS_CLOSED = {
    0: (time(17, 15), time(20, 30)),
    1: (time(17, 15), time(20, 30)),
    2: (time(17, 15), time(20, 30)),
    3: (time(17, 15), time(20, 30)),
    4: (time(17, 15), time(23, 59, 59)),
}
HVPS_FROM = Decimal(50000)  # amounts routed through HVPS (assumption: see docs)
#: public holidays in the default period (closed like a weekend for batch channels)
HOLIDAYS: tuple[date, ...] = (date(2026, 12, 25), date(2027, 1, 1))
#: outages: per bank and day the chance that one starts, and its length (minutes)
OUTAGE_PER_BANK_DAY = 0.03
OUTAGE_MINUTES = (30, 240)
#: withdrawals by hour of day (CST), relative: quiet at night, busy in the evening
HOUR_WEIGHTS = (2, 1, 1, 1, 1, 1, 2, 4, 6, 8, 9, 9, 9, 9, 9, 9, 9, 10, 11, 12, 12, 11, 8, 4)
DEFAULT_START = datetime(2026, 12, 7, tzinfo=UTC)  # a Monday


def _pick(rng: random.Random, weighted: Iterable[tuple[str, float]]) -> str:
    items = list(weighted)
    return rng.choices([k for k, _ in items], weights=[w for _, w in items])[0]


def _closed_until(at: datetime, channel: str, bank: str, amount: Decimal) -> tuple[datetime, str | None]:
    """When a payout submitted at ``at`` can start moving, and the progress code the channel
    answers until then (None: not held)."""
    local = at.astimezone(CST)
    facts = CHANNELS[channel]
    if facts.business_days_only:
        day, held = local.date(), False
        while day.weekday() >= 5 or day in HOLIDAYS:
            day, held = day + timedelta(days=1), True
        if held:  # the next business day's first batch, 09:00 local
            return datetime.combine(day, time(9, 0), CST).astimezone(UTC), "G002"
        return at, None
    if channel in ("generic", "wechat") and MAINTENANCE[0] <= local.time() < MAINTENANCE[1]:
        return datetime.combine(local.date(), MAINTENANCE[1], CST).astimezone(UTC), "ED06"
    if channel == "generic" and amount >= HVPS_FROM:
        window = HVPS_CLOSED.get(local.weekday())
        if local.date() in HOLIDAYS or local.weekday() >= 5:
            day = local.date() + timedelta(days=1)
            while day.weekday() >= 5 or day in HOLIDAYS:
                day += timedelta(days=1)
            return datetime.combine(day, time(8, 30), CST).astimezone(UTC), "TM01"
        if window and window[0] <= local.time() < window[1]:
            reopen = datetime.combine(local.date(), window[1], CST)
            if window[1] >= time(23, 59):
                reopen = datetime.combine(local.date() + timedelta(days=3), time(8, 30), CST)  # Monday
            return reopen.astimezone(UTC), "TM01"
    return at, None


def generate(
    *, days: int = 30, count: int = 10000, seed: int = 1, start: datetime = DEFAULT_START
) -> list[TraceRow]:
    """``count`` withdrawals over ``days`` days from ``start``, drawn with ``seed``: the same
    arguments give the same trace. The facts are the module's constants (docs/traces.md)."""
    if not (1 <= days <= MAX_SPAN.days and 1 <= count <= MAX_ROWS):
        raise ValueError(f"days must be 1..{MAX_SPAN.days} and count 1..{MAX_ROWS}")
    rng = random.Random(seed)
    start = start.astimezone(UTC)
    end = start + timedelta(days=days)
    # outages first: (bank, begin, end, id)
    outages: list[tuple[str, datetime, datetime, str]] = []
    banks = sorted({b for f in CHANNELS.values() for b, _ in f.banks})
    for d in range(days):
        for bank in banks:
            if rng.random() < OUTAGE_PER_BANK_DAY:
                begin = start + timedelta(days=d, seconds=rng.randrange(86400))
                length = timedelta(minutes=rng.randint(*OUTAGE_MINUTES))
                outages.append((bank, begin, begin + length, f"{bank}-{begin:%m%d%H%M}"))
    # submit times: a day, then an hour by weight, then a second
    rows = []
    hours = list(range(24))
    for i in range(count):
        day = start + timedelta(days=rng.randrange(days))
        hour_cst = rng.choices(hours, weights=HOUR_WEIGHTS)[0]
        local_day = day.astimezone(CST).date()
        at = datetime.combine(local_day, time(hour_cst), CST).astimezone(UTC) + timedelta(
            seconds=rng.randrange(3600)
        )
        if not (start <= at < end):
            at = start + timedelta(seconds=rng.randrange(days * 86400))
        channel = _pick(rng, ((c, f.share) for c, f in CHANNELS.items()))
        facts = CHANNELS[channel]
        bank = _pick(rng, facts.banks)
        amount = Decimal(str(round(math.exp(rng.gauss(math.log(500), 1.3)), 2))).quantize(Decimal("0.01"))
        amount = max(Decimal("1.00"), min(amount, Decimal("500000.00")))
        moving, code = _closed_until(at, channel, bank, amount)
        outage = ""
        for o_bank, begin, o_end, oid in outages:
            if o_bank == bank and begin <= moving < o_end:
                moving, code, outage = o_end, "AB08", oid
                break
        took = timedelta(seconds=max(5.0, math.exp(rng.gauss(math.log(facts.median_s), facts.sigma))))
        outcome_at = moving + took
        outcome, codes = "SUCCEEDED", (code,) if code else ()
        r = rng.random()
        acc = 0.0
        for fail_code, share in FAILURES:
            acc += share
            if r < acc:
                outcome, codes = "FAILED", (*codes, fail_code)
                outcome_at = moving + timedelta(seconds=max(5.0, took.total_seconds() / 4))
                break
        rows.append(
            TraceRow(
                withdrawal_id=f"T{seed}-{i:06d}",
                submitted_at=at.replace(microsecond=0),
                channel=channel,
                bank=bank,
                amount=amount,
                currency=facts.currency,
                outcome=outcome,
                outcome_at=outcome_at.replace(microsecond=0),
                reported_by="callback" if rng.random() < facts.callback_rate else "poll",
                codes=codes,
                outage=outage,
            )
        )
    rows.sort(key=lambda r: (r.submitted_at, r.withdrawal_id))
    return rows


def summary(rows: list[TraceRow], threshold: timedelta) -> dict[str, Any]:
    """What the trace itself says (the known outcomes the replay's analysis is checked
    against): counts, and how many succeeded later than ``threshold`` after submit."""
    succeeded = [r for r in rows if r.outcome == "SUCCEEDED"]
    return {
        "withdrawals": len(rows),
        "succeeded": len(succeeded),
        "failed": len(rows) - len(succeeded),
        "late": sum(r.duration > threshold for r in succeeded),
        "in_outage": sum(bool(r.outage) for r in rows),
        "by_channel": {c: sum(r.channel == c for r in rows) for c in sorted({r.channel for r in rows})},
    }


# --- what the trace driver workflow and its activity exchange (workflows/trace_driver.py) ---


#: events handed to the driver per activity call (each run of the driver takes one chunk,
#: then continues as new: its history stays short whatever the trace's length)
CHUNK = 250


class ReplayEvent(BaseModel):
    at: datetime
    kind: Literal["start", "callback", "end"]
    withdrawal_id: str = ""
    request: WithdrawalRequest | None = None


class ReplayChunk(BaseModel):
    events: list[ReplayEvent]
    next_cursor: int | None = None  # None: the last chunk


class DriverInput(BaseModel):
    cursor: int = 0
    done: int = 0
