"""WeChat Pay API v3 商家转账 as the simulator speaks it (docs/channels/wechatpay.md).

Serves ``POST /v3/fund-app/mch-transfer/transfer-bills`` and
``GET /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}``: checks the
merchant's ``WECHATPAY2-SHA256-RSA2048`` Authorization with the merchant public key, signs
every answer with the platform key (``Wechatpay-*`` headers) and sends the
``MCHTRANSFER.BILL.FINISHED`` notification with the resource AEAD_AES_256_GCM-encrypted
under the APIv3 key. The wire helpers are the adapter's own (``channels.wechatpay``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from channels.wechatpay import (
    AUTH_SCHEMA,
    NOTIFY_EVENT,
    QUERY_PATH,
    TRANSFER_PATH,
    from_out_bill_no,
    load_private_key,
    load_public_key,
    request_message,
    response_message,
    sign_message,
    verify_message,
)
from simulator.engine import DuplicateOrder
from simulator.events import CallbackEvent, NativeCallback
from simulator.protocol import PayoutRequest, describe_validation_error

if TYPE_CHECKING:
    from simulator.engine import Engine
    from simulator.keys import SimKeys
    from simulator.orders import Order

#: Canonical (status, ISO code) -> WeChat (state, fail_reason). Each fail_reason is one the
#: catalogue (sentinel/codes/wechat.yaml) puts in the ISO code's category. WeChat has no
#: delay reason: AB08/TM01/ED06 are plain PROCESSING. A risk hold at WeChat is the final
#: FAIL/TRANSFER_RISK; a hold without a code is WAIT_PAY (HELD). A return after success is
#: the bank-return state BANK_FAIL (RETURNED) with a bank-card reason.
NATIVE: dict[tuple[str, str | None], tuple[str, str | None]] = {
    ("ACCEPTED", None): ("ACCEPTED", None),
    ("PROCESSING", None): ("PROCESSING", None),
    ("PROCESSING", "AB08"): ("PROCESSING", None),
    ("PROCESSING", "TM01"): ("PROCESSING", None),
    ("PROCESSING", "ED06"): ("PROCESSING", None),
    ("SUCCEEDED", None): ("SUCCESS", None),
    ("FAILED", None): ("FAIL", "OTHER_FAIL_REASON_TYPE"),
    ("FAILED", "AC04"): ("FAIL", "ACCOUNT_NOT_EXIST"),
    ("FAILED", "AC01"): ("FAIL", "OPENID_INVALID"),
    ("FAILED", "BE01"): ("FAIL", "NAME_NOT_CORRECT"),
    ("FAILED", "AM02"): ("FAIL", "TRANSFER_QUOTA_EXCEED"),
    ("FAILED", "AM04"): ("FAIL", "NOT_ENOUGH"),
    ("FAILED", "FR01"): ("FAIL", "TRANSFER_RISK"),
    ("FAILED", "RISK"): ("FAIL", "TRANSFER_RISK"),
    ("HELD", None): ("WAIT_PAY", None),
    ("HELD", "FR01"): ("FAIL", "TRANSFER_RISK"),
    ("HELD", "RISK"): ("FAIL", "TRANSFER_RISK"),
    ("RETURNED", None): ("BANK_FAIL", None),
    ("RETURNED", "AC04"): ("BANK_FAIL", "BANK_CARD_STATUS_ABNORMAL"),
    ("RETURNED", "AC01"): ("BANK_FAIL", "BANK_CARD_CARD_INFO_WRONG"),
    ("RETURNED", "BE01"): ("BANK_FAIL", "BANK_CARD_CARD_INFO_WRONG"),
}
#: The state of a (status, code) pair not in NATIVE; a FAILED one says OTHER_FAIL_REASON_TYPE.
STATES = {
    "ACCEPTED": "ACCEPTED",
    "PROCESSING": "PROCESSING",
    "SUCCEEDED": "SUCCESS",
    "FAILED": "FAIL",
    "HELD": "WAIT_PAY",
    "RETURNED": "BANK_FAIL",
}
#: States that send MCHTRANSFER.BILL.FINISHED (final ones; BANK_FAIL: the simulator's return).
NOTIFIED = frozenset({"SUCCESS", "FAIL", "CANCELLED", "BANK_FAIL"})

_CST = timezone(timedelta(hours=8))
_AUTH_FIELDS = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}
_NO_NOTIFY_URL = "http://notify-url.invalid/"  # PayoutRequest needs a URL; None is sent there
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def native_state(status: str, code: str | None) -> tuple[str, str | None] | None:
    """WeChat's (state, fail_reason) for a canonical status and code; None for UNKNOWN."""
    if status not in STATES:
        return None
    if (status, code) in NATIVE:
        return NATIVE[(status, code)]
    return STATES[status], "OTHER_FAIL_REASON_TYPE" if status == "FAILED" else None


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(_CST).isoformat(timespec="seconds")


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class WeChatDialect:
    name = "wechat"

    def __init__(self, keys: SimKeys):
        self.keys = keys
        self._merchant_public = load_public_key(keys.wechat_merchant_public_pem)
        self._platform_private = load_private_key(keys.wechat_platform_private_pem)
        self._apiv3 = keys.wechat_apiv3_key.encode("ascii")

    # --- wire helpers ------------------------------------------------------------------

    def _signed_headers(self, body: bytes, now: float) -> dict[str, str]:
        ts, nonce = str(int(now)), secrets.token_hex(16).upper()
        return {
            "Content-Type": "application/json",
            "Wechatpay-Timestamp": ts,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": sign_message(self._platform_private, response_message(ts, nonce, body)),
            "Wechatpay-Serial": self.keys.wechat_platform_serial,
        }

    def _answer(self, status: int, data: dict[str, Any]) -> Response:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {**self._signed_headers(body, time.time()), "Request-ID": "sim-" + secrets.token_hex(12)}
        return Response(body, status_code=status, headers=headers)

    def _error(self, status: int, code: str, message: str) -> Response:
        return self._answer(status, {"code": code, "message": message})

    def _authenticate(self, request: Request, body: bytes) -> None:
        """Checks the Authorization header as WeChat Pay does; raises _Refused(401)."""
        schema, _, rest = request.headers.get("authorization", "").partition(" ")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if schema != AUTH_SCHEMA or set(fields) != _AUTH_FIELDS:
            raise _Refused(
                401, "SIGN_ERROR", "Authorization is not WECHATPAY2-SHA256-RSA2048 with the five fields"
            )
        if fields["mchid"] != self.keys.wechat_mch_id:
            raise _Refused(401, "SIGN_ERROR", "unknown mchid")
        if fields["serial_no"] != self.keys.wechat_merchant_serial:
            raise _Refused(401, "SIGN_ERROR", "unknown merchant certificate serial_no")
        ts = fields["timestamp"]
        if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            raise _Refused(401, "SIGN_ERROR", "timestamp outside 5 minutes")
        url = request.scope.get("raw_path", request.url.path.encode()).decode("ascii")
        if request.scope.get("query_string"):
            url += "?" + request.scope["query_string"].decode("ascii")
        message = request_message(request.method, url, ts, fields["nonce_str"], body)
        if not verify_message(self._merchant_public, message, fields["signature"]):
            raise _Refused(401, "SIGN_ERROR", "signature does not verify with the merchant public key")

    def _transfer_request(self, request: Request, body: bytes) -> tuple[PayoutRequest, dict[str, Any]]:
        """The engine's PayoutRequest and the bill's fields; raises _Refused(400)."""
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _Refused(400, "PARAM_ERROR", "body is not JSON") from None
        if not isinstance(data, dict):
            raise _Refused(400, "PARAM_ERROR", "body must be a JSON object")
        for key in ("appid", "out_bill_no", "transfer_scene_id", "openid", "transfer_remark"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise _Refused(400, "PARAM_ERROR", f"{key} is required (a non-empty string)")
        if data["appid"] != self.keys.wechat_appid:
            raise _Refused(400, "PARAM_ERROR", "appid is not bound to this mchid")
        order_id = from_out_bill_no(data["out_bill_no"])
        if order_id is None:
            raise _Refused(400, "PARAM_ERROR", "out_bill_no must be 1-32 letters and digits")
        amount = data.get("transfer_amount")
        if type(amount) is not int or amount <= 0:
            raise _Refused(400, "PARAM_ERROR", "transfer_amount must be a positive integer (fen)")
        if len(data["transfer_remark"]) > 32:
            raise _Refused(400, "PARAM_ERROR", "transfer_remark is at most 32 characters")
        infos = data.get("transfer_scene_report_infos", [])
        if not isinstance(infos, list) or not all(
            isinstance(i, dict) and set(i) == {"info_type", "info_content"} for i in infos
        ):
            raise _Refused(
                400, "PARAM_ERROR", "transfer_scene_report_infos must be [{info_type, info_content}]"
            )
        notify_url = data.get("notify_url")
        if notify_url is not None and not isinstance(notify_url, str):
            raise _Refused(400, "PARAM_ERROR", "notify_url must be a string")
        if "user_name" in data:
            if request.headers.get("wechatpay-serial") != self.keys.wechat_platform_serial:
                raise _Refused(400, "PARAM_ERROR", "user_name needs Wechatpay-Serial of the encrypting key")
            try:
                self._platform_private.decrypt(base64.b64decode(data["user_name"], validate=True), _OAEP)
            except (TypeError, ValueError):
                raise _Refused(
                    400, "PARAM_ERROR", "user_name does not decrypt with the platform key"
                ) from None
        try:
            payout = PayoutRequest(
                order_id=order_id,
                amount=f"{Decimal(amount) / 100:.2f}",
                currency="CNY",
                bank_code="WECHAT",
                payee_ref=data["openid"],
                callback_url=notify_url or _NO_NOTIFY_URL,
            )
        except ValidationError as exc:
            raise _Refused(400, "PARAM_ERROR", describe_validation_error(exc)) from None
        bill = {
            "out_bill_no": data["out_bill_no"],
            "openid": data["openid"],
            "transfer_amount": amount,
            "transfer_remark": data["transfer_remark"],
            "notify": notify_url is not None,
        }
        return payout, bill

    def _bill(self, order: Order, full: bool) -> Response:
        """The bill as submit (``full=False``) or query answers it; 500 SYSTEM_ERROR while
        the simulated outcome is UNKNOWN."""
        native = native_state(order.status, order.code)
        if native is None:
            return self._error(500, "SYSTEM_ERROR", "系统错误，请稍后重试")
        state, reason = native
        n = order.native
        data: dict[str, Any] = {
            "out_bill_no": n["out_bill_no"],
            "transfer_bill_no": n["transfer_bill_no"],
            "create_time": _rfc3339(order.submitted_at),
            "state": state,
        }
        if full:
            data.update(
                mch_id=self.keys.wechat_mch_id,
                appid=self.keys.wechat_appid,
                transfer_amount=n["transfer_amount"],
                transfer_remark=n["transfer_remark"],
                openid=n["openid"],
                update_time=_rfc3339(order.updated_at),
            )
        if reason:
            data["fail_reason"] = reason
        return self._answer(200, data)

    # --- Dialect -----------------------------------------------------------------------

    def router(self, engine: Engine) -> APIRouter:
        router = APIRouter()

        @router.post(TRANSFER_PATH)
        async def transfer(request: Request) -> Response:
            body = await request.body()
            try:
                self._authenticate(request, body)
                payout, bill = self._transfer_request(request, body)
            except _Refused as r:
                return self._error(r.status, r.code, r.message)
            try:
                order, created = engine.submit(payout, dialect=self.name)
            except DuplicateOrder:
                return self._error(400, "INVALID_REQUEST", "商户单号重复，且请求参数与原单不一致")
            if created:
                digits = "".join(secrets.choice("0123456789") for _ in range(36))
                order.native.update(bill, transfer_bill_no="1330" + digits)  # WeChat's bill number
                if order.script.submit == "http_500":
                    return self._error(500, "SYSTEM_ERROR", "系统错误，请使用原商户单号重试")
                if order.script.submit == "unknown":
                    return self._error(429, "FREQUENCY_LIMITED", "频率超限，请使用原商户单号重试")
            return self._bill(order, full=False)

        @router.get(QUERY_PATH)
        async def query(out_bill_no: str, request: Request) -> Response:
            try:
                self._authenticate(request, b"")
            except _Refused as r:
                return self._error(r.status, r.code, r.message)
            order_id = from_out_bill_no(out_bill_no)
            order = engine.get(order_id) if order_id else None
            if order is None or order.dialect != self.name:
                return self._error(404, "NOT_FOUND", "记录不存在")
            return self._bill(order, full=True)

        return router

    def callback(self, order: Order, event: CallbackEvent, now: float) -> NativeCallback | None:
        native = native_state(event.status, event.code)
        if native is None or native[0] not in NOTIFIED or not order.native.get("notify"):
            return None
        state, reason = native
        n = order.native
        # the fields and names of WeChat's resource: the merchant is "mchid"
        resource = {
            "mchid": self.keys.wechat_mch_id,
            "out_bill_no": n["out_bill_no"],
            "transfer_bill_no": n["transfer_bill_no"],
            "state": state,
            "transfer_amount": n["transfer_amount"],
            "openid": n["openid"],
            "create_time": _rfc3339(order.submitted_at),
            "update_time": _rfc3339(event.occurred_at),
        }
        if reason:
            resource["fail_reason"] = reason
        # Derived from the event, so a replay is byte for byte the same notification.
        nonce = hashlib.sha256(event.event_id.encode()).hexdigest()[:12]
        plaintext = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        ciphertext = AESGCM(self._apiv3).encrypt(nonce.encode(), plaintext, b"mch_payment")
        payload = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"wechat-sim:{event.event_id}")),
            "create_time": _rfc3339(event.occurred_at),
            "resource_type": "encrypt-resource",
            "event_type": NOTIFY_EVENT,
            "summary": "商家转账单据终态通知",
            "resource": {
                "original_type": "mch_payment",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
                "associated_data": "mch_payment",
                "nonce": nonce,
            },
        }
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return NativeCallback(
            url=order.request.callback_url, headers=self._signed_headers(body, now), body=body
        )
