"""The notice template files (``sentinel/templates/<locale>.yaml``): their schema, the data
tables they rely on (bank names, reason groups), and the compiler that turns them into
sandboxed Jinja templates once per process (cached). The format is described in
docs/notices.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from jinja2 import StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, model_validator

from sentinel.links import KINDS
from sentinel.locales import SUPPORTED, template_locale
from sentinel.models import NoticeRequest
from sentinel.taxonomy import ExceptionCategory, Stage, WithdrawalStatus

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
LOCALES: tuple[str, ...] = SUPPORTED
USER_STAGES: tuple[Stage, ...] = tuple(s for s in Stage if s is not Stage.OPERATOR_ALERT)
DEFAULT_KEY = "default"
#: template keys chosen by what the workflow has scheduled, not by category (sentinel/lifecycle.py):
#: RETRYING (a refused payout is sent again at retry_at), LIMIT_WAIT (sent again when a limit
#: resets, on retry_at), OPS_FIX (our side must act first: "delayed", never "failed")
VARIANTS = ("RETRYING", "LIMIT_WAIT", "OPS_FIX")
LinkKind = Literal["fix_card", "upload_documents", "track"]


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
#: the parts of a notice each stage template writes
FIELDS = ("title", "reason", "progress", "action", "short")


@dataclass(frozen=True)
class Compiled:
    """A locale's template file, validated and compiled."""

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
def load_templates(locale: str) -> Compiled:
    """Parse, validate and compile ``templates/<locale>.yaml`` once per process."""
    if locale not in LOCALES:
        raise ValueError(f"no templates for locale {locale!r}; available: {LOCALES}")
    path = TEMPLATES_DIR / f"{locale}.yaml"
    doc = TemplateFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    if doc.locale != locale:
        raise ValueError(f"{path.name}: locale field says {doc.locale!r}")
    fields = {
        (stage, key): {f: _compile(getattr(t, f), f"{locale}/{stage.value}/{key}.{f}") for f in FIELDS}
        for stage, entries in doc.stages.items()
        for key, t in entries.items()
    }
    return Compiled(
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


def template_key(
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
    key = template_key(load_templates(locale).doc, notice.stage, notice.category, notice.variant)
    return f"{locale}/{notice.stage.value}/{key}"


def link_kind_for(notice: NoticeRequest) -> str:
    """Which deep link the notice's template points to, so the caller can sign it
    (:func:`sentinel.links.make_link`) before calling :func:`render_notice`."""
    compiled = load_templates(template_locale(notice.withdrawal.locale))
    return compiled.doc.stages[notice.stage][
        template_key(compiled.doc, notice.stage, notice.category, notice.variant)
    ].link
