"""Every error the gateway answers is JSON ``{"error": <what>, "detail": <why>}``.

Validation errors (422) list each problem with the field it concerns::

    {"error": "invalid request", "detail": [{"field": "amount", "loc": ["body", "amount"],
                                             "msg": "...", "type": "..."}]}

A body the framework cannot read at all (not UTF-8, say) is the same 422, with the field
``body``. A body over its route's limit is 413 (gateway/limits.py). Bad input never becomes a
500; an unexpected failure is a 500 without internals, and Temporal being unreachable is a
503 (retry later: nothing was lost). A request Temporal refuses as invalid (gRPC
INVALID_ARGUMENT, e.g. an id longer than the server allows) is 400 ``{"error": "rejected by
Temporal", "detail": <Temporal's reason>}``.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: str
    detail: Any = None


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


def error_response(
    status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def field_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [p if isinstance(p, (str, int)) else str(p) for p in err.get("loc", ())]
        field = ".".join(str(p) for p in loc if p not in ("body", "query", "path", "header"))
        out.append(
            {"field": field, "loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
        )
    return out


def rejected_by_temporal(reason: str) -> ApiError:
    """Temporal refused the request as invalid (INVALID_ARGUMENT): the request is at fault."""
    return ApiError(400, "rejected by Temporal", reason)


#: error answers worth listing in the OpenAPI document of a route
def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody, "description": HTTPStatus(code).phrase} for code in codes}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI could not read the body (e.g. JSON that is not UTF-8): the documented 422
            return error_response(
                422,
                "invalid request",
                [
                    {
                        "field": "body",
                        "loc": ["body"],
                        "type": "body_unreadable",
                        "msg": f"the body cannot be read as JSON ({type(exc.__cause__).__name__}); send UTF-8 JSON",
                    }
                ],
            )
        try:
            phrase = HTTPStatus(exc.status_code).phrase.lower()
        except ValueError:
            phrase = "error"
        return error_response(exc.status_code, phrase, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid request", field_errors(list(exc.errors())))

    @app.exception_handler(RPCError)
    async def _temporal(request: Request, exc: RPCError) -> JSONResponse:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return error_response(404, "not found", str(exc))
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            return await _api_error(request, rejected_by_temporal(exc.message))
        log.warning("Temporal call failed: %s %s", exc.status.name if exc.status else "?", exc)
        return error_response(
            503, "temporarily unavailable", f"Temporal: {exc.status.name if exc.status else exc}"
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal error", "the error was logged")
