"""The notice policy as versioned data (R13, R21, R31): severity of each category x stage,
the channel ladder of each severity with its escalate-if-unread deadline, quiet hours and
legal contact hours, inhibition and a per-user cap. Loaded from ``config/notice_policy.yaml``.
Pure: the workflow asks it what to send, where and when; the notice activity asks it what
to suppress."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sentinel.policy import parse_duration
from sentinel.taxonomy import ExceptionCategory, Severity, Stage
from sentinel.windows import TimeWindow

ALWAYS_NOW = {"inbox", "ops_email"}  # never deferred: the app's own inbox, and operators


class _P(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Ladder(_P):
    """Rung 0 goes out at once; each later rung only if nobody read the notice within
    ``escalate_unread_after_s`` of the previous rung (R21)."""

    rungs: list[list[str]] = Field(min_length=1)
    escalate_unread_after_s: float | None = Field(default=None, gt=0)


class QuietHours(_P):
    """The user's do-not-disturb: outside ``allowed`` the listed severities wait."""

    allowed: TimeWindow
    severities: list[Severity]


class LegalHours(_P):
    """Contact hours set by regulation for a country calling code, for some channels,
    whatever the severity (kept apart from the user's quiet hours)."""

    allowed: TimeWindow
    channels: list[str]


class InhibitRule(_P):
    """A notice matching ``source`` sent to the user within ``window_s`` suppresses a later
    notice matching ``target`` on interruptive channels (Alertmanager-style inhibition)."""

    source_categories: list[ExceptionCategory] = Field(default_factory=list)
    source_stages: list[Stage] = Field(default_factory=list)
    target_categories: list[ExceptionCategory] = Field(default_factory=list)
    target_stages: list[Stage] = Field(default_factory=list)
    window_s: float = Field(gt=0)


class Cap(_P):
    """At most ``max`` interruptive notices per user within ``window_s``; past it they fold
    into the inbox (still recorded, no buzz)."""

    max: int = Field(ge=1)
    window_s: float = Field(gt=0)
    channels: list[str]
    exempt_severities: list[Severity] = Field(default_factory=list)


class Fold(_P):
    """Several exceptions of one user within ``window_s`` become one message: the first
    interruptive notice goes out at once; later ones of the user's other withdrawals on the
    same channel wait until the window after it ends, and then go out together as one
    digest (Knock-style batching)."""

    window_s: float = Field(gt=0)
    channels: list[str]
    exempt_severities: list[Severity] = Field(default_factory=list)


class NoticeRetry(_P):
    """How long a notice that stays true is retried while its provider is down: a capped
    backoff up to ``max_interval_s`` between tries, given up after ``give_up_after_s`` of the
    channel (``default`` for the others); then operators are alerted (R8, R33)."""

    initial_interval_s: float = Field(default=2, gt=0)
    max_interval_s: float = Field(default=600, gt=0)
    give_up_after_s: dict[str, float] = Field(default_factory=lambda: {"default": 86400.0})

    def give_up_after(self, channel: str) -> float:
        return self.give_up_after_s.get(channel, self.give_up_after_s.get("default", 86400.0))


class RecentNotice(_P):
    """A notice the user got recently (from the delivery log)."""

    withdrawal_id: str
    stage: Stage
    category: ExceptionCategory | None
    channel: str
    at: datetime


