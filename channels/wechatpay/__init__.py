"""The WeChat Pay (商家转账) channel adapter, split as Hyperswitch splits a connector:
``client`` (HTTP, WECHATPAY2 signatures, encryption, the adapter) and ``transformers`` (the
wire fields and codes, their mapping to our model, the configuration)."""

from channels.wechatpay.client import (
    WeChatPayChannel,
    decrypt_resource,
    encrypt_sensitive,
    load_private_key,
    load_public_key,
    request_message,
    response_message,
    sign_message,
    verify_message,
)
from channels.wechatpay.transformers import (
    AUTH_SCHEMA,
    MERCHANT_FIELDS,
    NOTIFY_EVENT,
    QUERY_PATH,
    REQUEST_ERROR_CODES,
    TRANSFER_PATH,
    UNKNOWN_CODES,
    PayeeResolver,
    WeChatPayConfig,
    WeChatPayee,
    fen,
    from_out_bill_no,
    to_out_bill_no,
)

__all__ = [
    "AUTH_SCHEMA",
    "MERCHANT_FIELDS",
    "NOTIFY_EVENT",
    "PayeeResolver",
    "QUERY_PATH",
    "REQUEST_ERROR_CODES",
    "TRANSFER_PATH",
    "UNKNOWN_CODES",
    "WeChatPayChannel",
    "WeChatPayConfig",
    "WeChatPayee",
    "decrypt_resource",
    "encrypt_sensitive",
    "fen",
    "from_out_bill_no",
    "load_private_key",
    "load_public_key",
    "request_message",
    "response_message",
    "sign_message",
    "to_out_bill_no",
    "verify_message",
]
