"""Database-level properties are part of the backup and of the comparison (issue 10, item 5).

A source with ``ALTER DATABASE ... SET search_path`` and ``SET timezone``, ``ALTER ROLE r IN
DATABASE d SET work_mem``, a comment, a REVOKE from PUBLIC and a GRANT, a connection limit and an
owner of its own: ``restorecheck backup`` in every format carries them and verify finds them all
restored; an outside plain dump without ``--create`` gets one finding per lost property; an altered
property is caught; hostile property statements are refused or neutralised; an old manifest without
the new field still verifies.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from restorecheck import pipeline
from restorecheck.dburl import PostgresRef
from restorecheck.engines.base import BackupOptions, RestoreOptions
from restorecheck.model import Manifest, Report
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute

pytestmark = pytest.mark.postgres

APP, READER = "rc_dbp_app", "rc_dbp_reader"


def _setup(server: PgServer, db: PostgresRef) -> None:
    name = db.dbname
    for role in (APP, READER):
        if not execute(server.admin, "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)):
            execute(server.admin, f"CREATE ROLE {role} NOLOGIN")
    execute(server.admin, f"""
        ALTER DATABASE {name} SET search_path = app, public;
        ALTER DATABASE {name} SET timezone = 'Europe/Paris';
        ALTER ROLE {APP} IN DATABASE {name} SET work_mem = '8MB';
        COMMENT ON DATABASE {name} IS 'the shop''s database';
        REVOKE CONNECT, TEMPORARY ON DATABASE {name} FROM PUBLIC;
        GRANT CONNECT ON DATABASE {name} TO {READER};
        ALTER DATABASE {name} CONNECTION LIMIT 42;
        ALTER DATABASE {name} OWNER TO {APP};
    """)
    execute(db, "CREATE SCHEMA app; CREATE TABLE app.t (id int PRIMARY KEY, at timestamptz);"
                "INSERT INTO app.t VALUES (1, '2024-03-31 01:30:00+00'), (2, NULL)")


@pytest.fixture
def source(pg_any: PgServer) -> Iterator[tuple[PgServer, PostgresRef]]:
    with pg_any.fresh_database() as db:
        _setup(pg_any, db)
        yield pg_any, db


@pytest.fixture
def source18(pg18: PgServer) -> Iterator[tuple[PgServer, PostgresRef]]:
    with pg18.fresh_database() as db:
        _setup(pg18, db)
        yield pg18, db


def database_findings(report: Report) -> list[tuple[str, str]]:
    return [(f.severity, f.message) for f in report.findings if f.check == "database"]


def problems(report: Report) -> list[tuple[str, str, str]]:
    return [(f.check, f.severity, f.message) for f in report.findings if f.severity != "info"]


def pg_dump(server: PgServer, source: PostgresRef, out: Path, *args: str) -> Path:
    assert server.tools is not None
    subprocess.run([str(server.tools.tool("pg_dump")), *args, "-f", str(out)],
                   env={**os.environ, **source.child_env()}, check=True, capture_output=True)
    return out


@pytest.mark.parametrize("fmt", ["custom", "directory", "tar", "plain"])
def test_backup_carries_the_properties_in_every_format(source: tuple[PgServer, PostgresRef], tmp_path: Path,
                                                      fmt: str) -> None:
    _server, db = source
    result = pipeline.backup(db, tmp_path, options=BackupOptions(format=fmt))
    artifact, manifest = result.artifact, result.manifest
    props = manifest.database_properties
    assert props is not None
    assert props["settings"] == {"search_path": "app, public", "TimeZone": "Europe/Paris"}
    assert props["role_settings"] == {APP: {"work_mem": "8MB"}}
    assert props["comment"] == "the shop's database" and props["connection_limit"] == 42
    assert props["owner"] == APP and props["tablespace"] == "pg_default"
    assert f"{READER}=CONNECT" in props["privileges"] and "PUBLIC=CONNECT" not in props["privileges"]
    report = pipeline.verify(artifact.path, restore=RestoreOptions(target="local"))  # the manifest beside it
    assert report.reference == "manifest"
    assert report.verdict == "pass", problems(report)
    assert database_findings(report) == []
    got = report.extra["database_properties"]
    assert got["settings"] == props["settings"] and got["role_settings"] == props["role_settings"]
    assert got["comment"] == props["comment"] and got["privileges"] == props["privileges"]
    assert "search_path" in got["applied"] and f"{APP}: work_mem" in got["applied"]


def test_outside_plain_dump_without_create_names_each_lost_property(source18: tuple[PgServer, PostgresRef],
                                                                    tmp_path: Path) -> None:
    server, db = source18
    dump = pg_dump(server, db, tmp_path / "outside.sql")  # no --create
    report = pipeline.verify(dump, against=db, restore=RestoreOptions(target="local"))
    assert report.verdict == "fail"
    found = database_findings(report)
    text = "\n".join(m for _, m in found)
    assert ("error", "database setting search_path=app, public was not restored") in \
        [(s, m.split(";")[0]) for s, m in found]
    assert "database setting TimeZone=Europe/Paris was not restored" in text
    assert f"setting of role {APP} in the database (ALTER ROLE ... IN DATABASE) work_mem=8MB was not restored" in text
    assert 'database comment "the shop\'s database" was not restored' in text
    assert "database connection limit 42 was not restored" in text
    assert f"database owner {APP} was not restored" in text
    assert "database privileges differ" in text and f"{READER}=CONNECT" in text
    assert all("--create" in m for _, m in found)
    severity = {f.details["property"]: f.severity for f in report.findings if f.check == "database"}
    assert severity == {"settings": "error", "role_settings": "error", "privileges": "error",
                        "owner": "warning", "connection_limit": "warning", "comment": "info"}
    # the data itself is fine: only the properties are findings
    assert {f.check for f in report.errors} == {"database"}


def test_plain_dump_with_create_by_pg_dump_itself_passes(source18: tuple[PgServer, PostgresRef],
                                                         tmp_path: Path) -> None:
    server, db = source18
    dump = pg_dump(server, db, tmp_path / "created.sql", "--create")
    report = pipeline.verify(dump, against=db, restore=RestoreOptions(target="local"))
    assert report.verdict == "pass", problems(report)
    assert database_findings(report) == []


def test_a_changed_setting_in_a_plain_backup_is_caught(source18: tuple[PgServer, PostgresRef],
                                                       tmp_path: Path) -> None:
    _server, db = source18
    artifact = pipeline.backup(db, tmp_path, options=BackupOptions(format="plain")).artifact
    path = Path(artifact.path)
    text = path.read_text()
    assert "SET search_path TO 'app', 'public';" in text
    path.write_text(text.replace("SET search_path TO 'app', 'public';", "SET search_path TO 'public';"))
    report = pipeline.verify(path, against=db, restore=RestoreOptions(target="local"))
    assert report.verdict == "fail"
    assert ("error", "database setting search_path: app, public -> public") in database_findings(report)


def test_a_changed_setting_in_a_custom_archive_is_caught(source18: tuple[PgServer, PostgresRef],
                                                         tmp_path: Path) -> None:
    _server, db = source18
    artifact = pipeline.backup(db, tmp_path, options=BackupOptions(format="custom")).artifact
    path = Path(artifact.path)
    data = path.read_bytes()
    assert data.count(b"'Europe/Paris'") == 1  # the TOC's definitions are not compressed
    path.write_bytes(data.replace(b"'Europe/Paris'", b"'Europe/Malta'"))
    report = pipeline.verify(path, against=db, restore=RestoreOptions(target="local"))
    assert report.verdict == "fail"
    assert ("error", "database setting TimeZone: Europe/Paris -> Europe/Malta") in database_findings(report)


def test_an_old_manifest_without_the_properties_still_verifies(source18: tuple[PgServer, PostgresRef],
                                                               tmp_path: Path) -> None:
    _server, db = source18
    result = pipeline.backup(db, tmp_path, options=BackupOptions(format="custom"))
    artifact, _manifest = result.artifact, result.manifest
    path = next(tmp_path.glob("*.manifest.json"))
    data = json.loads(path.read_text())
    del data["database_properties"]
    path.write_text(json.dumps(data))
    old = Manifest.load(path)
    assert old.database_properties is None  # absent: not recorded, never "none"
    report = pipeline.verify(artifact.path, manifest=path, restore=RestoreOptions(target="local"))
    assert report.verdict == "pass", problems(report)
    # nothing to compare with: the report says what the backup carries
    [info] = [f for f in report.findings if f.check == "database"]
    assert info.severity == "info" and "search_path=app, public" in info.message


# --- hostile property statements (plain dumps: the text is the attacker's) -----------------------

HEAD = """--
-- PostgreSQL database dump
--

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
CREATE DATABASE rc_src WITH TEMPLATE = template0 ENCODING = 'UTF8';
\\connect rc_src
"""
TAIL = """
CREATE TABLE public.t (id integer PRIMARY KEY);
COPY public.t (id) FROM stdin;
1
\\.

