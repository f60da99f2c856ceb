"""Accounts of the reviewer console (issue #13, R22, R29): who may sign in at
``/pages/review/signin`` with a name and a password.

The accounts are data, a YAML file (``SENTINEL_REVIEWERS_FILE``)::

    accounts:
    - name: alice
      role: reviewer            # or supervisor, operator
      password_hash: "$argon2id$v=19$m=65536,t=3,p=4$..."

Only the argon2id hash of each password is kept (argon2-cffi, the maintained binding of the
reference implementation). The file is re-read when it changes; an invalid edit is refused
and the accounts in force stay. config/reviewers.dev.yaml holds the public development
accounts (alice, bob, carol; dave, an operator); the gateway refuses it outside SENTINEL_DEV_MODE=1
(sentinel/dev_credentials.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.auth import OPERATOR, REVIEWER, SUPERVISOR
from runtime.config_files import HotFile

log = logging.getLogger(__name__)

#: reviewer and supervisor: the reviewer console; operator and supervisor: the operations console
CONSOLE_ROLES = (REVIEWER, SUPERVISOR, OPERATOR)
_NAME = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
_hasher = PasswordHasher()
#: verified when the name is unknown, so that a wrong name costs as long as a wrong password
_DUMMY = _hasher.hash("no account has this password")


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password_hash: str


def parse_accounts(doc: Any) -> dict[str, Account]:
    """name -> account; ValueError naming the first problem."""
    if not isinstance(doc, dict) or not isinstance(doc.get("accounts"), list):
        raise ValueError("the reviewers file needs a list 'accounts'")
    out: dict[str, Account] = {}
    for n, entry in enumerate(doc["accounts"], 1):
        if not isinstance(entry, dict) or set(entry) != {"name", "role", "password_hash"}:
            raise ValueError(f"account {n}: needs exactly name, role, password_hash")
        name, role, hashed = entry["name"], entry["role"], entry["password_hash"]
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"account {n}: name {name!r} must be lower-case letters, digits, '.', '_' or '-'"
            )
        if role not in CONSOLE_ROLES:
            raise ValueError(f"account {name}: role {role!r} is not one of {', '.join(CONSOLE_ROLES)}")
        if not isinstance(hashed, str) or not hashed.startswith("$argon2"):
            raise ValueError(f"account {name}: password_hash is not an argon2 hash")
        if name in out:
            raise ValueError(f"account {name}: listed twice")
        out[name] = Account(name, role, hashed)
    return out


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_ok(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class Reviewers:
    """The accounts of the reviewers file, re-read when it changes."""

    def __init__(self, path: Path | None):
        self._file = HotFile(path, parse_accounts) if path else None
        if self._file is not None:
            self._file.get()  # fail at start-up on a missing or invalid file

    def accounts(self) -> dict[str, Account]:
        if self._file is None:
            return {}
        try:
            return self._file.derived(parse_accounts)
        except ValueError as exc:  # the file vanished before it was ever read
            log.error("reviewer accounts unavailable: %s", exc)
            return {}

    def verify(self, name: str, password: str) -> Account | None:
        """The account when the password is its own; None otherwise (unknown name included)."""
        account = self.accounts().get(name) if len(password) <= 1024 else None
        if account is None:
            password_ok(_DUMMY, password[:1024])
            return None
        return account if password_ok(account.password_hash, password) else None
