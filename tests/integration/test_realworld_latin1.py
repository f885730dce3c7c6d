"""A LATIN1 database with non-ASCII data and identifiers (PITFALLS E4).

Two crashes on faithful backups: every fingerprint of such a database died with a
UnicodeDecodeError (libpq's client_encoding defaults to the database's, and psycopg's json
loader assumes UTF-8 for the catalog's json), so snapshot, backup, drill and compare exited 3;
and a plain dump of it, written in LATIN1, was "not a backup restorecheck recognises" (exit 2).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from restorecheck import pipeline
from restorecheck.engines.base import FingerprintOptions, RestoreOptions
from restorecheck.engines.pg_dump import detect_format
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute, url

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE SCHEMA "schéma";
CREATE TABLE "schéma"."größe" (id int PRIMARY KEY, "naïve" text, c char(4), j jsonb, ts tsvector);
INSERT INTO "schéma"."größe" SELECT g, 'café crème ' || g || ' ÿ ½ ©', 'ñ', jsonb_build_object('é', 'ü' || g),
       to_tsvector('simple', 'über straße ' || g) FROM generate_series(1, 300) g;
COMMENT ON TABLE "schéma"."größe" IS 'tätä';
CREATE TYPE "état" AS ENUM ('prêt', 'fini');
CREATE TABLE e (id int PRIMARY KEY, s "état");
INSERT INTO e VALUES (1, 'prêt'), (2, 'fini');
"""


@pytest.mark.parametrize("fmt", ["custom", "plain"])
def test_latin1_database_backs_up_and_verifies(pg_server: PgServer, tmp_path: Path, fmt: str) -> None:
    with pg_server.fresh_database(encoding="LATIN1", lc_collate="C", lc_ctype="C") as ref:
        execute(ref, SCHEMA)
        result = pipeline.backup(ref, tmp_path / "out", pipeline.BackupOptions(format=fmt))
    assert detect_format(Path(result.artifact.path)) == fmt
    report = pipeline.verify(result.artifact.path, restore=RestoreOptions(target="local"))
    assert report.verdict == "pass", [f.message for f in report.findings]
    rows = {t.name: t.rows_restored for t in report.tables}
    assert rows == {"schéma.größe": 300, "public.e": 2}


def test_latin1_database_compares_equal_to_its_template_copy(pg_server: PgServer) -> None:
    with pg_server.fresh_database(encoding="LATIN1", lc_collate="C", lc_ctype="C") as ref:
        execute(ref, SCHEMA)
        copy = ref.with_dbname(f"{ref.dbname}_copy")
        execute(pg_server.admin, f'CREATE DATABASE "{copy.dbname}" TEMPLATE "{ref.dbname}"')
        try:
            report = pipeline.compare(url(ref), url(copy))
            strict = pipeline.compare(url(ref), url(copy), options=FingerprintOptions(strict=True))
        finally:
            execute(pg_server.admin, f'DROP DATABASE "{copy.dbname}"')
    assert report.verdict == "pass", [f.message for f in report.findings]
    assert strict.verdict == "pass", [f.message for f in strict.findings]


def test_a_latin1_plain_dump_is_recognised(tmp_path: Path) -> None:
    dump = tmp_path / "latin1.sql"
    dump.write_bytes(b"--\n-- PostgreSQL database dump\n--\n\nSET client_encoding = 'LATIN1';\n"
                     b'CREATE SCHEMA "sch\xe9ma";\n' * 3)
    assert detect_format(dump) == "plain"
    binary = tmp_path / "noise.bin"
    binary.write_bytes(bytes(range(1, 256)) * 10)
    assert detect_format(binary) is None


# A legacy SQL_ASCII database holding LATIN1 bytes: the server converts nothing and psycopg
# returned text as bytes, so backup crashed (the exported snapshot id, a bytes object, became a
# bytea literal in SET TRANSACTION SNAPSHOT: exit 2), and asking for UTF8 made the server reject
# the non-UTF-8 names (exit 3).
SQL_ASCII_SCHEMA = (
    "CREATE TABLE \"caf\xe9\" (id int PRIMARY KEY, t text, j jsonb);\n"
    "INSERT INTO \"caf\xe9\" SELECT g, 'cr\xe8me \xff\xfe ' || g, '{\"a\": 1}' FROM generate_series(1, 100) g;\n"
    "COMMENT ON TABLE \"caf\xe9\" IS 'na\xefve';\n"
).encode("latin-1")


def test_sql_ascii_database_with_high_bytes_backs_up_verifies_and_compares(pg_server: PgServer,
                                                                          tmp_path: Path) -> None:
    import psycopg

    with pg_server.fresh_database(encoding="SQL_ASCII", lc_collate="C", lc_ctype="C") as ref:
        with psycopg.connect(ref.conninfo(), autocommit=True) as conn:
            conn.execute(SQL_ASCII_SCHEMA)
            # what a drill's target must host: psycopg hands names over as bytes here, and plpgsql
            # came out as b'plpgsql', "needed" from an installation that does not exist (exit 3)
            from restorecheck.engines.pg_needs import needs_of_database

            assert needs_of_database(conn).extensions == ()
        result = pipeline.backup(ref, tmp_path / "out", pipeline.BackupOptions(format="custom"))
        copy = ref.with_dbname(f"{ref.dbname}_copy")
        execute(pg_server.admin, f'CREATE DATABASE "{copy.dbname}" TEMPLATE "{ref.dbname}"')
        try:
            compared = pipeline.compare(url(ref), url(copy))
        finally:
            execute(pg_server.admin, f'DROP DATABASE "{copy.dbname}"')
    assert compared.verdict == "pass", [f.message for f in compared.findings]
    report = pipeline.verify(result.artifact.path, restore=RestoreOptions(target="local"))
    assert report.verdict == "pass", [f.message for f in report.findings]
    assert {t.name: t.rows_restored for t in report.tables} == {"public.caf\xe9": 100}
