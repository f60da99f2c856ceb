"""Pure notice renderer: templates are data (``sentinel/templates/<locale>.yaml``), this
module only fills them in. No I/O except reading the template files once (cached), no
clock (the caller passes ``now``). The format is described in docs/notices.md.

Every user notice says, in this order: the reason, the progress so far, what to do next,
the order number, "card ending 1234", the link, and the support entry (R7, R8, R9, R14,
R16, R17, R18, R19, R32). Card numbers never leave: only the last four digits are
rendered and every output passes :func:`assert_no_card_number` (R22).

Public API:
    render_notice(notice, *, reason_text, action_text, support_phone, support_url, link, now)
    render_digest(items, ...) / RenderedNotice / Brand

The parts live beside it: template files, schema and compiler in
:mod:`sentinel.template_files` (``link_kind_for``, ``template_id_for``), masking in
:mod:`sentinel.masking`, SMS sizing in :mod:`sentinel.sms_sizing`, amounts and times in
:mod:`sentinel.formatting`, every combination for the template lint in
:mod:`sentinel.template_lint`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from html import escape as _html_escape
from typing import Any

from jinja2 import Template
from pydantic import BaseModel, ConfigDict

from sentinel.formatting import (
    check_url,
    format_amount,
    format_eta,
    hours_until,
    speak_digits,
    tidy,
)
from sentinel.locales import template_locale
from sentinel.masking import assert_no_card_number
from sentinel.models import NoticeRequest
from sentinel.policy import next_step
from sentinel.sms_sizing import fits_one_sms
from sentinel.taxonomy import Stage, WithdrawalStatus
from sentinel.template_files import (
    FIELDS,
    Compiled,
    bank_name,
    load_templates,
    reason_group,
    template_key,
)


@dataclass(frozen=True)
class Brand:
    """Who the notices speak for (settings ``brand_name``, ``brand_name_zh``, ``sms_link``;
    the defaults are the fictional development ones, refused in production)."""

    name: str = "Example Pay"
    name_zh: str = "示例支付"
    sms_link: str = "pay.example/w"

    def for_locale(self, locale: str) -> str:
        return self.name_zh if locale.startswith("zh") else self.name


def _pages(pages: dict[str, str], wallet: str | None) -> dict[str, str]:
    return {**pages, "payee": pages["payee_wallet"] if wallet else pages["payee"]}


def _identity_ctx(compiled: Compiled, locale: str, brand: Brand, support_phone: str) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "brand": brand.for_locale(locale),
        "sms_link": brand.sms_link,
        "support_phone": support_phone,
        "support_phone_tel": re.sub(r"[^\d+]", "", support_phone),
        "support_spoken": speak_digits(re.sub(r"[^\d+ ]", " ", support_phone)).strip(),
    }
    ctx["sms_tag"] = tidy(compiled.labels["sms_tag"].render(ctx))
    return ctx


def _channel_texts(templates: dict[str, Template], ctx: dict[str, Any]) -> dict[str, Any]:
    """SMS (with the order number if it fits one segment, else without: the text then says
    the link has it), push body and voice script, from the notice's parts in ``ctx``."""
    sms = tidy(templates["sms_with_order"].render(ctx))
    dropped = not fits_one_sms(sms)
    if dropped:
        sms = tidy(templates["sms_without_order"].render(ctx))
    voice = speak_digits(tidy(templates["voice"].render({**ctx, "short": ctx["voice_short"]})))
    return {
        "sms": sms,
        "dropped": dropped,
        "push_body": tidy(templates["push_body"].render(ctx)),
        "voice": voice,
    }


class RenderedNotice(BaseModel):
    """A notice ready for a channel: email uses subject/text/html, SMS and push use
    ``short``, the in-app inbox uses subject/text/link."""

    model_config = ConfigDict(extra="forbid")

    subject: str
    text: str
    html: str
    short: str  # the SMS: one segment, brand tag, link and support number included
    link: str
    link_kind: str
    push_title: str = ""  # no order number, at most PUSH_TITLE_COLUMNS columns
    push_body: str = ""  # at most PUSH_BODY_COLUMNS columns, support number included
    voice: str = ""  # made for listening: no brackets or arrows, digits in groups of at most 4
    reason_phrase: str = ""  # the short reason (reason group): China SMS templates' ${reason}
    sms_order_dropped: bool = False  # the SMS had no room for the order number: it says the link has it
    support_phone: str = ""  # the support number every channel's text carries (R19)
    template_id: str
    locale: str  # the locale it is written in (zh-CN / en-US)
    requested_locale: str | None = None  # the user's own, when it had no templates (ja-JP -> en-US)
    # the parts, for a structured in-app view (R32): plain text, not escaped
    title: str
    reason: str
    progress: str
    action: str


