"""The periodic review (issue #14 items 5 and 6; R23, R30): the review workflow on the
time-skipping server computes the analysis of the previous day, draws the day's spot
checks, stores the report with its PNG charts, and emails it (HTML with the charts inline)
to operations; the API lists it and serves its HTML and charts; spot-check accuracy and
suggested catalogue changes appear in it. The schedules themselves: tests/e2e/test_review_schedules.py."""

from __future__ import annotations

import email
import json
import uuid
from datetime import UTC, datetime, timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.review import build_review_activities, recipients
from sentinel.review_report import Chart, charts, link_charts, period, period_label, render_html, report_body
from store.db import engine_for
from store.events import append_event, report_between
from store.spot_checks import mark, queue
from store.tables import WithdrawalEvent
from tests.support.gateway_harness import offline_gateway
from tests.support.workflow_harness import make_settings
from workflows.review_report import ReviewReportWorkflow

PNG = b"\x89PNG\r\n\x1a\n"


def test_period_daily_and_weekly():
    """R30: a daily run reviews the previous UTC day, a weekly one the previous ISO week."""
    at = datetime(2026, 12, 9, 0, 15, tzinfo=UTC)  # a Wednesday
    assert period("daily", at) == (datetime(2026, 12, 8, tzinfo=UTC), datetime(2026, 12, 9, tzinfo=UTC))
    assert period("weekly", at) == (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC))
    assert period("weekly", datetime(2026, 12, 7, 0, 30, tzinfo=UTC))[1] == datetime(2026, 12, 7, tzinfo=UTC)


def test_recipients_from_settings():
    assert recipients("a@x.example, b@x.example", "ops@x.example") == ["a@x.example", "b@x.example"]
    assert recipients(None, "ops@x.example") == ["ops@x.example"]
    assert recipients(None, None) == []


def _withdrawal(engine, wid: str, at: datetime, *, delayed: bool, arrived_after: timedelta) -> None:
    rows = [
        WithdrawalEvent(
            key=f"started/{wid}",
            withdrawal_id=wid,
            kind="started",
            at=at,
            channel="generic",
            bank_code="ICBC",
            amount_band="100-1k",
            currency="CNY",
            delay_threshold_s=600,
        ),
    ]
    if delayed:
        rows += [
            WithdrawalEvent(
                key=f"status/{wid}/d",
                withdrawal_id=wid,
                kind="status",
                at=at + timedelta(minutes=12),
                status="DELAYED",
                category="BANK_DELAY",
                reason_code="AB08",
            ),
            WithdrawalEvent(
                key=f"notice/{wid}/d",
                withdrawal_id=wid,
                kind="notice",
                at=at + timedelta(minutes=12),
                notice_channel="inbox",
                notice_key=f"{wid}/DELAYED/1/inbox",
                stage="DELAYED",
                rung=0,
            ),
        ]
    rows.append(
        WithdrawalEvent(
            key=f"status/{wid}/s", withdrawal_id=wid, kind="status", at=at + arrived_after, status="SUCCEEDED"
        )
    )
    for r in rows:
        append_event(engine, r)


async def run_locked(env, workflow_id: str, task_queue: str):
    """Run the review without letting the test server skip time. The environment's client
    unlocks skipping while it awaits a result, and the server then jumped ten years ahead
    (its idea of "no timeout"), so a second run reviewed a day in 2036. A plain client on the
    same connection keeps the clock at real time; the workflow has no timers."""
    plain = Client(
        env.client.service_client, namespace=env.client.namespace, data_converter=env.client.data_converter
    )
    return await plain.execute_workflow(
        ReviewReportWorkflow.run, "daily", id=workflow_id, task_queue=task_queue
    )


