"""A varchar column's CHECK (c IN (...)) and a view with such an IN list (found on MusicBrainz's schema).

PostgreSQL deparses the source's constraint as ``(c)::text = ANY ((ARRAY['a'::character varying,
...])::text[])``; pg_dump writes that text, and the restored server parses it into a different tree,
deparsed as ``(c)::text = ANY (ARRAY[('a'::character varying)::text, ...])``. Same constraint, other
text. Frameworks emit this pattern for every "choices" column (Django, Rails enums as varchar), so it
is common. restorecheck parses the reference's text again on the restored server (engines/pg_deparse.py)
and compares what that gives: these tests prove the faithful backup passes on each major and across
majors, a real change stays caught, and a hostile reference text runs nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from restorecheck import pipeline
from restorecheck.dburl import PostgresRef
from restorecheck.engines import pg_deparse
from restorecheck.engines.base import BackupOptions, RestoreOptions
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute, url

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TABLE item (id int PRIMARY KEY, kind varchar(10) NOT NULL CHECK (kind IN ('book', 'disc')),
                   shelf varchar(5) DEFAULT 'a'::varchar || 'b');
CREATE VIEW books AS SELECT id FROM item WHERE kind IN ('book', 'ebook');
CREATE MATERIALIZED VIEW discs AS SELECT i.id, j.id AS other FROM item i JOIN item j ON j.id = i.id
  WHERE i.kind IN ('disc', 'vinyl');
CREATE DOMAIN size AS varchar(5) CHECK (VALUE IN ('s', 'm', 'l'));
CREATE TABLE shirt (id int PRIMARY KEY, s size);
INSERT INTO item VALUES (1, 'book'), (2, 'disc');
"""


def schema_errors(report: Any) -> list[tuple[str, str]]:
    return sorted((f.check, f.message) for f in report.errors)


def test_varchar_in_list_survives_a_drill(fresh_db_any: PostgresRef) -> None:
    execute(fresh_db_any, SCHEMA)
    report = pipeline.drill(fresh_db_any)
    assert schema_errors(report) == []
    reparsed = report.extra["definitions_reparsed"]
    assert {"public.item.constraints.item_kind_check.definition", "public.books", "public.discs",
            "public.size.constraints.size_check.definition"} <= set(reparsed["equivalent"]), reparsed


def test_a_changed_in_list_is_still_caught(fresh_db: PostgresRef, tmp_path: Path) -> None:
    """Whatever the fix, a real change of the list must stay a schema error."""
    execute(fresh_db, SCHEMA)
    manifest = tmp_path / "before.manifest.json"
    pipeline.snapshot(fresh_db).save(manifest)
    execute(fresh_db, "ALTER TABLE item DROP CONSTRAINT item_kind_check, "
                      "ADD CONSTRAINT item_kind_check CHECK (kind IN ('book', 'disc', 'tape'))")
    report = pipeline.compare(str(manifest), url(fresh_db))
    assert any(f.check == "schema" and "item_kind_check" in f.message for f in report.errors)


def test_a_changed_in_list_is_caught_after_a_restore(fresh_db: PostgresRef, tmp_path: Path) -> None:
    """The round trip runs on the restored copy; a list changed there (the backup holds another
    constraint and view than the reference) round-trips to another text: still schema errors."""
    execute(fresh_db, SCHEMA)
    manifest = pipeline.snapshot(fresh_db)
    execute(fresh_db, "ALTER TABLE item DROP CONSTRAINT item_kind_check, "
                      "ADD CONSTRAINT item_kind_check CHECK (kind IN ('book', 'disc', 'tape'));"
                      "CREATE OR REPLACE VIEW books AS SELECT id FROM item WHERE kind IN ('book', 'comic')")
    made = pipeline.backup(fresh_db, tmp_path, BackupOptions(format="custom", name="changed"))
    report = pipeline.verify(made.artifact.path, manifest=manifest)
    objects = {f.object for f in report.errors if f.check == "schema"}
    assert objects == {"public.item", "public.books"}, schema_errors(report)
    assert "public.size.constraints.size_check.definition" in report.extra["definitions_reparsed"]["equivalent"]


@pytest.mark.slow
def test_cross_major_15_to_18_does_not_false_alarm(pg15: PgServer, pg18: PgServer) -> None:
    assert pg18.tools is not None
    with pg15.fresh_database() as src:
        execute(src, SCHEMA)
        report = pipeline.drill(src, pg_bin=str(pg18.tools.bindir))
    assert report.extra["restore"]["server_version"].startswith("18")
    assert schema_errors(report) == []


@pytest.mark.slow
def test_on_a_server_target_the_round_trip_runs_as_the_restore_role(fresh_db: PostgresRef, pg18: PgServer,
                                                                    tmp_path: Path) -> None:
    from tests.integration.test_server_target_hostile import url_of

    # the objects belong to a non-superuser role, as on a real source (a superuser's objects cannot
    # be restored by the unprivileged restore role)
    execute(fresh_db, "DROP ROLE IF EXISTS rc_varchar_owner; CREATE ROLE rc_varchar_owner NOLOGIN;"
                      "ALTER SCHEMA public OWNER TO rc_varchar_owner")
    try:
        execute(fresh_db, "SET ROLE rc_varchar_owner;" + SCHEMA)
        made = pipeline.backup(fresh_db, tmp_path, BackupOptions(format="custom", name="s"))
    finally:
        execute(fresh_db, "ALTER SCHEMA public OWNER TO pg_database_owner; DROP OWNED BY rc_varchar_owner;"
                          "DROP ROLE rc_varchar_owner")
    report = pipeline.verify(made.artifact.path, restore=RestoreOptions(target=url_of(pg18)))
    assert report.extra["restore"]["restored_as"].startswith("unprivileged role")
    assert schema_errors(report) == [] and "public.books" in report.extra["definitions_reparsed"]["equivalent"]
    # restoring as the URL's superuser (--trust-backup): no round trip runs as a superuser there
    trusted = pipeline.verify(made.artifact.path, restore=RestoreOptions(target=url_of(pg18), trust_backup=True))
    assert "superuser" in trusted.extra["definitions_reparsed"]["skipped"]
    assert {f.object for f in trusted.errors} == {"public.item", "public.books", "public.discs", "public.size"}


