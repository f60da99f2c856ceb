"""Stripe wire types and their mapping to our model: the events and codes handled, the
configuration, and amounts in Stripe's minor units (ISO 4217 from sentinel.currencies plus
Stripe's documented deviations).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, localcontext

from sentinel.currencies import minor_units
from sentinel.models import ID_PATTERN
from sentinel.provider_settings import StripeSettings, secret

SIGNATURE_HEADER = "Stripe-Signature"

#: Where Stripe's API amounts differ from ISO 4217 minor units (sentinel.currencies, the one
#: table): ISK is two-decimal in Stripe's API (payouts in whole units, below), MGA is
#: zero-decimal at Stripe (https://docs.stripe.com/currencies#zero-decimal).
STRIPE_EXPONENT_OVERRIDES = {"ISK": 2, "MGA": 0}


def stripe_exponent(currency: str) -> int:
    """Decimals of ``currency`` in Stripe's integer ``amount``: ISO 4217 unless overridden."""
    cur = currency.upper()
    return STRIPE_EXPONENT_OVERRIDES.get(cur, minor_units(cur))


#: Two decimals in the API, but payouts must be whole units (amount divisible by 100).
WHOLE_UNIT_PAYOUT_CURRENCIES = frozenset({"HUF", "ISK", "TWD"})

#: Webhook event types that carry a payout status change. Any other (verified) event is
#: acknowledged and ignored: see ``CallbackIgnored``.
HANDLED_EVENTS = frozenset({"payout.paid", "payout.failed", "payout.canceled", "payout.updated"})

#: Error codes Stripe answers with HTTP 400 ``invalid_request_error`` that are a business
#: answer about this payout, not a malformed request: reported as a ``failed`` observation
#: with the code, so the workflow classifies it (an unmapped code goes to a manual check).
BUSINESS_ERROR_CODES = frozenset(
    {
        "balance_insufficient",
        "payouts_not_allowed",
        "payouts_limit_exceeded",
        "amount_too_large",
        "amount_too_small",
        "instant_payouts_unsupported",
        "instant_payouts_limit_exceeded",
        "invalid_card_type",
        "bank_account_unusable",
        "bank_account_declined",
        "bank_account_restricted",
        "account_closed",
        "debit_not_authorized",
    }
)

_ID = re.compile(ID_PATTERN)
_EVENT_ID = re.compile(r"^[A-Za-z0-9_]{1,128}$")
_PAYOUT_ID = re.compile(r"^po_[A-Za-z0-9]{1,120}$")
_STATUS = re.compile(r"^[a-z_]{2,32}$")
_CODE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class StripeConfig:
    api_base: str
    secret_key: str
    webhook_secret: str
    tolerance_s: int = 300
    timeout_s: float = 10.0
    #: Stripe Connect: act on this connected account (``Stripe-Account`` header).
    stripe_account: str | None = None
    #: ``Stripe-Version`` header; None = the account's default API version.
    api_version: str | None = None
    #: ``standard`` or ``instant``; None = Stripe's default (standard).
    payout_method: str | None = None
    #: How far back ``query`` looks for a payout it has no id for.
    query_lookback_s: int = 35 * 86400
    query_page_size: int = 100
    query_max_pages: int = 20
    #: How many order id -> payout id pairs the adapter remembers.
    id_cache_size: int = 10_000

    def __post_init__(self) -> None:
        if not self.api_base.startswith(("https://", "http://")):
            raise ValueError("StripeConfig.api_base must be an http(s) URL")
        if not self.secret_key:
            raise ValueError("StripeConfig.secret_key is empty")
        if not self.webhook_secret:
            raise ValueError("StripeConfig.webhook_secret is empty")
        if self.payout_method not in (None, "standard", "instant"):
            raise ValueError("StripeConfig.payout_method must be standard, instant or None")
        if not 1 <= self.query_page_size <= 100:
            raise ValueError("StripeConfig.query_page_size must be 1..100 (Stripe's list limit)")
        if self.query_max_pages < 1 or self.tolerance_s < 1 or self.query_lookback_s < 1:
            raise ValueError(
                "StripeConfig: query_max_pages, tolerance_s and query_lookback_s must be positive"
            )

    @classmethod
    def from_settings(cls, section: StripeSettings, *, tolerance_s: int, timeout_s: float) -> StripeConfig:
        """From ``settings.stripe`` (complete: see ``check_complete``)."""
        return cls(
            api_base=section.api_base,
            secret_key=secret(section.secret_key),
            webhook_secret=secret(section.webhook_secret),
            tolerance_s=tolerance_s,
            timeout_s=timeout_s,
            stripe_account=section.account,
        )


def to_minor_units(amount: Decimal, currency: str) -> int:
    """``amount`` (major units, exact) as Stripe's integer ``amount`` in minor units.
    Raises ValueError for an amount that does not fit the currency; never rounds."""
    if isinstance(amount, (float, bool)) or not isinstance(amount, (Decimal, int)):
        raise ValueError("amount must be a Decimal, never a float")
    amount = Decimal(amount)
    cur = currency.upper()
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"amount {amount} must be positive")
    exponent = stripe_exponent(cur)
    with localcontext() as ctx:
        ctx.prec = 60
        scaled = amount.scaleb(exponent)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{amount} {cur} has more than {exponent} decimal places")
        minor = int(scaled)
    if exponent == 3 and minor % 10:  # three-decimal: Stripe wants steps of 0.010
        raise ValueError(f"{amount} {cur}: Stripe needs three-decimal amounts in steps of 0.010")
    if cur in WHOLE_UNIT_PAYOUT_CURRENCIES and minor % 100:
        raise ValueError(f"{amount} {cur}: Stripe pays out {cur} in whole units only")
    if minor > _INT64_MAX:
        raise ValueError(f"{amount} {cur} is too large")
    return minor
