"""Typed delivery states (issue #12 item 3): the delivery row's statuses are one enum with
its allowed moves (sentinel/delivery.py), the store's takeover rule reads them, and the
notice activity reads a frozen row. The stored strings are unchanged (no migration). R8."""

from __future__ import annotations

import dataclasses

import pytest

from sentinel.delivery import (
    CLAIMABLE,
    DONE,
    INITIAL,
    LEADABLE,
    MOVES,
    RECEIPTED,
    DeliveryOutcome,
    DeliveryRow,
    DeliveryStatus,
    may_move,
)
from store.db import init_schema, make_engine
from store.deliveries import (
    claim_delivery,
    delivery_receipt,
    delivery_status,
    finish_delivery,
    give_up_delivery,
)
from store.tables import NoticeDelivery

_D = DeliveryStatus


def test_the_stored_strings_are_the_ones_rows_already_hold():
    """No migration: the enum's values are the strings written before it existed."""
    assert {s.value for s in _D} == {
        "queued",
        "sending",
        "sent",
        "delivered",
        "read",
        "failed",
        "unknown",
        "unconfirmed",
        "suppressed",
        "skipped",
        "duplicate",
        "batched",
        "folding",
        "folded",
        "given_up",
    }
    assert NoticeDelivery().status == "queued"
    # what the workflow sees of a delivery: a subset of the row's states, same words
    assert {o.value for o in DeliveryOutcome} <= {s.value for s in _D}


def test_every_state_has_its_moves_and_the_takeover_sets_fit_them():
    assert set(MOVES) == set(_D)
    for s in CLAIMABLE | LEADABLE:
        assert may_move(s, _D.SENDING), s  # a takeover claims the row: it becomes sending
    for s in DONE:
        assert not may_move(s, _D.SENDING) and not may_move(s, _D.GIVEN_UP), s  # sent is never sent again
    for s in RECEIPTED:
        assert may_move(s, _D.DELIVERED) and may_move(s, _D.FAILED)
    assert not may_move(_D.READ, _D.DELIVERED) and not may_move(_D.DELIVERED, _D.FAILED), "never backwards"
    assert not may_move(_D.UNCONFIRMED, _D.SENDING), "a send that may have happened is never repeated"
    assert INITIAL.isdisjoint(DONE - {_D.SUPPRESSED})
    assert not may_move(_D.GIVEN_UP, _D.GIVEN_UP)


@pytest.fixture()
def engine(database_url):
    eng = make_engine(database_url)
    init_schema(eng)
    yield eng
    eng.dispose()


def _row(key: str, wid: str) -> NoticeDelivery:
    return NoticeDelivery(
        key=key,
        withdrawal_id=wid,
        user_id="u-42",
        channel="sms",
        provider="test",
        stage="DETECTED",
        severity="HIGH",
    )


def test_the_store_returns_a_frozen_row_and_follows_the_moves(engine, unique_id):
    key = f"{unique_id}/DETECTED/1/sms"
    assert delivery_status(engine, key) is None
    claim = claim_delivery(engine, _row(key, unique_id))
    assert claim.send and claim.status is _D.SENDING
    row = delivery_status(engine, key)
    assert isinstance(row, DeliveryRow) and row.status is _D.SENDING and row.row_id == claim.row_id
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.status = _D.SENT  # type: ignore[misc]
    finish_delivery(engine, claim.row_id, status=_D.FAILED, error="down")
    again = claim_delivery(engine, _row(key, unique_id))
    assert again.send and again.previous is _D.FAILED and again.attempts == 2
    finish_delivery(engine, claim.row_id, status=_D.SENT, provider_message_id="m1")
    assert not claim_delivery(engine, _row(key, unique_id)).send, "sent is never taken over"
    assert delivery_receipt(engine, key, _D.DELIVERED) == "delivered"
    assert delivery_receipt(engine, key, _D.FAILED) == "delivered", "a receipt never moves it backwards"
    assert give_up_delivery(engine, key, "late") is False, "nothing left to give up"
