"""Terminal rendering for ``restorecheck seed``: a progress bar on stderr, a table on stdout."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from restorecheck.engines.base import ProgressFn, no_progress
from restorecheck.seed.result import SeedResult


@contextlib.contextmanager
def progress_bar(enabled: bool) -> Iterator[ProgressFn]:
    """A ProgressFn drawing one bar on stderr when ``enabled`` and stderr is a terminal."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield no_progress
        return
    with Progress(TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task_id = bar.add_task("seed", total=None)

        def update(task: str, done: float, total: float | None) -> None:
            bar.update(task_id, description=task, completed=done, total=total)

        yield update


def render_result(result: SeedResult, console: Console | None = None) -> None:
    """A short table of what was loaded, and the totals."""
    console = console or Console(file=sys.stdout, markup=False)
    console.print(f"seeded {result.target} ({result.engine}, scale {result.scale}, seed {result.seed})",
                  highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in result.tables.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    extra = f", {result.large_objects:,} large objects" if result.large_objects else ""
    console.print(f"{result.rows:,} rows in {len(result.tables)} tables{extra}, "
                  f"{result.seconds:.2f} s ({result.rows_per_second:,.0f} rows/s)")
    for note in result.notes:
        console.print(f"note: {note}")
