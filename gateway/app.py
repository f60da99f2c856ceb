"""HTTP gateway (FastAPI, OpenAPI at /docs): how the payment service, reviewers, operators,
the app and support staff reach the system (issue #3). Every endpoint, role and example:
docs/gateway.md.

One router per area: channel callbacks (signed by the channel), withdrawals (start, status,
records, documents, link receipts), the inbox, the review desk, operations, provider
receipts, the codec server of the Temporal UI (decrypts workflow history for operators),
and the web pages under /pages (progress, records, inbox, the operations and reviewer
consoles: docs/pages.md).
Authentication: API keys with roles and signed user tokens (gateway/auth.py).
It refuses to start with the public development credentials unless SENTINEL_DEV_MODE=1
(sentinel/dev_credentials.py), and its access log never shows a receipt URL's secret
(gateway/access_log.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from channels.registry import build_channels
from gateway import (
    errors,
    routes_callbacks,
    routes_codec,
    routes_console,
    routes_console_reports,
    routes_devices,
    routes_inbox,
    routes_inbox_page,
    routes_learning,
    routes_ops,
    routes_pages,
    routes_progress,
    routes_receipts,
    routes_records,
    routes_review_console,
    routes_reviews,
    routes_signin,
    routes_widget,
    routes_withdrawals,
)
from gateway.access_log import redact_access_log
from gateway.auth import KeyStore
from gateway.limits import BodyLimit
from gateway.page_streams import Slots
from gateway.reviewers import Reviewers
from gateway.sessions import RateLimit, Sessions
from gateway.web import PREFIX, STATIC, SecurityHeaders
from runtime.client import SentinelClient
from runtime.codec import codec_for
from runtime.config_files import HotFile
from sentinel.decision_tokens import parse_signing_key
from sentinel.dev_credentials import DevCredentialsRefused, check_at_start
from sentinel.policy import validate_delays_document
from sentinel.settings import Settings, get_settings
from store.db import engine_for

DESCRIPTION = """Withdrawal tracking for the payment service, reviewers, operators and the app.

Authenticate with `Authorization: Bearer <API key>` (roles payment-service, reviewer,
supervisor, operator) or `Authorization: Bearer <user token>` for one end user's data.
Channel callbacks and provider receipts are authenticated by their own signatures.
Errors are `{"error": ..., "detail": ...}`. Request bodies are limited per route (1 MiB for
channel callbacks, 256 KiB for provider receipts, 16 KiB for document uploads, 64 KiB
otherwise): a larger body is 413 before it is read. See docs/gateway.md."""


def create_app(
    settings: Settings | None = None,
    client: SentinelClient | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    settings = settings or get_settings()
    check_at_start(settings, "gateway")  # public dev credentials only with SENTINEL_DEV_MODE=1
    parse_signing_key(
        settings.decision_signing_key.get_secret_value()
    )  # a bad key stops the gateway at start
    redact_access_log()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if getattr(app.state, "client", None) is None:
            app.state.client = await SentinelClient.connect(settings)
        try:
            yield
        finally:
            app.state.callback_parsers.shutdown(wait=False, cancel_futures=True)

    # no 307 to the same path without its trailing slash: an API caller (a channel's POST
    # callback above all) gets 404 for a path it got wrong, not a redirect it may not follow
    app = FastAPI(
        title="withdrawal-sentinel gateway",
        version="0.2.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.client = client
    app.state.clock = clock
    app.state.engine = engine_for(settings.database_url)
    app.state.channels = build_channels(settings)
    app.state.keys = KeyStore(settings.api_keys_file)
    app.state.reviewers = Reviewers(settings.reviewers_file)  # the reviewer console's accounts
    app.state.delays = HotFile(settings.delays_file, validate_delays_document)  # the console's SLA due times
    app.state.codec = codec_for(settings)  # the workers' payload keys, for the codec server
    app.state.callback_parsers = routes_callbacks.parser_pool()
    app.state.sessions = Sessions(settings.user_token_secret, settings.pages_session_ttl_s)
    app.state.signin_limit = RateLimit(settings.pages_signin_per_minute)
    app.state.page_slots = Slots(settings.pages_max_streams)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)
    errors.install(app)
    for module in (
        routes_withdrawals,
        routes_inbox,
        routes_devices,
        routes_reviews,
        routes_ops,
        routes_learning,
        routes_callbacks,
        routes_receipts,
        routes_codec,
        routes_progress,
        routes_signin,
        routes_pages,
        routes_records,
        routes_inbox_page,
        routes_widget,
        routes_console,
        routes_console_reports,
        routes_review_console,
    ):
        app.include_router(module.router)
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC), name="pages-static")
    routes_pages.install(app)  # last: its catch-all answers unknown page paths
    app.add_middleware(routes_codec.CodecCors, origins=settings.codec_cors_origins)
    return app


def app() -> FastAPI:  # uvicorn --factory gateway.app:app
    try:
        return create_app()
    except DevCredentialsRefused as refused:
        raise SystemExit(str(refused)) from None  # one clear message, no traceback
