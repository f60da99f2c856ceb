"""Credentials: user tokens for testing the gateway, decision keys for a deployment."""

from __future__ import annotations

import os
import sys

import typer

from sentinel.settings import get_settings

token_app = typer.Typer(no_args_is_help=True, help="Credentials for testing the gateway.")


@token_app.command("user")
def token_user(
    user_id: str,
    ttl: int | None = typer.Option(
        None, help="seconds; default SENTINEL_USER_TOKEN_TTL_S, at most SENTINEL_USER_TOKEN_MAX_TTL_S"
    ),
) -> None:
    """Print a signed user token (Authorization: Bearer <token>) for USER_ID."""
    import time

    from sentinel.user_tokens import make_user_token

    s = get_settings()
    try:
        print(
            make_user_token(
                user_id, s.user_token_secret, time.time(), ttl or s.user_token_ttl_s, s.user_token_max_ttl_s
            )
        )
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        raise typer.Exit(2) from None


keys_app = typer.Typer(no_args_is_help=True, help="Keys to configure a deployment with.")


@keys_app.command("decision")
def keys_decision(kid: str = typer.Option(..., help="key id, e.g. the year and month: k2026-12")) -> None:
    """Print a new Ed25519 key pair for review decisions: the signing key goes to the
    gateway only (SENTINEL_DECISION_SIGNING_KEY), the public key to the workers
    (SENTINEL_DECISION_PUBLIC_KEYS, beside the previous one during a rotation)."""
    from sentinel.decision_tokens import new_signing_key, public_key_of

    try:
        signing = new_signing_key(kid, os.urandom(32))
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        raise typer.Exit(2) from None
    print(f"SENTINEL_DECISION_SIGNING_KEY={signing}")
    print(f"SENTINEL_DECISION_PUBLIC_KEYS={public_key_of(signing)}")
