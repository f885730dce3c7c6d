"""A source with an event trigger that logs DDL into a table, and a materialized view (PITFALLS D5).

pg_dump recreates event triggers before its ``REFRESH MATERIALIZED VIEW`` step, so a plain
pg_restore (or psql) fires the ``ddl_command_end`` trigger for the refresh and the restored log
table gains a row the source never had. The backup is faithful; verify and drill used to judge
it failed (row_count on the log table). Restores now run with ``session_replication_role =
replica`` when the restoring role is a superuser.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from restorecheck import pipeline
from restorecheck.engines.base import RestoreOptions
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TABLE ddl_log (id serial PRIMARY KEY, tag text NOT NULL, at timestamptz NOT NULL DEFAULT now());
CREATE FUNCTION log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO public.ddl_log (tag) VALUES (tg_tag); END $$;
CREATE EVENT TRIGGER et_log ON ddl_command_end EXECUTE FUNCTION log_ddl();
CREATE TABLE orders (id int PRIMARY KEY, region text NOT NULL, amount numeric NOT NULL);
INSERT INTO orders SELECT g, (ARRAY['eu', 'us', 'asia'])[g % 3 + 1], g * 1.5 FROM generate_series(1, 300) g;
CREATE MATERIALIZED VIEW region_totals AS SELECT region, sum(amount) AS total FROM orders GROUP BY region;
"""


@pytest.mark.parametrize("fmt", ["custom", "plain"])
def test_event_trigger_logging_ddl_does_not_fail_a_faithful_backup(
    pg_server: PgServer, tmp_path: Path, fmt: str
) -> None:
    with pg_server.fresh_database() as ref:
        execute(ref, SCHEMA)
        logged = execute(ref, "SELECT count(*) FROM ddl_log")[0][0]
        assert logged == 2  # the trigger works at the source (CREATE TABLE, CREATE MATERIALIZED VIEW)
        result = pipeline.backup(ref, tmp_path / "out", pipeline.BackupOptions(format=fmt))
    report = pipeline.verify(result.artifact.path, restore=RestoreOptions(target="local"))
    assert report.verdict == "pass", [f.message for f in report.findings]
    assert not [f for f in report.findings if f.severity == "error"]
    assert report.extra["restore"]["event_triggers_quiet"] is True
    rows = {t.name: t.rows_restored for t in report.tables}
    assert rows["public.ddl_log"] == logged
    assert rows["public.region_totals"] == 3


def test_drill_of_a_source_with_a_ddl_logging_event_trigger_passes(pg_server: PgServer) -> None:
    with pg_server.fresh_database() as ref:
        execute(ref, SCHEMA)
        report = pipeline.drill(ref, restore=RestoreOptions(target="local"))
    assert report.verdict == "pass", [f.message for f in report.findings]


@pytest.mark.parametrize("fmt", ["custom", "plain"])
def test_objects_only_a_superuser_may_own_owned_by_a_second_superuser(pg_server: PgServer, tmp_path: Path,
                                                                       fmt: str) -> None:
    """An event trigger and a foreign-data wrapper owned by the source's second superuser ("admin"):
    the throwaway cluster made admin a plain NOLOGIN role, ALTER ... OWNER TO admin was refused, and
    a faithful backup failed (restore errors, and the owners compared as postgres)."""
    execute(pg_server.admin, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rc_admin2') "
                             "THEN CREATE ROLE rc_admin2 SUPERUSER NOLOGIN; END IF; END $$")
    with pg_server.fresh_database() as ref:
        execute(ref, """
            CREATE FUNCTION noop() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
            CREATE EVENT TRIGGER et_noop ON ddl_command_start EXECUTE FUNCTION noop();
            ALTER EVENT TRIGGER et_noop OWNER TO rc_admin2;
            CREATE FOREIGN DATA WRAPPER rc_wrap;
            ALTER FOREIGN DATA WRAPPER rc_wrap OWNER TO rc_admin2;
            CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
        """)
        result = pipeline.backup(ref, tmp_path / "out", pipeline.BackupOptions(format=fmt))
        try:
            report = pipeline.verify(result.artifact.path, restore=RestoreOptions(target="local"))
        finally:
            execute(ref, "DROP EVENT TRIGGER et_noop; DROP FOREIGN DATA WRAPPER rc_wrap")
    assert report.verdict == "pass", [f.message for f in report.findings]
    assert report.extra["restore"]["roles_created_superuser"] == ["rc_admin2"]
