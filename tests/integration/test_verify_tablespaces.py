"""A source that keeps tables in its own tablespaces: the dump sets default_tablespace for them.

A throwaway target without those tablespaces turns every SET into a restore error (and stops a
plain dump under ON_ERROR_STOP) although the backup is fine (PITFALLS E2); the local target
creates them first, as it does for roles.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from restorecheck import pipeline
from restorecheck.engines.base import RestoreOptions
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("fmt", ["custom", "plain"])
def test_backup_of_a_source_with_tablespaces_verifies_clean(pg_server: PgServer, tmp_path: Path, fmt: str) -> None:
    # inside the source cluster's own directory: the sandboxed server sees nothing else of the host
    assert pg_server.tablespace_dir is not None
    location = pg_server.tablespace_dir(f"src-{fmt}")
    name = f"fast space {fmt}"
    try:
        execute(pg_server.admin, f"CREATE TABLESPACE \"{name}\" LOCATION '{location}'")
        with pg_server.fresh_database() as ref:
            execute(ref, f"""CREATE TABLE t (id int PRIMARY KEY, v text) TABLESPACE "{name}";
                             CREATE INDEX t_v ON t (v) TABLESPACE "{name}";
                             INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g""")
            result = pipeline.backup(ref, tmp_path / "out", pipeline.BackupOptions(format=fmt))
            execute(ref, "DROP TABLE t")
        before = Path(result.artifact.path).read_bytes()
        report = pipeline.verify(result.artifact.path, restore=RestoreOptions(target="local"))
        assert report.verdict == "pass", [f.message for f in report.findings]
        assert report.extra["restore"]["tablespaces_created"] == [name]
        assert [t.rows_restored for t in report.tables if t.name == "public.t"] == [500]
        assert Path(result.artifact.path).read_bytes() == before
    finally:
        execute(pg_server.admin, f'DROP TABLESPACE IF EXISTS "{name}"')
        shutil.rmtree(location, ignore_errors=True)


def test_tablespace_lines_are_read_from_a_dump() -> None:
    from restorecheck.engines.pg_dump import tablespace_in_line, tablespaces_in_sql

    assert tablespace_in_line("SET default_tablespace = fast;") == "fast"
    assert tablespace_in_line('SET default_tablespace = "fast space";') == "fast space"
    assert tablespace_in_line("SET default_tablespace = '';") is None
    assert tablespaces_in_sql("SET default_tablespace = a;\nCREATE TABLE x();\nSET default_tablespace = '';\n"
                              "SET default_tablespace = b;\n") == {"a", "b"}
