"""Review activities (issue #11): the audit row of each review decision the workflow
applies, whatever way the decision came (gateway, CLI, a direct update), written once per
decision token; and the public decision keys the worker trusts now, for a workflow whose own
list does not name a token's key (started before a key rotation, or before decisions were
signed)."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine
from temporalio import activity

from sentinel.contracts import DecisionAudit, DecisionKeys
from store.reviews import add_audit_once


class ReviewActivities:
    def __init__(self, engine: Engine, decision_keys: dict[str, str]):
        self.engine = engine
        self.decision_keys = dict(decision_keys)

    @activity.defn(name="record_decision")
    async def record_decision(self, audit: DecisionAudit) -> bool:
        """True when the row was written now, False when a retry found it written."""
        return await asyncio.to_thread(
            add_audit_once,
            self.engine,
            audit.actor,
            audit.role,
            audit.action,
            audit.withdrawal_id,
            audit.detail,
            audit.nonce,
        )

    @activity.defn(name="decision_keys")
    async def current_decision_keys(self) -> DecisionKeys:
        return DecisionKeys(keys=self.decision_keys)
