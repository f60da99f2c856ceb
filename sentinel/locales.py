"""Which language a notice is written in (issue #10, R17).

A withdrawal may name any well-formed locale (``ja-JP``, ``en-GB``, ``zh_TW``): it is
accepted and kept as asked (normalised to ``language`` or ``language-REGION``), never
refused, and notices fall back to the nearest language we have templates for: any
``zh-*`` to zh-CN, everything else to en-US.

Pure: no I/O.
"""

from __future__ import annotations

import re

#: locales that have templates and catalogue texts (sentinel/templates/<locale>.yaml)
SUPPORTED: tuple[str, ...] = ("zh-CN", "en-US")
#: language -> the supported locale that speaks it
BY_LANGUAGE: dict[str, str] = {"zh": "zh-CN", "en": "en-US"}
DEFAULT_LOCALE = "en-US"

_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
_REGION = re.compile(r"^(?:[A-Za-z]{2}|\d{3})$")


def normalise_locale(value: str) -> str:
    """``ja_jp`` -> ``ja-JP``, ``zh-Hant-TW`` -> ``zh-TW``, ``EN`` -> ``en``. Raises
    ValueError for something that is not a language tag (BCP 47 shape) at all."""
    if not isinstance(value, str) or len(value) > 35 or not _TAG.match(value):
        raise ValueError("locale must be a language tag such as zh-CN, en-US or ja-JP")
    language, *rest = re.split(r"[-_]", value)
    region = next((p for p in rest if _REGION.match(p)), None)
    return f"{language.lower()}-{region.upper()}" if region else language.lower()


def template_locale(locale: str) -> str:
    """The supported locale a notice for ``locale`` is written in: itself when supported,
    else the one of its language (zh-TW -> zh-CN), else en-US (ja-JP -> en-US)."""
    if locale in SUPPORTED:
        return locale
    language = re.split(r"[-_]", locale or "", maxsplit=1)[0].lower()
    return BY_LANGUAGE.get(language, DEFAULT_LOCALE)
