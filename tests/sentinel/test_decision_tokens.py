"""Decision tokens (sentinel/decision_tokens.py, issue #11): the gateway signs each review
decision with Ed25519; only a token that proves this very decision verifies. Pure: the
clock is an argument, pinned here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sentinel.decision_tokens import (
    DecisionTokenError,
    key_is_known,
    new_signing_key,
    parse_public_keys,
    parse_signing_key,
    public_key_of,
    read_claims,
    verify_decision,
)
from sentinel.models import ReviewDecision
from sentinel.settings import DEV_DECISION_PUBLIC_KEY, DEV_DECISION_SIGNING_KEY
from tests.support.decisions import sign

NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
WID = "W-77"
KEYS = parse_public_keys(DEV_DECISION_PUBLIC_KEY)
OTHER_KEY = new_signing_key("dev", bytes(range(32)))  # same key id, another key: a forgery


def approve(reviewer: str = "alice", **extra) -> ReviewDecision:
    return ReviewDecision(decision="approve", reviewer=reviewer, reason="income verified", **extra)


def check(decision: ReviewDecision, **options):
    return verify_decision(
        decision,
        withdrawal_id=options.pop("withdrawal_id", WID),
        public_keys=options.pop("public_keys", KEYS),
        now=options.pop("now", NOW),
        **options,
    )


def test_a_signed_decision_verifies_and_names_who_decided():  # R29
    claims = check(sign(approve(), WID, NOW, role="supervisor", nonce="n" * 22))
    assert (claims.withdrawal_id, claims.reviewer, claims.role, claims.decision, claims.nonce) == (
        WID,
        "alice",
        "supervisor",
        "approve",
        "n" * 22,
    )
    assert claims.expires - claims.issued == 600
    docs = ReviewDecision(
        decision="request_documents", reviewer="bob", reason="source", documents=["id_photo"]
    )
    assert check(sign(docs, WID, NOW)).decision == "request_documents"


@pytest.mark.parametrize(
    "case, make, why",
    [
        ("no token", lambda: approve(), "carries no decision token"),
        ("malformed", lambda: approve(token="dt1.nope"), "malformed"),
        ("forged", lambda: sign(approve(), WID, NOW, key=OTHER_KEY), "signature does not match"),
        (
            "unknown key",
            lambda: sign(approve(), WID, NOW, key=new_signing_key("evil", bytes(32))),
            "unknown key",
        ),
        ("expired", lambda: sign(approve(), WID, NOW - timedelta(seconds=601)), "expired"),
        ("issued ahead", lambda: sign(approve(), WID, NOW + timedelta(minutes=5)), "issued in the future"),
        ("another withdrawal", lambda: sign(approve(), "W-78", NOW), "for withdrawal W-78"),
        (
            "another reviewer",
            lambda: sign(approve("mallory"), WID, NOW, reviewer="alice"),
            "alice's, not mallory's",
        ),
        (
            "another decision",
            lambda: sign(approve(), WID, NOW).model_copy(update={"decision": "reject"}),
            "another decision",
        ),
        (
            "another reason",
            lambda: sign(approve(), WID, NOW).model_copy(update={"reason": "fine by me"}),
            "another decision",
        ),
        ("operator on a risk hold", lambda: sign(approve(), WID, NOW, role="operator"), "may not decide"),
    ],
)
def test_a_token_that_does_not_prove_this_decision_is_refused(case, make, why):  # R22 R29, issue #11
    with pytest.raises(DecisionTokenError, match=why):
        check(make())


def test_a_nonce_is_used_once_and_operators_decide_manual_checks():  # issue #11
    decision = sign(approve(), WID, NOW, nonce="once-" + "x" * 17, role="operator")
    check(decision, manual_check=True)
    with pytest.raises(DecisionTokenError, match="already used"):
        check(decision, manual_check=True, used_nonces=["once-" + "x" * 17])


def test_rotation_accepts_every_listed_key_and_unknown_keys_can_wait_for_a_refresh():  # issue #11
    new = new_signing_key("k2026", bytes(range(1, 33)))
    both = parse_public_keys(f"{public_key_of(new)},{DEV_DECISION_PUBLIC_KEY}")
    assert check(sign(approve(), WID, NOW, key=new), public_keys=both).reviewer == "alice"
    assert check(sign(approve(), WID, NOW), public_keys=both).reviewer == "alice"
    by_new = sign(approve(), WID, NOW, key=new)
    assert not key_is_known(by_new.token, KEYS) and key_is_known(by_new.token, both)
    # the workflow's validator: every check but the signature, which waits for the current keys
    assert check(by_new, unknown_key_ok=True).kid == "k2026"
    with pytest.raises(DecisionTokenError, match="expired"):
        check(sign(approve(), WID, NOW - timedelta(hours=1), key=new), unknown_key_ok=True)


def test_keys_parse_strictly():
    assert parse_signing_key(DEV_DECISION_SIGNING_KEY)[0] == "dev"
    assert public_key_of(DEV_DECISION_SIGNING_KEY) == DEV_DECISION_PUBLIC_KEY
    for bad in (
        "",
        "nokid",
        "dev:not-base64!",
        "dev:" + "QUJD",
        "a b:" + DEV_DECISION_PUBLIC_KEY.split(":")[1],
    ):
        with pytest.raises(ValueError):
            parse_public_keys(bad)
    with pytest.raises(ValueError, match="listed twice"):
        parse_public_keys(f"{DEV_DECISION_PUBLIC_KEY},{DEV_DECISION_PUBLIC_KEY}")
    with pytest.raises(ValueError, match="exactly one"):
        parse_signing_key(f"{DEV_DECISION_SIGNING_KEY},{OTHER_KEY.replace('dev:', 'b:')}")


def test_claims_are_readable_without_the_key_and_tampering_shows():
    token = sign(approve(), WID, NOW).token
    assert read_claims(token).reviewer == "alice"
    head, body, sig = token.split(".")
    flipped = f"{head}.{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{sig}"
    with pytest.raises(DecisionTokenError):
        check(approve(token=flipped))
