"""Nothing is lost while a provider is down (issue #9 item 4, R8, R33): a notice that stays
true is retried on a capped backoff for as long as the notice policy says (``retry`` in
config/notice_policy.yaml: 24 h for email and SMS by default), not given up after a few
minutes. When it is finally given up, the delivery log says ``given_up`` and operators are
alerted. A retry first checks that the notice is still true."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml
from aiosmtpd.controller import Controller

from sentinel.taxonomy import Stage, WithdrawalStatus
from store.db import engine_for
from store.repo import deliveries_for
from tests.support.common import free_port
from tests.support.scripted_channel import ScriptedChannel
from tests.support.smtp import SmtpSink
from tests.support.workflow_harness import make_request, make_settings, running

ROOT = Path(__file__).resolve().parents[2]


def _policy(tmp_path: Path, **give_up: str) -> Path:
    doc = yaml.safe_load((ROOT / "config" / "notice_policy.yaml").read_text())
    doc["retry"]["give_up_after"].update(give_up)
    path = tmp_path / "notice_policy.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


class _DownSmtp:
    """An SMTP server that is down until ``start()`` (a real aiosmtpd server on its port)."""

    def __init__(self) -> None:
        self.port = free_port()  # nothing listens here yet
        self.sink = SmtpSink("127.0.0.1", self.port)
        self.controller = Controller(self.sink, hostname=self.sink.host, port=self.port)
        self.up = False

    def start(self) -> None:
        self.controller.start()
        self.up = True

    def stop(self) -> None:
        if self.up:
            self.controller.stop()


def _mails_for(sink: SmtpSink, needle: str) -> list[str]:
    texts = [
        m.content.decode("utf-8", "replace") if isinstance(m.content, bytes) else str(m.content)
        for m in sink.messages
    ]
    return [t for t in texts if needle in t]


async def test_smtp_down_for_three_hours_then_back_gives_exactly_one_email(ts_env, tmp_path, unique_id):
    smtp = _DownSmtp()
    settings = make_settings(tmp_path, smtp.port, notice_policy_file=_policy(tmp_path))
    engine, channel, sink = engine_for(settings.database_url), ScriptedChannel(), smtp.sink
    try:
        async with running(ts_env, settings, channel) as client:
            handle = await client.start_withdrawal(make_request(unique_id))
            await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "AC04", "evt-1"))
            for _ in range(6):  # three hours of workflow time, with the retries they bring
                await ts_env.sleep(timedelta(minutes=30))
            email = {d.channel: d for d in deliveries_for(engine, unique_id)}["email"]
            assert email.status == "failed" and email.attempts >= 10, (email.status, email.attempts)
            smtp.start()  # SMTP is back
            view = await handle.result()
    finally:
        smtp.stop()
    assert view.status == WithdrawalStatus.FAILED
    rows = {d.channel: d for d in deliveries_for(engine, unique_id)}
    assert rows["email"].status == "sent"
    assert len(_mails_for(sink, unique_id)) == 1  # exactly one email, three hours late
    detected = next(n for n in view.notices if n.stage == Stage.DETECTED)
    assert "email" in detected.delivered and "email" not in detected.failed


async def test_a_notice_given_up_is_logged_and_operators_are_alerted(ts_env, tmp_path, unique_id):
    # the user's email is given up after 1 h; the operators' alert (24 h) waits for SMTP
    smtp = _DownSmtp()
    settings = make_settings(tmp_path, smtp.port, notice_policy_file=_policy(tmp_path, email="1h"))
    engine, channel, sink = engine_for(settings.database_url), ScriptedChannel(), smtp.sink
    try:
        async with running(ts_env, settings, channel) as client:
            handle = await client.start_withdrawal(make_request(unique_id))
            await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "AC04", "evt-1"))
            for _ in range(4):
                await ts_env.sleep(timedelta(minutes=30))
            smtp.start()
            view = await handle.result()
    finally:
        smtp.stop()
    rows = {d.key.split("/", 1)[1]: d for d in deliveries_for(engine, unique_id)}
    email = rows["DETECTED/1/email"]
    assert email.status == "given_up" and "within 1 h" in email.error, (email.status, email.error)
    alert = next(n for n in view.notices if n.stage == Stage.OPERATOR_ALERT and n.alert)
    assert "given up" in alert.alert and "ops_email" in alert.delivered
    assert any("given up" in e.what for e in view.timeline)
    ops = _mails_for(sink, "was given up")
    assert len(ops) == 1 and unique_id in ops[0]
    assert _mails_for(sink, "user42@example.com") == []  # the user's email never went out late


async def test_a_retry_that_is_no_longer_true_is_not_sent(ts_env, tmp_path, unique_id):
    # a delay notice held by a provider outage is not sent after the money arrived
    smtp = _DownSmtp()
    settings = make_settings(tmp_path, smtp.port, notice_policy_file=_policy(tmp_path))
    engine, channel, sink = (
        engine_for(settings.database_url),
        ScriptedChannel(queries=[("PROCESSING", None)]),
        smtp.sink,
    )
    try:
        async with running(ts_env, settings, channel) as client:
            handle = await client.start_withdrawal(make_request(unique_id))
            await ts_env.sleep(timedelta(minutes=20))  # past threshold + grace: DELAYED, email failing
            assert (await client.status(unique_id)).status == WithdrawalStatus.DELAYED
            await handle.signal("bank_callback", channel.callback(unique_id, "SUCCEEDED", None, "evt-ok"))
            await ts_env.sleep(timedelta(minutes=5))
            smtp.start()
            view = await handle.result()
    finally:
        smtp.stop()
    assert view.status == WithdrawalStatus.SUCCEEDED
    rows = {d.key.split("/", 1)[1]: d for d in deliveries_for(engine, unique_id)}
    assert (
        rows["DELAYED/1/email"].status == "suppressed" and "no longer true" in rows["DELAYED/1/email"].error
    )
    assert not any(
        "delayed" in t.lower() and "resolved" not in t.lower() for t in _mails_for(sink, unique_id)
    )
