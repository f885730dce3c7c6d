"""The nightly job: every ``[[job]]`` of restorecheck.toml, one summary, history, drift.

``run(config)`` takes the run's lock, opens the history database (created and migrated by Alembic),
and runs each job through the pipeline: a ``source`` job as ``drill SOURCE`` (its backups kept in
``output_dir/<job>/backups``), a ``backups`` job as ``verify`` of the newest backup its path or glob
names. A job that fails, or that could not run at all (bad input, environment, an unexpected
exception), gets its report with verdict fail or error and its exit code; the other jobs run on.
Ctrl-C and SIGTERM stop every job (each one's ExitStack removes what it started) and end the run.

After each job, in the calling thread: the between-nights checks (``checks/history.py``, phase
``history``) against the job's last verified run; its JSON, JUnit and metrics in
``output_dir/<job>/<UTC timestamp>/``; its run recorded; retention applied. Then the combined JUnit
(a testsuite per job), the combined Prometheus textfile (a ``job`` label), ``summary.json``, and the
``on_failure`` webhook when the worst exit code is not 0 (it never changes the exit code).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import dataclasses
import datetime as dt
import fcntl
import glob
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restorecheck import __version__
from restorecheck.checks import registry
from restorecheck.checks.registry import CheckContext
from restorecheck.config import Config, ConfigError, Job, Keep, Webhook
from restorecheck.dburl import mask, parse_database
from restorecheck.errors import (
    BackupNotFoundError,
    BadInputError,
    EnvironmentFailure,
    ExitCode,
    RestorecheckError,
)
from restorecheck.history import History, RunRecord, open_history
from restorecheck.model import Baseline, EngineName, HistoryThresholds, Report, error_report, verdict_for
from restorecheck.signals import Terminated

log = logging.getLogger("restorecheck")
STAMP = "%Y%m%dT%H%M%SZ"
_STAMP_RE = re.compile(r"\d{8}T\d{6}Z(-\d+)?")
LOCK_NAME = "run.lock"


class RunLocked(EnvironmentFailure):
    """Another ``restorecheck run`` of this config (its output directory) is running: exit 3."""


@dataclass(frozen=True)
class JobResult:
    job: str
    kind: str  # source | backups
    report: Report
    exit_code: int
    report_dir: Path | None
    seconds: float
    run_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        first = r.error or next((f"{f.check}: {f.object}: {f.message}" for f in r.findings if f.severity == "error"), None)
        return {
            "job": self.job, "kind": self.kind, "verdict": r.verdict, "exit_code": self.exit_code,
            "engine": r.engine, "command": r.command, "started_at": r.started_at,
            "report_dir": str(self.report_dir) if self.report_dir else None,
            "backup": r.backup.to_dict() if r.backup else None,
            "rows_verified": sum(t.rows_restored or 0 for t in r.tables),
            "phases": {k: round(v, 3) for k, v in r.phases.items()},
            "errors": len(r.errors), "warnings": len(r.warnings),
            "findings": [f.to_dict() for f in r.findings if f.severity != "info"][:50],
            "first_problem": first, "history_run_id": self.run_id,
        }


@dataclass(frozen=True)
class RunSummary:
    config: Path
    started_at: str
    seconds: float
    results: tuple[JobResult, ...]
    junit_file: Path
    metrics_file: Path
    summary_file: Path
    webhook_error: str | None = None

    @property
    def exit_code(self) -> int:
        """The worst job's (SPEC: 3 > 2 > 1 > 0)."""
        return max((r.exit_code for r in self.results), default=0)

    def to_dict(self) -> dict[str, Any]:
        worst = self.exit_code
        return {
            "tool": "restorecheck", "version": __version__, "command": "run", "config": str(self.config),
            "started_at": self.started_at, "seconds": round(self.seconds, 3), "exit_code": worst,
            "verdict": "pass" if worst == 0 else "fail" if worst == 1 else "error",
            "host": socket.gethostname(), "jobs": [r.to_dict() for r in self.results],
        }


# --- the lock ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def run_lock(path: Path, config: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` for the block; RunLocked (exit 3) naming its holder when
    another run holds it. The kernel drops the lock when the holder dies, even by kill -9."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise EnvironmentFailure(f"cannot open the lock file {path}: {exc.strerror or exc}",
                                 "check the output directory's permissions") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(f"another 'restorecheck run' is running with this output directory: "
                            f"{_holder(fd)} holds {path}",
                            "wait for it to finish; two runs of one config would fight over its history") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "config": str(config),
                                 "since": _now().strftime("%Y-%m-%dT%H:%M:%SZ")}).encode())
        yield
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {int(info['pid'])} on {str(info['host'])[:64]} (since {str(info['since'])[:20]})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


