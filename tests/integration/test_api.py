"""The Python API on real servers: SQLAlchemy sources, Manifests handed around as values, the keys a
live comparison narrows down in the summary, errors with their exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

import restorecheck
from restorecheck.dburl import PostgresRef
from restorecheck.errors import BackupNotFoundError, BadInputError, ExitCode
from restorecheck.model import Manifest
from tests.conftest import execute, url

pytestmark = pytest.mark.postgres


def _fill(ref: PostgresRef, rows: int = 50) -> None:
    execute(ref, "CREATE TABLE items (id int PRIMARY KEY, label text)")
    execute(ref, "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, %s) g", (rows,))


def test_snapshot_compare_and_narrowed_keys_from_sqlalchemy(fresh_db: PostgresRef, pg_server) -> None:  # type: ignore[no-untyped-def]
    _fill(fresh_db)
    engine = sa.create_engine(url(fresh_db).replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        manifest = restorecheck.snapshot(engine)
        assert isinstance(manifest, Manifest) and manifest.table("public.items").rows == 50  # type: ignore[union-attr]
        assert restorecheck.compare(engine, manifest).ok
        with pg_server.fresh_database() as other:
            _fill(other)
            execute(other, "DELETE FROM items WHERE id IN (7, 42)")
            report = restorecheck.compare(engine, other)
    finally:
        engine.dispose()
    assert not report.ok and [f.check for f in report.errors] == ["row_count"]
    assert [t.name for t in report.failing_tables] == ["public.items"]
    summary = report.summary()
    assert "row_count       public.items: expected 50 rows, restored 48" in summary
    assert "42 missing" in summary and "7 missing" in summary


def test_backup_then_verify_with_the_manifest_value(fresh_db: PostgresRef, tmp_path: Path) -> None:
    _fill(fresh_db, 200)
    taken = restorecheck.backup(url(fresh_db), tmp_path, format="tar", name="items")
    assert taken.artifact.format == "tar" and taken.manifest_path == tmp_path / "items.manifest.json"
    report = restorecheck.verify(taken.artifact.path, manifest=taken.manifest)
    assert report.ok and report.reference == "manifest"
    assert [(t.name, t.rows_restored) for t in report.tables] == [("public.items", 200)]
    assert '"verdict": "pass"' in report.to_json()


def test_drill_on_a_sqlite_path(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "a.db"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB); INSERT INTO t VALUES (1, x'00ff');")
    conn.close()
    report = restorecheck.drill(db)
    assert report.ok and report.engine == "sqlite" and report.tables[0].rows_restored == 1


def test_errors_carry_the_cli_exit_codes(tmp_path: Path) -> None:
    with pytest.raises(BackupNotFoundError) as missing:
        restorecheck.verify(tmp_path / "nope.dump")
    assert missing.value.exit_code == ExitCode.BAD_INPUT
    db = tmp_path / "a.db"
    db.touch()
    with pytest.raises(BadInputError, match="exclude_table_data is a pg_dump option"):
        restorecheck.drill(db, exclude_table_data=["t"])
