"""Currency minor units (issue #10): one ISO 4217 table (sentinel/currencies.py) shared by
the notice renderer and the channel adapters that write amounts. R17 (amounts shown right
in every locale), R22-adjacent rule: money is never a float and never rounded away."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels import iso20022, stripe
from sentinel.currencies import ISO4217_MINOR_UNITS, display_places, minor_units
from sentinel.render import format_amount


@pytest.mark.parametrize(
    ("currency", "units"),
    [
        ("JPY", 0),
        ("KRW", 0),
        ("UGX", 0),
        ("BIF", 0),
        ("BHD", 3),
        ("KWD", 3),
        ("OMR", 3),
        ("JOD", 3),
        ("TND", 3),
        ("IQD", 3),
        ("LYD", 3),
        ("CLF", 4),
        ("CNY", 2),
        ("EUR", 2),
        ("usd", 2),
    ],
)
def test_iso4217_minor_units(currency, units):
    assert minor_units(currency) == units


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "text"),
    [
        ("1000", "JPY", "en-US", "JPY 1,000"),
        ("1.5", "KWD", "en-US", "KWD 1.500"),
        ("1.5", "KWD", "zh-CN", "1.500 KWD"),
        ("100.0000", "CNY", "en-US", "CNY 100.00"),  # trailing zeros trimmed to the minor unit
        ("100.1000", "CNY", "zh-CN", "100.10元"),
        ("2500.0000", "UGX", "en-US", "UGX 2,500"),
        ("7.0000", "BIF", "en-US", "BIF 7"),
        ("0.1", "CLF", "en-US", "CLF 0.1000"),
        ("100.1234", "CNY", "en-US", "CNY 100.1234"),  # never rounds money away
        ("1000", "ja", "en-US", "ja 1,000.00"),
    ],
)
def test_renderer_shows_the_real_minor_units(amount, currency, locale, text):
    assert format_amount(Decimal(amount), currency, locale) == text


def test_display_places_refuses_floats():
    with pytest.raises(TypeError):
        display_places(1.5, "KWD")  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", sorted(ISO4217_MINOR_UNITS) + ["CNY", "EUR", "USD"])
def test_renderer_and_adapters_share_one_table(currency):
    """The renderer, the ISO 20022 writer and Stripe's integer amounts agree with the one
    table for every listed currency (Stripe only where it documents a deviation)."""
    units = minor_units(currency)
    one = Decimal(1)
    shown = format_amount(one, currency, "en-US").split(" ")[1]
    assert shown == ("1" if units == 0 else "1." + "0" * units)
    assert iso20022.format_amount(one, currency) == shown.replace(",", "")
    expected_stripe = stripe.STRIPE_EXPONENT_OVERRIDES.get(currency, units)
    assert stripe.stripe_exponent(currency) == expected_stripe
    if expected_stripe <= 3:
        assert stripe.to_minor_units(one, currency) == 10**expected_stripe


def test_stripe_deviations_are_only_the_documented_ones():
    assert stripe.STRIPE_EXPONENT_OVERRIDES == {"ISK": 2, "MGA": 0}
    assert stripe.to_minor_units(Decimal("2500"), "UGX") == 2500
    assert stripe.to_minor_units(Decimal("7"), "BIF") == 7
