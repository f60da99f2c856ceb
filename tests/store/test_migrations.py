"""The Alembic migrations (alembic/versions) on SQLite and PostgreSQL: a fresh database
upgraded to head has exactly the schema of store/tables.py; downgrade and upgrade
round-trip and keep the data; a database made before migrations (create_all) is adopted;
concurrent first starts do not collide; the alembic command line reads the settings."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import Session, SQLModel

from sentinel.settings import ROOT
from store.callbacks import park_callback, parked_for
from store.db import (
    alembic_config,
    current_revision,
    downgrade_engine,
    engine_for,
    head_revision,
    make_engine,
    migrate,
    migrate_engine,
)
from store.reviews import add_audit, audit_for

APP_TABLES = set(SQLModel.metadata.tables)


def diffs(engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        return compare_metadata(ctx, SQLModel.metadata)


def tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_history_is_linear_with_one_head_and_every_step_reversible():
    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(script.walk_revisions())  # head first
    assert [r.revision for r in revisions][::-1] == [
        "0001",
        "0002",
        "0003",
        "0004",
        "0005",
        "0006",
        "0007",
        "0008",
        "0009",
        "0010",
    ]
    assert script.get_heads() == [head_revision()] == ["0010"]
    for rev in revisions:
        assert "def downgrade" in open(rev.path).read() and rev.module.downgrade is not None


def test_upgrade_downgrade_round_trip_and_adoption(database_url):
    engine = make_engine(database_url)
    try:
        assert tables(engine) == set() and current_revision(engine) is None  # a fresh database

        # fresh -> head: exactly the models
        migrate(database_url)
        assert current_revision(engine) == head_revision()
        assert tables(engine) == APP_TABLES
        assert diffs(engine) == []
        migrate(database_url)  # again: nothing to do
        assert current_revision(engine) == head_revision()

        # data survives a downgrade and an upgrade
        park_callback(engine, "generic", "evt-1", "W1", "{}")
        add_audit(engine, "alice", "reviewer", "assign", "W1", "assigned to alice")
        downgrade_engine(engine, "0001")
        assert current_revision(engine) == "0001"
        assert "unmapped_code" not in tables(engine)
        assert "withdrawal_event" not in tables(engine)
        assert not {"outage_incident", "outage_notice"} & tables(engine)
        assert "outcome" not in {c["name"] for c in inspect(engine).get_columns("parked_callback")}
        with Session(engine) as session:
            assert session.execute(text("SELECT event_id FROM parked_callback")).scalars().all() == ["evt-1"]
        migrate_engine(engine)
        assert diffs(engine) == []
        [row] = parked_for(engine, "W1")
        assert row.event_id == "evt-1" and row.outcome is None
        assert [a.action for a in audit_for(engine, "W1")] == ["assign"]

        # all the way down and up again
        downgrade_engine(engine, "base")
        assert tables(engine) == set() and current_revision(engine) is None
        migrate_engine(engine)
        assert tables(engine) == APP_TABLES and diffs(engine) == []

        # a database made before migrations (the foundation's create_all = revision 0001,
        # without alembic_version) is stamped 0001 and upgraded
        downgrade_engine(engine, "0001")
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE alembic_version"))
        assert current_revision(engine) is None
        engine_for.cache_clear()
        engine_for(database_url)  # what the worker and the gateway do at start
        assert current_revision(engine) == head_revision() and diffs(engine) == []
    finally:
        engine_for.cache_clear()
        engine.dispose()


def test_concurrent_first_starts_migrate_once(tmp_path):
    # The worker and the gateway start together on one fresh SQLite file.
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    errors: list[BaseException] = []

    def start():
        try:
            migrate(url)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = make_engine(url)
    assert current_revision(engine) == head_revision() and diffs(engine) == []
    engine.dispose()


def test_alembic_command_line_reads_the_database_url_from_the_settings(tmp_path):
    db = tmp_path / "cli.db"
    env = {**os.environ, "SENTINEL_DATABASE_URL": f"sqlite:///{db}"}
    alembic = [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini")]
    done = subprocess.run(
        [*alembic, "upgrade", "head"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*alembic, "check"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr  # no model change without a migration
    engine = make_engine(f"sqlite:///{db}")
    assert current_revision(engine) == head_revision() and tables(engine) == APP_TABLES
    engine.dispose()
