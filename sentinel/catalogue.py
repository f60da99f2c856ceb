"""The payout error-code catalogue (R26): every channel's status strings and reason codes,
mapped onto our taxonomy, as data in ``sentinel/codes/*.yaml`` (one file per source).

Operators add or change a code by editing YAML, not code (R30). Loading validates every
file and fails with a ``ValueError`` that names the file and the code or status at fault:
unknown enum names, a missing zh-CN / en-US text (R17), duplicate codes within a source,
bad states, numeric codes YAML turned into numbers.

Every entry carries short, plain user texts for the reason and the action (R7, R9), and
the row(s) of ``payout-codes.md`` it comes from (``reference_row``) so coverage is checkable.

File format (see docs/error-codes.md)::

    source: alipay                 # = the file name, = the channel name
    version: "2026-11-27.1"
    reference: "where the codes come from"      # optional
    codes_from: iso20022           # optional: reuse another source's codes (generic)
    states:                        # the channel's raw status -> PayoutState
      DEALING: PROCESSING
      REFUND: {state: RETURNED, reference_row: [115], note: "..."}
    codes:
      - code: PAYEE_USER_INFO_ERROR
        meaning: "..."             # English, for operators
        category: ACCOUNT_INFO_ERROR
        subtype: name-mismatch     # or null
        retry: AFTER_USER_FIX
        fixer: USER
        reference_row: [84]        # or `reference: "..."` for a code that is not a row
        reason: {zh-CN: "...", en-US: "..."}
        action: {zh-CN: "...", en-US: "..."}

Pure apart from reading the files in ``load_catalogue``; the ``Catalogue`` object itself
is immutable and safe to share (``default_catalogue`` caches it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from sentinel.taxonomy import ExceptionCategory, Fixer, PayoutState, RetryDecision

CODES_DIR = Path(__file__).resolve().parent / "codes"

#: The channels the default catalogue must describe.
CHANNELS: tuple[str, ...] = (
    "generic",
    "stripe",
    "iso20022",
    "nacha",
    "alipay",
    "wechat",
    "unionpay",
    "chinapay",
)

#: Every user text must exist in these locales (R17).
REQUIRED_LOCALES: tuple[str, ...] = ("zh-CN", "en-US")

_LOCALE = re.compile(r"^[a-z]{2}(-[A-Z]{2})?$")
_SUBTYPE = r"^[a-z0-9]+(-[a-z0-9]+)*$"
_SOURCE = r"^[a-z][a-z0-9_]{1,31}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_texts(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(
            f"must be a mapping of locale -> text, e.g. {{zh-CN: ..., en-US: ...}}; got {value!r}"
        )
    out: dict[str, str] = {}
    for locale, text in value.items():
        if not isinstance(locale, str) or not _LOCALE.match(locale):
            raise ValueError(f"{locale!r} is not a locale like zh-CN or en-US")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{locale} text is empty")
        out[locale] = text.strip()
    missing = [loc for loc in REQUIRED_LOCALES if loc not in out]
    if missing:
        raise ValueError(f"missing {' and '.join(missing)} text")
    return out


def _rows(value: Any) -> Any:
    """``reference_row: 84`` and ``reference_row: [84, 85]`` both work."""
    if value is None:
        return ()
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    return value


class CodeEntry(_Frozen):
    """One reason code of one source, in our terms, with the texts the user sees."""

    code: str = Field(min_length=1, max_length=64)
    meaning: str = Field(min_length=1, description="English, for operators")
    category: ExceptionCategory
    subtype: str | None = Field(default=None, pattern=_SUBTYPE)
    retry: RetryDecision
    fixer: Fixer
    reference_row: tuple[int, ...] = Field(default=(), description="row number(s) # of payout-codes.md")
    reference: str | None = Field(default=None, description="source of a code that is not a row of the table")
    reason: dict[str, str] = Field(description="locale -> why it happened, in plain words (R7, R9)")
    action: dict[str, str] = Field(description="locale -> what the user should do (R7, R18)")

    @field_validator("code", mode="before")
    @classmethod
    def _code_is_text(cls, v: Any) -> Any:
        if not isinstance(v, str):
            raise ValueError(f'code {v!r} is not a string; quote numeric codes in YAML, e.g. "0103"')
        return v

    @field_validator("reference_row", mode="before")
    @classmethod
    def _rows_list(cls, v: Any) -> Any:
        return _rows(v)

    @field_validator("reference_row")
    @classmethod
    def _rows_positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(r < 1 for r in v):
            raise ValueError("row numbers start at 1")
        return v

    @field_validator("reason", "action", mode="before")
    @classmethod
    def _texts(cls, v: Any) -> dict[str, str]:
        return _check_texts(v)

    @model_validator(mode="after")
    def _traceable(self) -> CodeEntry:
        if not self.reference_row and not self.reference:
            raise ValueError(
                "needs reference_row (row of payout-codes.md) or reference (where the code comes from)"
            )
        return self

    def reason_text(self, locale: str) -> str:
        """The reason in ``locale``, falling back to en-US."""
        return self.reason.get(locale) or self.reason["en-US"]

    def action_text(self, locale: str) -> str:
        """The action in ``locale``, falling back to en-US."""
        return self.action.get(locale) or self.action["en-US"]


class StateEntry(_Frozen):
    """What one raw status of a channel means. In YAML either a bare state name
    (``DEALING: PROCESSING``) or a mapping with the rows it comes from."""

    state: PayoutState
    reference_row: tuple[int, ...] = ()
    note: str | None = None

    @field_validator("reference_row", mode="before")
    @classmethod
    def _rows_list(cls, v: Any) -> Any:
        return _rows(v)


class SourceCatalogue(_Frozen):
    """One file of ``sentinel/codes``: one source (channel) of codes."""

    source: str = Field(pattern=_SOURCE)
    version: str = Field(min_length=1)
    reference: str | None = None
    codes_from: str | None = Field(default=None, pattern=_SOURCE, description="reuse this source's codes")
    states: dict[str, StateEntry] = Field(min_length=1)
    codes: tuple[CodeEntry, ...] = ()

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    @field_validator("states", mode="before")
    @classmethod
    def _state_shorthand(cls, v: Any) -> Any:
        if not isinstance(v, Mapping):
            return v
        out: dict[Any, Any] = {}
        for raw, entry in v.items():
            if not isinstance(raw, str):
                raise ValueError(f'status {raw!r} is not a string; quote numeric statuses in YAML, e.g. "00"')
            out[raw] = {"state": entry} if isinstance(entry, str) else entry
        return out

    @model_validator(mode="after")
    def _unique_codes(self) -> SourceCatalogue:
        seen: set[str] = set()
        for entry in self.codes:
            if entry.code in seen:
                raise ValueError(f"duplicate code {entry.code!r}")
            seen.add(entry.code)
        if self.codes_from == self.source:
            raise ValueError("codes_from cannot name the source itself")
        return self

    @property
    def code_map(self) -> dict[str, CodeEntry]:
        return {e.code: e for e in self.codes}


class Catalogue(_Frozen):
    """All sources. ``lookup`` and ``state`` are what the classifier uses."""

    sources: dict[str, SourceCatalogue]

    _codes: dict[str, dict[str, CodeEntry]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _links(self) -> Catalogue:
        for name, src in self.sources.items():
            if src.source != name:
                raise ValueError(f"source {src.source!r} is filed under {name!r}")
            if src.codes_from is not None:
                base = self.sources.get(src.codes_from)
                if base is None:
                    raise ValueError(f"{name}: codes_from names unknown source {src.codes_from!r}")
                if base.codes_from is not None:
                    raise ValueError(
                        f"{name}: codes_from {src.codes_from!r} itself uses codes_from; one level only"
                    )
        return self

    def model_post_init(self, __context: Any) -> None:
        index: dict[str, dict[str, CodeEntry]] = {}
        for name, src in self.sources.items():
            merged: dict[str, CodeEntry] = {}
            base = self.sources.get(src.codes_from) if src.codes_from is not None else None
            if base is not None:  # an unknown codes_from is reported by _links
                merged.update(base.code_map)
            merged.update(src.code_map)  # the source's own codes win
            index[name] = merged
        self._codes = index

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(sorted(self.sources))

    def source(self, channel: str) -> SourceCatalogue:
        try:
            return self.sources[channel]
        except KeyError:
            raise KeyError(f"unknown channel {channel!r}; known: {', '.join(self.channels)}") from None

    def lookup(self, channel: str, code: str | None) -> CodeEntry | None:
        """The entry for ``code`` as the channel sends it (case-sensitive), including the
        codes a source reuses through ``codes_from``; None if unknown."""
        if code is None:
            return None
        return self._codes.get(channel, {}).get(code)

    def state(self, channel: str, raw_status: str | None) -> PayoutState | None:
        """The normalised state of a channel's raw status; None if not mapped."""
        src = self.sources.get(channel)
        if src is None or raw_status is None:
            return None
        entry = src.states.get(raw_status)
        return entry.state if entry is not None else None

    def entries(self, channel: str) -> list[CodeEntry]:
        """Every code the channel understands (own and reused)."""
        self.source(channel)
        return list(self._codes[channel].values())

    def iter_entries(self) -> Iterator[tuple[str, CodeEntry]]:
        """(source, entry) for every entry defined in a file (reused codes once)."""
        for name, src in sorted(self.sources.items()):
            for entry in src.codes:
                yield name, entry


