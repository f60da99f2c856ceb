"""WeChat Pay payouts (docs/channels/wechatpay.md): the new 商家转账 API v3,
``POST /v3/fund-app/mch-transfer/transfer-bills``, the query by merchant bill number and
the ``MCHTRANSFER.BILL.FINISHED`` notification.

API v3 protocol:

* every request carries ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",
  nonce_str="..",signature="..",timestamp="..",serial_no=".."``, the signature being
  SHA256withRSA (PKCS#1 v1.5) with the merchant API key over
  ``METHOD\nPATH?QUERY\ntimestamp\nnonce\nbody\n``;
* every answer and notification is signed by WeChat Pay: ``Wechatpay-Signature`` over
  ``timestamp\nnonce\nbody\n`` with the platform key named by ``Wechatpay-Serial``
  (a platform certificate serial or a ``PUB_KEY_ID_...`` of the 微信支付公钥 mode);
* notification payloads are AEAD_AES_256_GCM encrypted with the merchant's APIv3 key.

Decisions (reasons in the docs page): 5xx, SYSTEM_ERROR, 429 FREQUENCY_LIMITED, timeouts
and answers whose signature is missing or wrong -> ``ChannelUnavailable``; PARAM_ERROR,
SIGN_ERROR (401) -> ``ChannelRejectedRequest``; any other signed 4xx business code on
submit (NOT_ENOUGH, NO_AUTH, INVALID_REQUEST, ...) -> raw status ``FAIL`` with that code,
which the catalogue classifies; query 404 NOT_FOUND -> raw status ``NOT_FOUND``.

out_bill_no takes letters and digits only, so our order ids (``W1001_R2``) are sent with a
reversible escape (``W1001Z1R2``, see ``to_out_bill_no``); every Observation and
CallbackEvent carries our own order id.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from channels.base import (
    CallbackEvent,
    CallbackRejected,
    ChannelRejectedRequest,
    ChannelUnavailable,
    HttpChannel,
)
from channels.rsa_keys import load_private_key, load_public_key
from channels.wechatpay.transformers import (
    _EVENT_ID,
    _WORD,
    AUTH_SCHEMA,
    MERCHANT_FIELDS,
    NOTIFY_EVENT,
    QUERY_PATH,
    REQUEST_ERROR_CODES,
    TRANSFER_PATH,
    UNKNOWN_CODES,
    PayeeResolver,
    WeChatPayConfig,
    WeChatPayee,
    _rfc3339,
    fen,
    from_out_bill_no,
    to_out_bill_no,
    transfer_payload,
)
from sentinel import safe_json
from sentinel.catalogue import Catalogue
from sentinel.models import Observation, WithdrawalRequest

log = logging.getLogger(__name__)

# --- keys, signatures, encryption ---------------------------------------------------------


def sign_message(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify_message(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def request_message(method: str, canonical_url: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What the merchant signs: ``METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n``."""
    return f"{method}\n{canonical_url}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What WeChat Pay signs in answers and notifications: ``timestamp\\nnonce\\nbody\\n``."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def decrypt_resource(apiv3_key: bytes, nonce: str, associated_data: str, ciphertext_b64: str) -> bytes:
    """AEAD_AES_256_GCM: ciphertext is base64(ciphertext || 16-byte tag). Raises
    ``InvalidTag`` on a wrong key or tampered data, ``ValueError`` on bad base64."""
    ciphertext = base64.b64decode(ciphertext_b64, validate=True)
    return AESGCM(apiv3_key).decrypt(nonce.encode("utf-8"), ciphertext, associated_data.encode("utf-8"))


def encrypt_sensitive(key: rsa.RSAPublicKey, plaintext: str) -> str:
    """RSAES-OAEP (SHA-1, MGF1-SHA-1), as WeChat Pay asks for sensitive fields (user_name)."""
    ct = key.encrypt(
        plaintext.encode("utf-8"),
        padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
    )
    return base64.b64encode(ct).decode("ascii")


@dataclass
class _Answer:
    status: int
    data: dict[str, Any]
    request_id: str


# --- the adapter --------------------------------------------------------------------------


