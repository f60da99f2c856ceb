"""Send windows in the user's local time (pure). Quiet hours (the user's do-not-disturb) and
legal contact hours (regulation for SMS and voice) are both "allowed windows": a local
start and end time, possibly across midnight. A notice outside its window is deferred to
the window's next start, never dropped."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class TimeWindow(BaseModel):
    """Allowed from ``start`` (inclusive) to ``end`` (exclusive), local time, "HH:MM"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"time {v!r} must be HH:MM (24 h)")
        return v

    def _t(self, value: str) -> time:
        h, m = value.split(":")
        return time(int(h), int(m))

    def contains(self, local: datetime) -> bool:
        start, end, t = self._t(self.start), self._t(self.end), local.time()
        if start == end:
            return True
        if start < end:
            return start <= t < end
        return t >= start or t < end  # across midnight

    def next_open(self, now: datetime, tz_name: str) -> datetime:
        """``now`` (aware) if inside the window, else the next start, as an aware UTC time."""
        tz = zone(tz_name)
        local = now.astimezone(tz)
        if self.contains(local):
            return now
        start = self._t(self.start)
        candidate = datetime.combine(local.date(), start, tzinfo=tz)
        if candidate <= local:
            candidate += timedelta(days=1)
        return candidate.astimezone(UTC)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
