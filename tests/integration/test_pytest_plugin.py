"""The pytest plugin, run for real with pytester: a tiny suite that uses the fixtures against real
PostgreSQL (the plugin's own local throwaway cluster) and SQLite, in a subprocess that loads the
plugin through its pytest11 entry point, as an application's suite would."""

from __future__ import annotations

import os
import re
import shutil
import signal

import psycopg
import pytest

pytest_plugins = ["pytester"]

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SUITE = r'''
import sqlite3
import psycopg
import pytest


def _fill(url):
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE parent (id int PRIMARY KEY, name text NOT NULL)")
        c.execute("CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent(id), v text)")
        c.execute("INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 40) g")
        c.execute("INSERT INTO child SELECT g, 1 + g % 40, 'c' || g FROM generate_series(1, 300) g")


def test_fresh_and_empty(throwaway_postgres, request):
    assert isinstance(throwaway_postgres, str) and throwaway_postgres.startswith("postgresql://")
    assert request.node.get_closest_marker("restorecheck") is not None
    with psycopg.connect(throwaway_postgres) as c:
        n = c.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace").fetchone()[0]
    assert n == 0
    with open("password.txt", "w") as fh:  # the outer test checks it is printed nowhere
        fh.write(psycopg.conninfo.conninfo_to_dict(throwaway_postgres)["password"])


def test_restores(restorecheck, throwaway_postgres):
    _fill(throwaway_postgres)
    report = restorecheck.assert_restores(throwaway_postgres, format="plain")
    assert report.ok and {t.name for t in report.tables} == {"public.parent", "public.child"}
    assert all(t.rows_expected == t.rows_restored for t in report.tables)


def test_sqlite_restores(restorecheck, tmp_path):
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); "
                       "INSERT INTO t (v) VALUES ('a'), ('b'), (NULL);")
    conn.commit()
    conn.close()
    assert [t.rows_restored for t in restorecheck.assert_restores(str(db), engine="sqlite").tables] == [3]


def test_lossy_backup_is_caught(restorecheck, throwaway_postgres):
    _fill(throwaway_postgres)
    restorecheck.assert_restores(throwaway_postgres, exclude_table_data=["public.child"])
'''


def test_plugin_fixtures_for_real(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", timeout=600)
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    # the lossy backup fails that test with the summary: the table, the check, the counts
    failure = out.split("test_lossy_backup_is_caught", 1)[1]
    assert "RestoreCheckFailed" in failure
    assert re.search(r"ERROR\s+row_count\s+public\.child: expected 300 rows, restored 0", failure), failure
    assert re.search(r"public\.child\W+300\W+0\W+DIFFERS\W+NO", failure), failure
    assert "keys: 1 missing; 10 missing" in failure  # the keys it names (narrowed against the live source)
    password = (pytester.path / "password.txt").read_text()
    assert len(password) > 10 and password not in out and password not in result.stderr.str()


def test_each_xdist_worker_has_its_own_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_workers='''
import os, psycopg, pytest

@pytest.mark.parametrize("i", range(4))
def test_db(throwaway_postgres, i):
    with psycopg.connect(throwaway_postgres) as c:
        row = c.execute("SELECT current_setting('data_directory'), current_database()").fetchone()
    with open(f"seen-{i}.txt", "w") as fh:
        fh.write(f"{os.environ['PYTEST_XDIST_WORKER']} {row[0]} {row[1]}")
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "load", timeout=600)
    result.assert_outcomes(passed=4)
    seen = [(pytester.path / f"seen-{i}.txt").read_text().split() for i in range(4)]
    assert len({db for _, _, db in seen}) == 4  # a fresh database per test
    by_worker: dict[str, set[str]] = {}
    for worker, datadir, _ in seen:
        by_worker.setdefault(worker, set()).add(datadir)
    assert all(len(dirs) == 1 for dirs in by_worker.values())  # one server per worker session
    if len(by_worker) == 2:  # both workers got tests: their servers differ
        a, b = by_worker.values()
        assert a != b


def test_bad_target_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--restorecheck-target", "bogus")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--restorecheck-target 'bogus': use local, docker or a postgresql:// URL" in result.stderr.str()


def test_fixtures_listed_and_marker_registered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    out = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--fixtures").stdout.str()
    assert "throwaway_postgres" in out and "restorecheck_postgres_server [session scope]" in out
    markers = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--markers").stdout.str()
    assert "@pytest.mark.restorecheck:" in markers


def test_keep_lists_what_it_kept_and_how_to_stop_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_keep='''
import psycopg

def test_k(restorecheck, throwaway_postgres):
    with psycopg.connect(throwaway_postgres, autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
    restorecheck.assert_restores(throwaway_postgres)
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--restorecheck-keep", timeout=300)
    out = result.stdout.str()
    stops = re.findall(r"stop and remove it with: kill -(\w+) (\d+) && rm -rf (\S+)", out)
    try:
        result.assert_outcomes(passed=1)
        assert len(stops) == 2, out  # the session server and the restored copy's cluster
        database = re.search(r"database: PGPASSFILE=(\S+) psql '(\S+)'", out)
        assert database is not None, out
        restored = re.search(r"restored copy: PGPASSFILE=(\S+) psql '(\S+)'", out)
        assert restored is not None, out
        # the kept copy is there, with the rows, reachable the way the summary says
        conninfo = psycopg.conninfo.make_conninfo(restored.group(2), passfile=restored.group(1))
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    finally:
        for sig, pid, base in stops:  # the servers this test had kept
            os.kill(int(pid), getattr(signal, f"SIG{sig}"))
            shutil.rmtree(base, ignore_errors=True)


def test_a_server_url_target(pytester: pytest.Pytester, pg_server) -> None:  # type: ignore[no-untyped-def]
    """--restorecheck-target URL: the databases are made on that server, the restore goes into a
    scratch database there, and both are dropped afterwards. The password is in the URL: restored
    as the URL's role (trust_backup), pg_restore runs in the sandbox, which does not see a passfile."""
    from restorecheck.dburl import PostgresRef
    from tests.conftest import admin_url, execute

    target = admin_url(pg_server)
    pytester.makepyfile(test_server='''
import psycopg

def test_on_the_server(restorecheck, throwaway_postgres):
    with psycopg.connect(throwaway_postgres, autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, NULL)")
        assert c.execute("SELECT current_setting('data_directory')").fetchone()[0] == DATADIR
    report = restorecheck.assert_restores(throwaway_postgres)
    assert report.target is not None and report.target.startswith("postgresql://")
    assert [t.rows_restored for t in report.tables] == [2]
'''.replace("DATADIR", repr(pg_server.info["datadir"])))
    before = {r[0] for r in execute(PostgresRef(dict(pg_server.admin.params), pg_server.admin.password),
                                    "SELECT datname FROM pg_database")}
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--restorecheck-target", target, timeout=300)
    result.assert_outcomes(passed=1)
    assert pg_server.admin.password not in result.stdout.str() + result.stderr.str()
    after = {r[0] for r in execute(PostgresRef(dict(pg_server.admin.params), pg_server.admin.password),
                                   "SELECT datname FROM pg_database")}
    assert after == before  # nothing left on the server
