"""The codec server for the Temporal Web UI and CLI: workflow history payloads are encrypted
(runtime/codec.py); these two endpoints open and seal them for an operator who may read
them. Temporal's codec server protocol: the body is a ``Payloads`` message in protobuf JSON,
``{"payloads": [{"metadata": {"encoding": <base64>, ...}, "data": <base64>}]}``, and so is
the answer. The UI sends the ``X-Namespace`` header; only this deployment's namespace is
served. Every decode is written to the audit log (who, how many payloads).

Browsers reach these paths from the UI's origin: :class:`CodecCors` answers their CORS
preflight for ``/codec/`` only, for the origins in ``SENTINEL_CODEC_CORS_ORIGINS``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from google.protobuf import json_format
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payloads

from gateway import deps
from gateway.auth import OPERATOR, SUPERVISOR, Principal, require
from gateway.deps import db
from gateway.errors import ApiError, responses
from runtime.codec import PayloadDecryptError
from store.repo import add_audit

router = APIRouter(tags=["operations"])

PREFIX = "/codec"
OPS = (OPERATOR, SUPERVISOR)

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["payloads"],
                    "properties": {
                        "payloads": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "metadata": {
                                        "type": "object",
                                        "additionalProperties": {"type": "string", "format": "byte"},
                                    },
                                    "data": {"type": "string", "format": "byte"},
                                },
                            },
                        }
                    },
                }
            }
        },
    }
}


class CodecCors:
    """CORS for the codec paths only: the rest of the gateway is not for browsers of other origins."""

    def __init__(self, app: ASGIApp, origins: Collection[str]):
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX + "/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def incoming(
    request: Request,
    x_namespace: str | None = Header(None, description="the Temporal namespace (the UI sends it)"),
) -> Payloads:
    """The posted payloads, for this deployment's namespace only."""
    served = request.app.state.settings.temporal_namespace
    if x_namespace is not None and x_namespace != served:
        raise ApiError(400, "unknown namespace", f"this codec server serves namespace {served!r} only")
    try:
        return json_format.Parse(await request.body(), Payloads())
    except json_format.ParseError as exc:
        raise ApiError(
            400, "invalid payloads", f'expected {{"payloads": [...]}} in protobuf JSON: {exc}'
        ) from None


def _answer(payloads) -> Response:
    return Response(json_format.MessageToJson(Payloads(payloads=payloads)), media_type="application/json")


#: the caller is checked first (401/403 before anything about the body)
Operator = Annotated[Principal, Depends(require(*OPS))]
Incoming = Annotated[Payloads, Depends(incoming)]


@router.post(
    PREFIX + "/decode",
    summary="Decrypt workflow history payloads (Temporal codec server)",
    description="Roles operator, supervisor. Payloads that are not encrypted come back unchanged. 400 when a "
    "payload is sealed with a key this deployment does not hold, or fails authentication (altered).",
    responses=responses(400, 401, 403, 413),
    openapi_extra=_BODY,
)
async def decode(request: Request, who: Operator, body: Incoming, engine=Depends(deps.engine)) -> Response:
    keyring = request.app.state.codec.keyring
    opened = []
    for i, payload in enumerate(body.payloads):
        try:
            opened.append(keyring.decrypt(payload))
        except PayloadDecryptError as exc:
            raise ApiError(400, "cannot decode", f"payloads[{i}]: {exc}") from None
    await db(
        add_audit,
        engine,
        who.actor,
        who.role,
        "codec:decode",
        None,
        f"{len(opened)} payloads, namespace {request.app.state.settings.temporal_namespace}",
    )
    return _answer(opened)


@router.post(
    PREFIX + "/encode",
    summary="Encrypt payloads with the current key (Temporal codec server)",
    description="Roles operator, supervisor. What the UI and CLI use to send a signal or query input.",
    responses=responses(400, 401, 403, 413),
    openapi_extra=_BODY,
)
async def encode(request: Request, who: Operator, body: Incoming) -> Response:
    return _answer([request.app.state.codec.keyring.encrypt(p) for p in body.payloads])
