"""Production refuses the public development credentials (issue #11).

The settings ship with development defaults so that ``make run`` works on a fresh clone:
``dev-channel-secret``, ``dev-link-secret``, ``dev-user-token-secret``, the development
history and decision-signing keys, the decision public key that verifies the latter, and the
keys file ``config/api_keys.dev.yaml`` (``dev-supervisor-key`` and friends). All of them are
public (they are in this repository), so a service running with any of them lets anyone sign
callbacks, deep links, user tokens or review decisions, or approve reviews. The gateway and the worker call
:func:`refuse_dev_credentials` when they start and stop with one message naming every such
setting, unless ``SENTINEL_DEV_MODE=1`` says this is a development machine (``make run``,
the dev stack and the tests set it).

The same check refuses the fictional development identity in production: the support
number ``555-0100`` (a number reserved for fiction: users told to call it reach nobody) and
the brand "Example Pay" / "示例支付" that every SMS, push and call carries (R19). Any
555-01xx number counts as fictional.

The reviewer console's accounts file (``SENTINEL_REVIEWERS_FILE``) is refused the same way
when it still lets a development account (alice, bob, carol) sign in with its public
password (config/reviewers.dev.yaml): each such account's argon2 hash is checked against
that account's development password (three checks at most, however long the file).

The decision is pure (:func:`refuse_dev_credentials` takes the files' text);
:func:`check_at_start` reads the configured files and calls it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import SecretStr

from sentinel.settings import (
    DEV_BRAND_NAME,
    DEV_BRAND_NAME_ZH,
    DEV_DECISION_PUBLIC_KEY,
    DEV_SUPPORT_PHONE,
    Settings,
)

#: the public API keys of config/api_keys.dev.yaml (README, docs/gateway.md)
DEV_API_KEYS = (
    "dev-payment-service-key",
    "dev-reviewer-alice-key",
    "dev-reviewer-bob-key",
    "dev-supervisor-key",
    "dev-operator-key",
)
DEV_API_KEY_HASHES = frozenset(hashlib.sha256(k.encode()).hexdigest() for k in DEV_API_KEYS)

#: the public passwords of config/reviewers.dev.yaml (docs/pages.md)
DEV_REVIEWER_PASSWORDS = {
    "alice": "dev-alice-password",
    "bob": "dev-bob-password",
    "carol": "dev-carol-password",
    "dave": "dev-dave-password",
}

#: settings every user notice prints, with their fictional development values
DEV_IDENTITY = {
    "support_phone": DEV_SUPPORT_PHONE,
    "brand_name": DEV_BRAND_NAME,
    "brand_name_zh": DEV_BRAND_NAME_ZH,
}
#: North American numbers 555-0100..0199 are reserved for fiction
_FICTIONAL_PHONE = re.compile(r"(?<!\d)555[ -]?01\d\d(?!\d)")

_HEX64 = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{64}(?![0-9A-Fa-f])")


#: settings a process never uses, so their development values are no risk there: the worker
#: verifies review decisions (public keys) and must not even hold the gateway's signing key
NOT_USED_BY = {"worker": ("decision_signing_key",), "gateway": ("decision_public_keys",)}


class DevCredentialsRefused(RuntimeError):
    """A process was asked to start outside development mode with public credentials."""


def env_name(field: str) -> str:
    return f"SENTINEL_{field.upper()}"


def public_secret_defaults() -> dict[str, str]:
    """Every secret setting whose default is a value written in the source (hence public):
    field name -> that value. Secrets without a default (None) are not listed."""
    out = {}
    for name, f in Settings.model_fields.items():
        if isinstance(f.default, SecretStr) and f.default.get_secret_value():
            out[name] = f.default.get_secret_value()
    return out


def dev_key_hashes_in(keys_file_text: str | None) -> set[str]:
    """The SHA-256 of development keys that appear in an API keys file's text."""
    if not keys_file_text:
        return set()
    return {h.lower() for h in _HEX64.findall(keys_file_text)} & DEV_API_KEY_HASHES


