"""The work of a fingerprint: tables split into key ranges and block ranges, run over several
connections (one per worker) with a standard executor that cancels the queries in flight when
it is interrupted."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from restorecheck.engines.base import FingerprintOptions
from restorecheck.engines.pg_rowhash import TableInfo, checksum_query
from restorecheck.engines.pg_session import _savepoint, execute_with_params
from restorecheck.errors import first_line
from restorecheck.model import Manifest

log = logging.getLogger("restorecheck")


# --- the work: tables split into units, run over several connections ------------------------------

# blocks per parallel chunk when a table is split across connections
CHUNK_MIN_PAGES = 4096  # 32 MiB: smaller tables are read in one piece
# Small tables are checksummed many to a statement (``_Fingerprinter.batch_task``): one round trip
# and one savepoint for BATCH_TABLES tables instead of three each.
SMALL_TABLE_PAGES = 128  # 1 MiB, by the catalog's relpages
BATCH_TABLES = 64
# rows a block can hold at most (MaxHeapTuplesPerPage: 291 in 8 kB blocks, 1,169 in 32 kB ones)
_MAX_ROWS_PER_PAGE = 1169


def split_blocks(pages: int, parts: int) -> list[tuple[int, int | None]]:
    """Contiguous block ranges covering a relation of ``pages`` blocks; the last one is open-ended."""
    parts = max(1, min(parts, pages // max(1, CHUNK_MIN_PAGES // 4) or 1))
    if parts <= 1:
        return [(0, None)]
    step = math.ceil(pages / parts)
    out: list[tuple[int, int | None]] = []
    for i in range(parts):
        lo = i * step
        hi = None if i == parts - 1 else (i + 1) * step
        out.append((lo, hi))
    return out



@dataclass
class _TablePlan:
    info: TableInfo
    boundaries: list[list[Any]] = field(default_factory=list)
    pending: int = 0
    buckets: dict[int, list[int]] = field(default_factory=dict)
    error: str | None = None
    rls: bool = False


Task = Callable[[psycopg.Connection[Any]], list["Task"]]


def _run_tasks(conns: Sequence[psycopg.Connection[Any]], tasks: list[Task]) -> None:
    """Run tasks (which may return more tasks) over the connections, one worker per connection.

    A standard executor; each task borrows a free connection for its run. The first task that
    raises, or an interrupt (Ctrl-C, SIGTERM turned into an exception) while waiting, cancels the
    queries in flight on every connection, drops the tasks not yet started, waits for the workers
    and re-raises: nothing keeps reading after the fingerprint has given up.
    """
    if len(conns) == 1:  # in the calling thread: a Ctrl-C cancels its query (psycopg does)
        todo = list(tasks)
        while todo:
            todo = todo[1:] + todo[0](conns[0])
        return
    if not tasks:
        return
    free: queue.SimpleQueue[psycopg.Connection[Any]] = queue.SimpleQueue()
    for c in conns:
        free.put(c)

    stop = threading.Event()  # set by the first failure: tasks not yet started never start

    def on_a_free_connection(task: Task) -> list[Task]:
        if stop.is_set():
            return []
        conn = free.get()
        try:
            return task(conn)
        except BaseException:
            stop.set()
            raise
        finally:
            free.put(conn)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(conns), thread_name_prefix="rc-fingerprint")
    pending = {pool.submit(on_a_free_connection, t) for t in tasks}
    try:
        while pending:
            done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for f in done:
                pending |= {pool.submit(on_a_free_connection, m) for m in f.result()}
    except BaseException:
        stop.set()
        for f in pending:
            f.cancel()
        for c in conns:
            with contextlib.suppress(Exception):
                if hasattr(c, "cancel_safe"):  # psycopg 3.2+: does not block on a dead server
                    c.cancel_safe(timeout=5)
                else:
                    c.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


class _Fingerprinter:
    def __init__(self, options: FingerprintOptions, ranges_from: Manifest | None, jobs: int) -> None:
        self.options = options
        self.ranges_from = ranges_from
        self.jobs = jobs
        self.lock = threading.Lock()
        self.plans: dict[str, _TablePlan] = {}
        self.done_tables = 0
        self.total_tables = 0

    def tasks(self, plans: Sequence[_TablePlan]) -> list[Task]:
        """The tasks of a fingerprint: biggest table first, so that the last task to finish is a
        small one; then the small tables (``batchable``) in batches of ``BATCH_TABLES``."""
        ordered = sorted(plans, key=lambda p: -p.info.pages)
        in_batch = {id(p) for p in ordered if self.batchable(p.info)}
        small = [p for p in ordered if id(p) in in_batch]
        tasks = [self.table_task(p) for p in ordered if id(p) not in in_batch]
        return tasks + [self.batch_task(small[i:i + BATCH_TABLES]) for i in range(0, len(small), BATCH_TABLES)]

    def table_task(self, plan: _TablePlan) -> Task:
        def run(conn: psycopg.Connection[Any]) -> list[Task]:
            info = plan.info
            try:
                with _savepoint(conn):
                    plan.boundaries = self._boundaries(conn, info)
            except psycopg.Error as exc:
                self._fail(plan, exc)
                return []
            chunks: list[tuple[int, int | None] | None] = list(self.chunks(info)) or [None]
            plan.pending = len(chunks)
            tasks = [self.chunk_task(plan, c) for c in chunks]
            if len(tasks) == 1:
                return tasks[0](conn)
            return tasks
        return run

    def batchable(self, info: TableInfo) -> bool:
        """A table small enough to be read in a batch, by the catalog's statistics (as ``chunks`` and
        ``_boundaries`` decide): read in one piece, with no key ranges (it is estimated to hold at
        most ``range_rows`` rows, and the reference, if any, has none for it). A table never
        analyzed (``reltuples`` -1, ``pages`` then its actual size) is, when so few blocks cannot hold
        ``range_rows`` rows."""
        if info.relkind not in ("r", "m") or info.pages > SMALL_TABLE_PAGES:
            return False
        most = info.reltuples if info.reltuples >= 0 else info.pages * _MAX_ROWS_PER_PAGE
        if most > self.options.range_rows:
            return False
        if self.ranges_from is not None:
            ref = self.ranges_from.table(info.qualified)
            if ref is not None and len(ref.ranges) > 1:
                return False
        return True

    def batch_task(self, plans: Sequence[_TablePlan]) -> Task:
        """Checksum small tables (``batchable``) in one statement: each one's buckets as a JSON
        array from a scalar sub-select. A batch that fails (one table locked or not readable) runs
        again table by table, each in its own savepoint, so that only the failing one is lost."""
        def run(conn: psycopg.Connection[Any]) -> list[Task]:
            try:
                with _savepoint(conn):
                    # which hold a row at all: an empty table's checksum is known (no rows, sum 0),
                    # and planning a checksum query costs fifteen times an EXISTS
                    held = conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
                        sql.SQL("EXISTS (SELECT FROM ONLY {})").format(p.info.ident) for p in plans))).fetchone()
                    assert held is not None and len(held) == len(plans)
                    read = [p for p, has_rows in zip(plans, held, strict=True) if has_rows]
                    parts = []
                    for plan in read:
                        q, params = checksum_query(plan.info, strict=self.options.strict,
                                                   version=self.options.hash_version)
                        assert not params  # no key ranges, no block range: no parameter
                        parts.append(sql.SQL("(SELECT json_agg(json_build_array(x.b::text, x.n::text, x.s::text)) "
                                             "FROM ({}) AS x(b, n, s))").format(q))
                    row = conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(parts))).fetchone() if parts else ()
            except psycopg.Error as exc:
                log.debug("a batch of %d small tables failed (%s): table by table", len(plans), first_line(exc))
                return [self.table_task(p) for p in plans]
            assert row is not None and len(row) == len(read)
            found = dict(zip((id(p) for p in read), row, strict=True))
            with self.lock:
                for plan in plans:
                    self._add(plan, found.get(id(plan)) or ())
                    plan.pending = 0
                    self.done_tables += 1
                self.options.progress("fingerprint", self.done_tables, self.total_tables)
            return []
        return run

    def chunks(self, info: TableInfo) -> list[tuple[int, int | None]]:
        """Block ranges to read a large table over several connections ([] = in one piece)."""
        if self.jobs > 1 and info.relkind in ("r", "m") and info.pages >= CHUNK_MIN_PAGES:
            return split_blocks(info.pages, self.jobs * 2)
        return []

    def chunk_task(self, plan: _TablePlan, blocks: tuple[int, int | None] | None) -> Task:
        def run(conn: psycopg.Connection[Any]) -> list[Task]:
            q, params = checksum_query(plan.info, strict=self.options.strict, version=self.options.hash_version,
                                       boundaries=plan.boundaries,
                                       blocks=blocks)
            try:
                with _savepoint(conn):
                    rows = execute_with_params(conn, q, params).fetchall()
            except psycopg.Error as exc:
                self._fail(plan, exc)
                rows = []
            with self.lock:
                self._add(plan, rows)
                plan.pending -= 1
                if plan.pending == 0:
                    self.done_tables += 1
                    self.options.progress("fingerprint", self.done_tables, self.total_tables)
            return []
        return run

    @staticmethod
    def _add(plan: _TablePlan, rows: Iterable[Sequence[Any]]) -> None:
        """Add (bucket, rows, sum) results of a checksum query to ``plan`` (under ``self.lock``)."""
        for bucket, count, total in rows:
            acc = plan.buckets.setdefault(int(bucket), [0, 0])
            acc[0] += int(count)
            acc[1] += int(total)

    def _fail(self, plan: _TablePlan, exc: psycopg.Error) -> None:
        msg = first_line(exc)
        with self.lock:
            plan.error = msg
            if "row-level security" in msg or "row level security" in msg:
                plan.rls = True

    def _boundaries(self, conn: psycopg.Connection[Any], info: TableInfo) -> list[list[Any]]:
        if not info.key:
            return []
        if self.ranges_from is not None:
            ref = self.ranges_from.table(info.qualified)
            if ref is not None:
                if tuple(ref.key) == info.key and len(ref.ranges) > 1:
                    return [list(r.lower) for r in ref.ranges[1:] if r.lower is not None]
                return []
        est = info.reltuples
        if est < 0:
            est = float(conn.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(info.ident)).fetchone()[0])  # type: ignore[index]
        if est <= self.options.range_rows:
            return []
        n = min(self.options.max_ranges, max(2, math.ceil(est / self.options.range_rows)))
        return sample_boundaries(conn, info, n, est)


def sample_boundaries(conn: psycopg.Connection[Any], info: TableInfo, n: int, est_rows: float
                      ) -> list[list[Any]]:
    """About ``n`` key ranges of similar size from a repeatable block sample (first key of each tile).

    The sample is of blocks (``TABLESAMPLE SYSTEM``): about 200 rows per range, and at least 16
    blocks per range, so that a table of few wide rows per block is not sampled from a handful of
    blocks (150k rows in 913 blocks: 0.27% drew no block at all, and the table had no ranges). A
    sample that still holds fewer rows than ranges is taken again from every row."""
    pct = min(100.0, max(0.01, 100.0 * 200 * n / max(est_rows, 1.0)))
    if info.pages > 0:
        pct = min(100.0, max(pct, 100.0 * 16 * n / info.pages))
    got = _tile_starts(conn, info, n, pct)
    if len(got) < n - 1 and pct < 100:
        got = _tile_starts(conn, info, n, 100.0)
    return got


def _tile_starts(conn: psycopg.Connection[Any], info: TableInfo, n: int, pct: float) -> list[list[Any]]:
    cols = sql.SQL(", ").join(sql.SQL("({})::text").format(sql.Identifier(k)) for k in info.key)
    order = sql.SQL(", ").join(
        sql.SQL('{} COLLATE "C"').format(sql.Identifier(k)) if c else sql.Identifier(k)
        for k, c in zip(info.key, info.key_collatable, strict=True))
    keys = sql.SQL(", ").join(sql.Identifier(k) for k in info.key)
    sample = sql.SQL("TABLESAMPLE SYSTEM ({}) REPEATABLE (0)").format(sql.Literal(pct)) if pct < 100 else sql.SQL("")
    q = sql.SQL("""
        SELECT {cols} FROM (
          SELECT DISTINCT ON (tile) {keys}, tile FROM (
            SELECT {keys}, ntile({n}) OVER (ORDER BY {order}) AS tile FROM ONLY {t} {sample}) s
          ORDER BY tile, {order}) f
        WHERE tile > 1 ORDER BY tile""").format(
        cols=cols, keys=keys, n=sql.Literal(n), order=order, t=info.ident, sample=sample)
    return [list(r) for r in conn.execute(q).fetchall()]
