"""The pytest plugin (entry point ``pytest11``: installed with restorecheck, no conftest needed).

Fixtures:

- ``restorecheck``: ``restorecheck.assert_restores(source)`` runs the whole cycle (backup, restore
  into a fresh throwaway instance, every check) and fails the test with the human summary (the
  failing tables, the findings and the keys they name) as the assertion message;
  ``restorecheck.assert_verifies(backup, manifest=...)`` does the same for a backup file you made.
  Both return the ``Report``.
- ``throwaway_postgres``: the libpq URL (a ``str``) of a fresh, empty database, dropped after the
  test. Its server is started once per session (per xdist worker) by restorecheck's own
  provisioners: a local throwaway cluster (distribution PostgreSQL, or the embedded one from
  ``restorecheck[embedded]``: no Docker, no system PostgreSQL), or ``--restorecheck-target``.
- ``restorecheck_postgres_server``: that session server (a ``restorecheck.provisioners.base.PgServer``).

Options: ``--restorecheck-target local|docker|postgresql://...`` (where throwaway databases live and
where ``assert_restores`` restores; default local), ``--restorecheck-keep`` (keep them, print how
to connect). Marker: ``restorecheck``, put on every test that uses these fixtures (``-m
restorecheck`` selects them, ``-m "not restorecheck"`` leaves them out).

Under pytest-xdist every worker is its own process with its own session: its own server, its own
databases (uniquely named), nothing shared. This module is imported by every pytest run of an
environment that has restorecheck installed, so it imports nothing heavy at import time.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote, urlencode

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from restorecheck.api import Database
    from restorecheck.dburl import PostgresRef
    from restorecheck.model import DumpFormat, EngineName, Manifest, Report
    from restorecheck.provisioners.base import PgServer

MARKER = "restorecheck: uses restorecheck's throwaway PostgreSQL or backup checks (set by the plugin)"
_FIXTURES = ("restorecheck", "throwaway_postgres", "restorecheck_postgres_server")
_KEPT = pytest.StashKey[list[str]]()


class RestoreCheckFailed(AssertionError):
    """A backup did not restore, or restored different: the message is the report's summary."""

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("restorecheck", "restorecheck (throwaway PostgreSQL, backup checks)")
    group.addoption("--restorecheck-target", default=None, metavar="TARGET",
                    help="where throwaway_postgres databases live and assert_restores restores: local "
                         "(a throwaway cluster, the default), docker, or a postgresql:// server URL")
    group.addoption("--restorecheck-keep", action="store_true", default=False,
                    help="keep the throwaway servers and databases, and print how to connect")


def _target(config: pytest.Config) -> str:
    return (config.getoption("--restorecheck-target") or "local").strip()


class _KeptLog:
    """With --restorecheck-keep: restorecheck logs how to reach and stop each cluster it keeps (a
    warning that pytest would show only for a failing test); the terminal summary lists them."""

    def __init__(self, kept: list[str]) -> None:
        import logging

        self.kept = kept
        self.handler = logging.Handler(logging.WARNING)
        self.handler.emit = self._emit  # type: ignore[method-assign]
        logging.getLogger("restorecheck").addHandler(self.handler)

    def _emit(self, record: Any) -> None:
        message = record.getMessage()
        if message.startswith("kept the throwaway"):
            self.kept.append(message)

    def close(self) -> None:
        import logging

        logging.getLogger("restorecheck").removeHandler(self.handler)


_KEPT_LOG = pytest.StashKey[_KeptLog]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    config.stash[_KEPT] = []
    if config.getoption("--restorecheck-keep", False):
        config.stash[_KEPT_LOG] = _KeptLog(config.stash[_KEPT])
    target = _target(config)
    if target not in ("local", "docker") and "://" not in target and "=" not in target:
        raise pytest.UsageError(f"--restorecheck-target {target!r}: use local, docker or a postgresql:// URL")
    if "://" in target or "=" in target:
        from restorecheck.dburl import mask, parse_database
        from restorecheck.errors import RestorecheckError

        try:
            ref = parse_database(target)
        except RestorecheckError as exc:
            raise pytest.UsageError(f"--restorecheck-target: {exc.one_line()}") from None
        if ref.engine != "postgresql":
            raise pytest.UsageError(f"--restorecheck-target {mask(target)} is not a PostgreSQL server URL")


