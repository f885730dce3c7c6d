"""A target that can host the dump, on real servers: dumps made here with PostgreSQL 15 (contrib
with uuid-ossp, ICU, libxml) and the embedded 18 (contrib without uuid-ossp, pgvector, no ICU, no
libxml); the needs read from their real pg_dump output; the choice of installation; and exit 3 with
the remedy, never 1, for a dump that nothing here can host."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from restorecheck import pipeline
from restorecheck.engines.base import RestoreOptions
from restorecheck.engines.pg_needs import dump_needs, needs_of_script, schema_lines
from restorecheck.errors import EnvironmentFailure
from restorecheck.pg_hosting import capabilities
from restorecheck.provisioners.base import PgServer
from tests.conftest import EMBEDDED_MAJOR, admin_url, execute, installation_for

pytestmark = pytest.mark.postgres

SCHEMA_15 = """
CREATE EXTENSION "uuid-ossp"; CREATE EXTENSION citext; CREATE EXTENSION hstore; CREATE EXTENSION pg_trgm;
CREATE COLLATION fr (provider = icu, locale = 'fr-FR');
CREATE TABLE t (id uuid PRIMARY KEY DEFAULT uuid_generate_v4(), name citext, h hstore, n text,
                fr text COLLATE fr, de text COLLATE "de-DE-x-icu");
