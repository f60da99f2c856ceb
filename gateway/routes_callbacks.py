"""``POST /v1/callbacks/{channel}``: a payout channel's asynchronous callback (R11).

Authenticated by the channel's own signature (no API key), answered in the acknowledgement
format the channel expects. 401 for a bad signature, 400 with the reason for a malformed
body, 404 for an unknown channel, 503 when Temporal is unreachable (the channel retries;
nothing is lost). A callback for a withdrawal not tracked yet is parked and applied when
tracking starts."""

from __future__ import annotations

import time

from fastapi import APIRouter, Path, Request, Response
from temporalio.service import RPCError

from channels.base import CallbackIgnored, CallbackRejected
from gateway.callbacks import deliver_observation
from gateway.errors import error_response, responses

router = APIRouter(tags=["channel callbacks"])


@router.post(
    "/v1/callbacks/{channel}",
    summary="A payout channel's asynchronous callback (R11)",
    description="Signed by the channel (docs/channels/*.md); no API key. The body is the channel's native format.",
    responses={200: {"description": "acknowledged in the channel's format"}, **responses(400, 401, 404, 503)},
)
async def callback(request: Request, channel: str = Path(max_length=32)) -> Response:
    adapter = request.app.state.channels.get(channel)
    if adapter is None:
        return error_response(404, f"unknown channel {channel!r}", "no adapter is configured under this name")
    body = await request.body()
    try:
        events = adapter.parse_callback_all(dict(request.headers), body, time.time())
    except CallbackIgnored:
        events = []  # verified but not about our payouts: acknowledge, deliver nothing
    except CallbackRejected as rejected:
        return error_response(rejected.status, rejected.reason, f"callback refused by the {channel} adapter")
    try:
        # A redelivery after a partial failure is safe: workflows act on an event_id once.
        for event in events:
            obs = adapter.observe(
                event.order_id, event.raw_status, event.raw_code, "callback", event.occurred_at, event_id=event.event_id
            )
            await deliver_observation(request.app.state.client, request.app.state.engine, adapter, obs)
    except RPCError as err:
        # Temporal unreachable: refuse, so the channel retries. Nothing is lost.
        return error_response(503, f"temporarily unavailable: {err.status.name}", "retry later")
    status, content_type, ack = adapter.ack()
    return Response(content=ack, status_code=status, media_type=content_type)
