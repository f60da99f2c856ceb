"""The reviewer console over HTTP (issue #13 item 4, R15, R22, R29), without a browser:
reviewer accounts with argon2 password hashes, sign-in (wrong password 401 and no cookie),
CSRF on every form, the queue soonest SLA due first, the case page (risk-rule hits, the
channel's code and its meaning, the audit trail), and role checks. No workflow runs here:
the case page shows the projection and the store's rows (a real Temporal test server says
NOT_FOUND). The whole four-eyes story in a browser: tests/gateway/test_pages_browser.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from argon2 import PasswordHasher

from gateway.reviewers import Reviewers, parse_accounts
from gateway.sessions import COOKIE
from runtime.client import SentinelClient
from sentinel.catalogue import default_catalogue
from sentinel.contracts import ProgressUpdate
from sentinel.dev_credentials import DEV_REVIEWER_PASSWORDS
from sentinel.models import RiskHit
from sentinel.review_order import by_due, sla_due
from sentinel.settings import ROOT
from sentinel.taxonomy import ExceptionCategory, Severity
from sentinel.taxonomy import WithdrawalStatus as S
from store.repo import add_audit, get_record, record_risk_hits, record_withdrawal, update_progress
from tests.gateway.test_pages import assert_safe_page, sign_in
from tests.support.gateway_harness import offline_gateway
from tests.support.workflow_harness import TEST_DELAYS, make_request, make_settings

DEV_REVIEWERS = ROOT / "config" / "reviewers.dev.yaml"
#: the default review SLA is 1 h; bank FAST's is 10 min (the queue's order must use it)
DELAYS = {**TEST_DELAYS, "banks": {"FAST": {"review_sla": "10m"}}}


@pytest.fixture()
async def gw(ts_env, tmp_path):
    settings = make_settings(tmp_path, 9, delays=DELAYS)
    async with offline_gateway(settings, SentinelClient(ts_env.client, "tq-no-worker")) as g:
        yield g


def held(
    gw,
    wid: str,
    since: datetime,
    *,
    bank: str = "ICBC",
    code: str | None = None,
    status=S.UNDER_REVIEW,
    category=ExceptionCategory.RISK_HOLD,
):
    """A case in the review queue since ``since`` (the projection, as the worker writes it)."""
    record_withdrawal(gw.engine, make_request(wid, bank_code=bank, amount="60000.00"), "SUBMITTED")
    update_progress(
        gw.engine,
        ProgressUpdate(
            withdrawal_id=wid,
            status=status,
            category=category,
            reason_code=code,
            severity=Severity.HIGH,
            needs_review=True,
            at=since,
        ),
    )


async def console_sign_in(gw, name: str, password: str | None = None, **extra):
    form = await gw.http.get("/pages/review/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    password = DEV_REVIEWER_PASSWORDS[name] if password is None else password
    return await gw.http.post(
        "/pages/review/signin", data={"csrf": csrf, "name": name, "password": password, **extra}
    )


def page_csrf(html: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)


# --------------------------------------------------------------------------- pure parts


def test_dev_accounts_are_argon2_hashes_that_verify_only_their_own_password():  # R22
    doc = yaml.safe_load(DEV_REVIEWERS.read_text())
    accounts = parse_accounts(doc)
    assert {(a.name, a.role) for a in accounts.values()} == {
        ("alice", "reviewer"),
        ("bob", "reviewer"),
        ("carol", "supervisor"),
        ("dave", "operator"),
    }
    for name, password in DEV_REVIEWER_PASSWORDS.items():
        assert accounts[name].password_hash.startswith("$argon2id$")
        assert PasswordHasher().verify(accounts[name].password_hash, password)  # the library's own check
        assert all(password not in str(value) for entry in doc["accounts"] for value in entry.values())
    reviewers = Reviewers(DEV_REVIEWERS)
    assert reviewers.verify("alice", "dev-alice-password").role == "reviewer"
    assert reviewers.verify("alice", "dev-bob-password") is None
    assert reviewers.verify("mallory", "dev-alice-password") is None


@pytest.mark.parametrize(
    "entry, problem",
    [
        ({"name": "eve", "role": "payment-service", "password_hash": "$argon2id$x"}, "role"),
        ({"name": "eve", "role": "reviewer", "password_hash": "hunter2"}, "not an argon2 hash"),
        ({"name": "eve", "role": "reviewer"}, "exactly"),
        ({"name": "Eve Smith", "role": "reviewer", "password_hash": "$argon2id$x"}, "lower-case"),
    ],
)
def test_a_bad_accounts_file_is_refused_with_the_reason(entry, problem):  # R22
    with pytest.raises(ValueError, match=problem):
        parse_accounts({"accounts": [entry]})


def test_cases_are_ordered_by_sla_due_time_not_by_age():  # R29
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    cases = [
        ("old-slow", now - timedelta(minutes=50), 3600),
        ("new-fast", now - timedelta(minutes=5), 600),
        ("mid-slow", now - timedelta(minutes=30), 3600),
        ("unknown", None, 3600),
    ]
    due = {wid: sla_due(since, sla) for wid, since, sla in cases}
    assert due["new-fast"] == now + timedelta(minutes=5) and due["unknown"] is None
    assert [c[0] for c in by_due(cases, lambda c: due[c[0]], lambda c: c[0])] == [
        "new-fast",
        "old-slow",
        "mid-slow",
        "unknown",
    ]


# --------------------------------------------------------------------------- sign-in


async def test_wrong_password_is_401_and_sets_no_session(gw):  # R22
    resp = await console_sign_in(gw, "alice", "dev-bob-password")
    assert resp.status_code == 401 and "Wrong name or password" in resp.text
    assert COOKIE not in resp.cookies and COOKIE not in gw.http.cookies
    assert (await console_sign_in(gw, "nobody", "x")).status_code == 401
    assert (await gw.http.get("/pages/review")).status_code == 401
    resp = await console_sign_in(gw, "alice")
    assert resp.status_code == 303 and resp.headers["location"] == "/pages/review"
    assert resp.cookies.get(COOKIE)
    assert_safe_page(await gw.http.get("/pages/review"))


async def test_signin_and_every_console_form_need_the_csrf_token(gw):  # R22
    await gw.http.get("/pages/review/signin")
    resp = await gw.http.post(
        "/pages/review/signin", data={"name": "alice", "password": "dev-alice-password"}
    )
    assert resp.status_code == 403 and "Please reload the page" in resp.text and COOKIE not in resp.cookies
    wid = "w-csrf-1"
    held(gw, wid, datetime.now(UTC))
    assert (await console_sign_in(gw, "alice")).status_code == 303
    for path, data in (
        (f"/pages/review/{wid}/assign", {}),
        (f"/pages/review/{wid}/decision", {"decision": "reject", "reason": "fraud"}),
        (f"/pages/review/{wid}/decision", {"decision": "reject", "reason": "fraud", "csrf": "x"}),
    ):
        resp = await gw.http.post(path, data=data)
        assert resp.status_code == 403 and "Please reload the page" in resp.text
    assert get_record(gw.engine, wid).assignee is None  # nothing changed


async def test_the_sign_in_rate_limit_covers_the_console(gw):  # R22
    for _ in range(gw.settings.pages_signin_per_minute):
        await console_sign_in(gw, "alice", "wrong")
    resp = await console_sign_in(gw, "alice")
    assert resp.status_code == 429 and resp.headers["retry-after"] and COOKIE not in resp.cookies


# --------------------------------------------------------------------------- roles


async def test_a_user_session_gets_403_on_the_console_and_a_reviewer_403_on_the_ops_console(gw):  # R22
    wid = "w-role-1"
    held(gw, wid, datetime.now(UTC))
    assert (await sign_in(gw, "u-42")).status_code == 303
    for path in ("/pages/review", f"/pages/review/{wid}"):
        resp = await gw.http.get(path)
        assert resp.status_code == 403 and "Not available" in resp.text
    csrf = page_csrf((await gw.http.get("/pages/records")).text)
    assert (await gw.http.post(f"/pages/review/{wid}/assign", data={"csrf": csrf})).status_code == 403
    assert get_record(gw.engine, wid).assignee is None
    gw.http.cookies.clear()
    await console_sign_in(gw, "bob")
    assert (await gw.http.get("/pages/ops")).status_code == 403  # operators' and supervisors' page
    assert (await gw.http.get("/pages/records")).status_code == 403
    gw.http.cookies.clear()
    await console_sign_in(gw, "carol")
    assert (await gw.http.get("/pages/ops")).status_code == 200  # a supervisor sees both consoles
    gw.http.cookies.clear()
    assert (await sign_in(gw, key="dev-operator-key")).status_code == 303
    assert (await gw.http.get("/pages/review")).status_code == 403


# --------------------------------------------------------------------------- queue and case


async def test_the_queue_puts_the_soonest_sla_due_first_and_take_assigns(gw):  # R29
    now = datetime.now(UTC)
    held(gw, "w-q-old", now - timedelta(minutes=50))  # due in 10 min
    held(gw, "w-q-mid", now - timedelta(minutes=30))  # due in 30 min
    held(gw, "w-q-fast", now - timedelta(minutes=5), bank="FAST")  # the newest, but due in 5 min
    held(gw, "w-q-late", now - timedelta(minutes=70))  # overdue
    await console_sign_in(gw, "alice")
    resp = await gw.http.get("/pages/review")
    assert resp.status_code == 200
    assert re.findall(r'data-wid="(w-q-[a-z]+)"', resp.text) == ["w-q-late", "w-q-fast", "w-q-old", "w-q-mid"]
    assert resp.text.count('class="case-row overdue"') == 1
    resp = await gw.http.post("/pages/review/w-q-mid/assign", data={"csrf": page_csrf(resp.text)})
    assert resp.status_code == 303 and resp.headers["location"] == "/pages/review/w-q-mid?done=assign"
    assert get_record(gw.engine, "w-q-mid").assignee == "alice"
    case = await gw.http.get(resp.headers["location"])
    assert "The case is assigned." in case.text and '<span class="v" id="assignee">alice</span>' in case.text


async def test_the_case_page_shows_hits_the_code_and_its_meaning_and_the_audit_trail(gw):  # R15, R29
    wid = "w-case-1"
    held(
        gw,
        wid,
        datetime.now(UTC),
        code="AC04",
        status=S.MANUAL_CHECK,
        category=ExceptionCategory.ACCOUNT_INFO_ERROR,
    )
    record_risk_hits(
        gw.engine,
        wid,
        [
            RiskHit(
                rule_id="large_amount",
                rule_version="r-7",
                description="large",
                detail="amount 60000.00 CNY >= 50000 <script>",
            )
        ],
    )
    add_audit(gw.engine, "carol", "supervisor", "assign", wid, "assigned to bob")
    add_audit(gw.engine, "user:u-42", "user", "documents_uploaded", wid, "id_card (reference R-1)")
    await console_sign_in(gw, "bob")
    resp = await gw.http.get(f"/pages/review/{wid}")
    assert resp.status_code == 200
    assert_safe_page(resp)
    meaning = default_catalogue().lookup("generic", "AC04").meaning
    assert re.search(r'id="code-meaning">' + re.escape(meaning.replace("'", "&#39;")) + "<", resp.text)
    assert "large_amount" in resp.text and "r-7" in resp.text and "&lt;script&gt;" in resp.text
    assert "assigned to bob" in resp.text and resp.text.count('class="audit-row"') == 2
    assert "id_card (reference R-1)" in resp.text.split('id="documents"')[1].split("</section>")[0]
    assert 'name="decision"' in resp.text and 'name="doc_' in resp.text
    assert (await gw.http.get("/pages/review/nope-unknown")).status_code == 404
    assert (await gw.http.get("/pages/review/bad%20id")).status_code == 404


async def test_a_decision_without_a_reason_is_refused_with_a_message(gw):  # R15
    wid = "w-dec-1"
    held(gw, wid, datetime.now(UTC))
    await console_sign_in(gw, "alice")
    csrf = page_csrf((await gw.http.get(f"/pages/review/{wid}")).text)
    resp = await gw.http.post(
        f"/pages/review/{wid}/decision", data={"csrf": csrf, "decision": "approve", "reason": "   "}
    )
    assert resp.status_code == 400 and 'data-error="decision_invalid"' in resp.text