# --- one job ----------------------------------------------------------------------------------------


def newest_backup(pattern: str) -> Path:
    """The newest (by modification time, then name) backup that ``pattern`` names: a file, a
    directory of backups, or a glob. Manifests and hidden files are not backups; a pg_dump
    directory-format backup (a directory holding toc.dat) is one."""
    p = Path(pattern)
    if glob.has_magic(pattern):
        found = [Path(m) for m in glob.glob(pattern)]
    elif p.is_dir() and not (p / "toc.dat").exists():
        found = list(p.iterdir())
    elif p.exists():
        found = [p]
    else:
        raise BackupNotFoundError(f"the backups {pattern} do not exist", "check the job's backups path")
    candidates = [c for c in found if not c.name.startswith(".") and not c.name.endswith(".manifest.json")
                  and (c.is_file() or (c / "toc.dat").is_file())]
    if not candidates:
        raise BackupNotFoundError(f"no backup matches {pattern}", "check the job's backups path or glob")
    return max(candidates, key=lambda c: (c.stat().st_mtime, c.name))


def newest_named(pattern: str) -> str:
    """``newest_backup``, and for ``s3://bucket/prefix/*.dump`` the newest matching object's URL."""
    from restorecheck import sources

    if not sources.is_s3(pattern):
        return str(newest_backup(pattern))
    if not glob.has_magic(pattern):
        return pattern
    found = [u for u in sources.s3_glob(pattern) if not u.endswith(".manifest.json")]
    if not found:
        raise BackupNotFoundError(f"no backup matches {pattern}", "check the job's backups glob and the bucket")
    return found[0]  # newest first


def _engine_guess(job: Job) -> EngineName:
    if job.source is not None:
        with contextlib.suppress(Exception):
            return parse_database(job.source).engine
    name = (job.backups or "").lower()
    return "sqlite" if name.endswith((".db", ".sqlite", ".sqlite3")) else "postgresql"


def _options(job: Job) -> tuple[Any, Any]:
    from restorecheck.engines.base import FingerprintOptions, RestoreOptions

    restore = RestoreOptions(target=job.target, jobs=job.jobs, pg_bin=job.pg_bin, sandbox=job.sandbox,
                             restore_timeout=job.restore_timeout, start_timeout=job.start_timeout)
    fp = FingerprintOptions(jobs=job.jobs, lock_timeout=job.lock_timeout, statement_timeout=job.statement_timeout)
    return restore, fp


def execute_job(job: Job, output_dir: Path, stamp: str) -> Report:
    """The pipeline's report for ``job`` (the between-nights checks are not run here)."""
    from restorecheck import pipeline
    from restorecheck.engines.base import BackupOptions

    restore, fp = _options(job)
    if job.source is not None:
        ref = job.source_ref()
        backups = output_dir / job.name / "backups"
        options = BackupOptions.for_engine(ref.engine, job.format, job.jobs, name=f"{job.name}-{stamp}",
                                           fingerprint=fp)
        return pipeline.drill(ref, outdir=backups, backup_options=options, restore=restore, fingerprint=fp,
                              max_restore_seconds=job.rto_target, pg_bin=job.pg_bin)
    assert job.backups is not None
    newest = newest_named(job.backups)
    return pipeline.verify(newest, restore=restore, fingerprint=fp, max_restore_seconds=job.rto_target,
                           pg_bin=job.pg_bin, identities=job.identity)


def job_error_report(job: Job, exc: BaseException) -> tuple[Report, int]:
    """The report of a job that could not run: verdict error and the SPEC's exit code."""
    backup = None
    if job.backups is not None and "://" not in job.backups:
        with contextlib.suppress(Exception):
            backup = newest_backup(job.backups)
    return error_report(exc, command="drill" if job.source is not None else "verify", engine=_engine_guess(job),
                        backup_path=backup, source=job.source)