def pytest_unconfigure(config: pytest.Config) -> None:
    kept_log = config.stash.get(_KEPT_LOG, None)
    if kept_log is not None:
        kept_log.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        if any(n in names for n in _FIXTURES):
            item.add_marker(pytest.mark.restorecheck)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    kept = config.stash.get(_KEPT, [])
    if kept:
        terminalreporter.section("restorecheck: kept (--restorecheck-keep)")
        for line in kept:
            terminalreporter.write_line(line)


class DatabaseURL(str):
    """A libpq URL that is a plain ``str`` to every consumer (psycopg, SQLAlchemy, f-strings) but
    whose ``repr`` masks the password: pytest prints a failing test's arguments with ``repr``."""

    __slots__ = ()

    def __repr__(self) -> str:
        from restorecheck.dburl import mask

        return repr(mask(str(self)))


def libpq_url(ref: PostgresRef) -> DatabaseURL:
    """A libpq URL for ``ref`` *with* its password (for the test's own connections; restorecheck
    masks it wherever it prints one). A socket directory, several hosts or an IPv6 address go in
    the query (``?host=/run/dir&port=5432``); other libpq keywords (sslmode, ...) are kept."""
    params = dict(ref.params)
    user = params.pop("user", "")
    dbname = params.pop("dbname", "")
    host = params.get("host", "")
    netloc = ""
    if host and not host.startswith(("/", "@")) and "," not in host and ":" not in host:
        port = params.pop("port", "")
        netloc = params.pop("host") + (f":{port}" if port else "")
    auth = ""
    if user or ref.password:
        auth = quote(user, safe="") + (":" + quote(ref.password, safe="") if ref.password else "") + "@"
    query = urlencode(params, safe="/,@")
    return DatabaseURL(f"postgresql://{auth}{netloc}/{quote(dbname, safe='')}" + (f"?{query}" if query else ""))


def _fail_environment(exc: BaseException) -> NoReturn:
    __tracebackhide__ = True
    from restorecheck.errors import RestorecheckError

    text = exc.one_line() if isinstance(exc, RestorecheckError) else str(exc)
    pytest.fail(f"restorecheck could not provision PostgreSQL: {text}", pytrace=False)


@pytest.fixture(scope="session")
def restorecheck_postgres_server(pytestconfig: pytest.Config) -> Iterator[PgServer]:
    """The session's PostgreSQL server (one per xdist worker), from ``--restorecheck-target``.

    ``local``: a throwaway cluster (copied from the installation's template data directory, in the
    OS sandbox where bubblewrap is available) where every role may log in over its private Unix
    socket, so a suite can connect as the roles its migrations create (row-level security)."""
    from restorecheck.errors import RestorecheckError

    target = _target(pytestconfig)
    keep = bool(pytestconfig.getoption("--restorecheck-keep"))
    with contextlib.ExitStack() as stack:
        try:
            if target == "local":
                from restorecheck.provisioners.local import local_cluster
                from restorecheck.sandbox import resolve

                server = stack.enter_context(local_cluster(
                    keep=keep, any_role_on_socket=True,
                    sandbox=resolve("auto", os.environ.get("RESTORECHECK_RUN_AS"))))
            else:
                from restorecheck.provisioners import provision_postgres

                server = stack.enter_context(provision_postgres(target, keep=keep))
        except RestorecheckError as exc:
            _fail_environment(exc)
        if keep and server.kind != "local":  # a local cluster's own warning says how to reach and stop it
            pytestconfig.stash[_KEPT].append(
                f"PostgreSQL {server.version} ({server.kind}): psql '{server.admin.display()}'")
        yield server


