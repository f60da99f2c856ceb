"""Formatting for notices: amounts (Decimal, the currency's ISO 4217 minor units, never a
float), ETAs in the user's zone, one-line tidying, and the sizing of push and voice texts.
Pure: no clock (the caller passes ``now``).
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from sentinel.currencies import display_places
from sentinel.locales import template_locale
from sentinel.template_files import DEFAULT_KEY, load_templates


def format_amount(amount: Decimal, currency: str, locale: str) -> str:
    """``CNY 1,234.50`` (en-US) / ``1,234.50元`` (zh-CN) from a Decimal, never a float.
    Shows the currency's ISO 4217 minor units (:mod:`sentinel.currencies`: ``JPY 1,000``,
    ``KWD 1.500``), trailing zeros past them trimmed, and more digits only if the amount
    really has them (no rounding of money)."""
    places = display_places(amount, currency)
    number = f"{amount:,.{places}f}"
    patterns = load_templates(template_locale(locale)).doc.money_format
    pattern = patterns.get(currency, patterns[DEFAULT_KEY])
    return pattern.replace("{amount}", number).replace("{currency}", currency)


#: beyond this a date reads better than a number of hours
ETA_HOURS_MAX = 72


def zone(name: str) -> timezone | ZoneInfo:
    try:
        return ZoneInfo(name)
    except Exception:  # unknown zone or no tz database: UTC rather than no notice
        return UTC


def aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def format_eta(eta: datetime, fmt: str, tz_name: str) -> str:
    local = aware(eta).astimezone(zone(tz_name))
    offset = local.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    tz_label = f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return local.strftime(fmt.replace("{tz}", tz_label.replace("%", "%%")))


def hours_until(eta: datetime | None, now: datetime | None) -> int | None:
    if eta is None or now is None:
        return None
    seconds = (aware(eta) - aware(now)).total_seconds()
    if seconds <= 0:
        return None  # overdue: the template falls back to its own words
    hours = max(1, math.ceil(seconds / 3600))
    return hours if hours <= ETA_HOURS_MAX else None


_WS = re.compile(r"\s+")


def tidy(text: str) -> str:
    """One line: collapse the whitespace that YAML folding and Jinja blocks leave."""
    return _WS.sub(" ", text).strip()


def check_url(value: str, what: str) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^\s\"'<>]+$", value):
        raise ValueError(f"{what} must be an http(s) URL")
    return value


PUSH_TITLE_COLUMNS = 40
PUSH_BODY_COLUMNS = 110


_DIGITS = re.compile(r"\d+")


def speak_digits(text: str) -> str:
    """Digit runs of more than four split into groups a listener can follow
    (``95188`` -> ``95 188``, ``4008208820`` -> ``400 820 8820``): a voice never reads
    a long number as one number."""

    def group(m: re.Match[str]) -> str:
        d = m.group(0)
        count = -(-len(d) // 4)  # as few groups of at most 4 as possible, the longer ones last
        base, extra = divmod(len(d), count)
        sizes = [base] * (count - extra) + [base + 1] * extra
        starts = [sum(sizes[:i]) for i in range(count)]
        return " ".join(d[start : start + size] for start, size in zip(starts, sizes, strict=True))

    return _DIGITS.sub(group, text)


def display_columns(text: str) -> int:
    """Columns on a screen: East Asian wide and fullwidth characters count two."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)
