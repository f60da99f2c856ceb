"""Issue #11, item 4, done-when (R22): a run full of attempts to hand the system a full card
number, through the gateway and the workflow (a real worker on the time-skipping server,
e-mail to an SMTP sink), leaves no full card number in the database, the captured log
output, the workflow histories or the mail received.

The attempts: a card number as withdrawal id, user id, payee reference (with ``.``, ``_`` and
``/``), e-mail local part, time zone; as a reviewer's reason, a document reference, a deep-link
notice key, an assignee, a device token; in request paths; as a callback's order id and in a
callback's free text. In between, one withdrawal goes the whole way: held for review,
documents requested and uploaded, approved, paid, with its notices by inbox and e-mail."""

from __future__ import annotations

import email
import email.policy
import logging
import re

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from sentinel.models import workflow_id_for
from sentinel.pan import has_card_number
from sentinel.taxonomy import WithdrawalStatus
from tests.store.test_store import text_values
from tests.support.gateway_harness import event, gateway, hold
from tests.support.history_payloads import opened_texts, stored_texts
from tests.support.temporal import DEV_CONVERTER
from tests.support.workflow_harness import make_settings

#: Luhn-valid numbers of several networks and lengths (test numbers, not real cards)
CARDS = [
    "4111111111111111",
    "5500005555555559",
    "378282246310005",
    "6222021234567890128",
    "4012888888881",
    "3530111333300000",
]
#: blanked before the detector looks, as they are machine-made and not cards (times with
#: microseconds have 12 digits, MIME boundaries 19): hex digests (text hashes, Message-IDs),
#: the octal escapes of binary task tokens in the SDK's debug lines, times of day, MIME
#: boundaries, and JSON numbers (unquoted values and lists of them, e.g. a policy's
#: ``[60.0,300.0,900.0,...]`` seconds: a card number is always text, so it is quoted).
#: (The check for the test's own card numbers runs on everything.)
_NOT_TEXT = re.compile(
    r'":\s*\[?-?\d[\d.,\s-]*\]?'
    r"|(?=[0-9a-f]*[a-f])[0-9a-f]{32,}"
    r"|\\[0-7]{3}"
    r"|\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?"
    r"|={3,}\d+={2,}"
)


def leaks(text: str) -> list[str]:
    """What in ``text`` is a full card number: by the detector, and any of CARDS in the
    text's digits however they are separated."""
    digits = "".join(c for c in text if c.isdecimal())
    found = [c for c in CARDS if c in digits]
    if has_card_number(_NOT_TEXT.sub("X", text)):
        found.append(text[:200])
    return found


def written(card: str, sep: str) -> str:
    return sep.join(card[i : i + 4] for i in range(0, len(card), 4))


