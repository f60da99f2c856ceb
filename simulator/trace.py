"""The simulator answering from a trace (issue #14 item 7): a payout channel whose submit
and query answers are what the trace says the order was at the moment of asking, on the
clock of the Temporal server (the time-skipping server's, in a replay). Callbacks are not
sent from here: the trace driver workflow (workflows/trace_driver.py) signals them at the
trace's times, and :meth:`TraceChannel.callback_for` builds each one.

It speaks the generic bank protocol's statuses (docs/channels/generic.md) whatever the
trace's channel is called, so every answer goes through the real catalogue and classifier
(``sentinel/codes/generic.yaml``, which reuses the ISO 20022 codes).

What an order answers at time ``t`` (``row`` is its trace row):

- ``t >= row.outcome_at``: SUCCEEDED, or FAILED with the row's final code;
- before that, with a progress code (maintenance, cut-off, outage): PROCESSING with it;
- otherwise ACCEPTED to the submit and PROCESSING to a query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from temporalio import activity

from channels.base import CallbackEvent, Channel, ChannelRejectedRequest, withdrawal_id_for
from sentinel.catalogue import Catalogue
from sentinel.models import Observation, WithdrawalRequest
from sentinel.traces import TraceRow

PROTOCOL = "generic"  # the catalogue the answers are classified with


def server_clock() -> datetime:
    """The Temporal server's time of the running activity attempt (the time-skipping
    server's skipped clock in a replay); the wall clock outside an activity."""
    if activity.in_activity():
        return activity.info().current_attempt_scheduled_time.astimezone(UTC)
    return datetime.now(UTC)


class TraceBook:
    """The trace's rows by withdrawal id, and the last order number sent for each."""

    def __init__(self, rows: Iterable[TraceRow]):
        self.rows: dict[str, TraceRow] = {r.withdrawal_id: r for r in rows}
        self.last_order: dict[str, str] = {}

    def answer(self, withdrawal_id: str, at: datetime, submit: bool) -> tuple[str, str | None]:
        row = self.rows.get(withdrawal_id)
        if row is None:
            raise ChannelRejectedRequest(f"trace: no withdrawal {withdrawal_id}")
        if at >= row.outcome_at:
            return (row.outcome, row.final_code)
        if row.progress_code:
            return ("PROCESSING", row.progress_code)
        return ("ACCEPTED" if submit else "PROCESSING", None)


class TraceChannel(Channel):
    def __init__(
        self,
        name: str,
        catalogue: Catalogue,
        book: TraceBook,
        clock: Callable[[], datetime] = server_clock,
    ):
        super().__init__(catalogue)
        self.name = name
        self.book = book
        self.clock = clock

    @property
    def codes_of(self) -> str:
        """A traced withdrawal answers in the trace's own protocol, whatever its channel."""
        return PROTOCOL

    async def submit(
        self, request: WithdrawalRequest, order_id: str, callback_url: str | None
    ) -> Observation:
        self.book.last_order[request.withdrawal_id] = order_id
        now = self.clock()
        status, code = self.book.answer(request.withdrawal_id, now, submit=True)
        return self.observe(order_id, status, code, "submit", now)

    async def query(self, order_id: str) -> Observation:
        now = self.clock()
        status, code = self.book.answer(withdrawal_id_for(order_id), now, submit=False)
        return self.observe(order_id, status, code, "poll", now)

    def callback_for(self, withdrawal_id: str, at: datetime) -> Observation:
        """The callback the channel sends at the trace's ``outcome_at`` (``at``)."""
        order_id = self.book.last_order.get(withdrawal_id, withdrawal_id)
        status, code = self.book.answer(withdrawal_id, at, submit=False)
        return self.observe(order_id, status, code, "callback", at, event_id=f"trace-{order_id}-{status}")

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> CallbackEvent:
        raise NotImplementedError("a trace's callbacks are signalled by the trace driver")

    def ack(self) -> tuple[int, str, bytes]:
        return 200, "application/json", b"{}"


def trace_channels(catalogue: Catalogue, book: TraceBook) -> dict[str, TraceChannel]:
    """One channel adapter per channel name in the trace, sharing the book."""
    names = sorted({r.channel for r in book.rows.values()})
    return {name: TraceChannel(name, catalogue, book) for name in names}
