"""One interface for every native protocol the simulator speaks (docs/simulator.md).

A dialect is the provider's side of one channel: it serves the provider's API (submit and
query, checking the platform's authentication the way the provider does), answers in the
provider's format and signs it, and renders the provider's signed callback for an order's
current state. The order book, the scripts and the delivery with retries stay in
:mod:`simulator.engine`: a dialect only translates between the wire and the engine.

Scenarios speak canonical statuses (ACCEPTED, PROCESSING, SUCCEEDED, FAILED, HELD, UNKNOWN,
RETURNED) and ISO 20022-style reason codes (AC04, AB08, AM02, FR01...); each dialect maps
them to its own statuses and codes (``native``), and a test checks that the platform's
catalogue classifies the native code as it classifies the ISO one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from fastapi import APIRouter

from simulator.events import CallbackEvent, CallbackRenderer, NativeCallback

if TYPE_CHECKING:
    from simulator.engine import Engine
    from simulator.orders import Order


class Dialect(CallbackRenderer, Protocol):
    #: the channel name: the platform receives this dialect's callbacks on
    #: ``/v1/callbacks/<name>`` and the simulator serves its API under ``/<name>``
    name: str

    def router(self, engine: Engine) -> APIRouter:
        """The provider's API (paths relative to the ``/<name>`` prefix). Submits go to
        ``engine.submit(PayoutRequest, dialect=self.name)``; queries read ``engine.get``."""
        ...

    def callback(self, order: Order, event: CallbackEvent, now: float) -> NativeCallback | None:
        """The signed native notification of ``event`` for ``order`` (``now``: unix time
        of this attempt). None when the channel sends no notification for that state."""
        ...
