"""The progress page a notice's link opens (issue #13, R16, R18, R19, R20), and its live
stream. What it shows: docs/pages.md; its content: gateway/page_progress.py.

Links: a notice carries ``{SENTINEL_APP_BASE_URL}/<kind path>?wid&uid&exp&sig``
(sentinel/links.py). The gateway answers the same kind paths under ``/pages`` with the same
query, verified exactly as the links are made (``verify_link``): ``/pages/withdrawals/track``,
``/pages/withdrawals/documents``, ``/pages/bank-cards/fix`` all open the progress page of
that withdrawal. Point SENTINEL_APP_BASE_URL at ``<gateway>/pages`` or let the app forward
those paths with their query (gateway/page_progress.py ``page_for_link`` does the mapping).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.auth import USER
from gateway.deps import db
from gateway.errors import ApiError
from gateway.page_auth import PageProblem, current
from gateway.page_progress import marker, progress_context, user_view
from gateway.page_streams import stream, stream_slot
from gateway.views import views
from gateway.web import PREFIX, Words, pick_locale, render, render_fragment
from sentinel.links import KINDS, LinkError, verify_link
from store.incidents import incident_for_withdrawal
from store.withdrawals import get_record

router = APIRouter(include_in_schema=False)


def _verified(request: Request, kind: str) -> dict:
    """The signed link's fields, or the friendly page for a damaged or expired link."""
    state = request.app.state
    url = f"https://pages.invalid{PREFIX}/{KINDS[kind]}?{request.url.query}"
    try:
        return verify_link(url, state.settings.link_secret.get_secret_value(), int(state.clock()))
    except LinkError as err:
        raise PageProblem(
            "expired" if str(err) == "link expired" else "link", 403 if "expired" in str(err) else 400
        ) from None


async def _view_or_problem(request: Request, withdrawal_id: str, user_id: str, locale: str):
    try:
        return await user_view(views(request), withdrawal_id, user_id)
    except ApiError as err:
        kind = {404: "unknown", 403: "link"}.get(err.status, "busy")
        raise PageProblem(kind, err.status if err.status in (403, 404) else 503, locale) from None


async def _record_locale(request: Request, withdrawal_id: str) -> str:
    record = await db(get_record, request.app.state.engine, withdrawal_id)
    return pick_locale(request, (record.locale if record else None,))


async def _progress(request: Request, kind: str) -> Response:
    link = _verified(request, kind)
    wid, uid = link["withdrawal_id"], link["user_id"]
    locale = await _record_locale(request, wid)
    view = await _view_or_problem(request, wid, uid, locale)
    state = request.app.state
    session = current(request)
    own = session if session is not None and session.role == USER and session.user_id == uid else None
    incident = await db(incident_for_withdrawal, state.engine, wid)
    context = progress_context(
        view, Words(locale), state.settings, int(state.clock()), incident.bank_code if incident else None
    )
    return render(
        request,
        "progress.html",
        locale,
        session=own,
        csrf=state.sessions.csrf_for(own) if own else "",
        stream_url=f"{PREFIX}/withdrawals/track/events?{request.url.query}",
        **context,
    )


@router.get(PREFIX + "/withdrawals/track")
async def track(request: Request) -> Response:
    return await _progress(request, "track")


@router.get(PREFIX + "/withdrawals/documents")
async def documents(request: Request) -> Response:
    return await _progress(request, "upload_documents")


@router.get(PREFIX + "/bank-cards/fix")
async def fix_card(request: Request) -> Response:
    return await _progress(request, "fix_card")


@router.get(PREFIX + "/withdrawals/track/events")
async def track_events(request: Request) -> Response:
    """The progress page's live stream: ``update`` events carry the new page content."""
    link = _verified(request, "track")
    stream_slot(request)
    wid, uid = link["withdrawal_id"], link["user_id"]
    state = request.app.state
    locale = await _record_locale(request, wid)

    async def probe():
        record = await db(get_record, state.engine, wid)
        return (record.status, record.updated_at) if record else None

    async def load():
        try:
            view = await user_view(views(request), wid, uid)
        except ApiError:
            return None  # keep what the page shows; the next change is sent
        incident = await db(incident_for_withdrawal, state.engine, wid)
        bank = incident.bank_code if incident else None
        context = progress_context(view, Words(locale), state.settings, int(state.clock()), bank)
        return (*marker(view), bank), {
            "status": view.status.value,
            "html": render_fragment("_progress.html", locale, **context),
        }

    return stream(request, probe, load, event="update", until=link["exp"])
