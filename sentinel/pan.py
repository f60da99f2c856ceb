"""Card numbers (PANs) in ids and free text (R22): the one detector every edge uses. Pure.

A card number here is 12 to 19 digits that pass the Luhn check and do not start with 0 (no
card network issues numbers under major industry identifier 0), written with or without
separators. A separator is any character that is neither a letter nor a digit (space, dash,
dot, underscore, slash, comma, ...), at most ``MAX_GAP`` of them in a row between two
digits (a run of white space counts as one). Unicode digits count (a full-width
"４１１１..." is a card number too), and so does a number next to Chinese text ("卡号6222...").

Digit runs joined by separators form a group; every stretch of consecutive runs of the
group that holds 12 to 19 digits is checked, so a card next to another number ("4111 1111
1111 1111 12/26") is still found. Not checked:

* a single unbroken run of more than 19 digits: an order or transfer number, not a card;
* a stretch glued to a Latin letter at either end ("WD20261127000127", "A1796417727-12"):
  that is how order numbers and other ids are written, and one in ten of them would pass
  Luhn. A card number written that way ("W4111111111111111") is the price.

False positives: a 12-19 digit number that is not a card passes Luhn one time in ten, and a
number written in groups has a few stretches checked, each with that chance. Fields that
legitimately hold such numbers are checked by their own rules instead (E.164 phone
numbers, channel-assigned event ids); every other id and text is refused when it holds one
(docs/gateway.md, "No card numbers").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MIN_DIGITS = 12
MAX_DIGITS = 19
#: separator characters allowed in a row between two digits of one number ("4111 - 1111")
MAX_GAP = 3

_DIGIT_RUN = re.compile(r"\d+")
_LATIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SPACES = re.compile(r"\s+")

REFUSAL = "looks like a card number; only the last four digits (card_last4) may be sent"


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of decimal digits (any script)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _joins(gap: str) -> bool:
    if len(gap) > MAX_GAP:
        gap = _SPACES.sub(" ", gap)
    return 0 < len(gap) <= MAX_GAP and not any(c.isalnum() for c in gap)


def _groups(text: str) -> Iterator[list[re.Match[str]]]:
    """Runs of digits (at most MAX_DIGITS long each) joined by separators."""
    group: list[re.Match[str]] = []
    for run in _DIGIT_RUN.finditer(text):
        if len(run.group()) > MAX_DIGITS:
            if group:
                yield group
            group = []
            continue
        if group and not _joins(text[group[-1].end() : run.start()]):
            yield group
            group = []
        group.append(run)
    if group:
        yield group


def _glued(text: str, start: int, end: int) -> bool:
    """The digits text[start:end] touch a Latin letter: part of an id like WD2026..."""
    return (start > 0 and text[start - 1] in _LATIN) or (end < len(text) and text[end] in _LATIN)


def card_number_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every card number in ``text``, overlapping finds merged."""
    spans: list[tuple[int, int]] = []
    for group in _groups(text):
        for i in range(len(group)):
            digits = ""
            for j in range(i, len(group)):
                digits += group[j].group()
                if len(digits) > MAX_DIGITS:
                    break
                if (
                    len(digits) >= MIN_DIGITS
                    and int(digits[0]) != 0
                    and luhn_valid(digits)
                    and not _glued(text, group[i].start(), group[j].end())
                ):
                    spans.append((group[i].start(), group[j].end()))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def has_card_number(text: str) -> bool:
    return bool(text) and bool(card_number_spans(text))


def refuse_card_number(value: str | None) -> str | None:
    """Pydantic validator: a value holding a card number is refused (the error names the
    field, never the value)."""
    if value is not None and has_card_number(value):
        raise ValueError(REFUSAL)
    return value


def mask_card_numbers(text: str) -> str:
    """``text`` with every digit of each card number but the last four replaced by ``*``
    (separators kept): for log lines that cannot be refused, such as a request path."""
    spans = card_number_spans(text)
    if not spans:
        return text
    out, pos = [], 0
    for start, end in spans:
        out.append(text[pos:start])
        chunk = list(text[start:end])
        digit_positions = [i for i, c in enumerate(chunk) if c.isdigit()]
        for i in digit_positions[:-4]:
            chunk[i] = "*"
        out.append("".join(chunk))
        pos = end
    out.append(text[pos:])
    return "".join(out)
