"""Secrets and card numbers never reach the access log (issue #11).

Aliyun and Tencent cannot sign their SMS receipts nor send a header of our choosing, so the
receipt URL configured at the provider carries the secret ``SENTINEL_RECEIPTS_TOKEN`` as a
path segment (``/v1/receipts/aliyun/<token>``, gateway/routes_receipts.py). A query
parameter would be no better: the request line, path and query, is what access logs keep.
So the secret stays in the path and the gateway's access log (uvicorn's ``uvicorn.access``
logger) writes ``/v1/receipts/aliyun/<redacted>`` instead. A reverse proxy in front of the
gateway keeps its own access log: configure it to drop or mask these paths too
(docs/deployment.md).

Card numbers: the server writes a request's path before the gateway can refuse it
(``GET /v1/withdrawals/4111111111111111`` is a 422, and its line is written anyway), so every
card number in the line is masked down to its last four digits (sentinel/pan.py).
"""

from __future__ import annotations

import logging
import re

from sentinel.pan import mask_card_numbers

REDACTED = "<redacted>"

#: everything after the provider segment of a token-carrying receipt path, up to the query
_SECRET_PATH = re.compile(r"(/v1/receipts/(?:aliyun|tencent)/)[^?#\s\"]+")


def redact(text: str) -> str:
    return mask_card_numbers(_SECRET_PATH.sub(r"\g<1>" + REDACTED, text))


class RedactSecretPaths(logging.Filter):
    """Rewrites a record's message and arguments before any handler formats it (uvicorn's
    access formatter reads the request path from ``record.args``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_log(logger_name: str = "uvicorn.access") -> None:
    """Install the filter on the access logger, once per process."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactSecretPaths) for f in logger.filters):
        logger.addFilter(RedactSecretPaths())
