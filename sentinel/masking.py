"""Card and account numbers never leave (R22): every text a user or operator gets passes
:func:`assert_no_card_number`. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_CARD_RUN = re.compile(r"\d(?:[ \-\u00a0]*\d){11,}")


class CardNumberLeak(ValueError):
    """A text would carry a card or account number (12+ digits in a row)."""


def assert_no_card_number(text: str, allow: Iterable[str] = ()) -> None:
    """Raise :class:`CardNumberLeak` if ``text`` has a run of 12 or more digits, spaces and
    dashes allowed between them. ``allow`` lists known identifiers (order number, support
    phone) that may be long digit strings; they are blanked out before the check."""
    for token in sorted((t for t in allow if t), key=len, reverse=True):
        text = text.replace(token, " ")
    m = _CARD_RUN.search(text)
    if m:
        raise CardNumberLeak(
            f"text contains a card-number-like digit run at offset {m.start()}; only the last four digits may be shown"
        )
