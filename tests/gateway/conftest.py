"""Fixtures of the gateway tests."""

from __future__ import annotations

import pytest

from runtime.client import SentinelClient
from tests.support.callback_keys import Keys, new_keys
from tests.support.gateway_harness import offline_gateway
from tests.support.workflow_harness import make_settings


@pytest.fixture(scope="module")
def keys() -> Keys:
    """The channels' keys, one set per test module (native callbacks, channel input)."""
    return new_keys()


@pytest.fixture()
async def gw(ts_env, tmp_path):
    """The gateway with a real client of a Temporal test server that runs no workflow (the
    pages' tests); a module that needs another gateway defines its own ``gw``."""
    settings = make_settings(tmp_path, 9)
    async with offline_gateway(settings, SentinelClient(ts_env.client, "tq-no-worker")) as g:
        yield g