class WeChatPayChannel(HttpChannel):
    name = "wechat"

    def __init__(
        self,
        catalogue: Catalogue,
        config: WeChatPayConfig,
        *,
        client: httpx.AsyncClient | None = None,
        resolve_payee: PayeeResolver | None = None,
    ):
        super().__init__(catalogue, config, client)
        self._merchant_key = load_private_key(config.merchant_private_key_pem)
        self._platform_keys = {
            serial: load_public_key(pem) for serial, pem in config.platform_public_keys.items()
        }
        self._encrypt_serial = config.encrypt_serial or next(iter(self._platform_keys))
        if self._encrypt_serial not in self._platform_keys:
            raise ValueError(f"encrypt_serial {self._encrypt_serial!r} is not in platform_public_keys")
        self._resolve_payee = resolve_payee or self._payee_from_ref

    async def _payee_from_ref(self, request: WithdrawalRequest) -> WeChatPayee:
        return WeChatPayee(openid=request.payee_ref)

    # --- requests ---------------------------------------------------------------------

    def authorization(self, method: str, canonical_url: str, body: bytes) -> str:
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16).upper()
        signature = sign_message(
            self._merchant_key, request_message(method, canonical_url, timestamp, nonce, body)
        )
        return (
            f'{AUTH_SCHEMA} mchid="{self.config.mch_id}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{self.config.merchant_serial_no}"'
        )

    async def _call(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Answer:
        body = (
            b""
            if payload is None
            else json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        )
        url = httpx.URL(self.config.base_url.rstrip("/") + path)
        canonical = url.raw_path.decode("ascii")  # path plus query, as sent
        sent = {
            "Authorization": self.authorization(method, canonical, body),
            "Accept": "application/json",
            "User-Agent": "withdrawal-sentinel",
            **(headers or {}),
        }
        if payload is not None:
            sent["Content-Type"] = "application/json"
        try:
            resp = await self._client.request(method, url, content=body, headers=sent)
        except httpx.HTTPError as exc:
            raise ChannelUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        request_id = resp.headers.get("Request-ID", "")
        where = f"{method} {path} (Request-ID {request_id or '-'})"
        if resp.status_code >= 500:
            raise ChannelUnavailable(f"{where}: HTTP {resp.status_code}")
        if not self._answer_signed(resp, where):
            if resp.status_code == 401:
                raise ChannelRejectedRequest(f"{where}: HTTP 401, our request signature was refused")
            raise ChannelUnavailable(f"{where}: unsigned HTTP {resp.status_code} answer; not trusted")
        try:
            data = safe_json.loads(resp.content, "answer") if resp.content else {}
        except ValueError:
            raise ChannelUnavailable(f"{where}: unreadable answer") from None
        if not isinstance(data, dict):
            raise ChannelUnavailable(f"{where}: answer is not a JSON object")
        return _Answer(resp.status_code, data, request_id)

    def _answer_signed(self, resp: httpx.Response, where: str) -> bool:
        """False when the answer carries no signature; raises ChannelUnavailable when the
        signature is there but cannot be trusted."""
        h = resp.headers
        signature, serial = h.get("Wechatpay-Signature"), h.get("Wechatpay-Serial")
        timestamp, nonce = h.get("Wechatpay-Timestamp"), h.get("Wechatpay-Nonce")
        if not (signature and serial and timestamp and nonce):
            return False
        key = self._platform_keys.get(serial)
        if key is None:
            raise ChannelUnavailable(f"{where}: answer signed with unknown WeChat Pay key {serial!r}")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.config.tolerance_s:
            raise ChannelUnavailable(f"{where}: answer timestamp outside {self.config.tolerance_s}s")
        if not verify_message(key, response_message(timestamp, nonce, resp.content), signature):
            raise ChannelUnavailable(f"{where}: answer signature does not verify; not trusted")
        return True

    # --- Channel ----------------------------------------------------------------------

    async def submit(
        self, request: WithdrawalRequest, order_id: str, callback_url: str | None
    ) -> Observation:
        out_bill_no = to_out_bill_no(order_id)
        if request.currency != "CNY":
            raise ChannelRejectedRequest(f"WeChat Pay transfers are in CNY only, not {request.currency}")
        amount = fen(request.amount)
        try:
            payee = await self._resolve_payee(request)
        except (ChannelUnavailable, ChannelRejectedRequest):
            raise
        except Exception as exc:  # the vault: nothing was sent, so retrying is safe
            raise ChannelUnavailable(f"payee lookup failed: {type(exc).__name__}") from None
        payload = transfer_payload(self.config, out_bill_no, amount, payee.openid, callback_url)
        headers: dict[str, str] = {}
        if payee.user_name:
            payload["user_name"] = encrypt_sensitive(
                self._platform_keys[self._encrypt_serial], payee.user_name
            )
            headers["Wechatpay-Serial"] = self._encrypt_serial
        answer = await self._call("POST", TRANSFER_PATH, payload, headers)
        obs = self._transfer_answer(order_id, answer)
        log.info(
            "wechat submit order=%s (%s) -> %s %s", order_id, out_bill_no, obs.raw_status, obs.raw_code or ""
        )
        return obs

    def _transfer_answer(self, order_id: str, answer: _Answer) -> Observation:
        now = datetime.now(UTC)
        if 200 <= answer.status < 300:
            return self._bill(order_id, answer, "submit")
        code = answer.data.get("code")
        where = f"transfer {order_id} (Request-ID {answer.request_id or '-'})"
        if answer.status == 429 or code in UNKNOWN_CODES:
            raise ChannelUnavailable(f"{where}: HTTP {answer.status} {code}; result unknown")
        if answer.status == 401 or code in REQUEST_ERROR_CODES or code == "NOT_FOUND":
            raise ChannelRejectedRequest(f"{where}: HTTP {answer.status} {code}")
        if 400 <= answer.status < 500 and isinstance(code, str) and _WORD.match(code):
            # A signed business refusal (NOT_ENOUGH, NO_AUTH, INVALID_REQUEST, ...). WeChat's
            # rule "do not switch to a new bill number before a query says FAIL" is kept by
            # the workflow: these go to a person or wait for a fix, never to an automatic
            # new order (see docs/channels/wechatpay.md).
            return self.observe(order_id, "FAIL", code, "submit", now)
        raise ChannelUnavailable(f"{where}: unexpected HTTP {answer.status} {code!r}; result unknown")

    def _bill(self, order_id: str, answer: _Answer, source: str) -> Observation:
        data = answer.data
        echoed = data.get("out_bill_no")
        if echoed is not None and echoed != to_out_bill_no(order_id):
            raise ChannelUnavailable(f"answer is about out_bill_no {echoed!r}, not {order_id!r}")
        state = data.get("state")
        if not isinstance(state, str) or not _WORD.match(state):
            raise ChannelUnavailable(f"answer for {order_id} has no readable state")
        reason = data.get("fail_reason")
        if reason in ("", None):
            reason = None
        elif not isinstance(reason, str) or not _WORD.match(reason):
            raise ChannelUnavailable(f"answer for {order_id} has an unreadable fail_reason")
        return self.observe(order_id, state, reason, source, datetime.now(UTC))

    async def query(self, order_id: str) -> Observation:
        answer = await self._call("GET", QUERY_PATH.format(out_bill_no=to_out_bill_no(order_id)))
        if 200 <= answer.status < 300:
            return self._bill(order_id, answer, "poll")
        code = answer.data.get("code")
        where = f"query {order_id} (Request-ID {answer.request_id or '-'})"
        if answer.status == 404 or code == "NOT_FOUND":
            # No such bill: never a failure. The workflow resends the same out_bill_no.
            return self.observe(order_id, "NOT_FOUND", None, "poll", datetime.now(UTC))
        if answer.status == 429 or code in UNKNOWN_CODES:
            raise ChannelUnavailable(f"{where}: HTTP {answer.status} {code}")
        raise ChannelRejectedRequest(f"{where}: HTTP {answer.status} {code}")

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> CallbackEvent:
        h = {k.lower(): v for k, v in headers.items()}
        signature, serial = h.get("wechatpay-signature"), h.get("wechatpay-serial")
        timestamp, nonce = h.get("wechatpay-timestamp"), h.get("wechatpay-nonce")
        if not (signature and serial and timestamp and nonce):
            raise CallbackRejected(401, "Wechatpay-Signature/-Serial/-Timestamp/-Nonce missing")
        key = self._platform_keys.get(serial)
        if key is None:
            raise CallbackRejected(401, f"unknown Wechatpay-Serial {serial!r}")
        if not timestamp.isdigit() or abs(now - int(timestamp)) > self.config.tolerance_s:
            raise CallbackRejected(401, "Wechatpay-Timestamp outside the accepted window")
        # A signature probe (Wechatpay-Signature: WECHATPAY/SIGNTEST/...) fails here too.
        if not verify_message(key, response_message(timestamp, nonce, body), signature):
            raise CallbackRejected(401, "signature does not verify")

        try:
            data = safe_json.loads(body)
        except safe_json.JsonRefused as exc:
            raise CallbackRejected(400, str(exc)) from None
        if not isinstance(data, dict):
            raise CallbackRejected(400, "body must be a JSON object")
        event_id, resource = data.get("id"), data.get("resource")
        if not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
            raise CallbackRejected(400, "id is missing or malformed")
        if data.get("event_type") != NOTIFY_EVENT:
            raise CallbackRejected(400, f"unexpected event_type {data.get('event_type')!r}")
        if not isinstance(resource, dict) or resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise CallbackRejected(400, "resource missing or not AEAD_AES_256_GCM")
        fields = [resource.get(k) for k in ("nonce", "associated_data", "ciphertext")]
        if not all(isinstance(v, str) for v in fields) or not fields[0] or not fields[2]:
            raise CallbackRejected(400, "resource needs nonce, associated_data and ciphertext strings")
        try:
            plaintext = decrypt_resource(self.config.apiv3_key, *fields)  # type: ignore[arg-type]
        except (binascii.Error, ValueError):
            raise CallbackRejected(400, "ciphertext is not base64") from None
        except InvalidTag:
            # The body is WeChat's (signature checked) but does not open with our APIv3
            # key: an authentication failure of the resource, as for a bad signature.
            raise CallbackRejected(401, "resource does not decrypt with the APIv3 key") from None
        try:
            bill = safe_json.loads(plaintext, "decrypted resource")
        except safe_json.JsonRefused as exc:
            raise CallbackRejected(400, str(exc)) from None
        if not isinstance(bill, dict):
            raise CallbackRejected(400, "decrypted resource must be a JSON object")
        self._check_merchant(bill)
        order_id, state, reason = (
            from_out_bill_no(bill.get("out_bill_no")),
            bill.get("state"),
            bill.get("fail_reason"),
        )
        if order_id is None:
            raise CallbackRejected(400, "out_bill_no is missing or not one of our order numbers")
        if not isinstance(state, str) or not _WORD.match(state):
            raise CallbackRejected(400, "state is missing or malformed")
        if reason in ("", None):
            reason = None
        elif not isinstance(reason, str) or not _WORD.match(reason):
            raise CallbackRejected(400, "fail_reason is malformed")
        occurred = _rfc3339(bill.get("update_time")) or _rfc3339(data.get("create_time"))
        if occurred is None:
            raise CallbackRejected(400, "neither update_time nor create_time is an RFC 3339 time")
        return CallbackEvent(event_id, order_id, state, reason, occurred)

    def _check_merchant(self, bill: Mapping[str, Any]) -> None:
        """The resource must name our merchant: ``mchid`` (the field of WeChat's
        notification), or ``mch_id`` (older resources); when both are there, both must be
        ours. A resource that names no merchant is refused (400): the notification cannot
        be shown to be ours, and WeChat's own resource always names it."""
        named = {k: bill[k] for k in MERCHANT_FIELDS if bill.get(k) is not None}
        if not named:
            raise CallbackRejected(400, "resource names no merchant (mchid)")
        foreign = [
            k for k, v in named.items() if not isinstance(v, (str, int)) or str(v) != self.config.mch_id
        ]
        if foreign:
            raise CallbackRejected(
                401, f"notification is for another merchant ({', '.join(foreign)} is not ours)"
            )

    def ack(self) -> tuple[int, str, bytes]:
        # API v3: HTTP 200 or 204 means received (the body is not read); any 4xx/5xx
        # makes WeChat Pay retry. The body is the older documented form, harmless.
        return (
            200,
            "application/json",
            json.dumps({"code": "SUCCESS", "message": "成功"}, ensure_ascii=False).encode(),
        )
