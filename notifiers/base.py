"""The interface every notice channel implements (Apprise-style: one module per service).
The base classes own what every service shares, as Apprise's base plugin does: the HTTP
client's lifecycle (:class:`HttpClientOwner`, :class:`HttpNotifier`); a service module only
declares its service and speaks its API."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection
from contextvars import ContextVar

import httpx

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
POINT_OF_NO_RETURN: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar(
    "point_of_no_return", default=None
)


async def passing_point_of_no_return() -> None:
    hook = POINT_OF_NO_RETURN.get()
    if hook is not None:
        await hook()


#: Set by the notice activity around ``send``: a notifier that hands the notice to one of
#: several providers (``ProviderChain``) calls it with the provider's name right before
#: that provider is asked to send, so that after a crash the activity knows which
#: providers could have the notice (none: it is sent; only ones that can be asked: they
#: are asked).
HANDING_OVER: ContextVar[Callable[[str], Awaitable[None]] | None] = ContextVar("handing_over", default=None)


async def handing_over(provider: str) -> None:
    hook = HANDING_OVER.get()
    if hook is not None:
        await hook(provider)


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
    #: True when ``send`` calls :func:`handing_over` before each provider it tries (a crash
    #: with no hand-over recorded left the notice at no provider)
    records_hand_over: bool = False

    @abstractmethod
    def can_reach(self, notice: NoticeRequest) -> bool:
        """False when the user has no address for this channel (the send is skipped)."""

    @abstractmethod
    async def send(self, notice: NoticeRequest, rendered: RenderedNotice) -> str:
        """Deliver; return the provider's message id. Raise DeliveryError on failure."""

    async def find_sent(self, notice: NoticeRequest, tried: Collection[str] | None = None) -> str | None:
        """After a crash between the provider accepting a notice and the delivery log
        saying so (the row is left ``sending``): the provider's message id if the notice
        (by its key) was accepted, None if it certainly was not. Raise :class:`CannotTell`
        when the provider gives no way to know (the default; SMTP is one): the notice
        policy then holds it (``unconfirmed``) or sends it again. Raise DeliveryError when
        the provider could not be asked now (the activity retries; it never sends blind).
        ``tried``: the providers the notice was handed to, when the log recorded them
        (:func:`handing_over`); None: not recorded, any of them may have it."""
        raise CannotTell(f"{self.provider}: no way to look a sent notice up")

    async def aclose(self) -> None:
        """Release what the notifier holds (nothing, unless it owns an HTTP client)."""
        return None


class HttpClientOwner:
    """Owns one ``httpx.AsyncClient``: the one given (tests pass one bound to a local
    server), else one created on first use with ``timeout_s``; ``aclose`` closes it if it
    was ever opened. Provider API helpers (Aliyun RPC, Twilio, FCM tokens) call through
    their notifier's client rather than owning one of their own."""

    timeout_s: float = 10.0
    _client: httpx.AsyncClient | None = None

    def use_client(self, client: httpx.AsyncClient | None, timeout_s: float) -> None:
        self._client = client
        self.timeout_s = timeout_s

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class HttpNotifier(HttpClientOwner, Notifier):
    """A notifier that speaks HTTP to its provider: the client is the base class's."""
