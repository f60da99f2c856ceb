"""The reviewer console's queue order (R29): the case whose review SLA runs out first comes
first. A case's SLA due time is when it entered review plus the review SLA of its channel
and bank (``review_sla`` in config/delays.yaml); the SLAs differ per channel and bank, so
the order by due time is not always the order by age. Pure: no clock, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

T = TypeVar("T")


def sla_due(review_since: datetime | None, review_sla_s: float | None) -> datetime | None:
    """When the review SLA of a case runs out (UTC); None when either is unknown."""
    if review_since is None or review_sla_s is None:
        return None
    since = review_since if review_since.tzinfo else review_since.replace(tzinfo=UTC)
    return since + timedelta(seconds=review_sla_s)


def by_due(cases: Iterable[T], due: Callable[[T], datetime | None], tie: Callable[[T], str]) -> list[T]:
    """``cases`` soonest due first; those without a due time last; ties by ``tie`` (the id)."""
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(cases, key=lambda c: (due(c) is None, due(c) or far, tie(c)))
