"""What the simulated provider announces, independent of any dialect and of the platform's
own types (channels/base.py has its own ``CallbackEvent``): the engine keeps these events,
each dialect renders them as its provider's signed notification."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from simulator.orders import Order


@dataclass(frozen=True)
class CallbackEvent:
    """What a callback says, channel-neutral: kept by the engine so a replay is the same
    event (same ``event_id`` and ``occurred_at``; a fresh signature timestamp, as providers
    do on redelivery)."""

    event_id: str
    order_id: str
    status: str
    code: str | None
    message: str
    occurred_at: datetime


@dataclass(frozen=True)
class NativeCallback:
    """One HTTP request to the platform: ``POST url`` with these headers and bytes."""

    url: str
    headers: dict[str, str]
    body: bytes


class CallbackRenderer(Protocol):
    """What the engine needs of a dialect: its name and its signed native notification of
    an event (the full interface, with the provider's API, is
    :class:`simulator.dialects.base.Dialect`)."""

    name: str

    def callback(self, order: Order, event: CallbackEvent, now: float) -> NativeCallback | None: ...
