"""Scale: time per phase and restorecheck's own peak memory as the database grows, against the bare tools.

    .venv/bin/python benchmarks/bench_scale.py                                   # 1M, 5M, 20M rows; 256, 2048 MB
    .venv/bin/python benchmarks/bench_scale.py --quick                           # smoke: 200k, 1M rows; 32, 128 MB
    .venv/bin/python benchmarks/bench_scale.py --rows 1000000,5000000 --sqlite-mb 0   # PostgreSQL only

PostgreSQL, for each ``--rows`` size (ascending): the source of ``bench_drill.py`` (orders of about
160 bytes a row with a primary key, a secondary index and a foreign key to a small table) is grown
to that many rows in one throwaway local cluster, then, in the same run:

1. baseline: ``pg_dump -Fc`` of the source, then ``pg_restore -j<jobs>`` into a fresh database of a
   throwaway cluster of the same kind as the drill's (restorecheck's tuning), already running: its
   start is not counted, which favours the baseline;
2. ``restorecheck drill SOURCE --jobs <jobs> --report FILE``, the CLI in a child process of its own,
   with the same compression: its per-phase seconds (``phases`` of the JSON report: backup,
   restore, verify, total) and the wall time of the whole command (interpreter start and cleanup).

SQLite, for each ``--sqlite-mb`` size: a file of narrow rows (``bench_sqlite.generate``; kept in
``--workdir`` and reused when given), read once to warm the page cache, then the baseline: the
sqlite3 shell's ``.backup`` and ``PRAGMA integrity_check`` + ``foreign_key_check`` of the copy
(``bench_sqlite.mandated_checks``: verify's own cache and memory-map settings), against
``restorecheck backup SRC -o DIR`` and ``restorecheck verify DIR/source.db --report FILE``, each
the CLI in a child process.

Memory: every restorecheck command runs under a small wrapper (``WRAPPER``) that calls the CLI's
``main`` in the same interpreter and, at exit, writes its own ``VmHWM`` (peak RSS of that Python
process alone: pg_dump, pg_restore, the servers and the SQLite side process are other processes;
``ru_maxrss`` is not used, it would count what the parent held when it forked) and the peaks of
``RssAnon`` (heap: what per-row state would grow) and ``RssFile`` (mapped file pages: libraries, a
restored SQLite copy read through a memory map), sampled every 20 ms, and its CPU seconds.

Prints one table per engine, then the targets of issue 14 (item 4, "Scale"): memory flat as the rows
grow (no per-row state in Python: peak RSS of the largest size over the smallest, target about
1x), and time growing no faster than what restorecheck wraps (from size to size, the growth of
the drill's total against the growth of bare dump + restore; of backup + verify against
``.backup`` + the checks), with the seconds each side adds from size to size. Fixed costs (the
interpreter, the drill's cluster start, the catalog) weigh on the smallest size, so the growth
ratio favours restorecheck there; the added seconds are the fairer figure. ``--rounds`` rounds per
size (default 1), the round with the smallest restorecheck time tabulated; the machine is shared:
expect +-30% on wall times.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from bench_drill import LOAD, build_source
from bench_sqlite import MEMORY_SAMPLER, mandated_checks, narrow_source, shell_present

from restorecheck.dburl import PostgresRef
from restorecheck.engines.sqlite import CACHE_KIB
from restorecheck.provisioners.local import local_cluster
from restorecheck.runner import run

FULL_ROWS, QUICK_ROWS = "1000000,5000000,20000000", "200000,1000000"
FULL_MB, QUICK_MB = "256,2048", "32,128"

# Runs ``restorecheck <args>`` in this interpreter (argv[1]: where to write the figures, then the
# CLI's arguments) and, at exit, writes the peak memory of this process alone.
WRAPPER = r"""
import atexit, json, resource, sys, threading

""" + MEMORY_SAMPLER + r"""
def figures(out=sys.argv[1]):
    stop.set()
    with open("/proc/self/status") as f:
        status = {line.split(":")[0]: int(line.split()[1]) for line in f if line.startswith(("VmHWM", "Rss"))}
    for key in peak:
        peak[key] = max(peak[key], status.get(key, 0))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(out, "w") as f:
        json.dump({"hwm_kib": status["VmHWM"], "anon_kib": peak["RssAnon"], "file_kib": peak["RssFile"],
                   "cpu": usage.ru_utime + usage.ru_stime}, f)

