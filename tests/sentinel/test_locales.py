"""Locale fallback (issue #10, R17): any well-formed locale is accepted and kept as the user
asked; notices are written in the nearest locale we have (zh-* -> zh-CN, else en-US)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from sentinel.links import make_link
from sentinel.locales import normalise_locale, template_locale
from sentinel.models import NoticeRequest, WithdrawalRequest
from sentinel.render import link_kind_for, render_notice, template_id_for
from sentinel.taxonomy import ExceptionCategory, Severity, Stage, WithdrawalStatus

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def _w(locale: str) -> WithdrawalRequest:
    return WithdrawalRequest(
        withdrawal_id="W1001",
        user_id="u1",
        amount="100.00",
        currency="CNY",
        channel="generic",
        bank_code="ICBC",
        card_last4="1234",
        payee_ref="vault:tok_1",
        locale=locale,
    )


def _render(locale: str):
    n = NoticeRequest(
        key="k",
        channel="inbox",
        stage=Stage.DETECTED,
        category=ExceptionCategory.ACCOUNT_INFO_ERROR,
        severity=Severity.HIGH,
        status=WithdrawalStatus.FAILED,
        withdrawal=_w(locale),
    )
    link = make_link(
        "https://pay.example/app", link_kind_for(n), "W1001", "u1", "s", int(NOW.timestamp()), 3600
    )
    return n, render_notice(
        n, support_phone="555-0100", support_url="https://pay.example/support", link=link, now=NOW
    )


@pytest.mark.parametrize(
    ("asked", "kept"),
    [
        ("ja-JP", "ja-JP"),
        ("en-GB", "en-GB"),
        ("zh_tw", "zh-TW"),
        ("zh-Hant-TW", "zh-TW"),
        ("EN", "en"),
        ("es-419", "es-419"),
    ],
)
def test_any_locale_is_accepted_and_kept(asked, kept):  # R17
    """Before: Locale was Literal["zh-CN", "en-US"] and ja-JP got a 422."""
    assert _w(asked).locale == kept


@pytest.mark.parametrize("bad", ["", "x", "<script>", "zh CN", "1234", "en-" + "x" * 40])
def test_what_is_not_a_language_tag_is_refused_with_a_reason(bad):
    with pytest.raises(ValidationError, match="language tag"):
        _w(bad)


@pytest.mark.parametrize(
    ("locale", "written"),
    [
        ("ja-JP", "en-US"),
        ("en-GB", "en-US"),
        ("fr", "en-US"),
        ("zh-TW", "zh-CN"),
        ("zh-HK", "zh-CN"),
        ("zh", "zh-CN"),
        ("zh-CN", "zh-CN"),
        ("en-US", "en-US"),
    ],
)
def test_fallback(locale, written):  # R17
    assert template_locale(normalise_locale(locale)) == written


def test_ja_jp_gets_the_english_texts_and_zh_tw_the_chinese_ones():  # R17
    n, r = _render("ja-JP")
    _, en = _render("en-US")
    assert r.locale == "en-US" and r.requested_locale == "ja-JP" and template_id_for(n).startswith("en-US/")
    assert (r.subject, r.text, r.short) == (en.subject, en.text, en.short)
    n, r = _render("zh-TW")
    _, zh = _render("zh-CN")
    assert r.locale == "zh-CN" and r.requested_locale == "zh-TW" and template_id_for(n).startswith("zh-CN/")
    assert (r.subject, r.text, r.short) == (zh.subject, zh.text, zh.short)
    assert zh.requested_locale is None
