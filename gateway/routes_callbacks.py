"""``POST /v1/callbacks/{channel}``: a payout channel's asynchronous callback (R11).

Authenticated by the channel's own signature (no API key), answered in the acknowledgement
format the channel expects. 401 for a bad signature, 400 with the reason for a malformed
body, 404 for an unknown channel, 413 for a body over 1 MiB (gateway/limits.py), 503 when
Temporal is unreachable (the channel retries; nothing is lost). A callback for a withdrawal
not tracked yet is parked and applied when tracking starts.

The signature check and the parsing run on a small pool of threads of their own, off the
event loop: a large (allowed) body does not hold up other requests, and callbacks cannot
take the threads the database calls use."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter, Path, Request, Response
from pydantic import ValidationError
from temporalio.service import RPCError

from channels.base import CallbackIgnored, CallbackRejected
from gateway.callbacks import deliver_observation
from gateway.errors import error_response, responses

router = APIRouter(tags=["channel callbacks"])

#: threads that verify and parse callbacks (per app: ``app.state.callback_parsers``)
PARSER_THREADS = 2


def parser_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=PARSER_THREADS, thread_name_prefix="callback-parse")


@router.post(
    "/v1/callbacks/{channel}",
    summary="A payout channel's asynchronous callback (R11)",
    description="Signed by the channel (docs/channels/*.md); no API key. The body is the channel's native format, "
    "at most 1 MiB.",
    responses={
        200: {"description": "acknowledged in the channel's format"},
        **responses(400, 401, 404, 413, 503),
    },
)
async def callback(request: Request, channel: str = Path(max_length=32)) -> Response:
    adapter = request.app.state.channels.get(channel)
    if adapter is None:
        return error_response(404, f"unknown channel {channel!r}", "no adapter is configured under this name")
    body = await request.body()
    parse = adapter.parse_callback_all
    try:
        events = await asyncio.get_running_loop().run_in_executor(
            request.app.state.callback_parsers, parse, dict(request.headers), body, time.time()
        )
    except CallbackIgnored:
        events = []  # verified but not about our payouts: acknowledge, deliver nothing
    except CallbackRejected as rejected:
        return error_response(rejected.status, rejected.reason, f"callback refused by the {channel} adapter")
    try:
        observations = [
            adapter.observe(
                e.order_id, e.raw_status, e.raw_code, "callback", e.occurred_at, event_id=e.event_id
            )
            for e in events
        ]
    except ValidationError as exc:  # e.g. an order id that holds a card number: never one of ours
        reasons = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        return error_response(400, reasons, f"callback refused by the {channel} adapter")
    try:
        # A redelivery after a partial failure is safe: workflows act on an event_id once.
        for obs in observations:
            await deliver_observation(request.app.state.client, request.app.state.engine, adapter, obs)
    except RPCError as err:
        # Temporal unreachable: refuse, so the channel retries. Nothing is lost.
        return error_response(503, f"temporarily unavailable: {err.status.name}", "retry later")
    status, content_type, ack = adapter.ack()
    return Response(content=ack, status_code=status, media_type=content_type)
