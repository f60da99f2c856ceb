"""The web pages of the gateway over HTTP (issue #13), without a browser: signed-link
checks and the friendly problem page, the user's view on the progress page, records with
filters, the inbox, sign-in (session cookie, rotation, rate limit, CSRF), role checks and
the security headers. The workflows are not running here: the status comes from the
projection, which is what the gateway answers when the workflow is gone (a real Temporal
test server says NOT_FOUND). The browser tests are in tests/gateway/test_pages_browser.py."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from gateway.sessions import COOKIE, RateLimit, SessionError, Sessions
from gateway.web import CSP, LOCALES, STATIC, TEXT, widget_headers
from runtime.client import SentinelClient
from sentinel.contracts import ProgressUpdate
from sentinel.links import make_link, verify_link
from sentinel.progress import money_at, next_action, steps
from sentinel.taxonomy import ExceptionCategory, Severity
from sentinel.taxonomy import WithdrawalStatus as S
from store.repo import add_inbox_message, get_record, inbox, record_withdrawal, update_progress
from store.tables import InboxMessage
from tests.support.gateway_harness import DEV_KEYS, offline_gateway
from tests.support.workflow_harness import make_request, make_settings

SECRET = "dev-link-secret"


def link_path(kind: str, wid: str, uid: str, *, now: float | None = None, ttl: int = 3600) -> str:
    link = make_link("https://pay.example/app", kind, wid, uid, SECRET, int(now or time.time()), ttl)
    parts = urlsplit(link)
    return "/pages/" + parts.path.split("/app/", 1)[1] + "?" + parts.query


def tracked(gw, wid: str, user: str, status=S.PROCESSING, category=None, code=None, locale="en-US", **extra):
    req = make_request(wid, user_id=user, locale=locale, **extra)
    record_withdrawal(gw.engine, req, "SUBMITTED")
    update_progress(
        gw.engine,
        ProgressUpdate(
            withdrawal_id=wid,
            status=status,
            category=category,
            reason_code=code,
            severity=Severity.HIGH,
            at=datetime.now(UTC),
        ),
    )
    return req


async def sign_in(gw, user: str | None = None, *, key: str | None = None):
    """The sign-in form, as a browser fills it: its CSRF cookie and field, then the token."""
    form = await gw.http.get("/pages/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    token = key or gw.user(user)["Authorization"].split()[1]
    return await gw.http.post("/pages/signin", data={"csrf": csrf, "token": token})


def assert_safe_page(resp, csp: str = CSP, framed_by: str | None = None) -> None:
    """CSP with script-src 'self', no inline script, no event-handler attributes, no inline
    style; never framed (or, for the widget, framed by ``framed_by`` only, no X-Frame-Options)."""
    assert resp.headers["content-security-policy"] == csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    html = resp.text
    assert all('src="' in tag for tag in re.findall(r"<script[^>]*>", html)), "inline script"
    tags = re.findall(r"<[a-zA-Z][^>]*>", html)  # escaped text has no "<": only real tags
    assert not [t for t in tags if re.search(r"\son[a-z]+\s*=", t)], "inline event handler"
    assert not [t for t in tags if re.search(r"\sstyle\s*=", t)], "inline style"
    assert "<style" not in html
    assert resp.headers["referrer-policy"] == "no-referrer"
    if framed_by is None:
        assert resp.headers["x-frame-options"] == "DENY" and csp.endswith("frame-ancestors 'none'")
    else:
        assert "x-frame-options" not in resp.headers and csp.endswith("frame-ancestors " + framed_by)
    assert "Traceback" not in html


# --------------------------------------------------------------------------- pure parts


def test_steps_money_and_next_action_follow_the_status():
    # R16, R18: the tracker, where the money is, the one next step.
    assert [(s.name, s.state) for s in steps(S.DELAYED)] == [
        ("submitted", "done"),
        ("bank", "warn"),
        ("arrived", "todo"),
    ]
    assert [s.name for s in steps(S.UNDER_REVIEW)] == ["submitted", "review", "bank", "arrived"]
    assert steps(S.SUCCEEDED)[-1].state == "done" and steps(S.FAILED)[-1].state == "problem"
    assert [s.name for s in steps(S.RETURNED)][-1] == "returned"
    assert [money_at(s) for s in (S.UNDER_REVIEW, S.DELAYED, S.SUCCEEDED, S.FAILED)] == [
        "with_us",
        "on_the_way",
        "card",
        "balance",
    ]
    assert next_action(S.FAILED, ExceptionCategory.ACCOUNT_INFO_ERROR, []) == "fix_card"
    assert next_action(S.FAILED, ExceptionCategory.PLATFORM_ERROR, []) == "none"
    assert next_action(S.UNDER_REVIEW, ExceptionCategory.RISK_HOLD, ["id_card"]) == "upload_documents"
    assert next_action(S.DELAYED, ExceptionCategory.BANK_DELAY, []) == "none"


def test_every_word_of_the_pages_exists_in_both_languages():
    # R20: zh-CN and en-US everywhere (load_text refuses a key without both).
    assert all(set(LOCALES) <= set(words) for words in TEXT.values())


def test_session_cookies_are_signed_expire_and_end():
    # R22: a changed cookie, an expired one and a signed-out one are refused; ids are new each time.
    sessions = Sessions("k", ttl_s=600)
    now = 1_800_000_000
    one, cookie = sessions.start("u-1", "user", until=now + 3600, now=now)
    two, _ = sessions.start("u-1", "user", until=now + 3600, now=now)
    assert one.sid != two.sid and one.exp == now + 600
    assert sessions.check(cookie, now).user_id == "u-1"
    parts = cookie.split(".")
    forged = ".".join(parts[:3] + ["operator"] + parts[4:])  # a user making itself an operator
    for bad in (forged, cookie[:-2] + "xx", "s1.a.b", ""):
        with pytest.raises(SessionError):
            sessions.check(bad, now)
    with pytest.raises(SessionError, match="expired"):
        sessions.check(cookie, now + 600)
    assert sessions.start("u-1", "user", until=now + 60, now=now)[0].exp == now + 60  # never past the token
    sessions.end(one, now)
    with pytest.raises(SessionError, match="signed out"):
        sessions.check(cookie, now)
    assert sessions.csrf_ok(two, sessions.csrf_for(two)) and not sessions.csrf_ok(two, sessions.csrf_for(one))


def test_rate_limit_counts_a_sliding_minute():
    now = [0.0]
    limit = RateLimit(3, clock=lambda: now[0])
    assert [limit.allow("a") for _ in range(3)] == [0, 0, 0]
    assert limit.allow("a") == pytest.approx(60) and limit.allow("b") == 0
    now[0] = 60.5
    assert limit.allow("a") == 0


# --------------------------------------------------------------------------- progress page


async def test_tampered_expired_and_unknown_links_get_a_friendly_page(gw, unique_id):
    # R16, R22: never a stack trace; the page says what to do (open the app's records).
    user = f"u-{unique_id}"
    tracked(gw, unique_id, user)
    good = link_path("track", unique_id, user)
    assert (await gw.http.get(good)).status_code == 200
    for tampered in (
        good.replace(f"wid={unique_id}", "wid=W-other"),
        good.replace(f"uid={user}", "uid=u-evil"),
        good[:-3] + "AAA",
        good + "&extra=1",
        good.split("?")[0],
        "/pages/withdrawals/track?%zz",
    ):
        resp = await gw.http.get(tampered)
        assert resp.status_code == 400, tampered
        assert "This link cannot be opened" in resp.text and "My withdrawals" in resp.text
        assert_safe_page(resp)
    expired = link_path("track", unique_id, user, now=time.time() - 7200, ttl=60)
    resp = await gw.http.get(expired)
    assert resp.status_code == 403 and "This link has expired" in resp.text
    resp = await gw.http.get(link_path("track", f"gone-{unique_id}", user))
    assert resp.status_code == 404 and "We cannot find this withdrawal" in resp.text
    resp = await gw.http.get(expired, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "此链接已过期" in resp.text and 'lang="zh-CN"' in resp.text


async def test_progress_page_tells_the_users_story_and_the_fix(gw, unique_id):
    # R16, R18, R19, R22: status, the reason in plain words, where the money is, a signed
    # fix-card link to the app, support; last four digits only, never the payee reference.
    user = f"u-{unique_id}"
    tracked(
        gw,
        unique_id,
        user,
        S.FAILED,
        ExceptionCategory.ACCOUNT_INFO_ERROR,
        "AC04",
        payee_ref="vault:tok_secret9",
    )
    resp = await gw.http.get(link_path("track", unique_id, user))
    assert resp.status_code == 200
    html = resp.text
    assert_safe_page(resp)
    assert 'data-status="FAILED"' in html and "Your withdrawal did not go through" in html
    assert "closed" in html.lower()  # the catalogue's reason for AC04 (account closed)
    assert "Back in your balance" in html and "ending 1234" in html and "1,250.00 CNY" in html
    assert "tok_secret9" not in html and "vault:" not in html
    fix = (
        re.search(r'id="next-step" data-action="fix_card" href="([^"]+)"', html)
        .group(1)
        .replace("&amp;", "&")
    )
    assert fix.startswith("https://pay.example/app/bank-cards/fix?")
    assert verify_link(fix, SECRET, int(time.time()))["withdrawal_id"] == unique_id
    assert 'href="tel:555-0100"' in html and "https://pay.example/support" in html
    assert 'data-stream="/pages/withdrawals/track/events?' in html
    # the withdrawal's own language (its notices' language) when the browser asks for nothing else
    tracked(gw, f"{unique_id}z", user, S.DELAYED, ExceptionCategory.BANK_DELAY, locale="zh-CN")
    zh = (await gw.http.get(link_path("track", f"{unique_id}z", user))).text
    assert "您的提现到账延迟" in zh and "银行处理时间比平时长" in zh and "您无需操作" in zh


# --------------------------------------------------------------------------- sign-in, roles, CSRF


async def test_sign_in_sets_a_fresh_http_only_session_and_refuses_bad_tokens(gw, unique_id):
    # R22: the token is exchanged once for a cookie (HttpOnly, SameSite=Lax); a new id each time.
    user = f"u-{unique_id}"
    gw.http.cookies.set(COOKIE, "s1.planted.x.user.9999999999.sig", domain="gateway.local", path="/pages")
    resp = await sign_in(gw, user)
    assert resp.status_code == 303 and resp.headers["location"] == "/pages/records"
    set_cookie = [v for v in resp.headers.get_list("set-cookie") if v.startswith(COOKIE)][0]
    assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie and "Path=/pages" in set_cookie
    assert "Secure" not in set_cookie  # plain http here; https below
    first = gw.http.cookies.get(COOKIE, path="/pages")
    assert first and "planted" not in first
    await sign_in(gw, user)
    assert gw.http.cookies.get(COOKIE, path="/pages").split(".")[1] != first.split(".")[1]  # rotated
    assert (await gw.http.get("/pages/records")).status_code == 200
    gw.http.cookies.clear()
    resp = await sign_in(gw, key="ut2.bm9ib2R5.1.2.forged")
    assert (
        resp.status_code == 401
        and "did not work" in resp.text
        and COOKIE not in resp.headers.get("set-cookie", "")
    )
    resp = await gw.http.get("/pages/records")
    assert resp.status_code == 401 and "Please sign in" in resp.text
    gw.http.cookies.set(COOKIE, first[:-3] + "abc", domain="gateway.local", path="/pages")  # tampered
    assert (await gw.http.get("/pages/inbox")).status_code == 401


async def test_sign_in_over_https_marks_the_cookie_secure_and_never_redirects_away(gw, unique_id):
    gw.http.base_url = "https://gateway"
    form = await gw.http.get("/pages/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    token = gw.user(f"u-{unique_id}")["Authorization"].split()[1]
    resp = await gw.http.post(
        "/pages/signin", data={"csrf": csrf, "token": token, "next": "//evil.example/x"}
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/pages/records"
    assert "Secure" in [v for v in resp.headers.get_list("set-cookie") if v.startswith(COOKIE)][0]


async def test_every_post_needs_its_csrf_token(gw, unique_id):
    # R22: sign-in, mark read and sign-out refuse a POST without the right token.
    user = f"u-{unique_id}"
    token = gw.user(user)["Authorization"].split()[1]
    resp = await gw.http.post("/pages/signin", data={"token": token})  # no sign-in cookie nor field
    assert resp.status_code == 403 and "Please reload the page" in resp.text
    assert (await sign_in(gw, user)).status_code == 303
    msg = add_inbox_message(
        gw.engine,
        InboxMessage(
            key=f"{unique_id}/1",
            user_id=user,
            withdrawal_id=unique_id,
            stage="DETECTED",
            severity="HIGH",
            locale="en-US",
            title="t",
            body="b",
        ),
    )
    for headers, data in (({}, {}), ({}, {"csrf": "wrong"}), ({"X-CSRF-Token": "wrong"}, {})):
        resp = await gw.http.post(f"/pages/inbox/{msg.id}/read", headers=headers, data=data)
        assert resp.status_code == 403
    assert inbox(gw.engine, user)[1] == 1  # still unread
    assert (await gw.http.post("/pages/signout", data={"csrf": "wrong"})).status_code == 403
    assert (await gw.http.get("/pages/records")).status_code == 200  # still signed in


async def test_sign_in_is_rate_limited_per_address(gw, unique_id):
    # R22: the 11th attempt within a minute is 429 with Retry-After, however it is sent.
    for _ in range(gw.settings.pages_signin_per_minute):
        assert (await gw.http.post("/pages/signin", data={"token": "x"})).status_code == 403
    resp = await sign_in(gw, f"u-{unique_id}")
    assert (
        resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1 and "Too many attempts" in resp.text
    )


async def test_a_user_session_never_opens_a_console_and_staff_never_a_users_page(gw, unique_id):
    # R22: role checks on every route.
    assert (await sign_in(gw, f"u-{unique_id}")).status_code == 303
    for console in ("/pages/ops",):
        resp = await gw.http.get(console)
        assert resp.status_code == 403 and "Not available" in resp.text
    gw.http.cookies.clear()
    resp = await sign_in(gw, key=DEV_KEYS["ops"])
    assert resp.status_code == 303 and resp.headers["location"] == "/pages/ops"
    assert (await gw.http.get("/pages/ops")).status_code == 200
    for page in ("/pages/records", "/pages/inbox", "/pages/inbox/events"):
        assert (await gw.http.get(page)).status_code == 403, page
    gw.http.cookies.clear()
    assert (await gw.http.get("/pages/ops")).status_code == 401


# --------------------------------------------------------------------------- records and inbox


async def test_records_newest_first_filtered_each_opening_its_progress_page(gw, unique_id):
    # R16: status chips, filter by status and by period, each row opens its progress page.
    user = f"u-{unique_id}"
    now = datetime.now(UTC)
    tracked(gw, f"{unique_id}-old", user, S.SUCCEEDED, created_at=now - timedelta(days=40))
    tracked(
        gw,
        f"{unique_id}-mid",
        user,
        S.FAILED,
        ExceptionCategory.ACCOUNT_INFO_ERROR,
        "AC04",
        created_at=now - timedelta(days=3),
    )
    tracked(gw, f"{unique_id}-new", user, S.DELAYED, ExceptionCategory.BANK_DELAY, created_at=now)
    tracked(gw, f"{unique_id}-else", f"v-{unique_id}", S.FAILED)  # another user's
    await sign_in(gw, user)
    resp = await gw.http.get("/pages/records")
    assert_safe_page(resp)
    order = re.findall(r'data-wid="([^"]+)"', resp.text)
    assert order == [f"{unique_id}-new", f"{unique_id}-mid", f"{unique_id}-old"]
    assert "chip-DELAYED" in resp.text and "chip-FAILED" in resp.text
    assert re.findall(r'data-wid="([^"]+)"', (await gw.http.get("/pages/records?status=FAILED")).text) == [
        f"{unique_id}-mid"
    ]
    assert re.findall(r'data-wid="([^"]+)"', (await gw.http.get("/pages/records?period=30")).text) == [
        f"{unique_id}-new",
        f"{unique_id}-mid",
    ]
    assert "No withdrawals here" in (await gw.http.get("/pages/records?status=RETURNED")).text
    href = (
        re.search(rf'<a href="([^"]+)" data-wid="{unique_id}-mid"', resp.text).group(1).replace("&amp;", "&")
    )
    opened = await gw.http.get(href)
    assert opened.status_code == 200 and 'data-status="FAILED"' in opened.text


async def test_inbox_page_escapes_what_it_shows_and_reads_through_the_inbox_api(gw, unique_id):
    # R21, R22: user-supplied and notice text is escaped; mark read as the inbox API does.
    user = f"u-{unique_id}"
    link = make_link("https://pay.example/app", "track", unique_id, user, SECRET, int(time.time()), 3600)
    msg = add_inbox_message(
        gw.engine,
        InboxMessage(
            key=f"{unique_id}/DETECTED/1",
            user_id=user,
            withdrawal_id=unique_id,
            stage="DETECTED",
            severity="HIGH",
            locale="en-US",
            title='<script>alert("t")</script>',
            body='<img src=x onerror="alert(1)">',
            link=link,
        ),
    )
    await sign_in(gw, user)
    resp = await gw.http.get("/pages/inbox")
    assert_safe_page(resp)
    assert "<script>alert" not in resp.text and "&lt;script&gt;alert" in resp.text
    assert "<img src=x" not in resp.text and "1 unread" in resp.text
    assert "/pages/withdrawals/track?" + urlsplit(link).query.replace("&", "&amp;") in resp.text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', resp.text).group(1)
    resp = await gw.http.post(
        f"/pages/inbox/{msg.id}/read", headers={"X-CSRF-Token": csrf, "Accept": "application/json"}
    )
    # the workflow is gone (NOT_FOUND): the inbox API's code marks the row read all the same
    assert resp.status_code == 200 and resp.json()["unread"] == 0 and resp.json()["read_at"]
    assert inbox(gw.engine, user)[1] == 0
    assert (await gw.http.post("/pages/inbox/999999/read", headers={"X-CSRF-Token": csrf})).status_code == 404
    assert get_record(gw.engine, unique_id) is None


# --------------------------------------------------------------------------- the inbox widget


def _notice(gw, user: str, wid: str, title: str, body: str):
    link = make_link("https://pay.example/app", "track", wid, user, SECRET, int(time.time()), 3600)
    return add_inbox_message(
        gw.engine,
        InboxMessage(
            key=f"{wid}/DETECTED/1",
            user_id=user,
            withdrawal_id=wid,
            stage="DETECTED",
            severity="HIGH",
            locale="en-US",
            title=title,
            body=body,
            link=link,
        ),
    )


async def test_widget_needs_a_session_shows_the_inbox_escaped_and_marks_read_with_csrf(gw, unique_id):
    # R21, R22: the embeddable widget is the user's inbox: 401 without a session (a bell that
    # opens the sign-in, no message), the red dot's count and the messages escaped, mark read
    # only with the session's CSRF token; framed by the default 'self' only.
    user = f"u-{unique_id}"
    msg = _notice(gw, user, unique_id, '<script>alert("t")</script>', '<img src=x onerror="alert(1)">')
    framed = widget_headers(["'self'"])["Content-Security-Policy"]
    resp = await gw.http.get("/pages/widget")
    assert resp.status_code == 401
    assert_safe_page(resp, framed, "'self'")
    assert 'href="/pages/signin?next=/pages/inbox"' in resp.text and "inbox-list" not in resp.text
    assert "alert" not in resp.text

    await sign_in(gw, user)
    resp = await gw.http.get("/pages/widget")
    assert resp.status_code == 200
    assert_safe_page(resp, framed, "'self'")
    assert re.search(r'<span id="dot" class="dot">1</span>', resp.text) and "1 unread" in resp.text
    assert (
        "<script>alert" not in resp.text
        and "&lt;script&gt;alert" in resp.text
        and "<img src=x" not in resp.text
    )
    assert 'data-inbox-stream="/pages/inbox/events"' in resp.text  # the inbox page's own live stream
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', resp.text).group(1)
    refused = await gw.http.post(f"/pages/inbox/{msg.id}/read", headers={"Accept": "application/json"})
    assert refused.status_code == 403 and inbox(gw.engine, user)[1] == 1
    done = await gw.http.post(
        f"/pages/inbox/{msg.id}/read", headers={"X-CSRF-Token": csrf, "Accept": "application/json"}
    )
    assert done.status_code == 200 and done.json()["unread"] == 0
    resp = await gw.http.get("/pages/widget")
    assert '<span id="dot" class="dot" hidden>' in resp.text and "0 unread" in resp.text


async def test_widget_frame_ancestors_come_from_the_setting_and_other_pages_stay_unframed(
    ts_env, tmp_path, unique_id
):
    # R22: only the configured sites may frame the widget; every other page still refuses frames.
    settings = make_settings(tmp_path, 9, pages_frame_ancestors=["https://shop.example:8443", "'self'"])
    async with offline_gateway(settings, SentinelClient(ts_env.client, "tq-no-worker")) as g:
        await sign_in(g, f"u-{unique_id}")
        resp = await g.http.get("/pages/widget")
        csp = resp.headers["content-security-policy"]
        assert resp.status_code == 200 and "frame-ancestors https://shop.example:8443 'self'" in csp
        assert_safe_page(resp, csp, "https://shop.example:8443 'self'")
        assert_safe_page(await g.http.get("/pages/inbox"))
        static = await g.http.get("/pages/static/widget.js")
        assert static.status_code == 200 and "javascript" in static.headers["content-type"]
    for bad in (["https://shop.example; script-src *"], ["*"], []):
        with pytest.raises(ValueError, match="pages_frame_ancestors"):
            make_settings(tmp_path, 9, pages_frame_ancestors=bad)


def test_widget_script_needs_no_relaxed_csp():
    # R22: the host page's script and the frame's script build elements and text through the
    # DOM only: no eval, no string-built code or markup, no style attribute (CSSOM only), so
    # neither a strict host CSP nor ours needs 'unsafe-inline' or 'unsafe-eval'.
    for name in ("widget.js", "pages.js"):
        code = (STATIC / name).read_text()
        for risky in (
            "eval(",
            "new Function",
            "document.write",
            'setTimeout("',
            'setAttribute("style"',
            ".cssText",
            "insertAdjacentHTML",
            "javascript:",
        ):
            assert risky not in code, f"{name} uses {risky}"
    widget = (STATIC / "widget.js").read_text()
    assert (
        "innerHTML" not in widget
        and "ev.origin !== origin" in widget
        and "ev.source !== frame.contentWindow" in widget
    )
