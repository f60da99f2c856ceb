"""Registered templates of the China SMS and voice providers (Aliyun, Tencent): the text is
fixed by the template approved in the provider's console, the notifier only fills its
variables. :class:`TemplateRegistry` maps a notice to a template (by template id, stage,
category, locale); :func:`notice_fields` gives the values a variable may take (order
number, card ending ...; never the amount, never more than the last four digits)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sentinel.formatting import speak_digits
from sentinel.locales import template_locale
from sentinel.models import NoticeRequest
from sentinel.render import RenderedNotice
from sentinel.taxonomy import WithdrawalStatus
from sentinel.template_files import template_id_for

#: notice fields a template variable may take its value from
FIELD_NAMES = (
    "order_no",
    "card_last4",
    "bank_code",
    "title",
    "short",
    "link",
    "stage",
    "category",
    "status",
    "count",
    "orders",
    "reason",
    "order_tail",
    "support_phone",
    "support_spoken",
)
DEFAULT_PARAMS: tuple[tuple[str, str], ...] = (("order_no", "order_no"), ("card_last4", "card_last4"))


def notice_fields(notice: NoticeRequest, rendered: RenderedNotice) -> dict[str, str]:
    """Values for template variables. No amount: SMS and lock screens show the order
    number and the card ending only."""
    w = notice.withdrawal
    return {
        "order_no": w.withdrawal_id,
        "card_last4": w.card_last4,
        "bank_code": w.bank_code,
        "title": rendered.title,
        "short": rendered.short,
        "link": rendered.link,
        "stage": notice.stage.value,
        "category": notice.category.value if notice.category else "",
        "status": notice.status.value,
        # a digest (folding): how many withdrawals, and their order numbers
        "count": str(1 + len(notice.folded)),
        "orders": ",".join([w.withdrawal_id, *notice.folded]),
        # issue #10: the reason (its group's short phrase), the order's last digits, the support number
        "reason": rendered.reason_phrase,
        "order_tail": w.withdrawal_id[-4:],
        "support_phone": rendered.support_phone,
        "support_spoken": speak_digits(rendered.support_phone),
    }


@dataclass(frozen=True)
class TemplateSpec:
    """A registered provider template: its code and where each variable comes from."""

    code: str
    params: tuple[tuple[str, str], ...] = DEFAULT_PARAMS  # (variable name, notice field)
    text: str | None = (
        None  # the registered text, ${name} for a variable (checked: notifiers/template_check.py)
    )

    @classmethod
    def parse(cls, value: Any) -> TemplateSpec:
        """``"SMS_123"`` | ``{"code": "SMS_123", "params": {"order": "order_no"}}`` |
        ``{"code": "1234567", "params": ["order_no", "card_last4"]}`` (positional)."""
        if isinstance(value, TemplateSpec):
            spec = value
        elif isinstance(value, str):
            spec = cls(value)
        elif isinstance(value, Mapping):
            raw = value.get("params")
            if raw is None:
                params = DEFAULT_PARAMS
            elif isinstance(raw, Mapping):
                params = tuple((str(k), str(v)) for k, v in raw.items())
            else:
                params = tuple((str(v), str(v)) for v in raw)
            spec = cls(str(value["code"]), params, value.get("text"))
        else:
            raise TypeError(f"template must be a code or a mapping, got {type(value).__name__}")
        if not spec.code:
            raise ValueError("template code must not be empty")
        unknown = sorted({f for _, f in spec.params} - set(FIELD_NAMES))
        if unknown:
            raise ValueError(f"template {spec.code}: unknown notice fields {unknown}; known: {FIELD_NAMES}")
        return spec

    def values(self, fields: Mapping[str, str]) -> dict[str, str]:
        return {name: fields[src] for name, src in self.params}

    def positional(self, fields: Mapping[str, str]) -> list[str]:
        return [fields[src] for _, src in self.params]


def template_keys(notice: NoticeRequest) -> list[str]:
    """Lookup order, most specific first: ``zh-CN/DETECTED/BANK_DELAY``,
    ``zh-CN/DETECTED``, ``DETECTED/failed`` (a failed or returned withdrawal: the money is
    back, whatever the category), ``DETECTED/BANK_DELAY``, ``DETECTED``, ``default``."""
    locale = template_locale(notice.withdrawal.locale)
    stage = notice.stage.value
    category = notice.category.value if notice.category else "default"
    keys = []
    try:
        keys.append(template_id_for(notice))
    except Exception:  # no renderer template: the explicit keys below still apply
        pass
    if notice.folded:  # a digest of several withdrawals has its own registered template
        keys = [f"{locale}/DIGEST", "DIGEST"]
    failed = (
        [f"{stage}/failed"] if notice.status in (WithdrawalStatus.FAILED, WithdrawalStatus.RETURNED) else []
    )
    keys += [
        f"{locale}/{stage}/{category}",
        f"{locale}/{stage}",
        *failed,
        f"{stage}/{category}",
        stage,
        "default",
    ]
    return list(dict.fromkeys(keys))


class TemplateRegistry:
    """Provider templates keyed by notice (see :func:`template_keys`). Data, e.g.::

    {"DETECTED/ACCOUNT_INFO_ERROR": "SMS_460001",
     "DELAYED": {"code": "SMS_460002", "params": {"order": "order_no", "card": "card_last4"}},
     "default": "SMS_460000"}
    """

    def __init__(self, templates: Mapping[str, Any]):
        self.templates = {str(k): TemplateSpec.parse(v) for k, v in templates.items()}

    def lookup(self, notice: NoticeRequest) -> TemplateSpec | None:
        for key in template_keys(notice):
            if key in self.templates:
                return self.templates[key]
        return None


def has_prefix(phone: str | None, prefixes: Sequence[str] | None) -> bool:
    if not phone:
        return False
    return not prefixes or any(phone.startswith(p) for p in prefixes)
