"""Notice templates, renderer, masking guard and signed deep links.

Requirement IDs: R7 (concrete reason, never "system error"), R8 (order number), R9 (plain
words, self-service link), R14 (the article's two example texts), R15 (risk: "under
review"), R16 (progress link), R17 (zh-CN + en-US), R18 (documents listed), R19 (support
entry), R22 (last four digits only, signed links), R32 (reason, progress, next step).
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import yaml
from markupsafe import escape
from pydantic import ValidationError

from sentinel.links import KINDS, LinkError, make_link, verify_link
from sentinel.models import Contact, NoticeRequest, WithdrawalRequest
from sentinel.render import (
    LOCALES,
    TEMPLATES_DIR,
    USER_STAGES,
    VARIANTS,
    CardNumberLeak,
    RenderedNotice,
    TemplateFile,
    assert_no_card_number,
    canonical_status,
    fits_one_sms,
    format_amount,
    link_kind_for,
    load_templates,
    render_all_combinations,
    render_notice,
    sms_info,
    template_id_for,
)
from sentinel.taxonomy import ExceptionCategory, Severity, Stage, WithdrawalStatus

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
PHONE = "95188"
URL = "https://pay.example/support"
BASE = "https://pay.example/app"
SECRET = "test-link-secret"
LONG_ORDER = "W100100000000001"  # 16 characters: the short text must still fit one SMS
CATEGORIES = (None, *ExceptionCategory)

ORDER_LABEL = {"en-US": "Order no.", "zh-CN": "订单号"}
CARD_PHRASE = {"en-US": "card ending 1234", "zh-CN": "尾号1234的银行卡"}
FUNDS_BACK = {"en-US": "is back in your balance", "zh-CN": "已退回您的账户余额"}
UNDER_REVIEW = {"en-US": "under review", "zh-CN": "审核中"}
BANNED = ("system error", "系统错误", "系统异常", "系统繁忙", "unknown error", "未知错误", "contact support")
CONTACT_EMAIL = "alice@example.com"
CONTACT_PHONE = "+8613800138000"


def withdrawal(**overrides) -> WithdrawalRequest:
    fields = dict(
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


def notice(
    stage: Stage,
    category: ExceptionCategory | None,
    *,
    locale: str = "en-US",
    status: WithdrawalStatus | None = None,
    w: WithdrawalRequest | None = None,
    eta: datetime | None = None,
    documents: list[str] | None = None,
    reason_code: str | None = None,
) -> NoticeRequest:
    w = (w or withdrawal()).model_copy(update={"locale": locale})
    return NoticeRequest(
        key=f"{w.withdrawal_id}:{stage.value}:inbox:0",
        channel="inbox",
        stage=stage,
        category=category,
        severity=Severity.MEDIUM,
        status=status or canonical_status(stage, category),
        reason_code=reason_code,
        withdrawal=w,
        eta=eta,
        documents=documents or [],
    )


def render(n: NoticeRequest, *, reason_text=None, action_text=None, now=NOW, link=None) -> RenderedNotice:
    link = link or make_link(
        BASE,
        link_kind_for(n),
        n.withdrawal.withdrawal_id,
        n.withdrawal.user_id,
        SECRET,
        int(NOW.timestamp()),
        86400,
    )
    return render_notice(
        n,
        reason_text=reason_text,
        action_text=action_text,
        support_phone=PHONE,
        support_url=URL,
        link=link,
        now=now,
    )


def assert_in_order(haystack: str, needles: list[str]) -> None:
    pos = 0
    for needle in needles:
        found = haystack.find(needle, pos)
        assert found >= 0, f"{needle!r} missing (or out of order) in:\n{haystack}"
        pos = found + len(needle)


def assert_clean(r: RenderedNotice) -> None:
    """Checks that hold for every output, whatever the status."""
    for name, value in (("subject", r.subject), ("text", r.text), ("short", r.short), ("html", r.html)):
        assert "{" not in value and "}" not in value, f"{r.template_id} {name}: unresolved braces"
        assert not re.search(r"\bNone\b|Undefined", value), f"{r.template_id} {name}: leaked None"
    assert fits_one_sms(r.short), f"{r.template_id}: short too long: {sms_info(r.short)} {r.short!r}"


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("locale", LOCALES)
def test_template_files_cover_every_stage_with_a_default(locale):  # R17
    compiled = load_templates(locale)
    assert load_templates(locale) is compiled  # parsed once (lru_cache)
    assert set(compiled.doc.stages) == set(Stage)
    for _stage, entries in compiled.doc.stages.items():
        assert "default" in entries
        for key, t in entries.items():
            assert key == "default" or key in {c.value for c in ExceptionCategory} or key in VARIANTS
            assert t.link in KINDS
    assert set(compiled.doc.documents) >= {"id_photo", "transaction_proof", "bank_statement", "address_proof"}


def test_template_file_validation_rejects_gaps():
    raw = yaml.safe_load((TEMPLATES_DIR / "en-US.yaml").read_text(encoding="utf-8"))
    no_default = copy.deepcopy(raw)
    del no_default["stages"]["RESOLVED"]["default"]
    with pytest.raises(ValidationError, match="default"):
        TemplateFile.model_validate(no_default)
    missing_stage = copy.deepcopy(raw)
    del missing_stage["stages"]["RETURNED"]
    with pytest.raises(ValidationError, match="RETURNED"):
        TemplateFile.model_validate(missing_stage)
    bad_link = copy.deepcopy(raw)
    bad_link["stages"]["RESOLVED"]["default"]["link"] = "javascript"
    with pytest.raises(ValidationError):
        TemplateFile.model_validate(bad_link)
    unknown_category = copy.deepcopy(raw)
    unknown_category["stages"]["RESOLVED"]["NOT_A_CATEGORY"] = raw["stages"]["RESOLVED"]["default"]
    with pytest.raises(ValidationError, match="NOT_A_CATEGORY"):
        TemplateFile.model_validate(unknown_category)


def test_sandbox_blocks_unsafe_template_code():
    from jinja2.exceptions import SecurityError

    from sentinel.render import _TEXT_ENV

    with pytest.raises(SecurityError):
        _TEXT_ENV.from_string("{{ ''.__class__.__mro__[1].__subclasses__() }}").render()


# ----------------------------------------------------------------------------- the lint


def lint_withdrawal() -> WithdrawalRequest:
    return withdrawal(
        withdrawal_id=LONG_ORDER,
        contact=Contact(email=CONTACT_EMAIL, phone=CONTACT_PHONE),
    )


def test_lint_every_user_stage_category_and_locale():  # R7 R8 R9 R15 R16 R17 R18 R19 R22 R32
    count = 0
    for n, r in render_all_combinations(
        lint_withdrawal(), stages=USER_STAGES, support_phone=PHONE, support_url=URL, link_secret=SECRET
    ):
        count += 1
        loc = r.locale
        assert r.template_id == template_id_for(n)
        assert_clean(r)
        for part in (r.title, r.reason, r.progress, r.action):
            assert part.strip(), f"{r.template_id}: empty part"
        # R32 + R8 + R22 + R16 + R19, in this order, in both bodies
        assert_in_order(
            r.text,
            [
                r.reason,
                r.progress,
                r.action,
                ORDER_LABEL[loc],
                LONG_ORDER,
                CARD_PHRASE[loc],
                r.link,
                PHONE,
                URL,
            ],
        )
        assert_in_order(
            r.html,
            [
                str(escape(r.reason)),
                str(escape(r.progress)),
                str(escape(r.action)),
                ORDER_LABEL[loc],
                LONG_ORDER,
                CARD_PHRASE[loc],
                f'href="{escape(r.link)}"',
                PHONE,
                f'href="{escape(URL)}"',
            ],
        )
        assert LONG_ORDER in r.subject
        # the SMS: one segment, the order number or (no room) the link that has it (R8, R22)
        assert (LONG_ORDER in r.short) != r.sms_order_dropped and "pay.example/w" in r.short
        # R7 / R9: no "system error", no internal codes or jargon
        for output in (r.text, r.short, r.subject):
            low = output.lower()
            for banned in BANNED:
                assert banned not in low, f"{r.template_id}: {banned!r}"
            words = output.replace(r.link, "").replace(LONG_ORDER, "")
            assert "LINT_CODE" not in words and "_" not in words
            assert n.category is None or n.category.value not in output
        # nothing about the contact or the vault reference (R22)
        for output in (r.text, r.html, r.short, r.subject):
            assert CONTACT_EMAIL not in output and CONTACT_PHONE not in output and "vault:" not in output
        # the link is valid and of the template's kind (R9, R16)
        assert verify_link(r.link, SECRET, int(NOW.timestamp()))["kind"] == r.link_kind == link_kind_for(n)
        # money: a failed withdrawal says the funds are back (R2)
        if n.status in (WithdrawalStatus.FAILED, WithdrawalStatus.RETURNED):
            assert FUNDS_BACK[loc] in r.text, r.template_id
        # R15: a review says "under review"
        if n.status is WithdrawalStatus.UNDER_REVIEW and n.stage is not Stage.DOCUMENTS_REQUESTED:
            assert UNDER_REVIEW[loc] in r.reason or UNDER_REVIEW[loc] in r.title, r.template_id
        # R18: the documents, by their localized names
        if n.stage is Stage.DOCUMENTS_REQUESTED:
            names = load_templates(loc).doc.documents
            assert names["id_photo"] in r.action and names["transaction_proof"] in r.action
            assert r.link_kind == "upload_documents"
    assert (
        count
        == _cases(USER_STAGES) * len(CATEGORIES) * len(LOCALES)
        == 312 + 3 * len(CATEGORIES) * len(LOCALES)
    )


@pytest.mark.parametrize(
    "eta",
    [
        None,
        NOW + timedelta(hours=1),
        NOW + timedelta(hours=24),
        NOW + timedelta(days=10),
        NOW - timedelta(hours=2),
    ],
)
def test_every_status_and_eta_renders_cleanly(eta):  # R17 R22: no crash, no braces, one SMS
    count = 0
    for n, r in render_all_combinations(
        lint_withdrawal(), statuses=list(WithdrawalStatus), eta=eta, support_phone=PHONE, support_url=URL
    ):
        count += 1
        assert_clean(r)
        assert LONG_ORDER in r.text and (LONG_ORDER in r.short or r.sms_order_dropped)
        if n.stage is not Stage.OPERATOR_ALERT:
            assert CARD_PHRASE[r.locale] in r.text and PHONE in r.text and URL in r.text
    assert count == _cases(Stage) * len(CATEGORIES) * len(WithdrawalStatus) * len(LOCALES)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("category", CATEGORIES)
def test_operator_alert(locale, category):
    n = notice(Stage.OPERATOR_ALERT, category, locale=locale, reason_code="SYSTEMERROR", w=lint_withdrawal())
    r = render(n)
    assert_clean(r)
    for output in (r.text, r.html):
        assert LONG_ORDER in output
        assert (category.value if category else "UNCLASSIFIED") in output
        assert "SYSTEMERROR" in output  # the reason code, for operators only
        assert n.status.value in output
        assert CONTACT_EMAIL not in output and CONTACT_PHONE not in output and "vault:" not in output
    assert "SYSTEMERROR" in r.short and LONG_ORDER in r.short


# ----------------------------------------------------------------------------- R14 examples


def test_article_example_bank_delay_en():  # R14
    r = render(notice(Stage.DELAYED, ExceptionCategory.BANK_DELAY, eta=NOW + timedelta(hours=24)))
    sentence = "Your withdrawal was submitted, but the bank is processing slowly; expected arrival is now within 24 hours."
    assert r.reason == sentence
    assert sentence in r.text and sentence in r.html
    assert "Your withdrawal was submitted, but the bank is processing slowly" in r.short
    assert r.template_id == "en-US/DELAYED/BANK_DELAY" and r.link_kind == "track"


def test_article_example_bank_delay_zh():  # R14
    r = render(
        notice(Stage.DELAYED, ExceptionCategory.BANK_DELAY, locale="zh-CN", eta=NOW + timedelta(hours=24))
    )
    sentence = "您的提现已提交，但银行处理较慢，预计24小时内到账。"
    assert r.reason == sentence and sentence in r.text
    assert "您的提现已提交，但银行处理较慢，预计24小时内到账" in r.short
    assert r.template_id == "zh-CN/DELAYED/BANK_DELAY"


def test_article_example_account_error_en():  # R14 R18 one-click fix
    r = render(notice(Stage.DETECTED, ExceptionCategory.ACCOUNT_INFO_ERROR))
    assert "Failed: wrong card details. Money is back in your balance; fix it in Me > Bank cards." in r.short
    assert r.title == "Withdrawal failed: wrong card details"
    assert r.reason.startswith("Withdrawal failed: wrong card details.")
    assert r.action.startswith("Go to Me > Bank cards to check the details")
    assert "Me &gt; Bank cards" in r.html
    assert r.link_kind == "fix_card" and "/bank-cards/fix?" in r.link


def test_article_example_account_error_zh():  # R14
    r = render(notice(Stage.DETECTED, ExceptionCategory.ACCOUNT_INFO_ERROR, locale="zh-CN"))
    assert "提现失败：银行卡信息不符，资金已退回余额，请到【我的-银行卡】处理。" in r.short
    assert r.reason.startswith("提现失败：银行卡信息不符")
    assert r.action.startswith("请到【我的-银行卡】核对信息或更换银行卡后重新提交")
    assert "100.00元已退回您的账户余额" in r.text
    assert r.short.startswith("【示例支付】") and sms_info(r.short).encoding == "UCS-2"


def test_zh_sms_moves_the_order_number_to_the_link_and_says_so():  # R8 R19 R22
    r = render(
        notice(Stage.DETECTED, ExceptionCategory.ACCOUNT_INFO_ERROR, locale="zh-CN", w=lint_withdrawal())
    )
    assert (
        r.short
        == "【示例支付】提现失败：银行卡信息不符，资金已退回余额，请到【我的-银行卡】处理。订单详情：pay.example/w 客服95188"
    )
    assert r.sms_order_dropped and sms_info(r.short).units <= 70
    short_order = render(
        notice(Stage.DETECTED, ExceptionCategory.CANCELLED, locale="zh-CN", w=withdrawal(withdrawal_id="W1"))
    )
    assert "订单W1详情：pay.example/w" in short_order.short and not short_order.sms_order_dropped


# ----------------------------------------------------------------------------- stages


@pytest.mark.parametrize("locale", LOCALES)
def test_review_and_documents(locale):  # R15 R18
    held = render(notice(Stage.DETECTED, ExceptionCategory.RISK_HOLD, locale=locale))
    assert UNDER_REVIEW[locale] in held.reason
    docs = render(
        notice(
            Stage.DOCUMENTS_REQUESTED,
            ExceptionCategory.RISK_HOLD,
            locale=locale,
            documents=["id_photo", "transaction_proof", "bank_statement", "address_proof"],
        )
    )
    names = load_templates(locale).doc.documents
    for key in ("id_photo", "transaction_proof", "bank_statement", "address_proof"):
        assert names[key] in docs.text and key not in docs.text
    assert docs.link_kind == "upload_documents" and "/withdrawals/documents?" in docs.link


@pytest.mark.parametrize(
    "stage,category,expect_en,expect_zh",
    [
        (Stage.RESOLVED, ExceptionCategory.BANK_DELAY, "Your money arrived", "已到账"),
        (Stage.MANUAL_CHECK, ExceptionCategory.PLATFORM_ERROR, "checking with your bank", "与银行核实"),
        (Stage.REJECTED, ExceptionCategory.RISK_HOLD, "not approved", "未通过审核"),
        (Stage.APPROVED, ExceptionCategory.RISK_HOLD, "Review passed", "审核通过"),
        (Stage.RETURNED, ExceptionCategory.RETURNED_AFTER_SUCCESS, "returned the money", "退回了您的提现"),
    ],
)
def test_stage_wording(stage, category, expect_en, expect_zh):  # R32
    en = render(notice(stage, category))
    zh = render(notice(stage, category, locale="zh-CN"))
    assert expect_en in en.text and expect_zh in zh.text
    if stage in (Stage.REJECTED, Stage.RETURNED):
        assert FUNDS_BACK["en-US"] in en.text and FUNDS_BACK["zh-CN"] in zh.text


def test_reason_and_action_text_from_the_caller():  # R7 R20 precise reason
    r = render(
        notice(Stage.DETECTED, ExceptionCategory.ACCOUNT_INFO_ERROR),
        reason_text="Withdrawal failed: the account holder name does not match the bank's records.",
        action_text="Go to Me > Bank cards and enter the name exactly as your bank has it.",
    )
    assert r.reason == "Withdrawal failed: the account holder name does not match the bank's records."
    assert r.action == "Go to Me > Bank cards and enter the name exactly as your bank has it."
    assert_in_order(
        r.text, [r.reason, r.progress, r.action, "Order no.", "card ending 1234", r.link, PHONE, URL]
    )
    plain = render(notice(Stage.DETECTED, ExceptionCategory.ACCOUNT_INFO_ERROR))
    assert "not what the bank has on file" in plain.reason  # own wording when no code-specific text


@pytest.mark.parametrize("stage", [Stage.REJECTED, Stage.APPROVED, Stage.RESOLVED])
def test_decided_stages_ignore_stale_code_texts(stage):  # R7: no contradiction after a decision
    r = render(
        notice(stage, ExceptionCategory.RISK_HOLD),
        reason_text="Your withdrawal is under review.",
        action_text="No action needed.",
    )
    assert "under review" not in r.text and r.action != "No action needed."


def test_documents_request_always_lists_documents():  # R18
    r = render(
        notice(Stage.DOCUMENTS_REQUESTED, ExceptionCategory.RISK_HOLD, documents=["id_photo"]),
        action_text="No action needed for now.",
    )
    assert "No action needed" not in r.action and "a photo of your ID card" in r.action


def test_eta_as_hours_or_local_time():  # R14
    eta = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)  # 16:00 in Asia/Shanghai
    hours = render(
        notice(Stage.DELAYED, ExceptionCategory.BANK_DELAY, eta=eta), now=eta - timedelta(hours=5, minutes=10)
    )
    assert "within 6 hours" in hours.reason
    one = render(
        notice(Stage.DELAYED, ExceptionCategory.BANK_DELAY, eta=eta), now=eta - timedelta(minutes=30)
    )
    assert "within 1 hour." in one.reason
    at_en = render(notice(Stage.DELAYED, ExceptionCategory.BANK_DELAY, eta=eta), now=None)
    assert "by 2026-11-28 16:00 (UTC+08:00)" in at_en.reason
    at_zh = render(notice(Stage.DELAYED, ExceptionCategory.BANK_DELAY, locale="zh-CN", eta=eta), now=None)
    assert "预计11月28日 16:00前到账" in at_zh.reason
    ny = withdrawal(contact=Contact(timezone="America/New_York"))
    at_ny = render(notice(Stage.DELAYED, ExceptionCategory.BANK_DELAY, w=ny, eta=eta), now=None)
    assert "by 2026-11-28 03:00 (UTC-05:00)" in at_ny.reason
    none = render(notice(Stage.DELAYED, ExceptionCategory.BANK_DELAY, eta=None))
    assert "later than usual" in none.reason


def test_amount_formatting_from_decimal():
    assert format_amount(Decimal("1234.5"), "CNY", "en-US") == "CNY 1,234.50"
    assert format_amount(Decimal("1234.5"), "CNY", "zh-CN") == "1,234.50元"
    assert format_amount(Decimal("1234.5"), "USD", "zh-CN") == "1,234.50 USD"
    assert format_amount(Decimal("1235"), "JPY", "en-US") == "JPY 1,235"
    assert format_amount(Decimal("100.1234"), "CNY", "en-US") == "CNY 100.1234"  # never rounds money away
    with pytest.raises(TypeError):
        format_amount(100.0, "CNY", "en-US")  # type: ignore[arg-type]
    r = render(notice(Stage.RESOLVED, None, w=withdrawal(amount="1234567.89")))
    assert "CNY 1,234,567.89" in r.text


# ----------------------------------------------------------------------------- masking (R22)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111111",
        "card 4111 1111 1111 1111 ok",
        "4111-1111-1111-1111",
        "123456789012",
        "6222 0212 3456 7890 123",
    ],
)
def test_masking_guard_raises_on_card_numbers(text):  # R22
    with pytest.raises(CardNumberLeak):
        assert_no_card_number(text)


@pytest.mark.parametrize(
    "text",
    ["card ending 1234", "尾号1234的银行卡", "12345678901", "2026-11-28 16:00", "CNY 1,234,567,890.00", ""],
)
def test_masking_guard_allows_safe_text(text):
    assert_no_card_number(text)


def test_masking_guard_allows_known_identifiers():
    assert_no_card_number("order 2026112700000001", allow=["2026112700000001"])
    with pytest.raises(CardNumberLeak):
        assert_no_card_number("order 2026112700000001 card 4111111111111111", allow=["2026112700000001"])


def test_numeric_order_number_is_not_mistaken_for_a_card():  # R8
    r = render(
        notice(
            Stage.DETECTED,
            ExceptionCategory.BANK_DELAY,
            locale="zh-CN",
            w=withdrawal(withdrawal_id="2026112700000001"),
        )
    )
    assert "2026112700000001" in r.text and r.sms_order_dropped
    en = render(
        notice(Stage.DETECTED, ExceptionCategory.BANK_DELAY, w=withdrawal(withdrawal_id="2026112700000001"))
    )
    assert "Order 2026112700000001:" in en.short


@pytest.mark.parametrize("field", ["reason_text", "action_text"])
@pytest.mark.parametrize("stage", [Stage.DETECTED, Stage.RESOLVED])
def test_pan_in_caller_text_is_refused(field, stage):  # R22
    n = notice(stage, ExceptionCategory.ACCOUNT_INFO_ERROR)
    with pytest.raises(CardNumberLeak):
        render(n, **{field: "The card 6222 0212 3456 7890 was rejected."})


def test_pan_in_documents_is_refused():  # R22
    n = notice(
        Stage.DOCUMENTS_REQUESTED, ExceptionCategory.RISK_HOLD, documents=["statement of 6222021234567890"]
    )
    with pytest.raises(CardNumberLeak):
        render(n)


def test_payee_ref_never_carries_or_shows_a_card_number():  # R22
    with pytest.raises(ValidationError, match="looks like a card number"):
        withdrawal(payee_ref="6222021234567890128")  # Luhn-valid, as every card number
    for _, r in render_all_combinations(withdrawal(payee_ref="vault:tok_secret_ref")):
        for output in (r.text, r.html, r.short, r.subject):
            assert "tok_secret_ref" not in output


# ----------------------------------------------------------------------------- html


def test_html_escapes_caller_text_and_text_keeps_it():  # R22 R9
    hostile = '<script>alert(1)</script> & "x" {{ 7*7 }}'
    r = render(notice(Stage.DETECTED, ExceptionCategory.CHANNEL_REJECTED), reason_text=hostile)
    assert "<script>" not in r.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;x&#34;" in r.html
    assert hostile in r.text  # plain text is not escaped
    assert "49" not in r.text  # caller text is data, never template code


@pytest.mark.parametrize(
    "bad", ["javascript:alert(1)", "https://pay.example/a b", 'https://x/"onmouseover=1', ""]
)
def test_link_must_be_http_url(bad):
    n = notice(Stage.DETECTED, ExceptionCategory.BANK_DELAY)
    with pytest.raises(ValueError):
        render_notice(n, reason_text=None, action_text=None, support_phone=PHONE, support_url=URL, link=bad)


# ----------------------------------------------------------------------------- SMS length


def test_sms_segment_rules():
    assert sms_info("a" * 160) == sms_info("a" * 160) and sms_info("a" * 160).fits
    assert not sms_info("a" * 161).fits
    assert (
        sms_info("€" * 80).units == 160 and sms_info("€" * 80).encoding == "GSM-7"
    )  # extension table: 2 septets
    assert not sms_info("[" * 81).fits
    assert sms_info("中" * 70).fits and not sms_info("中" * 71).fits
    assert sms_info("a" * 69 + "’").encoding == "UCS-2"  # one curly quote turns it all UCS-2
    assert sms_info("😀" * 35).units == 70 and not sms_info("😀" * 36).fits  # surrogate pairs


# ----------------------------------------------------------------------------- links (R9 R16 R22)


def _link(kind="fix_card", now=1_800_000_000, ttl=3600):
    return make_link(BASE, kind, "W1001", "u1", SECRET, now, ttl)


def _with_param(url: str, key: str, value: str) -> str:
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    params[key] = value
    return urlunsplit(parts._replace(query=urlencode(params)))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_link_roundtrip(kind):
    url = _link(kind)
    assert url.startswith(f"{BASE}/{KINDS[kind]}?")
    assert set(dict(parse_qsl(urlsplit(url).query))) == {"wid", "uid", "exp", "sig"}
    assert verify_link(url, SECRET, 1_800_000_000) == {
        "kind": kind,
        "withdrawal_id": "W1001",
        "user_id": "u1",
        "exp": 1_800_003_600,
    }


@pytest.mark.parametrize(
    "tamper",
    [
        lambda u: _with_param(u, "wid", "W1002"),
        lambda u: _with_param(u, "uid", "u2"),
        lambda u: _with_param(u, "exp", "1900000000"),
        lambda u: _with_param(u, "exp", "01800003600"),
        lambda u: _with_param(u, "sig", "A" * 43),
        lambda u: u.replace("/bank-cards/fix?", "/withdrawals/track?"),
        lambda u: u.replace("/bank-cards/fix?", "/elsewhere?"),
        lambda u: u + "&wid=W1002",
        lambda u: u.replace("&uid=u1", ""),
    ],
)
def test_tampered_link_is_refused(tamper):
    with pytest.raises(LinkError):
        verify_link(tamper(_link()), SECRET, 1_800_000_000)


def test_link_with_another_secret_is_refused():
    with pytest.raises(LinkError, match="signature"):
        verify_link(_link(), "another-secret", 1_800_000_000)


def test_expired_link_is_refused():
    url = _link(ttl=60)
    verify_link(url, SECRET, 1_800_000_059)
    with pytest.raises(LinkError, match="expired"):
        verify_link(url, SECRET, 1_800_000_060)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "delete_account"},
        {"ttl_s": 0},
        {"ttl_s": 10**9},
        {"base_url": "javascript:alert(1)"},
        {"base_url": "https://pay.example/app?x=1"},
        {"withdrawal_id": "W1001\nx"},
        {"secret": ""},
    ],
)
def test_make_link_rejects_bad_input(kwargs):
    args = dict(
        base_url=BASE, kind="track", withdrawal_id="W1001", user_id="u1", secret=SECRET, now=0, ttl_s=60
    )
    args.update(kwargs)
    with pytest.raises(ValueError):
        make_link(**args)


def test_link_kind_per_template():  # R9 R16 R18
    assert link_kind_for(notice(Stage.DETECTED, ExceptionCategory.ACCOUNT_INFO_ERROR)) == "fix_card"
    assert link_kind_for(notice(Stage.DOCUMENTS_REQUESTED, ExceptionCategory.RISK_HOLD)) == "upload_documents"
    assert link_kind_for(notice(Stage.DELAYED, ExceptionCategory.BANK_DELAY)) == "track"
    assert link_kind_for(notice(Stage.RETURNED, None)) == "fix_card"


def _cases(stages) -> int:
    """Stages counted once each, plus once per variant (what the workflow scheduled) they have."""
    entries = load_templates("en-US").doc.stages
    return sum(1 + sum(1 for v in VARIANTS if v in entries[stage]) for stage in stages)


@pytest.mark.parametrize("locale", LOCALES)
def test_each_field_of_the_text_layout_keeps_its_own_line(locale):
    # a block tag at the end of a line ate the line break: "card ending 1234 (ICBC)Track this ..."
    for notice, r in render_all_combinations(locales=(locale,), stages=(Stage.DETECTED,)):
        for line in r.text.splitlines():
            assert not ("1234" in line and "http" in line), (notice.key, line)
