"""The command line: parse, call one library function, render, choose the exit code.

``main()`` is the one place where exceptions become the SPEC's exit codes:
0 verified, 1 verification failed, 2 bad input, 3 environment failure. Without ``-v`` an error
is one line on stderr, without a traceback; nothing ever prints a password.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from restorecheck import __version__
from restorecheck.dburl import mask
from restorecheck.errors import ExitCode, RestorecheckError
from restorecheck.signals import Terminated, handle_termination, ignore_from_now_on

if TYPE_CHECKING:  # the choices below are these Literals' values (tests/unit/test_typed_contracts.py)
    from restorecheck.model import DumpFormat, EngineName, Manifest

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("restorecheck")


class Ctx:
    """What the group passes to every command."""

    def __init__(self, verbose: int, debug: bool) -> None:
        self.verbose = verbose
        self.debug = debug


def _setup_logging(verbose: int, debug: bool) -> None:
    level = logging.DEBUG if (debug or verbose > 1) else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("restorecheck: %(message)s"))
    root = logging.getLogger("restorecheck")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # psycopg's own warnings ("error ignored in rollback ...", when SIGTERM cut a query short) are
    # for -v: without it stderr keeps to restorecheck's one line (Python's last-resort handler
    # would print them bare)
    driver = logging.getLogger("psycopg")
    driver.handlers[:] = [handler] if (debug or verbose) else [logging.NullHandler()]
    driver.propagate = False


class _CtrlC(BaseException):
    """A KeyboardInterrupt carried past click, which would print a blank line of its own and turn it
    into a bare Abort: a cron log must get the one 'interrupted by Ctrl-C' line and nothing else."""


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _CtrlC() from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="restorecheck")
@click.option("-v", "--verbose", count=True, help="More detail on stderr; tracebacks on errors.")
@click.option("--debug", is_flag=True, help="Log every command run and every SQL phase.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """Prove that a database backup restores, and that the restored copy is the same database.

    Start with 'restorecheck drill': a self-contained self-test on this machine.
    """
    _setup_logging(verbose, debug)
    ctx.obj = Ctx(verbose, debug)


def output_options(f: F) -> F:
    """The options of every command that verifies (SPEC)."""
    f = click.option("-v", "--verbose", "cmd_verbose", count=True, help="Same as the global -v.")(f)
    f = click.option("--no-progress", is_flag=True, help="Never show progress bars.")(f)
    f = click.option("-q", "--quiet", is_flag=True, help="Print nothing on success (for cron).")(f)
    f = click.option("--metrics", "metrics_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write Prometheus text-format metrics (node_exporter textfile collector).")(f)
    f = click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write the HTML report: one self-contained page (verdict, timeline, tables, "
                          "findings, history trends, how to reproduce).")(f)
    f = click.option("--junit", "junit_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write a JUnit XML report (a testcase per table and check).")(f)
    f = click.option("--report", "report_file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
                     help="Write the JSON report to FILE ('-' for stdout).")(f)
    return f


def _pg_bin_dir(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """--pg-bin must be a directory: click's Path(file_okay=False) lets a FIFO or a device through."""
    from restorecheck.paths import require_dir

    if value is not None:
        require_dir(value, "--pg-bin", hint="give the directory that holds pg_dump, pg_restore and psql")
    return value


def target_options(f: F) -> F:
    """Where the throwaway restore target comes from."""
    f = click.option("--restore-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
                     help="Hard deadline: the restore and everything in its sandbox are killed then "
                          "(check 'restore_timeout', exit 1).")(f)
    f = click.option("--start-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
                     metavar="SECONDS",
                     help="How long a throwaway PostgreSQL server (local or docker) may take to accept "
                          "connections before the run gives up (exit 3).")(f)
    f = click.option("--sandbox", type=click.Choice(["auto", "bwrap", "none"]), default="auto", show_default=True,
                     help="OS sandbox around the throwaway server and the restore tools: bwrap "
                          "(bubblewrap), none, or auto (bwrap where it works, else none with a warning).")(f)
    f = click.option("--keep", is_flag=True, help="Keep the throwaway target and print how to connect.")(f)
    f = click.option("--trust-backup", is_flag=True,
                     help="Server URL target: restore as the URL's role, not as an unprivileged role "
                          "restorecheck makes. Only for backups you trust (see the threat model).")(f)
    f = click.option("--pg-bin", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     callback=_pg_bin_dir, help="Directory of PostgreSQL binaries to use first.")(f)
    f = click.option("--target", "target", metavar="local|docker|URL",
                     help="Throwaway target: local (default), docker, or a postgresql:// server URL.")(f)
    return f


def jobs_option(f: F) -> F:
    return click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
                        help="Parallel connections / pg_restore jobs.")(f)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and exit with the SPEC's code."""
    code = int(ExitCode.ENVIRONMENT)
    try:
        code = run_cli(argv)
    except (KeyboardInterrupt, Terminated):  # a signal while the first one's line was written: same outcome
        pass
    finally:
        ignore_from_now_on()  # the exit code is chosen: a late signal must not replace it by -SIGINT
    sys.exit(code)


