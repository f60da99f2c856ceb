"""Alipay payouts (docs/channels/alipay.md): 单笔转账 ``alipay.fund.trans.uni.transfer``,
``alipay.fund.trans.common.query`` and the ``alipay.fund.trans.order.changed`` message.

Open-platform gateway protocol, public-key mode: every request is a form POST of the
common parameters plus ``biz_content`` (JSON), signed RSA2 (SHA256withRSA, PKCS#1 v1.5)
with the app's private key over ``k=v`` pairs sorted by key (``sign`` and empty values
left out). Every answer is ``{"<method>_response": {...}, "sign": "..."}`` and the sign
covers the raw text of the response node, verified with the Alipay public key.

Decisions (see the docs page for the reasons):

* gateway ``code`` 10000 -> the ``status`` field; 20000, and 40004 with sub_code
  SYSTEM_ERROR or without a sub_code -> ``ChannelUnavailable`` (unknown: query first);
  40004 with a sub_code -> raw status ``FAIL`` with the sub_code as the code;
  40001/40002/40006/20001 -> ``ChannelRejectedRequest``.
* An answer whose signature is missing or wrong is never acted on (``ChannelUnavailable``),
  except the request-error codes above, which cannot mean money moved.
* Query ``40004 ORDER_NOT_EXIST`` -> raw status ``NOT_FOUND`` (the workflow then resends
  the same ``out_biz_no``, which Alipay treats idempotently).

Amounts are ``Decimal`` and sent as a yuan string with two decimals; the payee identity is
resolved from the opaque ``payee_ref`` (a vault token) at send time and never logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from channels.alipay.transformers import (
    _ID,
    _OUT_BIZ_NO,
    _WORD,
    _WS,
    BEIJING,
    NOTIFY_METHOD,
    QUERY_METHOD,
    REQUEST_ERROR_CODES,
    TRANSFER_METHOD,
    AlipayConfig,
    AlipayPayee,
    PayeeResolver,
    _notify_time,
    _parse_form,
    _text,
    _word,
    _word_or_id,
    yuan,
)
from channels.base import (
    CallbackEvent,
    CallbackRejected,
    ChannelRejectedRequest,
    ChannelUnavailable,
    HttpChannel,
)
from channels.rsa_keys import load_private_key, load_public_key
from sentinel import safe_json
from sentinel.catalogue import Catalogue
from sentinel.models import Observation, WithdrawalRequest

log = logging.getLogger(__name__)

# --- keys and signatures ------------------------------------------------------------------


def sign_content(params: Mapping[str, Any], exclude: tuple[str, ...] = ("sign",)) -> str:
    """The string Alipay signs: ``k=v`` for every non-empty value, keys sorted, joined by
    ``&``; values raw (not URL-encoded)."""
    return "&".join(
        f"{k}={params[k]}"
        for k in sorted(params)
        if k not in exclude and params[k] is not None and params[k] != ""
    )


def rsa2_sign(key: rsa.RSAPrivateKey, content: str, charset: str = "utf-8") -> str:
    return base64.b64encode(key.sign(content.encode(charset), padding.PKCS1v15(), hashes.SHA256())).decode(
        "ascii"
    )


def rsa2_verify(key: rsa.RSAPublicKey, content: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature.replace(" ", "+"), validate=True)
        key.verify(raw, content, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def _skip_ws(text: str, pos: int) -> int:
    """Index of the first character at or after ``pos`` that is not JSON whitespace."""
    match = _WS.match(text, pos)  # (``*``: always matches, possibly empty)
    return match.end() if match else pos


def top_level_spans(text: str) -> dict[str, tuple[int, int]]:
    """(start, end) of the raw text of every value of a top-level JSON object, so the exact
    bytes Alipay signed can be checked. Raises ValueError for anything but one object
    (duplicate keys included: which one was signed would be ambiguous)."""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if text[pos : pos + 1] != "{":
        raise ValueError("not a JSON object")
    pos = _skip_ws(text, pos + 1)
    spans: dict[str, tuple[int, int]] = {}
    if text[pos : pos + 1] == "}":
        end = pos + 1
    else:
        while True:
            if text[pos : pos + 1] != '"':
                raise ValueError("expected a key")
            key, pos = decoder.raw_decode(text, pos)
            pos = _skip_ws(text, pos)
            if text[pos : pos + 1] != ":":
                raise ValueError("expected ':'")
            pos = _skip_ws(text, pos + 1)
            _, value_end = decoder.raw_decode(text, pos)
            if key in spans:
                raise ValueError(f"duplicate key {key!r}")
            spans[key] = (pos, value_end)
            pos = _skip_ws(text, value_end)
            sep = text[pos : pos + 1]
            if sep == ",":
                pos = _skip_ws(text, pos + 1)
                continue
            if sep != "}":
                raise ValueError("expected ',' or '}'")
            end = pos + 1
            break
    if text[end:].strip():
        raise ValueError("text after the object")
    return spans


# --- the adapter --------------------------------------------------------------------------


class AlipayChannel(HttpChannel):
    name = "alipay"

    def __init__(
        self,
        catalogue: Catalogue,
        config: AlipayConfig,
        *,
        client: httpx.AsyncClient | None = None,
        resolve_payee: PayeeResolver | None = None,
    ):
        super().__init__(catalogue, config, client)
        self._app_key = load_private_key(config.app_private_key_pem)
        self._alipay_key = load_public_key(config.alipay_public_key_pem)
        self._resolve_payee = resolve_payee or self._payee_from_ref

    async def _payee_from_ref(self, request: WithdrawalRequest) -> AlipayPayee:
        return AlipayPayee(identity=request.payee_ref, identity_type=self.config.payee_identity_type)

    # --- requests ---------------------------------------------------------------------

    def signed_params(
        self, method: str, biz: Mapping[str, Any], notify_url: str | None = None
    ) -> dict[str, str]:
        params = {
            "app_id": self.config.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        if notify_url:
            params["notify_url"] = notify_url
        params["sign"] = rsa2_sign(self._app_key, sign_content(params))
        return params

    async def _call(
        self, method: str, biz: Mapping[str, Any], notify_url: str | None = None
    ) -> dict[str, Any]:
        body = urlencode(self.signed_params(method, biz, notify_url), encoding="utf-8").encode("ascii")
        try:
            resp = await self._client.post(
                self.config.gateway_url,
                content=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded;charset=utf-8",
                    "Accept": "application/json",
                },
            )
        except httpx.HTTPError as exc:
            raise ChannelUnavailable(f"{method}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise ChannelUnavailable(f"{method}: HTTP {resp.status_code}")
        if resp.status_code != 200:
            raise ChannelRejectedRequest(f"{method}: HTTP {resp.status_code} from the gateway")
        return self.verified_node(method, resp.content)

    def verified_node(self, method: str, body: bytes) -> dict[str, Any]:
        """The response node of ``method`` after checking its signature."""
        node_key = method.replace(".", "_") + "_response"
        try:
            if safe_json.too_deep(body):
                raise ValueError("nested too deep")
            text = body.decode("utf-8")
            spans = top_level_spans(text)
        except (UnicodeDecodeError, ValueError):
            raise ChannelUnavailable(f"{method}: unreadable answer") from None
        key = node_key if node_key in spans else "error_response" if "error_response" in spans else None
        if key is None:
            raise ChannelUnavailable(f"{method}: answer has no {node_key}")
        start, end = spans[key]
        raw = text[start:end]
        node = json.loads(raw)
        if not isinstance(node, dict):
            raise ChannelUnavailable(f"{method}: {key} is not an object")
        code, sub_code = _text(node.get("code")), _text(node.get("sub_code"))
        sign = json.loads(text[slice(*spans["sign"])]) if "sign" in spans else None
        if not isinstance(sign, str) or not sign:
            if code in REQUEST_ERROR_CODES:
                raise ChannelRejectedRequest(
                    f"{method}: gateway code {code} {sub_code or ''} (unsigned)".rstrip()
                )
            raise ChannelUnavailable(f"{method}: unsigned answer (code {code}); not trusted")
        candidates = [raw] + ([raw.replace("\\/", "/")] if "\\/" in raw else [])
        if not any(rsa2_verify(self._alipay_key, c.encode("utf-8"), sign) for c in candidates):
            raise ChannelUnavailable(f"{method}: answer signature does not verify; not trusted")
        return node

    # --- Channel ----------------------------------------------------------------------

    async def submit(
        self, request: WithdrawalRequest, order_id: str, callback_url: str | None
    ) -> Observation:
        self._check_order_id(order_id)
        if request.currency != "CNY":
            raise ChannelRejectedRequest(f"Alipay pays CNY only, not {request.currency}")
        amount = yuan(request.amount)
        try:
            payee = await self._resolve_payee(request)
        except (ChannelUnavailable, ChannelRejectedRequest):
            raise
        except Exception as exc:  # the vault: nothing was sent, so the result is not unknown
            raise ChannelUnavailable(f"payee lookup failed: {type(exc).__name__}") from None
        payee_info = {"identity": payee.identity, "identity_type": payee.identity_type}
        if payee.name:
            payee_info["name"] = payee.name
        biz = {
            "out_biz_no": order_id,
            "trans_amount": amount,
            "product_code": self.config.product_code,
            "biz_scene": self.config.biz_scene,
            "order_title": self.config.order_title,
            "payee_info": payee_info,
        }
        node = await self._call(TRANSFER_METHOD, biz, callback_url)
        obs = self._transfer_answer(order_id, node)
        log.info("alipay submit order=%s -> %s %s", order_id, obs.raw_status, obs.raw_code or "")
        return obs

    def _transfer_answer(self, order_id: str, node: Mapping[str, Any]) -> Observation:
        code, sub_code = _text(node.get("code")), _text(node.get("sub_code"))
        now = datetime.now(UTC)
        if code == "10000":
            self._check_echo(node, order_id, TRANSFER_METHOD)
            status = _word(node.get("status"), "status", TRANSFER_METHOD) or "10000"
            return self.observe(
                order_id, status, _word(node.get("error_code"), "error_code", TRANSFER_METHOD), "submit", now
            )
        if code == "40004" and sub_code and sub_code != "SYSTEM_ERROR":
            return self.observe(order_id, "FAIL", _word(sub_code, "sub_code", TRANSFER_METHOD), "submit", now)
        raise self._not_a_business_answer(TRANSFER_METHOD, code, sub_code)

    async def query(self, order_id: str) -> Observation:
        self._check_order_id(order_id)
        biz = {
            "out_biz_no": order_id,
            "product_code": self.config.product_code,
            "biz_scene": self.config.biz_scene,
        }
        node = await self._call(QUERY_METHOD, biz)
        code, sub_code = _text(node.get("code")), _text(node.get("sub_code"))
        now = datetime.now(UTC)
        if code == "10000":
            self._check_echo(node, order_id, QUERY_METHOD)
            status = _word(node.get("status"), "status", QUERY_METHOD)
            if status is None:
                raise ChannelUnavailable(f"{QUERY_METHOD}: answer without a status")
            return self.observe(
                order_id, status, _word(node.get("error_code"), "error_code", QUERY_METHOD), "poll", now
            )
        if code == "40004" and sub_code == "ORDER_NOT_EXIST":
            # Not (yet) known to Alipay: never a failure. The workflow resends the same out_biz_no.
            return self.observe(order_id, "NOT_FOUND", None, "poll", now)
        if code == "40004" and sub_code and sub_code != "SYSTEM_ERROR":
            raise ChannelRejectedRequest(f"{QUERY_METHOD}: 40004 {sub_code}")
        raise self._not_a_business_answer(QUERY_METHOD, code, sub_code)

    @staticmethod
    def _not_a_business_answer(method: str, code: str | None, sub_code: str | None) -> Exception:
        if code in REQUEST_ERROR_CODES:
            return ChannelRejectedRequest(f"{method}: gateway code {code} {sub_code or ''}".rstrip())
        # 20000, 40004 SYSTEM_ERROR / without sub_code, anything new: the result is unknown.
        return ChannelUnavailable(f"{method}: gateway code {code} {sub_code or ''}; result unknown".rstrip())

    @staticmethod
    def _check_order_id(order_id: str) -> None:
        if not _OUT_BIZ_NO.match(order_id or ""):
            raise ChannelRejectedRequest(
                f"order id {order_id!r} is not a valid out_biz_no (letters, digits, - and _)"
            )

    @staticmethod
    def _check_echo(node: Mapping[str, Any], order_id: str, method: str) -> None:
        echoed = node.get("out_biz_no")
        if echoed is not None and echoed != order_id:
            raise ChannelUnavailable(f"{method}: answer is about out_biz_no {echoed!r}, not {order_id!r}")

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> CallbackEvent:
        params, charset = _parse_form(headers, body)
        sign = params.get("sign")
        if not sign:
            raise CallbackRejected(401, "notify has no sign")
        if params.get("sign_type", "RSA2") != "RSA2":
            raise CallbackRejected(401, f"sign_type {params.get('sign_type')!r} not accepted; RSA2 only")
        # rsaCheckV1: sign and sign_type are not part of the signed content.
        content = sign_content(params, exclude=("sign", "sign_type"))
        try:
            content_bytes = content.encode(charset)
        except UnicodeEncodeError:
            raise CallbackRejected(400, f"notify does not fit its charset {charset}") from None
        if not rsa2_verify(self._alipay_key, content_bytes, sign):
            raise CallbackRejected(401, "notify signature does not verify")
        if params.get("app_id") != self.config.app_id:
            raise CallbackRejected(401, "notify is for another app_id")

        occurred = _notify_time(params)
        ahead = occurred.timestamp() - now
        if ahead > self.config.notify_future_skew_s:
            raise CallbackRejected(
                401,
                f"notify is dated {ahead:.0f} s in the future (more than the "
                f"{self.config.notify_future_skew_s} s of clock skew allowed)",
            )
        tolerance = self.config.notify_tolerance_s
        if tolerance is not None and -ahead > tolerance:
            raise CallbackRejected(401, "notify timestamp outside the accepted window")
        if params.get("msg_method", NOTIFY_METHOD) != NOTIFY_METHOD:
            raise CallbackRejected(400, f"unexpected msg_method {params.get('msg_method')!r}")
        event_id = params.get("notify_id") or ""
        if not _word_or_id(event_id):
            raise CallbackRejected(400, "notify_id is missing or malformed")
        try:
            biz = safe_json.loads(params.get("biz_content") or "", "biz_content")
        except safe_json.JsonRefused as exc:
            raise CallbackRejected(400, str(exc)) from None
        if not isinstance(biz, dict):
            raise CallbackRejected(400, "biz_content must be a JSON object")
        order_id, status, code = biz.get("out_biz_no"), biz.get("status"), biz.get("error_code")
        if not isinstance(order_id, str) or not _ID.match(order_id):
            raise CallbackRejected(400, "out_biz_no is missing or malformed")
        if not isinstance(status, str) or not _WORD.match(status):
            raise CallbackRejected(400, "status is missing or malformed")
        if code in ("", None):
            code = None
        elif not isinstance(code, str) or not _WORD.match(code):
            raise CallbackRejected(400, "error_code is malformed")
        return CallbackEvent(event_id, order_id, status, code, occurred)

    def ack(self) -> tuple[int, str, bytes]:
        # The message service stops retrying once it reads "success".
        return 200, "text/plain", b"success"
