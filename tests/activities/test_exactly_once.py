"""Exactly once across a crash between the provider accepting a notice and the delivery log
saying so (issue #5 items 6 and 8, R8). The attempt dies right after Aliyun accepted the
SMS; the row is left ``sending``. When the next attempt takes the row over, it first asks
Aliyun (QuerySendDetails, by the OutId = the notice key) and finds the SMS: it records it as
sent and does not send it again. If Aliyun cannot be asked right now, the row becomes
``unknown`` and the activity retries: it never sends blind. The fake Aliyun checks the
signature and fields of every call over real HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session
from temporalio.testing import ActivityEnvironment

import activities.notify as notify_module
import store.repo as repo
from activities.registry import build_activities
from sentinel.models import Contact, NoticeRequest
from sentinel.taxonomy import ExceptionCategory, Severity, Stage, WithdrawalStatus
from store.db import engine_for
from store.repo import deliveries_for
from store.tables import NoticeDelivery, utcnow
from tests.e2e.test_notice_providers_e2e import provider_settings
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import make_request, pin_local_time, running

CN = Contact(email="u@example.com", phone="+8613800138000")


class Crash(Exception):
    """The worker process dying right after the provider accepted the notice."""


def crash_after_send(monkeypatch, times: int = 1, channel: str = "sms") -> list[int]:
    """``finish_delivery(..., status="sent")`` of an SMS raises ``times`` times: the send
    happened, the log never heard of it."""
    real = notify_module.finish_delivery
    crashes: list[int] = []

    def finish(engine, row_id, *, status, **kw):
        with Session(engine) as session:
            row_channel = session.get(NoticeDelivery, row_id).channel
        if status == "sent" and row_channel == channel and len(crashes) < times:
            crashes.append(row_id)
            raise Crash("worker killed between the provider's accept and the delivery log")
        return real(engine, row_id, status=status, **kw)

    monkeypatch.setattr(notify_module, "finish_delivery", finish)
    return crashes


async def sent_then_crashed(fn, wid: str, monkeypatch) -> tuple[ActivityEnvironment, NoticeRequest]:
    """Run the SMS notice of ``wid`` once: Aliyun accepts it, then the attempt dies."""
    notice = sms_notice(wid)
    crash_after_send(monkeypatch)
    env = ActivityEnvironment()
    with pytest.raises(Crash):
        await env.run(fn, notice)
    return env, notice


def age(engine, key: str, seconds: float) -> None:
    """Let time pass for a row left ``sending`` (a dead attempt is taken over once stale)."""
    with Session(engine) as session:
        session.execute(
            update(NoticeDelivery)
            .where(NoticeDelivery.key == key)
            .values(updated_at=utcnow() - timedelta(seconds=seconds))
        )
        session.commit()


def sms_sent(aliyun) -> list[str]:
    return [r["params"]["OutId"] for r in aliyun.received if r["action"] == "SendSms"]


def sms_notice(wid: str) -> NoticeRequest:
    return NoticeRequest(
        key=f"{wid}/DETECTED/1/sms",
        channel="sms",
        stage=Stage.DETECTED,
        category=ExceptionCategory.ACCOUNT_INFO_ERROR,
        severity=Severity.HIGH,
        status=WithdrawalStatus.FAILED,
        reason_code="AC04",
        withdrawal=make_request(wid, locale="zh-CN", contact=CN),
    )


def deliver_activity(settings):
    fn = next(a for a in build_activities(settings) if getattr(a, "__name__", "") == "deliver_notice")
    return fn, engine_for(settings.database_url)


@pytest.fixture()
def deliver(tmp_path, smtp_server, aliyun, tencent, twilio):
    return deliver_activity(provider_settings(tmp_path, smtp_server.port, aliyun, tencent, twilio))


async def test_a_retry_after_a_crash_mid_send_finds_the_sms_and_does_not_resend(deliver, aliyun, monkeypatch):
    fn, engine = deliver
    env, notice = await sent_then_crashed(fn, "EX1-0001", monkeypatch)
    assert sms_sent(aliyun) == [notice.key]
    [row] = deliveries_for(engine, "EX1-0001")
    assert row.status == "sending"
    # a retry while the dead attempt might still be alive does not send either
    with pytest.raises(Exception, match="being sent by another attempt"):
        await env.run(fn, notice)
    age(engine, notice.key, repo.STALE_SENDING_S + 5)
    result = await env.run(fn, notice)
    assert result.status == "sent" and result.detail == "found at the provider after an interrupted attempt"
    assert sms_sent(aliyun) == [notice.key]  # one SMS, not two
    queries = [r["params"] for r in aliyun.received if r["action"] == "QuerySendDetails"]
    assert queries and queries[0]["PhoneNumber"] == "13800138000" and queries[0]["SendDate"].isdigit()
    [row] = deliveries_for(engine, "EX1-0001")
    assert row.status == "sent" and notice.key in row.provider_message_id
    assert (await env.run(fn, notice)).status == "duplicate"


async def test_when_the_provider_cannot_be_asked_it_waits_and_never_sends_blind(deliver, aliyun, monkeypatch):
    fn, engine = deliver
    env, notice = await sent_then_crashed(fn, "EX2-0001", monkeypatch)
    age(engine, notice.key, repo.STALE_SENDING_S + 5)
    aliyun.plan.append(("http", 503, {"Code": "ServiceUnavailable", "Message": "busy"}))  # the lookup fails
    with pytest.raises(Exception, match="could not check with the provider"):
        await env.run(fn, notice)
    [row] = deliveries_for(engine, "EX2-0001")
    assert row.status == "unknown" and sms_sent(aliyun) == [notice.key]
    result = await env.run(fn, notice)  # the retry asks again, finds it
    assert result.status == "sent" and sms_sent(aliyun) == [notice.key]


class Killed(BaseException):
    """The worker process dying (no provider failover or error handling catches it)."""


async def test_a_notice_never_handed_to_a_provider_is_sent_after_the_crash(
    deliver,
    aliyun,
    tencent,
    monkeypatch,
):
    """R8: the attempt died after claiming the row, before handing the SMS to any provider
    (the log names none): no provider can have it, so the takeover sends it without asking."""
    fn, engine = deliver
    notice = sms_notice("EX3-0001")
    real_send = notify_module.NotifyActivities._send
    died: list[str] = []

    async def die_before_the_request(self, n, *args):
        if not died:
            died.append(n.key)
            raise Crash("worker killed after claiming the row, before calling Aliyun")
        return await real_send(self, n, *args)

    monkeypatch.setattr(notify_module.NotifyActivities, "_send", die_before_the_request)
    env = ActivityEnvironment()
    with pytest.raises(Crash):
        await env.run(fn, notice)
    [row] = deliveries_for(engine, "EX3-0001")
    assert sms_sent(aliyun) == [] and (row.status, row.provider_message_id) == ("sending", None)
    age(engine, notice.key, repo.STALE_SENDING_S + 5)
    result = await env.run(fn, notice)
    assert result.status == "sent" and "interrupted" not in (result.detail or "")
    assert [r["action"] for r in aliyun.received] == ["SendSms"] and tencent.received == []


async def test_a_notice_handed_to_aliyun_alone_is_asked_there_and_sent(
    deliver,
    aliyun,
    tencent,
    monkeypatch,
):
    """R8: the attempt died after the chain named Aliyun in the log, before the request left.
    The takeover asks Aliyun alone (Tencent, which cannot be asked, never had it): not
    there, so it is sent, once. Before the chain recorded its providers, Tencent's "cannot
    tell" held this SMS (``unconfirmed``) although it certainly had not gone out."""
    from notifiers.sms_aliyun import AliyunSmsNotifier

    fn, engine = deliver
    notice = sms_notice("EX6-0001")
    real_send = AliyunSmsNotifier.send
    died: list[str] = []

    async def die_in_the_request(self, n, rendered):
        if not died:
            died.append(n.key)
            raise Killed("worker killed while the request to Aliyun was being built")
        return await real_send(self, n, rendered)

    monkeypatch.setattr(AliyunSmsNotifier, "send", die_in_the_request)
    env = ActivityEnvironment()
    with pytest.raises(Killed):
        await env.run(fn, notice)
    [row] = deliveries_for(engine, "EX6-0001")
    assert (row.status, row.provider_message_id) == ("sending", "handed:aliyun")
    age(engine, notice.key, repo.STALE_SENDING_S + 5)
    result = await env.run(fn, notice)
    assert result.status == "sent"
    assert [r["action"] for r in aliyun.received] == ["QuerySendDetails", "QuerySendDetails", "SendSms"]
    assert sms_sent(aliyun) == [notice.key] and tencent.received == []