async def test_daily_review_workflow_stores_and_emails_the_report(ts_env, tmp_path, smtp_server):
    """R30, R23: one daily run: report stored with four PNG charts, emailed once with the
    charts inline, spot checks drawn from the day's decisions; a verdict given that day shows
    as accuracy and its suggested change in the report; listed and served by the API."""
    now = (await ts_env.get_current_time()).astimezone(UTC)
    if (now + timedelta(minutes=2)).date() != now.date():  # never straddle midnight
        await ts_env.sleep(timedelta(minutes=3))
        now = (await ts_env.get_current_time()).astimezone(UTC)
    since, until = period("daily", now)
    settings = make_settings(
        tmp_path, smtp_server.port, review_recipients="ops1@sentinel.example,ops2@sentinel.example"
    )
    engine = engine_for(settings.database_url)
    t = since + timedelta(hours=3)
    _withdrawal(engine, "RV-fast", t, delayed=False, arrived_after=timedelta(minutes=2))
    _withdrawal(engine, "RV-false", t, delayed=True, arrived_after=timedelta(minutes=20))  # a false alarm
    _withdrawal(engine, "RV-late", t, delayed=True, arrived_after=timedelta(hours=5))
    _withdrawal(
        engine, "RV-other-day", since - timedelta(hours=3), delayed=True, arrived_after=timedelta(hours=5)
    )

    task_queue = f"review-{uuid.uuid4().hex[:6]}"
    async with Worker(
        ts_env.client,
        task_queue=task_queue,
        workflows=[ReviewReportWorkflow],
        activities=build_review_activities(settings, engine),
    ):
        # a spot check drawn earlier and judged wrong in the period under review
        from store.spot_checks import draw_day

        assert draw_day(engine, since.date(), size=10, min_per_stratum=1) == 2
        first = queue(engine)[0][0]
        mark(
            engine,
            first["id"],
            verdict="wrong",
            reviewer="alice",
            right_category="PLATFORM_ERROR",
            at=since + timedelta(hours=6),
        )
        out = await run_locked(ts_env, f"review-daily-{task_queue}", task_queue)
        # the same period again: stored once, emailed once
        again = await run_locked(ts_env, f"review-daily-2-{task_queue}", task_queue)
    assert (out.since, out.until) == (since, until), (out.since, out.until, since, now)
    assert again.report_id == out.report_id and again.emailed.startswith("already emailed")
    assert out.spot_checks_drawn == 0  # the day's two decisions were drawn before
    assert out.headline["withdrawals"] == 3 and out.headline["false_alarms"] == 1
    assert out.headline["missed_delays"] == 0 and out.headline["delay_notices"] == 2
    assert out.emailed == "emailed to ops1@sentinel.example, ops2@sentinel.example"

    [envelope] = smtp_server.messages
    assert sorted(envelope.rcpt_tos) == ["ops1@sentinel.example", "ops2@sentinel.example"]
    msg = email.message_from_bytes(envelope.content)
    assert msg["Subject"].startswith(
        f"[withdrawal-sentinel] daily review {since.date()}: 3 withdrawals, 1 false"
    )
    pngs = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert sorted(p["Content-ID"] for p in pngs) == [
        "<alarms_by_bank>",
        "<exceptions_by_bank>",
        "<exceptions_by_channel>",
        "<spot_check_accuracy>",
        "<timing>",
    ]
    assert all(p.get_payload(decode=True).startswith(PNG) for p in pngs)
    html = (
        next(p for p in msg.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
    )
    assert "src='cid:timing'" in html and "PLATFORM_ERROR" in html and "sentinel/codes/" in html

    async with offline_gateway(settings) as gw:
        listed = (await gw.http.get("/v1/ops/reports", headers=gw.key("ops"))).json()
        [item] = listed["items"]
        assert item["id"] == out.report_id and item["kind"] == "daily" and item["emailed_at"]
        assert item["summary"]["false_alarms"] == 1 and "timing" in item["charts"]
        page = await gw.http.get(f"/v1/ops/reports/{out.report_id}", headers=gw.key("carol"))
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f"src='/v1/ops/reports/{out.report_id}/charts/timing.png'" in page.text
        png = await gw.http.get(f"/v1/ops/reports/{out.report_id}/charts/timing.png", headers=gw.key("ops"))
        assert (
            png.status_code == 200
            and png.headers["content-type"] == "image/png"
            and png.content.startswith(PNG)
        )
        assert (
            await gw.http.get(f"/v1/ops/reports/{out.report_id}/charts/nope.png", headers=gw.key("ops"))
        ).status_code == 404
        assert (await gw.http.get("/v1/ops/reports", headers=gw.key("alice"))).status_code == 403
        summary = json.loads(
            engine.connect().exec_driver_sql("select summary_json from review_report").scalar()
        )
        assert summary["spot_check_accuracy"] == {
            first["category"]: {"reviewed": 1, "correct": 0, "wrong": 1, "accuracy": 0.0}
        }


def test_charts_render_on_an_empty_period():
    report = report_between(
        engine_for("sqlite://"), datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    )
    out = charts(report, {})
    assert len(out) == 5 and all(c.png.startswith(PNG) for c in out)


def test_period_label_and_the_report_inside_another_page():
    # the operations console shows a report's period, and its HTML's body with its charts
    # pointing at the console's own chart route (gateway/routes_console_reports.py)
    since, until = datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC)
    assert period_label("weekly", since, until) == "2026-11-30 to 2026-12-06"
    assert period_label("daily", since, since + timedelta(days=1), " – ") == "2026-11-30"
    assert period_label("daily", datetime(2026, 11, 30), datetime(2026, 12, 1)) == "2026-11-30"  # naive: UTC
    chart = Chart("timing", "Time to detect", PNG)
    report = report_between(engine_for("sqlite://"), since, until)
    html = render_html("weekly", since, until, report, {}, [], [chart])
    body = report_body(html)
    assert body.lstrip().startswith("<h1>Weekly review") and "<style" not in body and "</body>" not in body
    linked = link_charts(body, lambda name: f"/pages/ops/reports/7/charts/{name}.png?a=1&b=2")
    assert "src='/pages/ops/reports/7/charts/timing.png?a=1&amp;b=2' alt='Time to detect'" in linked
    assert "cid:" not in linked
    assert report_body("<p>no body</p>") == ""
