"""The Alipay channel adapter, split as Hyperswitch splits a connector: ``client`` (HTTP, RSA2
signatures, the adapter) and ``transformers`` (the wire fields and codes, their mapping to
our model, the configuration)."""

from channels.alipay.client import (
    AlipayChannel,
    load_private_key,
    load_public_key,
    rsa2_sign,
    rsa2_verify,
    sign_content,
    top_level_spans,
)
from channels.alipay.transformers import (
    BEIJING,
    MAX_FIELD_BYTES,
    MAX_FORM_FIELDS,
    NOTIFY_METHOD,
    QUERY_METHOD,
    REQUEST_ERROR_CODES,
    TRANSFER_METHOD,
    AlipayConfig,
    AlipayPayee,
    PayeeResolver,
    yuan,
)

__all__ = [
    "AlipayChannel",
    "AlipayConfig",
    "AlipayPayee",
    "BEIJING",
    "MAX_FIELD_BYTES",
    "MAX_FORM_FIELDS",
    "NOTIFY_METHOD",
    "PayeeResolver",
    "QUERY_METHOD",
    "REQUEST_ERROR_CODES",
    "TRANSFER_METHOD",
    "load_private_key",
    "load_public_key",
    "rsa2_sign",
    "rsa2_verify",
    "sign_content",
    "top_level_spans",
    "yuan",
]
