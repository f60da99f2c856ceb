"""Each channel's text of every notice the templates define (issue #10): budgets, support
contact, wallet wording, bank names, headlines by reason group, next steps.

R7 (concrete reason), R8 (order number or the link that has it), R9 (next step), R17 (both
locales), R19 (support contact on every channel), R20 (the reason reaches China SMS), R32
(reason, progress, next step), R14 (plain texts per channel).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from sentinel.links import make_link
from sentinel.models import NoticeRequest
from sentinel.render import (
    LOCALES,
    PUSH_BODY_COLUMNS,
    PUSH_TITLE_COLUMNS,
    USER_STAGES,
    VARIANTS,
    Brand,
    bank_name,
    canonical_status,
    display_columns,
    link_kind_for,
    load_templates,
    reason_group,
    render_all_combinations,
    render_notice,
    sample_withdrawal,
    sms_info,
    speak_digits,
)
from sentinel.taxonomy import ExceptionCategory, Severity, Stage, WithdrawalStatus

ORDER_32 = "WD2026112700012345678901234567AB"
SUPPORT = "555-0100"
SMS_LINK = "pay.example/w"
WALLETS = ("alipay", "wechat")
CHANNELS = ("generic", "iso20022", "stripe", *WALLETS)
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
BRACKETS_OR_ARROWS = re.compile(r"[\[\]【】()（）<>《》{}→]")
FAILED = (WithdrawalStatus.FAILED, WithdrawalStatus.RETURNED)
MONEY_BACK = {"en-US": "back in your balance", "zh-CN": "退回余额"}


def everything():
    """Every user stage x category (and none) x status x locale x channel the templates
    define, with a 32-character order number."""
    for channel in CHANNELS:
        w = sample_withdrawal(withdrawal_id=ORDER_32, channel=channel)
        yield from render_all_combinations(
            w, stages=USER_STAGES, statuses=list(WithdrawalStatus), support_phone=SUPPORT
        )


RENDERED = list(everything())


def test_the_sweep_covers_every_combination():
    assert ORDER_32.__len__() == 32
    entries = load_templates("en-US").doc.stages
    cases = sum(1 + sum(1 for v in VARIANTS if v in entries[stage]) for stage in USER_STAGES)
    assert len(RENDERED) == len(CHANNELS) * cases * 13 * len(WithdrawalStatus) * len(LOCALES)


def test_every_sms_fits_one_segment_with_a_32_character_order_number():  # R8 R19
    """GSM-7 160 / UCS-2 70, brand tag included; the order number when it fits, else the
    SMS says the link has it."""
    for _n, r in RENDERED:
        info = sms_info(r.short)
        assert info.fits, (r.template_id, info, r.short)
        assert SMS_LINK in r.short and SUPPORT in r.short, r.short
        if r.sms_order_dropped:
            assert ORDER_32 not in r.short
            assert (
                "Order details: " + SMS_LINK if r.locale == "en-US" else "订单详情：" + SMS_LINK
            ) in r.short
        else:
            assert ORDER_32 in r.short
        assert r.short.startswith("[Example Pay] " if r.locale == "en-US" else "【示例支付】")


def test_push_title_and_body_budgets():  # R19
    for _n, r in RENDERED:
        assert display_columns(r.push_title) <= PUSH_TITLE_COLUMNS, (r.template_id, r.push_title)
        assert ORDER_32 not in r.push_title
        assert display_columns(r.push_body) <= PUSH_BODY_COLUMNS, (r.template_id, r.push_body)
        assert SUPPORT in r.push_body


def test_voice_scripts_are_made_for_listening():  # R19
    for _n, r in RENDERED:
        assert not BRACKETS_OR_ARROWS.search(r.voice), (r.template_id, r.voice)
        assert not re.search(r"\d{5,}", r.voice), (r.template_id, r.voice)
        assert ORDER_32 not in r.voice and ORDER_32[-4:] in r.voice  # the last digits only
        assert "Me >" not in r.voice and "555 0100" in r.voice


def test_wallet_payouts_never_speak_of_a_bank_card():  # R7 R32
    for n, r in RENDERED:
        if n.withdrawal.channel not in WALLETS:
            continue
        for text in (r.text, r.html, r.short, r.push_title, r.push_body, r.voice, r.subject):
            assert "bank card" not in text.lower() and "银行卡" not in text, (r.template_id, text)
    _, r = next(
        (n, r)
        for n, r in RENDERED
        if n.withdrawal.channel == "alipay" and r.locale == "en-US" and n.stage is Stage.RESOLVED
    )
    assert "your Alipay account ending 1234" in r.reason
    _, r = next(
        (n, r)
        for n, r in RENDERED
        if n.withdrawal.channel == "wechat" and r.locale == "zh-CN" and n.stage is Stage.RESOLVED
    )
    assert "尾号1234的微信账户" in r.reason


def test_bank_names_not_codes():  # R7
    for n, r in RENDERED:
        if n.withdrawal.channel in WALLETS:
            continue
        name = "Industrial and Commercial Bank of China" if r.locale == "en-US" else "中国工商银行"
        assert name in r.text and name in r.html and "(ICBC)" not in r.text and "（ICBC）" not in r.text
    assert (
        bank_name("CMB", "zh-CN") == "招商银行" and bank_name("ABC", "en-US") == "Agricultural Bank of China"
    )
    assert bank_name("ZZBANK", "en-US") == "ZZBANK"  # unknown: the code, not an error
    assert bank_name("ICBC", "ja-JP") == "Industrial and Commercial Bank of China"


def test_every_short_text_says_the_next_step_and_failures_where_the_money_is():  # R9 R32
    next_words = {
        "en-US": (
            "no action needed",
            "withdraw",
            "resubmit",
            "retry",
            "try again",
            "call us",
            "upload",
            "verify",
            "confirm",
            "fix it",
            "check",
            "do not submit",
            "ignore",
            "withdraw less",
        ),
        "zh-CN": (
            "无需操作",
            "重新提现",
            "重新提交",
            "重试",
            "联系客服",
            "上传",
            "认证",
            "确认收款",
            "处理",
            "核对",
            "请勿重复",
            "勿重复",
            "减少金额",
        ),
    }
    for n, r in RENDERED:
        core = r.push_body.lower()
        assert any(word in core for word in next_words[r.locale]), (r.template_id, n.status, r.push_body)
        # a failure notice (its usual status) says where the money is
        if n.status in FAILED and n.status is canonical_status(n.stage, n.category):
            assert MONEY_BACK[r.locale] in core, (r.template_id, n.status, r.push_body)


def _notice(
    category,
    subtype,
    *,
    locale="en-US",
    channel="generic",
    status=WithdrawalStatus.FAILED,
    stage=Stage.DETECTED,
):
    w = sample_withdrawal(channel=channel, locale=locale)
    return NoticeRequest(
        key="k",
        channel="sms",
        stage=stage,
        category=category,
        subtype=subtype,
        severity=Severity.HIGH,
        status=status,
        withdrawal=w,
    )


def _render(n):
    link = make_link(
        "https://pay.example/app", link_kind_for(n), "W1001", "u1", "s", int(NOW.timestamp()), 3600
    )
    return render_notice(
        n, support_phone=SUPPORT, support_url="https://pay.example/support", link=link, now=NOW, brand=Brand()
    )


@pytest.mark.parametrize(
    ("subtype", "en", "zh"),
    [
        ("account-closed", "Withdrawal failed: account closed", "提现失败：账户已销户"),
        ("name-mismatch", "Withdrawal failed: name does not match", "提现失败：户名不一致"),
        ("account-not-found", "Withdrawal failed: account not found", "提现失败：账户不存在"),
        ("card-expired", "Withdrawal failed: card not usable", "提现失败：银行卡无法收款"),
        (None, "Withdrawal failed: wrong card details", "提现失败：银行卡信息不符"),
    ],
)
def test_the_headline_follows_the_reason_group(subtype, en, zh):  # R7 R20
    """Before: every ACCOUNT_INFO_ERROR was headed "card details do not match", also
    "account closed"."""
    e = _render(_notice(ExceptionCategory.ACCOUNT_INFO_ERROR, subtype))
    z = _render(_notice(ExceptionCategory.ACCOUNT_INFO_ERROR, subtype, locale="zh-CN"))
    assert e.title == en and e.subject.startswith(en) and z.title == zh
    assert en.split(": ")[1] in e.short and zh.split("：")[1] in z.short
    if subtype == "account-closed":
        assert "do not match" not in e.text and "不符" not in z.text


def test_reason_groups_cover_known_subtypes_once():
    assert reason_group(ExceptionCategory.ACCOUNT_INFO_ERROR, "deceased") == "closed"
    assert reason_group(ExceptionCategory.USER_ACCOUNT_RESTRICTED, "frozen") == "frozen"
    assert reason_group(ExceptionCategory.ACCOUNT_INFO_ERROR, "something-new") == "default"
    assert reason_group(None, "account-closed") == "default"


@pytest.mark.parametrize("locale", LOCALES)
def test_a_closed_wechat_transfer_does_not_ask_to_confirm_receipt(locale):  # R7 R9
    """OVERDUE_CLOSE: AWAITING_USER_ACTION / expired, the transfer is closed, money back."""
    r = _render(_notice(ExceptionCategory.AWAITING_USER_ACTION, "expired", locale=locale, channel="wechat"))
    for text in (r.title, r.short, r.push_body, r.voice, r.action):
        assert (
            "Please confirm" not in text
            and "请在App内确认收款" not in text
            and "请点击下方链接确认收款" not in text
        )
    assert MONEY_BACK[locale] in r.push_body
    waiting = _render(
        _notice(
            ExceptionCategory.AWAITING_USER_ACTION,
            None,
            locale=locale,
            channel="wechat",
            status=WithdrawalStatus.PROCESSING,
        )
    )
    assert ("confirm receipt" in waiting.short) if locale == "en-US" else ("确认收款" in waiting.short)


@pytest.mark.parametrize(
    ("stage", "category", "en_next", "zh_next"),
    [
        (Stage.DETECTED, ExceptionCategory.CANCELLED, "withdraw again", "重新提现"),
        (Stage.REJECTED, None, "call us", "联系客服"),
        (Stage.REJECTED, ExceptionCategory.PLATFORM_ERROR, "try again", "重新提现"),
        (Stage.DOCUMENTS_EXPIRED, None, "resubmit", "重新提现"),
        (Stage.UNDER_REVIEW, None, "No action needed", "无需操作"),
    ],
)
def test_short_texts_name_the_next_step(stage, category, en_next, zh_next):  # R9
    e = _render(
        _notice(
            category,
            None,
            stage=stage,
            status=WithdrawalStatus.FAILED
            if stage is not Stage.UNDER_REVIEW
            else WithdrawalStatus.UNDER_REVIEW,
        )
    )
    z = _render(
        _notice(
            category,
            None,
            stage=stage,
            locale="zh-CN",
            status=WithdrawalStatus.FAILED
            if stage is not Stage.UNDER_REVIEW
            else WithdrawalStatus.UNDER_REVIEW,
        )
    )
    assert en_next in e.short and zh_next in z.short


@pytest.mark.parametrize(
    ("digits", "spoken"),
    [
        ("95188", "95 188"),
        ("4008208820", "400 820 8820"),
        ("555-0100", "555-0100"),
        ("1234", "1234"),
        ("13800138000", "138 0013 8000"),
    ],
)
def test_speak_digits(digits, spoken):
    assert speak_digits(digits) == spoken


def test_push_columns_count_wide_characters_twice():
    assert display_columns("提现失败") == 8 and display_columns("abc") == 3