threading.Thread(target=sample, daemon=True).start()
atexit.register(figures)
sys.argv = ["restorecheck", *sys.argv[2:]]
from restorecheck.cli import main
main()
"""


def restorecheck(args: list[str], work: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``restorecheck ARGS`` in a child process of its own: wall seconds, exit code, its peak memory."""
    figures = work / "memory.json"
    figures.unlink(missing_ok=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAPPER, str(figures), *args], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"restorecheck {args[0]} exited {done.returncode}: "
                         f"{(done.stderr or done.stdout).strip()[-800:]}")
    result: dict[str, Any] = json.loads(figures.read_text())
    result["seconds"] = seconds
    return result


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def mib(kib: float) -> str:
    return f"{kib / 1024:.0f}"


def sizes(text: str) -> list[int]:
    return sorted({int(s) for s in text.split(",") if s.strip() and int(s) > 0})


def short(n: float) -> str:
    return f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}k"


# --- PostgreSQL ------------------------------------------------------------------------------------


def grow_source(conninfo: str, have: int, rows: int) -> None:
    """The source of bench_drill.py with ``rows`` rows: built for the first size, then grown in place."""
    if have == 0:
        build_source(conninfo, rows)
        return
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for lo in range(have + 1, rows + 1, 1_000_000):
            conn.execute(LOAD, {"lo": lo, "hi": min(rows, lo + 999_999)})
        conn.execute("VACUUM ANALYZE orders")
        size = conn.execute("SELECT pg_size_pretty(pg_relation_size('orders'))").fetchone()
        print(f"source: {rows:,} rows in orders, heap {size[0] if size else '?'}")


def bare_pair(tools: Any, src_env: dict[str, str], target: Any, level: list[str], jobs: int,
              work: Path) -> tuple[float, float, int]:
    """pg_dump -Fc of the source, pg_restore -j into a fresh database of the running target cluster."""
    dump = work / "bare.dump"
    res = run([str(tools.tool("pg_dump")), "--no-password", "-Fc", *level, "-f", str(dump)],
              env=src_env, inherit_env=True)
    if res.returncode != 0:
        raise SystemExit(f"pg_dump failed: {res.stderr.strip()[-500:]}")
    size = dump.stat().st_size
    with target.fresh_database() as db:
        res2 = run([str(tools.tool("pg_restore")), "--no-password", f"-j{jobs}", f"--dbname={db.dbname}",
                    str(dump)], env=db.child_env(), inherit_env=True)
    dump.unlink()
    if res2.returncode != 0:
        raise SystemExit(f"pg_restore failed: {res2.stderr.strip()[-500:]}")
    return res.seconds, res2.seconds, size


