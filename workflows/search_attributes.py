"""Typed search attributes that let operators find stuck payouts with one list filter in
the Temporal UI (R34), e.g. ``WithdrawalStatus="DELAYED" AND BankCode="ICBC"``.
No PII here: search attributes are not encrypted."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

WITHDRAWAL_STATUS = SearchAttributeKey.for_keyword("WithdrawalStatus")
EXCEPTION_CATEGORY = SearchAttributeKey.for_keyword("ExceptionCategory")
CHANNEL = SearchAttributeKey.for_keyword("Channel")
BANK_CODE = SearchAttributeKey.for_keyword("BankCode")
SEVERITY = SearchAttributeKey.for_keyword("Severity")
NEEDS_REVIEW = SearchAttributeKey.for_bool("NeedsReview")

ALL_KEYS = [WITHDRAWAL_STATUS, EXCEPTION_CATEGORY, CHANNEL, BANK_CODE, SEVERITY, NEEDS_REVIEW]


def cli_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    out = []
    for key in ALL_KEYS:
        kind = "Bool" if key is NEEDS_REVIEW else "Keyword"
        out += ["--search-attribute", f"{key.name}={kind}"]
    return out
