"""Encrypted workflow history: every payload the product hands to Temporal (workflow input
with the user's contact, activity arguments and results, signals, queries, updates,
failure messages) is sealed with AES-256-GCM before it leaves the process, so the Temporal
server, its database and its backups hold no personal data in clear.

A sealed payload is ``metadata = {"encoding": "binary/encrypted", "encryption-key-id": <id>}``
and ``data = nonce (12 bytes) || ciphertext || tag`` of the original payload's protobuf bytes.
The keys come from ``SENTINEL_PAYLOAD_KEYS`` (``id:base64key,...``, newest first): the newest
key encrypts, every listed key decrypts, so a key is rotated by putting a new one in front
and dropping the old one only after every history sealed with it is past retention.
Payloads without the encrypted encoding (histories recorded before the codec) pass through
decoding unchanged.

Client, worker, replayer and the gateway's codec server (``/codec/decode``) all use
:func:`converter_for`, so they seal and open alike. Search attributes are not payloads of
this codec: they stay plain and must never carry personal data.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Sequence
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from sentinel.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32  # AES-256
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class PayloadKeyError(ValueError):
    """``SENTINEL_PAYLOAD_KEYS`` is malformed (the message says where)."""


class PayloadDecryptError(ValueError):
    """An encrypted payload cannot be opened: unknown key id, or it fails authentication."""


class Keyring:
    """The payload keys, newest first; one AES-GCM object per key, built once."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]):
        if not keys:
            raise PayloadKeyError("SENTINEL_PAYLOAD_KEYS lists no key")
        self._keys: dict[str, AESGCM] = {}
        for key_id, key in keys:
            if not _KEY_ID.match(key_id):
                raise PayloadKeyError(f"payload key id {key_id!r} must be 1-64 of A-Z a-z 0-9 . _ -")
            if key_id in self._keys:
                raise PayloadKeyError(f"payload key id {key_id!r} is listed twice")
            if len(key) != KEY_BYTES:
                raise PayloadKeyError(
                    f"payload key {key_id!r} must be {KEY_BYTES} bytes (AES-256), got {len(key)}"
                )
            self._keys[key_id] = AESGCM(key)
        self.current_id = keys[0][0]
        self._current = self._keys[self.current_id]

    @classmethod
    def parse(cls, text: str | SecretStr) -> Keyring:
        """``id:base64key,id:base64key,...``, newest first."""
        if isinstance(text, SecretStr):
            text = text.get_secret_value()
        keys = []
        for i, item in enumerate(p.strip() for p in text.split(",")):
            key_id, sep, b64 = item.partition(":")
            if not sep:
                raise PayloadKeyError(f"SENTINEL_PAYLOAD_KEYS item {i + 1} must be id:base64key")
            try:
                key = base64.b64decode(b64.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise PayloadKeyError(f"payload key {key_id.strip()!r} is not valid base64") from None
            keys.append((key_id.strip(), key))
        return cls(keys)

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._current.encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: self.current_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # recorded before the codec, or never sealed: as it is
        raw_id = payload.metadata.get(KEY_ID)
        if raw_id is None:
            raise PayloadDecryptError(f"encrypted payload has no {KEY_ID} in its metadata")
        key_id = raw_id.decode("utf-8", "replace")
        aead = self._keys.get(key_id)
        if aead is None:
            raise PayloadDecryptError(
                f"payload encrypted with key id {key_id!r}, which is not in SENTINEL_PAYLOAD_KEYS "
                f"(known: {', '.join(self._keys)})"
            )
        data = payload.data
        try:
            plain = aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None)
        except InvalidTag:
            raise PayloadDecryptError(
                f"payload under key id {key_id!r} fails authentication: it was altered or sealed with another key"
            ) from None
        out = Payload()
        try:
            out.ParseFromString(plain)
        except DecodeError:
            raise PayloadDecryptError(
                f"payload under key id {key_id!r} opens to something that is not a payload"
            ) from None
        return out


class EncryptionCodec(PayloadCodec):
    """The Temporal payload codec over a :class:`Keyring`."""

    def __init__(self, keyring: Keyring):
        self.keyring = keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.keyring.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.keyring.decrypt(p) for p in payloads]


@lru_cache(maxsize=4)
def _codec(keys: str) -> EncryptionCodec:
    return EncryptionCodec(Keyring.parse(keys))


@lru_cache(maxsize=4)
def _converter(keys: str) -> DataConverter:
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=_codec(keys),
        # failure messages and stack traces go into an encoded (so encrypted) attribute:
        # an activity's error text can quote a recipient's address
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def codec_for(settings: Settings) -> EncryptionCodec:
    """The codec over the settings' payload keys (``SENTINEL_PAYLOAD_KEYS``). Raises
    :class:`PayloadKeyError` on malformed keys."""
    return _codec(settings.payload_keys.get_secret_value())


def converter_for(settings: Settings) -> DataConverter:
    """The data converter of every Temporal client, worker and replayer of the product:
    pydantic models, payloads encrypted by :func:`codec_for`."""
    return _converter(settings.payload_keys.get_secret_value())