def run_cli(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("-v", "--verbose", "--debug") or (a.startswith("-v") and set(a[1:]) == {"v"})
                  for a in args)
    # the handlers stay for the reporting too: a second Ctrl-C while the first one's line is
    # written is ignored, not a traceback
    with handle_termination():
        return _run_cli(args, verbose)


# the arguments of this invocation, for the HTML report's "reproduce" line (run_cli may be given them)
_ARGS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("restorecheck_args", default=())


def _run_cli(args: list[str], verbose: bool) -> int:
    _ARGS.set(tuple(args))
    try:
        rv = cli.main(args=args, prog_name="restorecheck", standalone_mode=False,
                      auto_envvar_prefix="RESTORECHECK")
        return int(rv) if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        _err("interrupted; everything restorecheck started was removed")
        return int(ExitCode.ENVIRONMENT)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare 'restorecheck': the help, as click shows it
        exc.show()
        return int(ExitCode.BAD_INPUT)
    except click.ClickException as exc:
        ctx_hint = " (see 'restorecheck --help')" if isinstance(exc, click.UsageError) else ""
        _err(mask(exc.format_message()) + ctx_hint)
        return int(ExitCode.BAD_INPUT)
    except RestorecheckError as exc:
        if verbose:
            log.exception("error")
        _err(mask(exc.one_line()))
        return int(exc.exit_code)
    except (KeyboardInterrupt, _CtrlC, Terminated) as exc:
        what = "Ctrl-C (SIGINT)" if isinstance(exc, (KeyboardInterrupt, _CtrlC)) else str(exc)
        if sys.stderr.isatty():  # end the line of the terminal's ^C echo
            click.echo("", err=True)
        _err(f"interrupted by {what}; everything restorecheck started was removed")
        return int(ExitCode.ENVIRONMENT)
    except Exception as exc:  # an unexpected error never exits 0
        if verbose:
            log.exception("internal error")
        _err(mask(f"internal error: {exc.__class__.__name__}: {exc}".splitlines()[0])
             + " (run with -v for the traceback and report it)")
        return int(ExitCode.ENVIRONMENT)


def _err(line: str) -> None:
    click.echo(f"restorecheck: error: {line}", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--pg-bin", type=click.Path(file_okay=False, path_type=Path), callback=_pg_bin_dir,
              help="Also look for PostgreSQL binaries here.")
@click.option("--sweep", is_flag=True,
              help="First remove throwaway cluster directories left behind by killed runs.")
def doctor(as_json: bool, pg_bin: Path | None, sweep: bool) -> int:
    """Say what can run here: provisioners, PostgreSQL installations, SQLite.

    Exit 0 when SQLite and at least one PostgreSQL provisioner are usable, else 3.
    """
    from restorecheck.doctor import diagnose, render_doctor

    if sweep:
        from restorecheck.provisioners.local import sweep as sweep_strays

        for d in sweep_strays():
            click.echo(f"removed {d}", err=True)

    result = diagnose(pg_bin=pg_bin)
    render_doctor(result, as_json=as_json)
    return int(ExitCode.OK if result.ok else ExitCode.ENVIRONMENT)


@cli.command("seed")
@click.argument("target")
@click.option("--scale", type=click.IntRange(1, 100_000), default=1, show_default=True,
              help="Multiplies every table's row count (scale 1 is about 4,400 rows).")
