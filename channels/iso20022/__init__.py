"""The ISO 20022 channel adapter, split as Hyperswitch splits a connector: ``client`` (HTTP,
signatures, the adapter), ``transformers`` (the pacs.008 / pacs.002 / pacs.004 wire
messages and their mapping to our model, the configuration) and ``safe_xml`` (the parser)."""

from channels.iso20022.client import Iso20022Channel
from channels.iso20022.safe_xml import IsoMessageError, parse_xml
from channels.iso20022.transformers import (
    Iso20022Config,
    IsoMessage,
    IsoTransaction,
    build_pacs008,
    format_amount,
    parse_amount,
    parse_message,
    uetr_for,
)

__all__ = [
    "Iso20022Channel",
    "Iso20022Config",
    "IsoMessage",
    "IsoMessageError",
    "IsoTransaction",
    "build_pacs008",
    "format_amount",
    "parse_amount",
    "parse_message",
    "parse_xml",
    "uetr_for",
]
