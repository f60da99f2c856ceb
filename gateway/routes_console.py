"""The operations console (issue #13, R29): open withdrawals counted by status, exception
category, bank and channel from the projection, each count linking to the Temporal UI's
list of those workflows (a search-attribute query); channel codes the catalogue does not
map; parked callbacks waiting for their withdrawal. Staff sessions of roles operator and
supervisor only (sign in with the API key at /pages/signin); a user's session gets 403.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.auth import OPERATOR, SUPERVISOR
from gateway.deps import db
from gateway.page_auth import need
from gateway.web import PREFIX, pick_locale, render
from store.callbacks import parked_callbacks, unmapped_codes
from store.ops_counts import open_counts

router = APIRouter(include_in_schema=False)

#: projection column -> the workflow's search attribute (workflows/search_attributes.py)
ATTRIBUTES = {
    "status": "WithdrawalStatus",
    "category": "ExceptionCategory",
    "bank_code": "BankCode",
    "channel": "Channel",
}


def temporal_list_url(ui: str, namespace: str, attribute: str, value: str) -> str:
    """The Temporal UI's workflow list for ``attribute = value``, open workflows only."""
    query = f'{attribute}="{value}" AND ExecutionStatus="Running"'
    return f"{ui.rstrip('/')}/namespaces/{quote(namespace)}/workflows?query={quote(query, safe='')}"


@router.get(PREFIX + "/ops")
async def ops(request: Request) -> Response:
    session = need(request, OPERATOR, SUPERVISOR)
    state = request.app.state
    settings = state.settings
    counts = await db(open_counts, state.engine)
    ui = settings.temporal_ui_url()
    tables = {
        name: [
            (
                value,
                n,
                temporal_list_url(ui, settings.temporal_namespace, ATTRIBUTES[name], value)
                if value
                else None,
            )
            for value, n in rows
        ]
        for name, rows in counts.items()
    }
    unmapped, _ = await db(unmapped_codes, state.engine, 20, 0)
    parked, parked_total = await db(parked_callbacks, state.engine, "attention", 20, 0)
    return render(
        request,
        "ops.html",
        pick_locale(request),
        session=session,
        csrf=state.sessions.csrf_for(session),
        tables=tables,
        unmapped=unmapped,
        parked=parked,
        parked_total=parked_total,
    )
