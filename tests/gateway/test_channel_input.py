"""Issue #11, item 3: channel input that no adapter can read is 400 with the reason, never a
500 (R11). Signed JSON nested too deep, GBK bytes where JSON is expected, XML that declares
GBK or UTF-16, nests too deep or carries a DOCTYPE (billion laughs, XXE): every channel that
takes JSON or XML (generic, Stripe, WeChat Pay, Alipay's biz_content, ISO 20022) answers 400.
The Alipay form is read once, with caps on the number and size of its fields, before its
signature is checked.

The gateway runs in process without Temporal: everything here is refused before a workflow
would be asked."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import httpx
import pytest

from gateway.app import create_app
from sentinel.safe_json import MAX_DEPTH
from sentinel.signing import SIGNATURE_HEADER, sign
from tests.channels.test_channel_alipay import notify_params, signed_notify
from tests.channels.test_channel_iso20022 import pacs002
from tests.channels.test_channel_iso20022 import signed as iso_signed
from tests.channels.test_channel_stripe import payout_event, webhook
from tests.channels.test_channel_wechatpay import notify as wechat_notify
from tests.channels.test_channel_wechatpay import signed_headers
from tests.support.callback_keys import Keys, settings_for
from tests.support.gateway_harness import Gateway, offline_gateway


@pytest.fixture()
async def gw(tmp_path, keys):
    async with offline_gateway(settings_for(tmp_path, 9, keys)) as gateway:
        yield gateway


def deep_json(depth: int = 5000) -> str:
    return '{"a":' * depth + "1" + "}" * depth


GBK_XML = '<?xml version="1.0" encoding="GBK"?><Document><Nm>支付宝</Nm></Document>'.encode("gbk")
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


def generic_signed(gw: Gateway, body: bytes) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(gw.secret, body, int(time.time())), "Content-Type": "application/json"}


def wechat_signed(keys: Keys, body: bytes) -> dict[str, str]:
    return signed_headers(keys.wechat.platform, body)


def alipay_notify(keys: Keys, biz_content: str) -> tuple[dict[str, str], bytes]:
    params = {**notify_params(), "biz_content": biz_content}
    return {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, signed_notify(
        keys.alipay, params
    )


def unreadable_cases(gw: Gateway, keys: Keys):
    """(channel, headers, body, reason): signed bodies no adapter can read."""
    deep = deep_json().encode()
    yield "generic", generic_signed(gw, deep), deep, TOO_DEEP
    yield "generic", generic_signed(gw, GBK_XML), GBK_XML, "not UTF-8"
    yield "stripe", *webhook(deep), TOO_DEEP
    yield "stripe", *webhook(GBK_XML), "not UTF-8"
    yield "wechat", wechat_signed(keys, deep), deep, TOO_DEEP
    yield "wechat", wechat_signed(keys, GBK_XML), GBK_XML, "not UTF-8"
    yield "wechat", *wechat_notify(keys.wechat, deep), "decrypted resource is " + TOO_DEEP
    yield "wechat", *wechat_notify(keys.wechat, GBK_XML), "decrypted resource is not valid JSON: not UTF-8"
    yield "alipay", *alipay_notify(keys, deep_json(2000)), "biz_content is " + TOO_DEEP
    yield "alipay", *alipay_notify(keys, GBK_XML.decode("gbk")), "biz_content is not valid JSON"
    yield "iso20022", iso_signed(GBK_XML), GBK_XML, "declares encoding 'GBK'; only UTF-8 is accepted"
    utf16 = (
        pacs002([("W1", "RJCT", "AC04")])
        .decode()
        .replace('encoding="UTF-8"', 'encoding="UTF-16"')
        .encode("utf-16")
    )
    yield "iso20022", iso_signed(utf16), utf16, "only UTF-8 is accepted"
    deep_xml = b"<Document>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</Document>"
    yield "iso20022", iso_signed(deep_xml), deep_xml, "elements nested deeper than 32 levels"
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><Document>&lol2;</Document>'
    )
    yield "iso20022", iso_signed(laughs), laughs, "DOCTYPE is not allowed"
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Document>&x;</Document>'
    )
    yield "iso20022", iso_signed(xxe), xxe, "DOCTYPE is not allowed"


async def test_signed_input_no_adapter_can_read_is_400_with_the_reason(tmp_path, keys):
    # Signed deeply nested JSON and GBK-declared XML were 500s (RecursionError, ValueError).
    settings = settings_for(tmp_path, 9, keys)
    app = create_app(settings, client=object())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a 500 is an answer here
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        gw = Gateway(http, app, None, settings, None)
        seen = set()
        for channel, headers, body, reason in unreadable_cases(gw, keys):
            resp = await http.post(f"/v1/callbacks/{channel}", content=body, headers=headers)
            assert resp.status_code == 400, (channel, reason, resp.status_code, resp.text[:300])
            assert reason in resp.json()["error"], (channel, resp.json())
            seen.add(channel)
    assert seen == {"generic", "stripe", "wechat", "alipay", "iso20022"}


def test_shallow_signed_json_is_still_read(gw: Gateway):
    # the bound is on nesting, not on ordinary structure: a Stripe event nests 4 levels
    headers, body = webhook(payout_event("payout.failed", "failed", order_id="W1", code="account_closed"))
    event = gw.app.state.channels["stripe"].parse_callback(headers, body, time.time())
    assert (event.order_id, event.raw_code) == ("W1", "account_closed")


# --- the Alipay form: caps, one pass --------------------------------------------------


async def test_alipay_form_with_too_many_fields_is_400_before_the_signature(gw: Gateway):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    many = urlencode({f"f{i}": "1" for i in range(200)}).encode()
    resp = await gw.http.post("/v1/callbacks/alipay", content=many, headers=form)
    assert resp.status_code == 400 and "more than 64 fields" in resp.json()["error"], resp.text
    long_field = b"biz_content=" + b"a" * (64 * 1024 + 1)
    resp = await gw.http.post("/v1/callbacks/alipay", content=long_field, headers=form)
    assert resp.status_code == 400 and "longer than 65536 bytes" in resp.json()["error"], resp.text


def test_a_gbk_alipay_notify_is_still_read(gw: Gateway, keys: Keys):
    # the one-pass reader keeps what the form reader did: GBK notifies verify and parse
    params = notify_params(out_biz_no="W-GBK-1", fail_reason="收款方姓名不匹配")
    params["charset"] = "gbk"
    body = signed_notify(keys.alipay, params, charset="gbk")
    event = gw.app.state.channels["alipay"].parse_callback(
        {"Content-Type": "application/x-www-form-urlencoded; charset=gbk"}, body, time.time()
    )
    assert event.order_id == "W-GBK-1" and event.raw_code == "PAYEE_USER_INFO_ERROR"
