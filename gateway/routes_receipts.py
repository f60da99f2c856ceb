"""Delivery receipts from notice providers. Twilio posts the status of each SMS to the
``StatusCallback`` URL the notifier gave it, which carries the delivery key
(``?notice_key=<withdrawal>/<stage>/<n>/sms``); the request is signed with the account's
auth token (``X-Twilio-Signature``). ``delivered`` and ``undelivered``/``failed`` update the
delivery log (R8); other statuses (queued, sent, ...) are acknowledged and ignored.

The signature covers the URL Twilio called, so it is checked against
``SENTINEL_CALLBACK_BASE_URL`` + path + query (the public address, not the one behind a
proxy). Twilio's auth token comes from ``SENTINEL_TWILIO_AUTH_TOKEN``; without it the
endpoint answers 404.

Aliyun (SmsReport, HTTP batch push) and Tencent Cloud (SMS status callback) post a JSON
array of reports and do not sign them (nor send a header of ours): their URLs carry a secret
path segment (``SENTINEL_RECEIPTS_TOKEN``; a wrong one is 401, none configured is 404), which
the access log never shows (gateway/access_log.py). Aliyun's report
names our notice key in ``out_id`` (the notifier sent it as OutId); Tencent's names its own
``sid`` (the SerialNo the send returned, kept as ``tencent:<sid>`` in the log). Each report
updates its delivery; a report for a delivery we do not know is logged and acknowledged
(the provider would otherwise retry it forever). Answers are the ones each provider wants:
``{"code": 0, "msg": "接收成功"}`` and ``{"result": 0, "errmsg": "OK"}``.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gateway import deps
from gateway.deps import db
from gateway.errors import ApiError, responses
from notifiers.sms_twilio import verify_signature
from sentinel import safe_json
from store.deliveries import delivery_receipt

log = logging.getLogger(__name__)

router = APIRouter(tags=["provider receipts"])

TWILIO_FINAL = {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}
#: a Twilio status callback has about 15 fields
MAX_FORM_FIELDS = 64


class ReceiptOut(BaseModel):
    received: bool = True
    delivery_status: str | None = None


def _twilio_token(settings) -> str | None:
    token = getattr(getattr(settings, "twilio", None), "auth_token", None)
    if token is not None and hasattr(token, "get_secret_value"):
        token = token.get_secret_value()
    return token or None


@router.post(
    "/v1/receipts/twilio",
    response_model=ReceiptOut,
    summary="Twilio SMS status callback (signed with X-Twilio-Signature)",
    description="No API key: Twilio signs the request. 401 for a bad signature, 400 without notice_key, "
    "404 when no Twilio auth token is configured.",
    responses=responses(400, 401, 404, 413),
)
async def twilio(request: Request, engine=Depends(deps.engine)) -> ReceiptOut:
    token = _twilio_token(request.app.state.settings)
    if token is None:
        raise ApiError(404, "not configured", "Twilio receipts need SENTINEL_TWILIO_AUTH_TOKEN")
    raw = await request.body()
    try:
        params = parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(raw),
            max_num_fields=MAX_FORM_FIELDS,
        )
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
        error = f"twilio {form.get('MessageStatus')}" + (
            f" ErrorCode={form['ErrorCode']}" if form.get("ErrorCode") else ""
        )
    stored = await db(delivery_receipt, engine, key, status, error)
    if stored is None:
        log.warning("Twilio receipt for unknown delivery %s (%s)", key, form.get("MessageSid"))
    return ReceiptOut(delivery_status=stored)


# --- Aliyun and Tencent: unsigned JSON arrays, secret URL --------------------------------


def _check_receipts_token(request: Request, token: str) -> None:
    secret = getattr(request.app.state.settings, "receipts_token", None)
    if secret is None:
        raise ApiError(404, "not configured", "Aliyun/Tencent receipts need SENTINEL_RECEIPTS_TOKEN")
    if not hmac.compare_digest(token.encode(), secret.get_secret_value().encode()):
        raise ApiError(401, "invalid token", "the receipt URL's token does not match")


async def _reports(request: Request, required: tuple[str, ...]) -> list[dict[str, Any]]:
    try:
        data = safe_json.loads(await request.body())
    except ValueError as exc:
        raise ApiError(400, "malformed body", f"expected a JSON array of reports: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ApiError(400, "malformed body", "expected a JSON array of report objects")
    for i, report in enumerate(data):
        missing = [f for f in required if f not in report]
        if missing:
            raise ApiError(400, "malformed body", f"report {i}: missing {', '.join(missing)}")
    return data


ReceiptToken = Path(min_length=1, max_length=200)


@router.post(
    "/v1/receipts/aliyun/{token}",
    summary="Aliyun SMS delivery reports (SmsReport, HTTP batch push)",
    description="A JSON array of reports; out_id is our notice key. No signature: the URL's token is the secret.",
    responses=responses(400, 401, 404, 413),
)
async def aliyun(request: Request, token: str = ReceiptToken, engine=Depends(deps.engine)) -> JSONResponse:
    _check_receipts_token(request, token)
    for report in await _reports(request, ("success", "out_id")):
        ok = report["success"] is True or str(report["success"]).lower() == "true"
        error = None if ok else f"aliyun {report.get('err_code') or ''} {report.get('err_msg') or ''}".strip()
        key = str(report["out_id"])
        stored = await db(delivery_receipt, engine, key, "delivered" if ok else "failed", error)
        if stored is None:
            log.warning("Aliyun report for unknown delivery %s (biz_id %s)", key, report.get("biz_id"))
    return JSONResponse({"code": 0, "msg": "接收成功"})


@router.post(
    "/v1/receipts/tencent/{token}",
    summary="Tencent Cloud SMS status callbacks",
    description="A JSON array of reports; sid is the SerialNo SendSms returned. No signature: the URL's token is "
    "the secret.",
    responses=responses(400, 401, 404, 413),
)
async def tencent(request: Request, token: str = ReceiptToken, engine=Depends(deps.engine)) -> JSONResponse:
    _check_receipts_token(request, token)
    for report in await _reports(request, ("report_status", "sid")):
        ok = report["report_status"] == "SUCCESS"
        error = (
            None if ok else f"tencent {report.get('errmsg') or ''} {report.get('description') or ''}".strip()
        )
        message_id = f"tencent:{report['sid']}"
        stored = await db(
            delivery_receipt,
            engine,
            None,
            "delivered" if ok else "failed",
            error,
            provider_message_id=message_id,
        )
        if stored is None:
            log.warning("Tencent report for unknown message %s", message_id)
    return JSONResponse({"result": 0, "errmsg": "OK"})
