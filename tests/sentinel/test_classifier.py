"""sentinel.classifier.classify: a channel's (raw status, code) in our terms (R26).

The rules are in the module docstring of sentinel/classifier.py; each test names the
rule it checks. R1-R5 are the categories, R15 the risk review, R29 the manual check.
"""

from __future__ import annotations

import pytest

from sentinel.catalogue import Catalogue, default_catalogue
from sentinel.classifier import classify
from sentinel.models import Classification
from sentinel.taxonomy import ExceptionCategory as C
from sentinel.taxonomy import Fixer
from sentinel.taxonomy import PayoutState as S
from sentinel.taxonomy import RetryDecision as R


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return default_catalogue()


# --- the four cases of the issue: the same cause, four channels (R2, R26) ----------------


@pytest.mark.parametrize(
    "channel,status,code",
    [
        ("stripe", "failed", "account_closed"),
        ("wechat", "FAIL", "NAME_NOT_CORRECT"),
        ("alipay", "FAIL", "PAYEE_USER_INFO_ERROR"),
        ("iso20022", "RJCT", "AC04"),
    ],
)
def test_issue_cases_account_info_error(cat: Catalogue, channel: str, status: str, code: str) -> None:
    # R2, R26
    result = classify(cat, channel, status, code)
    assert isinstance(result, Classification)
    assert result.state == S.FAILED
    assert result.category == C.ACCOUNT_INFO_ERROR
    assert result.retry == R.AFTER_USER_FIX
    assert result.fixer == Fixer.USER
    assert result.mapped is True


# --- the generic protocol (docs/channels/generic.md) -------------------------------------


def test_generic_failed_ac04(cat: Catalogue) -> None:
    # R2: generic reuses the ISO 20022 codes
    result = classify(cat, "generic", "FAILED", "AC04")
    assert (result.state, result.category, result.subtype) == (
        S.FAILED,
        C.ACCOUNT_INFO_ERROR,
        "account-closed",
    )


def test_generic_processing_ab08_is_bank_delay(cat: Catalogue) -> None:
    # R1: a slow bank while the payout is still in flight
    result = classify(cat, "generic", "PROCESSING", "AB08")
    assert (result.state, result.category) == (S.PROCESSING, C.BANK_DELAY)
    assert result.retry == R.AUTO_SAME_ORDER


def test_generic_unknown_without_code(cat: Catalogue) -> None:
    # R5, rule 5: UNKNOWN is never a failure: query first
    result = classify(cat, "generic", "UNKNOWN", None)
    assert result.state == S.UNKNOWN
    assert (result.category, result.subtype, result.retry) == (C.PLATFORM_ERROR, "unknown", R.QUERY_FIRST)
    assert result.mapped is True


def test_generic_held_without_code_is_risk_hold(cat: Catalogue) -> None:
    # R3, R15, rule 5
    result = classify(cat, "generic", "HELD", None)
    assert (result.state, result.category) == (S.HELD, C.RISK_HOLD)


@pytest.mark.parametrize("code", ["RISK", "FR01"])
def test_generic_held_with_risk_code(cat: Catalogue, code: str) -> None:
    # R3: plain RISK is a generic code; FR01 comes from ISO 20022
    result = classify(cat, "generic", "HELD", code)
    assert (result.state, result.category) == (S.HELD, C.RISK_HOLD)
    assert result.mapped is True


def test_generic_returned_ac04_keeps_the_cause(cat: Catalogue) -> None:
    # R2, rule 3: the state says returned, the category gives the cause
    result = classify(cat, "generic", "RETURNED", "AC04")
    assert (result.state, result.category) == (S.RETURNED, C.ACCOUNT_INFO_ERROR)


def test_generic_returned_without_code(cat: Catalogue) -> None:
    # rule 5
    result = classify(cat, "generic", "RETURNED", None)
    assert (result.state, result.category) == (S.RETURNED, C.RETURNED_AFTER_SUCCESS)


def test_generic_duplicate(cat: Catalogue) -> None:
    # the 409 answer of the generic protocol
    result = classify(cat, "generic", "FAILED", "DUPLICATE")
    assert (result.state, result.category) == (S.FAILED, C.DUPLICATE)


