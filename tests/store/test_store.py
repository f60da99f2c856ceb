"""The application database (store/), on SQLite and on PostgreSQL (the production
database): exactly-once notice deliveries, the inbox and its red dot, parked callbacks, no
card numbers anywhere. Also the hot-reloaded configuration files. Requirement IDs in the
comments."""

from __future__ import annotations

import os
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlmodel import Session, SQLModel
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from notifiers.email import EmailNotifier, SmtpConfig
from notifiers.inbox import InboxNotifier
from runtime.config_files import HotFile
from sentinel.catalogue import default_catalogue
from sentinel.models import NoticeRequest
from sentinel.policy import resolve_tracking_policy, validate_delays_document
from sentinel.taxonomy import ExceptionCategory, Severity, Stage, WithdrawalStatus
from store.db import init_schema, make_engine
from store.repo import (
    add_inbox_message,
    claim_delivery,
    deliveries_for,
    finish_delivery,
    inbox,
    mark_parked_delivered,
    mark_read,
    park_callback,
    parked_for,
)
from store.tables import InboxMessage, NoticeDelivery, ParkedCallback
from tests.support.scripted_channel import ScriptedChannel
from tests.support.workflow_harness import TEST_DELAYS, make_request


@pytest.fixture()
def engine(database_url):
    eng = make_engine(database_url)
    init_schema(eng)
    yield eng
    eng.dispose()


def delivery(key: str, wid: str = "W1", channel: str = "inbox") -> NoticeDelivery:
    return NoticeDelivery(
        key=key,
        withdrawal_id=wid,
        user_id="u-42",
        channel=channel,
        provider="app-db",
        stage="DETECTED",
        category="ACCOUNT_INFO_ERROR",
        severity="HIGH",
    )


def message(key: str, user_id: str, wid: str = "W1", title: str = "Withdrawal failed") -> InboxMessage:
    return InboxMessage(
        key=key,
        user_id=user_id,
        withdrawal_id=wid,
        stage="DETECTED",
        severity="HIGH",
        locale="en-US",
        title=title,
        body=f"Your withdrawal {wid} to the card ending 1234 failed.",
    )


def count(engine, table, *where) -> int:
    with Session(engine) as session:
        return len(list(session.exec(select(table).where(*where))))


# --------------------------------------------------------------------------- deliveries (R8)


def test_claim_sends_once_then_reports_already_sent(engine, unique_id):
    # R8: the unique key makes a retried activity send at most once.
    key = f"{unique_id}/DETECTED/1/inbox"
    first = claim_delivery(engine, delivery(key, unique_id))
    assert first.send is True and first.attempts == 1 and first.status == "sending"
    finish_delivery(engine, first.row_id, status="sent", provider_message_id="inbox:7", template_id="t-1")

    again = claim_delivery(engine, delivery(key, unique_id))
    assert again.send is False
    assert again.row_id == first.row_id
    assert again.status == "sent" and again.provider_message_id == "inbox:7"
    [row] = deliveries_for(engine, unique_id)
    assert (row.key, row.status, row.attempts, row.template_id) == (key, "sent", 1, "t-1")


def test_claim_after_failed_attempt_sends_again(engine, unique_id):
    # R8: a failed attempt is retried on the same row, attempts counted, error cleared on success.
    key = f"{unique_id}/DETECTED/1/email"
    first = claim_delivery(engine, delivery(key, unique_id, "email"))
    finish_delivery(engine, first.row_id, status="failed", error="SMTP 451 try later")
    [row] = deliveries_for(engine, unique_id)
    assert row.status == "failed" and row.error == "SMTP 451 try later"

    second = claim_delivery(engine, delivery(key, unique_id, "email"))
    assert second.send is True and second.row_id == first.row_id and second.attempts == 2
    finish_delivery(engine, second.row_id, status="sent", provider_message_id="<m1@sentinel.example>")
    [row] = deliveries_for(engine, unique_id)
    assert (row.status, row.attempts, row.error, row.provider_message_id) == (
        "sent",
        2,
        None,
        "<m1@sentinel.example>",
    )
    assert claim_delivery(engine, delivery(key, unique_id, "email")).send is False


