"""SQLite: restorecheck backup + verify against the sqlite3 shell's .backup and a plain file copy.

    .venv/bin/python benchmarks/bench_sqlite.py --size-mb 1024

Generates a database of about ``--size-mb`` megabytes (an orders table with an index, of mixed
storage classes, and a WITHOUT ROWID table), reads it once so that every contender starts from a
warm page cache, then times in the same run:

- ``sqlite3 SRC ".backup DST"``: the shell's online backup, the baseline;
- ``shutil.copyfile``: a plain file copy (what a careless backup does);
- ``restorecheck backup``: the online backup API in one read transaction plus the manifest of the
  copy (every row of every table encoded and hashed, sha256 of the file);
- ``restorecheck verify``: sha256, a private copy, full ``PRAGMA integrity_check``, every row
  checksummed again, ``foreign_key_check``, compared with the manifest.

Prints seconds, MB/s and the ratios; the target is backup + verify within 3x of ``.backup``.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROWS_PER_MB = {"narrow": 8600, "wide": 240}  # orders rows per MB of file, table and index


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


def timed(label: str, fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"  {label:<34} {seconds:8.2f} s", flush=True)
    return seconds, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024, help="database size to generate (default 1024)")
    parser.add_argument("--shape", choices=sorted(ROWS_PER_MB), default="narrow",
                        help="narrow rows (~140 bytes, the default) or wide rows (~3 KB)")
    parser.add_argument("--workdir", type=Path, help="where to put the files (default: a temp dir)")
    parser.add_argument("--sqlite3", default=shutil.which("sqlite3") or "/usr/bin/sqlite3",
                        help="the sqlite3 shell (default: from PATH)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args(argv)

    from restorecheck import pipeline
    from restorecheck.dburl import SqliteRef
    from restorecheck.engines.base import BackupOptions

    work = args.workdir or Path(tempfile.mkdtemp(prefix="restorecheck-bench-sqlite-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"source-{args.shape}.db"
    try:
        if not src.exists():
            print(f"generating about {args.size_mb} MB of {args.shape} rows in {src} ...", flush=True)
            timed("generate", lambda: generate(src, args.size_mb, args.shape))
        size = src.stat().st_size
        mb = size / 1e6
        print(f"source: {mb:.0f} MB ({args.shape} rows), sqlite {sqlite3.sqlite_version}, "
              f"python {sys.version.split()[0]}")
        timed("warm the page cache (read once)", lambda: src.read_bytes() and None)

        for p in ("shell.db", "copy.db"):
            (work / p).unlink(missing_ok=True)
        shutil.rmtree(work / "rc", ignore_errors=True)
        print("timings (same run, warm cache):")
        t_shell, _ = timed(".backup (sqlite3 shell)", lambda: subprocess.run(
            [args.sqlite3, str(src), f".backup {work / 'shell.db'}"], check=True))
        t_copy, _ = timed("shutil.copyfile", lambda: shutil.copyfile(src, work / "copy.db"))
        t_backup, result = timed("restorecheck backup", lambda: pipeline.backup(
            SqliteRef(src), work / "rc", BackupOptions(name="source")))
        t_verify, report = timed("restorecheck verify", lambda: pipeline.verify(result.artifact.path))
        t_checks, _ = timed("integrity + foreign_key_check alone", lambda: mandated_checks(work / "copy.db"))
        if report.verdict != "pass":
            print(f"verify did not pass: {[f.message for f in report.findings]}", file=sys.stderr)
            return 1
        total = t_backup + t_verify
        print("verify phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in report.phases.items()))
        print("throughput:")
        for label, t in ((".backup", t_shell), ("copyfile", t_copy), ("restorecheck backup", t_backup),
                         ("restorecheck verify", t_verify), ("restorecheck backup + verify", total)):
            print(f"  {label:<34} {mb / t:8.0f} MB/s")
        print("ratios:")
        print(f"  (backup + verify) / .backup        {total / t_shell:8.2f}x   (target: <= 3x)")
        print(f"  (backup + verify) / copyfile       {total / t_copy:8.2f}x")
        print(f"  backup / .backup                   {t_backup / t_shell:8.2f}x")
        print(f"  verify / .backup                   {t_verify / t_shell:8.2f}x")
        print(f"  integrity + fk checks / .backup    {t_checks / t_shell:8.2f}x   "
              "(what the mandated SQLite checks alone cost, no checksums)")
        return 0
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        elif not args.keep:
            for p in ("shell.db", "copy.db"):
                (work / p).unlink(missing_ok=True)
            shutil.rmtree(work / "rc", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
