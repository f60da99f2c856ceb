"""The channel adapters this deployment speaks, built from the settings."""

from __future__ import annotations

from channels.base import Channel
from channels.generic import GenericChannel
from sentinel.catalogue import Catalogue, default_catalogue
from sentinel.settings import Settings


def build_channels(settings: Settings, catalogue: Catalogue | None = None) -> dict[str, Channel]:
    catalogue = catalogue or default_catalogue()
    return {
        "generic": GenericChannel(
            catalogue,
            settings.channel_base_url,
            settings.channel_secret.get_secret_value(),
            timeout_s=settings.channel_timeout_s,
            tolerance_s=settings.callback_tolerance_s,
        )
    }
