"""The payout error-code catalogue (sentinel/codes/*.yaml, sentinel/catalogue.py).

R26: every channel's codes map onto the taxonomy, and every row of the research table
(docs/reference/payout-codes.md) is covered. R7, R9, R17: every entry has short,
plain zh-CN and en-US texts for the reason and the action. R30: the catalogue is data, and
a bad edit fails loudly, naming the file and the code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sentinel.catalogue import (
    CHANNELS,
    CODES_DIR,
    REQUIRED_LOCALES,
    Catalogue,
    CodeEntry,
    default_catalogue,
    load_catalogue,
)
from sentinel.settings import ROOT
from sentinel.taxonomy import ExceptionCategory, Fixer, PayoutState

REFERENCE = ROOT / "docs" / "reference" / "payout-codes.md"

# Source column of the table -> our channel name.
SOURCE_CHANNEL = {
    "Stripe": "stripe",
    "ISO 20022": "iso20022",
    "NACHA": "nacha",
    "Alipay": "alipay",
    "WeChat": "wechat",
    "UnionPay": "unionpay",
    "ChinaPay": "chinapay",
}

# (channel, code) whose catalogue category deliberately differs from the FIRST category
# named in the table's "Normalized category" column, with the reason.
CATEGORY_EXCEPTIONS: dict[tuple[str, str], tuple[ExceptionCategory, str]] = {
    ("unionpay", "73"): (
        ExceptionCategory.ACCOUNT_INFO_ERROR,
        "row 189 '63 / 73' pairs 'Card status incorrect / card expired' with "
        "'USER_ACCOUNT_RESTRICTED / ACCOUNT_INFO_ERROR' in order: 73 (expired card) is the "
        "second, like Stripe expired_card (row 18)",
    ),
}

_CATEGORY_NAME = re.compile(r"\b(" + "|".join(c.value for c in ExceptionCategory) + r")\b")
_TOKEN = re.compile(r"^[A-Za-z0-9_]+$")


# --- the reference table -----------------------------------------------------------------


class Row:
    def __init__(self, cells: list[str]) -> None:
        self.number = int(cells[0])
        self.source = cells[1]
        self.code_column = cells[2]
        self.meaning = cells[3]
        self.category_column = cells[4]

    @property
    def channel(self) -> str:
        for prefix, channel in SOURCE_CHANNEL.items():
            if self.source.startswith(prefix):
                return channel
        raise AssertionError(f"row {self.number}: unknown source {self.source!r}")

    @property
    def codes(self) -> list[str]:
        """The codes of a row whose code column is only backticked codes: `X`, `X` / `Y`,
        or `X / Y` (row 80). Empty for status rows (`status ...`, `batch ...`) and codes
        with decoration (`code=20000` (...), `403 NOT_ENOUGH`)."""
        col = self.code_column.strip()
        col = re.sub(r"^responseCode\s+", "", col)  # ChinaPay: responseCode `0103`
        parts = [p.strip() for p in re.split(r"\s*/\s*", col)]
        if all(re.fullmatch(r"`[^`]+`", p) for p in parts):
            codes = [p.strip("`") for p in parts]
        elif re.fullmatch(r"`[^`]+`", col):
            codes = [p.strip() for p in col.strip("`").split(" / ")]
        else:
            return []
        return codes if all(_TOKEN.match(c) for c in codes) else []

    @property
    def first_category(self) -> ExceptionCategory | None:
        """The first category named; None for pure state rows ('State ...', 'Map by ...')."""
        text = self.category_column.strip()
        if text.startswith("State") or text.startswith("Map by"):
            return None
        m = _CATEGORY_NAME.search(text)
        return ExceptionCategory(m.group(1)) if m else None


@pytest.fixture(scope="module")
def table() -> list[Row]:
    # the project carries the research it cites (issue #12): a missing table is a failure
    assert REFERENCE.is_file(), f"reference table {REFERENCE} is missing from the repository"
    rows = []
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\|\s*\d+\s*\|", line):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            assert len(cells) == 8, f"cannot parse table row: {line[:80]}"
            rows.append(Row(cells))
    assert rows, "no rows parsed from the reference table"
    numbers = [r.number for r in rows]
    assert numbers == list(range(1, len(rows) + 1)), "row numbers must run 1..N without gaps"
    return rows


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return default_catalogue()


def _covered_rows(catalogue: Catalogue) -> set[int]:
    rows: set[int] = set()
    for src in catalogue.sources.values():
        for entry in src.codes:
            rows.update(entry.reference_row)
        for state in src.states.values():
            rows.update(state.reference_row)
    return rows


# R26
def test_table_has_197_rows(table: list[Row]) -> None:
    assert len(table) == 197


# R26: every row of the research table lands somewhere: a code entry or a state.
def test_every_reference_row_is_covered(table: list[Row], catalogue: Catalogue) -> None:
    missing = sorted({r.number for r in table} - _covered_rows(catalogue))
    assert not missing, f"rows of payout-codes.md not covered by any reference_row: {missing}"


# R26: no reference_row points outside the table.
def test_reference_rows_exist_in_table(table: list[Row], catalogue: Catalogue) -> None:
    extra = sorted(_covered_rows(catalogue) - {r.number for r in table})
    assert not extra, f"reference_row values that are not rows of the table: {extra}"


# R26: a code row's code is in its channel's catalogue, cites the row, and has the
# table's (first) category, except the documented exceptions.
def test_code_rows_match_reference_category(table: list[Row], catalogue: Catalogue) -> None:
    checked = 0
    problems = []
    for row in table:
        expected = row.first_category
        if expected is None:
            continue
        for code in row.codes:
            entry = catalogue.lookup(row.channel, code)
            if entry is None:
                problems.append(f"row {row.number}: {row.channel} code {code!r} not in the catalogue")
                continue
            if row.number not in entry.reference_row:
                problems.append(f"row {row.number}: {row.channel} {code!r} does not cite the row")
            want = CATEGORY_EXCEPTIONS.get((row.channel, code), (expected, ""))[0]
            if entry.category != want:
                problems.append(
                    f"row {row.number}: {row.channel} {code!r} is {entry.category.value}, table says {want.value}"
                )
            checked += 1
    assert not problems, "\n".join(problems)
    assert checked >= 150, f"only {checked} codes checked; is the table parser broken?"


# R26: the documented exceptions are real exceptions (not stale).
def test_category_exceptions_are_needed(table: list[Row], catalogue: Catalogue) -> None:
    by_code = {(r.channel, c): r for r in table for c in r.codes}
    for (channel, code), (category, reason) in CATEGORY_EXCEPTIONS.items():
        assert reason
        row = by_code[(channel, code)]
        assert row.first_category != category
        assert catalogue.lookup(channel, code).category == category


# R26: rows joined by " / " get one entry per code.
@pytest.mark.parametrize(
    "channel,codes",
    [
        (
            "alipay",
            [
                "PAYER_STATUS_ERROR",
                "PAYCARD_UNABLE_PAYMENT",
                "PAYER_CERTIFY_CHECK_FAIL",
                "PAYER_PERMLIMIT_CHECK_FAILURE",
            ],
        ),
        ("wechat", ["PARAM_ERROR", "SIGN_ERROR", "CA_ERROR", "XML_ERROR", "PARAM_IS_NOT_UTF8"]),
        (
            "wechat",
            [
                "TRANSFER_SCENE_UNAVAILABLE",
                "TRANSFER_SCENE_INVALID",
                "RECEIVE_ACCOUNT_NOT_CONFIGURE",
                "RECEIVE_ACCOUNT_NOT_PERMMIT",
            ],
        ),
        ("unionpay", ["10", "11", "13"]),
        ("unionpay", ["60", "62", "68"]),
        ("alipay", ["40004", "SYSTEM_ERROR"]),
    ],
)
def test_multi_code_rows_have_one_entry_per_code(
    catalogue: Catalogue, channel: str, codes: list[str]
) -> None:
    for code in codes:
        assert catalogue.lookup(channel, code) is not None, f"{channel} {code}"


# R26
def test_default_catalogue_has_every_channel(catalogue: Catalogue) -> None:
    assert set(CHANNELS) <= set(catalogue.sources)
    assert {p.stem for p in CODES_DIR.glob("*.yaml")} == set(CHANNELS)
    for channel in CHANNELS:
        assert catalogue.source(channel).version


def test_default_catalogue_is_cached() -> None:
    assert default_catalogue() is default_catalogue()


# R26: Appendix A state mappings.
@pytest.mark.parametrize(
    "channel,raw,state",
    [
        ("alipay", "DEALING", PayoutState.PROCESSING),
        ("alipay", "SUCCESS", PayoutState.SUCCEEDED),
        ("alipay", "FAIL", PayoutState.FAILED),
        ("alipay", "REFUND", PayoutState.RETURNED),
        ("alipay", "SYSTEM_ERROR", PayoutState.UNKNOWN),
        ("iso20022", "RJCT", PayoutState.FAILED),
        ("iso20022", "ACCC", PayoutState.SUCCEEDED),
        ("iso20022", "ACSC", PayoutState.SUCCEEDED),
        ("iso20022", "PDNG", PayoutState.PROCESSING),
        ("iso20022", "ACSP", PayoutState.PROCESSING),
        ("iso20022", "RCVD", PayoutState.SUBMITTED),
        ("iso20022", "ACTC", PayoutState.SUBMITTED),
        ("iso20022", "CANC", PayoutState.CANCELLED),
        ("wechat", "WAIT_USER_CONFIRM", PayoutState.AWAITING_USER),
        ("wechat", "BANK_FAIL", PayoutState.RETURNED),
        ("wechat", "SYSTEM_ERROR", PayoutState.UNKNOWN),
        ("wechat", "ACCEPTED", PayoutState.SUBMITTED),
        ("wechat", "TRANSFERING", PayoutState.PROCESSING),
        ("wechat", "CANCELLED", PayoutState.CANCELLED),
        ("stripe", "pending", PayoutState.SUBMITTED),
        ("stripe", "in_transit", PayoutState.PROCESSING),
        ("stripe", "paid", PayoutState.SUCCEEDED),
        ("stripe", "failed", PayoutState.FAILED),
        ("stripe", "canceled", PayoutState.CANCELLED),
        ("unionpay", "00", PayoutState.SUCCEEDED),
        ("unionpay", "05", PayoutState.PROCESSING),
        ("unionpay", "03", PayoutState.UNKNOWN),
        ("unionpay", "99", PayoutState.UNKNOWN),
        ("chinapay", "2", PayoutState.PROCESSING),
        ("chinapay", "6", PayoutState.RETURNED),
        ("chinapay", "9", PayoutState.RETURNED),
        ("generic", "ACCEPTED", PayoutState.SUBMITTED),
        ("generic", "HELD", PayoutState.HELD),
        ("generic", "UNKNOWN", PayoutState.UNKNOWN),
        ("generic", "RETURNED", PayoutState.RETURNED),
    ],
)
def test_state_mapping(catalogue: Catalogue, channel: str, raw: str, state: PayoutState) -> None:
    assert catalogue.state(channel, raw) == state


def test_unmapped_state_and_channel_give_none(catalogue: Catalogue) -> None:
    assert catalogue.state("alipay", "WHATEVER") is None
    assert catalogue.state("nowhere", "SUCCESS") is None
    assert catalogue.lookup("nowhere", "AC04") is None
    with pytest.raises(KeyError, match="unknown channel"):
        catalogue.source("nowhere")


# R26: the generic protocol reuses the ISO 20022 codes, plus its own RISK.
def test_generic_reuses_iso20022(catalogue: Catalogue) -> None:
    assert catalogue.source("generic").codes_from == "iso20022"
    for code in ("AC04", "BE01", "AM04", "AB08", "TM01", "FR01"):
        assert catalogue.lookup("generic", code) == catalogue.lookup("iso20022", code)
    assert catalogue.lookup("generic", "RISK").category == ExceptionCategory.RISK_HOLD
    assert catalogue.lookup("iso20022", "RISK") is None


# R26: codes are matched exactly as channels send them.
def test_lookup_is_case_sensitive(catalogue: Catalogue) -> None:
    assert catalogue.lookup("iso20022", "AC04") is not None
    assert catalogue.lookup("iso20022", "ac04") is None
    assert catalogue.lookup("stripe", "account_closed") is not None
    assert catalogue.lookup("stripe", "ACCOUNT_CLOSED") is None


# R26: where the status IS the code (UnionPay respCode, ChinaPay responseCode), every
# catalogued code also has a state, so the adapter can pass it as the raw status.
@pytest.mark.parametrize("channel", ["unionpay", "chinapay"])
def test_status_code_channels_map_every_code(catalogue: Catalogue, channel: str) -> None:
    src = catalogue.source(channel)
    missing = [e.code for e in src.codes if e.code not in src.states]
    assert not missing


# --- user texts (R7, R9, R17) -------------------------------------------------------------


def _all_entries() -> list[tuple[str, CodeEntry]]:
    return list(default_catalogue().iter_entries())


# R17, R7: every entry has non-empty texts in both locales.
def test_every_entry_has_both_locales() -> None:
    entries = _all_entries()
    assert len(entries) > 190
    for source, entry in entries:
        for field in (entry.reason, entry.action):
            for locale in REQUIRED_LOCALES:
                assert field.get(locale, "").strip(), f"{source} {entry.code}: missing {locale}"


# R7: never "system error, contact support" style vagueness.
def test_no_vague_texts() -> None:
    vague_en = ("system error", "contact support", "unknown error", "error code", "something went wrong")
    vague_zh = ("系统错误", "系统异常", "未知错误", "请联系客服")
    for source, entry in _all_entries():
        assert "system error" not in entry.reason["en-US"].lower(), f"{source} {entry.code}"
        for text in (entry.reason["en-US"], entry.action["en-US"]):
            for phrase in vague_en:
                assert phrase not in text.lower(), f"{source} {entry.code}: {phrase!r} in {text!r}"
        for text in (entry.reason["zh-CN"], entry.action["zh-CN"]):
            for phrase in vague_zh:
                assert phrase not in text, f"{source} {entry.code}: {phrase!r} in {text!r}"


# R9: short, plain words. No raw codes or channel jargon in what the user reads.
def test_texts_are_short_and_plain() -> None:
    jargon = ("out_biz_no", "partner_trade_no", "openid", "respcode", "sub_code", "odfi", "rdfi", "pacs")
    for source, entry in _all_entries():
        for locale, limit in (("en-US", 140), ("zh-CN", 60)):
            for text in (entry.reason[locale], entry.action[locale]):
                assert len(text) <= limit, f"{source} {entry.code} {locale} is {len(text)} chars: {text!r}"
                code_like = "_" in entry.code or entry.code.isupper() or entry.code.isdigit()
                if code_like and len(entry.code) >= 3:
                    assert entry.code not in text, f"{source} {entry.code}: raw code in user text"
                for word in jargon:
                    assert word not in text.lower(), f"{source} {entry.code}: jargon {word!r}"


# R9, R18: when the user must fix their card or account details, the action says where
# (a self-service entry such as Me > Bank cards, or the wallet app).
def test_user_fixes_name_the_place() -> None:
    for source, entry in _all_entries():
        if entry.fixer != Fixer.USER or entry.category != ExceptionCategory.ACCOUNT_INFO_ERROR:
            continue
        en, zh = entry.action["en-US"], entry.action["zh-CN"]
        assert "Me > " in en, f"{source} {entry.code}: {en!r}"
        assert "【我的-" in zh, f"{source} {entry.code}: {zh!r}"


# R26: subtypes named in the brief are used as written.
def test_balance_subtypes(catalogue: Catalogue) -> None:
    assert catalogue.lookup("stripe", "insufficient_funds").subtype == "payer-funds"
    assert catalogue.lookup("wechat", "DAY_RECEIVED_QUOTA_EXCEED").subtype == "payee-quota"
    assert catalogue.lookup("wechat", "FREQ_LIMIT").subtype == "rate"
    assert catalogue.lookup("alipay", "EXCEED_LIMIT_SM_AMOUNT").subtype == "single"
    assert catalogue.lookup("alipay", "EXCEED_LIMIT_SM_MIN_AMOUNT").subtype == "min"
    assert catalogue.lookup("alipay", "SYSTEM_ERROR").subtype == "unknown"
    assert catalogue.lookup("alipay", "INVALID_PARAMETER").subtype == "integration"


# --- validation (R30: a bad edit fails loudly, naming file and code) ----------------------

_VALID_ENTRY = """\
  - code: {code}
    meaning: "test"
    category: {category}
    subtype: null
    retry: AFTER_USER_FIX
    fixer: USER
    reference_row: [1]
    reason:
      zh-CN: "原因。"
      en-US: "{en_reason}"
    action:
      zh-CN: "请重新提交。"
      en-US: "Submit again."
