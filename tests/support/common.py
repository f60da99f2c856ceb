"""Small things every kind of test uses: a free port, a unique id, the repository root."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def utcnow() -> datetime:
    return datetime.now(UTC)


@pytest.fixture()
def unique_id():
    return uuid.uuid4().hex[:10]
