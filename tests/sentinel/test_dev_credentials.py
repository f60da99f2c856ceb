"""Production refuses the public development credentials (issue #11, item 1; R22).

The settings' dev defaults (dev-channel-secret, dev-link-secret, dev-user-token-secret) and
config/api_keys.dev.yaml (dev-supervisor-key, ...) are in this repository: a service running
on them lets anyone sign callbacks and user tokens or approve reviews. The gateway and the
worker refuse to start with any of them unless SENTINEL_DEV_MODE=1 (tests/conftest.py sets
it for the rest of the suite; these tests turn it off)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from gateway.app import create_app
from gateway.reviewers import hash_password
from sentinel.decision_tokens import new_signing_key, public_key_of
from sentinel.dev_credentials import (
    DEV_API_KEY_HASHES,
    DEV_REVIEWER_PASSWORDS,
    DevCredentialsRefused,
    check_at_start,
    dev_credentials_in_use,
    public_secret_defaults,
    refuse_dev_credentials,
)
from sentinel.settings import (
    DEV_DECISION_PUBLIC_KEY,
    DEV_DECISION_SIGNING_KEY,
    DEV_PAYLOAD_KEYS,
    ROOT,
    Settings,
)
from tests.support.common import free_port

DEV_KEYS_FILE = ROOT / "config" / "api_keys.dev.yaml"
DEV_REVIEWERS_FILE = ROOT / "config" / "reviewers.dev.yaml"
ALL_DEV = (
    "SENTINEL_CHANNEL_SECRET",
    "SENTINEL_LINK_SECRET",
    "SENTINEL_USER_TOKEN_SECRET",
    "SENTINEL_PAYLOAD_KEYS",
    "SENTINEL_DECISION_SIGNING_KEY",
    "SENTINEL_DECISION_PUBLIC_KEYS",
    "SENTINEL_API_KEYS_FILE",
    "SENTINEL_REVIEWERS_FILE",
)
#: a production history key (id:base64 of 32 bytes)
OWN_PAYLOAD_KEYS = "k1:" + "cA" * 21 + "c="
#: a production decision signing key and its public half
OWN_SIGNING_KEY = new_signing_key("prod1", bytes(range(32)))
OWN_KEYS = "keys:\n- sha256: " + "ab" * 32 + "\n  role: supervisor\n  name: carol\n"


def production(**overrides) -> Settings:
    return Settings(_env_file=None, dev_mode=False, **overrides)


def own_secrets() -> dict[str, str]:
    return {
        "channel_secret": "c" * 32,
        "link_secret": "l" * 32,
        "user_token_secret": "u" * 32,
        "payload_keys": OWN_PAYLOAD_KEYS,
        "decision_signing_key": OWN_SIGNING_KEY,
        "decision_public_keys": public_key_of(OWN_SIGNING_KEY),
        **OWN_IDENTITY,
    }


#: a production's own support number and brand (the defaults are fictional)
OWN_IDENTITY = {"support_phone": "400-820-8820", "brand_name": "Acme Wallet", "brand_name_zh": "极客钱包"}


def test_the_public_defaults_are_exactly_the_five_dev_secrets():
    # A new secret setting with a written default is caught without touching the check
    # (the history encryption key came after the check was written, and is caught).
    assert public_secret_defaults() == {
        "channel_secret": "dev-channel-secret",
        "link_secret": "dev-link-secret",
        "user_token_secret": "dev-user-token-secret",
        "payload_keys": DEV_PAYLOAD_KEYS,
        "decision_signing_key": DEV_DECISION_SIGNING_KEY,
    }


def test_every_key_of_the_dev_keys_file_is_known_as_a_dev_key():
    doc = yaml.safe_load(DEV_KEYS_FILE.read_text())
    assert {entry["sha256"] for entry in doc["keys"]} == DEV_API_KEY_HASHES


@pytest.mark.parametrize(
    "process, unused",
    [("gateway", "SENTINEL_DECISION_PUBLIC_KEYS"), ("worker", "SENTINEL_DECISION_SIGNING_KEY")],
)
def test_the_refusal_names_every_dev_credential_in_one_message(process, unused):  # R22
    with pytest.raises(DevCredentialsRefused) as refused:
        refuse_dev_credentials(
            production(), DEV_KEYS_FILE.read_text(), process, DEV_REVIEWERS_FILE.read_text()
        )
    message = str(refused.value)
    assert message.startswith(f"the {process} refuses to start")
    for name in ALL_DEV:
        assert (name in message) == (name != unused), name
    assert "SENTINEL_DEV_MODE=1" in message


@pytest.mark.parametrize(
    "kept", ["channel_secret", "link_secret", "user_token_secret", "decision_signing_key"]
)
def test_each_dev_secret_alone_is_refused(kept):  # R22
    secrets = own_secrets()
    del secrets[kept]
    found = dev_credentials_in_use(production(**secrets), OWN_KEYS)
    assert len(found) == 1 and found[0].startswith(f"SENTINEL_{kept.upper()} ")


@pytest.mark.parametrize("kept", sorted(OWN_IDENTITY))
def test_the_fictional_support_number_and_brand_are_refused_in_production(kept):  # R19
    """A production that forgot the support number (or brand) would print a number nobody
    answers in every notice: refused like a public secret."""
    settings = {**own_secrets()}
    del settings[kept]
    found = dev_credentials_in_use(production(**settings), OWN_KEYS)
    assert len(found) == 1 and found[0].startswith(f"SENTINEL_{kept.upper()} ") and "fictional" in found[0]


@pytest.mark.parametrize("phone", ["555-0123", "+1 555 0199", "+1-212-555-0150"])
def test_any_fictional_555_number_is_refused(phone):  # R19
    found = dev_credentials_in_use(production(**{**own_secrets(), "support_phone": phone}), OWN_KEYS)
    assert found and "555-01xx" in found[0]


def test_the_support_number_default_is_nobody_elses():  # R19
    """It was 95188, Alipay's own hotline: users of another platform would call Alipay."""
    assert Settings(_env_file=None).support_phone == "555-0100"
    assert Settings(_env_file=None).brand_name == "Example Pay"


