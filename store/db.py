"""Engine creation and schema set-up for the application database.

The schema belongs to the Alembic migrations (``alembic/versions``): :func:`migrate` brings
a database to the newest revision, and :func:`engine_for` (used by the worker, the gateway
and the CLI) does so before handing out its engine, so every process starts on the same,
current schema whatever the order they start in. Concurrent starts are serialised (an
advisory lock on PostgreSQL, a lock file beside a SQLite file). A database made before
migrations existed (``create_all`` of the foundation) is stamped with the baseline
revision ``0001`` and upgraded from there.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, create_engine

from sentinel.settings import ROOT
from store import tables  # noqa: F401  (registers the tables)

log = logging.getLogger(__name__)

ALEMBIC_INI = ROOT / "alembic.ini"
ALEMBIC_DIR = ROOT / "alembic"
BASELINE_REVISION = "0001"
#: pg_advisory_xact_lock key serialising concurrent migrations ("sentinel" in ASCII)
_PG_LOCK_KEY = 0x73656E74696E656C


def make_engine(url: str) -> Engine:
    """An engine for ``url``. SQLite files get their folder created, WAL mode and a busy
    timeout so the worker's threads and the gateway can share one file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every sqlite test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def alembic_config(connection: Connection | None = None):
    """The Alembic configuration of this repository; with ``connection``, env.py runs the
    migrations on it (inside the caller's transaction)."""
    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("alembic/versions holds no migration")
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations of one SQLite file across processes (SQLite DDL is not
    transactional under pysqlite, so two first starts could both create a table)."""
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: single-process dev only
        yield
        return
    with open(f"{database}.migrate.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _migration_connection(engine: Engine) -> Iterator[Connection]:
    """One transaction holding the migration lock of this database."""
    lock = _sqlite_file_lock(engine) if engine.dialect.name == "sqlite" else contextlib.nullcontext()
    with lock, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        yield conn


def migrate_engine(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` (default: the newest)."""
    from alembic import command

    with _migration_connection(engine) as conn:
        cfg = alembic_config(conn)
        names = set(inspect(conn).get_table_names())
        if "alembic_version" not in names and names & {"notice_delivery", "inbox_message", "parked_callback"}:
            log.warning(
                "database predates migrations: stamping revision %s, then upgrading", BASELINE_REVISION
            )
            command.stamp(cfg, BASELINE_REVISION)
        command.upgrade(cfg, revision)


def downgrade_engine(engine: Engine, revision: str) -> None:
    """Downgrade to ``revision`` (``base``: no tables). For operators undoing a release,
    and for the migration tests."""
    from alembic import command

    with _migration_connection(engine) as conn:
        command.downgrade(alembic_config(conn), revision)


def migrate(url: str, revision: str = "head") -> None:
    """``alembic upgrade head`` for the database at ``url`` (programmatic)."""
    engine = make_engine(url)
    try:
        migrate_engine(engine, revision)
    finally:
        engine.dispose()


def init_schema(engine: Engine) -> None:
    """Bring the schema up to date (the migrations, not ``create_all``)."""
    migrate_engine(engine)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    engine = make_engine(url)
    init_schema(engine)
    return engine


def saved_id(row_id: int | None) -> int:
    """The primary key of a row that was written (flushed, committed or read back): the
    table's ``id: int | None`` is None only before that."""
    if row_id is None:
        raise ValueError("the row was never written: it has no id")
    return row_id


def insert_once(engine: Engine, row: SQLModel) -> bool:
    """Insert ``row`` in a transaction of its own; False when a unique key says it is there already."""
    with Session(engine) as session:
        session.add(row)
        try:
            session.commit()
            return True
        except IntegrityError:
            session.rollback()
            return False
