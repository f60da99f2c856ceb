"""Activities that talk to payout channels: submit a payout, query its status (R10).
Errors are typed for the workflow's retry policies: ``ChannelUnavailable`` is retried,
``ChannelRejectedRequest`` and ``UnknownChannel`` are not. An answer the code catalogue
does not map is counted for operators (R26), as the gateway does for callbacks."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from channels.base import Channel, ChannelRejectedRequest, ChannelUnavailable, withdrawal_id_for
from sentinel.contracts import QueryInput, SubmitInput
from sentinel.models import Observation
from store.callbacks import count_unmapped


class ChannelActivities:
    def __init__(self, channels: dict[str, Channel], callback_base_url: str, engine: Engine | None = None):
        self.channels = channels
        self.callback_base_url = callback_base_url.rstrip("/")
        self.engine = engine

    async def _count_if_unmapped(self, channel: Channel, obs: Observation, withdrawal_id: str) -> Observation:
        if self.engine is not None:
            await count_unmapped(self.engine, channel.name, obs, withdrawal_id)
        return obs

    def _channel(self, name: str) -> Channel:
        try:
            return self.channels[name]
        except KeyError:
            raise ApplicationError(
                f"no adapter for channel {name!r}; known: {sorted(self.channels)}",
                type="UnknownChannel",
                non_retryable=True,
            ) from None

    @activity.defn(name="submit_payout")
    async def submit_payout(self, inp: SubmitInput) -> Observation:
        channel = self._channel(inp.request.channel)
        callback_url = f"{self.callback_base_url}/v1/callbacks/{channel.name}"
        try:
            obs = await channel.submit(inp.request, inp.order_id, callback_url)
        except ChannelUnavailable as exc:
            raise ApplicationError(str(exc), type="ChannelUnavailable") from None
        except ChannelRejectedRequest as exc:
            raise ApplicationError(str(exc), type="ChannelRejectedRequest", non_retryable=True) from None
        return await self._count_if_unmapped(channel, obs, inp.request.withdrawal_id)

    @activity.defn(name="query_payout")
    async def query_payout(self, inp: QueryInput) -> Observation:
        channel = self._channel(inp.channel)
        try:
            obs = await channel.query(inp.order_id)
        except ChannelUnavailable as exc:
            raise ApplicationError(str(exc), type="ChannelUnavailable") from None
        except ChannelRejectedRequest as exc:
            raise ApplicationError(str(exc), type="ChannelRejectedRequest", non_retryable=True) from None
        return await self._count_if_unmapped(channel, obs, withdrawal_id_for(inp.order_id))