def render_notice(
    notice: NoticeRequest,
    *,
    reason_text: str | None = None,
    action_text: str | None = None,
    support_phone: str,
    support_url: str,
    link: str,
    now: datetime | None = None,
    brand: Brand | None = None,
) -> RenderedNotice:
    """Render ``notice`` in the user's locale (an unsupported one falls back,
    :func:`sentinel.locales.template_locale`), for every channel: email and inbox
    (subject/text/html), SMS (``short``), push (``push_title`` / ``push_body``) and voice
    (``voice``), each within its budget (docs/notices.md).

    ``reason_text`` / ``action_text``: code-specific sentences (e.g. "The name on the card
    does not match the bank's records.") that replace the template's own reason / next
    step where the template explains a problem. ``link``: the signed deep link of the kind
    :func:`link_kind_for` returns. ``now``: lets a delay notice say "within N hours".
    ``brand``: the name and short link the texts carry (settings; fictional by default).

    Raises :class:`CardNumberLeak` if any input or output carries a card-number-like
    digit run, ValueError for a bad link / support URL.
    """
    w = notice.withdrawal
    locale = template_locale(w.locale)
    compiled = load_templates(locale)
    doc = compiled.doc
    key = template_key(doc, notice.stage, notice.category, notice.variant)
    template = doc.stages[notice.stage][key]
    fields = compiled.fields[(notice.stage, key)]
    check_url(link, "link")
    check_url(support_url, "support_url")
    allow = (w.withdrawal_id, w.user_id, support_phone, support_url)

    # Fail fast on caller-provided texts, even where a template does not use them (R22).
    for name, value in (
        ("reason_text", reason_text),
        ("action_text", action_text),
        ("support_phone", support_phone),
    ):
        if value:
            assert_no_card_number(value, allow if name != "support_phone" else ())
    for doc_name in notice.documents:
        assert_no_card_number(doc_name, allow)

    documents = [doc.documents.get(d, d) for d in notice.documents]
    eta_hours = hours_until(notice.eta, now)
    tz_name = w.contact.timezone
    wallet = doc.wallets.get(w.channel)
    ctx: dict[str, Any] = {
        **_identity_ctx(compiled, locale, brand or Brand(), support_phone),
        "locale": locale,
        "stage": notice.stage.value,
        "category": notice.category.value if notice.category else None,
        "subtype": notice.subtype,
        "alert": notice.alert,
        "reason_code": notice.reason_code,
        "severity": notice.severity.value,
        "status": notice.status.value,
        "failed": notice.status in (WithdrawalStatus.FAILED, WithdrawalStatus.RETURNED),
        "order_no": w.withdrawal_id,
        "amount": format_amount(w.amount, w.currency, locale),
        "currency": w.currency,
        "card_last4": w.card_last4,
        "bank_code": w.bank_code,
        "bank_name": bank_name(w.bank_code, locale),
        "wallet": wallet,
        "payee_word": doc.labels.account_word if wallet else doc.labels.card_word,
        "payee_label": doc.labels.account_label if wallet else doc.labels.card_label,
        "pages": _pages(doc.pages, wallet),
        "reason_group": reason_group(notice.category, notice.subtype),
        "order_tail": w.withdrawal_id[-4:],
        "channel": w.channel,
        "eta": format_eta(notice.eta, doc.eta_format, tz_name) if notice.eta else None,
        "retry_at": format_eta(notice.retry_at, doc.eta_format, tz_name) if notice.retry_at else None,
        "retry_at_short": format_eta(notice.retry_at, doc.eta_short_format, tz_name)
        if notice.retry_at
        else None,
        "eta_hours": eta_hours,
        "reason_text": tidy(reason_text) if reason_text else None,
        "action_text": tidy(action_text) if action_text else None,
        "documents": documents,
        "documents_text": doc.list_separator.join(documents),
        "support_url": support_url,
        "link": link,
        "link_kind": template.link,
        "link_label": doc.link_labels[template.link],
        "labels": doc.labels.model_dump(),
        "next_step": next_step(notice.status, notice.category),
    }
    ctx["card"] = tidy(compiled.labels["card"].render(ctx))
    ctx["labels"]["card"] = ctx["card"]
    ctx["short_ref"] = tidy(compiled.labels["short_ref"].render(ctx))
    phrase = "hours" if eta_hours is not None else ("at" if notice.eta else "none")
    ctx["eta_phrase"] = tidy(compiled.eta[phrase].render(ctx))
    short_eta = format_eta(notice.eta, doc.eta_short_format, tz_name) if notice.eta else None
    ctx["eta_phrase_short"] = tidy(compiled.eta[phrase].render({**ctx, "eta": short_eta}))
    ctx["money"] = tidy(compiled.money[notice.status].render(ctx))
    category_key = notice.category.value if notice.category else "UNCLASSIFIED"
    ctx["reason_phrase"] = tidy(compiled.reasons[(category_key, ctx["reason_group"])].render(ctx))

    for field in FIELDS:
        ctx[field] = tidy(fields[field].render(ctx))
    # the voice script reads the same short text, with the app's pages as spoken words
    ctx["voice_short"] = tidy(fields["short"].render({**ctx, "pages": _pages(doc.voice_pages, wallet)}))

    layout = compiled.operator_layout if notice.stage is Stage.OPERATOR_ALERT else compiled.layout
    subject = tidy(layout["subject"].render(ctx))
    text = layout["text"].render(ctx).strip() + "\n"
    html = layout["html"].render(ctx).strip() + "\n"
    if notice.stage is Stage.OPERATOR_ALERT:
        channel_texts = {
            "sms": ctx["short"],
            "dropped": False,
            "push_body": ctx["short"],
            "voice": ctx["short"],
        }
    else:
        channel_texts = _channel_texts(compiled.channel_texts, ctx)

    for output in (subject, text, html, *(v for v in channel_texts.values() if isinstance(v, str))):
        assert_no_card_number(output, allow)

    return RenderedNotice(
        subject=subject,
        text=text,
        html=html,
        short=channel_texts["sms"],
        push_title=ctx["title"],
        push_body=channel_texts["push_body"],
        voice=channel_texts["voice"],
        reason_phrase=ctx["reason_phrase"],
        sms_order_dropped=channel_texts["dropped"],
        support_phone=support_phone,
        link=link,
        link_kind=template.link,
        template_id=f"{locale}/{notice.stage.value}/{key}",
        locale=locale,
        requested_locale=w.locale if w.locale != locale else None,
        title=ctx["title"],
        reason=ctx["reason"],
        progress=ctx["progress"],
        action=ctx["action"],
    )