--
-- PostgreSQL database dump complete
--
"""


def hostile(tmp_path: Path, statements: str) -> Path:
    path = tmp_path / "hostile.sql"
    path.write_text(HEAD + statements + "\n" + TAIL)
    return path


def verify_alone(path: Path, **kw: Any) -> Report:
    return pipeline.verify(path, restore=RestoreOptions(target=kw.pop("target", "local"), **kw))


def refused(report: Report) -> list[tuple[str, str]]:
    return [(f.severity, f.message) for f in report.findings if f.details.get("refused")]


@pytest.mark.parametrize("setting", ["session_preload_libraries", "local_preload_libraries", "role"])
def test_settings_that_reach_every_session_are_not_applied(pg18: PgServer, tmp_path: Path, setting: str) -> None:
    report = verify_alone(hostile(tmp_path, f"ALTER DATABASE rc_src SET {setting} TO 'rc_no_such_thing';"))
    assert [s for s, _ in refused(report)] == ["warning"], report.findings
    got = report.extra["database_properties"]
    assert setting not in got["applied"]
    assert report.tables and report.tables[0].rows_restored == 1  # restorecheck's own sessions were not hurt


@pytest.mark.parametrize("statement, why", [
    ("ALTER DATABASE rc_src RENAME TO rc_renamed;", "rename"),
    ("ALTER DATABASE rc_src SET TABLESPACE pg_global;", "set tablespace"),
    ("ALTER DATABASE postgres SET work_mem TO '1MB';", "names another database"),
    ("ALTER ROLE CURRENT_USER IN DATABASE postgres SET work_mem TO '1MB';", "names another database"),
    ("GRANT ALL ON DATABASE postgres TO PUBLIC;", "names another database"),
    ("COMMENT ON DATABASE rc_src IS 'x'; DROP TABLE public.t;", "not a statement pg_dump writes"),
    ("ALTER DATABASE rc_src SET work_mem TO '1MB'; SELECT pg_sleep(0);", ""),
])
def test_statements_pg_dump_never_writes_are_refused(pg18: PgServer, tmp_path: Path, statement: str,
                                                     why: str) -> None:
    before = execute(pg18.admin, "SELECT d.datname, (SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0), d.datacl::text FROM pg_database d ORDER BY 1")
    report = verify_alone(hostile(tmp_path, statement))
    if why:
        assert [s for s, _ in refused(report)] == ["error"], report.findings
        assert why in refused(report)[0][1] or why.split()[0] in refused(report)[0][1].lower()
        assert report.verdict == "fail"
    assert report.tables and report.tables[0].rows_restored == 1  # the table the smuggled DROP named is there
    after = execute(pg18.admin, "SELECT d.datname, (SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0), d.datacl::text FROM pg_database d ORDER BY 1")
    assert [r for r in after if r[0] == "postgres"] == [r for r in before if r[0] == "postgres"]


def test_a_comment_cannot_smuggle_a_statement(pg18: PgServer, tmp_path: Path) -> None:
    value = "x'; DROP TABLE public.t; --"
    report = verify_alone(hostile(tmp_path, "COMMENT ON DATABASE rc_src IS 'x''; DROP TABLE public.t; --';"))
    assert refused(report) == []
    assert report.extra["database_properties"]["comment"] == value  # applied as a literal, nothing else
    assert report.tables[0].rows_restored == 1


def test_owner_is_compared_never_applied(pg18: PgServer, tmp_path: Path) -> None:
    """OWNER TO is carried (compared), never run: the scratch database keeps its identity."""
    report = verify_alone(hostile(tmp_path, "ALTER DATABASE rc_src OWNER TO rc_dbp_evil_owner;"))
    assert report.verdict == "pass", problems(report)
    got = report.extra["database_properties"]
    assert got["owner"] == "rc_dbp_evil_owner" and "owner" not in got["applied"]


def _server_url(server: PgServer) -> str:
    p = server.admin.params
    return f"postgresql://{p['user']}:{server.admin.password}@/postgres?host={p['host']}&port={p['port']}"


def test_server_target_applies_as_the_unprivileged_restore_role(pg15: PgServer, pg18: PgServer,
                                                                tmp_path: Path) -> None:
    """On a server target the properties are applied as the restore role: a superuser-only setting
    and another role's setting are not applied (warnings naming why), everything else is."""
    with pg15.fresh_database() as db:
        _setup(pg15, db)
        execute(db, f"ALTER SCHEMA app OWNER TO {APP}; ALTER TABLE app.t OWNER TO {APP}")
        execute(pg15.admin, f"ALTER DATABASE {db.dbname} SET log_statement = 'all'")
        artifact = pipeline.backup(db, tmp_path, options=BackupOptions(format="custom")).artifact
    server = pg18
    report = pipeline.verify(artifact.path, restore=RestoreOptions(target=_server_url(server)))
    assert report.verdict == "pass", problems(report)
    warned = {f.details["property"]: f.details["error"] for f in report.findings
              if f.check == "database" and f.details.get("not_applied")}
    assert set(warned) == {"log_statement", f"{APP}: work_mem"}, warned
    assert all("--trust-backup" in f.message for f in report.findings if f.details.get("not_applied"))
    got = report.extra["database_properties"]
    assert {"search_path", "TimeZone", "comment", "connection limit"} <= set(got["applied"])
    # the scratch database is gone, and with it its settings
    assert execute(server.admin, "SELECT count(*) FROM pg_db_role_setting s WHERE NOT EXISTS "
                                 "(SELECT 1 FROM pg_database d WHERE d.oid = s.setdatabase)")[0][0] == 0