"""


def _write(tmp_path: Path, body: str, name: str = "demo") -> Path:
    text = f'source: {name}\nversion: "1"\nstates:\n  FAIL: FAILED\n  OK: SUCCEEDED\ncodes:\n' + body
    (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def _entry(code: str = "X1", category: str = "ACCOUNT_INFO_ERROR", en_reason: str = "Reason.") -> str:
    return _VALID_ENTRY.format(code=code, category=category, en_reason=en_reason)


def test_valid_minimal_file_loads(tmp_path: Path) -> None:
    cat = load_catalogue(_write(tmp_path, _entry()))
    assert cat.lookup("demo", "X1").category == ExceptionCategory.ACCOUNT_INFO_ERROR
    assert cat.state("demo", "OK") == PayoutState.SUCCEEDED


def test_bad_category_names_file_and_code(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"demo\.yaml: code 'X1': category"):
        load_catalogue(_write(tmp_path, _entry(category="BANK_SLOW")))


def test_missing_locale_text_names_file_and_code(tmp_path: Path) -> None:
    body = _entry().replace('      zh-CN: "原因。"\n', "")
    with pytest.raises(ValueError, match=r"demo\.yaml: code 'X1': reason: .*missing zh-CN"):
        load_catalogue(_write(tmp_path, body))


def test_empty_locale_text_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"demo\.yaml: code 'X1': reason: .*en-US text is empty"):
        load_catalogue(_write(tmp_path, _entry(en_reason="  ")))


def test_duplicate_code_names_file_and_code(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"demo\.yaml: code 'X1': duplicate code"):
        load_catalogue(_write(tmp_path, _entry() + _entry()))


def test_bad_state_names_file_and_status(tmp_path: Path) -> None:
    text = 'source: demo\nversion: "1"\nstates:\n  FAIL: BROKEN\ncodes: []\n'
    (tmp_path / "demo.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"demo\.yaml: status 'FAIL': state"):
        load_catalogue(tmp_path)


def test_unknown_retry_and_fixer_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"code 'X1': retry"):
        load_catalogue(_write(tmp_path, _entry().replace("AFTER_USER_FIX", "SOMETIMES")))
    with pytest.raises(ValueError, match=r"code 'X1': fixer"):
        load_catalogue(_write(tmp_path, _entry().replace("fixer: USER", "fixer: ANYONE")))


def test_unquoted_numeric_code_is_rejected(tmp_path: Path) -> None:
    # YAML reads 0103 as a number; the error tells the operator to quote it.
    with pytest.raises(ValueError, match=r"demo\.yaml: code 67: .*quote numeric codes"):
        load_catalogue(_write(tmp_path, _entry(code="0103")))


def test_entry_without_reference_is_rejected(tmp_path: Path) -> None:
    body = _entry().replace("    reference_row: [1]\n", "")
    with pytest.raises(ValueError, match=r"code 'X1': .*reference_row"):
        load_catalogue(_write(tmp_path, body))


def test_unknown_field_is_rejected(tmp_path: Path) -> None:
    body = _entry().replace("    subtype: null\n", "    subtyp: payer-funds\n")
    with pytest.raises(ValueError, match=r"code 'X1': subtyp"):
        load_catalogue(_write(tmp_path, body))


def test_source_must_match_file_name(tmp_path: Path) -> None:
    _write(tmp_path, _entry())
    (tmp_path / "demo.yaml").rename(tmp_path / "other.yaml")
    with pytest.raises(ValueError, match=r"other\.yaml: source is 'demo'"):
        load_catalogue(tmp_path)


def test_codes_from_must_exist(tmp_path: Path) -> None:
    text = 'source: demo\nversion: "1"\ncodes_from: missing\nstates:\n  FAIL: FAILED\n'
    (tmp_path / "demo.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="codes_from names unknown source 'missing'"):
        load_catalogue(tmp_path)


def test_empty_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no code catalogue files"):
        load_catalogue(tmp_path)


def test_shipped_files_reload_from_a_copy(tmp_path: Path) -> None:
    # The loader takes any directory: a copy of the shipped files loads to the same data.
    for path in CODES_DIR.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_catalogue(tmp_path) == default_catalogue()
