"""A real SMTP server (aiosmtpd) that keeps what it receives: the ``smtp_server`` fixture."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

from tests.support.common import free_port


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
