"""The root of the test tree: development mode for every test, a deadline for every async
test, and the shared fixtures (tests/support/) loaded for all of them. The tree mirrors the
code: tests/<package>/ tests that package; tests/e2e/ runs against the real Temporal dev
server; tests/support/ holds fixtures and harnesses."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os

import pytest

#: The tests run on the public development credentials (dev keys file, dev-* secrets), which
#: the gateway and the worker accept only in development mode (sentinel/dev_credentials.py).
#: Every Settings() made in a test, and every process a test starts, inherits this; the tests
#: of the refusal itself turn it off explicitly.
os.environ["SENTINEL_DEV_MODE"] = "1"

#: fixtures every test may ask for by name (no imports of fixtures in test modules)
pytest_plugins = [
    "tests.support.common",
    "tests.support.temporal",
    "tests.support.smtp",
    "tests.support.dbs",
    "tests.support.fake_providers",
]

#: every async test gets this long (a marker ``deadline(seconds)`` changes it); a test that
#: runs past it is cancelled and fails with the line it was stuck on, so one stuck test
#: cannot hang the whole run
DEFAULT_DEADLINE_S = 120.0


def _with_deadline(fn, seconds: float):
    @functools.wraps(fn)
    async def guarded(*args, **kwargs):
        limit = asyncio.timeout(seconds)
        try:
            async with limit:
                return await fn(*args, **kwargs)
        except TimeoutError as exc:
            if limit.expired():
                raise pytest.fail.Exception(
                    f"did not finish within its deadline of {seconds:.0f} s: the traceback above shows "
                    "where it was waiting"
                ) from exc
            raise

    return guarded


def pytest_collection_modifyitems(config, items):
    for item in items:
        fn = getattr(item, "obj", None)
        if not inspect.iscoroutinefunction(fn) or getattr(fn, "is_hypothesis_test", False):
            continue
        marker = item.get_closest_marker("deadline")
        seconds = float(marker.args[0]) if marker else DEFAULT_DEADLINE_S
        item.obj = _with_deadline(fn, seconds)
