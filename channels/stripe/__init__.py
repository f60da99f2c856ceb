"""The Stripe payouts channel adapter, split as Hyperswitch splits a connector: ``client``
(HTTP, webhook signatures, the adapter) and ``transformers`` (the wire fields and codes,
amounts in minor units, the configuration)."""

from channels.base import CallbackIgnored
from channels.stripe.client import StripeChannel, verify_stripe_signature
from channels.stripe.transformers import SIGNATURE_HEADER, StripeConfig, stripe_exponent, to_minor_units

__all__ = [
    "CallbackIgnored",
    "SIGNATURE_HEADER",
    "StripeChannel",
    "StripeConfig",
    "stripe_exponent",
    "to_minor_units",
    "verify_stripe_signature",
]
