"""Fuzzing the HTTP surface of the gateway (issue #6, item 3) with hypothesis.

The gateway app is built in-process with a fake Temporal client that records every call,
over a fresh SQLite database. Generated inputs for ``POST /v1/callbacks/{channel}``: raw
bytes, random JSON, near-valid callbacks with one field broken, random and valid signature
headers, random channel names and HTTP methods. Properties:

* never a 5xx (unhandled errors are turned into 500 responses and fail the test);
* every answer is one of the documented ones (200 / 400 / 401 / 404 / 405 / 422);
* an answer other than 200 changed nothing: no signal reached the client, no callback was
  parked, no audit row was written.

The number of generated cases is printed at the end of the module (``pytest -s``) and
recorded in docs/reliability.md."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from gateway.app import create_app
from sentinel.settings import Settings
from sentinel.signing import SIGNATURE_HEADER, sign

SECRET = "fuzz-channel-secret"
CASES: Counter = Counter()
STATUSES: Counter = Counter()
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class RecordingClient:
    """Stands in for SentinelClient: records signals; a valid callback is "delivered"."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    async def report_callback(self, withdrawal_id, obs):
        self.calls.append(("report_callback", withdrawal_id))

    def handle(self, withdrawal_id):
        raise AssertionError(
            f"handle({withdrawal_id!r}) called: only parking needs it, and nothing parks here"
        )

    def __getattr__(self, name):
        raise AssertionError(f"the gateway called client.{name} on a callback")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    db = tmp_path_factory.mktemp("fuzz") / "sentinel.db"
    s = Settings(
        _env_file=None,
        database_url=f"sqlite:///{db}",
        channel_secret=SECRET,
        channel_base_url="http://127.0.0.1:9",
        temporal_address="127.0.0.1:9",
    )
    fake = RecordingClient()
    app = create_app(s, client=fake)
    loop = asyncio.new_event_loop()  # these tests are sync (hypothesis); requests run on this loop
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://gw"
    )

    def request(method, path, content, headers):
        return loop.run_until_complete(http.request(method, path, content=content, headers=headers))

    yield request, fake, app.state.engine
    loop.run_until_complete(http.aclose())
    loop.close()
    total = sum(CASES.values())
    print(f"\nfuzz: {total} generated cases {dict(CASES)}; answers {dict(sorted(STATUSES.items()))}")


def state(engine) -> tuple[int, int]:
    with engine.connect() as c:
        parked = c.execute(text("select count(*) from parked_callback")).scalar_one()
        audits = c.execute(text("select count(*) from audit_log")).scalar_one()
    return parked, audits


def check(
    gateway, kind: str, method: str, path: str, body: bytes, headers: dict[str, str], allowed: set[int]
):
    http, fake, engine = gateway
    before_calls, before_state = len(fake.calls), state(engine)
    r = http(method, path, body, {k: v.encode("latin-1") for k, v in headers.items()})
    CASES[kind] += 1
    STATUSES[r.status_code] += 1
    assert r.status_code < 500, (kind, path, body[:200], headers, r.status_code, r.text[:300])
    assert r.status_code in allowed, (kind, path, body[:200], headers, r.status_code, r.text[:300])
    if r.status_code != 200:
        assert len(fake.calls) == before_calls, (
            f"refused input ({r.status_code}) reached the workflow: {fake.calls[-1]}"
        )
    assert state(engine) == before_state, "a callback parked or audited something"
    return r


def signed(body: bytes, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(secret, body, int(time.time()) if at is None else at)}


header_values = st.text(st.characters(codec="latin-1", exclude_characters="\r\n\x00"), max_size=120)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=12,
)
CALLBACK_FIELDS = ("event_id", "order_id", "status", "code", "occurred_at")


def valid_callback(n: int) -> dict:
    return {
        "event_id": f"evt-{n}",
        "order_id": f"W-FUZZ-{n}",
        "status": "FAILED",
        "code": "AC04",
        "occurred_at": datetime.now(UTC).isoformat(),
    }


