"""Risk rules engine (R12): business rules that hold a suspicious withdrawal for review
before it is paid out. Rules are data (``config/risk_rules.yaml``, versioned, re-read on
change, R30); this module only decides. Inputs are the request and a summary of the user's
recent history that the caller reads from the database.

Rule kinds:
- ``amount_above``: amount >= ``limit`` (per currency)
- ``velocity``: more than ``max_count`` withdrawals by the user within ``window``
- ``new_card``: the card was added less than ``within`` ago (needs ``card_added_at``)
- ``first_to_card``: the user's first withdrawal to this card
- ``repeated_failures``: at least ``min_failures`` failed withdrawals within ``window``
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sentinel.models import DOCUMENT_KINDS, RiskHit, WithdrawalRequest
from sentinel.policy import parse_duration


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]{2,48}$")
    kind: Literal["amount_above", "velocity", "new_card", "first_to_card", "repeated_failures"]
    enabled: bool = True
    description: str
    documents: list[str] = Field(default_factory=list, description="what the user must provide (R18)")
    limits: dict[str, Decimal] = Field(default_factory=dict, description="amount_above: currency -> limit")
    max_count: int | None = Field(default=None, ge=1)
    min_failures: int | None = Field(default=None, ge=1)
    window_s: float | None = None
    within_s: float | None = None

    @field_validator("limits", mode="before")
    @classmethod
    def _decimal_limits(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            for cur, amount in v.items():
                if isinstance(amount, float):
                    raise ValueError(f"limit for {cur} must be a string or integer, not a float")
            return {k: Decimal(str(a)) for k, a in v.items()}
        return v

    @field_validator("documents")
    @classmethod
    def _known_documents(cls, v: list[str]) -> list[str]:
        unknown = set(v) - DOCUMENT_KINDS
        if unknown:
            raise ValueError(f"unknown document kinds {sorted(unknown)}; known: {sorted(DOCUMENT_KINDS)}")
        return v

    @model_validator(mode="after")
    def _parameters(self) -> Rule:
        need = {
            "amount_above": self.limits,
            "velocity": self.max_count and self.window_s,
            "new_card": self.within_s,
            "first_to_card": True,
            "repeated_failures": self.min_failures and self.window_s,
        }[self.kind]
        if not need:
            raise ValueError(f"rule {self.id}: missing parameters for kind {self.kind}")
        return self


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str
    four_eyes_above: dict[str, Decimal] = Field(
        default_factory=dict, description="currency -> amount from which two reviewers must approve"
    )
    rules: list[Rule]

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        ids = [r.id for r in self.rules]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"duplicate rule ids: {sorted(dupes)}")
        return self

    def needs_four_eyes(self, amount: Decimal, currency: str) -> bool:
        limit = self.four_eyes_above.get(currency)
        return limit is not None and amount >= limit


def load_ruleset(doc: Mapping[str, Any]) -> RuleSet:
    """Validate a parsed YAML document; durations become seconds."""
    rules = []
    for raw in doc.get("rules") or []:
        raw = dict(raw)
        for key in ("window", "within"):
            if key in raw:
                raw[f"{key}_s"] = parse_duration(raw.pop(key))
        rules.append(raw)
    return RuleSet.model_validate({**doc, "rules": rules})


class UserHistory(BaseModel):
    """What the rules need to know of the user's past, read from the withdrawal records."""

    withdrawals_in_window: dict[str, int] = Field(default_factory=dict, description="rule id -> count")
    failures_in_window: dict[str, int] = Field(default_factory=dict, description="rule id -> count")
    earlier_withdrawals_to_card: int = 0


def history_windows(ruleset: RuleSet) -> dict[str, float]:
    """The look-back window of each rule that counts past withdrawals."""
    return {r.id: r.window_s for r in ruleset.rules if r.enabled and r.window_s}


def evaluate(
    ruleset: RuleSet,
    request: WithdrawalRequest,
    history: UserHistory,
    now: datetime,
    card_added_at: datetime | None = None,
) -> list[RiskHit]:
    """Every enabled rule the withdrawal hits, in rule order."""
    hits: list[RiskHit] = []

    def hit(rule: Rule, detail: str) -> None:
        hits.append(
            RiskHit(
                rule_id=rule.id,
                rule_version=ruleset.version,
                description=rule.description,
                documents=rule.documents,
                detail=detail,
            )
        )

    for rule in ruleset.rules:
        if not rule.enabled:
            continue
        if rule.kind == "amount_above":
            limit = rule.limits.get(request.currency)
            if limit is not None and request.amount >= limit:
                hit(rule, f"amount {request.amount} {request.currency} >= {limit}")
        elif rule.kind == "velocity":
            count = history.withdrawals_in_window.get(rule.id, 0)
            assert rule.max_count is not None and rule.window_s is not None  # the rule's validator
            if count > rule.max_count:
                hit(rule, f"{count} withdrawals within {int(rule.window_s)} s > {rule.max_count}")
        elif rule.kind == "new_card":
            assert rule.within_s is not None  # the rule's validator
            if card_added_at is not None and now - card_added_at < timedelta(seconds=rule.within_s):
                hit(rule, f"card added {int((now - card_added_at).total_seconds())} s ago")
        elif rule.kind == "first_to_card":
            if history.earlier_withdrawals_to_card == 0:
                hit(rule, "first withdrawal to this card")
        elif rule.kind == "repeated_failures":
            failures = history.failures_in_window.get(rule.id, 0)
            assert rule.min_failures is not None and rule.window_s is not None  # the rule's validator
            if failures >= rule.min_failures:
                hit(rule, f"{failures} failed withdrawals within {int(rule.window_s)} s")
    return hits
