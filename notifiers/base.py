"""The interface every notice channel implements (Apprise-style: one module per service)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextvars import ContextVar
from typing import Awaitable, Callable

from sentinel.models import NoticeRequest
from sentinel.render import RenderedNotice


class DeliveryError(Exception):
    """Sending failed. ``retryable`` False means trying again cannot help (bad address)."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


#: Set by the notice activity around ``send``: a notifier that can tell when the provider
#: can no longer refuse the notice (SMTP: right before DATA) calls it then, so that after a
#: crash the activity knows whether the notice could have gone out at all.
POINT_OF_NO_RETURN: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar("point_of_no_return", default=None)


async def passing_point_of_no_return() -> None:
    hook = POINT_OF_NO_RETURN.get()
    if hook is not None:
        await hook()


class CannotTell(Exception):
    """The provider offers no way to find out whether a notice was already accepted."""


class Notifier(ABC):
    #: channel name used by the notice policy (inbox, email, sms, push, voice, ops_email)
    channel: str
    #: provider behind the channel, recorded in the delivery log
    provider: str
    #: True when ``send`` calls :func:`passing_point_of_no_return` before the provider can
    #: accept the notice (a crash before that point left nothing at the provider)
    marks_point_of_no_return: bool = False

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
