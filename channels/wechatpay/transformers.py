"""WeChat Pay wire types and their mapping to our model: paths, events and codes, the
out_bill_no escaping of our order ids, amounts in fen, the configuration and the payee.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from channels.base import (
    ChannelRejectedRequest,
)
from sentinel.models import ID_PATTERN, WithdrawalRequest
from sentinel.provider_settings import WeChatSettings, secret

AUTH_SCHEMA = "WECHATPAY2-SHA256-RSA2048"
TRANSFER_PATH = "/v3/fund-app/mch-transfer/transfer-bills"
QUERY_PATH = "/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}"
NOTIFY_EVENT = "MCHTRANSFER.BILL.FINISHED"
#: where a notification resource names the merchant: ``mchid`` (WeChat's notification), ``mch_id``
MERCHANT_FIELDS = ("mchid", "mch_id")

#: out_bill_no: only digits and letters, at most 32 (商户单号).
_OUT_BILL_NO = re.compile(r"^[A-Za-z0-9]{1,32}$")
#: Our order ids may hold "_" (``<id>_R<n>`` for a re-release), ".", ":" and "-", which
#: out_bill_no does not take: they are escaped with "Z" (and "Z" itself as "Z0"), so the
#: mapping is reversible and a callback's out_bill_no gives back our order id.
_ESCAPE = {"Z": "Z0", "_": "Z1", ".": "Z2", ":": "Z3", "-": "Z4"}
_UNESCAPE = {v[1]: k for k, v in _ESCAPE.items()}
_ID = re.compile(ID_PATTERN)
_WORD = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_EVENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

#: Codes that say our request is wrong: an integration bug, never a business answer.
REQUEST_ERROR_CODES = frozenset({"PARAM_ERROR", "SIGN_ERROR"})
#: Codes that leave the result unknown: query first, retry the same out_bill_no.
UNKNOWN_CODES = frozenset({"SYSTEM_ERROR", "FREQUENCY_LIMITED"})


def to_out_bill_no(order_id: str) -> str:
    """Our order id as a WeChat out_bill_no (letters and digits, at most 32)."""
    if not isinstance(order_id, str) or not _ID.match(order_id):
        raise ChannelRejectedRequest(f"order id {order_id!r} is not an order id")
    out = "".join(_ESCAPE.get(c, c) for c in order_id)
    if not _OUT_BILL_NO.match(out):
        raise ChannelRejectedRequest(
            f"order id {order_id!r} does not fit out_bill_no (32 letters and digits)"
        )
    return out


def from_out_bill_no(value: Any) -> str | None:
    """The order id an out_bill_no stands for; None if it is not one of ours."""
    if not isinstance(value, str) or not _OUT_BILL_NO.match(value):
        return None
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "Z":
            if i + 1 >= len(value) or value[i + 1] not in _UNESCAPE:
                return None
            out.append(_UNESCAPE[value[i + 1]])
            i += 2
        else:
            out.append(value[i])
            i += 1
    order_id = "".join(out)
    return order_id if _ID.match(order_id) else None


def fen(amount: Decimal) -> int:
    """A positive Decimal in yuan as integer fen, exactly; a sub-fen amount is refused."""
    if not isinstance(amount, Decimal):
        raise ChannelRejectedRequest(f"amount must be a Decimal, got {type(amount).__name__}")
    if not amount.is_finite() or amount <= 0:
        raise ChannelRejectedRequest("amount must be a positive number")
    value = amount * 100
    if value != value.to_integral_value():
        raise ChannelRejectedRequest(f"amount {amount} has more precision than one fen")
    return int(value)


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class WeChatPayConfig:
    mch_id: str
    appid: str  # the AppID the payees' OpenIDs belong to
    base_url: str  # https://api.mch.weixin.qq.com (backup: https://api2.mch.weixin.qq.com)
    merchant_private_key_pem: str = field(repr=False)  # apiclient_key.pem
    merchant_serial_no: str  # serial of the merchant API certificate
    #: WeChat Pay keys by serial: ``PUB_KEY_ID_...`` -> pub_key.pem, or platform
    #: certificate serial -> certificate / public key PEM. Keep old and new during a rotation.
    platform_public_keys: Mapping[str, str]
    apiv3_key: bytes = field(repr=False)  # APIv3 key, 32 bytes
    tolerance_s: int = 300
    transfer_scene_id: str = "1000"
    #: transfer_scene_report_infos as (info_type, info_content) pairs; WeChat requires the
    #: pairs its scene demands, e.g. 1000: (("活动名称", ..), ("奖励说明", ..)).
    scene_report_infos: tuple[tuple[str, str], ...] = ()
    transfer_remark: str = "提现"
    user_recv_perception: str | None = None
    #: which platform key encrypts user_name (default: the first one).
    encrypt_serial: str | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        key = self.apiv3_key.encode("utf-8") if isinstance(self.apiv3_key, str) else bytes(self.apiv3_key)
        if len(key) != 32:
            raise ValueError("apiv3_key must be 32 bytes")
        object.__setattr__(self, "apiv3_key", key)
        if not self.platform_public_keys:
            raise ValueError("platform_public_keys needs at least one WeChat Pay key")
        if len(self.transfer_remark) > 32:
            raise ValueError("transfer_remark is at most 32 characters")

    @classmethod
    def from_settings(cls, section: WeChatSettings, *, tolerance_s: int, timeout_s: float) -> WeChatPayConfig:
        """From ``settings.wechat`` (complete: see ``check_complete``)."""
        return cls(
            mch_id=section.mch_id or "",
            appid=section.appid or "",
            base_url=section.base_url,
            merchant_private_key_pem=secret(section.merchant_private_key),
            merchant_serial_no=section.merchant_serial_no or "",
            platform_public_keys=section.platform_public_keys,
            apiv3_key=secret(section.apiv3_key).encode("utf-8"),
            tolerance_s=tolerance_s,
            transfer_scene_id=section.transfer_scene_id,
            scene_report_infos=tuple((kind, content) for kind, content in section.scene_report_infos),
            transfer_remark=section.transfer_remark,
            timeout_s=timeout_s,
        )


@dataclass(frozen=True)
class WeChatPayee:
    """The payee: an OpenID under ``appid``; ``user_name`` (real name) is checked by WeChat
    and is required from 2,000 yuan. Both come from the vault and are never logged."""

    openid: str = field(repr=False)
    user_name: str | None = field(default=None, repr=False)


PayeeResolver = Callable[[WithdrawalRequest], Awaitable[WeChatPayee]]


def transfer_payload(
    config: WeChatPayConfig, out_bill_no: str, amount: int, openid: str, callback_url: str | None
) -> dict[str, Any]:
    """The body of a transfer-bills request (the payee's name, encrypted, is added by the
    client: it needs the platform key)."""
    payload: dict[str, Any] = {
        "appid": config.appid,
        "out_bill_no": out_bill_no,
        "transfer_scene_id": config.transfer_scene_id,
        "openid": openid,
        "transfer_amount": amount,
        "transfer_remark": config.transfer_remark,
    }
    if callback_url:
        payload["notify_url"] = callback_url
    if config.user_recv_perception:
        payload["user_recv_perception"] = config.user_recv_perception
    if config.scene_report_infos:
        payload["transfer_scene_report_infos"] = [
            {"info_type": t, "info_content": c} for t, c in config.scene_report_infos
        ]
    return payload


def _rfc3339(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
