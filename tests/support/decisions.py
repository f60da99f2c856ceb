"""Signing review decisions in tests as the gateway does (sentinel/decision_tokens.py),
with the public development key the test workers trust (the settings' default)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sentinel.decision_tokens import sign_decision
from sentinel.models import ReviewDecision
from sentinel.settings import DEV_DECISION_SIGNING_KEY


def sign(
    decision: ReviewDecision,
    withdrawal_id: str,
    now: datetime | float,
    *,
    role: str = "reviewer",
    key: str = DEV_DECISION_SIGNING_KEY,
    nonce: str | None = None,
    ttl_s: float = 600,
    reviewer: str | None = None,
) -> ReviewDecision:
    """``decision`` with a token for ``withdrawal_id`` issued at ``now`` (the workflow's
    clock: on the time-skipping server ``await env.get_current_time()``). ``reviewer``
    signs another name than the decision's (a forgery test)."""
    at = now.timestamp() if isinstance(now, datetime) else now
    token = sign_decision(
        key,
        withdrawal_id=withdrawal_id,
        reviewer=reviewer or decision.reviewer,
        role=role,
        decision=decision.decision,
        reason=decision.reason,
        documents=decision.documents,
        nonce=nonce or secrets.token_urlsafe(16),
        now=at,
        ttl_s=ttl_s,
    )
    return decision.model_copy(update={"token": token})


async def signed(env, withdrawal_id: str, decision: ReviewDecision, **options) -> ReviewDecision:
    """:func:`sign` at the test server's current time."""
    return sign(decision, withdrawal_id, await env.get_current_time(), **options)
