"""Channel order numbers of a withdrawal's attempts (pure; shared by the workflow, the
channel adapters and the gateway, so none of them imports another for it)."""

from __future__ import annotations

import re

_RETRY_SUFFIX = re.compile(r"^(?P<wid>.+)_R(?P<n>\d+)$")


def order_id_for(withdrawal_id: str, attempt: int) -> str:
    """The channel order number of an attempt: the withdrawal id itself first, then
    ``<id>_R<n>`` for a payout released again after review or a resend."""
    return withdrawal_id if attempt <= 1 else f"{withdrawal_id}_R{attempt}"


def withdrawal_id_for(order_id: str) -> str:
    """The withdrawal an order number belongs to (the inverse of ``order_id_for``)."""
    m = _RETRY_SUFFIX.match(order_id)
    return m.group("wid") if m else order_id
