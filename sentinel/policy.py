"""Pure decision logic: tracking timers per channel/bank (the notice policy is in
``sentinel.notice_policy``). Inputs are plain data (parsed YAML); nothing here reads files or the clock, so the
workflow can call it and tests can check it directly.

R13, R23, R30, R31.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sentinel.models import TrackingPolicy
from sentinel.taxonomy import ExceptionCategory, WithdrawalStatus

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}

_TRACKING_KEYS = {
    "delay_threshold": "delay_threshold_s",
    "grace": "grace_s",
    "manual_check": "manual_check_s",
    "poll_schedule": "poll_schedule_s",
    "unknown_poll": "unknown_poll_s",
    "return_watch": "return_watch_s",
    "review_sla": "review_sla_s",
    "documents_wait": "documents_wait_s",
    "eta_hours": "eta_hours",
    "max_history_events": "max_history_events",
    "auto_retry": "auto_retry_s",
    "rate_limit_retry": "rate_limit_retry_s",
    "limit_reset_at": "limit_reset_at",
    "limit_reset_tz": "limit_reset_tz",
    "max_limit_waits": "max_limit_waits",
}
_LISTS = {"poll_schedule", "auto_retry", "rate_limit_retry"}
_AS_IS = {"limit_reset_at": str, "limit_reset_tz": str, "max_limit_waits": int, "max_history_events": int}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"3d"``, ``"250ms"``."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 2h, 3d)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def _convert(section: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (section or {}).items():
        if key not in _TRACKING_KEYS:
            raise ValueError(f"{where}: unknown setting {key!r}; known: {sorted(_TRACKING_KEYS)}")
        if key == "eta_hours":
            out["eta_hours"] = float(value)
        elif key in _AS_IS:
            out[_TRACKING_KEYS[key]] = _AS_IS[key](value)
        elif key in _LISTS:
            out[_TRACKING_KEYS[key]] = [parse_duration(v) for v in value]
        else:
            out[_TRACKING_KEYS[key]] = parse_duration(value)
    return out


def resolve_tracking_policy(doc: Mapping[str, Any], channel: str, bank_code: str) -> TrackingPolicy:
    """Defaults, then the channel's section, then the bank's section of ``delays.yaml``."""
    merged = _convert(doc.get("defaults", {}), "defaults")
    merged.update(_convert((doc.get("channels") or {}).get(channel, {}), f"channels.{channel}"))
    merged.update(_convert((doc.get("banks") or {}).get(bank_code, {}), f"banks.{bank_code}"))
    return TrackingPolicy(version=str(doc.get("version", "unversioned")), **merged)


def validate_delays_document(doc: Mapping[str, Any]) -> None:
    """Raise ValueError if any section of the document is invalid (used at load time)."""
    resolve_tracking_policy(doc, "__none__", "__none__")
    for channel in doc.get("channels") or {}:
        resolve_tracking_policy(doc, channel, "__none__")
    for bank in doc.get("banks") or {}:
        resolve_tracking_policy(doc, "__none__", bank)


def next_step(status: WithdrawalStatus, category: ExceptionCategory | None) -> str:
    """What happens next, in words for operators and support staff (status query)."""
    if status == WithdrawalStatus.SUCCEEDED:
        return "arrived; watching for a bank return until the return window ends"
    if status == WithdrawalStatus.RETURNED:
        return "returned by the bank; funds are back in the user's balance; user must fix the card details"
    if status == WithdrawalStatus.FAILED:
        if category in (ExceptionCategory.ACCOUNT_INFO_ERROR, ExceptionCategory.USER_ACCOUNT_RESTRICTED):
            return "failed; funds returned; user must correct the card details and resubmit"
        return "failed; funds returned to the user's balance"
    if status == WithdrawalStatus.UNDER_REVIEW:
        return "waiting for a reviewer's decision (approve / reject / request_documents)"
    if status == WithdrawalStatus.MANUAL_CHECK:
        return "waiting for an operator to check with the bank and decide (approve / reject)"
    if status == WithdrawalStatus.DELAYED:
        return "waiting for the bank; polling continues; manual check if it passes the second threshold"
    return "waiting for the channel's callback or the next status poll"
