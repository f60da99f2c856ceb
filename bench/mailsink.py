"""An in-process SMTP sink (aiosmtpd) that records when each message was accepted, keyed
by the withdrawal ids found in it: the "provider accepted the notice" instant."""

from __future__ import annotations

import re
import time

from aiosmtpd.controller import Controller


class _Handler:
    def __init__(self, pattern: str):
        self.rx = re.compile(pattern.encode())
        self.first: dict[str, float] = {}
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        now = time.time()
        self.count += 1
        for m in set(self.rx.findall(envelope.original_content or envelope.content)):
            self.first.setdefault(m.decode(), now)
        return "250 OK"


class MailSink:
    def __init__(self, port: int, pattern: str):
        self.handler = _Handler(pattern)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=port)

    def __enter__(self) -> MailSink:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    @property
    def first(self) -> dict[str, float]:
        return self.handler.first
