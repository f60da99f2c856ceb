"""The inbox as the pages show it (issue #13, R21): one message's fields for the inbox page,
the widget and the red dot's live stream, with its "See progress" link opening the
gateway's own progress page (gateway/page_progress.py :func:`page_for_link`)."""

from __future__ import annotations

from gateway.page_progress import page_for_link
from gateway.web import aware

#: messages on the inbox page and in the widget's panel
INBOX_PAGE = 50


def page_message(m) -> dict:
    return {
        "id": m.id,
        "title": m.title,
        "body": m.body,
        "severity": m.severity,
        "withdrawal_id": m.withdrawal_id,
        "created_at": aware(m.created_at).isoformat(),
        "read": m.read_at is not None,
        "url": page_for_link(m.link) if m.link else None,
    }
