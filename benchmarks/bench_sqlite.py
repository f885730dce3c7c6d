"""SQLite: restorecheck backup + verify against the sqlite3 shell's .backup and a plain file copy.

    .venv/bin/python benchmarks/bench_sqlite.py --size-mb 256 --rounds 3 --workdir /var/tmp/rc-bench

Generates a database of about ``--size-mb`` megabytes (an orders table with an index, of mixed
storage classes, and a WITHOUT ROWID table), reads it once so that every contender starts from a
warm page cache, then times in the same run:

- ``sqlite3 SRC ".backup DST"``: the shell's online backup, the baseline;
- ``shutil.copyfile``: a plain file copy (what a careless backup does);
- ``restorecheck backup``: the online backup API in one read transaction plus the manifest of the
  copy (every row of every table encoded and hashed, sha256 of the file);
- ``restorecheck verify``: sha256, a private copy, full ``PRAGMA integrity_check``, every row
  checksummed again, ``foreign_key_check``, compared with the manifest.

and two baselines for verify and the checksum: ``PRAGMA integrity_check`` + ``foreign_key_check``
alone (what verify must run whatever the checksum), and the scan floor (``sum(length(col))`` over
every value: one SQL function per value and nothing else), beside the checksums alone on one
connection. ``--rounds`` rounds; prints medians with their spread (min-max), wall and CPU seconds,
and the three targets of issue 14: backup <= 3x ``.backup``, verify <= 1.3x the checks alone,
checksums >= 300 MB/s on one core. The sqlite3 shell is needed (Debian: ``apt-get install -y
sqlite3``); benchmarks are not run by CI.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROWS_PER_MB = {"narrow": 8600, "wide": 240}  # orders rows per MB of file, table and index


# Child-process code shared by bench_scale.py and bench_sqlite_scale.py (after their imports, which
# include threading): peaks of RssAnon (heap), RssFile (mapped file pages) and RssShmem (mapped pages of
# /dev/shm, where a small restored copy is made) in KiB, sampled every
# 20 ms by ``sample`` until ``stop`` is set.
MEMORY_SAMPLER = r"""
peak = {"RssAnon": 0, "RssFile": 0, "RssShmem": 0}
stop = threading.Event()

def sample():
    while True:
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(":")[0]
                if key in peak:
                    peak[key] = max(peak[key], int(line.split()[1]))
        if stop.wait(0.02):
            return
