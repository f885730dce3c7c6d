"""A hardened source that dropped its ``public`` schema and keeps everything in its own schema.

pg_dump does not drop ``public`` on restore, so the database verify restores into (from
template0) still has an empty one: every faithful backup of such a source was judged failed
("schema public is in the restored copy but not in the reference"). An empty extra ``public`` is
now a warning; a ``public`` that holds objects is still an error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from restorecheck import pipeline
from restorecheck.checks.compare import compare_schema
from restorecheck.engines.base import RestoreOptions
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("fmt", ["custom", "plain"])
def test_source_without_public_schema_verifies(pg_server: PgServer, tmp_path: Path, fmt: str) -> None:
    with pg_server.fresh_database() as ref:
        execute(ref, """CREATE SCHEMA app;
                        CREATE TABLE app.t (id int PRIMARY KEY, v text);
                        INSERT INTO app.t SELECT g, 'v' || g FROM generate_series(1, 100) g;
                        DROP SCHEMA public""")
        result = pipeline.backup(ref, tmp_path / "out", pipeline.BackupOptions(format=fmt))
    report = pipeline.verify(result.artifact.path, restore=RestoreOptions(target="local"))
    assert report.verdict == "pass", [f.message for f in report.findings]
    assert [(f.severity, f.object) for f in report.findings if f.check == "schema"] == [("warning", "public")]


def test_extra_public_schema_with_objects_is_still_an_error() -> None:
    reference = {"schemas": {"app": {"owner": "o"}}, "tables": {"app.t": {}}}
    restored = {"schemas": {"app": {"owner": "o"}, "public": {"owner": "o"}},
                "tables": {"app.t": {}, "public.stray": {}}}
    findings = compare_schema(reference, restored)
    assert any(f.severity == "error" and f.object == "public" for f in findings)
    empty = {"schemas": {"app": {"owner": "o"}, "public": {"owner": "o"}}, "tables": {"app.t": {}}}
    findings = compare_schema(reference, empty)
    assert [(f.severity, f.object) for f in findings] == [("warning", "public")]
    # a reference that has public: a missing or extra one is compared as before
    assert compare_schema(empty, reference)[0].severity == "error"
