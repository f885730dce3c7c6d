"""Benchmark: restorecheck's PostgreSQL fingerprint against count(*) and the md5-of-row-text checksum.

Creates a table with 8 mixed columns in a throwaway local cluster, then measures (medians of warm
runs, all in the same run so that the ratios are fair):

- ``count(*)``, serial, as a sequential scan (the floor of any full scan; the ratios use it), and
  as the index-only scan the planner picks on a freshly vacuumed table;
- the md5-of-text sum that reladiff/data-diff use, serial and with 2 parallel workers;
- restorecheck's whole-database fingerprint (catalog, key ranges, counts, checksums, sequences,
  foreign keys, large objects) with --jobs 1 and --jobs 2, in hash64-v1 and text64-v1 (strict) modes.

Runs are taken round-robin across the methods, so that a change of load on a shared machine affects
all of them alike. The cluster runs with max_parallel_workers_per_gather = 0, so --jobs 1 is one core; --jobs 2 is
two connections sharing an exported snapshot, each reading half the table's blocks.

    .venv/bin/python benchmarks/bench_fingerprint.py --rows 1000000
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections.abc import Callable

import psycopg

from restorecheck.engines.base import FingerprintOptions
from restorecheck.engines.pg_fingerprint import fingerprint_postgres
from restorecheck.provisioners.local import local_cluster

COLUMNS = "id, parent_id, label, price, created, doc, payload, flag"
# The table of issue 14: bigint key, bigint foreign key, text, numeric(12,2), timestamptz, jsonb,
# bytea, boolean (the foreign key to a small parent table, so the fingerprint's closure check runs).
TABLE_SQL = """
CREATE TABLE parent (id bigint PRIMARY KEY, name text);
INSERT INTO parent SELECT g, 'parent ' || g FROM generate_series(1, 1000) g;
CREATE TABLE bench (
    id bigint PRIMARY KEY,
    parent_id bigint REFERENCES parent (id),
    label text,
    price numeric(12, 2),
    created timestamptz,
    doc jsonb,
    payload bytea,
    flag boolean
);
INSERT INTO bench
SELECT g, 1 + g % 1000, 'label ' || md5(g::text), (g % 100000) / 100.0,
       timestamptz '2024-01-01' + g * interval '1 second',
       jsonb_build_object('n', g, 'tag', 'tag ' || (g % 97)), decode(md5(g::text), 'hex'), g % 3 = 0
FROM generate_series(1, %(rows)s) g
"""
MD5_SQL = (f"SELECT count(*), coalesce(sum(('x' || substr(md5(ROW({COLUMNS})::text), 1, 15))::bit(60)::bigint), 0) "
           "FROM bench")


def interleaved_medians(methods: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median seconds per method over ``runs`` warm runs, taken round-robin (the machine is shared:
    a change of load then affects every method alike)."""
    for fn in methods.values():
        fn()  # warm
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(runs):
        for name, fn in methods.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-strict", action="store_true", help="skip the strict (text64) runs")
    args = ap.parse_args()
    settings = {"max_parallel_workers_per_gather": "0", "shared_buffers": "256MB", "work_mem": "64MB",
                "max_wal_size": "4GB", "checkpoint_timeout": "30min"}
    with local_cluster(settings=settings) as server, server.fresh_database() as db:
        print(f"PostgreSQL {server.version}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
        t = time.perf_counter()
        with psycopg.connect(db.conninfo(), autocommit=True) as conn:
            conn.execute(TABLE_SQL.replace("%(rows)s", str(int(args.rows))))  # type: ignore[arg-type]
            conn.execute("VACUUM ANALYZE bench")
            heap = conn.execute("SELECT pg_relation_size('bench')").fetchone()[0]  # type: ignore[index]
        print(f"created {args.rows:,} rows, heap {heap / 2**20:.0f} MiB, in {time.perf_counter() - t:.1f}s")
        mib = heap / 2**20
        conn = psycopg.connect(db.conninfo(), autocommit=True)

        def q(sql: str, workers: int = 0) -> Callable[[], object]:
            def run() -> object:
                conn.execute(f"SET max_parallel_workers_per_gather = {workers}")  # type: ignore[arg-type]
                return conn.execute(sql).fetchone()  # type: ignore[arg-type]
            return run

        base = FingerprintOptions()
        methods: dict[str, Callable[[], object]] = {
            "count(*) (index-only scan)": q("SELECT count(*) FROM bench"),
            "count(*)": q("SELECT count(*) FROM bench WHERE id + 0 IS NOT NULL"),
            "md5-of-text": q(MD5_SQL),
            "md5-of-text, 2 workers": q(MD5_SQL, 2),
        }
        for jobs in (1, 2):
            opts = dataclasses.replace(base, jobs=jobs)
            methods[f"fingerprint --jobs {jobs}"] = lambda o=opts: fingerprint_postgres(db, o)
        v1 = dataclasses.replace(base, hash_version=1)
        methods["fingerprint --jobs 1, hash64-v1"] = lambda o=v1: fingerprint_postgres(db, o)
        if not args.no_strict:
            for jobs in (1, 2):
                opts = dataclasses.replace(base, jobs=jobs, strict=True)
                methods[f"fingerprint --strict --jobs {jobs}"] = lambda o=opts: fingerprint_postgres(db, o)
        results = interleaved_medians(methods, args.runs)
        conn.close()
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        count, md5 = results["count(*)"], results["md5-of-text"]
        print(f"\n{'method':34} {'seconds':>8} {'rows/s':>12} {'MiB/s':>8} {'x count(*)':>11} {'md5/this':>9}")
        for name, secs in results.items():
            print(f"{name:34} {secs:8.2f} {args.rows / secs:12,.0f} {mib / secs:8.0f} {secs / count:11.1f} "
                  f"{md5 / secs:9.1f}")


if __name__ == "__main__":
    main()
