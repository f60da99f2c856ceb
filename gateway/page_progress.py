"""The progress page's content for one withdrawal (R16, R18, R19, R20): read through the
gateway's status view as its owner (gateway/views.py ``Views.status`` with the owner as the
caller, so the user's view of ``sentinel/user_view.py``: last four digits only, nothing the
notices do not say), then put in the page's words (gateway/web.py) with the steps, where the
money is and the next step of ``sentinel/progress.py``.

The next-step buttons are signed links to the app's own pages (``SENTINEL_APP_BASE_URL``,
``sentinel/links.py``), made exactly as the links in the notices are: the app still asks the
user to sign in before a card is changed or a document is uploaded.

A notice's link (``{SENTINEL_APP_BASE_URL}/<kind path>?wid&uid&exp&sig``) opens the progress
page under ``/pages`` with the same query (:func:`page_for_link`, docs/pages.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gateway.auth import USER, Principal
from gateway.views import UserStatusOut, Views
from gateway.web import PREFIX, Words, money
from sentinel.catalogue import default_catalogue
from sentinel.links import KINDS, make_link
from sentinel.progress import money_at, next_action, steps
from sentinel.settings import Settings
from sentinel.template_files import bank_name


def page_for_link(link: str) -> str | None:
    """The gateway page (path and query) a notice's link opens, or None for another link."""
    parts = urlsplit(link)
    for path in KINDS.values():
        if parts.path.rstrip("/").endswith("/" + path):
            return f"{PREFIX}/{path}?{parts.query}"
    return None


def track_path(withdrawal_id: str, user_id: str, settings, now: int) -> str:
    """A signed progress link for the user's own pages (records, inbox)."""
    link = make_link(
        "https://pages.invalid" + PREFIX,
        "track",
        withdrawal_id,
        user_id,
        settings.link_secret.get_secret_value(),
        now,
        settings.link_ttl_s,
    )
    page = page_for_link(link)
    if page is None:  # make_link above builds a link of one of KINDS
        raise RuntimeError(f"no page for the track link {link}")
    return page


def owner(user_id: str) -> Principal:
    """The caller a verified link or a user's session stands for."""
    return Principal(name=f"user:{user_id}", role=USER, user_id=user_id)


async def user_view(views: Views, withdrawal_id: str, user_id: str) -> UserStatusOut:
    """The owner's view (live, or the projection when the workflow does not answer in time).
    Raises ApiError 404 (not tracked), 403 (another user's) or 503 (nobody can answer)."""
    view = await views.status(withdrawal_id, owner(user_id))
    assert isinstance(view, UserStatusOut)  # a user principal always gets the user's view
    return view


def reason_words(view: UserStatusOut, t: Words) -> str | None:
    """The reason in plain words: the code catalogue's own sentence for the channel's code
    (what the notice said), else the category's sentence; None when nothing went wrong."""
    if view.reason_code:
        entry = default_catalogue().lookup(view.channel, view.reason_code)
        if entry is not None:
            return entry.reason_text(t.locale)
    if view.category is not None:
        return t(f"reason_{view.category.value}")
    return None


@dataclass(frozen=True)
class Button:
    kind: str  # fix_card, upload_documents
    url: str


def next_button(view: UserStatusOut, settings: Settings, now: int) -> Button | None:
    kind = next_action(view.status, view.category, list(view.awaiting_documents))
    if kind == "none":
        return None
    url = make_link(
        settings.app_base_url,
        kind,
        view.withdrawal_id,
        view.user_id,
        settings.link_secret.get_secret_value(),
        now,
        settings.link_ttl_s,
    )
    return Button(kind, url)


def outage_banner(view: UserStatusOut, t: Words, outage_bank: str | None) -> str | None:
    """The banner of an outage incident of this withdrawal's bank and channel (issue #14,
    store/incidents.py ``incident_for_withdrawal``): shown while the withdrawal is open."""
    if outage_bank is None or view.status.is_final:
        return None
    return t("outage_banner", bank=bank_name(outage_bank, t.locale))


def progress_context(
    view: UserStatusOut, t: Words, settings: Settings, now: int, outage_bank: str | None = None
) -> dict[str, Any]:
    """Everything the progress fragment shows, already in the page's language; with
    ``outage_bank``, the banner of a firing outage incident of that bank."""
    money_key = money_at(view.status)
    return {
        "outage_banner": outage_banner(view, t, outage_bank),
        "view": view,
        "status": view.status.value,
        "steps": steps(view.status),
        "amount": money(view.amount, view.currency, t.locale),
        "reason": reason_words(view, t),
        "money": t(f"money_{money_key}", last4=view.card_last4),
        "button": next_button(view, settings, now),
        "final": view.status.is_final,
        "events": [(e.at, t.event(e.what)) for e in reversed(view.timeline)],
        "as_of": view.as_of,
    }


def marker(view: UserStatusOut) -> tuple:
    """What the live stream compares: a change of any of these is pushed to the page."""
    return (
        view.status,
        view.category,
        view.reason_code,
        view.eta,
        tuple(view.awaiting_documents),
        len(view.timeline),
    )
