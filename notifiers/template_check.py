"""Provider template coverage (issue #10, R7, R19, R20): China SMS and voice carry only
templates registered with the operator (config/providers.yaml), so a notice the policy
sends on such a channel must find one, fill every variable, and still fit.

:func:`template_problems` checks, for every provider section with templates and every
route the notice policy can send on its channel (user stage x category, failed or not,
and the digest):

* a template is found (the lookup of :func:`notifiers.provider_templates.template_keys`);
* it has its registered ``text``; its ``${variables}`` are exactly its params, and each
  param takes a notice field that exists;
* SMS: the configured short link is in the text (no URL may be a variable), and the
  signature plus the text, filled with the longest value each variable can take (the
  longest reason phrase of the category's reason groups, the support number), fits one
  segment (sentinel.sms_sizing.fits_one_sms);
* voice: the filled text has no brackets or arrows and no run of more than 4 digits.

``build_provider_notifiers`` calls it when the providers start: outside development
mode a problem stops the start, in development it is logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from notifiers.provider_templates import FIELD_NAMES, TemplateRegistry, notice_fields, template_keys
from sentinel.links import make_link
from sentinel.models import NoticeRequest
from sentinel.notice_policy import NoticePolicy
from sentinel.render import Brand, DigestItem, render_digest, render_notice
from sentinel.sms_sizing import sms_info
from sentinel.taxonomy import ExceptionCategory, Severity, WithdrawalStatus
from sentinel.template_files import USER_STAGES, link_kind_for, reason_groups
from sentinel.template_lint import sample_withdrawal

#: the longest order number the check fills in (ids are at most 64, SMS budgets use 32)
CHECK_ORDER = "WD2026112700012345678901234567AB"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NOT_FOR_VOICE = re.compile(r"[\[\]【】()（）<>《》{}→]|\d{5,}")


def _fill(text: str, values: Mapping[str, str], field_of: Mapping[str, str]) -> str:
    """The template text with each ``${variable}`` replaced by the notice field it names."""
    return _VAR.sub(lambda m: values.get(field_of.get(m.group(1), ""), ""), text)


def _channel_sections(data: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any], str]]:
    """(provider, channel, templates, signature) of every section with templates."""
    aliyun = data.get("aliyun") or {}
    for channel in ("sms", "voice"):
        section = aliyun.get(channel) or {}
        if section.get("templates"):
            yield "aliyun", channel, section["templates"], section.get("sign_name", "")
    tencent = data.get("tencent") or {}
    if tencent.get("templates"):
        yield "tencent", "sms", tencent["templates"], tencent.get("sign_name", "")


def reachable_routes(policy: NoticePolicy, channel: str) -> Iterator[tuple[Any, ExceptionCategory | None]]:
    """Every (user stage, category or None) whose severity's ladder has ``channel`` in some rung."""
    for stage in USER_STAGES:
        for category in (None, *ExceptionCategory):
            ladder = policy.ladders[policy.severity(category, stage)]
            if any(channel in rung for rung in ladder.rungs):
                yield stage, category


def _subtypes(category: ExceptionCategory | None) -> list[str | None]:
    """One subtype per reason group of the category (and none: the default group)."""
    return (
        [None] + [subtypes[0] for subtypes in reason_groups().get(category, {}).values()]
        if category
        else [None]
    )