@pytest.mark.parametrize(
    "status,state", [("ACCEPTED", S.SUBMITTED), ("PROCESSING", S.PROCESSING), ("SUCCEEDED", S.SUCCEEDED)]
)
def test_generic_good_states_have_no_category(cat: Catalogue, status: str, state: S) -> None:
    # rule 5
    result = classify(cat, "generic", status, None)
    assert result == Classification(state=state)


# --- unknown / system errors are never failures (R5) -------------------------------------


@pytest.mark.parametrize(
    "channel,status,code",
    [
        ("alipay", "FAIL", "SYSTEM_ERROR"),
        ("alipay", "SYSTEM_ERROR", None),
        ("alipay", "SYSTEM_ERROR", "SYSTEM_ERROR"),
        ("alipay", "40004", "SYSTEM_ERROR"),
        ("alipay", "20000", None),
        ("wechat", "FAIL", "SYSTEMERROR"),
        ("wechat", "FAIL", "SEND_FAILED"),
        ("wechat", "SYSTEM_ERROR", "SYSTEM_ERROR"),
        ("unionpay", "03", "03"),
        ("unionpay", "99", "99"),
        ("unionpay", "34", None),
        ("generic", "FAILED", "AB05"),
        ("iso20022", "RJCT", "AB06"),
    ],
)
def test_system_error_is_unknown_not_failed(
    cat: Catalogue, channel: str, status: str, code: str | None
) -> None:
    # R5, rule 3: QUERY_FIRST -> UNKNOWN
    result = classify(cat, channel, status, code)
    assert result.state == S.UNKNOWN
    assert result.retry == R.QUERY_FIRST


def test_alipay_system_error(cat: Catalogue) -> None:
    # R5: the brief's case
    result = classify(cat, "alipay", "FAIL", "SYSTEM_ERROR")
    assert (result.state, result.category, result.subtype) == (S.UNKNOWN, C.PLATFORM_ERROR, "unknown")


# --- unmapped codes and statuses (R29: operators add them) -------------------------------


def test_unknown_code_is_unmapped(cat: Catalogue) -> None:
    # rule 4: keep the status's state, send to manual check
    result = classify(cat, "alipay", "FAIL", "BRAND_NEW_SUB_CODE")
    assert result.state == S.FAILED
    assert (result.category, result.subtype) == (C.PLATFORM_ERROR, "unmapped")
    assert result.mapped is False
    assert result.fixer == Fixer.OPERATIONS


def test_unknown_code_on_generic(cat: Catalogue) -> None:
    # rule 4
    result = classify(cat, "generic", "FAILED", "ZZ99")
    assert (result.state, result.category, result.mapped) == (S.FAILED, C.PLATFORM_ERROR, False)


def test_codes_are_case_sensitive(cat: Catalogue) -> None:
    # rule 4: codes are matched as channels send them
    result = classify(cat, "iso20022", "RJCT", "ac04")
    assert (result.category, result.mapped) == (C.PLATFORM_ERROR, False)


def test_unknown_status_is_unmapped(cat: Catalogue) -> None:
    # rule 1: even with a known code
    result = classify(cat, "alipay", "WEIRD_STATUS", "PAYEE_NOT_EXIST")
    assert result.state == S.UNKNOWN
    assert (result.category, result.subtype, result.mapped) == (C.PLATFORM_ERROR, "unmapped-status", False)


def test_unknown_channel(cat: Catalogue) -> None:
    # rule 1
    result = classify(cat, "paypal", "FAILED", "AC04")
    assert result.state == S.UNKNOWN
    assert (result.category, result.subtype, result.mapped) == (C.PLATFORM_ERROR, "unknown-channel", False)


def test_failed_without_code(cat: Catalogue) -> None:
    # rule 5: a failure without a reason goes to a manual check
    result = classify(cat, "wechat", "FAILED", None)
    assert result.state == S.FAILED
    assert (result.category, result.subtype, result.mapped) == (C.PLATFORM_ERROR, "no-code", False)


def test_empty_code_counts_as_no_code(cat: Catalogue) -> None:
    assert classify(cat, "generic", "FAILED", "") == classify(cat, "generic", "FAILED", None)


