"""Secrets never reach the access log (issue #11).

Aliyun and Tencent cannot sign their SMS receipts nor send a header of our choosing, so the
receipt URL configured at the provider carries the secret ``SENTINEL_RECEIPTS_TOKEN`` as a
path segment (``/v1/receipts/aliyun/<token>``, gateway/routes_receipts.py). A query
parameter would be no better: the request line, path and query, is what access logs keep.
So the secret stays in the path and the gateway's access log (uvicorn's ``uvicorn.access``
logger) writes ``/v1/receipts/aliyun/<redacted>`` instead. A reverse proxy in front of the
gateway keeps its own access log: configure it to drop or mask these paths too
(docs/deployment.md).
"""

from __future__ import annotations

import logging
import re

REDACTED = "<redacted>"

#: everything after the provider segment of a token-carrying receipt path, up to the query
_SECRET_PATH = re.compile(r"(/v1/receipts/(?:aliyun|tencent)/)[^?#\s\"]+")


def redact(text: str) -> str:
    return _SECRET_PATH.sub(r"\g<1>" + REDACTED, text)


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
