"""The notice engine (issue #5): the policy as data (ladders, quiet and legal hours,
inhibition, per-user cap) and its use by the workflow: escalation when unread, read on any
channel stops the ladder, deferral to the send window with a re-check before sending."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from sentinel.contracts import NoticeAck
from sentinel.notice_policy import RecentNotice, load_notice_policy
from sentinel.settings import ROOT
from sentinel.taxonomy import ExceptionCategory, Severity, Stage, WithdrawalStatus
from sentinel.windows import TimeWindow
from store.db import engine_for
from store.repo import deliveries_for
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import eventually, make_request, make_settings, running

SHIPPED = yaml.safe_load((ROOT / "config" / "notice_policy.yaml").read_text())
UTC = UTC


def policy(**changes):
    doc = yaml.safe_load((ROOT / "config" / "notice_policy.yaml").read_text())
    doc.update(changes)
    return load_notice_policy(doc)


# --- pure policy ------------------------------------------------------------------------


def test_window_across_midnight():
    w = TimeWindow(start="22:00", end="08:00")
    assert w.contains(datetime(2026, 1, 1, 23, 30)) and w.contains(datetime(2026, 1, 1, 7, 59))
    assert not w.contains(datetime(2026, 1, 1, 8, 0)) and not w.contains(datetime(2026, 1, 1, 21, 59))
    with pytest.raises(ValueError):
        TimeWindow(start="24:00", end="08:00")


def test_quiet_hours_defer_low_severity_in_the_users_zone():
    # R13, R23: a low-severity email at 23:00 Shanghai waits for 08:00 Shanghai; the inbox does not.
    p = policy()
    night = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # 23:00 in Asia/Shanghai
    assert p.send_at("email", Severity.LOW, night, "Asia/Shanghai", None) == datetime(
        2026, 11, 28, 0, 0, tzinfo=UTC
    )
    assert p.send_at("inbox", Severity.LOW, night, "Asia/Shanghai", None) == night
    assert p.send_at("email", Severity.HIGH, night, "Asia/Shanghai", None) == night  # high is not held
    assert p.send_at("email", Severity.LOW, night, "Europe/Berlin", None) == night  # 16:00 in Berlin


def test_legal_hours_hold_sms_whatever_the_severity():
    # Legal SMS hours for +86 apply to HIGH too, and are separate from quiet hours.
    p = policy()
    night = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)  # 22:00 Shanghai
    assert p.send_at("sms", Severity.HIGH, night, "Asia/Shanghai", "+8613800138000") == datetime(
        2026, 11, 28, 0, 0, tzinfo=UTC
    )
    assert p.send_at("push", Severity.HIGH, night, "Asia/Shanghai", "+8613800138000") == night
    assert (
        p.send_at("sms", Severity.HIGH, night, "Asia/Shanghai", "+14155550100") == night
    )  # default: voice only


def test_inhibition_account_problem_suppresses_delay():
    # Alertmanager-style inhibition: "account frozen" makes a "delayed" buzz pointless.
    p = policy()
    now = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    recent = [
        RecentNotice(
            withdrawal_id="W1",
            stage=Stage.DETECTED,
            category=ExceptionCategory.USER_ACCOUNT_RESTRICTED,
            channel="sms",
            at=now - timedelta(hours=2),
        )
    ]
    kwargs = dict(
        stage=Stage.DELAYED,
        category=ExceptionCategory.BANK_DELAY,
        severity=Severity.LOW,
        withdrawal_id="W2",
        recent=recent,
        now=now,
    )
    assert "inhibited" in p.suppression(channel="email", **kwargs)
    assert p.suppression(channel="inbox", **kwargs) is None  # the record is always kept
    assert p.suppression(channel="email", **{**kwargs, "recent": []}) is None
    old = [recent[0].model_copy(update={"at": now - timedelta(days=2)})]
    assert p.suppression(channel="email", **{**kwargs, "recent": old}) is None


def test_cap_folds_interruptions_but_not_critical():
    p = policy()
    now = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    recent = [
        RecentNotice(
            withdrawal_id=f"W{i}",
            stage=Stage.DETECTED,
            category=ExceptionCategory.ACCOUNT_INFO_ERROR,
            channel="sms",
            at=now - timedelta(minutes=10 * i),
        )
        for i in range(3)
    ]
    kwargs = dict(
        stage=Stage.DETECTED,
        category=ExceptionCategory.ACCOUNT_INFO_ERROR,
        withdrawal_id="W9",
        recent=recent,
        now=now,
    )
    assert "folded" in p.suppression(channel="sms", severity=Severity.HIGH, **kwargs)
    assert p.suppression(channel="email", severity=Severity.HIGH, **kwargs) is None  # email is not capped
    assert p.suppression(channel="sms", severity=Severity.CRITICAL, **kwargs) is None
    assert p.suppression(channel="sms", severity=Severity.HIGH, **{**kwargs, "recent": recent[:2]}) is None


def test_policy_validation_names_the_problem():
    doc = dict(SHIPPED)
    doc["ladders"] = {k: v for k, v in SHIPPED["ladders"].items() if k != "CRITICAL"}
    with pytest.raises(ValueError, match="CRITICAL"):
        load_notice_policy(doc)
    with pytest.raises(ValueError):
        load_notice_policy(
            {**SHIPPED, "quiet_hours": {"allowed": {"start": "8am", "end": "22:00"}, "severities": []}}
        )


# --- in the workflow ---------------------------------------------------------------------


def write_policy(tmp_path, **changes):
    doc = yaml.safe_load((ROOT / "config" / "notice_policy.yaml").read_text())
    doc.update(changes)
    path = tmp_path / "notice_policy.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


LADDER = {
    "INFO": {"rungs": [["inbox"]]},
    "LOW": {"rungs": [["inbox", "email"]]},
    "MEDIUM": {"rungs": [["inbox", "email"]]},
    "HIGH": {"rungs": [["inbox"], ["email"]], "escalate_unread_after": "30m"},
    "CRITICAL": {"rungs": [["inbox", "email"]]},
}


async def test_unread_high_notice_escalates_to_the_next_rung(ts_env, tmp_path, smtp_server, unique_id):
    # R21: not read within 30 min: the next rung goes out, once.
    channel = ScriptedChannel()
    settings = make_settings(
        tmp_path, smtp_server.port, notice_policy_file=write_policy(tmp_path, ladders=LADDER)
    )
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "AC04", "evt-1"))
        await ts_env.sleep(timedelta(minutes=10))
        view = await client.status(unique_id)
        assert view.notices[0].channels == ["inbox"] and smtp_server.messages == []
        view = await handle.result()
    [notice] = view.notices
    assert notice.rung == 1 and notice.channels == ["inbox", "email"]
    assert sorted(notice.delivered) == ["email", "inbox"]
    assert len(smtp_server.messages) == 1
    keys = sorted(r.key for r in deliveries_for(engine_for(settings.database_url), unique_id))
    assert keys == [f"{unique_id}/DETECTED/1/email/r1", f"{unique_id}/DETECTED/1/inbox"]


async def test_read_on_any_channel_stops_the_ladder(ts_env, tmp_path, smtp_server, unique_id):
    # R21: read in the app within the deadline: no escalation on any channel.
    channel = ScriptedChannel()
    settings = make_settings(
        tmp_path, smtp_server.port, notice_policy_file=write_policy(tmp_path, ladders=LADDER)
    )
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(make_request(unique_id))
        await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "AC04", "evt-1"))
        await ts_env.sleep(timedelta(minutes=5))
        await handle.signal("notice_read", NoticeAck(key=f"{unique_id}/DETECTED/1/inbox", channel="inbox"))
        view = await handle.result()
    [notice] = view.notices
    assert notice.read_at is not None and notice.rung == 0
    assert smtp_server.messages == []
    assert any("escalation of DETECTED notice stopped" in e.what for e in view.timeline)


async def test_quiet_hours_defer_then_send(ts_env, tmp_path, smtp_server, unique_id):
    # R23: a low-severity email outside the send window waits for it (deferred, not dropped).
    now = await ts_env.get_current_time()
    opens = (now + timedelta(minutes=40)).astimezone(UTC)  # before the 1 h manual check
    window = {"start": opens.strftime("%H:%M"), "end": (opens + timedelta(hours=1)).strftime("%H:%M")}
    path = write_policy(tmp_path, quiet_hours={"allowed": window, "severities": ["LOW", "INFO"]})
    channel = ScriptedChannel(queries=[("PROCESSING", None)])
    settings = make_settings(tmp_path, smtp_server.port, notice_policy_file=path)
    request = make_request(unique_id, contact={"email": "user42@example.com", "timezone": "UTC"})
    async with running(ts_env, settings, channel) as client:
        await client.start_withdrawal(request)
        await ts_env.sleep(timedelta(minutes=15))  # past threshold + grace: DELAYED
        view = await client.status(unique_id)
        assert view.status == WithdrawalStatus.DELAYED
        assert view.notices[0].delivered == ["inbox"] and view.notices[0].deferred
        assert smtp_server.messages == []
        await ts_env.sleep(timedelta(minutes=30))

        async def email_went_out():
            view = await client.status(unique_id)
            assert sorted(view.notices[0].delivered) == ["email", "inbox"]
            assert len(smtp_server.messages) == 1

        await eventually(email_went_out)


async def test_deferred_notice_is_dropped_when_no_longer_true(ts_env, tmp_path, smtp_server, unique_id):
    # Re-check before every send: the money arrived at night, so the morning "delayed" email
    # is not sent; the "arrived" notice goes out instead.
    now = await ts_env.get_current_time()
    opens = (now + timedelta(hours=3)).astimezone(UTC)
    window = {"start": opens.strftime("%H:%M"), "end": (opens + timedelta(hours=1)).strftime("%H:%M")}
    path = write_policy(tmp_path, quiet_hours={"allowed": window, "severities": ["LOW", "INFO"]})
    channel = ScriptedChannel(queries=[("PROCESSING", None)])
    settings = make_settings(tmp_path, smtp_server.port, notice_policy_file=path)
    request = make_request(unique_id, contact={"email": "user42@example.com", "timezone": "UTC"})
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(request)
        await ts_env.sleep(timedelta(minutes=15))
        await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-ok"))
        view = await handle.result()
    delayed, resolved = view.notices
    assert delayed.dropped == ["email"] and "email" not in delayed.delivered
    assert resolved.stage == Stage.RESOLVED and sorted(resolved.delivered) == ["email", "inbox"]
    assert len(smtp_server.messages) == 1  # only "arrived"
