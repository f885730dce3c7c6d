"""How fast ``restorecheck seed`` loads the known dataset, against baselines from the same run.

    .venv/bin/python benchmarks/bench_seed.py                      # scale 1 and ~1M rows, both engines
    .venv/bin/python benchmarks/bench_seed.py --engine sqlite --scales 1,50
    .venv/bin/python benchmarks/bench_seed.py --pg-bin /usr/lib/postgresql/15/bin

For each engine and scale it prints rows, seconds and rows/s of ``seed``, and two ratios:
- ``gen%``: the share of the time spent generating rows in Python (the generators run alone);
- ``vs per-row``: seed's rows/s over a per-row baseline measured here, the same scale-1 rows
  inserted one statement per row (PostgreSQL: one INSERT round trip per row in autocommit;
  SQLite: one INSERT and COMMIT per row), which is what COPY / executemany in one transaction avoid.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from restorecheck.dburl import PostgresRef, SqliteRef
from restorecheck.seed import pg_data, seed
from restorecheck.seed import sqlite as sq

# scale giving about a million rows (every table grows linearly)
MILLION = {"postgresql": 230, "sqlite": 324}


def generation_seconds(engine: str, scale: int) -> float:
    specs: list[Any] = list(pg_data.TABLES) if engine == "postgresql" else list(sq.TABLES)
    start = time.perf_counter()
    for spec in specs:
        for _ in spec.generate(scale, 0):
            pass
    return time.perf_counter() - start


@contextlib.contextmanager
def pg_databases(pg_bin: str | None, target: str | None) -> Iterator[Any]:
    from restorecheck.provisioners import provision_postgres

    with provision_postgres(target or "local", pg_bin=pg_bin) as server:
        print(f"# PostgreSQL {server.version} ({server.kind})")
        yield server


def pg_per_row_baseline(ref: PostgresRef) -> float:
    """rows/s of one INSERT round trip per row (scale-1 rc_shop.orders and order_lines)."""
    specs = [s for s in pg_data.TABLES if s.table in ("customers", "orders", "order_lines")]
    with psycopg.connect(ref.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA base")
        for s in specs:
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {})").format(
                sql.Identifier("base", s.table), sql.Identifier(s.schema, s.table)))
        n = 0
        start = time.perf_counter()
        for s in specs:
            stmt = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                sql.Identifier("base", s.table), sql.SQL(", ").join(map(sql.Identifier, s.columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(s.columns)))
            for row in s.generate(1, 0):
                conn.execute(stmt, row)
                n += 1
        return n / (time.perf_counter() - start)


def sqlite_per_row_baseline(tmp: Path) -> float:
    path = tmp / "baseline.db"
    seed(SqliteRef(path))  # the schema
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    for name in ("rc_order_lines", "rc_orders"):
        conn.execute(f"DELETE FROM {name}")
    n = 0
    start = time.perf_counter()
    for t in sq.TABLES:
        if t.name not in ("rc_orders", "rc_order_lines"):
            continue
        stmt = f"INSERT INTO {t.name} ({', '.join(t.columns)}) VALUES ({', '.join('?' * len(t.columns))})"
        for row in t.generate(1, 0):
            conn.execute("BEGIN")
            conn.execute(stmt, row)
            conn.execute("COMMIT")
            n += 1
    conn.close()
    return n / (time.perf_counter() - start)


def line(engine: str, scale: int, rows: int, seconds: float, gen: float, baseline: float) -> None:
    rate = rows / seconds
    print(f"{engine:<10} scale {scale:>5}  rows {rows:>10,}  seconds {seconds:>8.2f}  rows/s {rate:>10,.0f}  "
          f"gen% {100 * gen / seconds:>4.0f}  vs per-row x{rate / baseline:,.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--scales", default=None,
                        help="comma-separated scales (default: 1 and the ~1M-row scale of each engine)")
    parser.add_argument("--pg-bin", default=None)
    parser.add_argument("--target", default=None, help="local (default), docker or a postgresql:// server URL")
    args = parser.parse_args(argv)
    engines = ("postgresql", "sqlite") if args.engine == "both" else (args.engine,)
    for engine in engines:
        scales = [int(s) for s in args.scales.split(",")] if args.scales else [1, MILLION[engine]]
        if engine == "sqlite":
            with tempfile.TemporaryDirectory(prefix="bench-seed-") as tmp:
                baseline = sqlite_per_row_baseline(Path(tmp))
                print(f"# SQLite {sqlite3.sqlite_version}; per-row baseline {baseline:,.0f} rows/s")
                for scale in scales:
                    path = Path(tmp) / f"s{scale}.db"
                    r = seed(SqliteRef(path), scale=scale)
                    line(engine, scale, r.rows, r.seconds, generation_seconds(engine, scale), baseline)
        else:
            with pg_databases(args.pg_bin, args.target) as server:
                with server.fresh_database() as ref:
                    seed(ref)
                    baseline = pg_per_row_baseline(ref)
                print(f"# per-row baseline {baseline:,.0f} rows/s")
                for scale in scales:
                    with server.fresh_database() as ref:
                        r = seed(ref, scale=scale)
                    line(engine, scale, r.rows, r.seconds, generation_seconds(engine, scale), baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