@FUZZ
@given(
    body=st.binary(max_size=2048),
    sig=st.one_of(
        st.none(),
        header_values,
        st.builds(lambda t, h: f"t={t},v1={h}", st.integers(), st.text("0123456789abcdef", max_size=64)),
    ),
    extra=st.dictionaries(
        st.sampled_from(["content-type", "x-forwarded-for", "content-encoding", "x-channel-signature-2"]),
        header_values,
        max_size=3,
    ),
)
def test_random_bytes_and_signature_headers(gateway, body, sig, extra):
    headers = dict(extra)
    if sig is not None:
        headers[SIGNATURE_HEADER] = sig
    # no valid signature: always 401 (a 400 only comes after a verified signature)
    check(gateway, "bytes+random-signature", "POST", "/v1/callbacks/generic", body, headers, {401})


@FUZZ
@given(doc=json_values)
def test_signed_random_json(gateway, doc):
    body = json.dumps(doc).encode()
    check(gateway, "signed-random-json", "POST", "/v1/callbacks/generic", body, signed(body), {400})


@FUZZ
@given(
    n=st.integers(0, 10**6),
    field=st.sampled_from(CALLBACK_FIELDS + ("extra",)),
    value=json_values,
    drop=st.booleans(),
)
def test_signed_near_valid_callbacks(gateway, n, field, value, drop):
    """A valid callback with one field replaced or removed; valid ones may reach the client."""
    doc = valid_callback(n)
    if drop and field in doc:
        del doc[field]
    else:
        doc[field] = value
    body = json.dumps(doc).encode()
    http, fake, _ = gateway
    before = len(fake.calls)
    r = check(gateway, "signed-near-valid", "POST", "/v1/callbacks/generic", body, signed(body), {200, 400})
    assert len(fake.calls) == before + (1 if r.status_code == 200 else 0)


@FUZZ
@given(
    body=st.binary(max_size=512),
    skew=st.integers(-(10**9), 10**9).filter(lambda s: abs(s) > 300),
    wrong=st.booleans(),
)
def test_stale_or_wrong_secret_signatures(gateway, body, skew, wrong):
    """Well-formed headers that must still be refused: outside the tolerance, or another key."""
    doc = json.dumps(valid_callback(1)).encode() if not body else body
    headers = signed(doc, "another-secret") if wrong else signed(doc, at=int(time.time()) + skew)
    check(gateway, "stale-or-wrong-signature", "POST", "/v1/callbacks/generic", doc, headers, {401})


@FUZZ
@given(
    channel=st.text(min_size=1, max_size=60),
    method=st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH"]),
    body=st.binary(max_size=256),
)
@example(channel="0/", method="POST", body=b"")  # was a 307 to /v1/callbacks/0 (found by this test)
def test_random_channels_and_methods(gateway, channel, method, body):
    path = "/v1/callbacks/" + quote(channel, safe="")
    allowed = {404, 405, 422} | ({401} if channel == "generic" else set())
    check(gateway, "random-path-method", method, path, body, {}, allowed)


ID = r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z"
offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))


@FUZZ
@given(
    order_id=st.from_regex(ID),
    event_id=st.from_regex(ID),
    status=st.sampled_from(
        ["SUCCEEDED", "FAILED", "PROCESSING", "HELD", "UNKNOWN", "RETURNED", "WHATEVER_NEW"]
    ),
    code=st.one_of(st.none(), st.from_regex(r"\A[A-Za-z0-9_]{1,64}\Z")),
    at=st.datetimes(timezones=offsets),
    extra=st.dictionaries(st.text(max_size=10), json_values, max_size=3),
)
def test_valid_callbacks_reach_the_workflow_once(gateway, order_id, event_id, status, code, at, extra):
    """Every well-formed, signed callback (any ids, codes, unknown status words, any time and
    offset, unknown extra fields) is acknowledged and signalled exactly once."""
    doc = {
        **{k: v for k, v in extra.items() if k not in CALLBACK_FIELDS},
        "event_id": event_id,
        "order_id": order_id,
        "status": status,
        "code": code,
        "occurred_at": at.isoformat(),
    }
    body = json.dumps(doc).encode()
    _, fake, _ = gateway
    before = len(fake.calls)
    check(gateway, "signed-valid", "POST", "/v1/callbacks/generic", body, signed(body), {200})
    assert len(fake.calls) == before + 1
