"""In-app inbox: the message the app shows, and its unread red dot (R21)."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine

from notifiers.base import Notifier
from sentinel.models import NoticeRequest
from sentinel.render import RenderedNotice
from store.repo import add_inbox_message
from store.tables import InboxMessage


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
        stored = await asyncio.to_thread(add_inbox_message, self.engine, message)
        return f"inbox:{stored.id}"
