"""Scripted outcomes of the channel simulator. Pure: data and validation, no I/O.

A :class:`Script` says how the simulated channel answers the submit of one order
(``submit``) and what happens to the order afterwards (``steps``): at ``after_s`` seconds
after the submit the order takes ``status``/``code`` (what queries answer from then on)
and, with ``callback``, a signed callback is sent to the order's ``callback_url``.

Named scenarios (:data:`SCENARIOS`) are functions of keyword parameters returning a
script; :func:`build_scenario` validates the parameters. :func:`script_from_spec` turns the
body of ``PUT /_sim/scripts/{order_id}`` into a script.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Status = Literal["ACCEPTED", "PROCESSING", "SUCCEEDED", "FAILED", "HELD", "UNKNOWN", "RETURNED"]
SubmitBehaviour = Literal["ok", "http_500", "unknown"]

STATUSES: tuple[str, ...] = ("ACCEPTED", "PROCESSING", "SUCCEEDED", "FAILED", "HELD", "UNKNOWN", "RETURNED")
SUBMIT_BEHAVIOURS: tuple[str, ...] = ("ok", "http_500", "unknown")
CODE_PATTERN = r"^[A-Z0-9_]{2,16}$"
MAX_AFTER_S = 7 * 24 * 3600.0

DEFAULT_SCENARIO = "success"

# Human-readable messages for the codes the scenarios use (ISO 20022 reason codes).
CODE_MESSAGES: dict[str, str] = {
    "AB08": "creditor agent offline, the bank is slow to respond",
    "TM01": "cut-off time passed, processed next business day",
    "ED06": "settlement system not available",
    "AC04": "account closed",
    "AC01": "incorrect account number",
    "AM02": "amount exceeds the allowed maximum",
    "AM04": "insufficient funds",
    "BE01": "payee name does not match the account",
    "FR01": "held for fraud review",
    "RISK": "held for risk review",
}

STATUS_MESSAGES: dict[str, str] = {
    "ACCEPTED": "accepted",
    "PROCESSING": "with the bank",
    "SUCCEEDED": "credited to the payee",
    "FAILED": "rejected",
    "HELD": "held for review",
    "UNKNOWN": "system error, query again",
    "RETURNED": "returned by the bank",
}


def message_for(status: str, code: str | None) -> str:
    """The default ``message`` of a (status, code) pair."""
    if code and code in CODE_MESSAGES:
        return CODE_MESSAGES[code]
    return STATUS_MESSAGES.get(status, status.lower())


class Step(BaseModel):
    """At ``after_s`` seconds after the submit, the order takes ``status``/``code``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after_s: float = Field(ge=0, le=MAX_AFTER_S, description="seconds since the submit")
    status: Status
    code: str | None = Field(default=None, pattern=CODE_PATTERN)
    callback: bool = Field(default=False, description="also send a signed callback at that moment")
    message: str | None = Field(default=None, max_length=200, description="default: from the code or status")

    @property
    def text(self) -> str:
        return self.message if self.message is not None else message_for(self.status, self.code)


