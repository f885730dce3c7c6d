"""``python -m restorecheck.seed --write-golden``: regenerate fixtures/golden/*.json on purpose.

Seeds scale 1, seed 0 into a throwaway local PostgreSQL cluster and a temporary SQLite file,
computes the plain-SQL digests of ``restorecheck.seed.golden`` and writes them. Run it only when
the dataset was changed deliberately (and bump ``GENERATOR_VERSION``), then commit the files.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from restorecheck.dburl import SqliteRef
from restorecheck.seed import seed
from restorecheck.seed.golden import GOLDEN_SCALE, GOLDEN_SEED, postgres_digest, sqlite_digest, write_golden


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m restorecheck.seed", description=__doc__.splitlines()[0])
    parser.add_argument("--write-golden", action="store_true", required=True,
                        help="seed scale 1 / seed 0 and write fixtures/golden/{postgresql,sqlite}.json")
    parser.add_argument("--engine", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--out", type=Path, default=None, help="directory (default: fixtures/golden)")
    parser.add_argument("--pg-bin", default=None, help="PostgreSQL binaries for the throwaway cluster")
    args = parser.parse_args(argv)
    if args.engine in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="restorecheck-golden-") as tmp:
            path = Path(tmp) / "golden.db"
            seed(SqliteRef(path), scale=GOLDEN_SCALE, seed=GOLDEN_SEED)
            print(f"wrote {write_golden('sqlite', sqlite_digest(path), args.out)}")
    if args.engine in ("postgresql", "both"):
        from restorecheck.provisioners import provision_postgres

        with provision_postgres("local", pg_bin=args.pg_bin) as server, server.fresh_database() as ref:
            seed(ref, scale=GOLDEN_SCALE, seed=GOLDEN_SEED)
            print(f"wrote {write_golden('postgresql', postgres_digest(ref), args.out)} "
                  f"(PostgreSQL {server.version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
