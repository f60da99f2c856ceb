"""The interface every notice channel implements (Apprise-style: one module per service)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from sentinel.models import NoticeRequest
from sentinel.render import RenderedNotice


class DeliveryError(Exception):
    """Sending failed. ``retryable`` False means trying again cannot help (bad address)."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class CannotTell(Exception):
    """The provider offers no way to find out whether a notice was already accepted."""


class Notifier(ABC):
    #: channel name used by the notice policy (inbox, email, sms, push, voice, ops_email)
    channel: str
    #: provider behind the channel, recorded in the delivery log
    provider: str

    @abstractmethod
    def can_reach(self, notice: NoticeRequest) -> bool:
        """False when the user has no address for this channel (the send is skipped)."""

    @abstractmethod
    async def send(self, notice: NoticeRequest, rendered: RenderedNotice) -> str:
        """Deliver; return the provider's message id. Raise DeliveryError on failure."""

    async def find_sent(self, notice: NoticeRequest) -> str | None:
        """After a crash between the provider accepting a notice and the delivery log
        saying so (the row is left ``sending``): the provider's message id if the notice
        (by its key) was accepted, None if it certainly was not. Raise :class:`CannotTell`
        when the provider gives no way to know (the default; SMTP is one): the notice is
        then sent again (at least once). Raise DeliveryError when the provider could not be
        asked now (the activity retries; it never sends blind)."""
        raise CannotTell(f"{self.provider}: no way to look a sent notice up")
