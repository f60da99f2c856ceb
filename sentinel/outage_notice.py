"""The texts of the outage notices (issue #14 item 3): the heads-up a user gets once per
incident ("ICBC transfers are slow right now, yours is safe"), folding all of the user's
affected withdrawals into one message, and the resolved notice; and the operator alert of
an incident. Pure: texts from sentinel/templates/outage.yaml (data), zh-CN and en-US."""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from sentinel.locales import template_locale
from sentinel.masking import assert_no_card_number
from sentinel.outage import Incident
from sentinel.render import Brand, RenderedNotice
from sentinel.template_files import bank_name

TEXTS_FILE = Path(__file__).resolve().parent / "templates" / "outage.yaml"
KINDS = ("heads_up", "resolved")
MAX_ORDERS = 10  # listed in one message; the link has the rest


@dataclass(frozen=True)
class Order:
    order_no: str
    card_last4: str


@cache
def texts() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(TEXTS_FILE.read_text(encoding="utf-8"))
    for locale in ("zh-CN", "en-US"):
        for kind in KINDS:
            missing = {"subject", "text", "push_body"} - set(doc[locale][kind])
            if missing:
                raise ValueError(f"outage.yaml: {locale}.{kind} misses {sorted(missing)}")
    return doc


def render_outage_notice(
    kind: str,
    locale: str,
    bank_code: str,
    orders: list[Order],
    *,
    link: str,
    support_phone: str,
    brand: Brand | None = None,
    incident_id: str = "",
) -> RenderedNotice:
    """One user's heads-up (``heads_up``) or all-clear (``resolved``), newest order first."""
    if kind not in KINDS:
        raise ValueError(f"unknown outage notice {kind!r}")
    if not orders:
        raise ValueError("an outage notice names at least one withdrawal")
    locale = template_locale(locale)
    t = texts()[locale]
    listed = t["separator"].join(
        t["order"].format(order_no=o.order_no, card_last4=o.card_last4) for o in orders[:MAX_ORDERS]
    )
    if len(orders) > MAX_ORDERS:
        listed += " …"
    brand = brand or Brand()
    ctx = {
        "brand": brand.for_locale(locale),
        "bank": bank_name(bank_code, locale),
        "orders": listed,
        "count": len(orders),
        "yours": t["yours"]["one" if len(orders) == 1 else "many"],
        "is": t["is"]["one" if len(orders) == 1 else "many"],
        "link": link,
        "support_phone": support_phone,
    }
    subject = t[kind]["subject"].format(**ctx)
    text = t[kind]["text"].format(**ctx).strip() + "\n"
    push_body = t[kind]["push_body"].format(**ctx)
    allow = tuple(o.order_no for o in orders) + (support_phone,)
    for output in (subject, text, push_body):
        assert_no_card_number(output, allow)
    return RenderedNotice(
        subject=subject,
        text=text,
        html="<!DOCTYPE html>\n<html><body><pre>" + html.escape(text) + "</pre></body></html>\n",
        short=f"[{brand.for_locale(locale)}] {push_body}",
        link=link,
        link_kind="track",
        push_title=subject[:40],
        push_body=push_body,
        voice="",
        support_phone=support_phone,
        template_id=f"{locale}/OUTAGE_{kind.upper()}",
        locale=locale,
        title=subject,
        reason=ctx["bank"],
        progress="",
        action="",
        sms_order_dropped=True,
    )


def render_outage_alert(kind: str, incident: Incident, affected_users: int = 0) -> RenderedNotice:
    """The operator alert of an incident (English, like the other operator alerts)."""
    if kind == "fired":
        subject = f"[outage] {incident.bank} via {incident.channel}: incident {incident.id}"
        lines = [
            f"Outage incident {incident.id} fired at {incident.fired_at.isoformat()}.",
            incident.summary(),
            "Affected users get one heads-up each; the progress pages show a banner.",
            "It resolves itself when the rates recover (docs/analysis.md).",
        ]
    elif kind == "resolved":
        subject = f"[resolved] {incident.bank} via {incident.channel}: incident {incident.id}"
        lines = [
            f"Outage incident {incident.id} (fired {incident.fired_at.isoformat()}) has resolved.",
            f"Users who got the heads-up are told it is over: {affected_users}.",
        ]
    else:
        raise ValueError(f"unknown alert {kind!r}")
    text = "\n".join(lines) + "\n"
    return RenderedNotice(
        subject=subject,
        text=text,
        html="<!DOCTYPE html>\n<html><body><pre>" + html.escape(text) + "</pre></body></html>\n",
        short=subject,
        link="",
        link_kind="none",
        template_id=f"en-US/OUTAGE_ALERT_{kind.upper()}",
        locale="en-US",
        title=subject,
        reason=incident.summary(),
        progress="",
        action="",
    )
