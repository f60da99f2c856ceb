"""A payout channel adapter whose answers a test scripts. It replaces only the HTTP edge:
classification goes through the real catalogue and classifier (``Channel.observe``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from channels.base import CallbackEvent, Channel, ChannelUnavailable
from sentinel.catalogue import default_catalogue
from sentinel.models import Observation, WithdrawalRequest

UNAVAILABLE = object()


class ScriptedChannel(Channel):
    name = "generic"

    def __init__(self, submit=("ACCEPTED", None), queries=(("PROCESSING", None),), name: str = "generic"):
        super().__init__(default_catalogue())
        self.name = name
        self.submit_answers = [submit] if not isinstance(submit, list) else list(submit)
        self.query_answers = list(queries)
        self.submits: list[str] = []
        self.queries: list[str] = []

    def _answer(self, answers: list, order_id: str, source: str) -> Observation:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer is UNAVAILABLE:
            raise ChannelUnavailable("scripted: channel unavailable")
        status, code = answer
        return self.observe(order_id, status, code, source, datetime.now(UTC))

    async def submit(
        self, request: WithdrawalRequest, order_id: str, callback_url: str | None
    ) -> Observation:
        self.submits.append(order_id)
        return self._answer(self.submit_answers, order_id, "submit")

    async def query(self, order_id: str) -> Observation:
        self.queries.append(order_id)
        return self._answer(self.query_answers, order_id, "poll")

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> CallbackEvent:
        raise NotImplementedError("scripted channel takes callbacks as signals")

    def ack(self) -> tuple[int, str, bytes]:
        return 200, "application/json", b"{}"

    def callback(self, order_id: str, status: str, code: str | None, event_id: str) -> Observation:
        return self.observe(order_id, status, code, "callback", datetime.now(UTC), event_id=event_id)
