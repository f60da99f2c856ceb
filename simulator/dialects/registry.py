"""The native dialects the simulator serves, in one place: this module imports every
dialect; a dialect imports only :mod:`simulator.dialects.base`, :mod:`simulator.events` and
the engine, never this registry (so the imports run one way, without a cycle)."""

from __future__ import annotations

from simulator.dialects.alipay import AlipayDialect
from simulator.dialects.base import Dialect
from simulator.dialects.iso20022 import IsoDialect
from simulator.dialects.stripe import StripeDialect
from simulator.dialects.wechatpay import WeChatDialect
from simulator.keys import SimKeys


def build_dialects(keys: SimKeys, platform_url: str) -> list[Dialect]:
    """Every native dialect, keyed with ``keys``. ``platform_url``: the platform gateway's
    base URL, for channels whose webhook address is configured at the provider (Stripe)."""
    return [
        AlipayDialect(keys),
        WeChatDialect(keys),
        StripeDialect(keys, webhook_url=platform_url.rstrip("/") + "/v1/callbacks/stripe"),
        IsoDialect(keys),
    ]
