"""Fixtures of the gateway tests."""

from __future__ import annotations

import pytest

from tests.support.callback_keys import Keys, new_keys


@pytest.fixture(scope="module")
def keys() -> Keys:
    """The channels' keys, one set per test module (native callbacks, channel input)."""
    return new_keys()
