"""The codec server of the gateway (/codec/decode, /codec/encode) for the Temporal UI and
CLI: operators and supervisors open encrypted history payloads, nobody else does (401
without a valid credential, 403 for other roles); the protocol's protobuf JSON, the
namespace header, CORS for the UI origin, and the audit row of each decode (R22, R34).
No Temporal server is needed: the payloads are sealed with the product's converter here."""

from __future__ import annotations

import base64
import os

import pytest
from google.protobuf import json_format
from sqlmodel import Session, select
from temporalio.api.common.v1 import Payload, Payloads

from runtime.codec import ENCODING, KEY_ID, EncryptionCodec, Keyring, converter_for
from sentinel.models import Contact
from sentinel.settings import Settings
from store.tables import AuditLog
from tests.support.gateway_harness import bearer, offline_gateway
from tests.support.workflow_harness import make_request

UI = "http://localhost:8233"


def new_key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


@pytest.fixture()
async def gw(tmp_path):
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'app.db'}",
        payload_keys=new_key("k1"),
        codec_cors_origins=[UI],
    )
    async with offline_gateway(settings) as g:
        yield g


def original_payloads(settings: Settings) -> list[Payload]:
    """A withdrawal request with its contact, as the client hands it to Temporal, unsealed."""
    req = make_request("W-codec-7", contact=Contact(email="ui-user@example.com", phone="+8613700000000"))
    return converter_for(settings).payload_converter.to_payloads([req, "second"])


async def sealed_payloads(settings: Settings) -> tuple[list[Payload], list[Payload]]:
    plain = original_payloads(settings)
    return plain, await converter_for(settings).payload_codec.encode(plain)


def body(payloads: list[Payload]) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def parse(text: str) -> list[Payload]:
    return list(json_format.Parse(text, Payloads()).payloads)


async def post(gw, path: str, payloads: list[Payload], who: str | None = "ops", **headers):
    if who is not None:
        headers.update(gw.key(who))
    return await gw.http.post(
        path, content=body(payloads), headers={"Content-Type": "application/json", **headers}
    )


@pytest.mark.parametrize("who", ["ops", "carol"])  # operator, supervisor
async def test_operator_decodes_history_payloads_to_the_original(gw, who):
    plain, sealed = await sealed_payloads(gw.settings)
    assert all(p.metadata["encoding"] == ENCODING for p in sealed)
    resp = await post(gw, "/codec/decode", sealed, who=who, **{"X-Namespace": "default"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert parse(resp.text) == plain
    assert "ui-user@example.com" in base64.b64decode(resp.json()["payloads"][0]["data"]).decode()


async def test_decode_is_audited(gw):
    _, sealed = await sealed_payloads(gw.settings)
    assert (await post(gw, "/codec/decode", sealed)).status_code == 200
    with Session(gw.engine) as session:
        [row] = session.exec(select(AuditLog).where(AuditLog.action == "codec:decode")).all()
    assert (row.actor, row.role, row.withdrawal_id) == ("ops", "operator", None)
    assert row.detail == "2 payloads, namespace default"


async def test_without_a_valid_credential_401(gw):
    _, sealed = await sealed_payloads(gw.settings)
    for path in ("/codec/decode", "/codec/encode"):
        missing = await post(gw, path, sealed, who=None)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        unknown = await post(gw, path, sealed, who=None, **bearer("not-a-key"))
        assert unknown.status_code == 401
        assert "ui-user" not in missing.text + unknown.text


@pytest.mark.parametrize("who", ["payment-service", "alice", "user"])
async def test_other_roles_403(gw, who):
    _, sealed = await sealed_payloads(gw.settings)
    headers = gw.user("u-42") if who == "user" else gw.key(who)
    for path in ("/codec/decode", "/codec/encode"):
        resp = await post(gw, path, sealed, who=None, **headers)
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"] == "forbidden" and "ui-user" not in resp.text


async def test_encode_seals_with_the_current_key(gw):
    plain = original_payloads(gw.settings)
    resp = await post(gw, "/codec/encode", plain)
    assert resp.status_code == 200, resp.text
    sealed = parse(resp.text)
    assert [p.metadata[KEY_ID] for p in sealed] == [b"k1", b"k1"]
    assert b"ui-user" not in Payloads(payloads=sealed).SerializeToString()
    assert await converter_for(gw.settings).payload_codec.decode(sealed) == plain


async def test_plain_payloads_come_back_unchanged(gw):
    plain = original_payloads(gw.settings)
    resp = await post(gw, "/codec/decode", plain)
    assert resp.status_code == 200 and parse(resp.text) == plain


async def test_payload_under_an_unknown_key_is_400_with_the_key_id(gw):
    plain = original_payloads(gw.settings)
    foreign = await EncryptionCodec(Keyring.parse(new_key("other"))).encode(plain[:1])
    resp = await post(gw, "/codec/decode", plain[1:] + foreign)
    assert resp.status_code == 400
    assert resp.json()["error"] == "cannot decode"
    assert "payloads[1]" in resp.json()["detail"] and "'other'" in resp.json()["detail"]


@pytest.mark.parametrize(
    "raw",
    [b"not json", b'{"payloads": [{"data": 12}]}', b'{"payloads": 5}', b'{"unexpected": []}'],
)
async def test_malformed_body_is_400_with_the_reason(gw, raw):
    resp = await gw.http.post(
        "/codec/decode", content=raw, headers={**gw.key("ops"), "Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid payloads" and resp.json()["detail"]
    # without a credential the body is not even looked at
    assert (await gw.http.post("/codec/decode", content=raw)).status_code == 401


async def test_another_namespace_is_refused(gw):
    _, sealed = await sealed_payloads(gw.settings)
    resp = await post(gw, "/codec/decode", sealed, **{"X-Namespace": "payments-other"})
    assert resp.status_code == 400
    assert resp.json()["error"] == "unknown namespace" and "'default'" in resp.json()["detail"]


async def test_cors_preflight_from_the_ui_origin_only_on_codec_paths(gw):
    preflight = {
        "Origin": UI,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    ok = await gw.http.options("/codec/decode", headers=preflight)
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == UI
    assert {"authorization", "x-namespace"} <= {
        h.strip().lower() for h in ok.headers["access-control-allow-headers"].split(",")
    }
    other = await gw.http.options("/codec/decode", headers={**preflight, "Origin": "https://evil.example"})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    # the actual request from the UI carries the allow-origin header too
    _, sealed = await sealed_payloads(gw.settings)
    resp = await post(gw, "/codec/decode", sealed, Origin=UI)
    assert resp.status_code == 200 and resp.headers["access-control-allow-origin"] == UI
    # the rest of the gateway is not opened to the UI's origin
    elsewhere = await gw.http.options("/v1/withdrawals", headers=preflight)
    assert "access-control-allow-origin" not in elsewhere.headers


async def test_ui_shaped_json_in_and_out(gw):
    # what the Temporal UI posts: base64 strings in metadata values and data; the answer has the same shape
    sample = {
        "payloads": [
            {
                "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(b'"x"').decode(),
            }
        ]
    }
    resp = await gw.http.post(
        "/codec/decode", json=sample, headers={**gw.key("ops"), "X-Namespace": "default"}
    )
    assert resp.status_code == 200 and resp.json() == sample
