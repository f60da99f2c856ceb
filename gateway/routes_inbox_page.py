"""The inbox page (issue #13, R21): the user's messages, the red dot's live stream, and
marking a message read (through the inbox API's own code, so the workflow hears of it).
What it shows: docs/pages.md; the API: gateway/routes_inbox.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from temporalio.service import RPCError

from gateway import routes_inbox
from gateway.auth import USER
from gateway.deps import db
from gateway.errors import ApiError
from gateway.page_auth import PageProblem, check_csrf, form, need
from gateway.page_inbox import INBOX_PAGE, page_message
from gateway.page_progress import owner
from gateway.page_streams import stream, stream_slot
from gateway.web import PREFIX, pick_locale, render
from store.inbox import inbox

router = APIRouter(include_in_schema=False)


@router.get(PREFIX + "/inbox")
async def inbox_page(request: Request) -> Response:
    session = need(request, USER)
    state = request.app.state
    messages, unread = await db(inbox, state.engine, session.user_id, INBOX_PAGE, 0)
    return render(
        request,
        "inbox.html",
        pick_locale(request),
        session=session,
        csrf=state.sessions.csrf_for(session),
        messages=[page_message(m) for m in messages],
        unread=unread,
    )


@router.get(PREFIX + "/inbox/events")
async def inbox_events(request: Request) -> Response:
    """The red dot's live stream: ``inbox`` events with the unread count and the newest
    messages (the page shows a pop-up for a new unread HIGH or CRITICAL one)."""
    session = need(request, USER)
    stream_slot(request)
    state = request.app.state

    async def probe():
        messages, unread = await db(inbox, state.engine, session.user_id, 1, 0)
        return (messages[0].id if messages else None, unread)

    async def load():
        messages, unread = await db(inbox, state.engine, session.user_id, 20, 0)
        data: dict[str, Any] = {"unread": unread, "messages": [page_message(m) for m in messages]}
        return (unread, tuple((m["id"], m["read"]) for m in data["messages"])), data

    return stream(request, probe, load, event="inbox", until=session.exp)


@router.post(PREFIX + "/inbox/{message_id}/read")
async def inbox_read(request: Request, message_id: str) -> Response:
    """Mark read through the inbox API's own code (gateway/routes_inbox.py ``read``): the
    workflow gets the read receipt and the notice's escalation stops (R21)."""
    session = need(request, USER)
    fields = await form(request)
    check_csrf(request, session, fields)
    if not message_id.isdigit() or not 1 <= int(message_id) <= 2**31 - 1:
        raise PageProblem("notfound", 404)
    state = request.app.state
    try:
        done = await routes_inbox.read(
            session.user_id,
            int(message_id),
            who=owner(session.user_id),
            engine=state.engine,
            client=state.client,
        )
    except ApiError as err:
        raise PageProblem(
            "notfound" if err.status == 404 else "busy", err.status if err.status == 404 else 503
        ) from None
    except RPCError:
        raise PageProblem("busy", 503) from None
    if "application/json" in request.headers.get("accept", ""):
        _, unread = await db(inbox, state.engine, session.user_id, 1, 0)
        return JSONResponse(
            {"ok": True, "read_at": done.read_at.isoformat() if done.read_at else None, "unread": unread}
        )
    return RedirectResponse(PREFIX + "/inbox", status_code=303)
