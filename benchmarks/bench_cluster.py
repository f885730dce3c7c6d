"""A throwaway cluster's fixed cost: ready time from the template data directory against initdb.

    .venv/bin/python benchmarks/bench_cluster.py               # 7 rounds, every installed major
    .venv/bin/python benchmarks/bench_cluster.py --rounds 11 --pg-bin /usr/lib/postgresql/15/bin

For each installation it prints the median seconds from ``local_cluster`` being entered until the
server answers (copy of the template + the run's password set by a single-user backend + start,
against initdb + start; ``memory``: the template copied into /dev/shm, where a small source's drill
puts its cluster), the median seconds to stop and remove it, and the ratios to initdb.
Rounds alternate between the two ways so that load from elsewhere on the machine falls on both.
The template is made before the first round (that one cluster is not counted). Target (issue 14):
a cluster ready in well under a second.
"""

from __future__ import annotations

import argparse
import statistics
import time

from restorecheck.process import discover
from restorecheck.provisioners.local import local_cluster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--pg-bin")
    args = ap.parse_args()
    insts = [i for i in discover(args.pg_bin) if i.has_server]
    if args.pg_bin:
        insts = [i for i in insts if i.origin == "--pg-bin"] or insts
    print(f"{'PostgreSQL':<11} {'way':<9} {'ready s':>8} {'min':>6} {'max':>6} {'stop s':>7}")
    for inst in insts:
        with local_cluster(installation=inst) as server:  # makes the template if there is none
            made = server.info["datadir_from"]
        ways = ("memory", "template", "initdb")
        times: dict[str, dict[str, list[float]]] = {w: {"ready": [], "stop": []} for w in ways}
        for _ in range(args.rounds):
            for way in ways:
                t0 = time.perf_counter()
                # memory: the template copied into /dev/shm, as for a small source (memory_parent)
                cm = local_cluster(installation=inst, template=way != "initdb",
                                   size_hint=(1 << 20) if way == "memory" else None)
                server = cm.__enter__()
                t1 = time.perf_counter()
                assert server.info["datadir_from"] == ("template" if way == "memory" else way)
                if way == "memory" and server.info["datadir_on"] != "memory (tmpfs)":
                    raise SystemExit("/dev/shm cannot take a cluster here (not a tmpfs, or too little free)")
                cm.__exit__(None, None, None)
                times[way]["ready"].append(t1 - t0)
                times[way]["stop"].append(time.perf_counter() - t1)
        med = {w: statistics.median(times[w]["ready"]) for w in times}
        for way in ways:
            r = times[way]["ready"]
            print(f"{inst.version:<11} {way:<9} {med[way]:8.3f} {min(r):6.3f} {max(r):6.3f} "
                  f"{statistics.median(times[way]['stop']):7.3f}")
        print(f"{inst.version:<11} initdb/template {med['initdb'] / med['template']:.2f}x, initdb/memory "
              f"{med['initdb'] / med['memory']:.2f}x over {args.rounds} rounds (first cluster: {made}); "
              f"target: ready in well under 1 s")


if __name__ == "__main__":
    main()
