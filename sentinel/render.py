"""Pure notice renderer: templates are data (``sentinel/templates/<locale>.yaml``), this
module only fills them in. No I/O except reading the template files once (cached), no
clock (the caller passes ``now``). The format is described in docs/notices.md.

Every user notice says, in this order: the reason, the progress so far, what to do next,
the order number, "card ending 1234", the link, and the support entry (R7, R8, R9, R14,
R16, R17, R18, R19, R32). Card numbers never leave: only the last four digits are
rendered and every output passes :func:`assert_no_card_number` (R22).

Public API:
    render_notice(notice, *, reason_text, action_text, support_phone, support_url, link, now)
    link_kind_for(notice) / template_id_for(notice)
    assert_no_card_number(text, allow=())
    format_amount(amount, currency, locale)
    sms_info(text) / fits_one_sms(text)
    render_all_combinations(...) / canonical_status(stage, category)
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from html import escape as _html_escape
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from jinja2 import StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, model_validator

from sentinel.currencies import display_places
from sentinel.links import KINDS, make_link
from sentinel.locales import SUPPORTED, template_locale
from sentinel.models import NoticeRequest, WithdrawalRequest
from sentinel.policy import next_step
from sentinel.taxonomy import ExceptionCategory, Severity, Stage, WithdrawalStatus

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
LOCALES: tuple[str, ...] = SUPPORTED
USER_STAGES: tuple[Stage, ...] = tuple(s for s in Stage if s is not Stage.OPERATOR_ALERT)
DEFAULT_KEY = "default"
#: template keys chosen by what the workflow has scheduled, not by category (sentinel/lifecycle.py):
#: RETRYING (a refused payout is sent again at retry_at), LIMIT_WAIT (sent again when a limit
#: resets, on retry_at), OPS_FIX (our side must act first: "delayed", never "failed")
VARIANTS = ("RETRYING", "LIMIT_WAIT", "OPS_FIX")
LinkKind = Literal["fix_card", "upload_documents", "track"]

ETA_HOURS_MAX = 72  # beyond this a date reads better than a number of hours


# --------------------------------------------------------------------------- masking (R22)

_CARD_RUN = re.compile(r"\d(?:[ \-\u00a0]*\d){11,}")


class CardNumberLeak(ValueError):
    """A text would carry a card or account number (12+ digits in a row)."""


def assert_no_card_number(text: str, allow: Iterable[str] = ()) -> None:
    """Raise :class:`CardNumberLeak` if ``text`` has a run of 12 or more digits, spaces and
    dashes allowed between them. ``allow`` lists known identifiers (order number, support
    phone) that may be long digit strings; they are blanked out before the check."""
    for token in sorted((t for t in allow if t), key=len, reverse=True):
        text = text.replace(token, " ")
    m = _CARD_RUN.search(text)
    if m:
        raise CardNumberLeak(
            f"text contains a card-number-like digit run at offset {m.start()}; only the last four digits may be shown"
        )


# --------------------------------------------------------------------------- SMS length

_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")  # two septets each (escape + char)


@dataclass(frozen=True)
class SmsInfo:
    encoding: Literal["GSM-7", "UCS-2"]
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    limit: int  # one segment: 160 septets or 70 code units

    @property
    def fits(self) -> bool:
        return self.units <= self.limit


def sms_info(text: str) -> SmsInfo:
    """Encoding and length of ``text`` as one SMS (3GPP TS 23.038): GSM-7 if every
    character is in the default alphabet or its extension table (extension characters
    count twice), else UCS-2 where characters outside the BMP count twice."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in text):
        return SmsInfo("GSM-7", sum(2 if c in _GSM7_EXTENDED else 1 for c in text), 160)
    return SmsInfo("UCS-2", len(text.encode("utf-16-le")) // 2, 70)


def fits_one_sms(text: str) -> bool:
    return sms_info(text).fits


# --------------------------------------------------------------------------- data tables

BANKS_FILE = Path(__file__).resolve().parent / "banks.yaml"
REASON_GROUPS_FILE = Path(__file__).resolve().parent / "reason_groups.yaml"
PAGES = ("payee", "payee_wallet", "limits", "identity")


@cache
def bank_names() -> dict[str, dict[str, str]]:
    """``sentinel/banks.yaml``: bank code -> {locale: name}."""
    data = yaml.safe_load(BANKS_FILE.read_text(encoding="utf-8")) or {}
    for code, names in data.items():
        if not isinstance(names, dict) or set(names) != set(LOCALES):
            raise ValueError(f"banks.yaml: {code} needs exactly the names {LOCALES}")
    return data


def bank_name(code: str, locale: str) -> str:
    """The bank's name in ``locale`` (``ICBC`` -> 中国工商银行), or the code when unknown."""
    return bank_names().get(code, {}).get(template_locale(locale), code)


@cache
def reason_groups() -> dict[ExceptionCategory, dict[str, tuple[str, ...]]]:
    """``sentinel/reason_groups.yaml``: category -> group -> the subtypes in it."""
    data = yaml.safe_load(REASON_GROUPS_FILE.read_text(encoding="utf-8")) or {}
    out: dict[ExceptionCategory, dict[str, tuple[str, ...]]] = {}
    for category, groups in data.items():
        seen: set[str] = set()
        out[ExceptionCategory(category)] = {}
        for group, subtypes in groups.items():
            if group == DEFAULT_KEY or set(subtypes) & seen:
                raise ValueError(
                    f"reason_groups.yaml: {category}.{group}: 'default' is implicit; a subtype is in one group"
                )
            seen |= set(subtypes)
            out[ExceptionCategory(category)][group] = tuple(subtypes)
    return out


def reason_group(category: ExceptionCategory | None, subtype: str | None) -> str:
    """The reason group of a (category, subtype): ``ACCOUNT_INFO_ERROR`` + ``account-closed``
    -> ``closed``; a subtype in no group -> ``default``."""
    for group, subtypes in reason_groups().get(category, {}).items() if category else ():
        if subtype in subtypes:
            return group
    return DEFAULT_KEY


# --------------------------------------------------------------------------- template files


class NoticeTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    reason: str
    progress: str
    action: str
    short: str
    link: LinkKind


class Layout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str
    text: str
    html: str


class Labels(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_no: str
    amount: str
    card_label: str
    account_label: str  # a wallet payout's account ("Alipay account")
    card: str  # template: "card ending {{ card_last4 }}" / "Alipay account ending 1234" (wallet)
    card_word: str  # "card": what a bank payout goes to, in phrases
    account_word: str  # "account": what a wallet payout goes to
    short_ref: str  # template: order number + card ending for the short text
    next_step: str
    support: str
    support_phone: str
    support_online: str


class EtaPhrases(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hours: str
    at: str
    none: str


class ChannelTexts(BaseModel):
    """How a notice's parts become each channel's text (docs/notices.md, budgets):
    the SMS with the order number, or without it when it does not fit one segment (the
    text then says the order is behind the link), the push body and the voice script."""

    model_config = ConfigDict(extra="forbid")

    sms_with_order: str
    sms_without_order: str
    push_body: str
    voice: str


class DigestTemplate(BaseModel):
    """One message for several withdrawals of a user (folding, config/notice_policy.yaml)."""

    model_config = ConfigDict(extra="forbid")

    subject: str
    short: str
    push_body: str
    voice: str
    text: str


class TemplateFile(BaseModel):
    """The schema of one ``templates/<locale>.yaml`` file."""

    model_config = ConfigDict(extra="forbid")

    locale: str
    sms_tag: str
    list_separator: str
    eta_format: str
    eta_short_format: str
    money_format: dict[str, str]
    labels: Labels
    link_labels: dict[LinkKind, str]
    eta_phrases: EtaPhrases
    documents: dict[str, str]
    money: dict[WithdrawalStatus, str]
    wallets: dict[str, str]  # channel -> wallet name: these channels pay to an account, not a card
    pages: dict[str, str]  # where in the app: payee, payee_wallet, limits, identity (as shown)
    voice_pages: dict[str, str]  # the same, as read aloud (no brackets or arrows)
    reasons: dict[str, dict[str, str]]  # category (or UNCLASSIFIED) -> reason group -> short phrase
    channel_texts: ChannelTexts
    layout: Layout
    operator_layout: Layout
    digest: DigestTemplate
    stages: dict[Stage, dict[str, NoticeTemplate]]

    @model_validator(mode="after")
    def _complete(self) -> TemplateFile:
        missing = [s.value for s in Stage if s not in self.stages]
        if missing:
            raise ValueError(f"stages missing: {missing}")
        known = {c.value for c in ExceptionCategory} | {DEFAULT_KEY} | set(VARIANTS)
        for stage, entries in self.stages.items():
            if DEFAULT_KEY not in entries:
                raise ValueError(f"stage {stage.value} has no '{DEFAULT_KEY}' template")
            unknown = sorted(set(entries) - known)
            if unknown:
                raise ValueError(f"stage {stage.value}: unknown categories {unknown}")
        if set(self.money) != set(WithdrawalStatus):
            raise ValueError("money: one line per WithdrawalStatus is required")
        if set(self.link_labels) != set(KINDS):
            raise ValueError(f"link_labels: one label per link kind {sorted(KINDS)} is required")
        if DEFAULT_KEY not in self.money_format:
            raise ValueError("money_format needs a 'default' pattern")
        if set(self.pages) != set(PAGES) or set(self.voice_pages) != set(PAGES):
            raise ValueError(f"pages and voice_pages: one entry per page {PAGES} is required")
        wanted = {c.value: {DEFAULT_KEY, *groups} for c, groups in reason_groups().items()}
        wanted["UNCLASSIFIED"] = {DEFAULT_KEY}
        for category, groups in wanted.items():
            missing_groups = groups - set(self.reasons.get(category, {}))
            if missing_groups:
                raise ValueError(
                    f"reasons.{category}: a phrase per reason group is required, missing {sorted(missing_groups)}"
                )
        return self


_TEXT_ENV = SandboxedEnvironment(
    undefined=StrictUndefined,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)
_HTML_ENV = SandboxedEnvironment(
    undefined=StrictUndefined,
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)
_FIELDS = ("title", "reason", "progress", "action", "short")


@dataclass(frozen=True)
class _Compiled:
    doc: TemplateFile
    fields: dict[tuple[Stage, str], dict[str, Template]]
    reasons: dict[tuple[str, str], Template]
    channel_texts: dict[str, Template]
    labels: dict[str, Template]
    eta: dict[str, Template]
    money: dict[WithdrawalStatus, Template]
    layout: dict[str, Template]
    operator_layout: dict[str, Template]
    digest: dict[str, Template]


def _compile(source: str, where: str, env: SandboxedEnvironment = _TEXT_ENV) -> Template:
    try:
        return env.from_string(source)
    except Exception as exc:  # jinja2.TemplateSyntaxError and friends
        raise ValueError(f"{where}: {exc}") from exc


def _layout(layout: Layout, where: str) -> dict[str, Template]:
    return {
        "subject": _compile(layout.subject, f"{where}.subject"),
        "text": _compile(layout.text, f"{where}.text"),
        "html": _compile(layout.html, f"{where}.html", _HTML_ENV),
    }


@cache
def load_templates(locale: str) -> _Compiled:
    """Parse, validate and compile ``templates/<locale>.yaml`` once per process."""
    if locale not in LOCALES:
        raise ValueError(f"no templates for locale {locale!r}; available: {LOCALES}")
    path = TEMPLATES_DIR / f"{locale}.yaml"
    doc = TemplateFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    if doc.locale != locale:
        raise ValueError(f"{path.name}: locale field says {doc.locale!r}")
    fields = {
        (stage, key): {f: _compile(getattr(t, f), f"{locale}/{stage.value}/{key}.{f}") for f in _FIELDS}
        for stage, entries in doc.stages.items()
        for key, t in entries.items()
    }
    return _Compiled(
        doc=doc,
        fields=fields,
        reasons={
            (c, g): _compile(t, f"reasons.{c}.{g}")
            for c, groups in doc.reasons.items()
            for g, t in groups.items()
        },
        channel_texts={
            k: _compile(v, f"channel_texts.{k}") for k, v in doc.channel_texts.model_dump().items()
        },
        labels={
            "card": _compile(doc.labels.card, "labels.card"),
            "short_ref": _compile(doc.labels.short_ref, "labels.short_ref"),
            "sms_tag": _compile(doc.sms_tag, "sms_tag"),
        },
        eta={k: _compile(v, f"eta_phrases.{k}") for k, v in doc.eta_phrases.model_dump().items()},
        money={s: _compile(v, f"money.{s.value}") for s, v in doc.money.items()},
        layout=_layout(doc.layout, "layout"),
        operator_layout=_layout(doc.operator_layout, "operator_layout"),
        digest={
            f: _compile(getattr(doc.digest, f), f"digest.{f}")
            for f in ("subject", "short", "push_body", "voice", "text")
        },
    )


def _template_key(
    doc: TemplateFile, stage: Stage, category: ExceptionCategory | None, variant: str | None = None
) -> str:
    entries = doc.stages[stage]
    if variant is not None and variant in entries:
        return variant
    return category.value if category is not None and category.value in entries else DEFAULT_KEY


def template_id_for(notice: NoticeRequest) -> str:
    """E.g. ``en-US/DELAYED/BANK_DELAY`` or ``zh-CN/RESOLVED/default`` (the locale the
    notice is written in: an unsupported one falls back, :func:`template_locale`)."""
    locale = template_locale(notice.withdrawal.locale)
    key = _template_key(load_templates(locale).doc, notice.stage, notice.category, notice.variant)
    return f"{locale}/{notice.stage.value}/{key}"


def link_kind_for(notice: NoticeRequest) -> str:
    """Which deep link the notice's template points to, so the caller can sign it
    (:func:`sentinel.links.make_link`) before calling :func:`render_notice`."""
    compiled = load_templates(template_locale(notice.withdrawal.locale))
    return compiled.doc.stages[notice.stage][
        _template_key(compiled.doc, notice.stage, notice.category, notice.variant)
    ].link


# --------------------------------------------------------------------------- formatting


def format_amount(amount: Decimal, currency: str, locale: str) -> str:
    """``CNY 1,234.50`` (en-US) / ``1,234.50元`` (zh-CN) from a Decimal, never a float.
    Shows the currency's ISO 4217 minor units (:mod:`sentinel.currencies`: ``JPY 1,000``,
    ``KWD 1.500``), trailing zeros past them trimmed, and more digits only if the amount
    really has them (no rounding of money)."""
    places = display_places(amount, currency)
    number = f"{amount:,.{places}f}"
    patterns = load_templates(template_locale(locale)).doc.money_format
    pattern = patterns.get(currency, patterns[DEFAULT_KEY])
    return pattern.replace("{amount}", number).replace("{currency}", currency)


def _zone(name: str) -> timezone | ZoneInfo:
    try:
        return ZoneInfo(name)
    except Exception:  # unknown zone or no tz database: UTC rather than no notice
        return UTC


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _format_eta(eta: datetime, fmt: str, tz_name: str) -> str:
    local = _aware(eta).astimezone(_zone(tz_name))
    offset = local.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    tz_label = f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return local.strftime(fmt.replace("{tz}", tz_label.replace("%", "%%")))


def _eta_hours(eta: datetime | None, now: datetime | None) -> int | None:
    if eta is None or now is None:
        return None
    seconds = (_aware(eta) - _aware(now)).total_seconds()
    if seconds <= 0:
        return None  # overdue: the template falls back to its own words
    hours = max(1, math.ceil(seconds / 3600))
    return hours if hours <= ETA_HOURS_MAX else None


_WS = re.compile(r"\s+")


def _tidy(text: str) -> str:
    """One line: collapse the whitespace that YAML folding and Jinja blocks leave."""
    return _WS.sub(" ", text).strip()


def _check_url(value: str, what: str) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^\s\"'<>]+$", value):
        raise ValueError(f"{what} must be an http(s) URL")
    return value


# --------------------------------------------------------------------------- rendering


PUSH_TITLE_COLUMNS = 40
PUSH_BODY_COLUMNS = 110


@dataclass(frozen=True)
class Brand:
    """Who the notices speak for (settings ``brand_name``, ``brand_name_zh``, ``sms_link``;
    the defaults are the fictional development ones, refused in production)."""

    name: str = "Example Pay"
    name_zh: str = "示例支付"
    sms_link: str = "pay.example/w"

    def for_locale(self, locale: str) -> str:
        return self.name_zh if locale.startswith("zh") else self.name


_DIGITS = re.compile(r"\d+")


def speak_digits(text: str) -> str:
    """Digit runs of more than four split into groups a listener can follow
    (``95188`` -> ``95 188``, ``4008208820`` -> ``400 820 8820``): a voice never reads
    a long number as one number."""

    def group(m: re.Match[str]) -> str:
        d = m.group(0)
        count = -(-len(d) // 4)  # as few groups of at most 4 as possible, the longer ones last
        base, extra = divmod(len(d), count)
        sizes = [base] * (count - extra) + [base + 1] * extra
        starts = [sum(sizes[:i]) for i in range(count)]
        return " ".join(d[start : start + size] for start, size in zip(starts, sizes))

    return _DIGITS.sub(group, text)


def display_columns(text: str) -> int:
    """Columns on a screen: East Asian wide and fullwidth characters count two."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def _pages(pages: dict[str, str], wallet: str | None) -> dict[str, str]:
    return {**pages, "payee": pages["payee_wallet"] if wallet else pages["payee"]}


def _identity_ctx(compiled: _Compiled, locale: str, brand: Brand, support_phone: str) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "brand": brand.for_locale(locale),
        "sms_link": brand.sms_link,
        "support_phone": support_phone,
        "support_phone_tel": re.sub(r"[^\d+]", "", support_phone),
        "support_spoken": speak_digits(re.sub(r"[^\d+ ]", " ", support_phone)).strip(),
    }
    ctx["sms_tag"] = _tidy(compiled.labels["sms_tag"].render(ctx))
    return ctx


def _channel_texts(templates: dict[str, Template], ctx: dict[str, Any]) -> dict[str, Any]:
    """SMS (with the order number if it fits one segment, else without: the text then says
    the link has it), push body and voice script, from the notice's parts in ``ctx``."""
    sms = _tidy(templates["sms_with_order"].render(ctx))
    dropped = not fits_one_sms(sms)
    if dropped:
        sms = _tidy(templates["sms_without_order"].render(ctx))
    voice = speak_digits(_tidy(templates["voice"].render({**ctx, "short": ctx["voice_short"]})))
    return {
        "sms": sms,
        "dropped": dropped,
        "push_body": _tidy(templates["push_body"].render(ctx)),
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
    key = _template_key(doc, notice.stage, notice.category, notice.variant)
    template = doc.stages[notice.stage][key]
    fields = compiled.fields[(notice.stage, key)]
    _check_url(link, "link")
    _check_url(support_url, "support_url")
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
    eta_hours = _eta_hours(notice.eta, now)
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
        "eta": _format_eta(notice.eta, doc.eta_format, tz_name) if notice.eta else None,
        "retry_at": _format_eta(notice.retry_at, doc.eta_format, tz_name) if notice.retry_at else None,
        "retry_at_short": _format_eta(notice.retry_at, doc.eta_short_format, tz_name)
        if notice.retry_at
        else None,
        "eta_hours": eta_hours,
        "reason_text": _tidy(reason_text) if reason_text else None,
        "action_text": _tidy(action_text) if action_text else None,
        "documents": documents,
        "documents_text": doc.list_separator.join(documents),
        "support_url": support_url,
        "link": link,
        "link_kind": template.link,
        "link_label": doc.link_labels[template.link],
        "labels": doc.labels.model_dump(),
        "next_step": next_step(notice.status, notice.category),
    }
    ctx["card"] = _tidy(compiled.labels["card"].render(ctx))
    ctx["labels"]["card"] = ctx["card"]
    ctx["short_ref"] = _tidy(compiled.labels["short_ref"].render(ctx))
    phrase = "hours" if eta_hours is not None else ("at" if notice.eta else "none")
    ctx["eta_phrase"] = _tidy(compiled.eta[phrase].render(ctx))
    short_eta = _format_eta(notice.eta, doc.eta_short_format, tz_name) if notice.eta else None
    ctx["eta_phrase_short"] = _tidy(compiled.eta[phrase].render({**ctx, "eta": short_eta}))
    ctx["money"] = _tidy(compiled.money[notice.status].render(ctx))
    category_key = notice.category.value if notice.category else "UNCLASSIFIED"
    ctx["reason_phrase"] = _tidy(compiled.reasons[(category_key, ctx["reason_group"])].render(ctx))

    for field in _FIELDS:
        ctx[field] = _tidy(fields[field].render(ctx))
    # the voice script reads the same short text, with the app's pages as spoken words
    ctx["voice_short"] = _tidy(fields["short"].render({**ctx, "pages": _pages(doc.voice_pages, wallet)}))

    layout = compiled.operator_layout if notice.stage is Stage.OPERATOR_ALERT else compiled.layout
    subject = _tidy(layout["subject"].render(ctx))
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
    _check_url(link, "link")
    ctx: dict[str, Any] = {
        **_identity_ctx(compiled, locale, brand or Brand(), support_phone),
        "count": len(items),
        "items": items,
        "link": link,
        "labels": doc.labels.model_dump(),
    }
    subject = _tidy(compiled.digest["subject"].render(ctx))
    short = _tidy(compiled.digest["short"].render(ctx))
    push_body = _tidy(compiled.digest["push_body"].render(ctx))
    voice = speak_digits(_tidy(compiled.digest["voice"].render(ctx)))
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


# --------------------------------------------------------------------------- lint helper

_DETECTED_STATUS: dict[ExceptionCategory | None, WithdrawalStatus] = {
    None: WithdrawalStatus.PROCESSING,
    ExceptionCategory.BANK_DELAY: WithdrawalStatus.DELAYED,
    ExceptionCategory.ACCOUNT_INFO_ERROR: WithdrawalStatus.FAILED,
    ExceptionCategory.RISK_HOLD: WithdrawalStatus.UNDER_REVIEW,
    ExceptionCategory.BALANCE_OR_LIMIT: WithdrawalStatus.FAILED,
    ExceptionCategory.PLATFORM_ERROR: WithdrawalStatus.PROCESSING,
    ExceptionCategory.USER_ACCOUNT_RESTRICTED: WithdrawalStatus.FAILED,
    ExceptionCategory.REGULATORY: WithdrawalStatus.FAILED,
    ExceptionCategory.CHANNEL_REJECTED: WithdrawalStatus.FAILED,
    ExceptionCategory.DUPLICATE: WithdrawalStatus.MANUAL_CHECK,
    ExceptionCategory.AWAITING_USER_ACTION: WithdrawalStatus.PROCESSING,
    ExceptionCategory.CANCELLED: WithdrawalStatus.FAILED,
    ExceptionCategory.RETURNED_AFTER_SUCCESS: WithdrawalStatus.RETURNED,
}
_STAGE_STATUS: dict[Stage, WithdrawalStatus] = {
    Stage.DELAYED: WithdrawalStatus.DELAYED,
    Stage.UNDER_REVIEW: WithdrawalStatus.UNDER_REVIEW,
    Stage.DOCUMENTS_REQUESTED: WithdrawalStatus.UNDER_REVIEW,
    Stage.REVIEW_DELAYED: WithdrawalStatus.UNDER_REVIEW,
    Stage.DOCUMENTS_EXPIRED: WithdrawalStatus.FAILED,
    Stage.MANUAL_CHECK: WithdrawalStatus.MANUAL_CHECK,
    Stage.APPROVED: WithdrawalStatus.PROCESSING,
    Stage.REJECTED: WithdrawalStatus.FAILED,
    Stage.RESOLVED: WithdrawalStatus.SUCCEEDED,
    Stage.CORRECTION: WithdrawalStatus.MANUAL_CHECK,
    Stage.RETURNED: WithdrawalStatus.RETURNED,
}


def canonical_status(stage: Stage, category: ExceptionCategory | None) -> WithdrawalStatus:
    """The withdrawal status a notice of this stage and category normally goes out with."""
    if stage in _STAGE_STATUS:
        return _STAGE_STATUS[stage]
    return _DETECTED_STATUS[category]


def sample_withdrawal(**overrides: Any) -> WithdrawalRequest:
    fields: dict[str, Any] = dict(
        withdrawal_id="W1001",
        user_id="u1",
        amount="100.00",
        currency="CNY",
        channel="generic",
        bank_code="ICBC",
        card_last4="1234",
        payee_ref="vault:tok_1",
    )
    fields.update(overrides)
    return WithdrawalRequest(**fields)


def render_all_combinations(
    withdrawal: WithdrawalRequest | None = None,
    *,
    locales: Iterable[str] = LOCALES,
    stages: Iterable[Stage] = tuple(Stage),
    statuses: Iterable[WithdrawalStatus] | None = None,
    support_phone: str = "555-0100",
    support_url: str = "https://pay.example/support",
    base_url: str = "https://pay.example/app",
    link_secret: str = "lint-only-secret",
    now: datetime = datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
    eta: datetime | None = datetime(2026, 11, 28, 8, 0, tzinfo=UTC),
    documents: tuple[str, ...] = ("id_photo", "transaction_proof"),
    reason_code: str | None = "LINT_CODE",
) -> Iterator[tuple[NoticeRequest, RenderedNotice]]:
    """Render every locale x stage x category (and no category) x variant (what the
    workflow scheduled: none, or each of :data:`VARIANTS` the stage has) with the canonical
    status (or, with ``statuses``, every one of those statuses) for the template lint."""
    base = withdrawal or sample_withdrawal()
    for locale in locales:
        w = base.model_copy(update={"locale": locale})
        entries = load_templates(template_locale(locale)).doc.stages
        for stage in stages:
            variants = (None, *(v for v in VARIANTS if v in entries[stage]))
            for category, variant in ((c, v) for c in (None, *ExceptionCategory) for v in variants):
                for status in statuses or (canonical_status(stage, category),):
                    notice = NoticeRequest(
                        key=f"{w.withdrawal_id}:{stage.value}:{category.value if category else '-'}:{status.value}"
                        + (f":{variant}" if variant else ""),
                        channel="inbox",
                        stage=stage,
                        category=category,
                        severity=Severity.MEDIUM,
                        status=status,
                        reason_code=reason_code,
                        withdrawal=w,
                        eta=eta,
                        documents=list(documents) if stage is Stage.DOCUMENTS_REQUESTED else [],
                        variant=variant,
                        retry_at=now + timedelta(hours=6) if variant in ("RETRYING", "LIMIT_WAIT") else None,
                    )
                    link = make_link(
                        base_url,
                        link_kind_for(notice),
                        w.withdrawal_id,
                        w.user_id,
                        link_secret,
                        int(now.timestamp()),
                        86400,
                    )
                    yield (
                        notice,
                        render_notice(
                            notice,
                            reason_text=None,
                            action_text=None,
                            support_phone=support_phone,
                            support_url=support_url,
                            link=link,
                            now=now,
                        ),
                    )
