"""SQLite at scale: time per phase and restorecheck's own peak memory as the file grows.

    .venv/bin/python benchmarks/bench_sqlite_scale.py --sizes 256,2048 --rounds 3 --workdir /var/tmp/rc-scale

For each size (MB of narrow rows, ``bench_sqlite.generate``; files are kept in ``--workdir`` and
reused), after one read of the file to warm the page cache, ``--rounds`` rounds of, alternated:

- baselines: the sqlite3 shell's ``.backup``, and ``PRAGMA integrity_check`` + ``foreign_key_check``
  alone on the copy (what verify must run in any case, same cache and mmap settings as verify);
- ``restorecheck backup`` and ``restorecheck verify``, each in a fresh child process that reports
  its phases and its own peak memory: ``VmHWM`` (peak RSS; ``ru_maxrss`` would count what the
  parent held when it forked), and the peaks of ``RssAnon`` (heap: what would grow with per-row
  state) and ``RssFile`` (pages of the memory-mapped restored copy and of shared libraries: file
  pages the kernel drops under pressure), sampled every 20 ms. The side process that runs the
  integrity and foreign-key checks beside the checksums is a child of that process: its CPU
  time is printed apart (``side``).

Prints medians with the spread (min-max), the ratios against the baselines of the same run with
their targets, and whether memory stays flat: the largest size's peak heap (RssAnon) against the
smallest size's. It is bounded, not per row: the 128 MiB page cache of a fingerprint connection,
one chunk of encoded rows (8 MiB), the interpreter; a restored copy is read through a memory map of
at most 2 GiB, and the pages of a larger file go through the page cache, which then fills.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sqlite import MEMORY_SAMPLER, mandated_checks, narrow_source, shell_present

from restorecheck.engines.sqlite import CACHE_KIB

CHILD = r"""
import json, resource, sys, threading, time
from pathlib import Path

""" + MEMORY_SAMPLER + r"""
threading.Thread(target=sample, daemon=True).start()
from restorecheck import pipeline
from restorecheck.dburl import SqliteRef
from restorecheck.engines.base import BackupOptions

what, arg, out = sys.argv[1], sys.argv[2], sys.argv[3]
start = time.perf_counter()
if what == "backup":
    result = pipeline.backup(SqliteRef(Path(arg)), Path(out), BackupOptions(name="source"))
    facts = result.manifest.facts
    phases = dict(facts.get("backup_phases", {}))
    verdict = "pass"
else:
    report = pipeline.verify(arg)
    phases = dict(report.phases)
    verdict = report.verdict
    copy_on = report.extra.get("restore", {}).get("copy_on", "disk")
seconds = time.perf_counter() - start
stop.set()
time.sleep(0.03)
usage = resource.getrusage(resource.RUSAGE_SELF)
side = resource.getrusage(resource.RUSAGE_CHILDREN)
with open("/proc/self/status") as f:  # not ru_maxrss: it counts what the parent had at fork
    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "phases": phases, "verdict": verdict,
                  "rss_kib": hwm, "anon_kib": peak["RssAnon"], "file_kib": peak["RssFile"],
                  "shmem_kib": peak["RssShmem"], "copy_on": copy_on if what == "verify" else None,
                  "cpu": usage.ru_utime + usage.ru_stime, "side_cpu": side.ru_utime + side.ru_stime}))
