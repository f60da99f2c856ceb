"""HTTP gateway (FastAPI, OpenAPI at /docs). Foundation scope: channel callbacks, start a
withdrawal, the status / progress query (R16) and the in-app inbox with its unread count
(R21). Authentication, roles and the review desk come with the gateway issue (#3)."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from temporalio.service import RPCError, RPCStatusCode

from channels.base import CallbackIgnored, CallbackRejected
from channels.registry import build_channels
from gateway.callbacks import deliver_observation
from sentinel.models import WithdrawalRequest, WithdrawalView
from sentinel.settings import Settings, get_settings
from starter.client import SentinelClient
from store.db import engine_for
from store.repo import inbox, mark_read


def create_app(settings: Settings | None = None, client: SentinelClient | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.client = client or await SentinelClient.connect(settings)
        yield

    app = FastAPI(title="withdrawal-sentinel gateway", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine_for(settings.database_url)
    app.state.channels = build_channels(settings)

    @app.post("/v1/callbacks/{channel}", summary="A payout channel's asynchronous callback (R11)")
    async def callback(channel: str, request: Request) -> Response:
        adapter = app.state.channels.get(channel)
        if adapter is None:
            return JSONResponse({"error": f"unknown channel {channel!r}"}, status_code=404)
        body = await request.body()
        try:
            events = adapter.parse_callback_all(dict(request.headers), body, time.time())
        except CallbackIgnored:
            events = []  # verified but not about our payouts: acknowledge, deliver nothing
        except CallbackRejected as rejected:
            return JSONResponse({"error": rejected.reason}, status_code=rejected.status)
        try:
            # A redelivery after a partial failure is safe: workflows act on an event_id once.
            for event in events:
                obs = adapter.observe(
                    event.order_id, event.raw_status, event.raw_code, "callback", event.occurred_at, event_id=event.event_id
                )
                await deliver_observation(app.state.client, app.state.engine, adapter, obs)
        except RPCError as err:
            # Temporal unreachable: refuse, so the channel retries. Nothing is lost.
            return JSONResponse({"error": f"temporarily unavailable: {err.status.name}"}, status_code=503)
        status, content_type, ack = adapter.ack()
        return Response(content=ack, status_code=status, media_type=content_type)

    @app.post("/v1/withdrawals", status_code=202, summary="Start tracking a withdrawal (idempotent)")
    async def start(req: WithdrawalRequest) -> dict:
        handle = await app.state.client.start_withdrawal(req)
        return {"workflow_id": handle.id, "status_url": f"/v1/withdrawals/{req.withdrawal_id}"}

    @app.get("/v1/withdrawals/{withdrawal_id}", response_model=WithdrawalView, summary="Status and timeline (R16)")
    async def status(withdrawal_id: str) -> WithdrawalView:
        try:
            return await app.state.client.status(withdrawal_id)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise HTTPException(404, f"withdrawal {withdrawal_id} is not tracked") from None
            raise

    @app.get("/v1/users/{user_id}/inbox", summary="In-app messages and the unread count (R21)")
    async def user_inbox(user_id: str, limit: int = 50, offset: int = 0) -> dict:
        messages, unread = inbox(app.state.engine, user_id, min(max(limit, 1), 200), max(offset, 0))
        return {"unread": unread, "messages": [m.model_dump(mode="json") for m in messages]}

    @app.post("/v1/users/{user_id}/inbox/{message_id}/read", summary="Mark a message read")
    async def read(user_id: str, message_id: int) -> dict:
        if not mark_read(app.state.engine, user_id, message_id):
            raise HTTPException(404, "no such message for this user")
        return {"ok": True}

    return app


def app() -> FastAPI:  # uvicorn --factory gateway.app:app
    return create_app()
