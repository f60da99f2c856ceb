"""JSON from outside (channel callbacks and answers, provider receipts) read with a bound on
its nesting. Pure.

``json.loads`` recurses once per level: a signed body of ``[[[[...`` deep enough ends in a
RecursionError (a 500), and anything a little less deep is handed on to code that may recurse
again. No message we read is nested more than a few levels, so anything deeper than
``MAX_DEPTH`` is refused before it is parsed, with the reason.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32

# A JSON string (escapes included); what is left once strings are removed are the brackets
# that make the structure.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(rb"[\[\]{}]")


class JsonRefused(ValueError):
    """The text is not JSON we read; ``str(exc)`` is the reason, fit for a 400 answer."""


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when the JSON text nests arrays/objects more than ``limit`` levels (stops at
    the first bracket past the limit)."""
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub(b"", raw)):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def loads(raw: bytes | str, what: str = "body", limit: int = MAX_DEPTH) -> Any:
    """``json.loads`` for untrusted text (UTF-8, as RFC 8259 asks). Raises
    :class:`JsonRefused` naming ``what``: not UTF-8, not JSON, or nested deeper than
    ``limit``."""
    if isinstance(raw, str):
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates
            raise JsonRefused(f"{what} is not valid JSON: not UTF-8") from None
    if too_deep(raw, limit):
        raise JsonRefused(f"{what} is nested deeper than {limit} levels")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise JsonRefused(f"{what} is not valid JSON: not UTF-8") from None
    try:
        return json.loads(text)
    except RecursionError:  # pragma: no cover - too_deep stops this first
        raise JsonRefused(f"{what} is nested deeper than {limit} levels") from None
    except ValueError as exc:
        raise JsonRefused(f"{what} is not valid JSON: {getattr(exc, 'msg', exc)}") from None
