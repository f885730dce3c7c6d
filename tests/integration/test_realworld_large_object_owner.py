"""A large object owned by a role that owns nothing else, and granted to another (PITFALLS C1/E1).

verify creates, as NOLOGIN, the roles an archive names; it read them from ``pg_restore
--schema-only``, which leaves out large objects (pg_restore counts them as data). The owner's
``ALTER LARGE OBJECT ... OWNER TO`` then failed ("role does not exist") and the large object
came back owned by the restoring superuser: a faithful custom/directory/tar backup was judged
failed (restore_errors, large_objects). Plain dumps were fine (the whole script is scanned).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from restorecheck import pipeline
from restorecheck.engines.base import RestoreOptions
from restorecheck.engines.pg_dump import large_object_entries
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("fmt", ["custom", "tar"])
def test_large_object_owner_and_grantee_are_created_for_an_archive(pg_server: PgServer, tmp_path: Path,
                                                                    fmt: str) -> None:
    owner, reader = f"lo owner {fmt}", f"lo_reader_{fmt}"
    try:
        execute(pg_server.admin, f'CREATE ROLE "{owner}" NOLOGIN; CREATE ROLE {reader} NOLOGIN')
        with pg_server.fresh_database() as ref:
            execute(ref, f"""CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
                             SELECT lo_from_bytea(777, 'owned by a role that owns nothing else');
                             ALTER LARGE OBJECT 777 OWNER TO "{owner}";
                             GRANT SELECT ON LARGE OBJECT 777 TO {reader};
                             COMMENT ON LARGE OBJECT 777 IS 'the report'""")
            result = pipeline.backup(ref, tmp_path / "out", pipeline.BackupOptions(format=fmt))
    finally:
        execute(pg_server.admin, f'DROP ROLE IF EXISTS "{owner}"; DROP ROLE IF EXISTS {reader}')
    report = pipeline.verify(result.artifact.path, restore=RestoreOptions(target="local"))
    assert report.verdict == "pass", [f.message for f in report.findings]
    assert {owner, reader} <= set(report.extra["restore"]["roles_created"])


def test_large_object_entries_of_a_listing() -> None:
    listing = """;
; Archive created at 2026-11-21 21:28:05 UTC
3470; 1259 16390 TABLE public t postgres
3477; 2613 777 BLOB - 777 lo owner
3479; 0 0 COMMENT - LARGE OBJECT 777 lo owner
3488; 0 0 ACL - LARGE OBJECT 777 lo owner
3478; 0 0 BLOBS - BLOBS
4001; 2613 16500 BLOB METADATA - 16500..16510 app
4002; 0 0 ACL - LARGE OBJECTS 16500..16510 app
"""
    assert large_object_entries(listing) == [
        "3477; 2613 777 BLOB - 777 lo owner",
        "3488; 0 0 ACL - LARGE OBJECT 777 lo owner",
        "4001; 2613 16500 BLOB METADATA - 16500..16510 app",
        "4002; 0 0 ACL - LARGE OBJECTS 16500..16510 app",
    ]