def test_a_worker_trusting_the_dev_decision_key_is_refused():  # R22, issue #11
    # its private half is in this repository: a worker that trusts it takes anyone's decision,
    # even listed beside an own key (a rotation that forgot to drop it)
    assert public_key_of(DEV_DECISION_SIGNING_KEY) == DEV_DECISION_PUBLIC_KEY
    for trusted in (DEV_DECISION_PUBLIC_KEY, public_key_of(OWN_SIGNING_KEY) + "," + DEV_DECISION_PUBLIC_KEY):
        found = dev_credentials_in_use(
            production(**{**own_secrets(), "decision_public_keys": trusted}), OWN_KEYS
        )
        assert len(found) == 1 and found[0].startswith("SENTINEL_DECISION_PUBLIC_KEYS "), found


def test_each_process_is_asked_only_for_the_decision_key_it_uses():  # R22, issue #11
    # the worker verifies decisions and must not hold the gateway's private key; the gateway signs
    worker = own_secrets()
    del worker["decision_signing_key"]
    refuse_dev_credentials(production(**worker), OWN_KEYS, "worker")
    with pytest.raises(DevCredentialsRefused, match="SENTINEL_DECISION_SIGNING_KEY"):
        refuse_dev_credentials(production(**worker), OWN_KEYS, "gateway")
    gateway = own_secrets()
    del gateway["decision_public_keys"]
    refuse_dev_credentials(production(**gateway), OWN_KEYS, "gateway")
    with pytest.raises(DevCredentialsRefused, match="SENTINEL_DECISION_PUBLIC_KEYS"):
        refuse_dev_credentials(production(**gateway), OWN_KEYS, "worker")


def test_one_dev_key_among_own_keys_is_refused():  # R22
    carol = "419d354001eaf68981bd0efe3771c88a44a693ffc2842d1375325e58daa21d54"  # dev-supervisor-key
    mixed = OWN_KEYS + f"- sha256: {carol.upper()}\n  role: supervisor\n  name: old\n"
    found = dev_credentials_in_use(production(**own_secrets()), mixed)
    assert len(found) == 1 and found[0].startswith("SENTINEL_API_KEYS_FILE ")


def test_own_secrets_and_keys_start_and_dev_mode_allows_the_dev_ones():  # R22
    refuse_dev_credentials(production(**own_secrets()), OWN_KEYS, "worker")
    refuse_dev_credentials(production(**own_secrets()), None, "worker")  # no keys file at all
    refuse_dev_credentials(Settings(_env_file=None, dev_mode=True), DEV_KEYS_FILE.read_text(), "gateway")


def test_dev_mode_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SENTINEL_DEV_MODE", "1")
    assert Settings(_env_file=None).dev_mode is True
    monkeypatch.delenv("SENTINEL_DEV_MODE")
    assert Settings(_env_file=None).dev_mode is False