"""


def child(what: str, arg: Path, out: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD, what, str(arg), str(out)], check=True,
                          capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def spread(values: list[float], unit: str = "s", fmt: str = "{:.2f}") -> str:
    med = statistics.median(values)
    return f"{fmt.format(med)} {unit} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def run_size(work: Path, size_mb: int, rounds: int, shell: str) -> dict[str, Any]:
    src = narrow_source(work, size_mb)
    mb = src.stat().st_size / 1e6
    t: dict[str, list[float]] = {"shell": [], "checks": [], "backup": [], "verify": []}
    cpu: dict[str, list[float]] = {}
    phases: dict[str, list[float]] = {}
    mem: dict[str, list[float]] = {}
    shell_copy = work / "shell.db"
    for r in range(rounds):
        shell_copy.unlink(missing_ok=True)
        t["shell"].append(timed(lambda: subprocess.run([shell, str(src), f".backup {shell_copy}"], check=True)))
        t["checks"].append(timed(lambda: mandated_checks(shell_copy)))
        shell_copy.unlink(missing_ok=True)
        rc = work / "rc"
        shutil.rmtree(rc, ignore_errors=True)
        b = child("backup", src, rc)
        artifact = next(p for p in rc.iterdir() if p.suffix == ".db")
        v = child("verify", artifact, rc)
        if v["verdict"] != "pass":
            raise SystemExit(f"verify did not pass at {size_mb} MB: {v}")
        shutil.rmtree(rc, ignore_errors=True)
        t["backup"].append(b["seconds"])
        t["verify"].append(v["seconds"])
        for prefix, res in (("backup", b), ("verify", v)):
            cpu.setdefault(f"{prefix}: own process", []).append(res["cpu"])
            cpu.setdefault(f"{prefix}: side process", []).append(res["side_cpu"])
            for k, val in res["phases"].items():
                phases.setdefault(f"{prefix}: {k}", []).append(float(val))
            for k in ("rss_kib", "anon_kib", "file_kib", "shmem_kib"):
                mem.setdefault(f"{prefix} {k}", []).append(res[k] / 1024)
        print(f"  round {r + 1}: .backup {t['shell'][-1]:.2f} s, checks {t['checks'][-1]:.2f} s, "
              f"backup {b['seconds']:.2f} s, verify {v['seconds']:.2f} s, "
              f"heap peak {b['anon_kib'] / 1024:.0f}/{v['anon_kib'] / 1024:.0f} MiB, "
              f"restored copy on {v['copy_on']}", flush=True)
    print(f"{size_mb} MB target ({mb:.0f} MB file, {rounds} rounds, medians (min-max)):")
    print(f"  .backup (sqlite3 shell, baseline)        {spread(t['shell'])}")
    print(f"  integrity + foreign_key_check (baseline) {spread(t['checks'])}")
    print(f"  restorecheck backup                      {spread(t['backup'])}")
    print(f"  restorecheck verify                      {spread(t['verify'])}")
    for k, vals in phases.items():
        print(f"    {k:<38} {spread(vals)}")
    for k, vals in cpu.items():
        print(f"  CPU {k:<37} {spread(vals, 'CPU-s')}")
    for k, vals in mem.items():
        print(f"  peak {k:<36} {spread(vals, 'MiB', '{:.0f}')}")
    b_ratio = [b / s for b, s in zip(t["backup"], t["shell"], strict=True)]
    v_ratio = [v / c for v, c in zip(t["verify"], t["checks"], strict=True)]
    print(f"  backup / .backup                         {spread(b_ratio, 'x')}   (target <= 3x)")
    print(f"  verify / (integrity + fk checks)         {spread(v_ratio, 'x')}   (target <= 1.3x)")
    return {"mb": mb, "t": t, "mem": mem}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,2048", help="comma-separated sizes in MB (default 256,2048)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="where the generated files are kept (default: a temp dir)")
    parser.add_argument("--sqlite3", default=shutil.which("sqlite3") or "/usr/bin/sqlite3")
    args = parser.parse_args(argv)
    if not shell_present(args.sqlite3):
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="restorecheck-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {size: run_size(work, size, args.rounds, args.sqlite3) for size in sizes}
    if len(sizes) > 1:
        lo, hi = results[min(sizes)], results[max(sizes)]
        print(f"scale {min(sizes)} MB -> {max(sizes)} MB ({hi['mb'] / lo['mb']:.1f}x the rows):")
        for what in ("backup", "verify"):
            heap = statistics.median(hi["mem"][f"{what} anon_kib"]) / statistics.median(lo["mem"][f"{what} anon_kib"])
            rss = statistics.median(hi["mem"][f"{what} rss_kib"]) / statistics.median(lo["mem"][f"{what} rss_kib"])
            growth = statistics.median(hi["t"][what]) / statistics.median(lo["t"][what])
            base = "shell" if what == "backup" else "checks"
            base_growth = statistics.median(hi["t"][base]) / statistics.median(lo["t"][base])
            grew = (statistics.median(hi["mem"][f"{what} anon_kib"])
                    - statistics.median(lo["mem"][f"{what} anon_kib"]))
            print(f"  {what}: peak heap (RssAnon) {heap:.2f}x, +{grew:.0f} MiB (target: flat, growth within "
                  f"the {CACHE_KIB >> 10} MiB page cache, which fills once a file outgrows the 2 GiB memory map); "
                  f"peak RSS with mapped file pages {rss:.2f}x; time {growth:.1f}x against its baseline's "
                  f"{base_growth:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