def postgres_scale(rows_list: list[int], args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    level = [] if args.compress == "default" else [f"-Z{args.compress}"]
    compress = [] if args.compress == "default" else ["--compress", args.compress]
    with local_cluster(tmp_root=args.tmp) as src_server, src_server.fresh_database() as src, \
            local_cluster(tmp_root=args.tmp) as target:
        tools = src_server.tools
        assert tools is not None
        print(f"PostgreSQL {src_server.version}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; "
              f"--jobs {args.jobs}; pg_dump compression {args.compress}; {args.rounds} round(s) per size")
        src_env = src.child_env()
        # the CLI gets the URL a user would type; the password travels in the environment
        cli_env = {**os.environ, **src_env}
        url = PostgresRef(dict(src.params)).display()
        have = 0
        for rows in rows_list:
            t = time.perf_counter()
            grow_source(src.conninfo(), have, rows)
            have = rows
            print(f"  (built in {time.perf_counter() - t:.1f}s)", flush=True)
            with psycopg.connect(src.conninfo()) as conn:
                db_bytes = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
            for r in range(args.rounds):
                dump_s, restore_s, dump_bytes = bare_pair(tools, src_env, target, level, args.jobs, work)
                report = work / "drill.json"
                drill = restorecheck(["drill", url, "--jobs", str(args.jobs), *compress, "--report", str(report),
                                      "--no-progress", "-q"], work, cli_env)
                rep = json.loads(report.read_text())
                if rep["verdict"] != "pass":
                    raise SystemExit(f"drill at {rows:,} rows: verdict {rep['verdict']}: {rep['findings']}")
                phases = {k: float(v) for k, v in rep["phases"].items()}
                bare = dump_s + restore_s
                results.append({"rows": rows, "round": r + 1, "db_bytes": db_bytes, "dump_bytes": dump_bytes,
                                "dump": dump_s, "restore": restore_s, "bare": bare, "phases": phases,
                                "wall": drill["seconds"], "mem": drill})
                print(f"  {rows:,} rows, round {r + 1}: bare {dump_s:.1f} + {restore_s:.1f} s; drill "
                      + ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
                      + f" s; peak RSS {mib(drill['hwm_kib'])} MiB", flush=True)
    return results


# --- SQLite ----------------------------------------------------------------------------------------


def sqlite_scale(mb_list: list[int], args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    import sqlite3

    print(f"SQLite {sqlite3.sqlite_version}; load average {os.getloadavg()[0]:.2f}; {args.rounds} round(s) per size")
    files = args.workdir or work
    results: list[dict[str, Any]] = []
    for size_mb in mb_list:
        src = narrow_source(files, size_mb)
        with sqlite3.connect(src) as conn:
            rows = sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("orders", "customers", "kv"))
        conn.close()
        copy, out, report = work / "shell.db", work / "rc", work / "verify.json"
        for r in range(args.rounds):
            copy.unlink(missing_ok=True)
            shell = timed(functools.partial(subprocess.run, [args.sqlite3, str(src), f".backup {copy}"], check=True))
            checks = timed(functools.partial(mandated_checks, copy))
            copy.unlink(missing_ok=True)
            shutil.rmtree(out, ignore_errors=True)
            backup = restorecheck(["backup", str(src), "-o", str(out), "--name", "source", "--no-progress", "-q"],
                                  work)
            manifest = json.loads((out / "source.manifest.json").read_text())
            verify = restorecheck(["verify", str(out / "source.db"), "--report", str(report), "--no-progress", "-q"],
                                  work)
            rep = json.loads(report.read_text())
            shutil.rmtree(out, ignore_errors=True)
            if rep["verdict"] != "pass":
                raise SystemExit(f"verify at {size_mb} MB: verdict {rep['verdict']}: {rep['findings']}")
            results.append({"mb": size_mb, "bytes": src.stat().st_size, "rows": rows, "round": r + 1,
                            "shell": shell, "checks": checks, "backup": backup, "verify": verify,
                            "backup_phases": manifest.get("facts", {}).get("backup_phases", {}),
                            "verify_phases": rep["phases"]})
            print(f"  {size_mb} MB, round {r + 1}: .backup {shell:.2f} s, checks {checks:.2f} s, "
                  f"backup {backup['seconds']:.2f} s, verify {verify['seconds']:.2f} s, "
                  f"peak RSS {mib(backup['hwm_kib'])} / {mib(verify['hwm_kib'])} MiB", flush=True)
    return results


# --- the tables ------------------------------------------------------------------------------------


def best(results: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """One line per size: the round with the smallest restorecheck time (the least disturbed one)."""
    chosen: dict[Any, dict[str, Any]] = {}
    for res in results:
        prev = chosen.get(res[key])
        if prev is None or res["_rc"] < prev["_rc"]:
            chosen[res[key]] = res
    return [chosen[k] for k in sorted(chosen)]


def print_postgres(results: list[dict[str, Any]]) -> None:
    for res in results:
        res["_rc"] = res["phases"]["total"]
    lines = best(results, "rows")
    print("\nPostgreSQL, seconds (best round per size); drill phases from its JSON report; "
          "peak memory of restorecheck's own process (MiB)")
    print(f"{'rows':>7} {'database':>9} {'dump':>8} | {'pg_dump':>7} {'pg_restore':>10} {'bare':>6} | "
          f"{'backup':>6} {'restore':>7} {'verify':>6} {'cleanup':>7} {'total':>6} {'wall':>6} | {'drill/bare':>10} | "
          f"{'peak RSS':>8} {'heap':>5} {'CPU-s':>6}")
    for res in lines:
        p, m = res["phases"], res["mem"]
        print(f"{short(res['rows']):>7} {res['db_bytes'] / 2**20:>6.0f} MiB {res['dump_bytes'] / 2**20:>4.0f} MiB | "
              f"{res['dump']:>7.1f} {res['restore']:>10.1f} {res['bare']:>6.1f} | "
              f"{p.get('backup', 0):>6.1f} {p.get('restore', 0):>7.1f} {p.get('verify', 0):>6.1f} {p.get('cleanup', 0):>7.1f} "
              f"{p['total']:>6.1f} {res['wall']:>6.1f} | {p['total'] / res['bare']:>9.2f}x | "
              f"{mib(m['hwm_kib']):>8} {mib(m['anon_kib']):>5} {m['cpu']:>6.1f}")
    for a, b in itertools.pairwise(lines):
        grow_rows = b["rows"] / a["rows"]
        grow_drill = b["phases"]["total"] / a["phases"]["total"]
        grow_bare = b["bare"] / a["bare"]
        marginal = (b["phases"]["total"] - a["phases"]["total"]) / (b["bare"] - a["bare"])
        print(f"  {short(a['rows'])} -> {short(b['rows'])} rows ({grow_rows:.1f}x): drill total {grow_drill:.2f}x, "
              f"bare dump + restore {grow_bare:.2f}x, drill growth / bare growth {grow_drill / grow_bare:.2f} "
              f"(target <= 1); seconds added: drill {b['phases']['total'] - a['phases']['total']:.1f} / bare "
              f"{b['bare'] - a['bare']:.1f} = {marginal:.2f}x; peak RSS {b['mem']['hwm_kib'] / a['mem']['hwm_kib']:.2f}x")
    if len(lines) > 1:
        lo, hi = lines[0], lines[-1]
        grow_drill = hi["phases"]["total"] / lo["phases"]["total"]
        grow_bare = hi["bare"] / lo["bare"]
        hwm = hi["mem"]["hwm_kib"] / lo["mem"]["hwm_kib"]
        heap = hi["mem"]["anon_kib"] / lo["mem"]["anon_kib"]
        print("targets (issue 14, Scale):")
        print(f"  memory flat as rows grow ({short(lo['rows'])} -> {short(hi['rows'])}, "
              f"{hi['rows'] / lo['rows']:.1f}x the rows; no per-row state in Python): peak RSS "
              f"{mib(lo['mem']['hwm_kib'])} -> {mib(hi['mem']['hwm_kib'])} MiB = {hwm:.2f}x, heap {heap:.2f}x "
              f"(target ~1x): {'met' if hwm <= 1.25 else 'NOT met'}")
        print(f"  time grows no faster than what it wraps: drill {grow_drill:.2f}x against bare pg_dump + "
              f"pg_restore {grow_bare:.2f}x (ratio {grow_drill / grow_bare:.2f}, target <= 1, +-0.1 noise): "
              f"{'met' if grow_drill / grow_bare <= 1.1 else 'NOT met'}")


def print_sqlite(results: list[dict[str, Any]]) -> None:
    for res in results:
        res["_rc"] = res["backup"]["seconds"] + res["verify"]["seconds"]
    lines = best(results, "mb")
    print("\nSQLite, seconds (best round per size); peak memory of restorecheck's own process (MiB: "
          "RSS, heap = RssAnon, mapped = RssFile)")
    print(f"{'file':>8} {'rows':>6} | {'.backup':>7} {'checks':>6} | {'backup':>6} {'verify':>6} | "
          f"{'bk/.bk':>6} {'vf/chk':>6} {'both':>6} | {'backup RSS (heap)':>17} {'verify RSS (heap, mapped)':>25} "
          f"{'CPU-s':>10}")
    for res in lines:
        b, v = res["backup"], res["verify"]
        both = (b["seconds"] + v["seconds"]) / (res["shell"] + res["checks"])
        print(f"{res['bytes'] / 1e6:>5.0f} MB {short(res['rows']):>6} | {res['shell']:>7.2f} {res['checks']:>6.2f} | "
              f"{b['seconds']:>6.2f} {v['seconds']:>6.2f} | {b['seconds'] / res['shell']:>5.1f}x "
              f"{v['seconds'] / res['checks']:>5.1f}x {both:>5.1f}x | "
              f"{mib(b['hwm_kib']):>9} ({mib(b['anon_kib']):>4}) "
              f"{mib(v['hwm_kib']):>12} ({mib(v['anon_kib'])}, {mib(v['file_kib'])}) "
              f"{b['cpu']:>4.1f}, {v['cpu']:>4.1f}")
        phases = ", ".join(f"{k} {float(s):.2f}" for k, s in res["backup_phases"].items())
        print(f"{'':>17}backup phases: {phases}; verify phases: "
              + ", ".join(f"{k} {float(s):.2f}" for k, s in res["verify_phases"].items()))
    if len(lines) > 1:
        lo, hi = lines[0], lines[-1]
        print("targets (issue 14, Scale):")
        grow = hi["rows"] / lo["rows"]
        for what, base in (("backup", "shell"), ("verify", "checks")):
            hwm = hi[what]["hwm_kib"] / lo[what]["hwm_kib"]
            heap = hi[what]["anon_kib"] / lo[what]["anon_kib"]
            grew = (hi[what]["anon_kib"] - lo[what]["anon_kib"]) / 1024
            print(f"  {what}: memory flat as rows grow ({short(lo['rows'])} -> {short(hi['rows'])} rows, "
                  f"{grow:.1f}x; no per-row state in Python): peak RSS {hwm:.2f}x, heap {heap:.2f}x "
                  f"(+{grew:.0f} MiB; target: flat but for the {CACHE_KIB >> 10} MiB page cache of a connection, "
                  f"which fills as the file grows): {'within it' if grew <= (CACHE_KIB >> 10) else 'NOT met'}"
                  + (" (the largest file is smaller than twice the page cache: the plateau is not reached, "
                     "run larger sizes to see it)" if hi["bytes"] < 2 * CACHE_KIB * 1024 else ""))
            t = hi[what]["seconds"] / lo[what]["seconds"]
            tb = hi[base] / lo[base]
            label = ".backup" if base == "shell" else "integrity + foreign_key_check"
            print(f"  {what}: time {t:.2f}x against {label} {tb:.2f}x (ratio {t / tb:.2f}, target <= 1): "
                  f"{'met' if t / tb <= 1.1 else 'NOT met'}; seconds added {hi[what]['seconds'] - lo[what]['seconds']:.2f}"
                  f" against {hi[base] - lo[base]:.2f}")
        both = ((hi["backup"]["seconds"] + hi["verify"]["seconds"])
                / (lo["backup"]["seconds"] + lo["verify"]["seconds"]))
        base = (hi["shell"] + hi["checks"]) / (lo["shell"] + lo["checks"])
        added = hi["backup"]["seconds"] + hi["verify"]["seconds"] - lo["backup"]["seconds"] - lo["verify"]["seconds"]
        added_base = hi["shell"] + hi["checks"] - lo["shell"] - lo["checks"]
        print(f"  time grows no faster than what it wraps: backup + verify {both:.2f}x against .backup + "
              f"checks {base:.2f}x (ratio {both / base:.2f}, target <= 1, +-0.1 noise): "
              f"{'met' if both / base <= 1.1 else 'NOT met'}; seconds added {added:.2f} against {added_base:.2f} "
              f"(= {added / added_base:.2f}x)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default=None,
                    help=f"PostgreSQL sizes, comma-separated (default {FULL_ROWS}; 0 skips PostgreSQL)")
    ap.add_argument("--sqlite-mb", default=None,
                    help=f"SQLite file sizes in MB, comma-separated (default {FULL_MB}; 0 skips SQLite)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: rows {QUICK_ROWS}, SQLite {QUICK_MB} MB (unless given)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds per size; the best is tabulated (default 1)")
    ap.add_argument("--jobs", type=int, default=2, help="pg_restore -j and the drill's --jobs (default 2)")
    ap.add_argument("--compress", default="default",
                    help="pg_dump -Z for both sides: 0 (none), 1, ..., or 'default' (pg_dump's own, the default)")
    ap.add_argument("--tmp", default=None, help="temporary root for the clusters (default: the system's)")
    ap.add_argument("--workdir", type=Path, help="where generated SQLite files are kept and reused (default: a temp dir)")
    ap.add_argument("--sqlite3", default=shutil.which("sqlite3") or "/usr/bin/sqlite3",
                    help="the sqlite3 shell (the baseline; Debian: apt-get install -y sqlite3)")
    args = ap.parse_args(argv)
    rows_list = sizes(args.rows or (QUICK_ROWS if args.quick else FULL_ROWS))
    mb_list = sizes(args.sqlite_mb or (QUICK_MB if args.quick else FULL_MB))
    if mb_list and not shell_present(args.sqlite3):
        return 2
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rc-bench-scale-", dir=args.tmp))
    os.chmod(work, 0o755)
    try:
        pg = postgres_scale(rows_list, args, work) if rows_list else []
        lite = sqlite_scale(mb_list, args, work) if mb_list else []
        if pg:
            print_postgres(pg)
        if lite:
            print_sqlite(lite)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
