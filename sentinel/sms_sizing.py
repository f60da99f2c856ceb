"""How long a text is as one SMS (3GPP TS 23.038): GSM-7 or UCS-2, and whether it fits one
segment. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")  # two septets each (escape + char)


@dataclass(frozen=True)
class SmsInfo:
    encoding: Literal["GSM-7", "UCS-2"]
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    limit: int  # one segment: 160 septets or 70 code units

    @property
    def fits(self) -> bool:
        return self.units <= self.limit


def sms_info(text: str) -> SmsInfo:
    """Encoding and length of ``text`` as one SMS (3GPP TS 23.038): GSM-7 if every
    character is in the default alphabet or its extension table (extension characters
    count twice), else UCS-2 where characters outside the BMP count twice."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in text):
        return SmsInfo("GSM-7", sum(2 if c in _GSM7_EXTENDED else 1 for c in text), 160)
    return SmsInfo("UCS-2", len(text.encode("utf-16-le")) // 2, 70)


def fits_one_sms(text: str) -> bool:
    return sms_info(text).fits