class NoticePolicy(_P):
    version: str
    category_severity: dict[ExceptionCategory, Severity]
    stage_severity: dict[Stage, Severity] = Field(default_factory=dict)
    ladders: dict[Severity, Ladder]
    quiet_hours: QuietHours | None = None
    legal_hours: dict[str, LegalHours] = Field(default_factory=dict, description="calling code or 'default'")
    inhibit: list[InhibitRule] = Field(default_factory=list)
    cap: Cap | None = None
    fold: Fold | None = None
    unconfirmed_send: dict[str, Literal["hold", "resend"]] = Field(
        default_factory=dict,
        description="per channel, after a crash mid-send that the provider cannot confirm: hold (never twice; "
        "the inbox has the notice) or resend (at least once); unlisted channels hold",
    )
    operator_alert_categories: list[ExceptionCategory] = Field(default_factory=list)
    retry: NoticeRetry = Field(default_factory=NoticeRetry)

    @model_validator(mode="after")
    def _every_severity_has_a_ladder(self) -> NoticePolicy:
        missing = [s.value for s in Severity if s not in self.ladders]
        if missing:
            raise ValueError(f"ladders missing for severities {missing}")
        return self

    # --- what and where ---------------------------------------------------------------

    def severity(self, category: ExceptionCategory | None, stage: Stage) -> Severity:
        """The stage's own severity wins (e.g. RESOLVED is INFO whatever the cause)."""
        if stage in self.stage_severity:
            return self.stage_severity[stage]
        if category is None:
            return Severity.LOW
        return self.category_severity.get(category, Severity.MEDIUM)

    def rung(self, severity: Severity, index: int, available: list[str]) -> list[str]:
        """The channels of one rung that this deployment can deliver. Rung 0 always
        includes the in-app inbox, so nothing goes unrecorded (R21)."""
        rungs = self.ladders[severity].rungs
        if index >= len(rungs):
            return []
        chosen = [c for c in rungs[index] if c in available]
        if index == 0 and "inbox" in available and "inbox" not in chosen:
            chosen.insert(0, "inbox")
        return chosen

    def escalation_after(self, severity: Severity) -> float | None:
        ladder = self.ladders[severity]
        return ladder.escalate_unread_after_s if len(ladder.rungs) > 1 else None

    # --- when ---------------------------------------------------------------------------

    def send_at(
        self, channel: str, severity: Severity, now: datetime, tz_name: str, phone: str | None
    ) -> datetime:
        """When a notice may go out on ``channel``: now, or the next opening of the windows
        that apply (quiet hours for low severities, legal hours for SMS/voice)."""
        if channel in ALWAYS_NOW:
            return now
        at = now
        for _ in range(4):  # both windows must be open at once; a few rounds settle it
            moved = at
            if self.quiet_hours and severity in self.quiet_hours.severities and channel != "inbox":
                moved = self.quiet_hours.allowed.next_open(moved, tz_name)
            legal = self._legal_for(phone)
            if legal and channel in legal.channels:
                moved = legal.allowed.next_open(moved, tz_name)
            if moved == at:
                return at
            at = moved
        return at

    def _legal_for(self, phone: str | None) -> LegalHours | None:
        if phone:
            for prefix in sorted(self.legal_hours, key=len, reverse=True):
                if prefix.startswith("+") and phone.startswith(prefix):
                    return self.legal_hours[prefix]
        return self.legal_hours.get("default")

    # --- what not to send ---------------------------------------------------------------

    def suppression(
        self,
        *,
        channel: str,
        stage: Stage,
        category: ExceptionCategory | None,
        severity: Severity,
        withdrawal_id: str,
        recent: list[RecentNotice],
        now: datetime,
    ) -> str | None:
        """Why this notice must not interrupt the user now (None: send it). The inbox and
        operator channels are never suppressed: the record is always kept."""
        if channel in ALWAYS_NOW:
            return None
        for rule in self.inhibit:
            if (rule.target_categories and category not in rule.target_categories) or (
                rule.target_stages and stage not in rule.target_stages
            ):
                continue
            for r in recent:
                if (now - r.at).total_seconds() > rule.window_s:
                    continue
                if (not rule.source_categories or r.category in rule.source_categories) and (
                    not rule.source_stages or r.stage in rule.source_stages
                ):
                    return f"inhibited by {r.stage.value}/{r.category.value if r.category else '-'} of {r.withdrawal_id}"
        cap = self.cap
        if cap and channel in cap.channels and severity not in cap.exempt_severities:
            sent = [
                r
                for r in recent
                if r.channel in cap.channels and (now - r.at).total_seconds() <= cap.window_s
            ]
            if len(sent) >= cap.max:
                return (
                    f"folded: {len(sent)} interruptive notices within {int(cap.window_s)} s (cap {cap.max})"
                )
        return None

    def resend_unconfirmed(self, channel: str) -> bool:
        """After a crash between the provider's accept and the log, with a provider that
        cannot be asked (SMTP): send again (at least once) or hold (at most once)?"""
        return self.unconfirmed_send.get(channel, "hold") == "resend"

    def fold_until(
        self,
        *,
        channel: str,
        severity: Severity,
        withdrawal_id: str,
        recent: list[RecentNotice],
        now: datetime,
    ) -> datetime | None:
        """When this notice should go out folded with the user's other notices on this
        channel (None: send it now). The window runs from the user's latest interruptive
        notice about another withdrawal on this channel."""
        fold = self.fold
        if fold is None or channel not in fold.channels or severity in fold.exempt_severities:
            return None
        others = [
            r.at
            for r in recent
            if r.channel == channel
            and r.withdrawal_id != withdrawal_id
            and (now - r.at).total_seconds() < fold.window_s
        ]
        if not others:
            return None
        return max(others) + timedelta(seconds=fold.window_s)


def load_notice_policy(doc: Mapping[str, Any]) -> NoticePolicy:
    """Validate a parsed ``notice_policy.yaml``; durations become seconds."""
    doc = dict(doc)
    ladders = {}
    for sev, ladder in (doc.get("ladders") or {}).items():
        ladder = dict(ladder)
        if "escalate_unread_after" in ladder:
            ladder["escalate_unread_after_s"] = parse_duration(ladder.pop("escalate_unread_after"))
        ladders[sev] = ladder
    doc["ladders"] = ladders
    doc["inhibit"] = [
        {**{k: v for k, v in r.items() if k != "window"}, "window_s": parse_duration(r["window"])}
        for r in doc.get("inhibit") or []
    ]
    if doc.get("cap"):
        cap = dict(doc["cap"])
        cap["window_s"] = parse_duration(cap.pop("window"))
        doc["cap"] = cap
    if doc.get("fold"):
        fold = dict(doc["fold"])
        fold["window_s"] = parse_duration(fold.pop("window"))
        doc["fold"] = fold
    if doc.get("retry"):
        retry = dict(doc["retry"])
        for name in ("initial_interval", "max_interval"):
            if name in retry:
                retry[f"{name}_s"] = parse_duration(retry.pop(name))
        if "give_up_after" in retry:
            retry["give_up_after_s"] = {k: parse_duration(v) for k, v in retry.pop("give_up_after").items()}
        doc["retry"] = retry
    return NoticePolicy.model_validate(doc)
