"""Authentication and roles of the gateway (issue #3): API keys with roles from a keys file
that is re-read when it changes, signed and expiring user tokens, 401 / 403 answers, one
user never reading another's data, and the records list (R16) on SQLite and PostgreSQL.
Everything here fails or succeeds before Temporal is asked, so no worker runs."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from gateway.auth import hash_key
from sentinel import user_tokens
from sentinel.settings import Settings
from sentinel.user_tokens import TokenError, make_user_token, verify_user_token
from store.repo import record_withdrawal
from tests.support.gateway_harness import bearer, offline_gateway
from tests.support.workflow_harness import make_request

SECRET = "test-user-token-secret"


@pytest.fixture()
async def gw(tmp_path):
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'app.db'}")
    async with offline_gateway(settings) as g:
        yield g


# --------------------------------------------------------------------------- user tokens


def test_user_token_round_trip_and_expiry():
    now = 1_800_000_000
    token = make_user_token("u-42.x:y", SECRET, now, 600)
    assert token.startswith("ut2.") and token.split(".")[2:4] == [str(now), str(now + 600)]
    assert verify_user_token(token, SECRET, now + 599) == "u-42.x:y"
    with pytest.raises(TokenError, match="expired"):
        verify_user_token(token, SECRET, now + 600)


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "signature"),  # tampered signature
        (
            lambda t: ".".join([*t.split(".")[:3], str(int(t.split(".")[3]) + 3600), t.split(".")[4]]),
            "signature",
        ),
        (
            lambda t: ".".join([*t.split(".")[:2], str(int(t.split(".")[2]) + 3600), *t.split(".")[3:]]),
            "signature",
        ),
        (
            lambda t: ".".join(
                [t.split(".")[0], make_user_token("u-other", SECRET, 1, 9).split(".")[1], *t.split(".")[2:]]
            ),
            "signature",
        ),  # someone else's user id
        (lambda t: t.replace("ut2.", "ut3.", 1), "malformed"),
        (lambda t: t + ".x", "malformed"),
        (lambda t: "ut2.!!!.1.2.x", "malformed"),
        (lambda t: "ut2.." + ".".join(t.split(".")[2:]), "malformed"),
        (lambda t: "ut2." + ".".join(t.split(".")[1:2] + ["-1"] + t.split(".")[3:]), "malformed"),
        (lambda t: "ut1." + ".".join(t.split(".")[1:2] + t.split(".")[3:]), "ut1 .*no longer accepted"),
    ],
)
def test_tampered_user_tokens_are_refused(mutate, reason):
    now = time.time()
    token = make_user_token("u-42", SECRET, now, 600)
    with pytest.raises(TokenError, match=reason):
        verify_user_token(mutate(token), SECRET, now)


def test_user_token_lifetime_is_capped_when_made_and_when_checked():  # R22, issue #11
    """A token may not live longer than SENTINEL_USER_TOKEN_MAX_TTL_S (30 days): minting a
    longer one is refused, and a token signed with a longer lifetime (a login service
    misconfigured, or one that signs past the cap) is refused even while fresh."""
    now = 1_800_000_000
    month = 30 * 86400
    assert Settings.model_fields["user_token_max_ttl_s"].default == user_tokens.MAX_TTL_S == month
    assert verify_user_token(make_user_token("u-42", SECRET, now, month), SECRET, now + month - 1) == "u-42"
    with pytest.raises(ValueError, match="longer than the cap"):
        make_user_token("u-42", SECRET, now, month + 1)
    with pytest.raises(ValueError, match="longer than the cap"):
        make_user_token("u-42", SECRET, now, 7200, max_ttl=3600)

    year = make_user_token("u-42", SECRET, now, 365 * 86400, max_ttl=365 * 86400)  # signed past the cap
    with pytest.raises(TokenError, match="over the cap"):
        verify_user_token(year, SECRET, now)
    with pytest.raises(TokenError, match="over the cap"):
        verify_user_token(year, SECRET, now + 364 * 86400)  # also near its end
    with pytest.raises(TokenError, match="over the cap"):  # a smaller cap configured at the gateway
        verify_user_token(make_user_token("u-42", SECRET, now, 7200), SECRET, now, max_ttl=3600)

    # issued in the future (beyond clock skew): its lifetime would not start counting now
    ahead = make_user_token("u-42", SECRET, now + 3600, 600)
    with pytest.raises(TokenError, match="issued in the future"):
        verify_user_token(ahead, SECRET, now)
    assert verify_user_token(make_user_token("u-42", SECRET, now + 60, 600), SECRET, now) == "u-42"


async def test_the_gateway_refuses_a_token_over_its_configured_cap(tmp_path):  # R22, issue #11
    settings = Settings(
        _env_file=None, database_url=f"sqlite:///{tmp_path / 'app.db'}", user_token_max_ttl_s=3600
    )
    async with offline_gateway(settings) as gw:
        now = gw.clock()
        ok = bearer(make_user_token("u-1", settings.user_token_secret, now, 3600))
        assert (await gw.http.get("/v1/users/u-1/inbox", headers=ok)).status_code == 200
        long = bearer(make_user_token("u-1", settings.user_token_secret, now, 7200))
        resp = await gw.http.get("/v1/users/u-1/inbox", headers=long)
        assert resp.status_code == 401 and "over the cap" in resp.json()["detail"]


def test_user_token_from_another_secret_is_refused():
    now = time.time()
    with pytest.raises(TokenError, match="signature"):
        verify_user_token(make_user_token("u-42", "another-secret", now, 600), SECRET, now)
    with pytest.raises(ValueError):
        make_user_token("bad id!", SECRET, now, 600)
    with pytest.raises(ValueError):
        make_user_token("u-42", "", now, 600)


# --------------------------------------------------------------------------- 401

ENDPOINTS = [
    ("POST", "/v1/withdrawals"),
    ("GET", "/v1/withdrawals/W1"),
    ("GET", "/v1/users/u-1/withdrawals"),
    ("POST", "/v1/withdrawals/W1/documents"),
    ("POST", "/v1/withdrawals/W1/notices/ack"),
    ("GET", "/v1/users/u-1/inbox"),
    ("POST", "/v1/users/u-1/inbox/1/read"),
    ("GET", "/v1/reviews"),
    ("GET", "/v1/reviews/W1"),
    ("POST", "/v1/reviews/W1/assign"),
    ("POST", "/v1/reviews/W1/decision"),
    ("GET", "/v1/ops/parked-callbacks"),
    ("POST", "/v1/ops/parked-callbacks/1/redeliver"),
    ("GET", "/v1/ops/unmapped-codes"),
    ("GET", "/v1/ops/analysis"),
]


async def test_every_endpoint_needs_credentials(gw):
    for method, path in ENDPOINTS:
        for headers in ({}, {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer"}):
            resp = await gw.http.request(method, path, headers=headers, json={})
            assert resp.status_code == 401, (method, path, headers, resp.text)
            assert resp.json() == {"error": "authentication required", "detail": resp.json()["detail"]}
            assert resp.headers["www-authenticate"] == "Bearer"


async def test_unknown_key_and_bad_user_tokens_are_401(gw):
    resp = await gw.http.get("/v1/reviews", headers=bearer("not-a-key"))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid API key"
    now = time.time()
    expired = gw.user("u-1", now=now - 7200, ttl=3600)
    resp = await gw.http.get("/v1/users/u-1/inbox", headers=expired)
    assert resp.status_code == 401 and resp.json() == {
        "error": "invalid user token",
        "detail": "user token expired",
    }
    token = gw.user("u-1")["Authorization"]
    tampered = {"Authorization": token[:-1] + ("A" if token[-1] != "A" else "B")}
    resp = await gw.http.get("/v1/users/u-1/inbox", headers=tampered)
    assert resp.status_code == 401 and "signature" in resp.json()["detail"]
    forged = bearer(make_user_token("u-1", "guessed-secret", now, 600))
    assert (await gw.http.get("/v1/users/u-1/inbox", headers=forged)).status_code == 401
    # the gateway's clock decides expiry
    fresh = gw.user("u-1", ttl=60)
    assert (await gw.http.get("/v1/users/u-1/inbox", headers=fresh)).status_code == 200
    gw.clock.offset = 61
    assert (await gw.http.get("/v1/users/u-1/inbox", headers=fresh)).status_code == 401


# --------------------------------------------------------------------------- 403

FORBIDDEN = [
    ("alice", "POST", "/v1/withdrawals"),
    ("ops", "POST", "/v1/withdrawals"),
    ("user", "POST", "/v1/withdrawals"),
    ("payment-service", "GET", "/v1/reviews"),
    ("user", "GET", "/v1/reviews"),
    ("payment-service", "GET", "/v1/reviews/W1"),
    ("payment-service", "POST", "/v1/reviews/W1/assign"),
    ("user", "POST", "/v1/reviews/W1/decision"),
    ("payment-service", "POST", "/v1/reviews/W1/decision"),
    ("alice", "GET", "/v1/ops/parked-callbacks"),
    ("payment-service", "POST", "/v1/ops/parked-callbacks/1/redeliver"),
    ("user", "GET", "/v1/ops/unmapped-codes"),
    ("alice", "GET", "/v1/ops/analysis"),
    ("payment-service", "GET", "/v1/ops/analysis"),
    ("alice", "GET", "/v1/users/u-1/withdrawals"),
    ("alice", "GET", "/v1/users/u-1/inbox"),
    ("payment-service", "GET", "/v1/users/u-1/inbox"),
    ("ops", "POST", "/v1/users/u-1/inbox/1/read"),
    ("carol", "POST", "/v1/users/u-1/inbox/1/read"),
    ("carol", "POST", "/v1/withdrawals/W1/documents"),
    ("payment-service", "POST", "/v1/withdrawals/W1/notices/ack"),
]


async def test_wrong_role_is_403(gw):
    for who, method, path in FORBIDDEN:
        headers = gw.user("u-1") if who == "user" else gw.key(who)
        resp = await gw.http.request(method, path, headers=headers, json={})
        assert resp.status_code == 403, (who, method, path, resp.text)
        assert resp.json()["error"] == "forbidden" and resp.json()["detail"]


async def test_a_user_token_never_reads_another_users_data(gw):
    mine = gw.user("u-1")
    for method, path in [
        ("GET", "/v1/users/u-2/withdrawals"),
        ("GET", "/v1/users/u-2/inbox"),
        ("POST", "/v1/users/u-2/inbox/1/read"),
    ]:
        resp = await gw.http.request(method, path, headers=mine)
        assert resp.status_code == 403, (path, resp.text)
        assert "own user" in resp.json()["detail"]
    assert (await gw.http.get("/v1/users/u-1/withdrawals", headers=mine)).status_code == 200


# --------------------------------------------------------------------------- keys file


def write_keys(path, entries: dict[str, tuple[str, str]]) -> None:
    doc = {
        "keys": [
            {"sha256": hash_key(key), "role": role, "name": name} for key, (role, name) in entries.items()
        ]
    }
    path.write_text(yaml.safe_dump(doc))


def bump_mtime(path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


async def test_keys_file_is_reread_when_it_changes(tmp_path):
    keys = tmp_path / "keys.yaml"
    write_keys(keys, {"k-one": ("operator", "olga")})
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'app.db'}", api_keys_file=keys)
    async with offline_gateway(settings) as gw:
        assert (await gw.http.get("/v1/ops/unmapped-codes", headers=bearer("k-one"))).status_code == 200
        assert (await gw.http.get("/v1/ops/unmapped-codes", headers=bearer("k-two"))).status_code == 401
        assert (
            await gw.http.get("/v1/ops/unmapped-codes", headers=gw.key("ops"))
        ).status_code == 401  # dev key

        write_keys(keys, {"k-two": ("operator", "otto"), "k-three": ("reviewer", "rita")})
        bump_mtime(keys)
        assert (
            await gw.http.get("/v1/ops/unmapped-codes", headers=bearer("k-one"))
        ).status_code == 401  # revoked
        assert (await gw.http.get("/v1/ops/unmapped-codes", headers=bearer("k-two"))).status_code == 200
        assert (await gw.http.get("/v1/ops/unmapped-codes", headers=bearer("k-three"))).status_code == 403

        keys.write_text("keys:\n- {sha256: nothex, role: operator, name: x}\n")  # a broken edit
        bump_mtime(keys)
        assert (await gw.http.get("/v1/ops/unmapped-codes", headers=bearer("k-two"))).status_code == 200


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"sha256": "ab", "role": "operator", "name": "x"}, "sha256"),
        ({"sha256": hashlib.sha256(b"k").hexdigest(), "role": "admin", "name": "x"}, "role"),
        ({"sha256": hashlib.sha256(b"k").hexdigest(), "role": "operator", "name": "bad name"}, "name"),
    ],
)
def test_an_invalid_keys_file_is_refused_at_start(tmp_path, entry, message):
    from gateway.auth import KeyStore

    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [entry]}))
    with pytest.raises(ValueError, match=message):
        KeyStore(keys)


def test_the_dev_keys_file_has_every_role():
    from gateway.auth import ROLES, KeyStore

    store = KeyStore(Settings(_env_file=None).api_keys_file)
    assert {role: store.names([role]) for role in ROLES} == {
        "payment-service": {"payment-service"},
        "reviewer": {"alice", "bob"},
        "supervisor": {"carol"},
        "operator": {"ops"},
    }


# --------------------------------------------------------------------------- bad input, OpenAPI


async def test_bad_paths_and_queries_are_422_naming_the_field(gw):
    cases = [
        ("GET", "/v1/withdrawals/bad%20id", "ops", "withdrawal_id"),
        ("GET", "/v1/users/u-1/withdrawals?limit=0", "ops", "limit"),
        ("GET", "/v1/users/u-1/withdrawals?offset=-1", "ops", "offset"),
        ("GET", "/v1/users/u-1/inbox?limit=abc", "ops", "limit"),
        ("GET", "/v1/reviews?min_amount=lots", "alice", "min_amount"),
        ("GET", "/v1/reviews?category=NOPE", "alice", "category"),
        ("GET", "/v1/reviews?status=FAILED", "alice", "status"),
        ("GET", "/v1/ops/parked-callbacks?state=weird", "ops", "state"),
        ("POST", "/v1/ops/parked-callbacks/abc/redeliver", "ops", "parked_id"),
        # out of range for the database or the clock: refused, never a 500
        ("POST", "/v1/ops/parked-callbacks/99999999999999999999/redeliver", "ops", "parked_id"),
        ("POST", "/v1/users/u-1/inbox/99999999999/read", "user", "message_id"),
        ("GET", "/v1/users/u-1/inbox?offset=99999999999999999999", "user", "offset"),
        ("GET", "/v1/reviews?offset=99999999999999999999", "alice", "offset"),
        ("GET", "/v1/reviews?min_age_s=1e30", "alice", "min_age_s"),
        ("GET", "/v1/reviews?min_age_s=inf", "alice", "min_age_s"),
        ("GET", "/v1/reviews?min_amount=NaN", "alice", "min_amount"),
        ("GET", "/v1/ops/unmapped-codes?limit=100000", "ops", "limit"),
    ]
    for method, path, who, field in cases:
        resp = await gw.http.request(method, path, headers=gw.user("u-1") if who == "user" else gw.key(who))
        assert resp.status_code == 422, (path, resp.text)
        body = resp.json()
        assert body["error"] == "invalid request"
        assert field in [e["field"] for e in body["detail"]], (path, body)


async def test_openapi_documents_every_endpoint_and_the_bearer_scheme(gw):
    spec = (await gw.http.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    paths = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    for method, path in ENDPOINTS:
        template = (
            path.replace("W1", "{withdrawal_id}")
            .replace("u-1", "{user_id}")
            .replace("inbox/1/", "inbox/{message_id}/")
            .replace("parked-callbacks/1/", "parked-callbacks/{parked_id}/")
        )
        assert (method, template) in paths, template
    assert ("POST", "/v1/callbacks/{channel}") in paths and ("POST", "/v1/receipts/twilio") in paths
    assert (await gw.http.get("/docs")).status_code == 200


# --------------------------------------------------------------------------- records list (R16)


async def test_records_list_pages_with_the_total(tmp_path, database_url, unique_id):
    settings = Settings(_env_file=None, database_url=database_url)
    async with offline_gateway(settings) as gw:
        user = f"u-{unique_id}"
        base = datetime(2026, 11, 1, tzinfo=UTC)
        for n in range(5):
            req = make_request(f"{unique_id}-{n}", user_id=user, created_at=base + timedelta(hours=n))
            record_withdrawal(gw.engine, req, "PROCESSING")
        record_withdrawal(gw.engine, make_request(f"{unique_id}-x", user_id=f"v-{unique_id}"), "SUCCEEDED")

        page = (
            await gw.http.get(f"/v1/users/{user}/withdrawals?limit=2&offset=1", headers=gw.user(user))
        ).json()
        assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
        assert [r["withdrawal_id"] for r in page["items"]] == [
            f"{unique_id}-3",
            f"{unique_id}-2",
        ]  # newest first
        item = page["items"][0]
        assert (
            item["card_last4"] == "1234" and item["amount"] == "1250.0000" and item["status"] == "PROCESSING"
        )
        assert "payee_fingerprint" not in item and "payee_ref" not in item
        for staff in ("ops", "carol", "payment-service"):
            resp = await gw.http.get(f"/v1/users/{user}/withdrawals", headers=gw.key(staff))
            assert resp.status_code == 200 and resp.json()["total"] == 5
        empty = (await gw.http.get(f"/v1/users/nobody-{unique_id}/withdrawals", headers=gw.key("ops"))).json()
        assert empty == {"total": 0, "limit": 20, "offset": 0, "items": []}


async def test_without_a_user_token_secret_user_tokens_are_refused(tmp_path):
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'app.db'}", user_token_secret="")
    async with offline_gateway(settings) as gw:
        token = bearer(make_user_token("u-1", "anything", time.time(), 600))
        resp = await gw.http.get("/v1/users/u-1/inbox", headers=token)
        assert resp.status_code == 401 and resp.json()["detail"] == "user tokens are not enabled"
