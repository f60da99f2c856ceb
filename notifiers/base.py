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