def test_the_gateway_app_is_not_built_with_dev_credentials(tmp_path):  # R22
    db = tmp_path / "app.db"
    with pytest.raises(DevCredentialsRefused):
        create_app(production(database_url=f"sqlite:///{db}"))
    assert not db.exists(), "refused before touching anything"
    keys = tmp_path / "keys.yaml"
    keys.write_text(OWN_KEYS)
    reviewers = tmp_path / "reviewers.yaml"
    reviewers.write_text(own_reviewers())
    app = create_app(
        production(
            database_url=f"sqlite:///{db}", api_keys_file=keys, reviewers_file=reviewers, **own_secrets()
        )
    )
    assert app.state.keys.names(["supervisor"]) == {"carol"}


def own_reviewers(password: str = "carol's own long passphrase") -> str:
    return f'accounts:\n- name: carol\n  role: supervisor\n  password_hash: "{hash_password(password)}"\n'


def test_the_dev_reviewers_file_is_refused_outside_dev_mode(tmp_path):  # R22
    """config/reviewers.dev.yaml lets alice, bob and carol sign in to the reviewer console
    with public passwords: refused like the dev API keys; an own file with carol's own
    password passes, and one dev account with its public password among own ones is caught."""
    found = dev_credentials_in_use(
        production(**own_secrets()), OWN_KEYS, reviewers_file_text=DEV_REVIEWERS_FILE.read_text()
    )
    assert len(found) == 1 and found[0].startswith("SENTINEL_REVIEWERS_FILE ")
    assert "alice, bob, carol" in found[0]
    assert (
        dev_credentials_in_use(production(**own_secrets()), OWN_KEYS, reviewers_file_text=own_reviewers())
        == []
    )
    mixed = own_reviewers().replace("carol", "dave") + (
        f'- name: bob\n  role: reviewer\n  password_hash: "{hash_password(DEV_REVIEWER_PASSWORDS["bob"])}"\n'
    )
    [line] = dev_credentials_in_use(production(**own_secrets()), OWN_KEYS, reviewers_file_text=mixed)
    assert "the development accounts bob sign in" in line
    refuse_dev_credentials(
        Settings(_env_file=None, dev_mode=True), None, "gateway", DEV_REVIEWERS_FILE.read_text()
    )


def test_check_at_start_reads_the_configured_reviewers_file(tmp_path):  # R22
    keys = tmp_path / "keys.yaml"
    keys.write_text(OWN_KEYS)
    with pytest.raises(DevCredentialsRefused, match="SENTINEL_REVIEWERS_FILE"):
        check_at_start(
            production(api_keys_file=keys, **own_secrets()), "gateway"
        )  # the default: the dev file
    reviewers = tmp_path / "reviewers.yaml"
    reviewers.write_text(own_reviewers())
    check_at_start(production(api_keys_file=keys, reviewers_file=reviewers, **own_secrets()), "gateway")


# --------------------------------------------------------------------------- real starts


def production_env(tmp_path) -> dict[str, str]:
    """What a production-style start gets when its operator forgot the user-token secret
    and the keys file: everything else is set, nothing says development."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env.update(
        PYTHONPATH=str(ROOT),
        SENTINEL_CHANNEL_SECRET="prod-channel-secret-0123456789",
        SENTINEL_LINK_SECRET="prod-link-secret-0123456789",
        SENTINEL_PAYLOAD_KEYS=OWN_PAYLOAD_KEYS,
        SENTINEL_DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}",
        # nothing listens here: a worker that got past the check would wait for Temporal
        SENTINEL_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
    )
    return env


def start(tmp_path, args: list[str]) -> subprocess.CompletedProcess:
    # The timeout only ends a process that wrongly started; the refusal comes at once.
    return subprocess.run(
        args, cwd=tmp_path, env=production_env(tmp_path), capture_output=True, text=True, timeout=60
    )


def assert_refused(result: subprocess.CompletedProcess, process: str) -> None:
    assert result.returncode != 0, result
    assert f"the {process} refuses to start with public development credentials" in result.stderr, (
        result.stderr
    )
    assert "SENTINEL_USER_TOKEN_SECRET" in result.stderr and "SENTINEL_API_KEYS_FILE" in result.stderr
    assert "SENTINEL_REVIEWERS_FILE" in result.stderr  # the default: the dev reviewer accounts
    # the secrets that were set are not named
    assert "SENTINEL_CHANNEL_SECRET" not in result.stderr and "SENTINEL_LINK_SECRET" not in result.stderr
    assert "Traceback" not in result.stderr, "one clear message"


def test_worker_py_refuses_a_production_start_without_the_secrets(tmp_path):  # R22
    assert_refused(start(tmp_path, [sys.executable, str(ROOT / "worker.py")]), "worker")


def test_the_gateway_refuses_a_production_start_without_the_secrets(tmp_path):  # R22
    port = free_port()
    result = start(
        tmp_path,
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "gateway.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
    )
    assert_refused(result, "gateway")
    assert not (tmp_path / "app.db").exists()
