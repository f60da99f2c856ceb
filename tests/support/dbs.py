"""The application database under test: SQLite (a file per test) and PostgreSQL, the
production database (a fresh temporary database per test module, dropped afterwards).

Ask for the ``database_url`` fixture by name (tests/conftest.py loads it; ``postgres_url``: PostgreSQL
only). Tests build their own engines with ``store.db.make_engine`` + ``init_schema`` and
dispose them; ``engine_for`` is cached per URL, so its PostgreSQL entries are cleared when
the database is dropped.

When PostgreSQL is not reachable on 127.0.0.1:5432 the postgres parameter is skipped with
the reason (never failed, never silently passed).
"""

from __future__ import annotations

import uuid

import pytest

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_ADMIN_DB = "test"
PG_USERS = ("postgres", None)  # None: the current OS user (trust auth)
CONNECT_TIMEOUT_S = 2


def _admin_connection():
    """An autocommit connection to the ``test`` database, or raise the last error."""
    import psycopg

    last: Exception | None = None
    for user in PG_USERS:
        try:
            conn = psycopg.connect(
                host=PG_HOST,
                port=PG_PORT,
                dbname=PG_ADMIN_DB,
                user=user,
                connect_timeout=CONNECT_TIMEOUT_S,
                autocommit=True,
            )
        except psycopg.OperationalError as exc:
            last = exc
            continue
        return conn
    assert last is not None
    raise last


_PG_STASH = pytest.StashKey[tuple[str, str]]()


def _drop_database(admin, name: str) -> None:
    # Engines cached by store.db.engine_for (the gateway and the activities use it) may
    # still hold pooled connections to this database: forget them, then force the drop.
    from store.db import engine_for

    engine_for.cache_clear()
    try:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def _postgres_url_for_module(request) -> str:
    """A fresh PostgreSQL database for the requesting test module (created on first use,
    dropped when the module is torn down); skip with the reason when unreachable."""
    module = request.node.getparent(pytest.Module) or request.session
    kind, value = module.stash.get(_PG_STASH, ("", ""))
    if kind == "url":
        return value
    if kind != "skip":
        try:
            admin = _admin_connection()
        except Exception as exc:  # psycopg missing, refused, timed out, auth failed
            reason = " ".join(str(exc).split()) or type(exc).__name__
            module.stash[_PG_STASH] = ("skip", reason)
        else:
            name = f"sentinel_t_{uuid.uuid4().hex[:12]}"
            try:
                admin.execute(f'CREATE DATABASE "{name}"')
            except Exception:
                admin.close()
                raise
            module.addfinalizer(lambda: _drop_database(admin, name))
            url = f"postgresql+psycopg://{admin.info.user}@{PG_HOST}:{PG_PORT}/{name}"
            module.stash[_PG_STASH] = ("url", url)
            return url
    reason = module.stash[_PG_STASH][1]
    pytest.skip(
        f"PostgreSQL not reachable on {PG_HOST}:{PG_PORT} ({reason}): production database path not tested here"
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """SQLAlchemy URL of an empty SQLite file, or of this module's private PostgreSQL
    database (shared by the module's tests: use unique keys and user ids)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return _postgres_url_for_module(request)


@pytest.fixture()
def postgres_url(request) -> str:
    """This module's private PostgreSQL database alone (for tests about PostgreSQL itself:
    several processes, its locks); skipped with the reason when PostgreSQL is absent."""
    return _postgres_url_for_module(request)
