"""Server targets are not a door (issue 9, deliverable 4; README, threat model).

A PostgreSQL 18 fixture server plays the user's existing server, reached by its admin (superuser)
URL over TCP. Hostile dumps, plain and custom, try to change the server outside the scratch
database: create SUPERUSER/LOGIN roles, ALTER SYSTEM, run programs and touch files server-side,
switch to, write into, drop or rename a neighbour database, grant themselves predefined roles,
replace the scratch database. Each test asserts that nothing outside the scratch database changed
(neighbour database and its rows, pg_roles and memberships, databases with their oids and owners,
postgresql.auto.conf, no file written) and that the verdict is truthful; the seed dataset still
passes; and the scratch database being dropped, replaced or given away is an error on every target.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from restorecheck import pipeline
from restorecheck.cli import run_cli
from restorecheck.dburl import PostgresRef
from restorecheck.engines.base import BackupOptions, RestoreOptions
from restorecheck.errors import ScratchDatabaseReplacedError
from restorecheck.model import Report
from restorecheck.provisioners.base import PgServer, check_database_identity, database_identity
from restorecheck.runner import Command, Completed, current_runner, use_runner
from tests.conftest import execute
from tests.integration import pg5_helpers as h

pytestmark = pytest.mark.postgres

NEIGHBOUR = "rc_neighbour"


def url_of(server: PgServer) -> str:
    """The fixture server's admin URL: over TCP where it listens there, else its Unix socket (in the
    sandbox the throwaway server has no network)."""
    tcp = server.info.get("tcp")
    if tcp is not None:
        return f"postgresql://{tcp.params['user']}:{tcp.password}@127.0.0.1:{tcp.params['port']}/postgres"
    p = server.admin.params
    return f"postgresql://{p['user']}:{server.admin.password}@/postgres?host={p['host']}&port={p['port']}"


@dataclasses.dataclass
class Target:
    server: PgServer
    url: str
    marker: Path  # a file the hostile dumps try to create server-side


@pytest.fixture(scope="module")
def target(pg18: PgServer) -> Iterator[Target]:
    execute(pg18.admin, f"DROP DATABASE IF EXISTS {NEIGHBOUR}")
    execute(pg18.admin, f"CREATE DATABASE {NEIGHBOUR}")
    execute(pg18.admin.with_dbname(NEIGHBOUR),
            "CREATE TABLE keep_me (x int PRIMARY KEY); INSERT INTO keep_me VALUES (1), (2)")
    try:
        yield Target(pg18, url_of(pg18), Path(f"/tmp/rc-hostile-{secrets.token_hex(6)}"))
    finally:
        execute(pg18.admin, f"DROP DATABASE IF EXISTS {NEIGHBOUR} WITH (FORCE)")


def server_state(t: Target) -> dict[str, Any]:
    """Everything on the server outside a scratch database that a hostile dump could change."""
    admin = t.server.admin
    datadir = execute(admin, "SELECT current_setting('data_directory')")[0][0]
    auto_conf = Path(str(datadir)) / "postgresql.auto.conf"
    return {
        "roles": execute(admin, "SELECT rolname, rolsuper, rolcanlogin, rolcreaterole, rolcreatedb, "
                                "rolreplication, rolbypassrls, rolpassword IS NOT NULL "
                                "FROM pg_authid ORDER BY rolname"),
        "members": execute(admin, "SELECT roleid::regrole::text, member::regrole::text FROM pg_auth_members "
                                  "ORDER BY 1, 2"),
        "databases": execute(admin, "SELECT datname, oid, datdba::regrole::text, datistemplate, datallowconn, "
                                    "datacl::text FROM pg_database ORDER BY datname"),
        "settings": execute(admin, "SELECT setdatabase, setrole, setconfig::text FROM pg_db_role_setting "
                                   "ORDER BY 1, 2"),
        "parameter_acl": execute(admin, "SELECT parname, paracl::text FROM pg_parameter_acl ORDER BY 1"),
        "auto_conf": hashlib.sha256(auto_conf.read_bytes()).hexdigest(),
        "neighbour": execute(admin.with_dbname(NEIGHBOUR),
                             "SELECT (SELECT array_agg(x ORDER BY x) FROM keep_me), "
                             "(SELECT array_agg(relname::text ORDER BY relname) FROM pg_class c "
                             " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public')"),
        "marker": marker_written(t),
    }


def marker_written(t: Target) -> bool:
    """Whether the server wrote the marker, seen as the server sees its file system (the fixture
    server runs in restorecheck's sandbox, whose /tmp is its own) and on the host."""
    row = execute(t.server.admin, "SELECT (pg_stat_file(%s, true)).size IS NOT NULL", (str(t.marker),))
    return bool(row[0][0]) or t.marker.exists()


def assert_nothing_escaped(t: Target, before: dict[str, Any]) -> None:
    after = server_state(t)
    for key in before:
        assert after[key] == before[key], f"{key} changed on the server target"
    assert not marker_written(t), "a file was written server-side"
    supers = {r[0] for r in execute(t.server.admin, "SELECT rolname FROM pg_roles WHERE rolsuper")}
    assert supers == {"postgres"}
    assert not [r for r in execute(t.server.admin, "SELECT rolname FROM pg_roles WHERE rolname LIKE 'restorecheck%'")]


PLAIN_HEAD = """--
-- PostgreSQL database dump
--
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
CREATE TABLE public.t (id integer PRIMARY KEY);
COPY public.t (id) FROM stdin;
1
2
\\.
"""
PLAIN_TAIL = """
--
-- PostgreSQL database dump complete
--
"""

# (id, SQL the plain dump runs after its data); {marker} is the file it tries to write
PLAIN_ATTACKS = [
    ("create-superuser", "CREATE ROLE rc_evil SUPERUSER LOGIN PASSWORD 'evil';"),
    ("create-login-role", "CREATE ROLE rc_evil LOGIN PASSWORD 'evil';"),
    ("alter-system", "ALTER SYSTEM SET work_mem = '77MB';"),
    ("copy-to-program", "COPY (SELECT 1) TO PROGRAM 'touch {marker}';"),
    ("copy-from-program", "COPY public.t FROM PROGRAM 'touch {marker}; echo 3';"),
    ("copy-to-file", "COPY (SELECT 1) TO '{marker}';"),
    ("read-server-file", "SELECT pg_read_file('/etc/passwd');"),
    ("lo-export", "SELECT lo_export(lo_from_bytea(0, 'x'), '{marker}');"),
    # 'SELECT 1; ' first: restorecheck leaves out the lines of pg_dump -C (CREATE/ALTER/DROP DATABASE,
    # \connect) by their start; a hostile dump hides them behind another statement
    ("drop-neighbour", f"SELECT 1; DROP DATABASE {NEIGHBOUR};"),
    ("rename-neighbour", f"SELECT 1; ALTER DATABASE {NEIGHBOUR} RENAME TO rc_gone;"),
    ("grant-server-program", "GRANT pg_execute_server_program TO CURRENT_USER;"),
    ("set-role-superuser", "SET ROLE postgres;\nCREATE ROLE rc_evil SUPERUSER LOGIN;"),
    ("untrusted-extension", "CREATE EXTENSION IF NOT EXISTS dblink;"),
    ("switch-and-write", f"SELECT 1; \\connect {NEIGHBOUR}\nINSERT INTO keep_me VALUES (666);"),
    ("switch-and-create", f"SELECT 1; \\connect {NEIGHBOUR}\nCREATE TABLE public.evil (x int);"),
    ("create-database", "SELECT 1; CREATE DATABASE rc_evil_db;"),
    # allowed (every role may), but reported: the author could log in as the restore role
    ("own-password", "ALTER ROLE CURRENT_USER PASSWORD 'known';"),
]


def plain_dump(path: Path, attack: str, marker: Path) -> Path:
    path.write_text(PLAIN_HEAD + attack.replace("{marker}", str(marker)) + "\n" + PLAIN_TAIL)
    return path


def verify_on(t: Target, path: Path, **kw: Any) -> Report:
    report = pipeline.verify(path, restore=RestoreOptions(target=t.url, **kw))
    h.validate_report(report)
    return report


@pytest.mark.parametrize("attack", [a for _, a in PLAIN_ATTACKS], ids=[i for i, _ in PLAIN_ATTACKS])
def test_hostile_plain_dump_changes_nothing_on_a_server_target(target: Target, tmp_path: Path,
                                                               attack: str) -> None:
    before = server_state(target)
    report = verify_on(target, plain_dump(tmp_path / "hostile.sql", attack, target.marker))
    assert_nothing_escaped(target, before)
    info = report.extra["restore"]
    assert info["restored_as"].startswith("unprivileged role restorecheck_")
    assert not info.get("database_lines_left_out")
    assert report.verdict == "fail", [(f.check, f.message) for f in report.findings]
    assert "restore_errors" in h.checks(report), report.findings


@pytest.mark.parametrize("where", ["server", "local"])
def test_a_plain_dump_that_drops_the_scratch_database_never_passes(target: Target, tmp_path: Path, where: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's reproduction (once PASS, "0 tables"). With psql's \\restrict the \\connect is
    refused (a restore error: exit 1). Without it: on a server target the restore role may drop the
    database it owns but not create one; on the local target the superuser restore drops and
    recreates it; either way the database is not the one restored into: exit 3, one line."""
    attack = ("SELECT current_database() AS scratch \\gset\nSELECT 1; \\connect postgres\n"
              "SELECT 1; DROP DATABASE :\"scratch\";\nSELECT 1; CREATE DATABASE :\"scratch\";\n"
              "SELECT 1; \\connect :\"scratch\"\nCREATE TABLE public.t (id integer PRIMARY KEY);")
    before = server_state(target)
    code = run_cli(["verify", str(plain_dump(tmp_path / "swap.sql", attack, target.marker)),
                    "--target", target.url if where == "server" else "local", "--no-progress", "-q"])
    err = capsys.readouterr().err
    assert_nothing_escaped(target, before)
    assert code in (1, 3), err
    if code == 3:
        what = "dropped or renamed" if where == "server" else "replaced"
        assert f"{what} the database it was restored into" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_scratch_database_made_a_template_is_still_removed(target: Target, tmp_path: Path) -> None:
    attack = ("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I IS_TEMPLATE true', current_database()); "
              "EXCEPTION WHEN insufficient_privilege THEN NULL; END $$;")
    before = server_state(target)
    verify_on(target, plain_dump(tmp_path / "template.sql", attack, target.marker))
    assert_nothing_escaped(target, before)


# --- custom archives: the attack runs inside the restore's COPY, from a CHECK constraint ------------


@pytest.fixture(scope="module")
def custom_dumps(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory,
                 target: Target) -> dict[str, Path]:
    """One custom archive per attack: a table whose CHECK calls a VOLATILE plpgsql function that
    runs the attack, made harmless while the rows are inserted on the source, hostile in the dump."""
    out = tmp_path_factory.mktemp("hostile-custom")
    dumps = {}
    assert pg_server.tools is not None
    for name, statement in CUSTOM_ATTACKS:
        with pg_server.fresh_database() as ref:
            execute(ref, "CREATE FUNCTION public.evil(x int) RETURNS boolean LANGUAGE plpgsql VOLATILE "
                         "AS $$ BEGIN RETURN true; END $$; "
                         "CREATE TABLE public.t (x int PRIMARY KEY CHECK (public.evil(x))); "
                         "INSERT INTO public.t VALUES (1), (2)")
            body = statement.replace("{marker}", str(target.marker)).replace("'", "''")
            execute(ref, "CREATE OR REPLACE FUNCTION public.evil(x int) RETURNS boolean LANGUAGE plpgsql "
                         f"VOLATILE AS $$ BEGIN EXECUTE '{body}'; RETURN true; END $$")
            path = out / f"{name}.dump"
            subprocess.run([str(pg_server.tools.tool("pg_dump")), "-Fc", "-f", str(path)],
                           env={**os.environ, **ref.child_env()}, check=True)
            dumps[name] = path
    return dumps


CUSTOM_ATTACKS = [
    ("create-superuser", "CREATE ROLE rc_evil SUPERUSER LOGIN PASSWORD 'evil'"),
    ("copy-to-program", "COPY (SELECT 1) TO PROGRAM 'touch {marker}'"),
    ("copy-to-file", "COPY (SELECT 1) TO '{marker}'"),
    ("lo-export", "SELECT lo_export(lo_from_bytea(0, 'x'), '{marker}')"),
    ("read-server-file", "SELECT pg_read_file('/etc/passwd')"),
    ("grant-server-program", "GRANT pg_execute_server_program TO CURRENT_USER"),
    ("rename-neighbour", f"ALTER DATABASE {NEIGHBOUR} RENAME TO rc_gone"),
    ("set-role-superuser", "SET ROLE postgres"),
]


@pytest.mark.parametrize("name", [n for n, _ in CUSTOM_ATTACKS])
def test_hostile_custom_archive_changes_nothing_on_a_server_target(target: Target, custom_dumps: dict[str, Path],
                                                                   name: str) -> None:
    before = server_state(target)
    report = verify_on(target, custom_dumps[name])
    assert_nothing_escaped(target, before)
    assert report.verdict == "fail", [(f.check, f.message) for f in report.findings]
    assert "restore_errors" in h.checks(report)
    assert any("unprivileged role" in f.message and "--trust-backup" in f.message
               for f in report.findings), report.findings


def test_the_same_archive_is_trusted_only_when_told(target: Target, custom_dumps: dict[str, Path]) -> None:
    """--trust-backup restores as the URL's superuser: the hostile function then runs (here: a file
    is written by the server), which is why it is not the default."""
    report = verify_on(target, custom_dumps["copy-to-file"], trust_backup=True)
    try:
        assert report.extra["restore"]["restored_as"] == "the target URL's role"
        assert marker_written(target), [(f.check, f.message) for f in report.findings]
    finally:
        execute(target.server.admin, f"COPY (SELECT 1) TO PROGRAM 'rm -f {target.marker}'")
        subprocess.run(["rm", "-f", str(target.marker)], check=True)


# --- faithful dumps ------------------------------------------------------------------------------


def test_the_seed_dataset_passes_on_a_server_target(pg_server: PgServer, target: Target, tmp_path: Path) -> None:
    """The known dataset, owned by a non-superuser role of the source, restores as the unprivileged
    restore role and passes; only the scratch database and roles made for the run appear, and go."""
    from restorecheck.seed import seed

    execute(pg_server.admin, "DROP ROLE IF EXISTS rc_seeder")
    execute(pg_server.admin, "CREATE ROLE rc_seeder LOGIN CREATEROLE")
    try:
        with pg_server.fresh_database() as ref:
            execute(ref, "ALTER SCHEMA public OWNER TO rc_seeder")
            execute(pg_server.admin, f'ALTER DATABASE "{ref.dbname}" OWNER TO rc_seeder')
            seed(PostgresRef({**ref.params, "user": "rc_seeder"}), scale=1, seed=0)
            result = pipeline.backup(ref, tmp_path, BackupOptions(format="custom", name="seed"))
        before = server_state(target)
        report = pipeline.verify(Path(result.artifact.path), restore=RestoreOptions(target=target.url))
        h.validate_report(report)
        assert report.verdict == "pass", [(f.check, f.message) for f in report.findings]
        info = report.extra["restore"]
        assert info["restored_as"].startswith("unprivileged role restorecheck_")
        assert "rc_seeder" in info["roles_granted"] and not info["roles_not_granted"]
        assert_nothing_escaped(target, before)
    finally:
        execute(pg_server.admin, "DROP ROLE IF EXISTS rc_seeder")


def test_owner_that_is_a_privileged_server_role_is_reported_with_the_fix(target: Target, tmp_path: Path) -> None:
    """A faithful dump whose objects belong to 'postgres' (a superuser on the target): the restore
    role cannot become it, and the finding says why and names --target local / --trust-backup."""
    dump = plain_dump(tmp_path / "owned.sql", "ALTER TABLE public.t OWNER TO postgres;", target.marker)
    before = server_state(target)
    report = verify_on(target, dump)
    assert_nothing_escaped(target, before)
    assert report.verdict == "fail"
    explained = [f for f in report.findings if "unprivileged role" in f.message]
    assert explained and "postgres" in explained[0].message and "--target local" in explained[0].message
    assert explained[0].details["roles_not_granted"] == ["postgres"]
    trusted = verify_on(target, dump, trust_backup=True)
    assert trusted.verdict == "pass", [(f.check, f.message) for f in trusted.findings]


# --- the scratch database dropped, replaced or given away: an error on every target ---------------


def test_identity_check_names_what_happened(pg_server: PgServer) -> None:
    with pg_server.fresh_database() as ref:
        assert ref.dbname is not None
        before = database_identity(pg_server.admin, ref.dbname)
        assert before is not None
        check_database_identity(pg_server.admin, before)  # unchanged: no error
        execute(pg_server.admin, f'DROP DATABASE "{ref.dbname}"')
        with pytest.raises(ScratchDatabaseReplacedError, match="dropped or renamed"):
            check_database_identity(pg_server.admin, before)
        execute(pg_server.admin, f'CREATE DATABASE "{ref.dbname}"')
        with pytest.raises(ScratchDatabaseReplacedError, match="replaced"):
            check_database_identity(pg_server.admin, before)


def test_scratch_database_given_away_on_the_local_target_is_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On --target local the restore runs as superuser: a dump that gives its database to another
    role is caught before anything is judged (exit 3, one line)."""
    attack = ("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rc_taker') THEN "
              "CREATE ROLE rc_taker NOLOGIN; END IF; "
              "EXECUTE format('ALTER DATABASE %I OWNER TO rc_taker', current_database()); END $$;")
    dump = plain_dump(tmp_path / "give.sql", attack, tmp_path / "unused")
    code = run_cli(["verify", str(dump), "--no-progress", "-q"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "gave away the database it was restored into" in err and "owner postgres, now rc_taker" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("where", ["local", "server"])
def test_scratch_database_replaced_during_the_restore_is_an_error(
        where: str, target: Target, tmp_path: Path) -> None:
    """Whatever the means (a superuser dump with dblink, another session): the database the
    backup was restored into is dropped and a new one of the same name made while the restore
    tool runs. Fingerprinting it would judge an empty database: the verdict is an error."""
    real = current_runner()

    class RunThenReplace:  # the restore tool runs, then the database is swapped under restorecheck
        def run(self, cmd: Command) -> Completed:
            res = real.run(cmd)
            if cmd.label.startswith("restore: "):
                dbname = next(a.split("=", 1)[1] for a in cmd.argv if a.startswith("--dbname="))
                env = cmd.env or {}
                admin = target.server.admin if where == "server" else PostgresRef(
                    {"host": env["PGHOST"], "port": env["PGPORT"], "user": env["PGUSER"], "dbname": "postgres"},
                    env.get("PGPASSWORD"))
                with psycopg.connect(admin.conninfo(), autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
                    conn.execute(f'CREATE DATABASE "{dbname}"')
            return res

    dump = plain_dump(tmp_path / "faithful.sql", "", tmp_path / "unused")
    with use_runner(RunThenReplace()), \
            pytest.raises(ScratchDatabaseReplacedError, match="replaced the database it was restored into"):
        pipeline.verify(dump, restore=RestoreOptions(target=target.url if where == "server" else "local"))
    if where == "server":
        # the replacement is not the database restorecheck created: it is left alone, named in a warning
        leftovers = execute(target.server.admin, "SELECT datname FROM pg_database WHERE datname LIKE 'restorecheck%'")
        assert len(leftovers) == 1
        execute(target.server.admin, f'DROP DATABASE "{leftovers[0][0]}"')
        assert not execute(target.server.admin, "SELECT rolname FROM pg_roles WHERE rolname LIKE 'restorecheck%'")


# --- every way out removes the roles and the database ---------------------------------------------


def test_an_interrupted_restore_leaves_no_role_and_no_database(target: Target, tmp_path: Path) -> None:
    real = current_runner()

    class Interrupted:  # Ctrl-C as the restore tool starts
        def run(self, cmd: Command) -> Completed:
            if cmd.label.startswith("restore: "):
                roles = execute(target.server.admin,
                                "SELECT rolname FROM pg_roles WHERE rolname LIKE 'restorecheck%'")
                assert len(roles) == 2  # the restore role and the database's owner role exist while it runs
                raise KeyboardInterrupt
            return real.run(cmd)

    before = server_state(target)
    with use_runner(Interrupted()), pytest.raises(KeyboardInterrupt):
        verify_on(target, plain_dump(tmp_path / "faithful.sql", "", target.marker))
    assert_nothing_escaped(target, before)
    assert not execute(target.server.admin, "SELECT datname FROM pg_database WHERE datname LIKE 'restorecheck%'")


def test_drill_self_test_on_a_server_target_trusts_its_own_dump(target: Target,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """drill with no SOURCE restores the dump it just made of the dataset it just seeded, owned by
    the URL's role: trusted by construction, it passes; nothing is left on the server."""
    before = server_state(target)
    report = pipeline.drill(restore=RestoreOptions(target=target.url))
    assert report.verdict == "pass", [(f.check, f.message) for f in report.findings]
    assert report.extra["restore"]["restored_as"] == "the target URL's role"
    assert_nothing_escaped(target, before)


def test_a_password_from_the_passfile_reaches_the_sandboxed_tools(target: Target, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The SPEC honours ~/.pgpass and PGPASSFILE. restorecheck's own connections found the password
    there, but pg_restore, run in the sandbox with a clean environment, did not: 'no password
    supplied' on every --trust-backup restore to a server whose URL carried no password."""
    user, password = target.server.admin.params["user"], target.server.admin.password
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:{user}:{password}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    url = target.url.replace(f":{password}@", "@")
    assert password not in url
    before = server_state(target)
    report = pipeline.drill(restore=RestoreOptions(target=url))
    assert report.verdict == "pass", [(f.check, f.message) for f in report.findings]
    assert password not in json.dumps(report.to_dict())
    assert_nothing_escaped(target, before)


def test_trust_backup_is_an_option_of_verify_and_drill(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("verify", "drill"):
        assert run_cli([command, "--help"]) == 0
        assert "--trust-backup" in capsys.readouterr().out
