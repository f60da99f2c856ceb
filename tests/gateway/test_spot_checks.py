"""Spot checks (issue #14 item 6, R23): the daily draw is stratified by category and route
and seeded; the queue works through the API with the review desk's authentication; a wrong
verdict becomes a suggested catalogue change; accuracy per category."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from sentinel.analysis import EventRow
from sentinel.catalogue import default_catalogue
from sentinel.spot_checks import Decision, accuracy, allocate, decisions_from, sample, seed_for, suggestion
from store.db import engine_for
from store.events import append_event
from store.spot_checks import draw_day
from store.tables import WithdrawalEvent
from tests.support.gateway_harness import offline_gateway
from tests.support.workflow_harness import make_settings

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def decisions(counts: dict[tuple[str, str], int]) -> list[Decision]:
    out = []
    for (cat, route), n in counts.items():
        for i in range(n):
            out.append(
                Decision(
                    f"k/{cat}/{route}/{i}",
                    f"W{cat[:3]}{route[:3]}{i}",
                    T0 + timedelta(seconds=i),
                    "generic",
                    "ICBC",
                    cat,
                    route,
                    "AC04",
                )
            )
    return out


def test_allocation_covers_every_stratum_and_is_proportional():
    """R23: every (category, route) gets at least the minimum; the rest follows the sizes."""
    sizes = {
        ("BANK_DELAY", "DELAYED"): 900,
        ("ACCOUNT_INFO_ERROR", "FAILED"): 90,
        ("RISK_HOLD", "UNDER_REVIEW"): 9,
        ("PLATFORM_ERROR", "MANUAL_CHECK"): 1,
    }
    quota = allocate(sizes, 20, 1)
    assert sum(quota.values()) == 20
    assert quota[("PLATFORM_ERROR", "MANUAL_CHECK")] == 1 and quota[("RISK_HOLD", "UNDER_REVIEW")] >= 1
    assert quota[("BANK_DELAY", "DELAYED")] > quota[("ACCOUNT_INFO_ERROR", "FAILED")] > 1
    assert allocate({("A", "B"): 3}, 20, 1) == {("A", "B"): 3}  # fewer decisions than the size: all of them
    assert sum(allocate({(str(i), "R"): 5 for i in range(30)}, 10, 1).values()) == 30  # minimums win


def test_sample_is_stratified_seeded_and_drawn_from_each_stratum():
    """R23: the same seed gives the same sample; another seed another one; strata sizes hold."""
    pool = decisions(
        {
            ("BANK_DELAY", "DELAYED"): 200,
            ("ACCOUNT_INFO_ERROR", "FAILED"): 50,
            ("RISK_HOLD", "UNDER_REVIEW"): 3,
        }
    )
    a = sample(pool, size=25, min_per_stratum=2, seed=seed_for(date(2026, 12, 7)))
    b = sample(list(reversed(pool)), size=25, min_per_stratum=2, seed=seed_for(date(2026, 12, 7)))
    c = sample(pool, size=25, min_per_stratum=2, seed=seed_for(date(2026, 12, 8)))
    assert [d.key for d in a] == [d.key for d in b]  # input order does not matter
    assert [d.key for d in a] != [d.key for d in c]
    by = Counter(d.stratum for d in a)
    assert by == {
        ("BANK_DELAY", "DELAYED"): 17,  # 2 each, then 19 by the spare sizes 198/48/1: 15, 3 (+1), 0
        ("ACCOUNT_INFO_ERROR", "FAILED"): 6,
        ("RISK_HOLD", "UNDER_REVIEW"): 2,
    }
    assert len({d.key for d in a}) == 25
    with pytest.raises(ValueError):
        sample(pool, size=5000)


def test_decisions_come_from_status_rows_with_a_category():
    rows = [
        EventRow("W1", "started", T0, key="s/W1", channel="alipay", bank_code="ALIPAY"),
        EventRow("W1", "status", T0, key="st/W1/1", status="PROCESSING"),
        EventRow(
            "W1", "status", T0, key="st/W1/2", status="FAILED", category="ACCOUNT_INFO_ERROR", reason_code="X"
        ),
        EventRow("W2", "status", T0, key="st/W2/1", status="DELAYED", category="BANK_DELAY"),
    ]
    got = decisions_from(rows)
    assert [(d.withdrawal_id, d.channel, d.category, d.route) for d in got] == [
        ("W1", "alipay", "ACCOUNT_INFO_ERROR", "FAILED"),
        ("W2", "?", "BANK_DELAY", "DELAYED"),
    ]


def test_accuracy_and_suggestion_yaml():
    """A wrong verdict becomes a YAML snippet for the file that defines the code (the
    generic protocol reuses ISO 20022's codes, so AC04 lives in iso20022.yaml)."""
    checks = [
        {"category": "ACCOUNT_INFO_ERROR", "verdict": "correct"},
        {"category": "ACCOUNT_INFO_ERROR", "verdict": "wrong"},
        {"category": "BANK_DELAY", "verdict": "correct"},
        {"category": "BANK_DELAY", "verdict": None},
    ]
    assert accuracy(checks) == {
        "ACCOUNT_INFO_ERROR": {"reviewed": 2, "correct": 1, "wrong": 1, "accuracy": 0.5},
        "BANK_DELAY": {"reviewed": 1, "correct": 1, "wrong": 0, "accuracy": 1.0},
    }
    s = suggestion(
        {
            "id": 7,
            "channel": "generic",
            "reason_code": "AC04",
            "category": "ACCOUNT_INFO_ERROR",
            "route": "FAILED",
            "right_category": "CANCELLED",
            "withdrawal_id": "W9",
            "reviewer": "alice",
            "reviewed_at": T0,
            "note": "x",
        },
        default_catalogue(),
    )
    assert s["file"] == "sentinel/codes/iso20022.yaml"
    assert '- code: "AC04"\n  category: CANCELLED   # was ACCOUNT_INFO_ERROR' in s["yaml"]
    import yaml

    assert yaml.safe_load(s["yaml"]) == [{"code": "AC04", "category": "CANCELLED"}]


def _status(engine, wid: str, i: int, at: datetime, status: str, category: str, code: str) -> None:
    append_event(
        engine,
        WithdrawalEvent(
            key=f"started/{wid}",
            withdrawal_id=wid,
            kind="started",
            at=at,
            channel="generic",
            bank_code="ICBC",
            amount_band="<100",
            currency="CNY",
        ),
    )
    append_event(
        engine,
        WithdrawalEvent(
            key=f"status/{wid}/{i}",
            withdrawal_id=wid,
            kind="status",
            at=at + timedelta(minutes=1),
            status=status,
            category=category,
            reason_code=code,
        ),
    )


async def test_queue_through_the_api(tmp_path, smtp_server):
    """R23: the day's draw fills the queue once; a reviewer marks one correct and one wrong
    (with the right category) through the API; the first verdict stands; the wrong one is
    listed as a suggested catalogue change; users and payment services are refused."""
    settings = make_settings(tmp_path, smtp_server.port)
    engine = engine_for(settings.database_url)
    for i in range(12):
        _status(engine, f"D{i}", 1, T0 + timedelta(minutes=i), "DELAYED", "BANK_DELAY", "AB08")
    for i in range(3):
        _status(engine, f"F{i}", 1, T0 + timedelta(minutes=i), "FAILED", "ACCOUNT_INFO_ERROR", "AC04")
    _status(engine, "OLD", 1, T0 - timedelta(days=1), "FAILED", "ACCOUNT_INFO_ERROR", "AC04")  # another day
    assert draw_day(engine, T0.date(), size=5, min_per_stratum=2) == 5
    assert draw_day(engine, T0.date(), size=5, min_per_stratum=2) == 0  # drawn once
    async with offline_gateway(settings) as gw:
        resp = await gw.http.get("/v1/spot-checks", headers=gw.key("alice"))
        assert resp.status_code == 200, resp.text
        items = resp.json()["items"]
        assert resp.json()["total"] == 5 and "OLD" not in {i["withdrawal_id"] for i in items}
        assert Counter(i["category"] for i in items) == {"BANK_DELAY": 3, "ACCOUNT_INFO_ERROR": 2}
        bad = next(i for i in items if i["category"] == "ACCOUNT_INFO_ERROR")
        good = next(i for i in items if i["category"] == "BANK_DELAY")
        r = await gw.http.post(
            f"/v1/spot-checks/{good['id']}", json={"verdict": "correct"}, headers=gw.key("alice")
        )
        assert (
            r.status_code == 200
            and r.json()["right_category"] == "BANK_DELAY"
            and r.json()["reviewer"] == "alice"
        )
        r = await gw.http.post(
            f"/v1/spot-checks/{bad['id']}", json={"verdict": "wrong"}, headers=gw.key("bob")
        )
        assert r.status_code == 422  # wrong needs the right category
        r = await gw.http.post(
            f"/v1/spot-checks/{bad['id']}",
            json={"verdict": "wrong", "right_category": "CANCELLED", "note": "bank closed the order"},
            headers=gw.key("bob"),
        )
        assert r.status_code == 200 and r.json()["verdict"] == "wrong"
        r = await gw.http.post(
            f"/v1/spot-checks/{bad['id']}", json={"verdict": "correct"}, headers=gw.key("carol")
        )
        assert r.status_code == 409 and r.json()["detail"]["reviewer"] == "bob"
        assert (
            await gw.http.post("/v1/spot-checks/99999", json={"verdict": "correct"}, headers=gw.key("alice"))
        ).status_code == 404
        open_ = (await gw.http.get("/v1/spot-checks", headers=gw.key("ops"))).json()
        assert open_["total"] == 3
        sugg = (await gw.http.get("/v1/spot-checks/suggestions", headers=gw.key("carol"))).json()
        assert [(s["code"], s["from_category"], s["to_category"]) for s in sugg] == [
            ("AC04", "ACCOUNT_INFO_ERROR", "CANCELLED")
        ]
        assert "bank closed the order" in sugg[0]["yaml"]
        assert (await gw.http.get("/v1/spot-checks", headers=gw.key("payment-service"))).status_code == 403
        assert (await gw.http.get("/v1/spot-checks")).status_code == 401
