"""Live updates of the pages: server-sent events (R16, R20, R21).

A stream checks a cheap probe every ``SENTINEL_PAGES_STREAM_POLL_S`` (the projection's
status and ``updated_at`` for a withdrawal, the newest message id and unread count for the
inbox) and, when it changed, loads and sends the full new content; every ``FULL_EVERY``
checks it loads the content anyway (what the projection does not carry, like the ETA).
At most ``SENTINEL_PAGES_MAX_STREAMS`` streams are open per process (503 past it: the page
then keeps what it shows and the browser tries again later); a stream ends after
``MAX_LIFE_S`` and the browser's EventSource reconnects by itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from gateway.page_auth import PageProblem

log = logging.getLogger(__name__)

MAX_LIFE_S = 600
FULL_EVERY = 20
HEARTBEAT_S = 15
#: how long the browser waits before reconnecting, milliseconds
RETRY_MS = 2000


class Slots:
    """The count of open streams, and its bound. A stream counts from its first step to its
    end (so one whose client left before it started never holds a slot)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.open = 0

    @property
    def full(self) -> bool:
        return self.open >= self.limit


def stream_slot(request: Request) -> None:
    """A free stream slot, or the busy page (503, try again in 30 s)."""
    if request.app.state.page_slots.full:
        raise PageProblem("busy", 503, headers={"Retry-After": "30"})


def sse(event: str, data: Any) -> bytes:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {body}\n\n".encode()


def stream(
    request: Request,
    probe: Callable[[], Awaitable[Any]],
    load: Callable[[], Awaitable[tuple[Any, dict] | None]],
    *,
    event: str,
    until: float | None = None,
) -> StreamingResponse:
    """An event stream that sends ``event`` with ``load()``'s data whenever the content's
    marker changes. ``probe()`` is the cheap check; ``load()`` returns (marker, data), or
    None when there is nothing to send now. The caller checked ``app.state.page_slots.full``."""
    state = request.app.state
    poll_s = state.settings.pages_stream_poll_s

    async def events() -> AsyncIterator[bytes]:
        state.page_slots.open += 1
        started = time.monotonic()
        last_probe: Any = object()
        last_marker: Any = object()
        beat = time.monotonic()
        checks = 0
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            while time.monotonic() - started < MAX_LIFE_S and (until is None or state.clock() < until):
                if await request.is_disconnected():
                    return
                seen = await probe()
                if seen != last_probe or checks % FULL_EVERY == 0:
                    last_probe = seen
                    loaded = await load()
                    if loaded is not None and loaded[0] != last_marker:
                        last_marker = loaded[0]
                        yield sse(event, loaded[1])
                        beat = time.monotonic()
                checks += 1
                if time.monotonic() - beat > HEARTBEAT_S:
                    yield b": keep-alive\n\n"
                    beat = time.monotonic()
                await asyncio.sleep(poll_s)
        except Exception:  # a stream never shows a stack trace: the page keeps what it has
            log.exception("page stream failed")
        finally:
            state.page_slots.open -= 1

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