async def test_a_notice_that_failed_over_to_tencent_is_held_after_the_crash(
    deliver,
    aliyun,
    tencent,
    monkeypatch,
):
    """R8: Aliyun refused (500), Tencent accepted, the attempt died before the log said so.
    The log names both; Aliyun says no, Tencent cannot be asked: held (``unconfirmed``),
    never a second SMS."""
    fn, engine = deliver
    notice = sms_notice("EX7-0001")
    aliyun.plan.append(("http", 500, {"Code": "InternalError", "Message": "busy"}))
    crash_after_send(monkeypatch)
    env = ActivityEnvironment()
    with pytest.raises(Crash):
        await env.run(fn, notice)
    assert deliveries_for(engine, "EX7-0001")[0].provider_message_id == "handed:aliyun,tencent"
    age(engine, notice.key, repo.STALE_SENDING_S + 5)
    result = await env.run(fn, notice)
    assert result.status == "unconfirmed" and len(tencent.received) == 1
    assert [r["action"] for r in aliyun.received] == ["SendSms", "QuerySendDetails", "QuerySendDetails"]


async def test_an_email_that_smtp_cannot_confirm_is_held_not_sent_twice(deliver, smtp_server, monkeypatch):
    # SMTP cannot be asked: the policy holds email (at most once); the inbox has the notice
    fn, engine = deliver
    notice = sms_notice("EX4-0001").model_copy(
        update={"key": "EX4-0001/DETECTED/1/email", "channel": "email"}
    )
    crash_after_send(monkeypatch, channel="email")
    env = ActivityEnvironment()
    with pytest.raises(Crash):
        await env.run(fn, notice)
    assert len(smtp_server.messages) == 1
    age(engine, notice.key, repo.STALE_SENDING_S + 5)
    result = await env.run(fn, notice)
    assert result.status == "unconfirmed" and "not sent again" in result.detail
    assert len(smtp_server.messages) == 1
    [row] = deliveries_for(engine, "EX4-0001")
    assert row.status == "unconfirmed"
    assert (await env.run(fn, notice)).status == "unconfirmed"  # and it stays held