class Script(BaseModel):
    """How the channel answers the submit, then what happens to the order over time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    submit: SubmitBehaviour = "ok"
    steps: tuple[Step, ...] = Field(default=(), max_length=100)
    scenario: str | None = Field(default=None, description="name of the scenario it was built from, if any")

    def ordered_steps(self) -> list[Step]:
        """The steps by time (stable for equal times)."""
        return sorted(self.steps, key=lambda s: s.after_s)

    @property
    def initial_status(self) -> str:
        """What the order answers before its first step: ACCEPTED, or UNKNOWN when the
        submit itself went wrong (``http_500``) or said so (``unknown``)."""
        return "ACCEPTED" if self.submit == "ok" else "UNKNOWN"


# --- named scenarios -------------------------------------------------------------------


def _success(*, after_s: float = 2.0) -> Script:
    return Script(
        steps=(
            Step(after_s=0, status="PROCESSING"),
            Step(after_s=after_s, status="SUCCEEDED", callback=True),
        )
    )


def _bank_delay(*, slow_after_s: float = 1.0, delay_s: float = 30.0, code: str = "AB08") -> Script:
    return Script(
        steps=(
            Step(after_s=0, status="PROCESSING"),
            Step(after_s=slow_after_s, status="PROCESSING", code=code, callback=True),
            Step(after_s=delay_s, status="SUCCEEDED", callback=True),
        )
    )


def _account_error(*, after_s: float = 1.0, code: str = "AC04") -> Script:
    return Script(steps=(Step(after_s=after_s, status="FAILED", code=code, callback=True),))


def _risk_hold(*, after_s: float = 1.0, code: str = "FR01") -> Script:
    return Script(steps=(Step(after_s=after_s, status="HELD", code=code, callback=True),))


def _limit(*, after_s: float = 1.0, code: str = "AM02") -> Script:
    return Script(steps=(Step(after_s=after_s, status="FAILED", code=code, callback=True),))


def _system_error_then_final(*, final_after_s: float = 3.0) -> Script:
    return Script(
        submit="http_500",
        steps=(
            Step(after_s=0, status="UNKNOWN"),
            Step(after_s=final_after_s, status="SUCCEEDED"),
        ),
    )


def _success_then_return(
    *, success_after_s: float = 1.0, return_after_s: float = 4.0, code: str = "AC04"
) -> Script:
    return Script(
        steps=(
            Step(after_s=success_after_s, status="SUCCEEDED", callback=True),
            Step(after_s=return_after_s, status="RETURNED", code=code, callback=True),
        )
    )


def _no_callback_success(*, after_s: float = 1.0) -> Script:
    return Script(steps=(Step(after_s=after_s, status="SUCCEEDED", callback=False),))


SCENARIOS: dict[str, Callable[..., Script]] = {
    "success": _success,
    "bank_delay": _bank_delay,
    "account_error": _account_error,
    "risk_hold": _risk_hold,
    "limit": _limit,
    "system_error_then_final": _system_error_then_final,
    "success_then_return": _success_then_return,
    "no_callback_success": _no_callback_success,
}

SCENARIO_DESCRIPTIONS: dict[str, str] = {
    "success": "PROCESSING at 0, SUCCEEDED at after_s with callback",
    "bank_delay": "PROCESSING, PROCESSING/AB08 at slow_after_s with callback, SUCCEEDED at delay_s with callback",
    "account_error": "FAILED/AC04 at after_s with callback",
    "risk_hold": "HELD/FR01 at after_s with callback",
    "limit": "FAILED/AM02 at after_s with callback",
    "system_error_then_final": "submit answers 500; UNKNOWN until final_after_s, then SUCCEEDED; no callback",
    "success_then_return": "SUCCEEDED at success_after_s, RETURNED/AC04 at return_after_s, both with callback",
    "no_callback_success": "SUCCEEDED at after_s without callback: only polling finds it",
}


def scenario_params(name: str) -> dict[str, Any]:
    """The parameters of a scenario with their defaults."""
    builder = _builder(name)
    return {p.name: p.default for p in inspect.signature(builder).parameters.values()}


def _builder(name: str) -> Callable[..., Script]:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None


def build_scenario(name: str, params: dict[str, Any] | None = None) -> Script:
    """The script of a named scenario; raises ValueError for an unknown name or bad params."""
    builder = _builder(name)
    params = dict(params or {})
    allowed = scenario_params(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        takes = ", ".join(allowed) or "none"
        raise ValueError(f"scenario {name!r} has no parameter {', '.join(unknown)}; it takes {takes}")
    for key, value in params.items():
        default = allowed[key]
        if isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"parameter {key} must be a number of seconds")
            if value < 0:
                raise ValueError(f"parameter {key} must not be negative")
            params[key] = float(value)
        elif isinstance(default, str) and not isinstance(value, str):
            raise ValueError(f"parameter {key} must be a string")
    try:
        script = builder(**params)
    except ValidationError as exc:
        raise ValueError(_first_error(exc)) from None
    return script.model_copy(update={"scenario": name})


def script_from_spec(spec: Any) -> Script:
    """Parse the admin body: ``{"scenario": name, "params": {...}}`` or
    ``{"steps": [...], "submit": "ok"}``. Raises ValueError with the reason."""
    if not isinstance(spec, dict):
        raise ValueError("the script must be a JSON object")
    if "scenario" in spec:
        extra = sorted(set(spec) - {"scenario", "params"})
        if extra:
            raise ValueError(f"a scenario script takes only 'scenario' and 'params', not {', '.join(extra)}")
        name, params = spec["scenario"], spec.get("params") or {}
        if not isinstance(name, str):
            raise ValueError("'scenario' must be a string")
        if not isinstance(params, dict):
            raise ValueError("'params' must be an object")
        return build_scenario(name, params)
    if "steps" not in spec:
        raise ValueError(
            "give either 'scenario' (with optional 'params') or 'steps' (with optional 'submit')"
        )
    extra = sorted(set(spec) - {"steps", "submit"})
    if extra:
        raise ValueError(f"a step script takes only 'steps' and 'submit', not {', '.join(extra)}")
    try:
        return Script.model_validate({"steps": spec["steps"], "submit": spec.get("submit", "ok")})
    except ValidationError as exc:
        raise ValueError(_first_error(exc)) from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err.get('msg')}" if where else str(err.get("msg"))
