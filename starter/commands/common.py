"""What the command modules share: the client and the database of the settings in force,
and a set of top-level commands a module declares for ``starter.cli`` to register in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from sentinel.settings import get_settings


def connect_client() -> Any:
    """A coroutine that connects a ``SentinelClient`` to the Temporal of the settings."""
    from runtime.client import SentinelClient

    return SentinelClient.connect(get_settings())


def app_engine() -> Any:
    """The application database of the settings in force."""
    from store.db import engine_for

    return engine_for(get_settings().database_url)


class CommandSet:
    """Top-level commands declared by one module, registered on the app by ``starter.cli``."""

    def __init__(self) -> None:
        self.functions: list[Callable[..., Any]] = []

    def command(self, function: Callable[..., Any]) -> Callable[..., Any]:
        self.functions.append(function)
        return function

    def register(self, app: typer.Typer) -> None:
        for function in self.functions:
            app.command()(function)
