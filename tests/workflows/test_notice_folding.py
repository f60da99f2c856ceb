"""Folding (issue #5 item 3, R6, R13): several withdrawals of one user that go wrong within
the fold window become ONE interruptive message. The first notice goes out at once; the
later ones are batched and, when the window ends, go out together as one digest listing
the orders (Aliyun's registered DIGEST template, checked by the fake provider over real
HTTP). The inbox still gets every notice at once; a batched notice whose withdrawal moved
on meanwhile is left out of the digest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from sentinel.models import Contact
from sentinel.notice_policy import load_notice_policy
from sentinel.render import DigestItem, fits_one_sms, render_digest
from sentinel.taxonomy import Severity, Stage
from store.db import engine_for
from store.repo import deliveries_for
from tests.e2e.test_notice_providers_e2e import provider_settings
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import make_request, pin_local_time, running, zone_at

POLICY = load_notice_policy(
    yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "notice_policy.yaml").read_text())
)
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def recent(wid: str, channel: str, at: datetime):
    from sentinel.notice_policy import RecentNotice

    return RecentNotice(withdrawal_id=wid, stage=Stage.DETECTED, category=None, channel=channel, at=at)


def test_fold_window_starts_at_the_users_last_interruptive_notice_about_another_withdrawal():
    window = POLICY.fold.window_s
    args = dict(channel="sms", severity=Severity.HIGH, withdrawal_id="W2", now=T0)
    assert POLICY.fold_until(recent=[], **args) is None
    assert POLICY.fold_until(recent=[recent("W2", "sms", T0)], **args) is None  # its own earlier notice
    assert (
        POLICY.fold_until(recent=[recent("W1", "email", T0)], **args) is None
    )  # not an interruptive channel
    old = T0 - timedelta(seconds=window + 1)
    assert POLICY.fold_until(recent=[recent("W1", "sms", old)], **args) is None  # window over
    late = [recent("W1", "sms", T0 - timedelta(minutes=3)), recent("W0", "sms", T0 - timedelta(minutes=8))]
    assert POLICY.fold_until(recent=late, **args) == T0 - timedelta(minutes=3) + timedelta(seconds=window)
    assert POLICY.fold_until(recent=late, **{**args, "severity": Severity.CRITICAL}) is None  # exempt
    assert POLICY.fold_until(recent=late, **{**args, "channel": "inbox"}) is None


def test_digest_fits_one_sms_in_both_locales_and_names_the_orders():
    for locale in ("zh-CN", "en-US"):
        for n in (2, 3, 7):
            items = [DigestItem(f"W2026112700{i:04d}", "1234") for i in range(n)]
            r = render_digest(
                locale,
                items,
                link="https://app.example/t/x",
                support_phone="95188",
                support_url="https://help.example",
            )
            assert fits_one_sms(r.short), (locale, n, r.short)
            # the SMS has no room for n order numbers: the link has them, and the support number (R19)
            assert str(n) in r.short and "pay.example/w" in r.short and "95188" in r.short
            assert "95188" in r.push_body and "95 188" in r.voice and r.push_title == r.subject
            assert all(i.order_no in r.text for i in items) and "1234" in r.text
            assert r.template_id == f"{locale}/DIGEST"


async def test_three_failures_of_one_user_make_two_sms_not_three(
    ts_env,
    tmp_path,
    smtp_server,
    aliyun,
    tencent,
    twilio,
):
    settings = provider_settings(tmp_path, smtp_server.port, aliyun, tencent, twilio)
    _with_digest_template(settings)
    channel = ScriptedChannel()
    # midday in the user's zone, whatever the hour the suite runs (legal SMS hours)
    noon = zone_at(12, await ts_env.get_current_time())
    contact = Contact(email="u@example.com", phone="+8613800138000", timezone=noon)
    wids = ["FOLD-A-1", "FOLD-A-2", "FOLD-A-3"]
    async with running(ts_env, settings, channel) as client:
        handles = []
        for i, wid in enumerate(wids):
            handle = await client.start_withdrawal(
                make_request(wid, user_id="u-fold", locale="zh-CN", contact=contact)
            )
            handles.append(handle)
            # each fails while the previous one's SMS is the user's latest
            await handle.signal("bank_callback", channel.callback(wid, "FAILED", "AC04", f"evt-{i}"))
            if i == 0:
                await ts_env.sleep(2)
        views = [await h.result() for h in handles]

    engine = engine_for(settings.database_url)
    rows = {wid: {d.channel: d for d in deliveries_for(engine, wid)} for wid in wids}
    assert all(rows[w]["inbox"].status == "sent" for w in wids)  # the inbox is never folded
    sms = [rows[w]["sms"] for w in wids]
    assert sms[0].status in ("sent", "delivered")
    leader = next(r for r in sms[1:] if r.status in ("sent", "delivered"))
    other = next(r for r in sms[1:] if r is not leader)
    assert other.status == "folded" and other.provider_message_id == leader.key
    sent = [
        json.loads(r["params"]["TemplateParam"]) | {"code": r["params"]["TemplateCode"]}
        for r in aliyun.received
        if r["action"] == "SendSms"
    ]
    assert len(sent) == 2, sent  # three failures, two messages
    assert sent[1]["code"] == "SMS_460099" and sent[1]["count"] == "2"
    assert set(sent[1]["orders"].split(",")) == {"FOLD-A-2", "FOLD-A-3"}
    for view in views[1:]:
        detected = next(n for n in view.notices if n.stage == Stage.DETECTED)
        assert "sms" in detected.delivered and detected.deferred, detected
    assert any("folded into one message" in e.what for e in views[1].timeline + views[2].timeline)


def _with_digest_template(settings) -> None:
    data = yaml.safe_load(settings.providers_file.read_text())
    data["aliyun"]["sms"]["templates"]["DIGEST"] = {
        "code": "SMS_460099",
        "params": {"count": "count", "orders": "orders"},
    }
    settings.providers_file.write_text(yaml.safe_dump(data, allow_unicode=True))


async def test_three_failures_at_night_make_one_sms_at_eight_naming_all_three(
    ts_env,
    tmp_path,
    smtp_server,
    aliyun,
    tencent,
    twilio,
):
    """Issue #9 (R6, R13, R21): three withdrawals of one user fail at 02:30 local. Legal SMS
    hours (+86: 08:00-21:00) defer the SMS; at 08:00 local exactly ONE SMS goes out, naming
    the three orders (not three SMS at once). The inbox has all three at 02:30."""
    settings = provider_settings(tmp_path, smtp_server.port, aliyun, tencent, twilio)
    _with_digest_template(settings)
    channel = ScriptedChannel()
    zone = await pin_local_time(ts_env, "02:30")
    night = (await ts_env.get_current_time()).astimezone(ZoneInfo(zone))
    assert (night.hour, night.minute) == (2, 30)
    eight = night.replace(hour=8, minute=0, second=0, microsecond=0).astimezone(UTC)
    contact = Contact(email="u@example.com", phone="+8613800138000", timezone=zone)
    wids = ["NIGHT-1", "NIGHT-2", "NIGHT-3"]
    async with running(ts_env, settings, channel) as client:
        handles = []
        for i, wid in enumerate(wids):
            handle = await client.start_withdrawal(
                make_request(wid, user_id="u-night", locale="zh-CN", contact=contact)
            )
            handles.append(handle)
            await handle.signal("bank_callback", channel.callback(wid, "FAILED", "AC04", f"evt-n{i}"))
        views = [await h.result() for h in handles]

    engine = engine_for(settings.database_url)
    sent = [
        json.loads(r["params"]["TemplateParam"]) | {"code": r["params"]["TemplateCode"]}
        for r in aliyun.received
        if r["action"] == "SendSms"
    ]
    assert len(sent) == 1, sent  # three failures at night: one SMS in the morning
    assert sent[0]["code"] == "SMS_460099" and sent[0]["count"] == "3"
    assert set(sent[0]["orders"].split(",")) == set(wids)
    rows = {wid: {d.channel: d for d in deliveries_for(engine, wid)} for wid in wids}
    sms = [rows[w]["sms"] for w in wids]
    leader = next(r for r in sms if r.status in ("sent", "delivered"))
    assert all(r.status == "folded" and r.provider_message_id == leader.key for r in sms if r is not leader)
    for view in views:
        detected = next(n for n in view.notices if n.stage == Stage.DETECTED)
        # the inbox got it at 02:30, at once; the SMS waited for 08:00 local
        assert "inbox" in detected.delivered and not any(d.startswith("inbox@") for d in detected.deferred)
        assert f"sms@{eight.isoformat()}" in detected.deferred, detected.deferred
        assert "sms" in detected.delivered
        assert detected.at.astimezone(ZoneInfo(zone)).hour == 2
    assert all(rows[w]["inbox"].status == "sent" for w in wids)


async def test_a_batched_notice_no_longer_true_is_left_out_of_the_digest(
    tmp_path, smtp_server, aliyun, tencent, twilio
):
    from temporalio.testing import ActivityEnvironment

    from activities.registry import build_activities
    from sentinel.contracts import ProgressUpdate
    from sentinel.models import NoticeRequest
    from sentinel.taxonomy import ExceptionCategory, WithdrawalStatus
    from store.repo import record_withdrawal, update_progress

    settings = provider_settings(tmp_path, smtp_server.port, aliyun, tencent, twilio)
    deliver = next(a for a in build_activities(settings) if getattr(a, "__name__", "") == "deliver_notice")
    engine = engine_for(settings.database_url)
    contact = Contact(email="u@example.com", phone="+8613800138000")
    reqs = [
        make_request(f"FOLD-B-{i}", user_id="u-fold-b", locale="zh-CN", contact=contact) for i in range(3)
    ]
    for req in reqs:
        record_withdrawal(engine, req, "FAILED")

    def notice(req) -> NoticeRequest:
        return NoticeRequest(
            key=f"{req.withdrawal_id}/DETECTED/1/sms",
            channel="sms",
            stage=Stage.DETECTED,
            category=ExceptionCategory.ACCOUNT_INFO_ERROR,
            severity=Severity.HIGH,
            status=WithdrawalStatus.FAILED,
            reason_code="AC04",
            withdrawal=req,
        )

    env = ActivityEnvironment()
    first, second, third = (notice(r) for r in reqs)
    assert (await env.run(deliver, first)).status == "sent"
    batched = [await env.run(deliver, n) for n in (second, third)]
    assert [b.status for b in batched] == ["batched", "batched"] and batched[0].send_at == batched[1].send_at
    # the third withdrawal moved on (it was paid after all) before the window ended
    update_progress(
        engine,
        ProgressUpdate(
            withdrawal_id=reqs[2].withdrawal_id,
            status=WithdrawalStatus.SUCCEEDED,
            at=datetime.now(UTC),
        ),
    )
    result = await env.run(deliver, second)
    assert result.status == "sent" and "digest" not in (result.detail or "")  # alone: nothing else still true
    assert (await env.run(deliver, third)).status == "suppressed"
    assert (await env.run(deliver, second)).status == "duplicate"  # a retried call never sends twice
    sends = [r for r in aliyun.received if r["action"] == "SendSms"]
    assert len(sends) == 2 and "FOLD-B-1" in sends[1]["params"]["TemplateParam"]
    third_row = {d.channel: d for d in deliveries_for(engine, reqs[2].withdrawal_id)}["sms"]
    assert third_row.status == "suppressed" and "no longer true" in third_row.error