def _errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def load_source(path: Path) -> SourceCatalogue:
    """Load and validate one file. Errors name the file and the code or status."""
    where = path.name
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: expected a mapping with source, version, states, codes")
    if doc.get("source") != path.stem:
        raise ValueError(f"{where}: source is {doc.get('source')!r}, expected {path.stem!r} (the file name)")

    raw_codes = doc.get("codes") or []
    if not isinstance(raw_codes, list):
        raise ValueError(f"{where}: codes must be a list")
    codes: list[CodeEntry] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw_codes):
        label = repr(item.get("code")) if isinstance(item, dict) and "code" in item else f"#{i + 1}"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: code {label}: expected a mapping")
        try:
            entry = CodeEntry.model_validate(item)
        except ValidationError as exc:
            raise ValueError(f"{where}: code {label}: {_errors(exc)}") from None
        if entry.code in seen:
            raise ValueError(
                f"{where}: code {entry.code!r}: duplicate code (entries #{seen[entry.code]} and #{i + 1})"
            )
        seen[entry.code] = i + 1
        codes.append(entry)

    raw_states = doc.get("states")
    if not isinstance(raw_states, dict) or not raw_states:
        raise ValueError(f"{where}: states must be a non-empty mapping of raw status -> PayoutState")
    for raw, value in raw_states.items():
        if not isinstance(raw, str):
            raise ValueError(
                f'{where}: status {raw!r}: not a string; quote numeric statuses in YAML, e.g. "00"'
            )
        try:
            StateEntry.model_validate({"state": value} if isinstance(value, str) else value)
        except ValidationError as exc:
            raise ValueError(f"{where}: status {raw!r}: {_errors(exc)}") from None

    try:
        return SourceCatalogue.model_validate({**doc, "codes": codes})
    except ValidationError as exc:
        raise ValueError(f"{where}: {_errors(exc)}") from None


def load_catalogue(directory: Path | None = None) -> Catalogue:
    """Load and validate every ``*.yaml`` of ``directory`` (default: ``sentinel/codes``).
    Raises ValueError naming the file and the code at fault."""
    directory = Path(directory) if directory is not None else CODES_DIR
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ValueError(f"{directory}: no code catalogue files (*.yaml)")
    sources = {path.stem: load_source(path) for path in files}
    try:
        return Catalogue(sources=sources)
    except ValidationError as exc:
        raise ValueError(f"{directory}: {_errors(exc)}") from None


@lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    """The shipped catalogue, loaded once per process. Every channel must be present."""
    catalogue = load_catalogue()
    missing = [c for c in CHANNELS if c not in catalogue.sources]
    if missing:
        raise ValueError(f"{CODES_DIR}: no catalogue for channel(s) {', '.join(missing)}")
    return catalogue