# --- bank delays (R1) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "channel,status,code",
    [
        ("iso20022", "RJCT", "AB08"),  # AUTO_SAME_ORDER
        ("generic", "FAILED", "TM01"),  # WAIT
        ("generic", "FAILED", "ED06"),
        ("alipay", "FAIL", "INST_PAY_UNABLE"),
        ("stripe", "failed", "issuer_unavailable"),
        ("unionpay", "02", "02"),
        ("unionpay", "39", "39"),
    ],
)
def test_bank_delay_on_failed_status_stays_a_refusal(
    cat: Catalogue, channel: str, status: str, code: str
) -> None:
    # R1, R7, issue #10: a refusal is never shown as "in flight"; the lifecycle sends it again
    result = classify(cat, channel, status, code)
    assert (result.state, result.category) == (S.FAILED, C.BANK_DELAY)
    assert result.retry in (R.AUTO_SAME_ORDER, R.WAIT)


def test_bank_delay_on_processing_status(cat: Catalogue) -> None:
    # R1
    result = classify(cat, "generic", "PROCESSING", "TM01")
    assert (result.state, result.category, result.subtype, result.retry) == (
        S.PROCESSING,
        C.BANK_DELAY,
        "cut-off",
        R.WAIT,
    )


# --- other categories (R3, R4, ...) ------------------------------------------------------


@pytest.mark.parametrize(
    "channel,status,code,state,category,subtype",
    [
        ("stripe", "failed", "insufficient_funds", S.FAILED, C.BALANCE_OR_LIMIT, "payer-funds"),
        ("alipay", "FAIL", "PAYER_BALANCE_NOT_ENOUGH", S.FAILED, C.BALANCE_OR_LIMIT, "payer-funds"),
        ("wechat", "FAIL", "DAY_RECEIVED_QUOTA_EXCEED", S.FAILED, C.BALANCE_OR_LIMIT, "payee-quota"),
        ("wechat", "FAIL", "FREQ_LIMIT", S.FAILED, C.BALANCE_OR_LIMIT, "rate"),
        ("alipay", "FAIL", "EXCEED_LIMIT_SM_MIN_AMOUNT", S.FAILED, C.BALANCE_OR_LIMIT, "min"),
        ("wechat", "FAIL", "TRANSFER_RISK", S.FAILED, C.RISK_HOLD, "channel-risk"),
        ("alipay", "FAIL", "SECURITY_CHECK_FAILED", S.FAILED, C.RISK_HOLD, "review"),
        ("iso20022", "PDNG", "G003", S.PROCESSING, C.RISK_HOLD, "documents"),
        ("wechat", "FAIL", "ACCOUNT_FROZEN", S.FAILED, C.USER_ACCOUNT_RESTRICTED, "frozen"),
        ("alipay", "FAIL", "PERM_AML_NOT_REALNAME_REV", S.FAILED, C.REGULATORY, "real-name"),
        ("nacha", "failed", "R24", S.FAILED, C.DUPLICATE, "duplicate"),
        ("wechat", "FAIL", "OVERDUE_CLOSE", S.FAILED, C.AWAITING_USER_ACTION, "expired"),
        ("wechat", "CANCELLED", "MCH_CANCEL", S.CANCELLED, C.CANCELLED, "merchant-cancel"),
        ("wechat", "FAIL", "PARAM_ERROR", S.FAILED, C.PLATFORM_ERROR, "integration"),
        ("unionpay", "61", "61", S.FAILED, C.ACCOUNT_INFO_ERROR, "card-number"),
        ("unionpay", "73", "73", S.FAILED, C.ACCOUNT_INFO_ERROR, "card-expired"),
        ("chinapay", "0103", "0103", S.FAILED, C.BALANCE_OR_LIMIT, "payer-funds"),
        ("nacha", "reversed", "R02", S.RETURNED, C.ACCOUNT_INFO_ERROR, "account-closed"),
    ],
)
def test_known_codes(
    cat: Catalogue, channel: str, status: str, code: str, state: S, category: C, subtype: str
) -> None:
    # R1-R5, R26
    result = classify(cat, channel, status, code)
    assert (result.state, result.category, result.subtype) == (state, category, subtype)
    assert result.mapped is True


# --- statuses without codes (rule 5) -----------------------------------------------------


