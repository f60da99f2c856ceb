"""The states of a notice delivery row (``notice_deliveries.status``) and the moves between
them (issue #12 item 3). The values are the strings stored in the database; the store's
takeover rule and the notice activity read them from here.

A delivery is claimed before it is sent (``sending``), so two attempts never both send:
a later attempt may take a row over only from a state listed here (or from ``sending``
left by an attempt dead for a while, store/repo.py ``STALE_SENDING_S``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class DeliveryStatus(StrEnum):
    QUEUED = "queued"  # written, not yet claimed
    SENDING = "sending"  # claimed by an attempt that is sending it
    SENT = "sent"  # the provider accepted it
    DELIVERED = "delivered"  # the provider's receipt says delivered
    READ = "read"  # the user read it
    FAILED = "failed"  # the send failed before the provider could have it: may be sent again
    UNKNOWN = "unknown"  # a crash mid-send; the provider is asked before anything is sent again
    UNCONFIRMED = "unconfirmed"  # the same with a provider that cannot be asked: held, never sent twice
    SUPPRESSED = "suppressed"  # kept from the user by the policy, or left out of a digest (no longer true)
    SKIPPED = "skipped"  # no address on this channel
    DUPLICATE = "duplicate"  # the key was sent already
    BATCHED = "batched"  # held for the user's next digest (a fold window, quiet or legal hours)
    FOLDING = "folding"  # gathered into a digest being sent under another key
    FOLDED = "folded"  # sent inside another delivery's digest (named by provider_message_id)
    GIVEN_UP = "given_up"  # the workflow stopped trying (its give-up time passed, or refused)


_D = DeliveryStatus

#: nothing is left to send or give up
DONE = frozenset({_D.SENT, _D.DELIVERED, _D.READ, _D.FOLDED, _D.DUPLICATE, _D.SUPPRESSED, _D.SKIPPED})
#: a later attempt of the same delivery may claim the row (``sending`` only when stale)
CLAIMABLE = frozenset({_D.QUEUED, _D.FAILED, _D.UNKNOWN})
#: the leader of a digest may claim the row of a batched delivery whose window is over
LEADABLE = frozenset({_D.BATCHED, _D.FAILED})
#: a provider's receipt changes only these (a receipt never moves a delivery backwards)
RECEIPTED = frozenset({_D.SENDING, _D.SENT})
#: states in which a new row is written
INITIAL = frozenset({_D.QUEUED, _D.SENDING, _D.BATCHED, _D.SUPPRESSED})

#: every allowed move (besides the given-up mark, allowed from every state not DONE)
MOVES: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    _D.QUEUED: frozenset({_D.SENDING}),
    _D.SENDING: frozenset(
        {_D.SENDING, _D.SENT, _D.FAILED, _D.UNKNOWN, _D.UNCONFIRMED, _D.DELIVERED, _D.SUPPRESSED}
    ),
    _D.SENT: frozenset({_D.DELIVERED, _D.FAILED, _D.READ}),
    _D.DELIVERED: frozenset({_D.READ}),
    _D.READ: frozenset(),
    _D.FAILED: frozenset({_D.SENDING}),
    _D.UNKNOWN: frozenset({_D.SENDING}),
    _D.UNCONFIRMED: frozenset(),
    _D.SUPPRESSED: frozenset(),
    _D.SKIPPED: frozenset(),
    _D.DUPLICATE: frozenset(),
    _D.BATCHED: frozenset({_D.BATCHED, _D.SENDING, _D.FOLDING}),
    _D.FOLDING: frozenset({_D.FOLDED, _D.SUPPRESSED}),
    _D.FOLDED: frozenset(),
    _D.GIVEN_UP: frozenset(),
}


def may_move(old: DeliveryStatus, new: DeliveryStatus) -> bool:
    """Whether a delivery row may go from ``old`` to ``new``."""
    if new == _D.GIVEN_UP:
        return old not in DONE and old != _D.GIVEN_UP
    return new in MOVES[old]


@dataclass(frozen=True)
class DeliveryRow:
    """What the notice activity reads of a delivery row."""

    status: DeliveryStatus
    provider_message_id: str | None
    send_after: datetime | None  # set for a notice batched for folding
    row_id: int


class DeliveryOutcome(StrEnum):
    """What a delivery attempt tells the workflow (the values are the delivery row's
    statuses of the same names: sentinel/delivery.py)."""

    SENT = "sent"
    SKIPPED = "skipped"
    DUPLICATE = "duplicate"
    SUPPRESSED = "suppressed"
    BATCHED = "batched"
    FOLDED = "folded"
    UNCONFIRMED = "unconfirmed"


class DeliveryResult(BaseModel):
    """The notice activity's answer to the workflow."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    key: str
    channel: str
    status: DeliveryOutcome
    send_at: datetime | None = Field(None, description="batched: when the fold window ends (call again then)")
    provider_message_id: str | None = None
    detail: str | None = None
