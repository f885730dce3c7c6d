"""What ``seed`` returns, and the dataset's fixed SQL files."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from restorecheck.errors import BadInputError

MARKER = "restorecheck known dataset"
MAX_SCALE = 100_000
# the progress task of the bulk load (the same name as the drill's seed phase: one bar, not one per table)
PROGRESS_TASK = "seed the known dataset"


@dataclass(frozen=True)
class SeedResult:
    """What was loaded. ``tables`` maps each relation that holds rows (tables, leaf partitions,
    the materialized view) by qualified name to its row count after the seed; ``rows`` is their sum."""

    tables: dict[str, int]
    rows: int
    seconds: float
    engine: str = ""
    target: str = ""  # display form, password masked
    scale: int = 1
    seed: int = 0
    large_objects: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. "roles not created: no CREATEROLE"

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def fixture_sql(engine: str, name: str) -> str:
    """The text of a shipped fixture file, e.g. ``fixture_sql("postgres", "schema.sql")``.

    The canonical copies live in the package (``restorecheck/data/fixtures``) so that an
    installed wheel has them; ``fixtures/postgres`` and ``fixtures/sqlite`` in a checkout
    point there.
    """
    ref = resources.files("restorecheck").joinpath("data", "fixtures", engine, name)
    return ref.read_text(encoding="utf-8")


def check_scale(scale: int, seed: int) -> None:
    if not isinstance(scale, int) or isinstance(scale, bool) or not 1 <= scale <= MAX_SCALE:
        raise BadInputError(f"--scale must be a whole number from 1 to {MAX_SCALE}, not {scale!r}",
                            "scale 1 is about 4,400 rows; each step adds as many")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise BadInputError(f"--seed must be a whole number from 0 to 2**63-1, not {seed!r}",
                            "the same seed gives the same rows")
