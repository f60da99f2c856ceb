"""Delivery receipts from notice providers. Twilio posts the status of each SMS to the
``StatusCallback`` URL the notifier gave it, which carries the delivery key
(``?notice_key=<withdrawal>/<stage>/<n>/sms``); the request is signed with the account's
auth token (``X-Twilio-Signature``). ``delivered`` and ``undelivered``/``failed`` update the
delivery log (R8); other statuses (queued, sent, ...) are acknowledged and ignored.

The signature covers the URL Twilio called, so it is checked against
``SENTINEL_CALLBACK_BASE_URL`` + path + query (the public address, not the one behind a
proxy). Twilio's auth token comes from ``SENTINEL_TWILIO_AUTH_TOKEN``; without it the
endpoint answers 404.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from gateway import deps
from gateway.deps import db
from gateway.errors import ApiError, responses
from notifiers.sms_twilio import verify_signature
from store.repo import delivery_receipt

log = logging.getLogger(__name__)

router = APIRouter(tags=["provider receipts"])

TWILIO_FINAL = {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}


class ReceiptOut(BaseModel):
    received: bool = True
    delivery_status: str | None = None


def _twilio_token(settings) -> str | None:
    token = getattr(settings, "twilio_auth_token", None)
    if token is not None and hasattr(token, "get_secret_value"):
        token = token.get_secret_value()
    return token or None


@router.post(
    "/v1/receipts/twilio",
    response_model=ReceiptOut,
    summary="Twilio SMS status callback (signed with X-Twilio-Signature)",
    description="No API key: Twilio signs the request. 401 for a bad signature, 400 without notice_key, "
    "404 when no Twilio auth token is configured.",
    responses=responses(400, 401, 404),
)
async def twilio(request: Request, engine=Depends(deps.engine)) -> ReceiptOut:
    token = _twilio_token(request.app.state.settings)
    if token is None:
        raise ApiError(404, "not configured", "Twilio receipts need SENTINEL_TWILIO_AUTH_TOKEN")
    raw = await request.body()
    try:
        params = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "malformed body", "expected application/x-www-form-urlencoded") from None
    base = str(request.app.state.settings.callback_base_url).rstrip("/")
    url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not verify_signature(token, url, params, request.headers.get("X-Twilio-Signature")):
        raise ApiError(401, "invalid signature", "X-Twilio-Signature does not match")
    key = request.query_params.get("notice_key")
    if not key:
        raise ApiError(400, "missing notice_key", "the StatusCallback URL must carry ?notice_key=")
    form = dict(params)
    status = TWILIO_FINAL.get(form.get("MessageStatus", ""))
    if status is None:
        return ReceiptOut()
    error = None
    if status == "failed":
        error = f"twilio {form.get('MessageStatus')}" + (f" ErrorCode={form['ErrorCode']}" if form.get("ErrorCode") else "")
    stored = await db(delivery_receipt, engine, key, status, error)
    if stored is None:
        log.warning("Twilio receipt for unknown delivery %s (%s)", key, form.get("MessageSid"))
    return ReceiptOut(delivery_status=stored)
