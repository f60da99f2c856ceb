"""Every channel adapter is built from settings alone, and a half-configured channel is
refused with the names of the missing settings (R26: one adapter module per channel)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.registry import build_channels
from sentinel.settings import Settings


def pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def test_only_the_generic_channel_by_default():
    assert sorted(build_channels(Settings(_env_file=None))) == ["generic"]


def test_all_channels_from_settings(monkeypatch):
    app_key, alipay_pub = pem_pair()
    mch_key, platform_pub = pem_pair()
    env = {
        "SENTINEL_ALIPAY_APP_ID": "2021000000000001",
        "SENTINEL_ALIPAY_APP_PRIVATE_KEY": app_key,
        "SENTINEL_ALIPAY_PUBLIC_KEY": alipay_pub,
        "SENTINEL_WECHAT_MCH_ID": "1900000001",
        "SENTINEL_WECHAT_APPID": "wx0000000000000001",
        "SENTINEL_WECHAT_MERCHANT_PRIVATE_KEY": mch_key,
        "SENTINEL_WECHAT_MERCHANT_SERIAL_NO": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        "SENTINEL_WECHAT_PLATFORM_PUBLIC_KEYS": json.dumps({"PUB_KEY_ID_01": platform_pub}),
        "SENTINEL_WECHAT_APIV3_KEY": "0123456789abcdef0123456789abcdef",
        "SENTINEL_STRIPE_SECRET_KEY": "sk_test_123",
        "SENTINEL_STRIPE_WEBHOOK_SECRET": "whsec_123",
        "SENTINEL_ISO20022_BASE_URL": "https://bank.example/iso",
        "SENTINEL_ISO20022_SECRET": "bank-secret",
        "SENTINEL_ISO20022_DEBTOR_ACCOUNT": "DE89370400440532013000",
        "SENTINEL_ISO20022_DEBTOR_AGENT_BIC": "COBADEFFXXX",
        "SENTINEL_CALLBACK_TOLERANCE_S": "120",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    channels = build_channels(Settings(_env_file=None))
    assert sorted(channels) == ["alipay", "generic", "iso20022", "stripe", "wechat"]
    assert all(name == ch.name for name, ch in channels.items())
    assert channels["alipay"].config.notify_future_skew_s == 120  # issue #11: future-dated notifies


@pytest.mark.parametrize(
    "env, missing",
    [
        ({"SENTINEL_STRIPE_SECRET_KEY": "sk_test_1"}, "SENTINEL_STRIPE_WEBHOOK_SECRET"),
        ({"SENTINEL_ISO20022_BASE_URL": "https://bank.example"}, "SENTINEL_ISO20022_SECRET"),
        ({"SENTINEL_ALIPAY_APP_ID": "2021"}, "SENTINEL_ALIPAY_APP_PRIVATE_KEY"),
        ({"SENTINEL_WECHAT_MCH_ID": "1900"}, "SENTINEL_WECHAT_APPID"),
    ],
)
def test_half_configured_channel_is_refused(monkeypatch, env, missing):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=missing):
        build_channels(Settings(_env_file=None))