# --- a hostile reference text ---------------------------------------------------------------------

HOSTILE_SETUP = """
CREATE TABLE x (id int PRIMARY KEY, v int CHECK (v > 0) DEFAULT 1);
CREATE SEQUENCE side;
CREATE VIEW vx AS SELECT id FROM x;
CREATE FUNCTION evil() RETURNS boolean LANGUAGE sql AS 'SELECT nextval(''side'') > 0';
CREATE FUNCTION evil_imm() RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT nextval(''side'')::int';
INSERT INTO x VALUES (1, 1), (2, 2);
"""

HOSTILE_CHECKS = [
    "CHECK (true) ; DROP TABLE x; --",
    "CHECK ((true)); DROP TABLE x",
    "CHECK (true)) NOT VALID, DROP COLUMN v, ADD CHECK ((true)",
    "CHECK ((v > 0)) NOT VALID, VALIDATE CONSTRAINT x_v_check",
    "CHECK (public.evil())",  # only parsed: NOT VALID, no scan
    "CHECK ((v > public.evil_imm()))",
    "CHECK ((v > 0) /* ) , DROP COLUMN v, ADD CHECK ( */)",
    "CHECK ((v > 0) -- ) , DROP COLUMN v\n)",
    "CHECK (($$ ) , DROP COLUMN v, ADD CHECK ( $$ = ''))",
    "CHECK ((E'\\' ) , DROP COLUMN v, ADD CHECK ( ' = ''))",
    "CHECK ((U&'\\0027 ) , DROP COLUMN v, ADD CHECK (' = ''))",
]
HOSTILE_DEFAULTS = ["1) , DROP COLUMN v, ALTER COLUMN v SET DEFAULT (1", "public.evil_imm()",
                    "nextval('public.side'::regclass)"]
HOSTILE_VIEWS = ["SELECT 1; DROP TABLE public.x", "SELECT 1 AS a) ; DROP TABLE public.x; --",
                 "WITH d AS (DELETE FROM public.x RETURNING id) SELECT id FROM d",
                 "SELECT public.evil() AS a"]


def _hostile_reference(restored: dict[str, Any]) -> list[dict[str, Any]]:
    """Reference schemas, each with one hostile definition where the restored copy has a plain one."""
    out = []
    for text in HOSTILE_CHECKS:
        ref = json.loads(json.dumps(restored))
        ref["tables"]["public.x"]["constraints"]["x_v_check"]["definition"] = text
        out.append(ref)
    for text in HOSTILE_DEFAULTS:
        ref = json.loads(json.dumps(restored))
        ref["tables"]["public.x"]["columns"]["v"]["default"] = text
        out.append(ref)
    for text in HOSTILE_VIEWS:
        ref = json.loads(json.dumps(restored))
        ref["views"]["public.vx"].update({"definition": "other", "query_text": text})
        out.append(ref)
    return out


def test_a_hostile_reference_text_runs_nothing(fresh_db_any: PostgresRef) -> None:
    execute(fresh_db_any, HOSTILE_SETUP)
    restored = pipeline.snapshot(fresh_db_any).schema
    before = execute(fresh_db_any, "SELECT last_value, is_called FROM side")
    for reference in _hostile_reference(dict(restored)):
        settled = pg_deparse.settle(reference, restored, pg_deparse.connector(fresh_db_any), local=True)
        assert settled.tried == 1 and settled.equivalent == [], settled.info()
    # nothing was dropped, changed or called (a sequence is not rolled back: evil() never ran)
    assert execute(fresh_db_any, "SELECT last_value, is_called FROM side") == before
    assert execute(fresh_db_any, "SELECT count(*) FROM x") == [(2,)]
    assert pipeline.snapshot(fresh_db_any).schema == restored


def test_the_extended_protocol_refuses_a_second_statement(fresh_db: PostgresRef) -> None:
    """The second line of defence if the lexical check were ever wrong: one statement per round trip."""
    execute(fresh_db, HOSTILE_SETUP)
    conn = pg_deparse.connector(fresh_db)()
    try:
        with pytest.raises(psycopg.errors.SyntaxError, match="multiple commands"):
            conn.execute("SELECT 1; DROP TABLE public.x", binary=True)
    finally:
        conn.close()
    assert execute(fresh_db, "SELECT count(*) FROM x") == [(2,)]


def test_a_valid_equivalent_text_is_settled_and_nothing_stays(fresh_db: PostgresRef) -> None:
    """The round trip of an honest text: settled, and rolled back (no constraint or view left)."""
    execute(fresh_db, SCHEMA)
    reference = pipeline.snapshot(fresh_db).schema
    restored = json.loads(json.dumps(reference))  # as a restored copy prints it
    restored["tables"]["public.item"]["constraints"]["item_kind_check"]["definition"] = (
        "CHECK (((kind)::text = ANY (ARRAY[('book'::character varying)::text, ('disc'::character varying)::text])))")
    settled = pg_deparse.settle(reference, restored, pg_deparse.connector(fresh_db), local=True)
    assert settled.equivalent == ["public.item.constraints.item_kind_check.definition"]
    assert settled.schema["tables"]["public.item"] == reference["tables"]["public.item"]
    assert pipeline.snapshot(fresh_db).schema == reference