def _run_one(job: Job, output_dir: Path, stamp: str) -> tuple[Report, int, float]:
    """``execute_job`` with every failure turned into that job's error report (Ctrl-C and SIGTERM
    are not failures of a job: they stop the run)."""
    start = time.monotonic()
    try:
        report = execute_job(job, output_dir, stamp)
        code = int(ExitCode.OK if report.verdict == "pass" else ExitCode.FAILED)
    except Exception as exc:
        # -v: the traceback of an unexpected error (a RestorecheckError's one line is in the report)
        log.info("job %s could not run: %s", job.name, _short(exc), exc_info=not isinstance(exc, RestorecheckError))
        report, code = job_error_report(job, exc)
    return report, code, time.monotonic() - start


# --- between nights ----------------------------------------------------------------------------------


def baseline_for(history: History, job: str, thresholds: HistoryThresholds) -> Baseline:
    """The job's last verified run and the restore times of its recent verified runs."""
    verified = history.runs(job, verified_only=True, limit=max(thresholds.rto_trend_runs, 1))
    if not verified:
        return Baseline(job, thresholds=thresholds)
    last: RunRecord = verified[0]
    return Baseline(
        job, last_run_id=last.id, last_started_at=_iso(last.started_at),
        table_rows={t.name: t.source_rows for t in last.tables}, backup_bytes=last.backup_bytes,
        restore_seconds=tuple(r.restore_seconds for r in verified if r.restore_seconds is not None),
        thresholds=thresholds,
    )


def between_nights(report: Report, baseline: Baseline) -> Report:
    """``report`` with the findings of the history phase (drift, rto_trend, backup_size) added and
    its verdict recomputed. A run that could not verify (verdict error) is not judged."""
    if report.verdict == "error":
        return report
    ctx = CheckContext(
        report.engine, baseline=baseline, tables=report.tables,
        # the source's tables are known from a reference (even when the restore failed), or from a
        # restore that verified; a failed restore without a reference says nothing about the source
        tables_known=bool(report.tables) and (report.reference != "none" or report.verdict == "pass"),
        backup_bytes=report.backup.bytes if report.backup and report.backup.format != "empty" else None,
        restore_seconds=report.phases.get("restore"),
        artifact_name=Path(report.backup.path).name if report.backup else "",
    )
    more = registry.run("history", ctx)
    if not more:
        return report
    findings = (*report.findings, *more)
    return dataclasses.replace(report, findings=findings, verdict=verdict_for(findings))


def record_with_history(history: History, job: str, report: Report,
                        thresholds: HistoryThresholds | None = None) -> tuple[Report, int, int]:
    """For ``verify``/``drill --history``: judge ``report`` against the job's history, record it.
    Returns the report, its exit code and the run's id."""
    verified = report.verdict == "pass"
    report = between_nights(report, baseline_for(history, job, thresholds or HistoryThresholds()))
    code = _code_of(report)
    return report, code, history.record(job, report, code, verified=verified)


def _code_of(report: Report) -> int:
    if report.verdict == "error":
        return int(report.extra.get("exit_code", ExitCode.ENVIRONMENT))
    return int(ExitCode.OK if report.verdict == "pass" else ExitCode.FAILED)


# --- retention -------------------------------------------------------------------------------------


def _doomed(stamps: Sequence[tuple[str, Any]], keep: Keep, now: dt.datetime) -> list[Any]:
    """Of ``(stamp, item)`` pairs, the items beyond ``keep.runs`` newest or older than ``keep.days``."""
    out = []
    cutoff = now - dt.timedelta(days=keep.days) if keep.days is not None else None
    for i, (stamp, item) in enumerate(sorted(stamps, key=lambda s: s[0], reverse=True)):
        when = dt.datetime.strptime(stamp[:16], STAMP).replace(tzinfo=dt.UTC)
        if (keep.runs is not None and i >= keep.runs) or (cutoff is not None and when < cutoff):
            out.append(item)
    return out


