"""The simulated channel's records: an order, the state transitions it went through and the
callbacks it sent with their delivery attempts (plain data; :mod:`simulator.engine` runs
them)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from simulator.protocol import PayoutRequest, payout_body, utc_iso
from simulator.scripts import Script


@dataclass
class Attempt:
    at: datetime
    http_status: int | None = None
    error: str | None = None

    def view(self) -> dict[str, Any]:
        return {"at": utc_iso(self.at), "http_status": self.http_status, "error": self.error}


@dataclass
class CallbackRecord:
    """One callback event and its delivery attempts."""

    body: dict[str, Any]
    replay: bool = False
    state: str = "pending"  # pending | delivered | gave_up | cancelled | not_sent
    attempts: list[Attempt] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def event_id(self) -> str:
        return self.body["event_id"]

    def view(self) -> dict[str, Any]:
        last = self.attempts[-1] if self.attempts else None
        return {
            "event_id": self.event_id,
            "status": self.body["status"],
            "code": self.body["code"],
            "occurred_at": self.body["occurred_at"],
            "replay": self.replay,
            "state": self.state,
            "http_status": last.http_status if last else None,
            "attempts": len(self.attempts),
            "attempt_log": [a.view() for a in self.attempts],
        }


@dataclass
class Transition:
    at: datetime
    status: str
    code: str | None

    def view(self) -> dict[str, Any]:
        return {"at": utc_iso(self.at), "status": self.status, "code": self.code}


@dataclass
class Order:
    request: PayoutRequest
    script: Script
    status: str
    code: str | None
    message: str
    submitted_at: datetime
    updated_at: datetime
    history: list[Transition] = field(default_factory=list)
    callbacks: list[CallbackRecord] = field(default_factory=list)
    steps_done: int = 0
    dialect: str = "generic"  # the protocol the order came in: its callbacks speak it too
    native: dict[str, Any] = field(default_factory=dict)  # a dialect's own bookkeeping (ids, fields)

    @property
    def order_id(self) -> str:
        return self.request.order_id

    def body(self) -> dict[str, Any]:
        """The answer of submit (200) and, with ``updated_at``, of query."""
        return payout_body(self.order_id, self.status, self.code, self.message)

    def query_body(self) -> dict[str, Any]:
        return {**self.body(), "updated_at": utc_iso(self.updated_at)}

    def view(self) -> dict[str, Any]:
        return {
            **self.query_body(),
            "amount": self.request.amount,
            "currency": self.request.currency,
            "bank_code": self.request.bank_code,
            "card_last4": self.request.card_last4,
            "callback_url": self.request.callback_url,
            "dialect": self.dialect,
            "scenario": self.script.scenario,
            "submit": self.script.submit,
            "submitted_at": utc_iso(self.submitted_at),
            "steps_total": len(self.script.steps),
            "steps_done": self.steps_done,
            "history": [t.view() for t in self.history],
            "callbacks": [c.view() for c in self.callbacks],
        }
