"""The channels' signing keys for the tests that post native callbacks to the gateway,
and the settings that make the gateway and worker trust them."""

from __future__ import annotations

from dataclasses import dataclass

from tests.channels.test_channel_alipay import APP_ID as ALIPAY_APP_ID
from tests.channels.test_channel_alipay import _new_key
from tests.channels.test_channel_iso20022 import BANK_SECRET
from tests.channels.test_channel_stripe import WEBHOOK_SECRET
from tests.channels.test_channel_wechatpay import (
    APIV3,
    APPID,
    MCH_ID,
    MERCHANT_SERIAL,
    PLATFORM_SERIAL,
    WxKeys,
    _pem_private,
    _pem_public,
)
from tests.support.workflow_harness import make_settings


@dataclass
class Keys:
    alipay_app: object
    alipay: object
    wechat: WxKeys


def new_keys() -> Keys:
    """Fresh keys for the four channels (RSA keys take a moment: one set per test module)."""
    return Keys(
        alipay_app=_new_key(),
        alipay=_new_key(),
        wechat=WxKeys(merchant=_new_key(), platform=_new_key(), other=_new_key()),
    )


def settings_for(tmp_path, smtp_port, keys: Keys):
    return make_settings(
        tmp_path,
        smtp_port,
        alipay_app_id=ALIPAY_APP_ID,
        alipay_app_private_key=_pem_private(keys.alipay_app),
        alipay_public_key=_pem_public(keys.alipay),
        wechat_mch_id=MCH_ID,
        wechat_appid=APPID,
        wechat_merchant_private_key=_pem_private(keys.wechat.merchant),
        wechat_merchant_serial_no=MERCHANT_SERIAL,
        wechat_platform_public_keys={PLATFORM_SERIAL: _pem_public(keys.wechat.platform)},
        wechat_apiv3_key=APIV3.decode(),
        stripe_secret_key="sk_test_x",
        stripe_webhook_secret=WEBHOOK_SECRET,
        iso20022_base_url="https://bank.example/iso",
        iso20022_secret=BANK_SECRET,
        iso20022_debtor_account="DE89370400440532013000",
        iso20022_debtor_agent_bic="COBADEFFXXX",
    )
