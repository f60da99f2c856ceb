"""The interface every payout channel adapter implements, and the canonical event it
produces from a callback. Native payload <-> canonical model, one module per channel."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from sentinel.catalogue import Catalogue
from sentinel.classifier import classify
from sentinel.models import Observation, WithdrawalRequest

# re-exported: adapters and the gateway import them from here
from sentinel.orders import order_id_for as order_id_for
from sentinel.orders import withdrawal_id_for as withdrawal_id_for


class CallbackRejected(Exception):
    """A callback we must refuse. ``status`` is the HTTP status to answer (401 or 400)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class CallbackIgnored(CallbackRejected):
    """A verified callback that is not about one of our payouts (another event type, the
    platform's own automatic payout): acknowledge it (the channel stops retrying) and
    deliver nothing."""

    def __init__(self, reason: str):
        super().__init__(200, reason)


class ChannelUnavailable(Exception):
    """The channel could not be reached or answered 5xx: the result is unknown."""


class ChannelRejectedRequest(Exception):
    """The channel refused our request as malformed (4xx other than a business answer):
    an integration bug, not retryable."""


@dataclass(frozen=True)
class CallbackEvent:
    event_id: str
    order_id: str
    raw_status: str
    raw_code: str | None
    occurred_at: datetime


class Channel(ABC):
    """One payout channel. ``name`` is the catalogue's channel name."""

    name: str

    def __init__(self, catalogue: Catalogue):
        self.catalogue = catalogue

    @property
    def codes_of(self) -> str:
        """The catalogue whose codes this channel's answers carry: its own, by default."""
        return self.name

    def observe(
        self,
        order_id: str,
        raw_status: str,
        raw_code: str | None,
        source: str,
        at: datetime,
        event_id: str | None = None,
    ) -> Observation:
        return Observation(
            order_id=order_id,
            source=source,
            channel=self.name,
            raw_status=raw_status,
            raw_code=raw_code,
            classification=classify(self.catalogue, self.codes_of, raw_status, raw_code),
            event_id=event_id,
            observed_at=at,
        )

    @abstractmethod
    async def submit(
        self, request: WithdrawalRequest, order_id: str, callback_url: str | None
    ) -> Observation:
        """Send the payout. Raises ChannelUnavailable when the outcome is unknown."""

    @abstractmethod
    async def query(self, order_id: str) -> Observation:
        """Ask for the payout's status. Raises ChannelUnavailable when it cannot be known."""

    @abstractmethod
    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> CallbackEvent:
        """Verify and parse a callback; raise CallbackRejected(401|400, reason)."""

    def parse_callback_all(self, headers: Mapping[str, str], body: bytes, now: float) -> list[CallbackEvent]:
        """Every event of one delivery (an ISO 20022 status report may carry several
        transactions). Most channels send exactly one."""
        return [self.parse_callback(headers, body, now)]

    @abstractmethod
    def ack(self) -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) the channel expects once a callback is kept."""


class HttpChannel(Channel):
    """A channel spoken over HTTP: its config and one httpx client (``client`` in tests),
    closed with the adapter."""

    def __init__(
        self, catalogue: Catalogue, config: Any, client: httpx.AsyncClient | None, **client_options: Any
    ):
        super().__init__(catalogue)
        self.config = config
        self._client = client or httpx.AsyncClient(timeout=config.timeout_s, **client_options)

    async def aclose(self) -> None:
        await self._client.aclose()
