"""What the runner costs: its selector loop against plain subprocess with a writer thread, same run.

    .venv/bin/python benchmarks/bench_runner.py                # 5 rounds, 512 MiB
    .venv/bin/python benchmarks/bench_runner.py --rounds 9 --mib 1024

Three workloads, each the median seconds of ``--rounds`` (rounds alternate between the two ways so
that load from elsewhere on the machine falls on both):

- feed: ``--mib`` MiB in 1 MiB blocks from an iterator into ``cat >/dev/null`` (psql's restricted
  script), against a writer thread on ``proc.stdin`` (what ``pg_dump.run_tool`` did);
- capture: ``--mib`` MiB on stdout, captured (``pg_restore --list`` / ``-f -``), against
  ``communicate()``; the runner keeps at most its ``stdout_limit`` (here all of it);
- start: 200 runs of ``/bin/true`` (version probes), against ``subprocess.run``.

Prints the medians and the ratio runner / baseline.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

from restorecheck.runner import MiB, run

BLOCK = b"x" * MiB


def blocks(n: int) -> Iterator[bytes]:
    for _ in range(n):
        yield BLOCK


def feed_baseline(n: int) -> None:
    proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdin is not None

    def write() -> None:
        assert proc.stdin is not None
        for b in blocks(n):
            proc.stdin.write(b)
        proc.stdin.close()

    t = threading.Thread(target=write)
    t.start()
    proc.wait()
    t.join()


def feed_runner(n: int) -> None:
    assert run(["cat"], stdin=blocks(n), stdout="discard").ok


def capture_baseline(n: int) -> None:
    out, _ = subprocess.Popen(["head", "-c", str(n * MiB), "/dev/zero"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE).communicate()
    assert len(out) == n * MiB


def capture_runner(n: int) -> None:
    res = run(["head", "-c", str(n * MiB), "/dev/zero"], stdout_limit=(n + 1) * MiB)
    assert res.ok and len(res.stdout) == n * MiB


def start_baseline(_n: int) -> None:
    for _ in range(200):
        subprocess.run(["/bin/true"], capture_output=True, check=True)


def start_runner(_n: int) -> None:
    for _ in range(200):
        assert run(["/bin/true"]).ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mib", type=int, default=512)
    args = ap.parse_args()
    cases: dict[str, tuple[Callable[[int], None], Callable[[int], None]]] = {
        "feed": (feed_baseline, feed_runner),
        "capture": (capture_baseline, capture_runner),
        "start x200": (start_baseline, start_runner),
    }
    print(f"{'workload':<12} {'baseline s':>11} {'runner s':>9} {'ratio':>6}")
    for name, (base, ours) in cases.items():
        times: dict[str, list[float]] = {"base": [], "ours": []}
        for _ in range(args.rounds):
            for key, fn in (("base", base), ("ours", ours)):
                t0 = time.perf_counter()
                fn(args.mib)
                times[key].append(time.perf_counter() - t0)
        b, o = statistics.median(times["base"]), statistics.median(times["ours"])
        print(f"{name:<12} {b:>11.3f} {o:>9.3f} {o / b:>6.2f}")


if __name__ == "__main__":
    main()
