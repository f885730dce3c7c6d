"""The history database: every recorded run of ``run`` (and of ``verify``/``drill --history``).

SQLAlchemy Core for every query; the schema is created and migrated by Alembic at open
(``migrations/``, run programmatically: no alembic.ini). Any SQLAlchemy URL works; the default is a
SQLite file in the nightly job's output directory. ``postgresql://`` means psycopg 3
(``postgresql+psycopg://``), which restorecheck already depends on; the password comes from the libpq
environment or ``~/.pgpass``, never from the URL in a config file.

Times are stored as naive UTC (one meaning in every backend) and handed out as aware UTC datetimes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restorecheck.dburl import mask
from restorecheck.errors import BadInputError, EnvironmentFailure
from restorecheck.model import Report
from restorecheck.model import TableResult as TableRow  # a recorded table is a report's table row

log = logging.getLogger("restorecheck")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _tables() -> Any:
    """The Core tables, as migration 0001 creates them (for queries only; Alembic owns the DDL)."""
    import sqlalchemy as sa

    md = sa.MetaData()
    run = sa.Table(
        "rc_run", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(200)), sa.Column("command", sa.String(20)),
        sa.Column("started_at", sa.DateTime()), sa.Column("finished_at", sa.DateTime()),
        sa.Column("verdict", sa.String(10)), sa.Column("exit_code", sa.Integer),
        sa.Column("verified", sa.Boolean), sa.Column("engine", sa.String(20)), sa.Column("source", sa.Text),
        sa.Column("backup_path", sa.Text), sa.Column("backup_format", sa.String(20)),
        sa.Column("backup_bytes", sa.BigInteger), sa.Column("backup_sha256", sa.String(64)),
        sa.Column("rows_verified", sa.BigInteger), sa.Column("restore_seconds", sa.Float),
        sa.Column("total_seconds", sa.Float), sa.Column("error", sa.Text), sa.Column("tool_version", sa.String(40)),
    )
    phase = sa.Table("rc_phase", md, sa.Column("run_id", sa.Integer, sa.ForeignKey("rc_run.id"), primary_key=True),
                     sa.Column("phase", sa.String(40), primary_key=True), sa.Column("seconds", sa.Float))
    table = sa.Table(
        "rc_table", md, sa.Column("run_id", sa.Integer, sa.ForeignKey("rc_run.id"), primary_key=True),
        sa.Column("name", sa.Text, primary_key=True), sa.Column("rows_expected", sa.BigInteger),
        sa.Column("rows_restored", sa.BigInteger), sa.Column("checksum_expected", sa.Text),
        sa.Column("checksum_restored", sa.Text), sa.Column("match", sa.Boolean),
    )
    finding = sa.Table(
        "rc_finding", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("rc_run.id")), sa.Column("check_id", sa.String(40)),
        sa.Column("severity", sa.String(10)), sa.Column("object", sa.Text), sa.Column("message", sa.Text),
    )
    return run, phase, table, finding


@dataclass(frozen=True)
class RunRecord:
    id: int
    job: str
    command: str
    started_at: dt.datetime
    finished_at: dt.datetime
    verdict: str
    exit_code: int
    verified: bool
    engine: str
    source: str | None
    backup_path: str | None
    backup_format: str | None
    backup_bytes: int | None
    backup_sha256: str | None
    rows_verified: int | None
    restore_seconds: float | None
    total_seconds: float | None
    error: str | None
    phases: dict[str, float] = field(default_factory=dict)
    tables: tuple[TableRow, ...] = ()
    findings: tuple[tuple[str, str, str, str], ...] = ()  # (check, severity, object, message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "job": self.job, "command": self.command,
            "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
            "verdict": self.verdict, "exit_code": self.exit_code, "verified": self.verified,
            "engine": self.engine, "source": self.source,
            "backup": {"path": self.backup_path, "format": self.backup_format, "bytes": self.backup_bytes,
                       "sha256": self.backup_sha256},
            "rows_verified": self.rows_verified, "phases": self.phases,
            "tables": [t.__dict__ for t in self.tables],
            "findings": [dict(zip(("check", "severity", "object", "message"), f, strict=True)) for f in self.findings],
            "error": self.error,
        }


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _naive_utc(t: dt.datetime) -> dt.datetime:
    return (t.astimezone(dt.UTC) if t.tzinfo else t).replace(tzinfo=None)


def _aware(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def engine_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` as psycopg 3 (restorecheck's driver); others unchanged."""
    head, sep, rest = url.partition("://")
    if sep and head.lower() in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + rest
    return url