@pytest.fixture
def throwaway_postgres(restorecheck_postgres_server: PgServer, pytestconfig: pytest.Config) -> Iterator[str]:
    """The libpq URL (``str``, password included) of a fresh empty database on the session's server,
    dropped after the test (kept with ``--restorecheck-keep``). For SQLAlchemy, replace the scheme
    with ``postgresql+psycopg://``. Its ``repr`` (what pytest shows of a failing test) masks the
    password."""
    keep = bool(pytestconfig.getoption("--restorecheck-keep"))
    with restorecheck_postgres_server.fresh_database(keep=keep) as ref:
        if keep:
            passfile = restorecheck_postgres_server.info.get("passfile")
            pytestconfig.stash[_KEPT].append("database: " + (f"PGPASSFILE={passfile} " if passfile else "")
                                             + f"psql '{ref.display()}'")
        yield libpq_url(ref)


class Restorecheck:
    """What the ``restorecheck`` fixture gives a test."""

    def __init__(self, config: pytest.Config, tmp_path: Path) -> None:
        self._config = config
        self.target: str = _target(config)
        self.keep: bool = bool(config.getoption("--restorecheck-keep"))
        self.tmp_path = tmp_path

    def _check(self, report: Report, what: str) -> Report:
        __tracebackhide__ = True
        if self.keep and report.kept:
            self._config.stash[_KEPT].append(f"restored copy: {report.kept}")
        if not report.ok:
            raise RestoreCheckFailed(f"{what}\n{report.summary()}", report)
        return report

    def assert_restores(
        self,
        source: Database,
        *,
        format: DumpFormat = "custom",
        engine: EngineName | None = None,
        target: str | None = None,
        exclude_table_data: Sequence[str] = (),
        max_restore_seconds: float | None = None,
        jobs: int = 1,
        trust_backup: bool = True,
    ) -> Report:
        """Back up ``source`` (a libpq URL, a SQLite path, a SQLAlchemy Engine or URL), restore it into
        a fresh throwaway instance (``target``, default ``--restorecheck-target``), compare it with the
        manifest taken from the backup's snapshot, and return the passing ``Report``.

        A failing verdict raises ``RestoreCheckFailed`` (an ``AssertionError``) whose message is the
        human summary: the failing tables, every finding with its check id, and the keys it names.
        ``engine``: the engine the source must be (a mismatch is bad input). ``format``: pg_dump's.
        ``exclude_table_data`` (pg_dump patterns): break the backup on purpose, to see this fail.
        ``trust_backup`` (default True: the backup is one this call just took of the test's own
        database): on a server URL target the copy is restored as the URL's role, so that objects
        owned by a superuser restore as they are; False restores as an unprivileged role made for
        the run, as for a backup from someone else. No effect on local and docker targets."""
        __tracebackhide__ = True
        from restorecheck import api

        report = api.drill(source, engine=engine, format=format, target=target or self.target,
                           keep=self.keep, exclude_table_data=exclude_table_data, jobs=jobs,
                           max_restore_seconds=max_restore_seconds, trust_backup=trust_backup)
        return self._check(report, f"the backup of {report.source} did not restore into the same database")

    def assert_verifies(
        self,
        backup: str | os.PathLike[str],
        *,
        manifest: str | os.PathLike[str] | Manifest | None = None,
        against: Database | None = None,
        target: str | None = None,
    ) -> Report:
        """Restore the backup file ``backup`` into a fresh throwaway instance and check it against
        ``manifest`` (or the live database ``against``, or the manifest beside it); the same failure
        message as ``assert_restores``. A backup with no reference at all fails here: counts and
        checksums would not be compared."""
        __tracebackhide__ = True
        from restorecheck import api

        report = api.verify(backup, manifest=manifest, against=against, target=target or self.target,
                            keep=self.keep)
        report = self._check(report, f"the backup {report.backup.path if report.backup else backup} did not verify")
        if report.reference == "none":
            raise RestoreCheckFailed(f"the backup {backup} has no reference (no manifest beside it, none "
                                     "given, no against=): nothing was compared\n" + report.summary(), report)
        return report


@pytest.fixture
def restorecheck(pytestconfig: pytest.Config, tmp_path: Path) -> Restorecheck:
    """Backup checks for a test: ``restorecheck.assert_restores(db_url)`` (the whole cycle) and
    ``restorecheck.assert_verifies(backup_file, manifest=...)``; both fail the test with the
    report's human summary."""
    return Restorecheck(pytestconfig, tmp_path)