def apply_retention(job: Job, output_dir: Path, history: History, current: str, now: dt.datetime) -> None:
    """Remove the job's report directories, its own backups and history runs beyond retention.
    Only what restorecheck wrote, by its names; never the run just made, never a ``backups`` file."""
    keep = job.retention
    job_dir = output_dir / job.name
    reports = [(d.name, d) for d in job_dir.iterdir() if d.is_dir() and _STAMP_RE.fullmatch(d.name)] \
        if job_dir.is_dir() else []
    for d in _doomed(reports, keep.reports, now):
        if d.name != current:
            shutil.rmtree(d, ignore_errors=True)
    backups_dir = job_dir / "backups"
    if job.source is not None and backups_dir.is_dir():
        own = re.compile(re.escape(job.name) + r"-(\d{8}T\d{6}Z(?:-\d+)?)(\.|$)")
        groups: dict[str, list[Path]] = {}
        for f in backups_dir.iterdir():
            m = own.match(f.name)
            if m:
                groups.setdefault(m.group(1), []).append(f)
        for stamp in _doomed([(s, s) for s in groups], keep.backups, now):
            if stamp == current:
                continue
            for f in groups[stamp]:
                if f.is_dir() and not f.is_symlink():
                    shutil.rmtree(f, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        f.unlink()
    history.prune(job.name, keep_days=keep.history.days, keep_runs=keep.history.runs, now=now)


# --- the webhook -----------------------------------------------------------------------------------


def post_webhook(hook: Webhook, payload: dict[str, Any]) -> None:
    """POST ``payload`` as JSON, retried (tenacity) on a network error, a timeout, 429 or 5xx."""
    import urllib.error
    import urllib.request

    from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

    body = json.dumps(payload, default=str).encode()

    def transient(exc: BaseException) -> bool:
        if isinstance(exc, urllib.error.HTTPError):
            return exc.code >= 500 or exc.code == 429
        return isinstance(exc, (urllib.error.URLError, OSError))

    @retry(stop=stop_after_attempt(hook.attempts), wait=wait_exponential(multiplier=0.5, max=5),
           retry=retry_if_exception(transient), reraise=True)
    def once() -> None:
        request = urllib.request.Request(hook.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": f"restorecheck/{__version__}"})
        try:
            with urllib.request.urlopen(request, timeout=hook.timeout) as response:
                response.read(65536)
        except urllib.error.HTTPError as exc:
            exc.close()  # its response, which would otherwise stay open until collected
            raise

    once()


def _notify(hook: Webhook | None, payload: dict[str, Any]) -> str | None:
    """The webhook, when the run did not pass; a failure is a warning line, never the exit code."""
    if hook is None or payload["exit_code"] == 0:
        return None
    try:
        post_webhook(hook, payload)
    except Exception as exc:
        why = str(getattr(exc, "reason", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = f"the on_failure webhook {mask(hook.url)} failed after {hook.attempts} attempt(s): {mask(why)}"
        log.warning(message)
        return message
    return None


# --- the run ---------------------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return mask(text.splitlines()[0] if text else exc.__class__.__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _prepare_output(output_dir: Path) -> None:
    from restorecheck.paths import require_dir

    require_dir(output_dir, "output_dir", hint="give a directory in restorecheck.toml's [defaults]")
    try:
        output_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BadInputError(f"cannot create output_dir {output_dir}: {exc.strerror or exc}",
                            "give a writable directory in restorecheck.toml's [defaults]") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise BadInputError(f"output_dir {output_dir} is not writable", "give a writable directory")


def select_jobs(config: Config, only: Sequence[str]) -> list[Job]:
    """The jobs ``--only`` names (all when none), or ConfigError (exit 2) for a name the config lacks."""
    if not only:
        return list(config.jobs)
    names = {j.name for j in config.jobs}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise ConfigError(f"--only {unknown[0]!r}: no such job in {config.path}",
                          f"the jobs are: {', '.join(j.name for j in config.jobs)}")
    return [j for j in config.jobs if j.name in only]


def _free_stamp(output_dir: Path, jobs: Sequence[Job], stamp: str) -> str:
    """``stamp``, or ``stamp-N`` when a run within the same second left its directory or backups."""
    n, candidate = 0, stamp
    while any((output_dir / j.name / candidate).exists()
              or any((output_dir / j.name / "backups").glob(f"{glob.escape(j.name)}-{candidate}.*")) for j in jobs):
        n += 1
        candidate = f"{stamp}-{n}"
    return candidate


def _stamp_dir(output_dir: Path, job: str, stamp: str) -> Path:
    base = output_dir / job
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    d, n = base / stamp, 0
    while d.exists():
        n += 1
        d = base / f"{stamp}-{n}"
    d.mkdir(mode=0o700)
    return d


def run(config: Config, *, only: Sequence[str] = (), parallel: int = 1,
        on_result: Callable[[JobResult], None] | None = None) -> RunSummary:
    """Run the jobs of ``config`` (``only``: these names), ``parallel`` at a time. See the module."""
    from restorecheck.report import (
        check_writable,
        combined_junit,
        combined_prometheus,
        write_atomic,
        write_outputs,
    )

    jobs = select_jobs(config, only)
    _prepare_output(config.output_dir)
    check_writable(config.junit_path, "junit_file")  # before any work, as verify does for --junit
    check_writable(config.metrics_path, "metrics_file")
    start_clock, started = time.monotonic(), _now()
    stamp = _free_stamp(config.output_dir, jobs, started.strftime(STAMP))
    results: list[JobResult] = []
    with run_lock(config.output_dir / LOCK_NAME, config.path), open_history(config.history_url) as history:

        def finish(job: Job, report: Report, code: int, seconds: float) -> None:
            verified = report.verdict == "pass"
            try:
                baseline = baseline_for(history, job.name, job.thresholds)
            except Exception as exc:  # a history that broke mid-run costs the checks, not the job
                log.warning("job %s: the history could not be read (%s); drift, rto_trend and backup_size "
                            "were not checked", job.name, _short(exc))
                baseline = Baseline(job.name, thresholds=job.thresholds)
            report = between_nights(report, baseline)
            code = _code_of(report) if code in (0, 1) else code
            out = _stamp_dir(config.output_dir, job.name, stamp)
            try:
                write_outputs(report, report_file=out / "report.json", junit_file=out / "junit.xml",
                              metrics_file=out / "metrics.prom")
            except RestorecheckError as exc:
                log.warning("job %s: %s", job.name, exc.one_line())
            run_id: int | None = None
            try:
                run_id = history.record(job.name, report, code, verified=verified)
                apply_retention(job, config.output_dir, history, out.name, _now())
            except Exception as exc:
                log.warning("job %s: not recorded in the history, or its retention not applied: %s", job.name, _short(exc))
            result = JobResult(job.name, job.kind, report, code, out, seconds, run_id)
            results.append(result)
            if on_result is not None:
                on_result(result)

        if parallel <= 1 or len(jobs) <= 1:
            for job in jobs:
                finish(job, *_run_one(job, config.output_dir, stamp))
        else:
            _run_parallel(jobs, config.output_dir, stamp, parallel, finish)
        order = {j.name: i for i, j in enumerate(jobs)}
        results.sort(key=lambda r: order[r.job])
        summary = RunSummary(config.path, _iso(started), time.monotonic() - start_clock, tuple(results),
                             config.junit_path, config.metrics_path, config.output_dir / "summary.json")
        pairs = [(r.job, r.report) for r in results]
        for path, text in ((summary.junit_file, combined_junit(pairs)),
                           (summary.metrics_file, combined_prometheus([(r.job, r.report, r.exit_code) for r in results])),
                           (summary.summary_file, json.dumps(summary.to_dict(), indent=2, default=str) + "\n")):
            try:
                write_atomic(path, text)
            except RestorecheckError as exc:
                log.warning("%s", exc.one_line())
    error = _notify(config.on_failure, summary.to_dict())
    return dataclasses.replace(summary, webhook_error=error)


def _run_parallel(jobs: Sequence[Job], output_dir: Path, stamp: str, parallel: int,
                  finish: Callable[[Job, Report, int, float], None]) -> None:
    """Jobs on worker threads, finished (history, reports) in the calling thread as each completes.

    Ctrl-C and SIGTERM reach the main thread only: it then raises the same exception in every
    worker still running (``PyThreadState_SetAsyncExc``), so that each unwinds its pipeline's
    ExitStack (throwaway servers, work directories), waits for them, and re-raises.
    """
    idents: dict[int, int] = {}  # worker thread ident -> 1 while it runs a job
    lock = threading.Lock()

    def work(job: Job) -> tuple[Report, int, float]:
        ident = threading.get_ident()
        with lock:
            idents[ident] = 1
        try:
            return _run_one(job, output_dir, stamp)
        finally:
            with lock:
                idents.pop(ident, None)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="restorecheck-job")
    futures = {pool.submit(work, job): job for job in jobs}
    try:
        for fut in concurrent.futures.as_completed(futures):
            finish(futures[fut], *fut.result())
    except (KeyboardInterrupt, Terminated) as exc:
        for fut in futures:
            fut.cancel()
        kind = type(exc)
        with lock:
            running = list(idents)
        for ident in running:
            # a Ctrl-C (signals.Interrupted, a KeyboardInterrupt) as a KeyboardInterrupt: psycopg then
            # cancels the worker's query in flight
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(
                KeyboardInterrupt if issubclass(kind, KeyboardInterrupt) else _StopJob))
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


class _StopJob(BaseException):
    """Raised in a worker thread to stop its job when the run got SIGTERM."""
