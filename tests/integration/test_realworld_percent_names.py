"""Schema, table and column names holding ``%s``, ``%(x)s`` and braces.

psycopg reads placeholders anywhere in a query's text, quoted identifiers included, so every
checksum query of such a table failed ("positional and named placeholders cannot be mixed"); the
table was then unreadable on both sides and silently "not compared": a lost row went unnoticed.
"""

from __future__ import annotations

import pytest

from restorecheck import pipeline
from restorecheck.engines.base import FingerprintOptions
from restorecheck.engines.pg_session import _double_quoted_percents
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute, url

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE SCHEMA "we{ird}%s";
CREATE TABLE "we{ird}%s"."pct%s{0}" ("a%b" int PRIMARY KEY, "{x}" text, "%(name)s" int);
INSERT INTO "we{ird}%s"."pct%s{0}" SELECT g, 'v', g FROM generate_series(1, 300) g;
"""


@pytest.mark.parametrize("range_rows", [100_000, 50], ids=["whole-table", "key-ranges"])
def test_tables_with_percent_names_are_compared(pg_server: PgServer, range_rows: int) -> None:
    with pg_server.fresh_database() as ref:
        execute(ref, SCHEMA)
        copy = ref.with_dbname(f"{ref.dbname}_copy")
        execute(pg_server.admin, f'CREATE DATABASE "{copy.dbname}" TEMPLATE "{ref.dbname}"')
        try:
            options = FingerprintOptions(range_rows=range_rows)
            clean = pipeline.compare(url(ref), url(copy), options=options)
            execute(copy, 'DELETE FROM "we{ird}%s"."pct%s{0}" WHERE "a%b" = 77')
            damaged = pipeline.compare(url(ref), url(copy), options=options)
        finally:
            execute(pg_server.admin, f'DROP DATABASE "{copy.dbname}"')
    assert clean.verdict == "pass", [f.message for f in clean.findings]
    assert [t.rows_restored for t in clean.tables] == [300]
    assert damaged.verdict == "fail"
    assert [(f.check, f.object) for f in damaged.findings if f.severity == "error"] == [
        ("row_count", "we{ird}%s.pct%s{0}")]


def test_percents_are_doubled_only_inside_quotes() -> None:
    text = """SELECT "a%b", 'x%s''%y' FROM "s""%s" WHERE k >= %s::int AND k < %s::int"""
    assert _double_quoted_percents(text) == (
        """SELECT "a%%b", 'x%%s''%%y' FROM "s""%%s" WHERE k >= %s::int AND k < %s::int""")
