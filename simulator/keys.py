"""Test keys for the simulator's native dialects, and the platform settings that match them.

``generate()`` makes a fresh set (RSA keys for Alipay and WeChat Pay, an APIv3 key, Stripe
and ISO 20022 secrets); ``save``/``load`` keep it in a JSON file (the dev stack writes
``.data/sim-keys.json``); ``platform_env`` gives the ``SENTINEL_*`` variables that point
the platform's adapters at the simulator with the other half of each key pair. These keys
are for the local simulator only: production keys come from the providers.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def _private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class SimKeys:
    # Alipay: the app's key pair (the app signs requests, Alipay checks with the public
    # half) and Alipay's key pair (Alipay signs answers and notifies, the app checks).
    alipay_app_id: str
    alipay_app_private_pem: str
    alipay_app_public_pem: str
    alipay_private_pem: str
    alipay_public_pem: str
    # WeChat Pay v3: the merchant's API key pair (Authorization header), the platform's key
    # pair (Wechatpay-Signature on answers and notifies, by serial) and the APIv3 key
    # (AEAD_AES_256_GCM of notify resources).
    wechat_mch_id: str
    wechat_appid: str
    wechat_merchant_serial: str
    wechat_merchant_private_pem: str
    wechat_merchant_public_pem: str
    wechat_platform_serial: str
    wechat_platform_private_pem: str
    wechat_platform_public_pem: str
    wechat_apiv3_key: str  # 32 ASCII characters
    # Stripe: the secret API key (Bearer) and the webhook endpoint's signing secret.
    stripe_secret_key: str
    stripe_webhook_secret: str
    # ISO 20022 bank: one HMAC secret both ways, and our account at the bank.
    iso_secret: str
    iso_debtor_account: str
    iso_debtor_agent_bic: str


def generate() -> SimKeys:
    app, ali, merchant, platform = _rsa(), _rsa(), _rsa(), _rsa()
    return SimKeys(
        alipay_app_id="2021000000000001",
        alipay_app_private_pem=_private_pem(app),
        alipay_app_public_pem=_public_pem(app),
        alipay_private_pem=_private_pem(ali),
        alipay_public_pem=_public_pem(ali),
        wechat_mch_id="1900000001",
        wechat_appid="wxd0000000000000001",
        wechat_merchant_serial=secrets.token_hex(20).upper(),
        wechat_merchant_private_pem=_private_pem(merchant),
        wechat_merchant_public_pem=_public_pem(merchant),
        wechat_platform_serial="PUB_KEY_ID_" + secrets.token_hex(12).upper(),
        wechat_platform_private_pem=_private_pem(platform),
        wechat_platform_public_pem=_public_pem(platform),
        wechat_apiv3_key=secrets.token_hex(16),
        stripe_secret_key="sk_test_" + secrets.token_hex(24),
        stripe_webhook_secret="whsec_" + secrets.token_hex(24),
        iso_secret=secrets.token_hex(32),
        iso_debtor_account="DE89370400440532013000",
        iso_debtor_agent_bic="COBADEFFXXX",
    )


def save(keys: SimKeys, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(keys), indent=1))
    path.chmod(0o600)


def load(path: Path) -> SimKeys:
    return SimKeys(**json.loads(Path(path).read_text()))


def load_or_generate(path: Path) -> SimKeys:
    """The keys in ``path``, made and saved first when the file does not exist."""
    if Path(path).exists():
        return load(path)
    keys = generate()
    save(keys, path)
    return keys


def platform_env(keys: SimKeys, simulator_url: str) -> dict[str, str]:
    """``SENTINEL_*`` settings for the platform: every native adapter pointed at the
    simulator (``/<channel>`` prefixes) with the platform's half of each key."""
    base = simulator_url.rstrip("/")
    return {
        "SENTINEL_ALIPAY_APP_ID": keys.alipay_app_id,
        "SENTINEL_ALIPAY_GATEWAY_URL": f"{base}/alipay/gateway.do",
        "SENTINEL_ALIPAY_APP_PRIVATE_KEY": keys.alipay_app_private_pem,
        "SENTINEL_ALIPAY_PUBLIC_KEY": keys.alipay_public_pem,
        "SENTINEL_WECHAT_MCH_ID": keys.wechat_mch_id,
        "SENTINEL_WECHAT_APPID": keys.wechat_appid,
        "SENTINEL_WECHAT_BASE_URL": f"{base}/wechat",
        "SENTINEL_WECHAT_MERCHANT_PRIVATE_KEY": keys.wechat_merchant_private_pem,
        "SENTINEL_WECHAT_MERCHANT_SERIAL_NO": keys.wechat_merchant_serial,
        "SENTINEL_WECHAT_PLATFORM_PUBLIC_KEYS": json.dumps(
            {keys.wechat_platform_serial: keys.wechat_platform_public_pem}
        ),
        "SENTINEL_WECHAT_APIV3_KEY": keys.wechat_apiv3_key,
        "SENTINEL_STRIPE_API_BASE": f"{base}/stripe",
        "SENTINEL_STRIPE_SECRET_KEY": keys.stripe_secret_key,
        "SENTINEL_STRIPE_WEBHOOK_SECRET": keys.stripe_webhook_secret,
        "SENTINEL_ISO20022_BASE_URL": f"{base}/iso20022",
        "SENTINEL_ISO20022_SECRET": keys.iso_secret,
        "SENTINEL_ISO20022_DEBTOR_ACCOUNT": keys.iso_debtor_account,
        "SENTINEL_ISO20022_DEBTOR_AGENT_BIC": keys.iso_debtor_agent_bic,
    }