@dataclass(frozen=True)
class DigestItem:
    order_no: str
    card_last4: str


def render_digest(
    locale: str,
    items: list[DigestItem],
    *,
    link: str,
    support_phone: str,
    support_url: str,
    brand: Brand | None = None,
) -> RenderedNotice:
    """One message for several withdrawals of the user (newest first): order numbers and
    card endings only; the app has each one's reason and next step."""
    if len(items) < 2:
        raise ValueError("a digest folds at least two withdrawals")
    locale = template_locale(locale)
    compiled = load_templates(locale)
    doc = compiled.doc
    check_url(link, "link")
    ctx: dict[str, Any] = {
        **_identity_ctx(compiled, locale, brand or Brand(), support_phone),
        "count": len(items),
        "items": items,
        "link": link,
        "labels": doc.labels.model_dump(),
    }
    subject = tidy(compiled.digest["subject"].render(ctx))
    short = tidy(compiled.digest["short"].render(ctx))
    push_body = tidy(compiled.digest["push_body"].render(ctx))
    voice = speak_digits(tidy(compiled.digest["voice"].render(ctx)))
    text = compiled.digest["text"].render(ctx).strip() + "\n"
    html = "<!DOCTYPE html>\n<html><body><pre>" + _html_escape(text) + "</pre></body></html>\n"
    allow = tuple(i.order_no for i in items) + (support_phone, support_url)
    for output in (subject, short, text, push_body, voice):
        assert_no_card_number(output, allow)
    return RenderedNotice(
        subject=subject,
        text=text,
        html=html,
        short=short,
        link=link,
        link_kind="track",
        template_id=f"{locale}/DIGEST",
        locale=locale,
        title=subject,
        reason="",
        progress="",
        action="",
        push_title=subject,
        push_body=push_body,
        voice=voice,
        sms_order_dropped=True,
        support_phone=support_phone,
    )
