"""The records page (issue #13, R20): the user's withdrawals, newest first, filtered by
status and period, each opening its progress page. What it shows: docs/pages.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.auth import USER
from gateway.deps import db
from gateway.page_auth import need
from gateway.page_progress import track_path
from gateway.web import PREFIX, Words, aware, money, pick_locale, render
from sentinel.taxonomy import WithdrawalStatus
from store.withdrawals import user_withdrawals

router = APIRouter(include_in_schema=False)

PERIODS = {"7": 7, "30": 30, "90": 90}
#: the records page filters the user's newest rows in memory (store/repo.py user_withdrawals)
RECORDS_SCAN = 500
RECORDS_PAGE = 20


@router.get(PREFIX + "/records")
async def records(request: Request) -> Response:
    """The user's withdrawals, newest first, filtered by status and period."""
    session = need(request, USER)
    state = request.app.state
    locale = pick_locale(request)
    status = request.query_params.get("status", "")
    status = status if status in WithdrawalStatus.__members__ else ""
    period = request.query_params.get("period", "")
    period = period if period in PERIODS else ""
    try:
        page = max(0, min(int(request.query_params.get("page", "0")), 1000))
    except ValueError:
        page = 0
    rows, _ = await db(user_withdrawals, state.engine, session.user_id, RECORDS_SCAN, 0)
    now = datetime.fromtimestamp(state.clock(), UTC)
    since = now - timedelta(days=PERIODS[period]) if period else None
    picked = [
        r
        for r in rows
        if (not status or r.status == status) and (since is None or aware(r.created_at) >= since)
    ]
    shown = picked[page * RECORDS_PAGE : (page + 1) * RECORDS_PAGE]
    t = Words(locale)
    items = [
        {
            "record": r,
            "amount": _money(r, locale),
            "url": track_path(r.withdrawal_id, r.user_id, state.settings, int(state.clock())),
            "status_words": t(f"status_{r.status}"),
        }
        for r in shown
    ]
    more = None
    if len(picked) > (page + 1) * RECORDS_PAGE:
        more = f"{PREFIX}/records?" + urlencode({"status": status, "period": period, "page": page + 1})
    return render(
        request,
        "records.html",
        locale,
        session=session,
        csrf=state.sessions.csrf_for(session),
        items=items,
        status=status,
        period=period,
        statuses=list(WithdrawalStatus.__members__),
        periods=list(PERIODS),
        more=more,
    )


def _money(record, locale: str) -> str:
    return money(record.amount, record.currency, locale)
