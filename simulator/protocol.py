"""Wire format of the generic bank protocol as the simulated channel reads and writes it
(docs/channels/generic.md). Pure: parsing, validation and body construction, no I/O."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sentinel.models import ID_PATTERN, reject_card_numbers

AMOUNT_PATTERN = r"^(0|[1-9][0-9]{0,13})(\.[0-9]{1,4})?$"


class RequestError(ValueError):
    """The request body is malformed; the message is the reason given in the 400."""


class PayoutRequest(BaseModel):
    """Body of ``POST /v1/payouts``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: str = Field(pattern=ID_PATTERN)
    amount: str = Field(description='decimal string, e.g. "100.00"; never a JSON number')
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    bank_code: str = Field(pattern=r"^[A-Z0-9_]{2,16}$")
    payee_ref: str = Field(min_length=1, max_length=128)
    card_last4: str | None = Field(
        None, pattern=r"^\d{4}$", description="absent when the channel never sees a card"
    )
    callback_url: str = Field(max_length=2048)

    @field_validator("amount", mode="before")
    @classmethod
    def _decimal_string(cls, v: object) -> object:
        if isinstance(v, bool) or isinstance(v, (int, float)):
            raise ValueError('amount must be a decimal string like "100.00", not a JSON number')
        if not isinstance(v, str):
            raise ValueError('amount must be a decimal string like "100.00"')
        if not re.match(AMOUNT_PATTERN, v):
            raise ValueError('amount must be a decimal string like "100.00" (at most 4 decimals)')
        if Decimal(v) <= 0:
            raise ValueError("amount must be greater than zero")
        return v

    @field_validator("payee_ref")
    @classmethod
    def _no_pan(cls, v: str) -> str:
        return reject_card_numbers(v, "payee_ref")

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("callback_url must be an absolute http(s) URL")
        return v

    @property
    def amount_decimal(self) -> Decimal:
        return Decimal(self.amount)

    def same_order(self, other: PayoutRequest) -> bool:
        """Whether a repeated submit carries the same fields (amounts compared as numbers)."""
        return self.model_dump(exclude={"amount"}) == other.model_dump(exclude={"amount"}) and (
            self.amount_decimal == other.amount_decimal
        )


def parse_payout_request(body: bytes) -> PayoutRequest:
    """Parse and validate a submit body; raises RequestError with the reason."""
    data = parse_json_object(body)
    try:
        return PayoutRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestError(describe_validation_error(exc)) from None


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise RequestError("empty body; expected a JSON object")
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise RequestError("body is not UTF-8") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity
        raise RequestError(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError("body must be a JSON object")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``field: message``."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "body"
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "missing":
            msg = "field required"
        elif err.get("type") == "extra_forbidden":
            msg = "unknown field"
        msg = msg.removeprefix("Value error, ")
        lines.append(f"{where}: {msg}")
    return "; ".join(lines)


def utc_iso(moment: datetime) -> str:
    """``2026-11-27T02:10:00Z``."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def payout_body(order_id: str, status: str, code: str | None, message: str) -> dict[str, Any]:
    return {"order_id": order_id, "status": status, "code": code, "message": message}


def callback_body(
    event_id: str, order_id: str, status: str, code: str | None, message: str, occurred_at: datetime
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "order_id": order_id,
        "status": status,
        "code": code,
        "message": message,
        "occurred_at": utc_iso(occurred_at),
    }


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
