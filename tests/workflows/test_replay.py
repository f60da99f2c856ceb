"""Determinism: recorded histories (tests/workflows/histories/*.json) still replay on the current
workflow code. A change that would break running workflows fails here; guard it with
``workflow.patched()`` (docs/reference/temporal-notes.md) or, once no old workflow runs, re-record with
``python -m tests.support.record_histories``. R33."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.support.history_payloads import opened_texts
from tests.support.temporal import DEV_CONVERTER
from workflows.withdrawal import WithdrawalWorkflow

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))


def test_histories_are_recorded():
    assert len(HISTORIES) >= 5


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path):
    history = WorkflowHistory.from_json(f"withdrawal-{path.stem}", path.read_text())
    replayer = Replayer(workflows=[WithdrawalWorkflow], data_converter=DEV_CONVERTER)
    await replayer.replay_workflow(history)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_history_holds_no_card_number(path: Path):
    # R22: workflow history never carries a card number, not even inside its (decrypted) payloads.
    texts = opened_texts(path.read_text(), DEV_CONVERTER.payload_codec.keyring)
    assert texts, "no payloads decoded"
    for text in texts:
        assert not re.search(r"(?<!\d)\d{12,19}(?!\d)", text), text[:200]
