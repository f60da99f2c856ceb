"""Request signatures against the providers' own published worked examples.

Test vectors (all reproduced byte for byte):

* Aliyun OpenAPI V3 (``ACS3-HMAC-SHA256``), "V3 request structure and signature" /
  "签名机制" (help.aliyun.com): POST ecs.cn-shanghai.aliyuncs.com RunInstances
  2014-05-26, ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd,
  RegionId=cn-shanghai, x-acs-date 2023-10-26T10:22:32Z, nonce
  3156853299f313e23d1673dc12e1703d, YourAccessKeyId / YourAccessKeySecret ->
  hashed canonical request 7ea06492..., signature 06563a9e....
* Tencent Cloud API 3.0 (``TC3-HMAC-SHA256``), "签名方法 v3" / "Signature v3": POST
  cvm.tencentcloudapi.com DescribeInstances 2017-03-12, X-TC-Timestamp 1551113065, body
  ``{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}``.
  The pages have been revised over time and each revision publishes its own values:
  content-type;host with SecretKey "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE" -> 72e494ea...
  (tencentcloud.com), with the masked key "Gu5t9xGARNpq86cd98joQYCN3*******" -> 2230eefd...
  (cloud.tencent.com), and content-type;host;x-tc-action with the masked key ->
  be4f67d3... (cloud.tencent.com, current). The docs computed their signatures over the
  key strings exactly as printed, so all three are usable vectors.
* Twilio request validation ("Webhooks security"): auth token 12345, URL
  https://mycompany.com/myapp.php?foo=1&bar=2 and the five documented parameters ->
  0/KCTR6DLpKmkAf8muzZqo1nDgQ=.

Beyond the published examples, each signer is checked against a second, straightforward
implementation written in this file on a request shaped like ours (Chinese SignName, JSON
TemplateParam, STS token).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from notifiers import signing_aliyun as acs3
from notifiers import signing_tencent as tc3
from notifiers.push_fcm import rs256_jwt
from notifiers.sms_twilio import signature as twilio_signature
from notifiers.sms_twilio import verify_signature, with_notice_key

# --------------------------------------------------------------------------- Aliyun V3

ALIYUN_DOC = dict(
    method="POST",
    endpoint="https://ecs.cn-shanghai.aliyuncs.com",
    action="RunInstances",
    version="2014-05-26",
    access_key_id="YourAccessKeyId",
    access_key_secret="YourAccessKeySecret",
    date=datetime(2023, 10, 26, 10, 22, 32, tzinfo=UTC),
    nonce="3156853299f313e23d1673dc12e1703d",
    params={"ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd", "RegionId": "cn-shanghai"},
)


def test_aliyun_v3_reproduces_the_published_example():
    signed = acs3.sign_request(**ALIYUN_DOC)
    assert signed.canonical_request == (
        "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n"
        "host:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\n"
        "x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "x-acs-date:2023-10-26T10:22:32Z\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n"
        "x-acs-version:2014-05-26\n\n"
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert (
        signed.string_to_sign
        == "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    )
    assert signed.signature == "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    assert signed.headers["authorization"] == (
        "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;"
        "x-acs-date;x-acs-signature-nonce;x-acs-version,"
        "Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    )
    assert signed.url == (
        "https://ecs.cn-shanghai.aliyuncs.com/?ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"
        "&RegionId=cn-shanghai"
    )


def test_aliyun_percent_encoding_follows_rfc3986():
    assert acs3.percent_encode("a b*c~d-_.") == "a%20b%2Ac~d-_."
    assert acs3.percent_encode("某某/+=&") == "%E6%9F%90%E6%9F%90%2F%2B%3D%26"
    assert acs3.canonical_query({"b": "2", "A": "x y", "a": "1"}) == "A=x%20y&a=1&b=2"
    assert acs3.canonical_uri("/api/v1/a b") == "/api/v1/a%20b"


def _aliyun_reference(method, params, headers, body, secret):
    """Second implementation, from the spec text, on plain strings."""
    unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"

    def enc(s):
        return "".join(c if c in unreserved else "".join(f"%{b:02X}" for b in c.encode()) for c in s)

    query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(params.items()))
    names = sorted(k for k in headers if k == "host" or k == "content-type" or k.startswith("x-acs-"))
    canonical = "\n".join(
        [
            method,
            "/",
            query,
            "".join(f"{n}:{headers[n].strip()}\n" for n in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def test_aliyun_v3_matches_an_independent_implementation_on_a_sendsms_request():
    params = {
        "PhoneNumbers": "13800138000",
        "SignName": "某某支付",
        "TemplateCode": "SMS_460001",
        "TemplateParam": json.dumps({"order": "W1001", "card": "1234"}, ensure_ascii=False),
        "OutId": "W1001:DETECTED:sms:0",
    }
    signed = acs3.sign_request(
        method="POST",
        endpoint="http://127.0.0.1:8123",
        action="SendSms",
        version="2017-05-25",
        access_key_id="LTAIid",
        access_key_secret="s3cr3t",
        date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        nonce="n-1",
        params=params,
        security_token="sts-token",
    )
    headers = {k: v for k, v in signed.headers.items() if k != "authorization"}
    assert headers["x-acs-security-token"] == "sts-token" and headers["host"] == "127.0.0.1:8123"
    assert signed.signature == _aliyun_reference("POST", params, headers, b"", "s3cr3t")
    assert (
        "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-security-token;"
        in signed.headers["authorization"]
    )


@pytest.mark.parametrize(
    "change",
    [
        {"params": {**ALIYUN_DOC["params"], "RegionId": "cn-beijing"}},
        {"nonce": "3156853299f313e23d1673dc12e1703e"},
        {"date": datetime(2023, 10, 26, 10, 22, 33, tzinfo=UTC)},
        {"access_key_secret": "YourAccessKeySecreT"},
        {"body": b"x", "content_type": "application/x-www-form-urlencoded"},
    ],
)
def test_aliyun_v3_signature_covers_every_part(change):
    assert (
        acs3.sign_request(**{**ALIYUN_DOC, **change}).signature != acs3.sign_request(**ALIYUN_DOC).signature
    )


# --------------------------------------------------------------------------- Tencent TC3

TENCENT_PAYLOAD = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
TENCENT_DOC = dict(
    secret_id="AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******",
    service="cvm",
    host="cvm.tencentcloudapi.com",
    action="DescribeInstances",
    version="2017-03-12",
    region="ap-guangzhou",
    payload=TENCENT_PAYLOAD,
    timestamp=1551113065,
)


@pytest.mark.parametrize(
    "secret_key, sign_action, hashed_canonical, sig",
    [
        (
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            False,
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031",
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
        ),
        (
            "Gu5t9xGARNpq86cd98joQYCN3*******",
            False,
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031",
            "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c",
        ),
        (
            "Gu5t9xGARNpq86cd98joQYCN3*******",
            True,
            "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84",
            "be4f67d323c78ab9acb7395e43c0dbcf822a9cfac32fea2449a7bc7726b770a3",
        ),
    ],
    ids=["en-doc", "cn-doc-2019", "cn-doc-x-tc-action"],
)
def test_tencent_tc3_reproduces_the_published_examples(secret_key, sign_action, hashed_canonical, sig):
    signed = tc3.sign_request(secret_key=secret_key, sign_action=sign_action, **TENCENT_DOC)
    action_line = "x-tc-action:describeinstances\n" if sign_action else ""
    signed_headers = "content-type;host;x-tc-action" if sign_action else "content-type;host"
    assert (
        tc3.sha256_hex(TENCENT_PAYLOAD) == "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    assert signed.canonical_request == (
        "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n"
        f"{action_line}\n{signed_headers}\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    assert (
        signed.string_to_sign
        == f"TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n{hashed_canonical}"
    )
    assert signed.signature == sig
    assert signed.headers["Authorization"] == (
        f"TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, "
        f"SignedHeaders={signed_headers}, Signature={sig}"
    )
    assert (
        signed.headers["X-TC-Timestamp"] == "1551113065" and signed.headers["X-TC-Region"] == "ap-guangzhou"
    )


def test_tencent_scope_date_is_utc_not_local():
    # 1551113065 is 2019-02-26 00:44:25 in UTC+8 but still 2019-02-25 in UTC
    assert tc3.utc_date(1551113065) == "2019-02-25"
    assert tc3.credential_scope(1551113065, "sms") == "2019-02-25/sms/tc3_request"


def _tencent_reference(secret_key, service, timestamp, headers, signed, payload):
    canonical = (
        "POST\n/\n\n"
        + "".join(f"{h}:{headers[h].lower()}\n" for h in signed)
        + "\n"
        + ";".join(signed)
        + "\n"
        + hashlib.sha256(payload).hexdigest()
    )
    date = datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d")
    hashed = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n{hashed}"
    k = hmac.new(b"TC3" + secret_key.encode(), date.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    k = hmac.new(k, b"tc3_request", hashlib.sha256).digest()
    return hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()


def test_tencent_tc3_matches_an_independent_implementation_on_a_sendsms_request():
    payload = json.dumps(
        {
            "PhoneNumberSet": ["+8613800138000"],
            "SmsSdkAppId": "1400006666",
            "SignName": "某某支付",
            "TemplateId": "2001001",
            "TemplateParamSet": ["W1001", "1234"],
            "SessionContext": "W1001:DETECTED:sms:0",
        },
        ensure_ascii=False,
    ).encode()
    signed = tc3.sign_request(
        secret_id="AKIDid",
        secret_key="k3y",
        service="sms",
        host="127.0.0.1:9000",
        action="SendSms",
        version="2021-01-11",
        region="ap-guangzhou",
        token="tmp-token",
        payload=payload,
        timestamp=1767225600,
    )
    headers = {
        "content-type": signed.headers["Content-Type"],
        "host": "127.0.0.1:9000",
        "x-tc-action": "SendSms",
    }
    expected = _tencent_reference(
        "k3y", "sms", 1767225600, headers, ["content-type", "host", "x-tc-action"], payload
    )
    assert signed.signature == expected
    assert signed.headers["X-TC-Token"] == "tmp-token"


# --------------------------------------------------------------------------- Twilio callbacks

TWILIO_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"


def test_twilio_callback_signature_reproduces_the_published_example():
    assert twilio_signature("12345", TWILIO_URL, TWILIO_PARAMS) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    published = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert verify_signature("12345", TWILIO_URL, TWILIO_PARAMS, published)
    assert not verify_signature("12345", TWILIO_URL, {**TWILIO_PARAMS, "Digits": "9999"}, published)
    assert not verify_signature("12345", TWILIO_URL.replace("bar=2", "bar=3"), TWILIO_PARAMS, published)
    assert not verify_signature("12345", TWILIO_URL, TWILIO_PARAMS, None)


def test_twilio_status_callback_url_carries_the_notice_key_and_verifies():
    url = with_notice_key("https://hooks.pay.example/twilio/status?env=prod", "W1001:DETECTED:sms:0")
    assert url == "https://hooks.pay.example/twilio/status?env=prod&notice_key=W1001%3ADETECTED%3Asms%3A0"
    params = {"MessageSid": "SM1", "MessageStatus": "delivered", "To": "+14155550100"}
    header = base64.b64encode(
        hmac.new(
            b"tok", (url + "MessageSidSM1MessageStatusdeliveredTo+14155550100").encode(), hashlib.sha1
        ).digest()
    ).decode()
    assert verify_signature("tok", url, params, header)


# --------------------------------------------------------------------------- RS256 JWT (FCM)


def test_rs256_jwt_verifies_with_the_public_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    token = rs256_jwt({"iss": "sa@p.iam.gserviceaccount.com", "iat": 1, "exp": 3601}, pem, "kid-1")
    head, body, sig = token.split(".")

    def unb64(s):
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    assert json.loads(unb64(head)) == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    assert json.loads(unb64(body))["iss"] == "sa@p.iam.gserviceaccount.com"
    key.public_key().verify(unb64(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