def mail_texts(raw: bytes) -> list[str]:
    """The raw message, its decoded subject and every decoded part (base64 or quoted-printable)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    texts = [raw.decode("utf-8", "replace"), str(message["subject"])]
    for part in message.walk():
        if not part.is_multipart():
            texts.append(part.get_content() if part.get_content_maintype() == "text" else "")
    return texts


async def attempts(gw, wid: str) -> list[tuple[str, int]]:
    """Every way in for a card number: (what, the gateway's answer) of each. The answers
    are checked after the sweep (tests/gateway/test_card_numbers.py checks each one on its own)."""
    answers = []
    pay, user, http = gw.key("payment-service"), gw.user(f"u-{wid}"), gw.http
    request = {
        "withdrawal_id": "W-SWEEP-X",
        "user_id": "u-sweep",
        "amount": "100.00",
        "currency": "CNY",
        "channel": "generic",
        "bank_code": "ICBC",
        "card_last4": "1111",
        "payee_ref": "vault:tok_1",
        "locale": "en-US",
        "contact": {"email": "sweep@example.com"},
    }
    starts = [
        {"withdrawal_id": CARDS[0]},
        {"withdrawal_id": written(CARDS[1], ".")},
        {"withdrawal_id": written(CARDS[2], "_")},
        {"withdrawal_id": written(CARDS[3], ":")},
        {"user_id": CARDS[4]},
        {"user_id": written(CARDS[5], "-")},
        {"payee_ref": written(CARDS[0], ".")},
        {"payee_ref": written(CARDS[1], "_")},
        {"payee_ref": "vault/" + written(CARDS[2], "/")},
        {"payee_ref": CARDS[3]},
        {"contact": {"email": written(CARDS[4], ".") + "@example.com"}},
        {"contact": {"email": "sweep@example.com", "timezone": CARDS[5]}},
        {"bank_code": CARDS[0]},
    ]
    for change in starts:
        resp = await http.post("/v1/withdrawals", json={**request, **change}, headers=pay)
        answers.append((f"start {change}", resp.status_code))
    for card in CARDS:
        for path in (
            f"/v1/withdrawals/{card}",
            f"/v1/users/{card}/withdrawals",
            f"/v1/users/{card}/inbox",
            f"/v1/reviews/{card}",
        ):
            answers.append((f"GET {path}", (await http.get(path, headers=gw.key("ops"))).status_code))
        answers += [
            (f"{what} {card}", resp.status_code)
            for what, resp in [
                (
                    "document reference",
                    await http.post(
                        f"/v1/withdrawals/{wid}/documents",
                        headers=user,
                        json={"documents": ["id_photo"], "reference": "scans/" + written(card, "/")},
                    ),
                ),
                (
                    "notice key",
                    await http.post(
                        f"/v1/withdrawals/{wid}/notices/ack", headers=user, json={"key": f"{wid}/{card}"}
                    ),
                ),
                (
                    "assignee",
                    await http.post(
                        f"/v1/reviews/{wid}/assign", headers=gw.key("carol"), json={"assignee": card}
                    ),
                ),
                (
                    "device token",
                    await http.post(
                        f"/v1/users/u-{wid}/devices",
                        headers=user,
                        json={"provider": "fcm", "token": f"t:{card}"},
                    ),
                ),
                (
                    "callback order id",
                    await gw.callback(event(written(card, "-"), event_id=f"evt-{card[:6]}")),
                ),
            ]
        ]
    return answers


async def decide(
    gw, wid: str, decision: str, card_reason: str, reason: str, **extra
) -> list[tuple[str, int]]:
    first = await gw.decide(wid, "alice", decision, reason=card_reason, **extra)
    if first.status_code != 200:
        resp = await gw.decide(wid, "alice", decision, reason=reason, **extra)
        assert resp.status_code == 200, resp.text
    return [(f"{decision} reason", first.status_code)]


async def test_no_card_number_reaches_the_database_logs_histories_or_mail(
    ts_env,
    tmp_path,
    smtp_server,
    unique_id,
    caplog,
):
    caplog.set_level(logging.DEBUG)
    settings = make_settings(tmp_path, smtp_server.port)
    wid = f"W-SWEEP-{unique_id}"
    async with gateway(ts_env, settings) as gw:
        req = await hold(gw, wid)  # user u-<wid>, held for review, notices by inbox and e-mail
        answers = await attempts(gw, wid)

        # the legitimate path: documents requested and uploaded, approved, paid; each decision
        # first tried with a card number in the reason (refused; without the guard it would
        # be taken, and the sweep would find the reason in the history, the audit log, ...)
        answers += await decide(
            gw,
            wid,
            "request_documents",
            f"card {written(CARDS[0], ' ')} seen",
            "need the ID",
            documents=["id_photo"],
        )
        await gw.wait_for(wid, lambda v: v.awaiting_documents == ["id_photo"])
        answers += await attempts(gw, wid)  # again while documents are awaited
        if (await gw.view(wid)).awaiting_documents:  # (without the guard, a card reference was taken)
            resp = await gw.http.post(
                f"/v1/withdrawals/{wid}/documents",
                headers=gw.user(f"u-{wid}"),
                json={"documents": ["id_photo"], "reference": "scans/2026-11-27/u-sweep"},
            )
            assert resp.status_code == 202, resp.text
        await gw.wait_for(wid, lambda v: not v.awaiting_documents)
        answers += await decide(gw, wid, "approve", f"matches {written(CARDS[1], '-')}", "documents match")
        # a callback whose free text (ignored by the adapter) carries a card: acknowledged, nothing kept
        paid = event(wid, status="SUCCEEDED", code=None, event_id="evt-paid", message=f"paid to {CARDS[0]}")
        assert (await gw.callback(paid)).status_code == 200
        final = await gw.final(req)
        assert final.status == WithdrawalStatus.SUCCEEDED

        # --- the sweep
        histories = {}
        ids = {workflow_id_for(wid)} | {workflow_id_for(c) for c in CARDS}
        for workflow_id in ids:
            try:
                history = await gw.sentinel.client.get_workflow_handle(workflow_id).fetch_history()
            except RPCError as err:
                assert err.status == RPCStatusCode.NOT_FOUND, err
                continue
            histories[workflow_id] = history.to_json()
        desc = await gw.sentinel.client.get_workflow_handle(workflow_id_for(wid)).describe()
        assert desc.status == WorkflowExecutionStatus.COMPLETED

    db = [(f"{table}.{column}", value) for table, column, value in text_values(gw.engine)]
    assert any(wid in value for _, value in db)  # the sweep looks where the data is
    # what the Temporal server keeps (payloads sealed), and what an operator with the keys reads
    keyring = DEV_CONVERTER.payload_codec.keyring
    history_texts = [
        (workflow_id, text)
        for workflow_id, raw in histories.items()
        for text in stored_texts(raw) + opened_texts(raw, keyring)
    ]
    assert any(f"u-{wid}" in text for _, text in history_texts)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    # (the test's own HTTP client logs each request it makes to the in-process gateway,
    # card numbers in the path included: that is the caller's log, not the system's)
    logs = [
        (r.name, formatter.format(r))
        for r in caplog.records
        if not (r.name == "httpx" and "http://gateway/" in r.getMessage())
    ]
    assert logs, "no log output captured"
    mails = [
        (f"mail {i}", text) for i, m in enumerate(smtp_server.messages) for text in mail_texts(m.content)
    ]
    assert mails and any(wid in text for _, text in mails)

    found = [(where, leak) for where, text in db + history_texts + logs + mails for leak in leaks(text)]
    found += [
        (workflow_id, "a workflow under a card number") for workflow_id in histories if leaks(workflow_id)
    ]
    assert found == [], found[:10]
    assert [(what, status) for what, status in answers if status not in (400, 422)] == []
