"""Workflow history holds no personal data in clear: a withdrawal run through the real
workflow and activities on the time-skipping server, with an email and a phone number,
leaves neither them nor the amount readable in its history; with the keys they are all
there, and the sealed history replays (R22, R33)."""

from __future__ import annotations

from temporalio.worker import Replayer

from sentinel.models import Contact
from sentinel.taxonomy import WithdrawalStatus
from tests.support.history_payloads import opened_texts, stored_texts
from tests.support.scripted_channel import ScriptedChannel
from tests.support.temporal import DEV_CONVERTER
from tests.support.workflow_harness import make_request, make_settings, running
from workflows.withdrawal import WithdrawalWorkflow

EMAIL = "history-secret@example.com"
PHONE = "+8613912345678"
AMOUNT = "4321.09"


async def test_history_holds_no_contact_or_amount_in_clear(ts_env, tmp_path, smtp_server, unique_id):
    channel = ScriptedChannel()
    settings = make_settings(tmp_path, smtp_server.port)
    req = make_request(unique_id, amount=AMOUNT, contact=Contact(email=EMAIL, phone=PHONE))
    async with running(ts_env, settings, channel) as client:
        handle = await client.start_withdrawal(req)
        # an account error: the user is told (email among the channels), so the contact
        # travels through activity inputs too, not only the workflow input
        await handle.signal("bank_callback", channel.callback(unique_id, "FAILED", "AC04", "evt-1"))
        view = await handle.result()
        history = await handle.fetch_history()
    assert view.status == WithdrawalStatus.FAILED
    assert "email" in view.notices[0].delivered
    assert [m.rcpt_tos for m in smtp_server.messages] == [[EMAIL]]

    stored = history.to_json()
    readable = "\n".join(stored_texts(stored))
    for secret in (EMAIL, PHONE, AMOUNT):
        assert secret not in readable, f"{secret} readable in the workflow history"

    # Not vacuous: the history does carry them, sealed; with the keys an operator reads them.
    opened = "\n".join(opened_texts(stored, DEV_CONVERTER.payload_codec.keyring))
    assert opened.count(EMAIL) >= 2 and PHONE in opened and AMOUNT in opened

    # A worker restarting from this history (replay) opens it with the same converter.
    await Replayer(workflows=[WithdrawalWorkflow], data_converter=DEV_CONVERTER).replay_workflow(history)
