"""Alembic environment of the application database.

The database URL, first found wins: a connection handed over by ``store.db.migrate``
(``config.attributes["connection"]``), ``alembic -x url=...``, ``sqlalchemy.url`` set on
the config, then ``SENTINEL_DATABASE_URL`` / ``.env`` through ``sentinel.settings``.

Autogenerate compares against ``SQLModel.metadata`` (store/tables.py). SQLite runs in batch
mode, so later migrations can alter columns there too.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from alembic import context
from store import tables  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from sentinel.settings import Settings

    return Settings().database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """``alembic upgrade head --sql``: print the SQL instead of running it."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # store.db.migrate: its engine, its lock
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from store.db import make_engine

    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
