"""The known dataset: a canary database whose every row restorecheck knows.

``seed(target, scale=1, seed=0)`` loads it into an empty PostgreSQL database or SQLite file.
The same scale and seed give the same content on every machine; ``scale`` multiplies every
table's row count. The schema SQL ships in ``restorecheck/data/fixtures/{postgres,sqlite}``
(``fixtures/`` of a checkout points there), the golden counts and digests of scale 1 are in
``fixtures/golden/``; ``python -m restorecheck.seed --write-golden`` regenerates them.
"""

from __future__ import annotations

from restorecheck.dburl import DatabaseRef, PostgresRef, SqliteRef
from restorecheck.engines.base import ProgressFn, no_progress
from restorecheck.errors import BadInputError
from restorecheck.paths import require_sqlite_file
from restorecheck.seed.result import SeedResult

__all__ = ["SeedResult", "seed"]


def seed(
    target: DatabaseRef,
    *,
    scale: int = 1,
    seed: int = 0,
    replace: bool = False,
    progress: ProgressFn = no_progress,
) -> SeedResult:
    """Load the known dataset into ``target``.

    Refuses (``TargetNotEmptyError``, exit 2) a target that already holds any table unless
    ``replace``, which drops and recreates only the dataset's own objects. An unreachable server
    raises ``SourceUnreachableError`` (exit 3).
    """
    if isinstance(target, PostgresRef):
        from restorecheck.seed.postgres import seed_postgres

        return seed_postgres(target, scale=scale, seed=seed, replace=replace, progress=progress)
    if isinstance(target, SqliteRef):
        from restorecheck.seed.sqlite import seed_sqlite

        require_sqlite_file(target.path, "TARGET", hint="give a SQLite database file (it is created if missing)")

        return seed_sqlite(target, scale=scale, seed=seed, replace=replace, progress=progress)
    raise BadInputError(f"cannot seed a {type(target).__name__}: it is not a database reference",
                        "give a postgresql:// URL or a SQLite file path")
