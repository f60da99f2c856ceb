"""Push to the user's own devices (issue #5, R20, R21): the app registers its FCM token or
JPush registration id through the gateway; a high-severity notice reaches every live
token over FCM HTTP v1 (the fake checks the OAuth2 JWT and the message fields); a token
FCM reports UNREGISTERED is marked invalid and not used again."""

from __future__ import annotations

import json

import pytest

from notifiers.push_fcm import FcmPushNotifier
from notifiers.registry import build_provider_notifiers
from sentinel.taxonomy import Stage
from store.repo import device_tokens, forget_device
from tests.notifiers.test_notifiers_push_voice import FakeFcm, service_account
from tests.support.fake_providers import serve_fake
from tests.support.gateway_harness import gateway, hold, offline_gateway
from tests.support.workflow_harness import make_settings


@pytest.fixture()
async def fcm():
    async with serve_fake(FakeFcm()) as fake:
        yield fake


def push_settings(tmp_path, smtp_port, fcm):
    key_file = tmp_path / "fcm-service-account.json"
    key_file.write_text(json.dumps(service_account(fcm)))
    return make_settings(tmp_path, smtp_port, fcm_service_account_file=key_file, fcm_api_base=fcm.url)


async def test_devices_are_registered_listed_and_removed_by_their_user_only(tmp_path):
    settings = make_settings(tmp_path, 25)
    async with offline_gateway(settings) as gw:
        me = gw.user("u-7")
        url = "/v1/users/u-7/devices"
        body = {"provider": "fcm", "token": "fcm-token-abcdef", "platform": "android"}
        resp = await gw.http.post(url, json=body, headers=me)
        assert resp.status_code == 200, resp.text
        assert resp.json()["token"] == "fcm-token-abcdef" and resp.json()["invalid_at"] is None
        assert (await gw.http.post(url, json=body, headers=me)).status_code == 200  # idempotent
        await gw.http.post(url, json={"provider": "jpush", "token": "1a0018970a8d2e1a"}, headers=me)
        devices = (await gw.http.get(url, headers=me)).json()["devices"]
        assert [(d["provider"], d["token"]) for d in devices] == [
            ("fcm", "fcm-token-abcdef"),
            ("jpush", "1a0018970a8d2e1a"),
        ]
        assert device_tokens(gw.engine, "u-7", "fcm") == ["fcm-token-abcdef"]

        # nobody registers or reads another user's devices; staff keys are not the user
        assert (await gw.http.post(url, json=body, headers=gw.user("u-8"))).status_code == 403
        assert (await gw.http.get(url, headers=gw.user("u-8"))).status_code == 403
        assert (await gw.http.get(url, headers=gw.key("ops"))).status_code == 403
        assert (await gw.http.get(url)).status_code == 401
        # bad bodies say what is wrong
        for bad in (
            {"provider": "apns", "token": "x" * 20},
            {"provider": "fcm", "token": "short"},
            {"provider": "fcm", "token": "has spaces in it"},
            {"provider": "fcm", "token": "t" * 20, "pin": 1},
        ):
            resp = await gw.http.post(url, json=bad, headers=me)
            assert resp.status_code in (400, 422) and resp.json()["detail"], (bad, resp.text)

        resp = await gw.http.delete(f"{url}/fcm/fcm-token-abcdef", headers=me)
        assert resp.status_code == 204
        assert device_tokens(gw.engine, "u-7", "fcm") == []
        assert (
            await gw.http.delete(f"{url}/fcm/fcm-token-abcdef", headers=gw.user("u-8"))
        ).status_code == 403
        assert (await gw.http.delete(f"{url}/fcm/never-registered", headers=me)).status_code == 404
        # registering again revives it
        await gw.http.post(url, json=body, headers=me)
        assert device_tokens(gw.engine, "u-7", "fcm") == ["fcm-token-abcdef"]


async def test_a_token_live_for_another_user_is_not_taken_over(tmp_path):  # R20, issue #11
    """Knowing someone's push token must not divert their notices: registering it for
    another user is 409 while it is live; it moves after the holder's logout or once the
    provider reported it dead."""
    async with offline_gateway(make_settings(tmp_path, 25)) as gw:
        body = {"provider": "fcm", "token": "fcm-token-shared1", "platform": "android"}

        async def register(user):
            return await gw.http.post(f"/v1/users/{user}/devices", json=body, headers=gw.user(user))

        assert (await register("u-7")).status_code == 200
        resp = await register("u-8")
        assert resp.status_code == 409, resp.text
        assert (
            resp.json()["error"] == "token registered to another user" and "logs out" in resp.json()["detail"]
        )
        assert "u-7" not in resp.text, "the holder is not disclosed"
        assert device_tokens(gw.engine, "u-7", "fcm") == ["fcm-token-shared1"]
        assert device_tokens(gw.engine, "u-8", "fcm") == []
        assert (await register("u-7")).status_code == 200  # the holder re-registers as before

        # the holder logs out on the device: now the next user may register it
        assert (
            await gw.http.delete("/v1/users/u-7/devices/fcm/fcm-token-shared1", headers=gw.user("u-7"))
        ).status_code == 204
        assert (await register("u-8")).status_code == 200
        assert device_tokens(gw.engine, "u-8", "fcm") == ["fcm-token-shared1"]
        assert device_tokens(gw.engine, "u-7", "fcm") == []

        # a token the provider reported dead is free too
        forget_device(gw.engine, "fcm", "fcm-token-shared1", "UNREGISTERED")
        assert (await register("u-9")).status_code == 200
        assert device_tokens(gw.engine, "u-9", "fcm") == ["fcm-token-shared1"]


def test_push_channel_exists_only_with_credentials(tmp_path):
    settings = make_settings(tmp_path, 25)
    assert "push" not in build_provider_notifiers(settings, engine=object())
    key_file = tmp_path / "sa.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "p",
                "client_email": "a@b.c",
                "private_key": "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
            }
        )
    )
    chains = build_provider_notifiers(
        make_settings(tmp_path, 25, fcm_service_account_file=key_file), engine=object()
    )
    assert isinstance(chains["push"].providers["fcm"], FcmPushNotifier)
    assert "push" not in build_provider_notifiers(
        make_settings(tmp_path, 25, fcm_service_account_file=key_file)
    )


async def test_a_risk_hold_is_pushed_to_live_devices_and_a_dead_token_is_forgotten(
    ts_env,
    tmp_path,
    smtp_server,
    unique_id,
    fcm,
):
    settings = push_settings(tmp_path, smtp_server.port, fcm)
    async with gateway(ts_env, settings) as gw:
        me = gw.user(f"u-{unique_id}")
        url = f"/v1/users/u-{unique_id}/devices"
        for token in ("dead-0000aaaa", "live-1111bbbb"):
            resp = await gw.http.post(url, json={"provider": "fcm", "token": token}, headers=me)
            assert resp.status_code == 200, resp.text
        await hold(gw, unique_id)  # RISK_HOLD is HIGH: inbox, sms, push, email (R13)
        view = await gw.view(unique_id)
    review = next(n for n in view.notices if n.stage == Stage.UNDER_REVIEW)
    assert "push" in review.delivered, review
    assert fcm.rejected == []
    sent = {m["token"]: m for m in fcm.received}
    assert set(sent) == {"dead-0000aaaa", "live-1111bbbb"}
    live = sent["live-1111bbbb"]
    assert (
        live["data"]["withdrawal_id"] == unique_id and "555-0100" in live["notification"]["body"]
    )  # support number (R19)
    assert device_tokens(gw.engine, f"u-{unique_id}", "fcm") == ["live-1111bbbb"]