CREATE INDEX ON t USING gin (n gin_trgm_ops);
INSERT INTO t (name, h, n, fr, de) SELECT 'N' || g, 'a=>1', 'x' || g, 'é' || g, 'ß' || g FROM generate_series(1, 20) g;
CREATE TABLE docs (id int PRIMARY KEY, body xml);
INSERT INTO docs VALUES (1, '<a>1</a>'), (2, NULL);
"""
SCHEMA_18 = """
CREATE EXTENSION citext; CREATE EXTENSION hstore; CREATE EXTENSION pg_trgm; CREATE EXTENSION vector;
CREATE TABLE t (id int PRIMARY KEY, name citext, h hstore, n text, e vector(3));
CREATE INDEX ON t USING gin (n gin_trgm_ops);
INSERT INTO t SELECT g, 'N' || g, 'a=>1', 'x' || g, '[1,2,3]' FROM generate_series(1, 20) g;
CREATE TABLE docs (id int PRIMARY KEY, body xml);
"""
# contrib that both majors have: restorable anywhere
SCHEMA_CITEXT = """
CREATE EXTENSION citext;
CREATE TABLE t (id int PRIMARY KEY, name citext);
INSERT INTO t SELECT g, 'N' || g FROM generate_series(1, 20) g;
"""
VECTOR_LINES = ("CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;\n"
                "CREATE TABLE public.emb (id integer, e public.vector(3));\n")


@dataclass
class Dumps:
    dir: Path
    custom15: Path
    plain15: Path
    custom18: Path
    plain18: Path
    citext15: Path  # plain, citext only (both majors can host it)


def _dump(server: PgServer, schema: str, out: Path, fmt: str) -> None:
    assert server.tools is not None
    with server.fresh_database() as db:
        execute(db, schema)
        res = subprocess.run([str(server.tools.tool("pg_dump")), f"-F{fmt}", "-f", str(out), db.dbname or ""],
                             env={**os.environ, **db.child_env()}, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def dumps(pg15: PgServer, pg18: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dumps]:
    d = tmp_path_factory.mktemp("needs")
    os.chmod(d, 0o755)
    out = Dumps(d, d / "n15.dump", d / "n15.sql", d / "n18.dump", d / "n18.sql", d / "citext15.sql")
    _dump(pg15, SCHEMA_15, out.custom15, "c")
    _dump(pg15, SCHEMA_15, out.plain15, "p")
    _dump(pg18, SCHEMA_18, out.custom18, "c")
    _dump(pg18, SCHEMA_18, out.plain18, "p")
    _dump(pg15, SCHEMA_CITEXT, out.citext15, "p")
    yield out


def _with_vector(src: Path, dest: Path) -> Path:
    """A plain dump of a PostgreSQL 15 server that had pgvector (which this machine's 15 lacks):
    the dump of ``src`` with the lines pg_dump writes for a vector extension and column."""
    text = src.read_text()
    anchor = "SET default_table_access_method = heap;\n"
    assert anchor in text
    dest.write_text(text.replace(anchor, anchor + VECTOR_LINES, 1))
    return dest


def archive_text(pg_restore: Path, path: Path) -> Callable[[str], str]:
    """What the engine passes: pg_restore --list / --schema-only of the archive (here unsandboxed)."""
    from restorecheck.engines import pg_dump as pgd
    from restorecheck.runner import run

    def text(kind: str) -> str:
        build = pgd.pg_restore_list_argv if kind == "list" else pgd.pg_restore_schema_argv
        return run(build(pg_restore, path), inherit_env=True).stdout

    return text


def test_needs_read_from_real_dumps(dumps: Dumps) -> None:
    for path, fmt in ((dumps.plain15, "plain"), (dumps.custom15, "custom")):
        n = dump_needs(fmt, path, archive_text(installation_for(15).tool("pg_restore"), path), min_major=15)
        assert n.extensions == ("citext", "hstore", "pg_trgm", "uuid-ossp"), path
        assert n.icu_collations == ("de-DE-x-icu", "fr"), path
        assert n.xml and n.min_major == 15, path
    for path, fmt in ((dumps.plain18, "plain"), (dumps.custom18, "custom")):
        n = dump_needs(fmt, path, archive_text(installation_for(EMBEDDED_MAJOR).tool("pg_restore"), path),
                       min_major=18)
        assert n.extensions == ("citext", "hstore", "pg_trgm", "vector"), path
        assert n.icu_collations == () and n.xml, path
    n = needs_of_script(schema_lines(dumps.citext15))
    assert n.extensions == ("citext",) and n.icu_collations == () and not n.xml


def test_icu_database_of_a_create_dump(pg15: PgServer, tmp_path: Path) -> None:
    """pg_dump -C of an ICU database: noted (preferred), not required (the restore goes into
    restorecheck's own database)."""
    assert pg15.tools is not None
    name = "rc_needs_icu_db"
    execute(pg15.admin, f"DROP DATABASE IF EXISTS {name}")
    execute(pg15.admin, f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                        "LOCALE 'C'")
    try:
        out = tmp_path / "c.sql"
        env = {**os.environ, **pg15.admin.child_env()}
        res = subprocess.run([str(pg15.tools.tool("pg_dump")), "-C", "-f", str(out), name], env=env,
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        n = needs_of_script(schema_lines(out))
        assert n.database_icu and n.icu_collations == ()
    finally:
        execute(pg15.admin, f"DROP DATABASE IF EXISTS {name}")


def test_capabilities_of_the_two_majors() -> None:
    c15, c18 = capabilities(installation_for(15)), capabilities(installation_for(EMBEDDED_MAJOR))
    assert {"uuid-ossp", "citext", "hstore", "pg_trgm"} <= set(c15.extensions) and "vector" not in c15.extensions
    assert c15.icu is True and c15.xml is True
    assert {"citext", "hstore", "pg_trgm", "vector"} <= set(c18.extensions) and "uuid-ossp" not in c18.extensions
    assert c18.icu is False and c18.xml is False


def test_capabilities_match_what_the_servers_say(pg15: PgServer, pg18: PgServer) -> None:
    from restorecheck.pg_hosting import server_capabilities

    for server in (pg15, pg18):
        assert server.tools is not None
        with psycopg.connect(server.admin.conninfo(), autocommit=True) as conn:
            live = server_capabilities(conn, "test")
        files = capabilities(server.tools)
        assert set(live.extensions) == set(files.extensions)
        assert (live.icu, live.xml) == (files.icu, files.xml)


def test_dumps_that_one_installation_can_host_restore_there(dumps: Dumps, tmp_path: Path) -> None:
    # uuid-ossp and ICU: only 15 (the lowest major anyway)
    report = pipeline.verify(dumps.custom15, restore=RestoreOptions())
    assert report.verdict == "pass", [(f.check, f.message) for f in report.findings]
    assert report.extra["restore"]["server_version"].startswith("15")
    # vector in a dump made by pg_dump 15: 15 would be the lowest major, but only 18 has vector
    plain = _with_vector(dumps.citext15, tmp_path / "vector15.sql")
    report = pipeline.verify(plain, restore=RestoreOptions())
    assert report.verdict == "pass", [(f.check, f.message) for f in report.findings]
    info = report.extra["restore"]
    assert info["server_version"].startswith(str(EMBEDDED_MAJOR))
    assert info["needs"]["extensions"] == ["citext", "vector"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "restorecheck", *args], capture_output=True, text=True,
                          timeout=600)


def test_a_dump_nothing_here_can_host_is_exit_3_with_the_remedy(dumps: Dumps, tmp_path: Path) -> None:
    plain = _with_vector(dumps.plain15, tmp_path / "all.sql")  # uuid-ossp + ICU (15 only) + vector (18 only)
    out = _cli("verify", str(plain), "--no-progress")
    assert out.returncode == 3, out.stderr
    err = out.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert 'lacks extension "vector"' in err and 'lacks extension "uuid-ossp"' in err and "ICU" in err
    assert "postgresql-15-pgvector" in err and "--target" in err


def test_server_target_lacking_an_extension_is_exit_3(dumps: Dumps, pg18: PgServer) -> None:
    url = admin_url(pg18)
    dbs_before = {r[0] for r in execute(pg18.admin, "SELECT datname FROM pg_database")}
    with pytest.raises(EnvironmentFailure) as info:
        pipeline.verify(dumps.custom15, restore=RestoreOptions(target=url))
    assert 'extension "uuid-ossp"' in info.value.message and "ICU" in info.value.message
    assert pg18.admin.password and pg18.admin.password not in info.value.one_line()
    assert {r[0] for r in execute(pg18.admin, "SELECT datname FROM pg_database")} == dbs_before


def test_xml_data_restored_where_libxml_is_missing_is_exit_3_not_1(pg15: PgServer, tmp_path: Path) -> None:
    """XML is preferred, not required (an all-NULL xml column restores anywhere); when the only
    suitable target lacks libxml and the data needs it, the restore error becomes exit 3."""
    dump = tmp_path / "xml.dump"
    _dump(pg15, "CREATE TABLE docs (id int PRIMARY KEY, body xml);"
                "INSERT INTO docs VALUES (1, '<a>1</a>');", dump, "c")
    emb = installation_for(EMBEDDED_MAJOR)
    out = _cli("verify", str(dump), "--no-progress", "--pg-bin", str(emb.bindir))
    assert out.returncode == 3, out.stderr
    assert "XML support (libxml)" in out.stderr and "postgresql-" in out.stderr
    # where libxml is there, the same dump passes
    assert _cli("verify", str(dump), "--no-progress").returncode == 0


def test_doctor_shows_what_each_installation_can_host() -> None:
    import json

    out = _cli("doctor", "--json")
    assert out.returncode == 0, out.stderr
    by_major = {i["major"]: i for i in json.loads(out.stdout)["postgresql"] if "extensions" in i}
    assert "uuid-ossp" in by_major[15]["extensions"] and by_major[15]["icu"] is True and by_major[15]["xml"] is True
    emb = by_major[EMBEDDED_MAJOR]
    assert "vector" in emb["extensions"] and emb["icu"] is False and emb["xml"] is False
    human = _cli("doctor")
    assert human.returncode == 0
    assert "ICU" in human.stdout and "XML" in human.stdout and "vector" in human.stdout
    assert "uuid-ossp" in human.stdout


def test_drill_checks_the_target_against_the_source_before_the_backup(pg15: PgServer, pg18: PgServer,
                                                                     tmp_path: Path) -> None:
    """drill starts its target early: what the live source uses (uuid-ossp here) is asked of it."""
    url = admin_url(pg18)
    with pg15.fresh_database() as src:
        execute(src, 'CREATE EXTENSION "uuid-ossp"; CREATE TABLE t (id uuid PRIMARY KEY DEFAULT uuid_generate_v4());'
                     "INSERT INTO t DEFAULT VALUES")
        src_url = admin_url(pg15, src.dbname or "")
        out = _cli("drill", src_url, "--target", url, "--no-progress", "-o", str(tmp_path / "out"))
        assert out.returncode == 3, out.stderr
        assert 'extension "uuid-ossp"' in out.stderr and len(out.stderr.strip().splitlines()) == 1
        assert pg18.admin.password and pg18.admin.password not in out.stderr
        assert pg15.admin.password and pg15.admin.password not in out.stderr
        # the same source drilled into a local target restores on 15, which has uuid-ossp
        ok = _cli("drill", src_url, "--no-progress", "-o", str(tmp_path / "out2"))
        assert ok.returncode == 0, ok.stderr + ok.stdout


def test_missing_extension_inserted_after_the_schema_is_exit_3(dumps: Dumps, tmp_path: Path) -> None:
    """A CREATE EXTENSION that the pre-check does not see (after the schema part) still ends as an
    environment failure through its restore error, never as a failed backup."""
    text = dumps.citext15.read_text()
    anchor = "COPY public.t "
    assert anchor in text
    plain = tmp_path / "late.sql"
    plain.write_text(text.replace(anchor, "CREATE EXTENSION restorecheck_no_such_extension;\n" + anchor, 1))
    out = _cli("verify", str(plain), "--no-progress")
    assert out.returncode == 3, out.stderr
    assert 'lacks extension "restorecheck_no_such_extension"' in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
