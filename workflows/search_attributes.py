"""Typed search attributes that let operators find stuck payouts with one list filter in
the Temporal UI (R34), e.g. ``WithdrawalStatus="DELAYED" AND BankCode="ICBC"``.
No PII here: search attributes are not encrypted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio.common import SearchAttributeKey, SearchAttributeUpdate, TypedSearchAttributes

from sentinel.contracts import CarriedState
from sentinel.models import WithdrawalRequest

if TYPE_CHECKING:
    from temporalio.client import Client

WITHDRAWAL_STATUS = SearchAttributeKey.for_keyword("WithdrawalStatus")
EXCEPTION_CATEGORY = SearchAttributeKey.for_keyword("ExceptionCategory")
CHANNEL = SearchAttributeKey.for_keyword("Channel")
BANK_CODE = SearchAttributeKey.for_keyword("BankCode")
SEVERITY = SearchAttributeKey.for_keyword("Severity")
NEEDS_REVIEW = SearchAttributeKey.for_bool("NeedsReview")

KEYWORDS: list[SearchAttributeKey[str]] = [
    WITHDRAWAL_STATUS,
    EXCEPTION_CATEGORY,
    CHANNEL,
    BANK_CODE,
    SEVERITY,
]
ALL_KEYS: list[SearchAttributeKey[str] | SearchAttributeKey[bool]] = [*KEYWORDS, NEEDS_REVIEW]


async def register(client: Client, namespace: str = "default") -> None:
    """Registers every search attribute on a server that starts without them (the
    time-skipping test server; the dev server takes ``cli_flags()``)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    attrs = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_BOOL
        if key is NEEDS_REVIEW
        else IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in ALL_KEYS
    }
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=namespace, search_attributes=attrs)
    )


def cli_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    out = []
    for key in ALL_KEYS:
        kind = "Bool" if key is NEEDS_REVIEW else "Keyword"
        out += ["--search-attribute", f"{key.name}={kind}"]
    return out


def changes(
    req: WithdrawalRequest, s: CarriedState, current: TypedSearchAttributes
) -> list[SearchAttributeUpdate[str] | SearchAttributeUpdate[bool]]:
    """The updates that bring the workflow's search attributes to its state (none when
    they already match: each upsert is a billed action)."""
    keywords: list[tuple[SearchAttributeKey[str], str | None]] = [
        (WITHDRAWAL_STATUS, s.status.value),
        (CHANNEL, req.channel),
        (BANK_CODE, req.bank_code),
        (SEVERITY, s.severity.value),
    ]
    updates: list[SearchAttributeUpdate[str] | SearchAttributeUpdate[bool]] = []
    for key, value in keywords:
        if current.get(key) != value:
            updates.append(key.value_set(value) if value is not None else key.value_unset())
    if current.get(NEEDS_REVIEW) != s.status.needs_human:
        updates.append(NEEDS_REVIEW.value_set(s.status.needs_human))
    category = s.category.value if s.category else None
    if current.get(EXCEPTION_CATEGORY) != category:
        updates.append(
            EXCEPTION_CATEGORY.value_set(category) if category else EXCEPTION_CATEGORY.value_unset()
        )
    return updates
