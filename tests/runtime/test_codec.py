"""The payload codec (runtime/codec.py): AES-GCM sealing of every Temporal payload, key
rotation through a keyring, clear errors for unknown keys and altered payloads, plain
payloads (histories recorded before the codec) passed through (R22)."""

from __future__ import annotations

import base64
import os

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from runtime.codec import (
    ENCODING,
    KEY_ID,
    EncryptionCodec,
    Keyring,
    PayloadDecryptError,
    PayloadKeyError,
    converter_for,
)
from sentinel.models import Contact
from sentinel.settings import DEV_PAYLOAD_KEYS, Settings
from tests.support.workflow_harness import make_request

EMAIL = "codec-user@example.com"
PHONE = "+8613800138000"


def key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def plain(text: str = '{"email": "codec-user@example.com"}') -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


async def test_round_trip_seals_the_payload_and_opens_it_unchanged():
    codec = EncryptionCodec(Keyring.parse(key("k1")))
    original = plain()
    [sealed] = await codec.encode([original])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"k1"
    assert b"codec-user" not in sealed.SerializeToString()
    assert len(sealed.metadata) == 2  # json/plain is inside the ciphertext, not beside it
    [opened] = await codec.decode([sealed])
    assert opened == original


async def test_the_same_payload_seals_differently_each_time():
    codec = EncryptionCodec(Keyring.parse(key("k1")))
    a, b = await codec.encode([plain(), plain()])
    assert a.data != b.data  # a fresh nonce per payload


async def test_rotation_newest_key_encrypts_and_old_keys_still_decrypt():
    k1, k2 = key("k1"), key("k2")
    before = EncryptionCodec(Keyring.parse(k1))
    after = EncryptionCodec(Keyring.parse(f"{k2},{k1}"))  # newest first
    [old] = await before.encode([plain("old")])
    [new] = await after.encode([plain("new")])
    assert old.metadata[KEY_ID] == b"k1" and new.metadata[KEY_ID] == b"k2"
    assert [p.data for p in await after.decode([old, new])] == [b"old", b"new"]
    # the old keyring does not know k2: a worker that missed the rotation says so
    with pytest.raises(PayloadDecryptError, match="key id 'k2'.*not in SENTINEL_PAYLOAD_KEYS.*known: k1"):
        await before.decode([new])


async def test_unknown_key_id_is_a_clear_error():
    [sealed] = await EncryptionCodec(Keyring.parse(key("retired"))).encode([plain()])
    codec = EncryptionCodec(Keyring.parse(f"{key('k3')},{key('k2')}"))
    with pytest.raises(PayloadDecryptError, match=r"key id 'retired'.*known: k3, k2"):
        await codec.decode([sealed])


async def test_encrypted_payload_without_key_id_is_refused():
    codec = EncryptionCodec(Keyring.parse(key("k1")))
    [sealed] = await codec.encode([plain()])
    del sealed.metadata[KEY_ID]
    with pytest.raises(PayloadDecryptError, match="no encryption-key-id"):
        await codec.decode([sealed])


@pytest.mark.parametrize("where", [12, -1, 0])  # a ciphertext byte, the tag, the nonce
async def test_tampered_ciphertext_fails_authentication(where: int):
    codec = EncryptionCodec(Keyring.parse(key("k1")))
    [sealed] = await codec.encode([plain()])
    data = bytearray(sealed.data)
    data[where] ^= 0x01
    sealed.data = bytes(data)
    with pytest.raises(PayloadDecryptError, match="fails authentication"):
        await codec.decode([sealed])


async def test_payload_relabelled_with_another_known_key_fails_authentication():
    codec = EncryptionCodec(Keyring.parse(f"{key('k2')},{key('k1')}"))
    [sealed] = await codec.encode([plain()])
    sealed.metadata[KEY_ID] = b"k1"
    with pytest.raises(PayloadDecryptError, match="'k1' fails authentication"):
        await codec.decode([sealed])


async def test_plain_payloads_pass_through_decode_unchanged():
    # histories recorded before the codec (tests/workflows/histories) keep decoding
    codec = EncryptionCodec(Keyring.parse(key("k1")))
    originals = [plain(), Payload(metadata={"encoding": b"binary/null"}), Payload()]
    assert await codec.decode(originals) == originals


@pytest.mark.parametrize(
    ("keys", "reason"),
    [
        ("", "must be id:base64key"),
        ("k1", "must be id:base64key"),
        ("k1:not base64!", "'k1' is not valid base64"),
        (f"k1:{base64.b64encode(os.urandom(16)).decode()}", "'k1' must be 32 bytes"),
        (f"{key('k1')},{key('k1')}", "'k1' is listed twice"),
        (f"bad id:{base64.b64encode(os.urandom(32)).decode()}", "key id 'bad id'"),
    ],
)
def test_malformed_keys_are_refused_with_the_reason(keys: str, reason: str):
    with pytest.raises(PayloadKeyError, match=reason):
        Keyring.parse(keys)


def test_the_development_key_is_marked_as_such():
    keyring = Keyring.parse(DEV_PAYLOAD_KEYS)
    assert keyring.ids == ["dev"]
    assert Settings.model_fields["payload_keys"].default.get_secret_value() == DEV_PAYLOAD_KEYS


async def test_product_converter_seals_the_withdrawal_and_its_contact():
    # R22: the request with the contact, as the client sends it to Temporal
    converter = converter_for(Settings(_env_file=None, payload_keys=key("k1")))
    req = make_request("W-codec-1", amount="4321.09", contact=Contact(email=EMAIL, phone=PHONE))
    [payload] = await converter.encode([req])
    raw = payload.SerializeToString()
    for secret in (EMAIL.encode(), PHONE.encode(), b"4321.09"):
        assert secret not in raw
    [back] = await converter.decode([payload], [type(req)])
    assert back == req


async def test_product_converter_seals_failure_messages():
    # an activity's error text can quote a recipient's address: it is encrypted too
    converter = converter_for(Settings(_env_file=None, payload_keys=key("k1")))
    failure = Failure()
    await converter.encode_failure(
        ApplicationError(f"550 mailbox {EMAIL} unavailable", type="SmtpRefused"), failure
    )
    assert EMAIL.encode() not in failure.SerializeToString()
    assert failure.application_failure_info.type == "SmtpRefused"  # the type stays readable
    err = await converter.decode_failure(failure)
    assert EMAIL in str(err)
