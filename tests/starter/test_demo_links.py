"""What ``make run`` prints about the pages (issue #13 item 8, starter/demo.py): each demo
withdrawal's progress page (its notice's signed link mapped to the gateway's /pages path),
and the consoles with the development sign-ins, checked against the development files."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

from gateway.auth import KeyStore
from gateway.reviewers import Reviewers
from sentinel.links import make_link, verify_link
from starter.demo import DEV_OPERATOR, DEV_OPERATOR_KEY, DEV_REVIEWERS, newest_link, pages_help, progress_url

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = "http://127.0.0.1:8000"
SECRET = "dev-link-secret"


def test_progress_url_is_the_notices_signed_link_on_the_gateways_pages():
    # R16, R18: the printed URL is the notice's link, kind and signature unchanged, on /pages.
    now = int(time.time())
    for kind, path in (("track", "withdrawals/track"), ("fix_card", "bank-cards/fix")):
        link = make_link("https://pay.example/app", kind, "DEMO-1-x", "user-x", SECRET, now, 3600)
        url = progress_url(GATEWAY + "/", link)
        assert url == f"{GATEWAY}/pages/{path}?{urlsplit(link).query}"
        assert verify_link(url, SECRET, now) == verify_link(link, SECRET, now)
    assert progress_url(GATEWAY, "https://pay.example/app/other?x=1") is None


def test_newest_link_is_the_newest_message_with_one():
    inbox = {
        "messages": [
            {"id": 3, "link": None},
            {"id": 2, "link": "https://a/withdrawals/track?q"},
            {"id": 1, "link": "https://a/old"},
        ]
    }
    assert newest_link(inbox) == "https://a/withdrawals/track?q"
    assert newest_link({"messages": []}) is None and newest_link({}) is None


def test_pages_help_names_each_console_and_sign_ins_that_really_work():
    # R22, R29: the printed reviewer passwords open config/reviewers.dev.yaml's accounts with
    # the printed roles, and the operator key is config/api_keys.dev.yaml's operator.
    lines = pages_help(GATEWAY, "http://127.0.0.1:8233", "user-account_error")
    text = "\n".join(lines)
    assert f"{GATEWAY}/pages/signin " in text and "python -m starter token user user-account_error" in text
    assert f"{GATEWAY}/pages/review/signin" in text and f"{GATEWAY}/pages/signin?next=/pages/ops" in text
    assert "http://127.0.0.1:8233/namespaces/default/workflows" in text
    reviewers = Reviewers(ROOT / "config" / "reviewers.dev.yaml")
    for name, role, password in DEV_REVIEWERS:
        assert f"{name} / {password} ({role})" in text
        assert reviewers.verify(name, password).role == role
    assert DEV_OPERATOR_KEY in text
    name, role, password = DEV_OPERATOR
    assert f"{GATEWAY}/pages/ops/signin  - {name} / {password} ({role})" in text
    assert reviewers.verify(name, password).role == role == "operator"
    assert KeyStore(ROOT / "config" / "api_keys.dev.yaml").lookup(DEV_OPERATOR_KEY).role == "operator"


def test_each_scenario_prints_its_progress_page():
    from starter.demo import render, scenarios
    from tests.sentinel.test_user_view import desk_view

    url = f"{GATEWAY}/pages/withdrawals/track?wid=W1&uid=U1&exp=1&sig=x"
    text = render(scenarios()[0], desk_view(), {"messages": []}, None, url)
    assert text.splitlines()[3] == f"   progress page: {url}"
    assert "progress page" not in render(scenarios()[0], desk_view(), {"messages": []})
