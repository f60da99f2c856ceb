"""Issue #11, item 4: no card number anywhere (R22). Every id and free-text field of the
domain models and of the gateway's requests refuses a card number (sentinel/pan.py, tested
in tests/sentinel/test_pan.py) with 422 naming the field, never echoing the value; a callback whose
order id is a card number is 400; the access log masks what it cannot refuse. The sweep
over a whole run is tests/sentinel/test_no_card_sweep.py."""

from __future__ import annotations

import json
import logging
import time

import pytest
from pydantic import ValidationError

from gateway.access_log import RedactSecretPaths
from sentinel.contracts import DocumentsUpload, NoticeAck
from sentinel.models import Contact, ReviewDecision
from sentinel.signing import SIGNATURE_HEADER, sign
from tests.support.gateway_harness import Gateway, event, offline_gateway
from tests.support.workflow_harness import make_request, make_settings

# --- the models --------------------------------------------------------------------------

CARD = "4111 1111 1111 1111"
CARD_FORMS = [
    "4111111111111111",
    "4111.1111.1111.1111",
    "4111_1111_1111_1111",
    "4111-1111-1111-1111",
    "4111:1111:1111:1111",
]


def refused_fields(build) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        build()
    assert "1111" not in str(caught.value).replace("4111", "")  # the value never echoes into logs
    return [".".join(str(p) for p in err["loc"]) for err in caught.value.errors()]


@pytest.mark.parametrize("form", CARD_FORMS)
@pytest.mark.parametrize("field", ["withdrawal_id", "user_id", "payee_ref"])
def test_withdrawal_request_ids_refuse_a_card(field, form):
    assert refused_fields(lambda: make_request("W1", **{field: form})) == [field]


@pytest.mark.parametrize(
    "field, value",
    [
        ("payee_ref", "tok/4111/1111/1111/1111"),
        ("bank_code", "4111111111111111"),
        ("channel", "b_4111111111111111"),
    ],
)
def test_other_withdrawal_request_fields_refuse_a_card(field, value):
    assert refused_fields(lambda: make_request("W1", **{field: value})) == [field]


@pytest.mark.parametrize(
    "field, value", [("email", "4111.1111.1111.1111@example.com"), ("timezone", "Asia/4111111111111111")]
)
def test_contact_refuses_a_card(field, value):
    assert refused_fields(lambda: Contact(**{field: value})) == [field]


def test_decisions_uploads_and_acks_refuse_a_card():
    assert refused_fields(
        lambda: ReviewDecision(decision="reject", reviewer="alice", reason=f"card {CARD} is stolen")
    ) == ["reason"]
    assert refused_fields(
        lambda: ReviewDecision(decision="reject", reviewer="4111111111111111", reason="x")
    ) == ["reviewer"]
    assert refused_fields(lambda: DocumentsUpload(documents=["id_photo"], reference=f"scan-{CARD}")) == [
        "reference"
    ]
    assert refused_fields(lambda: NoticeAck(key=f"{CARD}/DETECTED/1", channel="inbox")) == ["key"]


# --- the gateway: 422 naming the field --------------------------------------------------


@pytest.fixture()
async def gw(tmp_path):
    async with offline_gateway(make_settings(tmp_path, 9)) as gateway:
        yield gateway


def start_body(**change) -> dict:
    body = make_request("W-CARD-1").model_dump(mode="json")
    for key, value in change.items():
        if key.startswith("contact."):
            body["contact"][key.split(".", 1)[1]] = value
        else:
            body[key] = value
    return body


START_CASES = [
    ("withdrawal_id", "4111111111111111"),
    ("withdrawal_id", "4111.1111.1111.1111"),
    ("user_id", "4111_1111_1111_1111"),
    ("payee_ref", "vault:4111.1111.1111.1111"),
    ("payee_ref", "tok_4111_1111_1111_1111"),
    ("payee_ref", "ref/4111/1111/1111/1111"),
    ("contact.email", "4111-1111-1111-1111@example.com"),
    ("contact.timezone", "4111111111111111"),
    ("bank_code", "4111111111111111"),
]


@pytest.mark.parametrize("field, value", START_CASES)
async def test_start_refuses_a_card_in_any_field_naming_it(gw: Gateway, field, value):
    resp = await gw.http.post(
        "/v1/withdrawals", json=start_body(**{field: value}), headers=gw.key("payment-service")
    )
    assert resp.status_code == 422, resp.text
    assert [p["field"] for p in resp.json()["detail"]] == [field]
    assert "card number" in resp.json()["detail"][0]["msg"]
    assert "1111-1111" not in resp.text and "1111111111" not in resp.text


async def expect_422(resp, field: str) -> None:
    assert resp.status_code == 422, resp.text
    assert field in [p["field"] for p in resp.json()["detail"]], resp.json()


async def test_every_other_request_refuses_a_card_naming_the_field(gw: Gateway):
    card = "4111.1111.1111.1111"
    user = gw.user("u-42")
    http = gw.http
    await expect_422(await gw.decide("W1", "alice", "reject", reason=f"stolen card {CARD}"), "reason")
    await expect_422(
        await http.post(
            "/v1/withdrawals/W1/documents",
            headers=user,
            json={"documents": ["id_photo"], "reference": f"upload/{card}"},
        ),
        "reference",
    )
    await expect_422(
        await http.post("/v1/withdrawals/W1/notices/ack", headers=user, json={"key": card}), "key"
    )
    await expect_422(
        await http.post("/v1/reviews/W1/assign", headers=gw.key("carol"), json={"assignee": card}), "assignee"
    )
    await expect_422(
        await http.post(
            "/v1/users/u-42/devices", headers=user, json={"provider": "fcm", "token": f"fcm:{card}"}
        ),
        "token",
    )
    await expect_422(await http.delete(f"/v1/users/u-42/devices/fcm/{card}", headers=user), "token")
    await expect_422(await http.get(f"/v1/withdrawals/{card}", headers=gw.key("ops")), "withdrawal_id")
    await expect_422(await http.get(f"/v1/users/{card}/withdrawals", headers=gw.key("ops")), "user_id")
    await expect_422(await http.get(f"/v1/users/{card}/inbox", headers=gw.key("ops")), "user_id")
    await expect_422(
        await http.get("/v1/reviews", params={"assignee": card}, headers=gw.key("alice")), "assignee"
    )


async def test_a_callback_for_a_card_number_order_is_400_naming_the_field(gw: Gateway):
    """A card number is never one of our order numbers: refused, not parked (R11, R22)."""
    raw = json.dumps(event("4111-1111-1111-1111")).encode()
    resp = await gw.http.post(
        "/v1/callbacks/generic",
        content=raw,
        headers={SIGNATURE_HEADER: sign(gw.secret, raw, int(time.time()))},
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].startswith("order_id: ") and "card number" in resp.json()["error"]


# --- logs --------------------------------------------------------------------------------


async def test_the_access_log_masks_a_card_number_in_the_path(gw: Gateway):
    access = logging.getLogger("uvicorn.access")
    assert any(isinstance(f, RedactSecretPaths) for f in access.filters)  # create_app installed it
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/withdrawals/4111-1111-1111-1111", "1.1", 422),
        None,
    )
    assert RedactSecretPaths().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /v1/withdrawals/****-****-****-1111 HTTP/1.1" 422'
    assert record.args[4] == 422  # uvicorn's access formatter reads the arguments by position