class History:
    """An open history database. ``open_history(url)`` makes one and migrates it to the head."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

        self.url = url
        try:
            parsed = sa.engine.make_url(engine_url(url))
        except (ArgumentError, ValueError) as exc:
            raise BadInputError(f"the history URL {mask(url)} is not a SQLAlchemy URL ({exc})",
                                "give e.g. sqlite:////var/lib/restorecheck/history.db or postgresql://host/db") from None
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            db = parsed.database
            if db and db != ":memory:" and not Path(db).parent.is_dir():
                raise BadInputError(f"the history database's directory {Path(db).parent} does not exist",
                                    "create it, or give another history URL")
            connect_args["timeout"] = 30  # another process writing: wait, do not fail
        try:
            self.engine = sa.create_engine(parsed, connect_args=connect_args, future=True)
        except NoSuchModuleError:
            raise BadInputError(f"the history URL {mask(url)} names a database SQLAlchemy does not know",
                                "use sqlite:///PATH or postgresql://host/db") from None
        except ImportError as exc:
            raise EnvironmentFailure(f"no driver for the history URL {mask(url)}: {exc}",
                                     "install the driver, or use sqlite:// or postgresql://") from None
        if parsed.get_backend_name() == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.run, self.phase, self.table, self.finding = _tables()
        try:
            self._migrate()
        except SQLAlchemyError as exc:
            self.engine.dispose()
            why = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise EnvironmentFailure(f"cannot open the history database {mask(url)}: {mask(why)}",
                                     "check the history URL and that the database is reachable") from None

    def _migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ---------------------------------------------------------------------------

    def record(self, job: str, report: Report, exit_code: int, *, verified: bool | None = None,
               finished_at: dt.datetime | None = None) -> int:
        """Record one run; returns its id. ``verified``: the restore verified before the
        between-nights checks ran (default: the verdict is pass)."""
        from restorecheck import __version__

        finished = finished_at or dt.datetime.now(dt.UTC)
        try:
            started = dt.datetime.strptime(report.started_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            started = finished
        b = report.backup
        values = {
            "job": job, "command": report.command, "started_at": _naive_utc(started),
            "finished_at": _naive_utc(finished), "verdict": report.verdict, "exit_code": int(exit_code),
            "verified": report.verdict == "pass" if verified is None else verified, "engine": report.engine,
            "source": mask(report.source) if report.source else None,
            "backup_path": b.path if b else None, "backup_format": b.format if b else None,
            "backup_bytes": b.bytes if b else None, "backup_sha256": b.sha256 if b else None,
            "rows_verified": sum(t.rows_restored or 0 for t in report.tables) if report.tables else None,
            "restore_seconds": report.phases.get("restore"), "total_seconds": report.phases.get("total"),
            "error": mask(report.error) if report.error else None, "tool_version": __version__,
        }
        with self.engine.begin() as conn:
            key = conn.execute(self.run.insert().values(**values)).inserted_primary_key
            assert key is not None
            run_id = int(key[0])
            if report.phases:
                conn.execute(self.phase.insert(), [{"run_id": run_id, "phase": k, "seconds": float(v)}
                                                   for k, v in report.phases.items()])
            rows = {t.name: t for t in report.tables}  # one row per name (the key)
            if rows:
                conn.execute(self.table.insert(), [
                    {"run_id": run_id, "name": t.name, "rows_expected": t.rows_expected,
                     "rows_restored": t.rows_restored, "checksum_expected": t.checksum_expected,
                     "checksum_restored": t.checksum_restored, "match": bool(t.match)} for t in rows.values()])
            if report.findings:
                conn.execute(self.finding.insert(), [
                    {"run_id": run_id, "check_id": f.check, "severity": f.severity, "object": f.object,
                     "message": mask(f.message)} for f in report.findings])
        return run_id

    def prune(self, job: str, *, keep_days: int | None, keep_runs: int | None,
              now: dt.datetime | None = None) -> int:
        """Delete the job's runs older than ``keep_days`` or beyond the ``keep_runs`` newest."""
        import sqlalchemy as sa

        if keep_days is None and keep_runs is None:
            return 0
        now = now or dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            doomed: list[int] = []
            rows = conn.execute(sa.select(self.run.c.id, self.run.c.started_at).where(self.run.c.job == job)
                                .order_by(self.run.c.started_at.desc(), self.run.c.id.desc())).all()
            cutoff = _naive_utc(now - dt.timedelta(days=keep_days)) if keep_days is not None else None
            for i, (rid, started) in enumerate(rows):
                if (keep_runs is not None and i >= keep_runs) or (cutoff is not None and started < cutoff):
                    doomed.append(rid)
            for chunk in _chunks(doomed, 500):
                for t in (self.phase, self.table, self.finding):
                    conn.execute(t.delete().where(t.c.run_id.in_(chunk)))
                conn.execute(self.run.delete().where(self.run.c.id.in_(chunk)))
        return len(doomed)

    # --- reading ---------------------------------------------------------------------------

    def runs(self, job: str | None = None, *, since: dt.datetime | None = None, limit: int | None = None,
             verified_only: bool = False, details: bool = True) -> list[RunRecord]:
        """Recorded runs, newest first."""
        import sqlalchemy as sa

        q = sa.select(self.run)
        if job is not None:
            q = q.where(self.run.c.job == job)
        if since is not None:
            q = q.where(self.run.c.started_at >= _naive_utc(since))
        if verified_only:
            q = q.where(self.run.c.verified.is_(True))
        q = q.order_by(self.run.c.started_at.desc(), self.run.c.id.desc())
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
            ids = [r["id"] for r in rows]
            phases: dict[int, dict[str, float]] = {i: {} for i in ids}
            tables: dict[int, list[TableRow]] = {i: [] for i in ids}
            findings: dict[int, list[tuple[str, str, str, str]]] = {i: [] for i in ids}
            for chunk in _chunks(ids, 500) if details else ():
                for p in conn.execute(sa.select(self.phase).where(self.phase.c.run_id.in_(chunk))).mappings():
                    phases[p["run_id"]][p["phase"]] = p["seconds"]
                for t in conn.execute(sa.select(self.table).where(self.table.c.run_id.in_(chunk))
                                      .order_by(self.table.c.name)).mappings():
                    tables[t["run_id"]].append(TableRow(t["name"], t["rows_expected"], t["rows_restored"],
                                                        t["checksum_expected"], t["checksum_restored"],
                                                        bool(t["match"])))
                for f in conn.execute(sa.select(self.finding).where(self.finding.c.run_id.in_(chunk))
                                      .order_by(self.finding.c.id)).mappings():
                    findings[f["run_id"]].append((f["check_id"], f["severity"], f["object"], f["message"]))
        return [RunRecord(
            id=r["id"], job=r["job"], command=r["command"], started_at=_aware(r["started_at"]),
            finished_at=_aware(r["finished_at"]), verdict=r["verdict"], exit_code=r["exit_code"],
            verified=bool(r["verified"]), engine=r["engine"], source=r["source"], backup_path=r["backup_path"],
            backup_format=r["backup_format"], backup_bytes=r["backup_bytes"], backup_sha256=r["backup_sha256"],
            rows_verified=r["rows_verified"], restore_seconds=r["restore_seconds"],
            total_seconds=r["total_seconds"], error=r["error"], phases=phases[r["id"]],
            tables=tuple(tables[r["id"]]), findings=tuple(findings[r["id"]]),
        ) for r in rows]

    def jobs(self) -> list[str]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(self.run.c.job).distinct().order_by(self.run.c.job))]


