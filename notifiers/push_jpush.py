"""Push through JPush / Jiguang (``POST {api_base}/v3/push``, HTTP Basic
``appKey:masterSecret``), the push service that reaches Android phones in mainland China
where FCM does not.

Registration ids come from an injected lookup ``registration_ids_for(user_id)``. The push
object::

    {"cid": ..., "platform": "all",
     "audience": {"registration_id": [...]},
     "notification": {"alert": push_body,
                      "android": {"alert": push_body, "title": push_title, "extras": {...}},
                      "ios": {"alert": {"title": push_title, "body": push_body}, "sound": "default",
                              "thread-id": <withdrawal id>, "extras": {...}}},
     "options": {"time_to_live": 86400, "apns_production": true,
                 "apns_collapse_id": <withdrawal id>}}

Same lock-screen rule and ``extras`` as FCM (withdrawal_id, stage, link, notice_key).

Exactly-once: JPush de-duplicates on ``cid``: a push repeated with the same cid returns
the first push's result and is not sent again (cid valid one day, taken from the cid pool
``GET /v3/push/cid``). The notifier takes one cid per notice key and keeps it in
``cid_store`` (an in-memory dict by default; pass a persistent mapping to survive worker
restarts), so a retried notice reuses its cid.

Errors: 200 -> ``msg_id``. 1011 (no device matches the audience) and 1003 / 1002 / 1005
(the push itself is invalid) are final; 1004 / 1008 / 2003 (credentials, app key, not
permitted), 2002 (rate limit), 1000 / 1030 (internal), 429, 5xx and timeouts are retryable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from notifiers.base import DeliveryError, HttpNotifier
from notifiers.push_fcm import lock_screen_safe, push_data
from notifiers.routing import http_request, json_body, status_is_retryable
from sentinel.models import NoticeRequest
from sentinel.render import RenderedNotice

PROVIDER = "jpush"
NON_RETRYABLE_CODES = frozenset({1002, 1003, 1005, 1011})
CID_TTL_S = 23 * 3600  # JPush keeps a cid one day; stop reusing it a little earlier


@dataclass
class JPushConfig:
    app_key: str
    master_secret: str
    api_base: str = "https://api.jpush.cn"  # https://bjapi.push.jiguang.cn for Beijing-hosted apps
    platform: str | list[str] = "all"
    time_to_live: int = 86400
    apns_production: bool = True
    use_cid: bool = True
    timeout_s: float = 10.0


class JPushNotifier(HttpNotifier):
    channel = "push"
    provider = PROVIDER

    def __init__(
        self,
        cfg: JPushConfig,
        registration_ids_for: Callable[[str], Sequence[str]],
        *,
        cid_store: MutableMapping[str, tuple[str, float]] | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.cfg = cfg
        self.registration_ids_for = registration_ids_for
        self.cid_store: MutableMapping[str, tuple[str, float]] = {} if cid_store is None else cid_store
        self.use_client(client, cfg.timeout_s)
        self.clock = clock
        self.base = cfg.api_base.rstrip("/")

    def devices(self, notice: NoticeRequest) -> list[str]:
        return list(dict.fromkeys(r for r in self.registration_ids_for(notice.withdrawal.user_id) if r))

    def can_reach(self, notice: NoticeRequest) -> bool:
        return bool(self.devices(notice))

    @property
    def auth(self) -> tuple[str, str]:
        return (self.cfg.app_key, self.cfg.master_secret)

    def _error(self, response: httpx.Response, what: str) -> DeliveryError:
        try:
            error = response.json().get("error", {})
        except (ValueError, AttributeError):
            error = {}
        if not isinstance(error, dict):
            error = {}
        code = error.get("code")
        message = " ".join(
            f"jpush {what}: HTTP {response.status_code} {code or ''} {error.get('message', '')}".split()
        )
        if status_is_retryable(response.status_code):
            return DeliveryError(message, retryable=True)
        return DeliveryError(message, retryable=code not in NON_RETRYABLE_CODES)

    async def cid_for(self, key: str) -> str:
        """The cid of this notice: reused while it is valid, else a new one from the pool."""
        now = self.clock()
        cached = self.cid_store.get(key)
        if cached and now - cached[1] < CID_TTL_S:
            return cached[0]
        response = await http_request(
            self.client,
            PROVIDER,
            "GET",
            f"{self.base}/v3/push/cid",
            params={"count": 1, "type": "push"},
            auth=self.auth,
        )
        if response.status_code != 200:
            raise self._error(response, "cid")
        cids = json_body(response, PROVIDER).get("cidlist") or []
        if not cids:
            raise DeliveryError("jpush cid: empty cidlist", retryable=True)
        self.cid_store[key] = (str(cids[0]), now)
        return str(cids[0])

    def payload(self, devices: list[str], notice: NoticeRequest, rendered: RenderedNotice) -> dict[str, Any]:
        wid = notice.withdrawal.withdrawal_id
        extras = push_data(notice, rendered)
        return {
            "platform": self.cfg.platform,
            "audience": {"registration_id": devices},
            "notification": {
                "alert": rendered.push_body,
                "android": {"alert": rendered.push_body, "title": rendered.push_title, "extras": extras},
                "ios": {
                    "alert": {"title": rendered.push_title, "body": rendered.push_body},
                    "sound": "default",
                    "thread-id": wid,
                    "extras": extras,
                },
            },
            "options": {
                "time_to_live": int(self.cfg.time_to_live),
                "apns_production": self.cfg.apns_production,
                "apns_collapse_id": wid,
            },
        }

    async def send(self, notice: NoticeRequest, rendered: RenderedNotice) -> str:
        devices = self.devices(notice)
        if not devices:
            raise DeliveryError("jpush: no registration id", retryable=False)
        lock_screen_safe(notice, rendered.push_title, rendered.push_body)
        body = self.payload(devices, notice, rendered)
        if self.cfg.use_cid:
            body = {"cid": await self.cid_for(notice.key), **body}
        response = await http_request(
            self.client, PROVIDER, "POST", f"{self.base}/v3/push", json=body, auth=self.auth
        )
        if response.status_code == 200:
            msg_id = json_body(response, PROVIDER).get("msg_id")
            if msg_id:
                return str(msg_id)
            raise DeliveryError("jpush push: answer without msg_id", retryable=True)
        raise self._error(response, "push")