def test_concurrent_claims_keep_one_row(engine, unique_id):
    # R8: two attempts racing on the same key: the unique constraint holds, one row.
    key = f"{unique_id}/DELAYED/1/inbox"
    workers = 4
    barrier = threading.Barrier(workers)
    claims, errors = [], []

    def claim():
        try:
            barrier.wait(timeout=10)
            claims.append(claim_delivery(engine, delivery(key, unique_id)))
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(claims) == workers
    assert count(engine, NoticeDelivery, NoticeDelivery.key == key) == 1
    assert len({c.row_id for c in claims}) == 1
    assert any(c.send for c in claims)
    [row] = deliveries_for(engine, unique_id)
    assert row.status == "sending" and row.attempts >= 1

    # Once it is sent, nobody sends again, however many race.
    finish_delivery(engine, claims[0].row_id, status="sent")
    claims.clear()
    barrier.reset()
    threads = [threading.Thread(target=claim) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and len(claims) == workers
    assert not any(c.send for c in claims)
    assert count(engine, NoticeDelivery, NoticeDelivery.key == key) == 1


# --------------------------------------------------------------------------- inbox (R21)


def test_inbox_add_is_idempotent_and_counts_unread(engine, unique_id):
    # R21: the red dot counts unread messages; a repeated add does not add a second one.
    user = f"u-{unique_id}"
    first = add_inbox_message(engine, message(f"{unique_id}/DETECTED/1/inbox", user))
    again = add_inbox_message(engine, message(f"{unique_id}/DETECTED/1/inbox", user, title="changed"))
    assert again.id == first.id and again.title == "Withdrawal failed"
    add_inbox_message(engine, message(f"{unique_id}/RESOLVED/1/inbox", user))
    messages, unread = inbox(engine, user)
    assert unread == 2 and len(messages) == 2
    assert count(engine, InboxMessage, InboxMessage.user_id == user) == 2


def test_mark_read_only_by_the_owner(engine, unique_id):
    # R21, R22: a message is marked read only by its owner; nobody else sees or changes it.
    owner, other = f"u-{unique_id}", f"x-{unique_id}"
    msg = add_inbox_message(engine, message(f"{unique_id}/DETECTED/1/inbox", owner))
    add_inbox_message(engine, message(f"{unique_id}-o/DETECTED/1/inbox", other))

    assert mark_read(engine, other, msg.id) is False
    assert inbox(engine, owner)[1] == 1
    assert inbox(engine, other)[1] == 1
    assert mark_read(engine, owner, 10**9) is False  # no such message

    at = datetime(2026, 11, 27, 2, 10, tzinfo=UTC)
    assert mark_read(engine, owner, msg.id, at=at) is True
    assert inbox(engine, owner)[1] == 0
    assert mark_read(engine, owner, msg.id) is True  # again: still read, time kept
    [stored], unread = inbox(engine, owner)
    assert unread == 0
    assert stored.read_at.replace(tzinfo=UTC) == at
    assert inbox(engine, other)[1] == 1


def test_inbox_pages_newest_first(engine, unique_id):
    # R21: the app shows the newest first and pages through the rest.
    user = f"u-{unique_id}"
    ids = [add_inbox_message(engine, message(f"{unique_id}/{i}", user, title=f"m{i}")).id for i in range(5)]
    page1, unread = inbox(engine, user, limit=2)
    page2, _ = inbox(engine, user, limit=2, offset=2)
    page3, _ = inbox(engine, user, limit=2, offset=4)
    assert unread == 5
    assert [m.id for m in page1 + page2 + page3] == ids[::-1]
    assert [m.title for m in page1] == ["m4", "m3"]
    assert inbox(engine, user, limit=2, offset=6)[0] == []


# --------------------------------------------------------------------------- parked callbacks (R11)


def test_park_callback_once_per_channel_event(engine, unique_id):
    # R11: a callback for a withdrawal not tracked yet is kept once, delivered once.
    channel = ScriptedChannel()
    obs = channel.callback(unique_id, "FAILED", "AC04", "evt-1")
    assert park_callback(engine, "generic", "evt-1", unique_id, obs.model_dump_json()) is True
    assert park_callback(engine, "generic", "evt-1", unique_id, obs.model_dump_json()) is False
    assert park_callback(engine, "alipay", "evt-1", unique_id, obs.model_dump_json()) is True  # other channel
    later = channel.callback(unique_id, "SUCCEEDED", None, "evt-2")
    assert park_callback(engine, "generic", "evt-2", unique_id, later.model_dump_json()) is True
    assert park_callback(engine, "generic", "evt-9", f"{unique_id}-other", later.model_dump_json()) is True

    rows = parked_for(engine, unique_id)
    assert [(r.channel, r.event_id) for r in rows] == [
        ("generic", "evt-1"),
        ("alipay", "evt-1"),
        ("generic", "evt-2"),
    ]
    assert type(obs).model_validate_json(rows[0].observation_json) == obs

    mark_parked_delivered(engine, [rows[0].id, rows[2].id])
    mark_parked_delivered(engine, [])  # nothing to do
    assert [(r.channel, r.event_id) for r in parked_for(engine, unique_id)] == [("alipay", "evt-1")]
    assert count(engine, ParkedCallback, ParkedCallback.withdrawal_id == unique_id) == 3
    # Delivered rows stay (audit), and a repeat of a delivered event is still not parked again.
    assert park_callback(engine, "generic", "evt-1", unique_id, obs.model_dump_json()) is False
    assert len(parked_for(engine, f"{unique_id}-other")) == 1


# --------------------------------------------------------------------------- no card numbers (R22)

_DIGIT_RUN = re.compile(r"\d[\d -]{10,}\d")
# Hashes (text_sha256, e-mail Message-IDs derived from a hash) are hex digests: they can
# contain long digit runs by chance and cannot carry a card number.
_HEX_DIGEST = re.compile(r"(?=[0-9a-f]*[a-f])[0-9a-f]{32,}")


def card_number_like(value: str) -> list[str]:
    """Runs of 12+ digits (spaces or dashes allowed between them), hex digests removed."""
    text = _HEX_DIGEST.sub("#", value)
    return [m.group() for m in _DIGIT_RUN.finditer(text) if sum(c.isdigit() for c in m.group()) >= 12]


def text_values(engine) -> list[tuple[str, str, str]]:
    """(table, column, value) of every text value of every table of the schema."""
    out = []
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                out.extend(
                    (table.name, column, value) for column, value in row.items() if isinstance(value, str)
                )
    return out


def test_scanner_flags_card_numbers():
    assert card_number_like("card 4111 1111 1111 1111 used") == ["4111 1111 1111 1111"]
    assert card_number_like("6222021234567890123") == ["6222021234567890123"]
    assert card_number_like("card ending 1234, order W2026112701, sha " + "a1" * 32) == []


async def test_no_card_numbers_stored_anywhere(engine, smtp_server, unique_id):
    # R22: after a realistic run (notices in several stages via inbox and e-mail through the
    # real notice activity, parked callbacks), no text column holds a card-number-like run.
    smtp = SmtpConfig("127.0.0.1", smtp_server.port, "Withdrawals <no-reply@sentinel.example>")
    notify = NotifyActivities(
        engine,
        {"inbox": InboxNotifier(engine), "email": EmailNotifier(smtp)},
        default_catalogue(),
        support_phone="95188",
        support_url="https://pay.example/support",
        app_base_url="https://pay.example/app",
        link_secret="test-link-secret",
        link_ttl_s=86400,
    )
    env = ActivityEnvironment()
    now = datetime.now(UTC)
    cases = [
        (
            Stage.DETECTED,
            ExceptionCategory.ACCOUNT_INFO_ERROR,
            WithdrawalStatus.FAILED,
            "AC04",
            Severity.HIGH,
            [],
        ),
        (
            Stage.UNDER_REVIEW,
            ExceptionCategory.RISK_HOLD,
            WithdrawalStatus.UNDER_REVIEW,
            "FR01",
            Severity.HIGH,
            [],
        ),
        (
            Stage.DOCUMENTS_REQUESTED,
            ExceptionCategory.RISK_HOLD,
            WithdrawalStatus.UNDER_REVIEW,
            "FR01",
            Severity.HIGH,
            ["id_photo"],
        ),
        (Stage.DELAYED, ExceptionCategory.BANK_DELAY, WithdrawalStatus.DELAYED, None, Severity.MEDIUM, []),
        (Stage.RESOLVED, ExceptionCategory.BANK_DELAY, WithdrawalStatus.SUCCEEDED, None, Severity.INFO, []),
    ]
    for locale in ("en-US", "zh-CN"):
        wid = f"W{unique_id}{locale[:2]}"
        req = make_request(wid, user_id=f"u-{unique_id}", locale=locale, payee_ref="vault:tok_91f2")
        for stage, category, status, code, severity, documents in cases:
            for channel in ("inbox", "email"):
                notice = NoticeRequest(
                    key=f"{wid}/{stage.value}/1/{channel}",
                    channel=channel,
                    stage=stage,
                    category=category,
                    severity=severity,
                    status=status,
                    reason_code=code,
                    withdrawal=req,
                    eta=now + timedelta(hours=24) if stage == Stage.DELAYED else None,
                    documents=documents,
                )
                result = await env.run(notify.deliver_notice, notice)
                assert result.status == "sent", result
                again = await env.run(notify.deliver_notice, notice)  # a retried activity
                assert again.status == "duplicate"
        obs = ScriptedChannel().callback(wid, "FAILED", "AC04", f"evt-{unique_id}")
        park_callback(engine, "generic", obs.event_id, wid, obs.model_dump_json())

    values = text_values(engine)
    tables = {t for t, _, _ in values}
    assert {"notice_delivery", "inbox_message", "parked_callback"} <= tables
    assert len(smtp_server.messages) == 2 * len(cases)
    assert inbox(engine, f"u-{unique_id}")[1] == 2 * len(cases)
    assert any("1234" in v for t, c, v in values if (t, c) == ("inbox_message", "body"))  # last four only
    leaks = [(t, c, v[:80], card_number_like(v)) for t, c, v in values if card_number_like(v)]
    assert leaks == []


# --------------------------------------------------------------------------- hot config files (R30)


def write(path: Path, doc, *, bump: bool = True) -> None:
    """Write the file and move its modification time forward (coarse clocks)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    if bump:
        later = max(path.stat().st_mtime_ns, before + 1_000_000_000)
        os.utime(path, ns=(later, later))


def delays(version: str, **defaults) -> dict:
    return {"version": version, "defaults": {**TEST_DELAYS["defaults"], **defaults}}


def test_hot_file_reloads_when_the_file_changes(tmp_path):
    # R30: rules change without a code change or a restart.
    path = tmp_path / "delays.yaml"
    write(path, delays("v1"))
    hot = HotFile(path, validate_delays_document)
    assert hot.get()["version"] == "v1"
    assert hot.get() is hot.get()  # unchanged file: not re-read
    write(path, delays("v2", grace="5m"))
    doc = hot.get()
    assert doc["version"] == "v2"
    assert resolve_tracking_policy(doc, "generic", "ICBC").grace_s == 300


def test_hot_file_builds_derived_values_once_per_version(tmp_path):
    path = tmp_path / "delays.yaml"
    write(path, delays("v1"))
    hot = HotFile(path, validate_delays_document)
    builds: list[str] = []

    def build(doc):
        builds.append(doc["version"])
        return resolve_tracking_policy(doc, "generic", "ICBC")

    first = hot.derived(build)
    assert hot.derived(build) is first and builds == ["v1"]  # cached while the file is unchanged
    write(path, delays("v2", grace="5m"))
    assert hot.derived(build).grace_s == 300 and builds == ["v1", "v2"]  # rebuilt after an edit


def test_hot_file_keeps_last_good_version_on_a_broken_edit(tmp_path, caplog):
    # R30: a broken edit is refused and the last good version stays in force.
    path = tmp_path / "delays.yaml"
    write(path, delays("v1"))
    hot = HotFile(path, validate_delays_document)
    assert hot.get()["version"] == "v1"

    write(path, delays("v2-bad", grace="soon"))  # fails validation
    with caplog.at_level("ERROR", logger="runtime.config_files"):
        assert hot.get()["version"] == "v1"
    assert "keeping the previous" in caplog.text and "soon" in caplog.text
    assert hot.get()["version"] == "v1"

    write(path, "version: v3\ndefaults: [unclosed\n")  # not even YAML
    assert hot.get()["version"] == "v1"
    write(path, "- a list\n")  # not a mapping
    assert hot.get()["version"] == "v1"

    write(path, delays("v4"))  # fixed: taken at once
    assert hot.get()["version"] == "v4"


def test_hot_file_invalid_first_load_names_the_file(tmp_path):
    # R30: without a good version to fall back on, loading fails loudly, naming the file.
    path = tmp_path / "delays.yaml"
    write(path, delays("v1", manual_check="1m"))  # manual_check before the delay threshold
    hot = HotFile(path, validate_delays_document)
    with pytest.raises(ValueError) as info:
        hot.get()
    assert str(path) in str(info.value) and "manual_check" in str(info.value)

    broken = tmp_path / "broken.yaml"
    write(broken, "defaults: {grace: [\n")
    with pytest.raises(ValueError, match=re.escape(str(broken))):
        HotFile(broken).get()