@click.option("--seed", "seed_value", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="The random seed: the same scale and seed give the same content everywhere.")
@click.option("--replace", is_flag=True,
              help="Drop and recreate the dataset's own objects; nothing else in TARGET is touched.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@click.option("--no-progress", is_flag=True, help="Never show progress bars.")
def seed_command(target: str, scale: int, seed_value: int, replace: bool, quiet: bool, no_progress: bool) -> int:
    """Load the known dataset into TARGET (a postgresql:// URL or a SQLite file).

    Refuses a TARGET that already holds tables (exit 2) unless --replace.
    """
    from restorecheck.dburl import parse_database
    from restorecheck.seed import seed
    from restorecheck.seed.console import progress_bar, render_result

    ref = parse_database(target)
    with progress_bar(not quiet and not no_progress) as progress:
        result = seed(ref, scale=scale, seed=seed_value, replace=replace, progress=progress)
    if not quiet:
        render_result(result)
    return int(ExitCode.OK)


# --- backup, verify, drill (issue 5) ----------------------------------------------------------


def _show_progress(quiet: bool, no_progress: bool) -> bool:
    return not quiet and not no_progress and sys.stderr.isatty()


def _finish(report: Any, *, quiet: bool, report_file: Path | None, junit_file: Path | None,
            metrics_file: Path | None, html_file: Path | None = None, history: _HistoryRun | None = None) -> int:
    """Write the reports asked for, print the summary, return the exit code of the verdict."""
    from restorecheck.report import render_human, write_outputs

    write_outputs(report, report_file=report_file, junit_file=junit_file, metrics_file=metrics_file)
    _write_html(report, html_file, history)
    if not quiet or report.verdict != "pass":
        # with --report - the JSON owns stdout: the summary goes to stderr
        to_stderr = str(report_file) == "-"
        click.echo(render_human(report, color=_use_color(sys.stderr if to_stderr else sys.stdout),
                                html_path=str(html_file) if html_file else None), nl=False, err=to_stderr)
    if report.kept:
        click.echo(f"restorecheck: kept the restored database: {report.kept}", err=True)
    return int(ExitCode.OK if report.verdict == "pass" else ExitCode.FAILED)


def _use_color(stream: Any) -> bool:
    """Colour only on a terminal, never with NO_COLOR set (https://no-color.org)."""
    import os

    if os.environ.get("NO_COLOR"):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _write_html(report: Any, html_file: Path | None, history: _HistoryRun | None) -> None:
    if html_file is None:
        return
    from restorecheck.html_report import command_line, render_html, write_html

    runs = history.recent_runs() if history is not None else ()
    write_html(html_file, render_html(report, history=runs, current_run_id=history.run_id if history else None,
                                      job=history.job if history is not None and history.db is not None else None,
                                      command=command_line(_ARGS.get())))


def _error_report(exc: BaseException, *, command: str, engine: EngineName, backup_path: str | Path | None,
                  report_file: Path | None, junit_file: Path | None, metrics_file: Path | None,
                  history: _HistoryRun | None = None, html_file: Path | None = None) -> None:
    """On exit 2/3 after --report/--junit/--metrics was given, still write them (verdict error).

    Also for an unexpected exception (exit 3) and for Ctrl-C/SIGTERM: a monitor must see the run.
    With --history the run is recorded there too (verdict error).
    """
    if (report_file is None and junit_file is None and metrics_file is None and html_file is None
            and (history is None or history.db is None)):
        return
    from restorecheck.model import error_report
    from restorecheck.report import write_outputs

    report, code = error_report(exc, command=command, engine=engine, backup_path=backup_path)
    if history is not None:
        history.record_error(report, code)
    # each output on its own: an unwritable --junit must not cost the monitor its --report
    for option, path in (("report", report_file), ("junit", junit_file), ("metrics", metrics_file)):
        if path is None:
            continue
        try:
            write_outputs(report, report_file=path if option == "report" else None,
                          junit_file=path if option == "junit" else None,
                          metrics_file=path if option == "metrics" else None)
        except (OSError, RestorecheckError) as err:
            log.debug("could not write the error --%s: %s", option, err)
    try:
        _write_html(report, html_file, history)
    except (OSError, RestorecheckError) as err:
        log.debug("could not write the error --html: %s", err)


def history_options(f: F) -> F:
    f = click.option("--job", "history_job", metavar="NAME",
                     help="The job name the run is recorded under with --history (default: the backup's "
                          "directory for verify, the source for drill).")(f)
    f = click.option("--history", "history_url", metavar="URL",
                     help="Record this run in a history database (a SQLAlchemy URL, e.g. "
                          "sqlite:////var/lib/restorecheck/history.db) and check it against the job's "
                          "earlier runs (drift, rto_trend, backup_size).")(f)
    return f


class _HistoryRun:
    """--history: the database opened before the work (a bad URL fails first), the run recorded after."""

    def __init__(self, url: str | None, job: str) -> None:
        self.url, self.job = url, job
        self.db: Any = None
        self.run_id: int | None = None
        self.runs: Any = None

    def open(self, stack: Any) -> None:
        if self.url is not None:
            from restorecheck.history import open_history

            self.db = stack.enter_context(open_history(self.url))

    def judge(self, report: Any) -> Any:
        if self.db is None:
            return report
        from restorecheck.nightly import record_with_history

        report, _code, self.run_id = record_with_history(self.db, self.job, report)
        self.runs = self.recent_runs()  # while the database is open
        return report

    def recent_runs(self, limit: int = 30) -> Any:
        """The job's last runs (for the HTML report's trends); none without --history."""
        if self.runs is not None:
            return self.runs
        if self.db is None:
            return ()
        try:
            return tuple(self.db.runs(self.job, limit=limit))
        except Exception as exc:  # the trends are not worth the report
            log.warning("could not read the history for the HTML report: %s", exc.__class__.__name__)
            return ()

    def record_error(self, report: Any, code: int) -> None:
        if self.db is not None:
            try:
                self.run_id = self.db.record(self.job, report, code, verified=False)
            except Exception as exc:  # the run's own error is the one to report
                log.warning("could not record the run in the history: %s", exc.__class__.__name__)


def _check_outputs(report_file: Path | None, junit_file: Path | None, metrics_file: Path | None,
                   html_file: Path | None = None) -> None:
    """Before any long work: each output file asked for can be written (else exit 2, one line)."""
    from restorecheck.report import check_writable

    for path, option in ((report_file, "--report"), (junit_file, "--junit"), (metrics_file, "--metrics"),
                         (html_file, "--html")):
        check_writable(path, option)


def _fingerprint_opts(jobs: int, lock_timeout: str, statement_timeout: str, progress: Any) -> Any:
    from restorecheck.engines.base import FingerprintOptions

    return FingerprintOptions(jobs=jobs, lock_timeout=lock_timeout, statement_timeout=statement_timeout,
                              progress=progress)


_DURATION = re.compile(r"\s*\d+(\.\d+)?\s*(us|ms|s|min|h|d)?\s*")
_COMPRESS = re.compile(r"(\d+|none|gzip|lz4|zstd)(:[\w=,]+)?")


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A PostgreSQL duration (``0``, ``500ms``, ``10s``, ``5min``): checked here, not by the source
    server after a throwaway cluster was started and seeded."""
    if not _DURATION.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a duration; give e.g. 0 (none), 500ms, 10s or 5min")
    return value


def _compression(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _COMPRESS.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a pg_dump compression; give a level 0-9 or "
                                 "METHOD[:LEVEL] with METHOD gzip, lz4, zstd or none")
    return value


def source_session_options(f: F) -> F:
    f = click.option("--statement-timeout", default="0", show_default=True, callback=_duration,
                     help="statement_timeout of the source sessions (0 = none).")(f)
    f = click.option("--lock-timeout", default="10s", show_default=True, callback=_duration,
                     help="lock_timeout of the source sessions (and pg_dump --lock-wait-timeout).")(f)
    return f


def _file_mode(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an octal file mode (such as 600 or 640)") from None
    if not 0 <= mode <= 0o666 or not mode & 0o400:
        raise click.BadParameter(f"{value} must be a file mode between 400 and 666 that the owner can read")
    return mode


def backup_format_options(f: F) -> F:
    f = click.option("--file-mode", default="600", show_default=True, callback=_file_mode, metavar="OCTAL",
                     help="Mode of the backup and its manifest (0600: only the owner can read them; "
                          "640 lets a backup group read them).")(f)
    f = click.option("--compress", "-Z", "compress", metavar="LEVEL|METHOD", callback=_compression,
                     help="pg_dump --compress (e.g. 0 for none, 1 for fast, gzip:6, lz4 on PostgreSQL 16).")(f)
    f = click.option("--format", "-F", "fmt", type=click.Choice(["custom", "directory", "tar", "plain"]),
                     default="custom", show_default=True, help="pg_dump output format.")(f)
    return f


@cli.command()
@click.argument("source")
@click.option("-o", "--output", "outdir", required=True, metavar="DIR",
              help="Directory for <name>.<ext> and <name>.manifest.json, or s3://bucket/prefix to upload both.")
@click.option("--recipient", "-r", "recipients", multiple=True, metavar="KEY",
              help="Encrypt the backup to KEY: an age recipient (age1...), an ssh public key, a file of them, "
                   "or an OpenPGP public key file (gpg --export). Repeatable.")
@backup_format_options
@click.option("--name", help="File name stem (default: <database>-<UTC timestamp>).")
@jobs_option
@click.option("--pg-bin", type=click.Path(exists=True, file_okay=False, path_type=Path),
              callback=_pg_bin_dir, help="Directory of PostgreSQL binaries to use first.")
@source_session_options
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success (for cron).")
@click.option("--no-progress", is_flag=True, help="Never show progress bars.")
def backup(source: str, outdir: str, recipients: tuple[str, ...], file_mode: int, fmt: DumpFormat, compress: str | None, name: str | None, jobs: int,
           pg_bin: Path | None, lock_timeout: str, statement_timeout: str, quiet: bool,
           no_progress: bool) -> int:
    """Take a backup of SOURCE and its manifest from the same snapshot.

    PostgreSQL: pg_dump --snapshot with the snapshot exported by the transaction that
    fingerprints the source, so the manifest describes exactly what the dump holds.
    """
    from restorecheck import pipeline
    from restorecheck.engines.base import BackupOptions
    from restorecheck.report import progress_reporter

    with progress_reporter(_show_progress(quiet, no_progress)) as progress:
        options = BackupOptions(format=fmt, jobs=jobs, name=name, compress=compress, progress=progress,
                                file_mode=file_mode,
                                fingerprint=_fingerprint_opts(jobs, lock_timeout, statement_timeout, progress))
        result = pipeline.backup(source, outdir, options, pg_bin=pg_bin, recipients=recipients)
    if not quiet:
        a = result.artifact
        enc = f", encrypted with {a.encryption}" if a.encryption else ""
        click.echo(f"backup:   {a.path} ({a.format}{enc}, {a.bytes} bytes, sha256 {a.sha256})")
        click.echo(f"manifest: {result.manifest_path} ({len(result.manifest.tables)} tables, "
                   f"{result.seconds:.1f}s)")
    for line in unread_warnings(result.manifest):
        click.echo(f"restorecheck: warning: {line}", err=True)
    return int(ExitCode.OK)


def unread_warnings(manifest: Manifest, shown: int = 5) -> list[str]:
    """Lines for the tables the manifest has no count or checksum of (a read error, row-level
    security): ``verify`` cannot compare them, which the backup's user must learn now, not at the
    first drill. A foreign table, a virtual table or a materialized view never populated is not
    read by design and is not listed."""
    missed = [t for t in manifest.tables
              if not t.readable and t.kind not in ("foreign", "virtual")
              and not (t.kind == "matview" and "never populated" in (t.note or ""))]
    lines = [f"{t.name} has no count or checksum in the manifest ({t.note or 'unreadable'}): verify will "
             "not be able to compare its rows" for t in missed[:shown]]
    if len(missed) > shown:
        lines.append(f"... and {len(missed) - shown} more tables without a count or checksum (see the manifest)")
    return lines


@cli.command()
@click.argument("backup_path", metavar="BACKUP")
@click.option("--manifest", "manifest_file", metavar="MANIFEST",
              help="The manifest to compare with, a path or s3://bucket/key (default: BACKUP's manifest beside it).")
@click.option("--identity", "-i", "identities", multiple=True, metavar="FILE",
              help="Key for an encrypted backup: an age identity file, an OpenSSH key, or an OpenPGP secret "
                   "key (gpg --export-secret-keys). Repeatable. Must be readable by its owner only.")
@click.option("--max-expanded-size", "max_expanded", metavar="SIZE", default=None,
              help="Largest size a compressed backup may expand to (e.g. 500G, or 'unlimited'); default "
                   "200 times the stored size, at least 4G (decompression bombs).")
@click.option("--against", metavar="SOURCE", help="Compare with this live database instead of a manifest.")
@target_options
@jobs_option
@click.option("--max-restore-seconds", type=click.FloatRange(min=0), metavar="SECONDS",
              help="RTO target: a slower restore is a finding (check 'rto').")
@click.option("--engine", type=click.Choice(["postgresql", "sqlite"]),
              help="The backup's engine (default: recognised from the content).")
@source_session_options
@history_options
@output_options
def verify(backup_path: str, manifest_file: str | None, identities: tuple[str, ...], max_expanded: str | None,
           against: str | None, target: str | None,
           pg_bin: Path | None, trust_backup: bool, keep: bool, sandbox: str, restore_timeout: float | None,
           start_timeout: float, jobs: int, max_restore_seconds: float | None, engine: EngineName | None,
           lock_timeout: str, statement_timeout: str, history_url: str | None, history_job: str | None,
           report_file: Path | None, junit_file: Path | None, html_file: Path | None,
           metrics_file: Path | None, quiet: bool, no_progress: bool, cmd_verbose: int) -> int:
    """Restore BACKUP into a fresh throwaway instance and check it against its reference.

    Reference: --manifest, else --against a live database, else BACKUP's manifest beside it;
    with none, the checks that need no reference run and the report says so.

    BACKUP: a file, a pg_dump directory, or s3://bucket/key; compressed (gzip, zstd, lz4, bzip2,
    xz) or encrypted (age, OpenPGP: give --identity) backups are recognised by their content.
    """
    import contextlib

    from restorecheck import pipeline, sources
    from restorecheck.engines.base import RestoreOptions
    from restorecheck.report import progress_reporter

    default_job = backup_path.rsplit("/", 1)[0] if sources.is_s3(backup_path) else str(Path(backup_path).resolve().parent)
    history = _HistoryRun(history_url, history_job or default_job)
    stack = contextlib.ExitStack()
    try:
        _check_outputs(report_file, junit_file, metrics_file, html_file)
        history.open(stack)
        with progress_reporter(_show_progress(quiet, no_progress)) as progress:
            restore = RestoreOptions(target=target, jobs=jobs, pg_bin=str(pg_bin) if pg_bin else None,
                                     keep=keep, trust_backup=trust_backup, progress=progress, sandbox=sandbox,
                                     restore_timeout=restore_timeout, start_timeout=start_timeout)
            limit = "default" if max_expanded is None else sources.parse_size(max_expanded)
            report = pipeline.verify(
                backup_path, manifest=manifest_file, against=against, restore=restore,
                fingerprint=_fingerprint_opts(jobs, lock_timeout, statement_timeout, progress),
                max_restore_seconds=max_restore_seconds, engine=engine, pg_bin=pg_bin,
                identities=identities, max_expanded_size=limit)
            report = history.judge(report)
    except (Exception, KeyboardInterrupt, Terminated) as exc:
        _error_report(exc, command="verify", engine=engine or "postgresql", backup_path=backup_path,
                      report_file=report_file, junit_file=junit_file, metrics_file=metrics_file, history=history,
                      html_file=html_file)
        raise
    finally:
        stack.close()
    return _finish(report, quiet=quiet, report_file=report_file, junit_file=junit_file,
                   metrics_file=metrics_file, html_file=html_file, history=history)


@cli.command()
@click.argument("source", required=False)
@click.option("--engine", type=click.Choice(["postgresql", "sqlite"]),
              help="Engine of the self-test when no SOURCE is given (default: postgresql). With a SOURCE it "
                   "is recognised from it; an --engine that contradicts it is an error.")
@target_options
@jobs_option
@backup_format_options
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the backup and its manifest in this directory (default: removed afterwards).")
@click.option("--scale", type=click.IntRange(1), default=1, show_default=True,
              help="Self-test: size of the known dataset.")
@click.option("--seed", "seed_value", type=int, default=0, show_default=True,
              help="Self-test: seed of the known dataset.")
@click.option("--max-restore-seconds", type=click.FloatRange(min=0), metavar="SECONDS",
              help="RTO target: a slower restore is a finding (check 'rto').")
@source_session_options
@history_options
@output_options
def drill(source: str | None, engine: EngineName | None, target: str | None, pg_bin: Path | None, trust_backup: bool,
          keep: bool, sandbox: str, restore_timeout: float | None, start_timeout: float, jobs: int,
          file_mode: int,
          fmt: DumpFormat, compress: str | None, outdir: Path | None, scale: int, seed_value: int,
          max_restore_seconds: float | None, lock_timeout: str, statement_timeout: str,
          history_url: str | None, history_job: str | None,
          report_file: Path | None, junit_file: Path | None, html_file: Path | None, metrics_file: Path | None,
          quiet: bool, no_progress: bool, cmd_verbose: int) -> int:
    """The whole cycle: backup, restore into a fresh instance, verify; each phase timed.

    With no SOURCE: a self-contained self-test on a throwaway source seeded with the known dataset.
    """
    import contextlib

    from restorecheck import pipeline
    from restorecheck.dburl import parse_database
    from restorecheck.engines.base import BackupOptions, RestoreOptions
    from restorecheck.report import progress_reporter

    engine_name: EngineName = engine or "postgresql"  # what the report names, the source's once it is parsed
    history = _HistoryRun(history_url, history_job or (mask(source) if source else f"self-test-{engine_name}"))
    stack = contextlib.ExitStack()
    try:
        _check_outputs(report_file, junit_file, metrics_file, html_file)
        history.open(stack)
        with progress_reporter(_show_progress(quiet, no_progress)) as progress:
            fp = _fingerprint_opts(jobs, lock_timeout, statement_timeout, progress)
            restore = RestoreOptions(target=target, jobs=jobs, pg_bin=str(pg_bin) if pg_bin else None,
                                     keep=keep, trust_backup=trust_backup, progress=progress, sandbox=sandbox,
                                     restore_timeout=restore_timeout, start_timeout=start_timeout)
            if source:
                engine_name = parse_database(source).engine
            backup_options = BackupOptions.for_engine(engine_name, fmt, jobs, compress=compress,
                                                      file_mode=file_mode, fingerprint=fp, progress=progress)
            report = pipeline.drill(source, engine=engine, outdir=outdir, backup_options=backup_options,
                                    restore=restore, fingerprint=fp, max_restore_seconds=max_restore_seconds,
                                    scale=scale, seed=seed_value, pg_bin=pg_bin)
            report = history.judge(report)
    except (Exception, KeyboardInterrupt, Terminated) as exc:
        _error_report(exc, command="drill", engine=engine_name, backup_path=None, report_file=report_file,
                      junit_file=junit_file, metrics_file=metrics_file, history=history, html_file=html_file)
        raise
    finally:
        stack.close()
    return _finish(report, quiet=quiet, report_file=report_file, junit_file=junit_file,
                   metrics_file=metrics_file, html_file=html_file, history=history)


# --- snapshot, compare (issue 4) ---------------------------------------------------------------


def fingerprint_options(f: F) -> F:
    f = click.option("--max-ranges", type=click.IntRange(1, 4096), default=64, show_default=True,
                     help="At most this many key ranges per table.")(f)
    f = click.option("--range-rows", type=click.IntRange(1), default=100_000, show_default=True,
                     help="Tables with more rows get key-range checksums (one range per this many rows).")(f)
    f = click.option("--strict", is_flag=True,
                     help="Checksum the text form of values (1.0 != 1.00, -0 != 0); about 2x slower.")(f)
    return f


@cli.command()
@click.argument("source")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The manifest file to write (JSON).")
@jobs_option
@fingerprint_options
@click.option("--snapshot", "snapshot_id", metavar="ID",
              help="Read in this exported snapshot (pg_export_snapshot()); its transaction must stay open.")
@source_session_options
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success (for cron).")
@click.option("--no-progress", is_flag=True, help="Never show progress bars.")
def snapshot(source: str, output: Path, jobs: int, strict: bool, range_rows: int, max_ranges: int,
             snapshot_id: str | None, lock_timeout: str, statement_timeout: str, quiet: bool,
             no_progress: bool) -> int:
    """Fingerprint the live database SOURCE into a manifest (JSON).

    Counts, checksums computed in the server (with key-range checksums for large tables), the
    schema, sequences, foreign-key orphans and large objects, all from one snapshot.
    """
    import dataclasses

    from restorecheck import pipeline
    from restorecheck.report import check_writable, progress_reporter

    check_writable(output, "-o")  # before fingerprinting a large database, not after
    with progress_reporter(_show_progress(quiet, no_progress)) as progress:
        options = dataclasses.replace(_fingerprint_opts(jobs, lock_timeout, statement_timeout, progress),
                                      strict=strict, range_rows=range_rows, max_ranges=max_ranges,
                                      snapshot=snapshot_id)
        manifest = pipeline.snapshot(source, options)
    try:
        manifest.save(output)
    except OSError as exc:
        from restorecheck.errors import BadInputError

        raise BadInputError(f"cannot write the manifest {output}: {exc.strerror or exc}",
                            "choose a writable path") from None
    if not quiet:
        rows = sum(t.rows or 0 for t in manifest.tables)
        click.echo(f"manifest: {output} ({len(manifest.tables)} tables, {rows} rows, "
                   f"{manifest.checksum_mode or 'no checksums'})")
    return int(ExitCode.OK)


@cli.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@jobs_option
@fingerprint_options
@click.option("--max-keys", type=click.IntRange(0), default=20, show_default=True,
              help="List at most this many differing keys per table.")
@click.option("--live-reference/--exact-sequences", "live_reference", default=None,
              help="Sequences of B may be ahead of A's (default when A is a live database).")
@source_session_options
@output_options
def compare(a: str, b: str, jobs: int, strict: bool, range_rows: int, max_ranges: int, max_keys: int,
            live_reference: bool | None, lock_timeout: str, statement_timeout: str,
            report_file: Path | None, junit_file: Path | None, html_file: Path | None, metrics_file: Path | None,
            quiet: bool, no_progress: bool, cmd_verbose: int) -> int:
    """Compare A (the reference) with B: live databases or manifests, in any combination.

    A JSON file is a manifest; anything else is a database. Exit 0 when they are the same
    database, 1 when they differ.
    """
    import dataclasses

    from restorecheck import pipeline
    from restorecheck.report import progress_reporter

    try:
        _check_outputs(report_file, junit_file, metrics_file, html_file)
        with progress_reporter(_show_progress(quiet, no_progress)) as progress:
            options = dataclasses.replace(_fingerprint_opts(jobs, lock_timeout, statement_timeout, progress),
                                          strict=strict, range_rows=range_rows, max_ranges=max_ranges)
            report = pipeline.compare(a, b, options=options, live_reference=live_reference, max_keys=max_keys)
    except (Exception, KeyboardInterrupt, Terminated) as exc:  # a monitor must see every run, as for verify
        _error_report(exc, command="compare", engine=pipeline.compare_engine(a, b) or "postgresql",
                      backup_path=None, report_file=report_file,
                      junit_file=junit_file, metrics_file=metrics_file, html_file=html_file)
        raise
    return _finish(report, quiet=quiet, report_file=report_file, junit_file=junit_file,
                   metrics_file=metrics_file, html_file=html_file)


# --- the nightly job (issue 11) ---------------------------------------------------------------------


def _config_path(config_file: str | None) -> Path:
    import os

    from restorecheck.config import find_config

    return find_config(config_file, os.environ)


@cli.command("run")
@click.option("--config", "-c", "config_file", metavar="FILE",
              help="restorecheck.toml (default: $RESTORECHECK_CONFIG, else ./restorecheck.toml).")
@click.option("--only", multiple=True, metavar="NAME", help="Run only this job (repeatable).")
@click.option("--parallel", "-P", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Jobs run at the same time.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON instead of the table.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the night's HTML report: one page, a section per job (with its history trends).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when every job verified (for cron).")
@click.option("-v", "--verbose", "cmd_verbose", count=True, help="Same as the global -v.")
@click.option("--check", is_flag=True,
              help="Only validate the config (and --only): exit 0 when it is valid, 2 naming the key when "
                   "not. Runs no job, connects to nothing, writes nothing.")
def run_command(config_file: str | None, only: tuple[str, ...], parallel: int, as_json: bool,
                html_file: Path | None, quiet: bool, cmd_verbose: int, check: bool) -> int:
    """The nightly job: every [[job]] of restorecheck.toml, one summary, history recorded.

    A job with a source is backed up and verified (like drill SOURCE); a job with backups has its
    newest backup verified (like verify). Per job: report.json, junit.xml and metrics.prom under
    output_dir/<job>/<UTC time>/; for the run: junit.xml (a testsuite per job), metrics.prom (a job
    label), summary.json. Exit code: the worst job's. With --check: validate only.
    """
    import json as json_module

    from restorecheck import nightly
    from restorecheck.config import load_config
    from restorecheck.report import render_run_summary

    if cmd_verbose:
        _setup_logging(cmd_verbose, False)
    config = load_config(_config_path(config_file))
    if check:
        jobs = nightly.select_jobs(config, only)
        if as_json:
            click.echo(json_module.dumps({"config": str(config.path), "valid": True,
                                          "output_dir": str(config.output_dir),
                                          "jobs": [{"name": j.name, "kind": j.kind} for j in jobs]}, indent=2))
        elif not quiet:
            click.echo(f"{config.path}: valid; {len(jobs)} job{'s' if len(jobs) != 1 else ''} "
                       f"({', '.join(f'{j.name} ({j.kind})' for j in jobs)}); output_dir {config.output_dir}")
        return int(ExitCode.OK)
    if html_file is not None:
        from restorecheck.report import check_writable

        check_writable(html_file, "--html")
    summary = nightly.run(config, only=only, parallel=parallel)
    code = summary.exit_code
    if html_file is not None:
        _write_night_html(html_file, config, summary)
    if as_json:
        click.echo(json_module.dumps(summary.to_dict(), indent=2, default=str))
    elif not quiet or code != 0:
        click.echo(render_run_summary([(r.job, r.kind, r.report, r.exit_code) for r in summary.results],
                                      color=_use_color(sys.stdout)), nl=False)
        click.echo(f"{len(summary.results)} jobs in {summary.seconds:.1f}s; reports in {config.output_dir}; "
                   f"junit {summary.junit_file}; metrics {summary.metrics_file}")
        if html_file is not None:
            click.echo(f"HTML report: {html_file}")
    return code


def _write_night_html(path: Path, config: Any, summary: Any) -> None:
    """The night's page: a section per job, each with the job's recent runs from the history."""
    from restorecheck.history import open_history
    from restorecheck.html_report import Section, command_line, render_page, write_html

    runs: dict[str, Any] = {}
    try:
        with open_history(config.history_url) as db:
            for r in summary.results:
                runs[r.job] = tuple(db.runs(r.job, limit=30))
    except Exception as exc:  # the page without trends beats no page
        log.warning("could not read the history for the HTML report: %s", exc.__class__.__name__)
    sections = [Section(r.report, job=r.job, kind=r.kind, exit_code=r.exit_code, history=runs.get(r.job, ()),
                        current_run_id=r.run_id, report_dir=str(r.report_dir) if r.report_dir else None)
                for r in summary.results]
    verdict = "PASS" if summary.exit_code == 0 else "FAIL" if summary.exit_code == 1 else "ERROR"
    night = {"seconds": summary.seconds, "started_at": summary.started_at,
             "passed": sum(1 for r in summary.results if r.report.verdict == "pass")}
    write_html(path, render_page(sections, title=f"restorecheck run: {verdict}", command=command_line(_ARGS.get()), night=night))


@cli.command("history")
@click.argument("job", required=False)
@click.option("--config", "-c", "config_file", metavar="FILE",
              help="restorecheck.toml whose history_url to read (default: $RESTORECHECK_CONFIG, else "
                   "./restorecheck.toml).")
@click.option("--history", "history_url", metavar="URL", help="The history database (instead of the config's).")
@click.option("--since", metavar="ISO|7d", help="Only runs since this time: an ISO date or time (UTC), or an age "
                                                "such as 7d, 12h, 2w.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="At most this many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs and trends as JSON.")
def history_command(job: str | None, config_file: str | None, history_url: str | None, since: str | None,
                    limit: int, as_json: bool) -> int:
    """The recorded runs, newest first, and the trends per job (restore time, backup size, rows)."""
    import datetime as dt
    import json as json_module

    from restorecheck.history import open_history, trends
    from restorecheck.report import render_history

    when = _since(since, dt.datetime.now(dt.UTC)) if since else None
    if history_url is None:
        from restorecheck.config import load_config

        history_url = load_config(_config_path(config_file)).history_url
    local = re.fullmatch(r"sqlite:///(.+)", history_url)
    if local and local.group(1) != ":memory:" and not Path(local.group(1)).exists():
        # reading must not create it: no run has been recorded there yet
        click.echo(f"no runs recorded yet ({local.group(1)} does not exist)", err=True)
        return int(ExitCode.OK)
    with open_history(history_url) as db:
        runs = db.runs(job, since=when, limit=limit)
    series = trends(runs)
    if as_json:
        click.echo(json_module.dumps({"runs": [r.to_dict() for r in runs], "trends": [t.to_dict() for t in series]},
                                     indent=2, default=str))
    else:
        click.echo(render_history(runs, series), nl=False)
    return int(ExitCode.OK)


def _since(text: str, now: Any) -> Any:
    import datetime as dt

    m = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text)
    if m:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
        return now - dt.timedelta(**{unit: int(m.group(1))})
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither an ISO date/time nor an age such as 7d",
                                 param_hint="'--since'") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


if __name__ == "__main__":  # pragma: no cover
    main()
