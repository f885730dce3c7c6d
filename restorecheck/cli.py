"""The command line: parse, call one library function, render, choose the exit code.

``main()`` is the one place where exceptions become the SPEC's exit codes:
0 verified, 1 verification failed, 2 bad input, 3 environment failure. Without ``-v`` an error
is one line on stderr, without a traceback; nothing ever prints a password.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from restorecheck import __version__
from restorecheck.dburl import mask
from restorecheck.errors import ExitCode, RestorecheckError
from restorecheck.signals import Terminated, handle_termination

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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    f = click.option("--junit", "junit_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write a JUnit XML report (a testcase per table and check).")(f)
    f = click.option("--report", "report_file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
                     help="Write the JSON report to FILE ('-' for stdout).")(f)
    return f


def target_options(f: F) -> F:
    """Where the throwaway restore target comes from."""
    f = click.option("--keep", is_flag=True, help="Keep the throwaway target and print how to connect.")(f)
    f = click.option("--pg-bin", type=click.Path(file_okay=False, path_type=Path),
                     help="Directory of PostgreSQL binaries to use first.")(f)
    f = click.option("--target", "target", metavar="local|docker|URL",
                     help="Throwaway target: local (default), docker, or a postgresql:// server URL.")(f)
    return f


def jobs_option(f: F) -> F:
    return click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
                        help="Parallel connections / pg_restore jobs.")(f)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and exit with the SPEC's code."""
    sys.exit(run_cli(argv))


def run_cli(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("-v", "--verbose", "--debug") or (a.startswith("-v") and set(a[1:]) == {"v"})
                  for a in args)
    try:
        with handle_termination():
            rv = cli.main(args=args, prog_name="restorecheck", standalone_mode=False,
                          auto_envvar_prefix="RESTORECHECK")
        return int(rv) if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        _err("interrupted; everything restorecheck started was removed")
        return int(ExitCode.ENVIRONMENT)
    except click.ClickException as exc:
        ctx_hint = " (see 'restorecheck --help')" if isinstance(exc, click.UsageError) else ""
        _err(mask(exc.format_message()) + ctx_hint)
        return int(ExitCode.BAD_INPUT)
    except RestorecheckError as exc:
        if verbose:
            log.exception("error")
        _err(mask(exc.one_line()))
        return int(exc.exit_code)
    except (KeyboardInterrupt, Terminated) as exc:
        what = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else str(exc)
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
@click.option("--pg-bin", type=click.Path(file_okay=False, path_type=Path),
              help="Also look for PostgreSQL binaries here.")
def doctor(as_json: bool, pg_bin: Path | None) -> int:
    """Say what can run here: provisioners, PostgreSQL installations, SQLite."""
    from restorecheck.doctor import diagnose, render_doctor

    result = diagnose(pg_bin=pg_bin)
    render_doctor(result, as_json=as_json)
    return int(ExitCode.OK if result.ok else ExitCode.ENVIRONMENT)


if __name__ == "__main__":  # pragma: no cover
    main()
