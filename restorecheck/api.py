"""The documented Python API: one call per command, each returning the value the CLI renders.

::

    import restorecheck

    report = restorecheck.drill("postgresql://app@db.internal/shop")   # backup + restore + compare
    if not report.ok:
        print(report.summary())          # the CLI's human summary, with the differing keys
    open("report.json", "w").write(report.to_json())   # the SPEC's JSON report

A database (``source``, ``against``, a side of ``compare``) is any of:

- a libpq URL or keyword string: ``postgresql://user@host:5432/db``, ``host=/tmp dbname=db``
  (libpq environment variables and ``~/.pgpass`` honoured);
- a SQLite path (``str`` or ``pathlib.Path``) or a ``sqlite:///path`` URL;
- a SQLAlchemy ``Engine`` or ``URL`` (``postgresql+psycopg://...``, ``postgresql+psycopg2://...``,
  ``sqlite:///...``): converted field by field, the password carried separately and never
  rendered; anything printed (a report, an error) shows it as ``***``.

Verdicts are data: a backup that does not restore, or restores different, is a ``Report`` with
``ok == False``. Being unable to verify raises a ``RestorecheckError`` subclass whose
``exit_code`` is the CLI's: ``BadInputError`` (2) for bad input, ``EnvironmentFailure`` (3) when no
target could be provisioned, a tool is missing or the source is unreachable.

Every throwaway instance, database and file a call makes is removed before it returns (or
raises), unless ``keep=True``, which keeps the restored database and puts the command line that
opens it in ``Report.kept``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from restorecheck.errors import BadInputError, BadURLError

if TYPE_CHECKING:  # pragma: no cover
    from restorecheck.dburl import DatabaseRef
    from restorecheck.model import DumpFormat, EngineName, Manifest, Report
    from restorecheck.pipeline import BackupResult

# What names a database: a URL or path (str / os.PathLike), a SQLAlchemy Engine or URL, or a parsed
# restorecheck.dburl ref. Typed as Any for SQLAlchemy so that importing this module stays cheap.
Database = Union[str, "os.PathLike[str]", "DatabaseRef", Any]

__all__ = ["Database", "as_database", "backup", "compare", "drill", "snapshot", "verify"]


def as_database(source: Database, what: str = "source") -> DatabaseRef:
    """The ``restorecheck.dburl`` reference a source names (see the module's docstring).

    A SQLAlchemy URL is converted field by field (host, port, user, database, query), the password
    kept apart: it reaches libpq through the environment of the tools, never an argv or a printed
    line. Raises ``BadURLError`` (exit 2) for anything else, naming what was given, password masked.
    """
    from restorecheck.dburl import PostgresRef, SqliteRef, parse_database

    if isinstance(source, PostgresRef | SqliteRef):
        return source
    if isinstance(source, os.PathLike):
        return SqliteRef(Path(os.fspath(source)))
    if isinstance(source, str):
        return parse_database(source)
    url = _sqlalchemy_url(source)
    if url is None:
        raise BadURLError(f"{what}: {type(source).__name__} does not name a database",
                          "give a postgresql:// URL, a SQLite path, or a SQLAlchemy Engine or URL")
    return _from_sqlalchemy(url, what)


def _sqlalchemy_url(obj: Any) -> Any:
    """``obj`` as a ``sqlalchemy.engine.URL`` (an Engine's, a Connection's), or None. SQLAlchemy is
    only imported when the caller already holds one of its objects."""
    import sys

    if "sqlalchemy" not in sys.modules:
        return None
    from sqlalchemy.engine import URL, Connection, Engine

    if isinstance(obj, Connection):
        obj = obj.engine
    if isinstance(obj, Engine):
        obj = obj.url
    return obj if isinstance(obj, URL) else None


def _from_sqlalchemy(url: Any, what: str) -> DatabaseRef:
    from restorecheck.dburl import PostgresRef, SqliteRef

    backend = url.get_backend_name()
    shown = url.render_as_string(hide_password=True)
    if backend == "sqlite":
        db = url.database
        if not db or db == ":memory:" or db.startswith("file:"):
            raise BadURLError(f"{what}: {shown} is not a SQLite file",
                              "an in-memory database has no backup to take: use a file")
        return SqliteRef(Path(db))
    if backend != "postgresql":
        raise BadURLError(f"{what}: {shown} is a {backend} database",
                          "restorecheck verifies PostgreSQL and SQLite")
    params: dict[str, str] = {}
    for key, value in url.query.items():  # libpq keywords: host=/socket/dir, sslmode, ...
        value = value[-1] if isinstance(value, tuple) else value
        if key == "password":
            continue
        params[str(key)] = str(value)
    if url.host:
        params["host"] = url.host
    if url.port:
        params["port"] = str(url.port)
    if url.username:
        params["user"] = url.username
    if url.database:
        params["dbname"] = url.database
    password = url.password if url.password is not None else url.query.get("password")
    if isinstance(password, tuple):
        password = password[-1]
    return PostgresRef(params, None if password is None else str(password))


def _restore_options(target: str | None, keep: bool, jobs: int, restore_timeout: float | None,
                     sandbox: str, pg_bin: str | Path | None, trust_backup: bool = False) -> Any:
    from restorecheck.engines.base import RestoreOptions

    return RestoreOptions(target=target, keep=keep, jobs=jobs, restore_timeout=restore_timeout,
                          sandbox=sandbox, pg_bin=None if pg_bin is None else str(pg_bin),
                          trust_backup=trust_backup)


def _check_jobs(jobs: int) -> None:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BadInputError(f"jobs must be a positive integer, not {jobs!r}", "give jobs=1 or more")


def drill(
    source: Database | None = None,
    *,
    engine: EngineName | None = None,
    format: DumpFormat = "custom",
    target: str | None = None,
    keep: bool = False,
    outdir: str | Path | None = None,
    jobs: int = 1,
    restore_timeout: float | None = None,
    max_restore_seconds: float | None = None,
    sandbox: str = "auto",
    pg_bin: str | Path | None = None,
    exclude_table_data: Sequence[str] = (),
    trust_backup: bool = False,
) -> Report:
    """The whole cycle on ``source``: a backup and its manifest from one snapshot, a restore into a
    fresh throwaway instance, every check; each phase timed (``Report.phases``).

    ``source`` None: the self-test (a throwaway source seeded with the known dataset of ``engine``).
    ``format``: pg_dump's (custom, directory, tar, plain); ignored for SQLite. ``target``: where the
    copy is restored: ``local`` (default), ``docker`` or a ``postgresql://`` server URL.
    ``outdir`` keeps the backup and its manifest there. ``max_restore_seconds``: an ``rto`` finding
    when the restore takes longer. ``exclude_table_data`` (pg_dump patterns): fault injection, a
    backup without those tables' rows, checked against the source's full manifest (it must fail).
    ``trust_backup``: on a server ``target``, restore as the URL's role instead of an unprivileged
    role made for the run (the CLI's ``--trust-backup``; README, threat model): only for a source
    whose content you trust. No effect on ``local`` and ``docker``.
    """
    from restorecheck import pipeline
    from restorecheck.engines.base import BackupOptions

    _check_jobs(jobs)
    ref = None if source is None else as_database(source)
    eng = ref.engine if ref is not None else (engine or "postgresql")
    if exclude_table_data and eng == "sqlite":
        raise BadInputError("exclude_table_data is a pg_dump option: a SQLite backup copies the whole file",
                            "leave it out for a SQLite source")
    options = BackupOptions.for_engine(eng, format, jobs, exclude_table_data=tuple(exclude_table_data))
    return pipeline.drill(ref, engine=engine, outdir=outdir, backup_options=options,
                          restore=_restore_options(target, keep, jobs, restore_timeout, sandbox, pg_bin,
                                                   trust_backup),
                          max_restore_seconds=max_restore_seconds, pg_bin=pg_bin)


def verify(
    backup: str | os.PathLike[str],
    *,
    manifest: str | os.PathLike[str] | Manifest | None = None,
    against: Database | None = None,
    engine: EngineName | None = None,
    target: str | None = None,
    keep: bool = False,
    jobs: int = 1,
    restore_timeout: float | None = None,
    max_restore_seconds: float | None = None,
    sandbox: str = "auto",
    pg_bin: str | Path | None = None,
) -> Report:
    """Restore the backup file (or pg_dump directory, or ``s3://`` object) ``backup`` into a fresh
    throwaway instance and check it.

    The reference: ``manifest`` (a path or a ``Manifest``), else ``against`` a live database, else a
    manifest found beside the backup (``<name>.manifest.json``); with none the checks that need no
    reference run and the report says counts and checksums were not compared (``reference ==
    "none"``, a ``no_reference`` warning). The format is recognised by content (compressed and
    encrypted layers included).
    """
    from restorecheck import pipeline

    _check_jobs(jobs)
    live = None if against is None else as_database(against, "against")
    man: Any = manifest if manifest is None or not isinstance(manifest, os.PathLike) else os.fspath(manifest)
    return pipeline.verify(os.fspath(backup), manifest=man, against=live, engine=engine,
                           restore=_restore_options(target, keep, jobs, restore_timeout, sandbox, pg_bin),
                           max_restore_seconds=max_restore_seconds, pg_bin=pg_bin)


def backup(
    source: Database,
    outdir: str | os.PathLike[str],
    *,
    format: DumpFormat = "custom",
    name: str | None = None,
    jobs: int = 1,
    pg_bin: str | Path | None = None,
    exclude_table_data: Sequence[str] = (),
) -> BackupResult:
    """Back up ``source`` into ``outdir`` with its manifest, both from the same snapshot.

    Returns a ``BackupResult``: ``artifact`` (path, format, bytes, sha256), ``manifest``,
    ``manifest_path`` (``<name>.manifest.json`` beside the backup) and ``seconds``. Files are 0600;
    an existing file is never overwritten (``BadInputError``). ``name`` defaults to the database's
    name and a UTC timestamp. ``exclude_table_data``: as for ``drill`` (fault injection).
    """
    from restorecheck import pipeline
    from restorecheck.engines.base import BackupOptions

    _check_jobs(jobs)
    ref = as_database(source)
    options = BackupOptions.for_engine(ref.engine, format, jobs, name=name,
                                       exclude_table_data=tuple(exclude_table_data))
    return pipeline.backup(ref, os.fspath(outdir), options, pg_bin=pg_bin)


def snapshot(source: Database, *, jobs: int = 1, schema_only: bool = False) -> Manifest:
    """Fingerprint the live database ``source`` (read only: READ ONLY sessions, no DDL) into a
    ``Manifest``: per table rows and checksum, the schema, sequences, foreign-key orphans, large
    objects. ``manifest.save(path)`` writes it; ``verify(..., manifest=...)`` takes it."""
    from restorecheck import pipeline
    from restorecheck.engines.base import FingerprintOptions

    _check_jobs(jobs)
    return pipeline.snapshot(as_database(source), FingerprintOptions(jobs=jobs, schema_only=schema_only))


def compare(a: Database | Manifest, b: Database | Manifest, *, max_keys: int = 20) -> Report:
    """Compare ``a`` (the reference) with ``b``: two live databases, two manifests (``Manifest`` or
    a ``.json`` path), or one of each. Between two live PostgreSQL databases the differing rows are
    narrowed down to their keys (up to ``max_keys`` per table, in ``Finding.details["keys"]``)."""
    import tempfile

    from restorecheck import pipeline
    from restorecheck.model import Manifest

    with tempfile.TemporaryDirectory(prefix="restorecheck-compare-") as tmp:
        sides = []
        for i, side in enumerate((a, b)):
            if isinstance(side, Manifest):
                path = Path(tmp) / f"side{i}.json"
                side.save(path)
                sides.append(str(path))
            elif isinstance(side, str | os.PathLike) and pipeline.is_manifest_path(os.fspath(side)):
                sides.append(os.fspath(side))
            else:
                ref = as_database(side, "ab"[i])
                sides.append(_side_text(ref))
        return pipeline.compare(sides[0], sides[1], max_keys=max_keys)


def _side_text(ref: DatabaseRef) -> str:
    """``pipeline.compare`` takes text: a PostgreSQL ref as a conninfo string (the password inside
    it, never printed: the report shows ``display()``), a SQLite ref as its path."""
    from restorecheck.dburl import PostgresRef

    if isinstance(ref, PostgresRef):
        return ref.conninfo()
    return str(ref.path)