def _samples(
    policy: NoticePolicy, channel: str, brand: Brand, support_phone: str
) -> Iterator[tuple[str, NoticeRequest, Any]]:
    w = sample_withdrawal(
        withdrawal_id=CHECK_ORDER,
        locale="zh-CN",
        contact={"phone": "+8613800138000", "timezone": "Asia/Shanghai"},
    )
    for stage, category in reachable_routes(policy, channel):
        for status in (WithdrawalStatus.PROCESSING, WithdrawalStatus.FAILED):
            for subtype in _subtypes(category):
                notice = NoticeRequest(
                    key="check",
                    channel=channel,
                    stage=stage,
                    category=category,
                    subtype=subtype,
                    severity=Severity.HIGH,
                    status=status,
                    withdrawal=w,
                )
                link = make_link(
                    "https://check.example/app",
                    link_kind_for(notice),
                    w.withdrawal_id,
                    w.user_id,
                    "check",
                    0,
                    60,
                )
                rendered = render_notice(
                    notice,
                    support_phone=support_phone,
                    support_url="https://check.example/help",
                    link=link,
                    brand=brand,
                )
                route = f"{stage.value}/{category.value if category else '-'}/{status.value.lower()}"
                yield route, notice, rendered
    digest = NoticeRequest(
        key="check",
        channel=channel,
        stage=USER_STAGES[0],
        severity=Severity.HIGH,
        status=WithdrawalStatus.FAILED,
        withdrawal=w,
        folded=["W2", "W3"],
    )
    rendered = render_digest(
        "zh-CN",
        [DigestItem(CHECK_ORDER, "1234")] * 3,
        link="https://check.example/app",
        support_phone=support_phone,
        support_url="https://check.example/help",
        brand=brand,
    )
    yield "DIGEST", digest, rendered


def template_problems(
    data: Mapping[str, Any], policy: NoticePolicy, *, brand: Brand, support_phone: str
) -> list[str]:
    """Every problem of the provider templates in ``data`` (config/providers.yaml), one line
    each, naming the provider, the channel and the route. Empty: all good."""
    problems: list[str] = []
    for provider, channel, templates, sign in _channel_sections(data):
        where = f"{provider} {channel}"
        try:
            registry = TemplateRegistry(templates)
        except (TypeError, ValueError, KeyError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        for key, spec in registry.templates.items():
            if spec.text is None:
                problems.append(f"{where} {key} ({spec.code}): no registered text to check")
                continue
            names = set(_VAR.findall(spec.text))
            params = {name for name, _ in spec.params}
            if names != params:
                problems.append(
                    f"{where} {key} ({spec.code}): text variables {sorted(names)} != params {sorted(params)}"
                )
            unknown = sorted({f for _, f in spec.params} - set(FIELD_NAMES))
            if unknown:
                problems.append(f"{where} {key} ({spec.code}): unknown notice fields {unknown}")
            if channel == "sms" and brand.sms_link not in spec.text:
                problems.append(
                    f"{where} {key} ({spec.code}): the short link {brand.sms_link!r} is not in the text"
                )
        seen: set[tuple[str, str]] = set()
        for route, notice, rendered in _samples(policy, channel, brand, support_phone):
            found = registry.lookup(notice)
            if found is None:
                problems.append(
                    f"{where}: no template for {route} (keys tried: {', '.join(template_keys(notice))})"
                )
                continue
            if found.text is None:
                continue
            values = notice_fields(notice, rendered)
            field_of = dict(found.params)
            filled = _fill(found.text, values, field_of)
            if (found.code, filled) in seen:
                continue
            seen.add((found.code, filled))
            if channel == "sms":
                message = f"【{sign}】{filled}"
                info = sms_info(message)
                if not info.fits:
                    problems.append(
                        f"{where} {found.code} for {route}: {info.units} > {info.limit} units: {message}"
                    )
            elif _NOT_FOR_VOICE.search(filled):
                problems.append(f"{where} {found.code} for {route}: not made for listening: {filled}")
    return list(dict.fromkeys(problems))  # one line per problem (a route repeats for each reason group)


class ProviderTemplatesIncomplete(ValueError):
    """config/providers.yaml has a route without a usable template (the message lists them)."""


def check_provider_templates(
    data: Mapping[str, Any], policy: NoticePolicy, *, brand: Brand, support_phone: str, strict: bool
) -> list[str]:
    """:func:`template_problems`; raises :class:`ProviderTemplatesIncomplete` when ``strict``
    (production) and there is any, else returns them for the caller to log."""
    problems = template_problems(data, policy, brand=brand, support_phone=support_phone)
    if problems and strict:
        raise ProviderTemplatesIncomplete(
            "provider templates (config/providers.yaml) do not cover every notice:\n  - "
            + "\n  - ".join(problems)
        )
    return problems