def dev_reviewers_in(reviewers_file_text: str | None) -> list[str]:
    """The development accounts of a reviewers file that still take their public password."""
    try:
        doc = yaml.safe_load(reviewers_file_text or "") or {}
    except yaml.YAMLError:
        return []  # the gateway's own loader refuses a broken file
    accounts = doc.get("accounts") if isinstance(doc, dict) else None
    found = []
    for entry in accounts if isinstance(accounts, list) else []:
        name = entry.get("name") if isinstance(entry, dict) else None
        hashed = entry.get("password_hash") if isinstance(entry, dict) else None
        if name in DEV_REVIEWER_PASSWORDS and isinstance(hashed, str):
            try:
                if PasswordHasher().verify(hashed, DEV_REVIEWER_PASSWORDS[name]):
                    found.append(name)
            except (VerificationError, InvalidHashError):
                pass
    return found


def dev_credentials_in_use(
    settings: Settings,
    keys_file_text: str | None,
    process: str | None = None,
    reviewers_file_text: str | None = None,
) -> list[str]:
    """One line per setting that still holds a public development credential (leaving out
    those ``process`` never uses: NOT_USED_BY)."""
    found = []
    unused = NOT_USED_BY.get(process or "", ())
    for name, public in public_secret_defaults().items():
        if name in unused:
            continue
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and value.get_secret_value() == public:
            found.append(f"{env_name(name)} is the development default {public!r}")
    found += fictional_identity_in_use(settings)
    dev_public = DEV_DECISION_PUBLIC_KEY.partition(":")[2]
    if "decision_public_keys" not in unused and dev_public in settings.decision_public_keys:
        # the public half of the public development signing key: anyone could sign decisions
        found.append(
            "SENTINEL_DECISION_PUBLIC_KEYS trusts the development decision key (anyone can sign with it)"
        )
    if dev_key_hashes_in(keys_file_text):
        found.append(f"SENTINEL_API_KEYS_FILE ({settings.api_keys_file}) lists public development API keys")
    dev_accounts = dev_reviewers_in(reviewers_file_text)
    if dev_accounts:
        found.append(
            f"SENTINEL_REVIEWERS_FILE ({settings.reviewers_file}) lets the development accounts "
            f"{', '.join(dev_accounts)} sign in with their public passwords"
        )
    return found


def fictional_identity_in_use(settings: Settings) -> list[str]:
    """One line per notice identity setting (support number, brand) that is still the
    fictional development value: users would be told to call a number nobody answers."""
    found = []
    for name, value in DEV_IDENTITY.items():
        if getattr(settings, name) == value:
            found.append(
                f"{env_name(name)} is the fictional development default {value!r}: notices would carry it"
            )
    phone = settings.support_phone
    if phone != DEV_SUPPORT_PHONE and _FICTIONAL_PHONE.search(phone):
        found.append(
            f"{env_name('support_phone')} {phone!r} is a fictional 555-01xx number: nobody answers it"
        )
    return found


def refuse_dev_credentials(
    settings: Settings, keys_file_text: str | None, process: str, reviewers_file_text: str | None = None
) -> None:
    """Raise :class:`DevCredentialsRefused` naming every public credential in use, unless
    ``settings.dev_mode`` is set."""
    if settings.dev_mode:
        return
    found = dev_credentials_in_use(settings, keys_file_text, process, reviewers_file_text)
    if found:
        raise DevCredentialsRefused(
            f"the {process} refuses to start with public development credentials:\n  - "
            + "\n  - ".join(found)
            + "\nSet each to a value of your own (docs/deployment.md), or set SENTINEL_DEV_MODE=1 on a "
            "development machine."
        )


def _text(path: Path | None) -> str | None:
    return path.read_text(encoding="utf-8") if path is not None and path.is_file() else None


def check_at_start(settings: Settings, process: str) -> None:
    """:func:`refuse_dev_credentials` with the configured API keys and reviewers files (a
    missing file has no keys: the gateway's own loaders refuse it)."""
    if settings.dev_mode:
        return
    refuse_dev_credentials(settings, _text(settings.api_keys_file), process, _text(settings.reviewers_file))