"""


def generate(path: Path, size_mb: int, shape: str = "narrow") -> None:
    """About ``size_mb`` MB of data, generated inside SQLite (random content, fixed shape).

    ``narrow``: orders rows of about 140 bytes (seven short values); ``wide``: about 3 KB per row
    (a 2 KB text and a 1 KB blob beside the same short values).
    """
    rows = max(1000, size_mb * ROWS_PER_MB[shape])
    wide = shape == "wide"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(
        """
        PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA user_version = 3;
        CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id),
                            ref TEXT, amount REAL, note TEXT, payload BLOB, qty);
        CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
        """
    )
    conn.execute("BEGIN")
    conn.execute("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c LIMIT 100000) "
                 "INSERT INTO customers SELECT i, 'customer ' || i FROM c")
    conn.execute(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c LIMIT ?) "
        "INSERT INTO orders SELECT i, 1 + abs(random()) % 100000, 'ref-' || hex(randomblob(4)), "
        "abs(random() % 10000000) / 100.0, "
        + ("hex(randomblob(1024)), randomblob(1024), " if wide else
           "substr('lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor', "
           "1, abs(random()) % 70), randomblob(abs(random()) % 48), ") +
        "CASE i % 5 WHEN 0 THEN NULL WHEN 1 THEN i WHEN 2 THEN i * 0.5 WHEN 3 THEN 'q' || i "
        "ELSE x'00ff' END FROM c",
        (rows,),
    )
    conn.execute("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c LIMIT ?) "
                 "INSERT INTO kv SELECT printf('key%09d', i), i * 1.5 FROM c", (rows // 10,))
    conn.execute("COMMIT")
    conn.execute("CREATE INDEX orders_customer ON orders(customer_id)")
    conn.close()


def narrow_source(directory: Path, size_mb: int) -> Path:
    """``directory/source-narrow-<size_mb>.db``, generated when missing (kept to be reused by later
    runs), then read once so that every contender starts from a warm page cache."""
    src = directory / f"source-narrow-{size_mb}.db"
    if not src.exists():
        print(f"generating about {size_mb} MB of narrow rows in {src} ...", flush=True)
        tmp = src.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        generate(tmp, size_mb, "narrow")
        tmp.replace(src)
    with open(src, "rb") as f:
        while f.read(16 << 20):
            pass
    return src


def mandated_checks(path: Path) -> None:
    """PRAGMA integrity_check and foreign_key_check alone, as verify runs them (same page cache
    and memory map settings), to show how much of the ratio no checksum design can remove."""
    from restorecheck.engines.sqlite import connect_readonly

    conn = connect_readonly(path, private=True)
    try:
        conn.execute("PRAGMA integrity_check(100)").fetchall()
        conn.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        conn.close()


def checksums_alone(path: Path) -> None:
    """Every table's row count and typed checksum (with key ranges), as a fingerprint reads them,
    on one connection: the checksum throughput."""
    from restorecheck.engines.base import FingerprintOptions
    from restorecheck.engines.sqlite import checksum_table, connect_readonly, read_tables

    conn = connect_readonly(path, private=True)
    try:
        conn.execute("BEGIN")
        for t in read_tables(conn):
            checksum_table(conn, t, FingerprintOptions())
    finally:
        conn.close()


def checksums_by_sql(path: Path) -> None:
    """The same checksums with the C row encoder switched off (``RESTORECHECK_SQLITE_NATIVE=0``):
    what an install without restorecheck/_sqlite_rows.c computes, the encoding evaluated by SQL."""
    import os

    os.environ["RESTORECHECK_SQLITE_NATIVE"] = "0"
    try:
        checksums_alone(path)
    finally:
        del os.environ["RESTORECHECK_SQLITE_NATIVE"]


def scan_floor(path: Path) -> None:
    """One SQL function per value and nothing else (``sum(length(col))`` over every column of every
    table): what any encoding evaluated per value by SQLite costs at least, the checksum's floor."""
    from restorecheck.engines.sqlite import connect_readonly, quote_identifier, read_tables

    conn = connect_readonly(path, private=True)
    try:
        for t in read_tables(conn):
            cols = ", ".join(f"sum(length({quote_identifier(c.name)}))" for c in t.data_columns)
            conn.execute(f"SELECT {cols} FROM main.{quote_identifier(t.name)}").fetchone()
    finally:
        conn.close()


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, the result)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - start, time.process_time() - cpu, result


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def shell_present(sqlite3: str) -> bool:
    """The sqlite3 shell is the baseline of these benchmarks: say how to get it when it is missing."""
    if Path(sqlite3).exists():
        return True
    print(f"the sqlite3 shell {sqlite3} is missing (the baseline): apt-get install -y sqlite3", file=sys.stderr)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=256, help="database size to generate (default 256)")
    parser.add_argument("--shape", choices=sorted(ROWS_PER_MB), default="narrow",
                        help="narrow rows (~140 bytes, the default) or wide rows (~3 KB)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternated (default 3)")
    parser.add_argument("--workdir", type=Path, help="where to put the files (default: a temp dir)")
    parser.add_argument("--sqlite3", default=shutil.which("sqlite3") or "/usr/bin/sqlite3",
                        help="the sqlite3 shell (default: from PATH; Debian: apt-get install -y sqlite3)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args(argv)
    if not shell_present(args.sqlite3):
        return 2

    from restorecheck import pipeline
    from restorecheck.dburl import SqliteRef
    from restorecheck.engines.base import BackupOptions

    work = args.workdir or Path(tempfile.mkdtemp(prefix="restorecheck-bench-sqlite-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"source-{args.shape}-{args.size_mb}.db"
    try:
        if not src.exists():
            print(f"generating about {args.size_mb} MB of {args.shape} rows in {src} ...", flush=True)
            generate(src, args.size_mb, args.shape)
        mb = src.stat().st_size / 1e6
        print(f"source: {mb:.0f} MB ({args.shape} rows), sqlite {sqlite3.sqlite_version}, "
              f"python {sys.version.split()[0]}, {args.rounds} rounds, warm page cache")
        src.read_bytes()
        names = ("shell", "copy", "backup", "verify", "checks", "checksums", "by_sql", "floor")
        wall: dict[str, list[float]] = {k: [] for k in names}
        cpu: dict[str, list[float]] = {k: [] for k in names}
        phases: dict[str, list[float]] = {}
        for r in range(args.rounds):
            for p in ("shell.db", "copy.db"):
                (work / p).unlink(missing_ok=True)
            shutil.rmtree(work / "rc", ignore_errors=True)
            steps: list[tuple[str, Callable[[], Any]]] = [
                ("shell", lambda: subprocess.run([args.sqlite3, str(src), f".backup {work / 'shell.db'}"],
                                                 check=True)),
                ("copy", lambda: shutil.copyfile(src, work / "copy.db")),
                ("backup", lambda: pipeline.backup(SqliteRef(src), work / "rc", BackupOptions(name="source"))),
                ("checks", lambda: mandated_checks(work / "copy.db")),
                ("checksums", lambda: checksums_alone(work / "copy.db")),
                ("by_sql", lambda: checksums_by_sql(work / "copy.db")),
                ("floor", lambda: scan_floor(work / "copy.db")),
            ]
            results: dict[str, Any] = {}
            for key, fn in steps:
                w, c, results[key] = timed(fn)
                wall[key].append(w)
                cpu[key].append(c)
            artifact = results["backup"].artifact.path
            w, c, report = timed(functools.partial(pipeline.verify, artifact))
            wall["verify"].append(w)
            cpu["verify"].append(c)
            if report.verdict != "pass":
                print(f"verify did not pass: {[f.message for f in report.findings]}", file=sys.stderr)
                return 1
            for k, v in results["backup"].manifest.facts.get("backup_phases", {}).items():
                phases.setdefault(f"backup: {k}", []).append(float(v))
            for k, v in report.phases.items():
                phases.setdefault(f"verify: {k}", []).append(float(v))
            print(f"  round {r + 1}: " + ", ".join(f"{k} {wall[k][-1]:.2f} s" for k in names), flush=True)
        print("seconds, median (min-max) of the rounds; CPU is this process's own (the sqlite3 shell "
              "and verify's side process not counted)")
        labels = {"shell": ".backup (sqlite3 shell)", "copy": "shutil.copyfile",
                  "backup": "restorecheck backup", "verify": "restorecheck verify",
                  "checks": "integrity + foreign_key_check alone", "checksums": "checksums alone (one core)",
                  "by_sql": "checksums by SQL (no C encoder)",
                  "floor": "scan floor: length() of every value"}
        for k in names:
            print(f"  {labels[k]:<38} {spread(wall[k])} s   CPU {spread(cpu[k])} s   "
                  f"{mb / statistics.median(wall[k]):6.0f} MB/s")
        for k, v in phases.items():
            print(f"    {k:<36} {spread(v)} s")

        def ratio(a: str, b: str) -> str:
            return spread([x / y for x, y in zip(wall[a], wall[b], strict=True)])

        mbps = [mb / t for t in wall["checksums"]]
        mbps_cpu = [mb / t for t in cpu["checksums"]]
        floor = [mb / t for t in wall["floor"]]
        print("targets (ratios per round, median (min-max)):")
        print(f"  backup / .backup                       {ratio('backup', 'shell')}x   target <= 3x")
        print(f"  verify / (integrity + fk checks)       {ratio('verify', 'checks')}x   target <= 1.3x")
        print(f"  checksum throughput                    {spread(mbps, '{:.0f}')} MB/s "
              f"({spread(mbps_cpu, '{:.0f}')} per CPU-s)   target >= 300 MB/s; "
              f"baseline scan floor {spread(floor, '{:.0f}')} MB/s, checksums / floor {ratio('checksums', 'floor')}x")
        print(f"  C encoder against the SQL encoding     {ratio('by_sql', 'checksums')}x faster")
        return 0
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            for p in ("shell.db", "copy.db"):
                (work / p).unlink(missing_ok=True)
            shutil.rmtree(work / "rc", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
