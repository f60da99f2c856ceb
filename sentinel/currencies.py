"""Currency minor units: ONE table (ISO 4217), shared by the notice renderer
(``sentinel.formatting.format_amount``) and the channel adapters that write amounts
(``channels.iso20022``, ``channels.stripe``, which adds Stripe's own documented deviations).

Pure: no I/O. A currency not listed has two minor units (the ISO 4217 norm).
"""

from __future__ import annotations

from decimal import Decimal

#: ISO 4217 minor units of every active currency whose minor unit is not 2
#: (funds and metals without a minor unit are not payout currencies and are not listed).
ISO4217_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
DEFAULT_MINOR_UNITS = 2


def minor_units(currency: str) -> int:
    """How many decimals ``currency`` has (ISO 4217): JPY 0, CNY 2, KWD 3, CLF 4."""
    return ISO4217_MINOR_UNITS.get(currency.upper(), DEFAULT_MINOR_UNITS)


def display_places(amount: Decimal, currency: str) -> int:
    """Decimals to show for ``amount``: the currency's minor units, trailing zeros past them
    trimmed (``100.0000`` CNY -> 2), but never fewer than the amount really has (money is
    never rounded for display: ``1.2345`` CNY -> 4)."""
    if not isinstance(amount, Decimal):
        raise TypeError("amount must be a Decimal")
    exponent = amount.normalize().as_tuple().exponent if amount else 0
    significant = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return max(minor_units(currency), significant)
