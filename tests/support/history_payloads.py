"""The payloads of a workflow history in its JSON form (``WorkflowHistory.to_json()`` or
a recorded file), opened with the product's codec: what an operator with the keys sees."""

from __future__ import annotations

import json
from collections.abc import Iterator

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload

from runtime.codec import Keyring

_PAYLOAD_FIELDS = {"metadata", "data", "externalPayloads"}


def payloads(node) -> Iterator[Payload]:
    """Every payload in a history's JSON tree, as it is stored (sealed or plain)."""
    if isinstance(node, dict):
        if isinstance(node.get("data"), str) and set(node) <= _PAYLOAD_FIELDS:
            yield json_format.ParseDict(node, Payload(), ignore_unknown_fields=True)
            return
        for v in node.values():
            yield from payloads(v)
    elif isinstance(node, list):
        for v in node:
            yield from payloads(v)


def stored_texts(history_json: str) -> list[str]:
    """What the Temporal server keeps, readable: the history's JSON and each payload's
    bytes (the JSON holds those in base64)."""
    raw = [p.SerializeToString().decode("utf-8", "replace") for p in payloads(json.loads(history_json))]
    return [history_json, *raw]


def opened_texts(history_json: str, keyring: Keyring) -> list[str]:
    """The text of each payload after decryption (plain payloads as they are)."""
    return [keyring.decrypt(p).data.decode("utf-8", "replace") for p in payloads(json.loads(history_json))]
