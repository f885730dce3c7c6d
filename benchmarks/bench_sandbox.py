"""What the sandbox costs: cluster start/stop and a whole verify, bubblewrap against none, same run.

    .venv/bin/python benchmarks/bench_sandbox.py                 # 5 rounds, PostgreSQL 15
    .venv/bin/python benchmarks/bench_sandbox.py --rounds 9 --pg-bin /usr/lib/postgresql/15/bin

For each mode it prints the median seconds of (a) starting a throwaway cluster until it answers,
(b) stopping and removing it, and (c) ``restorecheck verify`` of a custom-format dump of the known
dataset (scale 5), and the ratio bwrap / none. Rounds alternate between the modes so that load
from elsewhere on the machine falls on both.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from restorecheck import pipeline
from restorecheck.engines.base import RestoreOptions
from restorecheck.process import choose, discover
from restorecheck.provisioners.local import local_cluster
from restorecheck.sandbox import resolve
from restorecheck.seed import seed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pg-bin")
    ap.add_argument("--scale", type=int, default=5)
    args = ap.parse_args()
    inst = choose(discover(args.pg_bin), prefer_origin="--pg-bin" if args.pg_bin else None)
    modes = ["bwrap", "none"]
    sandboxes = {m: resolve(m) for m in modes}
    dump_bytes = 0
    with tempfile.TemporaryDirectory() as tmp, local_cluster(installation=inst) as src_server, \
            src_server.fresh_database() as src:
        seed(src, scale=args.scale)
        dump = Path(tmp) / "bench.dump"
        assert src_server.tools is not None
        subprocess.run([str(src_server.tools.tool("pg_dump")), "-Fc", "-f", str(dump)], env=src.child_env(),
                       check=True)
        dump_bytes = dump.stat().st_size
        times: dict[str, dict[str, list[float]]] = {m: {"start": [], "stop": [], "verify": []} for m in modes}
        for _ in range(args.rounds):
            for m in modes:
                t0 = time.perf_counter()
                cm = local_cluster(installation=inst, sandbox=sandboxes[m])
                cm.__enter__()
                t1 = time.perf_counter()
                cm.__exit__(None, None, None)
                t2 = time.perf_counter()
                times[m]["start"].append(t1 - t0)
                times[m]["stop"].append(t2 - t1)
                t0 = time.perf_counter()
                report = pipeline.verify(dump, restore=RestoreOptions(sandbox=m, pg_bin=str(inst.bindir)))
                times[m]["verify"].append(time.perf_counter() - t0)
                assert report.verdict in ("pass", "fail")
    print(f"PostgreSQL {inst.version} ({inst.bindir}), {args.rounds} rounds, known dataset scale {args.scale}, "
          f"dump {dump_bytes} bytes")
    print(f"{'phase':<8} {'bwrap s':>8} {'none s':>8} {'bwrap/none':>10}")
    for phase in ("start", "stop", "verify"):
        b, n = statistics.median(times["bwrap"][phase]), statistics.median(times["none"][phase])
        print(f"{phase:<8} {b:8.3f} {n:8.3f} {b / n:10.2f}")


if __name__ == "__main__":
    main()
