"""Request body limits per route (ASGI middleware), checked before any route runs.

A request whose ``Content-Length`` is over its route's limit is answered 413 at once, before
a byte of the body is read. A body without a length (chunked) is read up to the limit and
answered 413 at the first chunk past it; the rest is never read (the 413 closes the
connection). A body within the limit is handed to the app unchanged. So an unauthenticated
30 MB POST costs the gateway nothing but the answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import error_response

KiB = 1024

#: (path pattern, limit in bytes); the first match wins, DEFAULT_LIMIT otherwise
ROUTE_LIMITS: tuple[tuple[str, int], ...] = (
    # a channel's signed callback: an ISO 20022 status report may carry many transactions
    (r"^/v1/callbacks/", 1024 * KiB),
    # provider delivery reports: a batch of a few hundred small JSON reports
    (r"^/v1/receipts/", 256 * KiB),
    # the codec server (operators only): the Temporal UI sends history payloads to decrypt,
    # and Temporal takes payloads of up to 2 MB
    (r"^/codec/", 4096 * KiB),
    # document upload: the names of the documents and where they are stored, not the files
    (r"^/v1/withdrawals/[^/]+/documents$", 16 * KiB),
)
#: every other JSON API (start, decisions, devices, ...): a request is well under 4 KiB
DEFAULT_LIMIT = 64 * KiB


class BodyLimit:
    def __init__(
        self, app: ASGIApp, limits: Iterable[tuple[str, int]] = ROUTE_LIMITS, default: int = DEFAULT_LIMIT
    ):
        self.app = app
        self.limits = [(re.compile(pattern), limit) for pattern, limit in limits]
        self.default = default

    def limit_for(self, path: str) -> int:
        return next((limit for pattern, limit in self.limits if pattern.search(path)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(scope, receive, send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client is gone: nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(scope, receive, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _content_length(scope: Scope) -> int | None:
    """The declared length; None when absent or unreadable (the server refuses a bad one
    before the app sees it; either way the bytes that come are counted)."""
    values = {v.strip() for k, v in scope.get("headers", ()) if k.lower() == b"content-length"}
    if len(values) != 1:
        return None
    value = values.pop()
    return int(value) if value.isdigit() else None


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    response = error_response(
        413,
        "request body too large",
        f"this route takes at most {limit} bytes (docs/gateway.md, request size limits)",
        headers={"Connection": "close"},
    )
    await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body in one message, then the server's own messages (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