@pytest.mark.parametrize(
    "channel,status,state,category",
    [
        ("alipay", "REFUND", S.RETURNED, C.RETURNED_AFTER_SUCCESS),
        ("wechat", "BANK_FAIL", S.RETURNED, C.RETURNED_AFTER_SUCCESS),
        ("chinapay", "6", S.RETURNED, C.RETURNED_AFTER_SUCCESS),
        ("wechat", "WAIT_USER_CONFIRM", S.AWAITING_USER, C.AWAITING_USER_ACTION),
        ("wechat", "WAIT_PAY", S.HELD, C.RISK_HOLD),
        ("iso20022", "CANC", S.CANCELLED, C.CANCELLED),
        ("alipay", "DEALING", S.PROCESSING, None),
        ("alipay", "SUCCESS", S.SUCCEEDED, None),
        ("stripe", "pending", S.SUBMITTED, None),
        ("chinapay", "5", S.PROCESSING, None),
    ],
)
def test_status_only(cat: Catalogue, channel: str, status: str, state: S, category: C | None) -> None:
    result = classify(cat, channel, status, None)
    assert (result.state, result.category) == (state, category)
    assert result.mapped is True


@pytest.mark.parametrize(
    "channel,status,state,category",
    [
        ("unionpay", "00", S.SUCCEEDED, None),
        ("unionpay", "05", S.PROCESSING, None),
        ("chinapay", "6", S.RETURNED, C.RETURNED_AFTER_SUCCESS),
        ("chinapay", "0000", S.SUBMITTED, None),
    ],
)
def test_status_repeated_as_code_is_no_code(
    cat: Catalogue, channel: str, status: str, state: S, category: C | None
) -> None:
    # rule 2: UnionPay / ChinaPay report one field for both
    result = classify(cat, channel, status, status)
    assert (result.state, result.category, result.mapped) == (state, category, True)


@pytest.mark.parametrize("channel,status", [("alipay", "REFUND"), ("wechat", "BANK_FAIL")])
def test_return_status_as_code_has_texts(cat: Catalogue, channel: str, status: str) -> None:
    # rows 115, 132: the status is also a catalogued code, with the user texts
    result = classify(cat, channel, status, status)
    assert (result.state, result.category) == (S.RETURNED, C.RETURNED_AFTER_SUCCESS)
    assert cat.lookup(channel, status).reason["en-US"]


# --- properties over the whole catalogue --------------------------------------------------


def _all_codes(cat: Catalogue) -> list[tuple[str, str]]:
    return [(name, e.code) for name, e in cat.iter_entries()]


def test_every_catalogued_code_classifies_as_mapped(cat: Catalogue) -> None:
    # R26: with a failed status, every code of the catalogue is understood
    failed = {
        "stripe": "failed",
        "iso20022": "RJCT",
        "nacha": "failed",
        "alipay": "FAIL",
        "wechat": "FAIL",
        "unionpay": "01",
        "chinapay": "0104",
        "generic": "FAILED",
    }
    for channel, code in _all_codes(cat):
        result = classify(cat, channel, failed[channel], code)
        entry = cat.lookup(channel, code)
        assert result.mapped is True, (channel, code)
        assert result.category == entry.category, (channel, code)
        assert result.state in (S.FAILED, S.UNKNOWN, S.PROCESSING), (channel, code)
        if entry.retry == R.QUERY_FIRST:
            assert result.state == S.UNKNOWN, (channel, code)


def test_never_failed_for_query_first(cat: Catalogue) -> None:
    # R5: no QUERY_FIRST code can ever yield FAILED, whatever the status says
    for channel, code in _all_codes(cat):
        if cat.lookup(channel, code).retry != R.QUERY_FIRST:
            continue
        for status in cat.source(channel).states:
            assert classify(cat, channel, status, code).state == S.UNKNOWN, (channel, status, code)


def test_classify_is_pure(cat: Catalogue) -> None:
    # same input, same output; results are independent objects
    a = classify(cat, "generic", "HELD", None)
    b = classify(cat, "generic", "HELD", None)
    assert a == b and a is not b
    a.subtype = "changed"
    assert classify(cat, "generic", "HELD", None).subtype is None