def _sqlite_pragmas(dbapi_conn: Any, record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _chunks(items: Sequence[int], n: int) -> Iterator[list[int]]:
    for i in range(0, len(items), n):
        yield list(items[i:i + n])


@contextlib.contextmanager
def open_history(url: str) -> Iterator[History]:
    """Open (create, migrate) the history database at ``url``; closed after the block."""
    h = History(url)
    try:
        yield h
    finally:
        h.close()


@dataclass(frozen=True)
class Trend:
    """How a job's recent runs moved: restore time, backup size, rows (oldest to newest)."""

    job: str
    runs: int
    restore_seconds: tuple[float, ...]
    backup_bytes: tuple[int, ...]
    rows: tuple[int, ...]

    @property
    def restore_median(self) -> float | None:
        return statistics.median(self.restore_seconds) if self.restore_seconds else None

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "runs": self.runs, "restore_seconds": list(self.restore_seconds),
                "restore_median": self.restore_median, "backup_bytes": list(self.backup_bytes),
                "rows": list(self.rows)}


def trends(runs: Sequence[RunRecord]) -> list[Trend]:
    """Per job, the series of its runs (oldest first) that have each figure."""
    by_job: dict[str, list[RunRecord]] = {}
    for r in sorted(runs, key=lambda r: (r.started_at, r.id)):
        by_job.setdefault(r.job, []).append(r)
    return [Trend(job, len(rs),
                  tuple(r.restore_seconds for r in rs if r.restore_seconds is not None),
                  tuple(r.backup_bytes for r in rs if r.backup_bytes is not None and r.verdict != "error"),
                  tuple(r.rows_verified for r in rs if r.rows_verified is not None))
            for job, rs in sorted(by_job.items())]
