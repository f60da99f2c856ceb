"""Alipay's open-platform gateway (docs/channels/alipay.md), as ``AlipayChannel`` calls it.

* ``POST /gateway.do`` (form; common parameters may also come in the query string, as the
  SDKs send them): checks the request like Alipay (required common parameters, app_id,
  charset, timestamp, RSA2 signature with the app's public key) and answers
  ``{"<method>_response": {...}, "sign": "..."}`` signed with Alipay's private key (request
  errors for an unknown app_id unsigned: there is no app key pair to sign with).

  - ``alipay.fund.trans.uni.transfer``: records the order (``out_biz_no``) and answers its
    state: 10000 + status, 40004 + sub_code for a refusal, 40004 PAYMENT_INFO_INCONSISTENCY
    for a known out_biz_no with other fields; script ``http_500`` -> HTTP 500 and
    ``unknown`` -> 20000 (both recorded: the adapter queries).
  - ``alipay.fund.trans.common.query``: the order's state; 40004 ORDER_NOT_EXIST when
    unknown, 40004 SYSTEM_ERROR while the order itself is UNKNOWN.

* Notify ``alipay.fund.trans.order.changed`` (message service form, RSA2 over every field
  but ``sign``/``sign_type``) for final states only (SUCCESS, FAIL, REFUND): Alipay has no
  message for DEALING, and no delay code (the platform ages DEALING into BANK_DELAY).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from channels.alipay import (
    BEIJING,
    NOTIFY_METHOD,
    QUERY_METHOD,
    TRANSFER_METHOD,
    load_private_key,
    load_public_key,
    rsa2_sign,
    rsa2_verify,
    sign_content,
)
from simulator.engine import DuplicateOrder
from simulator.events import CallbackEvent, NativeCallback
from simulator.protocol import PayoutRequest

if TYPE_CHECKING:
    from simulator.engine import Engine
    from simulator.keys import SimKeys
    from simulator.orders import Order

log = logging.getLogger("simulator")

#: Canonical status -> Alipay ``status`` (None: Alipay cannot say; system busy, no notify).
NATIVE_STATUS: dict[str, str | None] = {
    "ACCEPTED": "DEALING",
    "PROCESSING": "DEALING",
    "SUCCEEDED": "SUCCESS",
    "FAILED": "FAIL",
    "HELD": "FAIL",  # Alipay has no hold: its risk check refuses (SECURITY_CHECK_FAILED)
    "RETURNED": "REFUND",
    "UNKNOWN": None,
}

#: Scenario (ISO 20022-style) code -> Alipay sub_code / error_code (sentinel/codes/alipay.yaml),
#: sent with FAIL and REFUND only (Alipay gives DEALING no code).
NATIVE_CODES: dict[str, str] = {
    "AC01": "PAYEE_NOT_EXIST",  # wrong account
    "AC04": "PAYEE_ACCOUNT_NOT_EXSIT",  # account closed: no balance account (sic, Alipay's spelling)
    "BE01": "PAYEE_USER_INFO_ERROR",  # name does not match
    "AM02": "EXCEED_LIMIT_SM_AMOUNT",  # over the single-transfer limit
    "AM04": "PAYER_BALANCE_NOT_ENOUGH",  # our (the payer's) balance
    "FR01": "SECURITY_CHECK_FAILED",
    "RISK": "SECURITY_CHECK_FAILED",
    "AB08": "INST_PAY_UNABLE",  # the only Alipay BANK_DELAY code (bank channel unavailable)
    "TM01": "INST_PAY_UNABLE",
    "ED06": "INST_PAY_UNABLE",
}

#: A HELD order without a code still carries the risk refusal.
HELD_CODE = "SECURITY_CHECK_FAILED"

METHODS = (TRANSFER_METHOD, QUERY_METHOD)
_REQUIRED = {  # Alipay's 40001 sub_codes
    "app_id": "isv.missing-app-id",
    "method": "isv.missing-method",
    "sign_type": "isv.missing-signature-type",
    "sign": "isv.missing-signature",
    "timestamp": "isv.missing-timestamp",
    "version": "isv.missing-version",
}
_CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gbk"}
_OUT_BIZ_NO = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_AMOUNT = re.compile(r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$")
_TIME = "%Y-%m-%d %H:%M:%S"


class GatewayError(Exception):
    """An answer other than 10000: ``code``, ``msg``, ``sub_code``, ``sub_msg``."""

    def __init__(self, code: str, msg: str, sub_code: str | None = None, sub_msg: str | None = None):
        super().__init__(f"{code} {sub_code or ''}".strip())
        self.node = {"code": code, "msg": msg}
        if sub_code:
            self.node.update(sub_code=sub_code, sub_msg=sub_msg or sub_code)


def _invalid(sub_code: str, sub_msg: str) -> GatewayError:
    return GatewayError("40002", "Invalid Arguments", sub_code, sub_msg)


def _business(sub_code: str, sub_msg: str) -> GatewayError:
    return GatewayError("40004", "Business Failed", sub_code, sub_msg)


def native(status: str, code: str | None) -> tuple[str | None, str | None]:
    """(Alipay status or None, error_code) of a canonical (status, code)."""
    ali_status = NATIVE_STATUS[status]
    if ali_status not in ("FAIL", "REFUND"):
        return ali_status, None
    if status == "HELD" and not code:
        return ali_status, HELD_CODE
    return ali_status, NATIVE_CODES.get(code) if code else None


def _beijing(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime(_TIME)


def _alipay_id(moment: datetime) -> str:
    """A 32-digit Alipay order number: date, then digits."""
    return moment.astimezone(BEIJING).strftime("%Y%m%d") + "".join(
        secrets.choice("0123456789") for _ in range(24)
    )


class AlipayDialect:
    name = "alipay"

    def __init__(self, keys: SimKeys, *, timestamp_tolerance_s: float | None = 600.0) -> None:
        self.app_id = keys.alipay_app_id
        self._app_public = load_public_key(keys.alipay_app_public_pem)
        self._alipay_private = load_private_key(keys.alipay_private_pem)
        self.timestamp_tolerance_s = timestamp_tolerance_s

    # --- the gateway ------------------------------------------------------------------

    def router(self, engine: Engine) -> APIRouter:
        router = APIRouter()

        @router.post("/gateway.do")
        async def gateway(request: Request) -> Response:
            params = dict(request.query_params)
            method = params.get("method", "")
            try:
                params.update(_form(await request.body(), params.get("charset")))
                method = params.get("method", "")
                charset = self._check(params)
                node = self._dispatch(engine, method, params)
            except GatewayError as exc:
                log.info("alipay %s -> %s", method or "?", exc)
                signed = params.get("app_id") == self.app_id
                return self._answer(method, exc.node, signed)
            except _LostAnswer:
                return Response(
                    b"<html><body>500 Internal Server Error</body></html>", 500, media_type="text/html"
                )
            return self._answer(method, node, True, charset)

        return router

    def _check(self, params: Mapping[str, str]) -> str:
        """Alipay's checks of the common parameters; returns the request charset."""
        for name, sub_code in _REQUIRED.items():
            if not params.get(name):
                raise GatewayError("40001", "Missing Required Arguments", sub_code, f"缺少{name}参数")
        if params["app_id"] != self.app_id:
            raise _invalid("isv.invalid-app-id", "无效的AppID参数")
        if params["method"] not in METHODS:
            raise _invalid("isv.invalid-method", "不存在的方法名")
        if params.get("format", "JSON").upper() != "JSON":
            raise _invalid("isv.invalid-format", "无效的数据格式")
        charset = _CHARSETS.get(params.get("charset", "utf-8").lower())
        if charset is None:
            raise _invalid("isv.invalid-charset", "字符集错误")
        if params["sign_type"] != "RSA2":
            raise _invalid("isv.invalid-signature-type", "无效的签名类型")
        try:
            sent = datetime.strptime(params["timestamp"], _TIME).replace(tzinfo=BEIJING)
        except ValueError:
            raise _invalid("isv.invalid-timestamp", "非法的时间戳参数") from None
        tolerance = self.timestamp_tolerance_s
        if tolerance is not None and abs(time.time() - sent.timestamp()) > tolerance:
            raise _invalid("isv.invalid-timestamp", "非法的时间戳参数")
        # Every parameter except sign (sign_type included), sorted, non-empty, in the charset.
        if not rsa2_verify(self._app_public, sign_content(params).encode(charset), params["sign"]):
            raise _invalid("isv.invalid-signature", "验签出错")
        return charset

    def _dispatch(self, engine: Engine, method: str, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            biz = json.loads(params.get("biz_content") or "")
        except ValueError:
            biz = None
        if not isinstance(biz, dict):
            raise _business("INVALID_PARAMETER", "biz_content 不是JSON对象")
        if method == TRANSFER_METHOD:
            return self._transfer(engine, biz, params.get("notify_url"))
        return self._query(engine, biz)

    def _transfer(self, engine: Engine, biz: Mapping[str, Any], notify_url: str | None) -> dict[str, Any]:
        out_biz_no, amount, payee = biz.get("out_biz_no"), biz.get("trans_amount"), biz.get("payee_info")
        if not isinstance(out_biz_no, str) or not _OUT_BIZ_NO.match(out_biz_no):
            raise _business("INVALID_PARAMETER", "out_biz_no 有误")
        if not isinstance(amount, str) or not _AMOUNT.match(amount) or Decimal(amount) <= 0:
            raise _business("INVALID_PARAMETER", "trans_amount 有误")
        if biz.get("product_code") != "TRANS_ACCOUNT_NO_PWD" or biz.get("biz_scene") != "DIRECT_TRANSFER":
            raise _business("INVALID_PARAMETER", "product_code / biz_scene 有误")
        if not biz.get("order_title"):
            raise _business("INVALID_PARAMETER", "缺少 order_title")
        if not isinstance(payee, dict) or not payee.get("identity") or not payee.get("identity_type"):
            raise _business("INVALID_PARAMETER", "payee_info 有误")
        try:
            request = PayoutRequest(
                order_id=out_biz_no,
                amount=amount,
                currency="CNY",
                bank_code="ALIPAY",
                payee_ref=str(payee["identity"]),
                callback_url=notify_url or "",
            )
        except ValidationError:
            # notify_url stands in for the app gateway the message service posts to.
            raise _business("INVALID_PARAMETER", "notify_url / payee_info 有误") from None
        try:
            order, created = engine.submit(request, dialect=self.name)
        except DuplicateOrder:
            raise _business("PAYMENT_INFO_INCONSISTENCY", "两次请求商户单号一样，但是参数不一致") from None
        if created:
            order.native.update(
                order_id=_alipay_id(order.submitted_at),
                pay_fund_order_id=_alipay_id(order.submitted_at),
                product_code=biz["product_code"],
                biz_scene=biz["biz_scene"],
            )
            if order.script.submit == "http_500":
                raise _LostAnswer()
        status, code = native(order.status, order.code)
        if status is None:
            raise GatewayError("20000", "Service Currently Unavailable", "isp.unknow-error", "系统繁忙")
        if status == "FAIL" and code:
            raise _business(code, order.message)
        return {
            "code": "10000",
            "msg": "Success",
            "out_biz_no": out_biz_no,
            **self._ids(order),
            "status": status,
            "trans_date": _beijing(order.submitted_at),
        }

    def _query(self, engine: Engine, biz: Mapping[str, Any]) -> dict[str, Any]:
        out_biz_no = biz.get("out_biz_no")
        if (
            not isinstance(out_biz_no, str)
            or not out_biz_no
            or not biz.get("product_code")
            or not biz.get("biz_scene")
        ):
            raise _business("INVALID_PARAMETER", "out_biz_no / product_code / biz_scene 有误")
        order = engine.get(out_biz_no)
        if order is None or order.dialect != self.name:
            raise _business("ORDER_NOT_EXIST", "转账订单不存在")
        status, code = native(order.status, order.code)
        if status is None:
            raise _business("SYSTEM_ERROR", "系统繁忙")
        node = {
            "code": "10000",
            "msg": "Success",
            **self._ids(order),
            "out_biz_no": out_biz_no,
            "trans_amount": order.request.amount,
            "status": status,
            "order_fee": "0.00",
        }
        if status in ("SUCCESS", "REFUND"):
            node["pay_date"] = _beijing(order.updated_at)
        if code:
            node.update(error_code=code, fail_reason=order.message)
        return node

    @staticmethod
    def _ids(order: Order) -> dict[str, str]:
        return {"order_id": order.native["order_id"], "pay_fund_order_id": order.native["pay_fund_order_id"]}

    def _answer(self, method: str, node: Mapping[str, Any], signed: bool, charset: str = "utf-8") -> Response:
        """``{"<method>_response": node, "sign": ...}``; the sign covers the node's exact text."""
        key = method.replace(".", "_") + "_response" if method in METHODS else "error_response"
        inner = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        text = f'{{"{key}":{inner}'
        if signed:
            text += f',"sign":"{rsa2_sign(self._alipay_private, inner, charset)}"'
        body = (text + "}").encode(charset)
        return Response(body, status_code=200, media_type=f"text/html;charset={charset}")

    # --- the notify -------------------------------------------------------------------

    def callback(self, order: Order, event: CallbackEvent, now: float) -> NativeCallback | None:
        """The ``alipay.fund.trans.order.changed`` message of ``event``; None for DEALING and
        UNKNOWN. Byte-identical on every redelivery (same notify_id and utc_timestamp, the
        time of the change: Alipay's retries span ~25 h)."""
        status, code = native(event.status, event.code)
        if status not in ("SUCCESS", "FAIL", "REFUND"):
            return None
        biz: dict[str, Any] = {
            "pay_fund_order_id": order.native["pay_fund_order_id"],
            "out_biz_no": order.order_id,
            "product_code": order.native["product_code"],
            "biz_scene": order.native["biz_scene"],
            "origin_interface": TRANSFER_METHOD,
            "order_id": order.native["order_id"],
            "status": status,
            "action_type": "FINISH",
            "trans_amount": order.request.amount,
        }
        if status == "SUCCESS":
            biz["pay_date"] = _beijing(event.occurred_at)
        if code:
            biz.update(error_code=code, fail_reason=event.message)
        params = {
            "notify_id": hashlib.sha256(f"{self.app_id}:{event.event_id}".encode()).hexdigest()[:32],
            "utc_timestamp": str(int(event.occurred_at.timestamp() * 1000)),
            "msg_method": NOTIFY_METHOD,
            "app_id": self.app_id,
            "version": "1.1",
            "charset": "utf-8",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        # rsaCheckV1: sign_type is not part of the signed content.
        params["sign"] = rsa2_sign(self._alipay_private, sign_content(params))
        params["sign_type"] = "RSA2"
        return NativeCallback(
            url=order.request.callback_url,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            body=urlencode(params, encoding="utf-8").encode("ascii"),
        )


class _LostAnswer(Exception):
    """Script ``http_500``: the order is recorded but the gateway answers 5xx."""


def _form(body: bytes, charset_hint: str | None) -> dict[str, str]:
    """The form fields of ``body``, decoded in the request's own ``charset`` field."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise _invalid("isv.invalid-parameter", "请求体不是表单") from None
    declared = charset_hint or dict(parse_qsl(text, encoding="latin-1")).get("charset", "utf-8")
    charset = _CHARSETS.get(declared.lower())
    if charset is None:
        raise _invalid("isv.invalid-charset", "字符集错误")
    try:
        return dict(parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict"))
    except (UnicodeDecodeError, ValueError):
        raise _invalid("isv.invalid-charset", "字符集错误") from None
