"""In-app inbox: the message the app shows, and its unread red dot (R21).

The inbox is our own database, so after a crash mid-send it can always be asked:
``find_sent`` looks the message up by the notice key, and ``send`` is idempotent on that
key (a second insert returns the stored message). A takeover therefore finds the message
(``sent``) or writes it; the inbox never ends ``unconfirmed`` (docs/reliability.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from notifiers.base import DeliveryError, Notifier
from sentinel.models import NoticeRequest
from sentinel.render import RenderedNotice
from store.inbox import add_inbox_message, find_inbox_message
from store.tables import InboxMessage


def message_id(message: InboxMessage) -> str:
    return f"inbox:{message.id}"


class InboxNotifier(Notifier):
    channel = "inbox"
    provider = "app-db"

    def __init__(self, engine: Engine):
        self.engine = engine

    def can_reach(self, notice: NoticeRequest) -> bool:
        return True

    async def send(self, notice: NoticeRequest, rendered: RenderedNotice) -> str:
        message = InboxMessage(
            key=notice.key,
            user_id=notice.withdrawal.user_id,
            withdrawal_id=notice.withdrawal.withdrawal_id,
            stage=notice.stage.value,
            severity=notice.severity.value,
            locale=rendered.locale,
            title=rendered.subject,
            body=rendered.text,
            link=rendered.link,
        )
        try:
            stored = await asyncio.to_thread(add_inbox_message, self.engine, message)
        except OperationalError as exc:  # the database is unreachable: the retry writes it (idempotent)
            raise DeliveryError(
                f"inbox: database unavailable ({type(exc.orig).__name__})", retryable=True
            ) from None
        return message_id(stored)

    async def find_sent(self, notice: NoticeRequest, tried: Collection[str] | None = None) -> str | None:
        """The stored message of this notice key, None when it was never written (it is then
        written: ``send`` is idempotent on the key, so even a writer still alive cannot make a
        second one)."""
        try:
            found = await asyncio.to_thread(find_inbox_message, self.engine, notice.key)
        except OperationalError as exc:  # cannot ask now: the activity retries, never guesses
            raise DeliveryError(
                f"inbox: database unavailable ({type(exc.orig).__name__})", retryable=True
            ) from None
        return None if found is None else message_id(found)