async def test_an_email_whose_attempt_died_before_data_is_sent_once(deliver, smtp_server, monkeypatch):
    # the attempt died before DATA (the SMTP server cannot have the email): sent after all
    import aiosmtplib

    fn, engine = deliver
    notice = sms_notice("EX5-0001").model_copy(
        update={"key": "EX5-0001/DETECTED/1/email", "channel": "email"}
    )
    real_rcpt = aiosmtplib.SMTP.rcpt
    died: list[str] = []

    async def rcpt(self, recipient, **kw):
        if not died:
            died.append(recipient)
            raise Crash("worker killed while the SMTP server was answering RCPT")
        return await real_rcpt(self, recipient, **kw)

    monkeypatch.setattr(aiosmtplib.SMTP, "rcpt", rcpt)
    env = ActivityEnvironment()
    with pytest.raises(Crash):
        await env.run(fn, notice)
    assert smtp_server.messages == [] and deliveries_for(engine, "EX5-0001")[0].provider_message_id is None
    age(engine, notice.key, repo.STALE_SENDING_S + 5)
    result = await env.run(fn, notice)
    assert result.status == "sent" and len(smtp_server.messages) == 1


@pytest.mark.parametrize("local", ["12:00", "02:30"], ids=["day", "night"])
async def test_workflow_sms_survives_a_crash_between_send_and_log(
    ts_env,
    tmp_path,
    smtp_server,
    unique_id,
    aliyun,
    tencent,
    twilio,
    monkeypatch,
    local,
):
    # the same on the time-skipping server: the activity attempt dies after the send, Temporal
    # retries it, the retry takes the stale row over, finds the SMS at Aliyun: one SMS. At
    # night the SMS waits for 08:00 as a held (batched) notice and goes out through the
    # digest path: a leader that died mid-send is taken over the same way.
    settings = provider_settings(tmp_path, smtp_server.port, aliyun, tencent, twilio)
    crash_after_send(monkeypatch, times=1)
    monkeypatch.setattr(repo, "STALE_SENDING_S", 0)  # the dead attempt is stale at once
    channel = ScriptedChannel()
    contact = CN.model_copy(update={"timezone": await pin_local_time(ts_env, local)})
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id, locale="zh-CN", contact=contact))
        await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "AC04", "evt-1"))
        view = await handle.result()
    detected = next(n for n in view.notices if n.stage == Stage.DETECTED)
    assert "sms" in detected.delivered
    assert sms_sent(aliyun).count(f"{unique_id}/DETECTED/1/sms") == 1
    rows = {d.channel: d for d in deliveries_for(engine_for(settings.database_url), unique_id)}
    assert rows["sms"].status == "sent" and rows["sms"].attempts == 2
