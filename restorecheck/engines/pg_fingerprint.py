"""Fingerprint a live PostgreSQL database into a ``Manifest``: counts, checksums, catalog, integrity facts.

Everything is read in REPEATABLE READ, READ ONLY transactions that share one snapshot: the first
connection exports it (``pg_export_snapshot()``), or imports one given from outside
(``FingerprintOptions.snapshot``, e.g. the snapshot ``pg_dump --snapshot`` reads), and every
further connection imports it with ``SET TRANSACTION SNAPSHOT``. Every session setting that
changes how values print is pinned first (``PINNED_SETTINGS``).

The checksum of a relation is computed in the server and is a sum over rows of a 64-bit row hash,
reported modulo 2^64 as 16 hex digits. It is independent of row order and physical layout, and
additive: a table is split by key range (``RangeChecksum``) and by block range (across
connections) and the parts are added. The row hash (``checksum_mode``):

``hash64-v1`` (default)
    ``hashtextextended((h1(c1, 1) # h2(c2, 2) # ...)::text, 0)`` over the columns sorted by name:
    each column is hashed by its type's own 64-bit extended hash function, seeded with its
    position (so a value moved to another column changes the row hash), a NULL by a constant of
    its own per position (so NULL differs from ''), the column hashes are XORed, and the result is
    hashed once more (non-linear, so values swapped between rows do not cancel in the sum; a
    plain sum of ``hash_record_extended`` misses them). This is about 30% cheaper than forming a
    ROW and hashing it with ``hash_record_extended``.
    Columns are cast where a type hash would be wrong for a restore check: types without an
    extended hash function (json, xml, money, geometric types, tsvector, bit), enums (their
    hash is the label's OID, which a restore changes), reg* types (OIDs), composite, range and
    multirange types, and the 64-bit temporal types (their hash folds 64 bits into 32) go through
    ``::text COLLATE "C"``; columns of non-deterministic collations or citext too (their hash
    treats 'a' and 'A' alike); bigint gets a second element ``c >> 32`` for the same reason.
    Equal values hash alike: numeric 1.0 and 1.00, float -0 and 0, interval '1 day' and '24 hours'.

``text64-v1`` (``FingerprintOptions.strict``)
    ``hashtextextended(ROW(c1, c2, ...)::text, 0)``: the text form of the row under the pinned
    settings, so 1.0 and 1.00 differ. About twice as slow (measured: benchmarks/bench_fingerprint.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, LiteralString, cast

import psycopg
from psycopg import sql
from psycopg.types.json import set_json_loads

from restorecheck.checks.compare import fk_self_checks, same_boundaries, sequence_self_checks
from restorecheck.dburl import PostgresRef
from restorecheck.engines import pg_catalog, pg_dbprops
from restorecheck.engines.base import FingerprintOptions
from restorecheck.errors import BadInputError, SourceUnreachableError
from restorecheck.model import Finding, Manifest, RangeChecksum, TableFingerprint

log = logging.getLogger("restorecheck")

HASH_MODE = "hash64-v1"
TEXT_MODE = "text64-v1"
MOD64 = 1 << 64

# Settings that change how values print or what a query sees (PITFALLS E6, G, I).
PINNED_SETTINGS: dict[str, str] = {
    "search_path": "pg_catalog",
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "lc_monetary": "C",
    "lc_numeric": "C",
    "row_security": "off",  # a role subject to RLS gets an error instead of an under-count
    "xmloption": "content",
    "default_transaction_read_only": "on",
}

# The checksum query groups by key bucket; the planner cannot estimate the number of buckets
# (it assumes one per row) and would sort the whole table: hash aggregation is what we want.
PLANNER_SETTINGS: dict[str, str] = {"enable_sort": "off"}

# base types whose own hash is unusable for a restore check: cast to text. bytea, date, cid, xid,
# xid8: PostgreSQL 18 has type-specific extended hash functions for them (hashbyteaextended,
# hashdateextended, ...) where 15 and 16 have none taking the type, so their hash would take a
# different path on each side of a cross-major restore; as text it is the same on every major.
_TEXT_TYPES = frozenset({
    "bytea", "date", "cid", "xid", "xid8", "timestamp", "timestamptz", "time", "timetz", "interval",
    "regclass", "regtype", "regproc", "regprocedure", "regoper", "regoperator", "regconfig",
    "regdictionary", "regnamespace", "regrole", "regcollation", "citext",
})
# blocks per parallel chunk when a table is split across connections
CHUNK_MIN_PAGES = 4096  # 32 MiB: smaller tables are read in one piece


@dataclass(frozen=True)
class ColumnInfo:
    """What the row-hash builder needs to know about a column."""

    name: str
    type_sql: str  # format_type(), qualified under search_path = pg_catalog
    base: str  # typname of the base type (domains resolved)
    typtype: str  # typtype of the base type: b c d e m p r
    elem_base: str | None = None  # arrays: typname of the element's base type
    elem_typtype: str | None = None
    hashable: bool = True  # has an extended hash function (probed in the server)
    hashfn: str | None = None  # that function, when it can be called with the base type
    nondeterministic: bool = False  # collation is non-deterministic


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str
    relkind: str  # r p m f
    columns: tuple[ColumnInfo, ...]
    key: tuple[str, ...] = ()
    key_types: tuple[str, ...] = ()
    key_collatable: tuple[bool, ...] = ()
    populated: bool = True
    persistence: str = "p"
    row_security: bool = False
    force_row_security: bool = False
    owner_is_me: bool = False
    partition: bool = False
    pages: int = 0
    reltuples: float = -1.0
    parents: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.name)

    @property
    def kind(self) -> str:
        if self.relkind == "m":
            return "matview"
        if self.relkind == "f":
            return "foreign"
        if self.relkind == "p":
            return "partitioned"
        if self.partition:
            return "partition"
        return "table"


# --- the row hash (pure, unit-tested) ------------------------------------------------------------


_TEXT_HASH = "hashtextextended"


def column_elements(col: ColumnInfo, *, alias: str = "t") -> list[tuple[str, sql.Composable]]:
    """``(hash function, expression)`` pairs that stand for ``col`` in the ``hash64-v1`` row hash."""
    ref = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(col.name))
    as_text = (
        not col.hashable
        or col.hashfn is None
        or col.nondeterministic
        or col.typtype in ("c", "e", "r", "m", "p")
        or col.base in _TEXT_TYPES
        or (col.elem_base is not None and (col.elem_base in _TEXT_TYPES or col.elem_base == "int8"
                                            or col.elem_typtype in ("c", "e", "r", "m", "p")))
    )
    if as_text or col.hashfn is None:
        return [(_TEXT_HASH, sql.SQL('({})::text COLLATE "C"').format(ref))]
    fn: str = col.hashfn
    if col.base == "int8":
        value = ref if col.type_sql == "bigint" else sql.SQL("({})::bigint").format(ref)
        return [(fn, value), (fn, sql.SQL("({} >> 32)").format(value))]
    if col.base == "bool":
        return [("hashint4extended", sql.SQL("({})::integer").format(ref))]
    return [(fn, ref)]


def row_hash_sql(columns: Sequence[ColumnInfo], *, strict: bool, alias: str = "t") -> sql.Composable:
    """The per-row 64-bit hash expression over ``columns`` sorted by name (PITFALLS D8).

    ``hash64-v1``: element i (columns by name; a bigint is two elements) is hashed by its type's
    extended hash function with seed i, a NULL stands for a constant of its own per position,
    the elements are XORed (position-dependent through the seeds) and the result is hashed once
    more as text (non-linear, so that swaps between rows do not cancel in the sum).
    """
    cols = sorted(columns, key=lambda c: c.name)
    if not cols:
        return sql.SQL("0::bigint")
    if strict:
        refs = sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(c.name)) for c in cols)
        return sql.SQL('hashtextextended((ROW({}))::text COLLATE "C", 0)').format(refs)
    parts: list[sql.Composable] = []
    i = 0
    for c in cols:
        for fn, expr in column_elements(c, alias=alias):
            i += 1
            parts.append(sql.SQL("coalesce({fn}({e}, {seed}), {null})").format(
                fn=sql.SQL(fn), e=expr, seed=sql.Literal(i), null=sql.Literal(_null_marker(i))))
    return sql.SQL("hashtextextended(({})::text, 0)").format(sql.SQL(" # ").join(parts))


def _null_marker(i: int) -> int:
    """A fixed 64-bit stand-in for NULL at element position ``i`` (never a plain 0)."""
    x = (0x9E3779B97F4A7C15 * (i + 1)) % MOD64
    return x - MOD64 if x >= 1 << 63 else x


def key_expr(table: TableInfo, *, alias: str = "t") -> sql.Composable:
    """The key as one comparable value, text columns in the "C" collation (stable across locales)."""
    parts = []
    for name, collatable in zip(table.key, table.key_collatable, strict=True):
        ref = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(name))
        parts.append(sql.SQL('{} COLLATE "C"').format(ref) if collatable else ref)
    if len(parts) == 1:
        return parts[0]
    return sql.SQL("ROW({})").format(sql.SQL(", ").join(parts))


def key_literal(table: TableInfo, values: Sequence[Any]) -> tuple[sql.Composable, list[Any]]:
    """A key value (text per column, as stored in RangeChecksum) as SQL with parameters."""
    parts = []
    for typ, collatable in zip(table.key_types, table.key_collatable, strict=True):
        parts.append(sql.SQL('%s::{} COLLATE "C"' if collatable else "%s::{}").format(sql.SQL(typ)))
    params = [None if v is None else str(v) for v in values]
    if len(parts) == 1:
        return parts[0], params
    return sql.SQL("ROW({})").format(sql.SQL(", ").join(parts)), params


def checksum_query(
    table: TableInfo,
    *,
    strict: bool,
    boundaries: Sequence[Sequence[Any]] = (),
    blocks: tuple[int, int | None] | None = None,
    where: tuple[sql.Composable, list[Any]] | None = None,
) -> tuple[sql.Composed, list[Any]]:
    """``SELECT bucket, count(*), sum(rowhash)`` over one relation, by key bucket when ``boundaries``."""
    params: list[Any] = []
    h = row_hash_sql(table.columns, strict=strict)
    bucket: sql.Composable
    if boundaries:
        lits = []
        for b in boundaries:
            lit, p = key_literal(table, b)
            lits.append(lit)
            params += p
        bucket = sql.SQL("width_bucket({}, ARRAY[{}])").format(key_expr(table), sql.SQL(", ").join(lits))
    else:
        bucket = sql.SQL("0")
    conds: list[sql.Composable] = []
    if blocks is not None:
        lo, hi = blocks
        conds.append(sql.SQL("t.ctid >= {}::tid").format(sql.Literal(f"({lo},0)")))
        if hi is not None:
            conds.append(sql.SQL("t.ctid < {}::tid").format(sql.Literal(f"({hi},0)")))
    if where is not None:
        conds.append(where[0])
    where_sql = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conds) if conds else sql.SQL("")
    only = sql.SQL("") if table.relkind == "p" else sql.SQL("ONLY ")
    q = sql.SQL("SELECT {b}, count(*), coalesce(sum({h}), 0) FROM {only}{t} AS t{w} GROUP BY 1").format(
        b=bucket, h=h, only=only, t=table.ident, w=where_sql)
    if where is not None:
        params += where[1]
    return q, params


def format_checksum(total: int) -> str:
    """A checksum sum as 16 hex digits (modulo 2^64)."""
    return f"{total % MOD64:016x}"


def add_checksums(*values: str) -> str:
    return format_checksum(sum(int(v, 16) for v in values))


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


def ranges_from_boundaries(boundaries: Sequence[Sequence[Any]],
                           buckets: Mapping[int, tuple[int, int]]) -> tuple[RangeChecksum, ...]:
    """RangeChecksums [b_i, b_i+1) from ``width_bucket`` results (bucket i covers [b_i, b_i+1))."""
    bounds: list[tuple[Any, ...] | None] = [None, *(tuple(b) for b in boundaries), None]
    out = []
    for i in range(len(boundaries) + 1):
        rows, total = buckets.get(i, (0, 0))
        out.append(RangeChecksum(bounds[i], bounds[i + 1], rows, format_checksum(total)))
    return tuple(out)


# --- connections ----------------------------------------------------------------------------------


def _latin1_json(data: str | bytes) -> Any:
    return json.loads(data.decode("latin-1") if isinstance(data, bytes | bytearray | memoryview) else data)


def pin_client_encoding(conn: psycopg.Connection[Any]) -> None:
    """Make text (and the catalog's json) decode on any database encoding.

    libpq's default client_encoding is the database's. In a LATIN1 (or other non-UTF8) database
    json then arrives in that encoding and psycopg's json loader, which assumes UTF-8, fails: UTF8
    is asked for, and the server converts. A SQL_ASCII server converts nothing and psycopg would
    return text as bytes: LATIN1 is asked for instead, which maps every byte to one character, so
    names and values round-trip losslessly (and the same way on the source and the restored copy)."""
    if conn.info.parameter_status("server_encoding") == "SQL_ASCII":
        conn.execute("SELECT pg_catalog.set_config('client_encoding', 'LATIN1', false)")
        set_json_loads(_latin1_json, conn)
    else:
        conn.execute("SELECT pg_catalog.set_config('client_encoding', 'UTF8', false)")


def connect(ref: PostgresRef, options: FingerprintOptions, *, application: str = "restorecheck"
            ) -> psycopg.Connection[Any]:
    """An autocommit connection with the pinned settings (the source is only read)."""
    try:
        conn = psycopg.connect(ref.conninfo(application_name=application), autocommit=True,
                               connect_timeout=15)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise SourceUnreachableError(f"cannot connect to {ref.display()}: {first}",
                                     "check the URL, that the server runs, and the credentials") from None
    try:
        pin_client_encoding(conn)
        for name, value in {**PINNED_SETTINGS, **PLANNER_SETTINGS, "lock_timeout": options.lock_timeout,
                            "statement_timeout": options.statement_timeout}.items():
            conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
    except psycopg.Error:
        conn.close()
        raise
    return conn


def _double_quoted_percents(text: str) -> str:
    """``%`` inside quoted identifiers and string literals doubled, so that psycopg does not read
    a table named ``pct%s`` as a placeholder; the placeholders outside quotes are left alone."""
    out: list[str] = []
    quote: str | None = None
    for ch in text:
        if ch in ("'", '"'):
            if quote is None:
                quote = ch
            elif ch == quote:
                quote = None  # a doubled quote leaves and re-enters: still inside
        out.append("%%" if ch == "%" and quote is not None else ch)
    return "".join(out)


def execute_with_params(conn: psycopg.Connection[Any], query: sql.SQL | sql.Composed,
                        params: Sequence[Any]) -> psycopg.Cursor[Any]:
    """``conn.execute(query, params)`` that survives ``%`` in identifiers (schema, table, column).

    psycopg looks for placeholders in the whole query text, quoted identifiers included: a table
    or column whose name holds ``%s`` or ``%(x)s`` failed every checksum query and was reported
    unreadable on both sides, so its content was silently not compared."""
    if not params:
        return conn.execute(query)
    text = _double_quoted_percents(query.as_string(conn))
    return conn.execute(cast(LiteralString, text), params)


def begin_snapshot(conn: psycopg.Connection[Any], snapshot: str | None) -> None:
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    if snapshot:
        try:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        except psycopg.Error as exc:
            conn.execute("ROLLBACK")
            raise BadInputError(f"cannot import snapshot {snapshot!r}: {_first_line(exc)}",
                                "the exporting transaction must still be open") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


@contextlib.contextmanager
def _savepoint(conn: psycopg.Connection[Any]) -> Iterator[None]:
    conn.execute("SAVEPOINT rc_sp")
    try:
        yield
    except psycopg.Error:
        conn.execute("ROLLBACK TO SAVEPOINT rc_sp")
        conn.execute("RELEASE SAVEPOINT rc_sp")
        raise
    conn.execute("RELEASE SAVEPOINT rc_sp")


# --- catalog of the relations to read ------------------------------------------------------------


def load_tables(conn: psycopg.Connection[Any]) -> list[TableInfo]:
    """Every user relation with data of its own (r, p, m, f), with its columns and primary key."""
    rels = conn.execute(f"""
        SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispopulated, c.relpersistence,
               c.relrowsecurity, c.relforcerowsecurity, pg_has_role(c.relowner, 'USAGE'), c.relispartition,
               c.relpages, c.reltuples,
               (SELECT coalesce(array_agg(pn.nspname || '.' || pc.relname), '{{}}') FROM pg_inherits i
                  JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
                 WHERE i.inhrelid = c.oid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {pg_catalog.USER_NS} AND c.relkind IN ('r', 'p', 'm', 'f')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
        ORDER BY 2, 3""").fetchall()
    cols = conn.execute(f"""
        SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod),
               bt.typname, bt.typtype, et.typname, et.typtype, bt.oid,
               coalesce((SELECT NOT co.collisdeterministic FROM pg_collation co WHERE co.oid = a.attcollation),
                        false),
               a.attcollation <> 0,
               CASE WHEN bt.typcategory = 'A' THEN 'hash_array_extended' ELSE
                 (SELECT p.amproc::regproc::text FROM pg_opclass oc
                    JOIN pg_amproc p ON p.amprocfamily = oc.opcfamily AND p.amprocnum = 2
                         AND p.amproclefttype = oc.opcintype AND p.amprocrighttype = oc.opcintype
                    JOIN pg_proc f ON f.oid = p.amproc
                   WHERE oc.opcmethod = (SELECT am.oid FROM pg_am am WHERE am.amname = 'hash')
                     AND oc.opcdefault AND oc.opcintype = bt.oid AND f.proargtypes[0] = bt.oid
                   LIMIT 1) END
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
        LEFT JOIN pg_type e0 ON e0.oid = bt.typelem AND bt.typcategory = 'A'
        LEFT JOIN pg_type et ON et.oid = CASE WHEN e0.typtype = 'd' THEN e0.typbasetype ELSE e0.oid END
        WHERE {pg_catalog.USER_NS} AND c.relkind IN ('r', 'p', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attrelid, a.attnum""").fetchall()
    keys = conn.execute("""
        SELECT co.conrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attcollation <> 0
        FROM pg_constraint co CROSS JOIN LATERAL unnest(co.conkey) WITH ORDINALITY k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.attnum
        WHERE co.contype = 'p' ORDER BY co.conrelid, k.ord""").fetchall()
    hashable = _probe_hashable(conn, {(r[2], r[7]) for r in cols})
    by_rel: dict[int, list[ColumnInfo]] = {}
    for relid, name, typ, base, typtype, ebase, etyptype, _boid, nondet, _coll, hashfn in cols:
        by_rel.setdefault(relid, []).append(ColumnInfo(
            name=name, type_sql=typ, base=base, typtype=typtype, elem_base=ebase, elem_typtype=etyptype,
            hashable=hashable.get(typ, False), nondeterministic=bool(nondet),
            hashfn=hashfn if base != "bool" else "hashint4extended"))
    key_by_rel: dict[int, list[tuple[str, str, bool]]] = {}
    for relid, name, typ, collatable in keys:
        key_by_rel.setdefault(relid, []).append((name, typ, bool(collatable)))
    out = []
    for (oid, nsp, name, kind, populated, persistence, rls, force, mine, part, pages, reltuples,
         parents) in rels:
        k = key_by_rel.get(oid, [])
        out.append(TableInfo(
            schema=nsp, name=name, relkind=kind, columns=tuple(by_rel.get(oid, [])),
            key=tuple(x[0] for x in k), key_types=tuple(x[1] for x in k),
            key_collatable=tuple(x[2] for x in k), populated=bool(populated), persistence=persistence,
            row_security=bool(rls), force_row_security=bool(force), owner_is_me=bool(mine),
            partition=bool(part), pages=int(pages or 0), reltuples=float(reltuples),
            parents=tuple(parents or ())))
    return out


def _probe_hashable(conn: psycopg.Connection[Any], types: set[tuple[str, int]]) -> dict[str, bool]:
    """Which column types have an extended hash function (hash_record_extended needs one)."""
    out: dict[str, bool] = {}
    for typ, _oid in sorted(types):
        try:
            with _savepoint(conn):
                conn.execute(sql.SQL("SELECT hash_record_extended(ROW(NULL::{}), 0)").format(
                    sql.SQL(typ)))
            out[typ] = True
        except psycopg.Error:
            out[typ] = False
    return out


# --- the work: tables split into units, run over several connections ------------------------------


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
    """Run tasks (which may return more tasks) over the connections, one thread per connection."""
    if len(conns) == 1:
        todo = list(tasks)
        while todo:
            todo = todo[1:] + todo[0](conns[0])
        return
    q: queue.Queue[Task | None] = queue.Queue()
    lock = threading.Lock()
    outstanding = [len(tasks)]
    errors: list[BaseException] = []
    done = threading.Event()
    for t in tasks:
        q.put(t)
    if not tasks:
        return

    def worker(conn: psycopg.Connection[Any]) -> None:
        while not done.is_set():
            try:
                task = q.get(timeout=0.2)
            except queue.Empty:
                continue
            if task is None:
                return
            try:
                more = task(conn) if not errors else []
            except BaseException as exc:
                more = []
                errors.append(exc)
            with lock:
                outstanding[0] += len(more) - 1
                for m in more:
                    q.put(m)
                if outstanding[0] == 0:
                    done.set()

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in conns]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]


class _Fingerprinter:
    def __init__(self, options: FingerprintOptions, ranges_from: Manifest | None, jobs: int) -> None:
        self.options = options
        self.ranges_from = ranges_from
        self.jobs = jobs
        self.lock = threading.Lock()
        self.plans: dict[str, _TablePlan] = {}
        self.done_tables = 0
        self.total_tables = 0

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

    def chunks(self, info: TableInfo) -> list[tuple[int, int | None]]:
        """Block ranges to read a large table over several connections ([] = in one piece)."""
        if self.jobs > 1 and info.relkind in ("r", "m") and info.pages >= CHUNK_MIN_PAGES:
            return split_blocks(info.pages, self.jobs * 2)
        return []

    def chunk_task(self, plan: _TablePlan, blocks: tuple[int, int | None] | None) -> Task:
        def run(conn: psycopg.Connection[Any]) -> list[Task]:
            q, params = checksum_query(plan.info, strict=self.options.strict, boundaries=plan.boundaries,
                                       blocks=blocks)
            try:
                with _savepoint(conn):
                    rows = execute_with_params(conn, q, params).fetchall()
            except psycopg.Error as exc:
                self._fail(plan, exc)
                rows = []
            with self.lock:
                for bucket, count, total in rows:
                    acc = plan.buckets.setdefault(int(bucket), [0, 0])
                    acc[0] += int(count)
                    acc[1] += int(total)
                plan.pending -= 1
                if plan.pending == 0:
                    self.done_tables += 1
                    self.options.progress("fingerprint", self.done_tables, self.total_tables)
            return []
        return run

    def _fail(self, plan: _TablePlan, exc: psycopg.Error) -> None:
        msg = _first_line(exc)
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
    """About ``n`` key ranges of similar size from a repeatable block sample (first key of each tile)."""
    pct = min(100.0, max(0.01, 100.0 * 200 * n / max(est_rows, 1.0)))
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


# --- facts: sequences, foreign keys, large objects ------------------------------------------------


def sequence_states(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    rows = conn.execute(f"""
        SELECT n.nspname, c.relname, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle,
               (SELECT json_build_array(tn.nspname, tc.relname, ta.attname, tc.relkind)
                  FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid
                  JOIN pg_namespace tn ON tn.oid = tc.relnamespace
                  JOIN pg_attribute ta ON ta.attrelid = d.refobjid AND ta.attnum = d.refobjsubid
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
                 LIMIT 1)
        FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {pg_catalog.USER_NS} ORDER BY 1, 2""").fetchall()
    out: dict[str, dict[str, Any]] = {}
    for nsp, name, inc, smin, smax, cycle, owned in rows:
        state: dict[str, Any] = {"increment": int(inc), "min": int(smin), "max": int(smax), "cycle": bool(cycle)}
        try:
            with _savepoint(conn):
                last, called = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(
                    sql.Identifier(nsp, name))).fetchone()  # type: ignore[misc]
            state.update(last_value=int(last), is_called=bool(called))
        except psycopg.Error as exc:
            state.update(last_value=None, is_called=None, note=_first_line(exc))
        if owned:
            tnsp, trel, tcol, tkind = owned
            state["owned_by"] = f"{tnsp}.{trel}.{tcol}"
            only = sql.SQL("") if tkind == "p" else sql.SQL("ONLY ")
            try:
                with _savepoint(conn):
                    mx, mn = conn.execute(sql.SQL("SELECT max({c})::text, min({c})::text FROM {o}{t}").format(
                        c=sql.Identifier(tcol), o=only, t=sql.Identifier(tnsp, trel))).fetchone()  # type: ignore[misc]
                state["column_max"] = None if mx is None else _int_or_str(mx)
                state["column_min"] = None if mn is None else _int_or_str(mn)
            except psycopg.Error as exc:
                state["column_note"] = _first_line(exc)
        out[f"{nsp}.{name}"] = state
    return out


def _int_or_str(v: str) -> int | str:
    try:
        return int(v)
    except ValueError:
        return v


def fk_orphan_counts(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """Orphan rows per foreign key (MATCH SIMPLE / FULL semantics; PITFALLS I.5)."""
    fks = conn.execute(f"""
        SELECT n.nspname, c.relname, co.conname, c.relkind, pn.nspname, pc.relname, pc.relkind,
               co.convalidated, co.confmatchtype,
               (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(co.conkey) WITH ORDINALITY k(n, ord)
                  JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.n),
               (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(co.confkey) WITH ORDINALITY k(n, ord)
                  JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.n)
        FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_class pc ON pc.oid = co.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
        WHERE co.contype = 'f' AND co.conparentid = 0 AND {pg_catalog.USER_NS}
        ORDER BY 1, 2, 3""").fetchall()
    out: dict[str, dict[str, Any]] = {}
    for nsp, rel, con, kind, pnsp, prel, pkind, validated, match, ccols, pcols in fks:
        child = sql.SQL("{}{}").format(sql.SQL("") if kind == "p" else sql.SQL("ONLY "), sql.Identifier(nsp, rel))
        parent = sql.SQL("{}{}").format(sql.SQL("") if pkind == "p" else sql.SQL("ONLY "),
                                        sql.Identifier(pnsp, prel))
        eq = sql.SQL(" AND ").join(sql.SQL("p.{} = c.{}").format(sql.Identifier(p), sql.Identifier(cc))
                                   for p, cc in zip(pcols, ccols, strict=True))
        notnull = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(cc)) for cc in ccols)
        missing = sql.SQL("({nn} AND NOT EXISTS (SELECT 1 FROM {p} AS p WHERE {eq}))").format(
            nn=notnull, p=parent, eq=eq)
        if match == "f" and len(ccols) > 1:  # MATCH FULL: partly-NULL keys violate too
            anynull = sql.SQL(" OR ").join(sql.SQL("c.{} IS NULL").format(sql.Identifier(cc)) for cc in ccols)
            missing = sql.SQL("({m} OR (({a}) AND NOT ({nn_all})))").format(
                m=missing, a=anynull, nn_all=sql.SQL(" AND ").join(
                    sql.SQL("c.{} IS NULL").format(sql.Identifier(cc)) for cc in ccols))
        q = sql.SQL("SELECT count(*) FROM {c} AS c WHERE {m}").format(c=child, m=missing)
        entry: dict[str, Any] = {"table": f"{nsp}.{rel}", "references": f"{pnsp}.{prel}",
                                 "validated": bool(validated)}
        try:
            with _savepoint(conn):
                entry["orphans"] = int(conn.execute(q).fetchone()[0])  # type: ignore[index]
        except psycopg.Error as exc:
            entry["orphans"] = None
            entry["note"] = _first_line(exc)
        out[f"{nsp}.{rel}.{con}"] = entry
    return out


def large_object_summary(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """Count, per-object md5 and owner, and one digest over all (large-object OIDs survive a restore)."""
    try:
        with _savepoint(conn):
            rows = conn.execute("""
                SELECT l.oid::text, pg_get_userbyid(l.lomowner), md5(lo_get(l.oid))
                FROM pg_largeobject_metadata l ORDER BY l.oid""").fetchall()
    except psycopg.Error as exc:
        try:
            with _savepoint(conn):
                n = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0]  # type: ignore[index]
        except psycopg.Error:
            n = None
        return {"count": n, "digest": None, "objects": {}, "note": f"contents not readable: {_first_line(exc)}"}
    h = hashlib.sha256()
    objects: dict[str, dict[str, Any]] = {}
    for oid, owner, md5 in rows:
        h.update(f"{oid}\t{owner}\t{md5}\n".encode())
        objects[oid] = {"md5": md5, "owner": owner}
    return {"count": len(rows), "digest": h.hexdigest(), "objects": objects}


def database_facts(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    row = conn.execute("""
        SELECT current_database(), current_setting('server_version'), current_setting('server_version_num'),
               pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, pg_is_in_recovery(),
               current_user, r.rolsuper, r.rolbypassrls, pg_current_snapshot()::text
        FROM pg_database d, pg_roles r WHERE d.datname = current_database() AND r.rolname = current_user
        """).fetchone()
    assert row is not None
    (db, ver, vnum, enc, coll, ctype, recovery, user, sup, bypass, snap) = row
    facts = {"database": db, "server_version": ver, "server_version_num": int(vnum), "encoding": enc,
             "lc_collate": coll, "lc_ctype": ctype, "in_recovery": bool(recovery), "role": user,
             "rolsuper": bool(sup), "rolbypassrls": bool(bypass), "txid_snapshot": snap}
    facts.update(locale_provider_facts(conn))
    return facts


_PROVIDERS = {"c": "libc", "i": "icu", "b": "builtin"}


def locale_provider_facts(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """The database's locale provider and its ICU or builtin locale (PostgreSQL 15+; the column
    names changed in 17, so the row is read as JSON): ``locale_provider`` (libc, icu, builtin),
    ``icu_locale``, ``icu_rules`` (16+), ``builtin_locale`` (17+). Empty before 15 (always libc)."""
    row = conn.execute("SELECT to_jsonb(d) FROM pg_catalog.pg_database d "
                       "WHERE d.datname = current_database()").fetchone()
    d: Mapping[str, Any] = (row[0] if row else None) or {}
    provider = _PROVIDERS.get(str(d.get("datlocprovider") or ""))
    if provider is None:
        return {}
    out: dict[str, Any] = {"locale_provider": provider}
    own = d.get("datlocale") if "datlocale" in d else d.get("daticulocale")  # 17 renamed it
    if provider == "icu" and own:
        out["icu_locale"] = own
        if d.get("daticurules"):
            out["icu_rules"] = d["daticurules"]
    elif provider == "builtin" and own:
        out["builtin_locale"] = own
    return out


# --- the entry points ------------------------------------------------------------------------------


def fingerprint_postgres(
    ref: PostgresRef, options: FingerprintOptions, *, ranges_from: Manifest | None = None
) -> Manifest:
    """Fingerprint the live database ``ref`` (read only) into a Manifest.

    ``options.snapshot``: read in that exported snapshot (its exporting transaction must stay open
    until this returns), e.g. the one ``pg_dump --snapshot`` reads. Otherwise, with ``jobs`` > 1,
    the first connection exports a snapshot for the others. ``ranges_from``: use that manifest's
    key-range boundaries per table, and its checksum mode, so that the two fingerprints compare
    range by range.
    """
    jobs = max(1, options.jobs)
    if ranges_from is not None and ranges_from.facts.get("checksum_mode") in (HASH_MODE, TEXT_MODE):
        # checksums are only comparable in the same mode: follow the reference's
        options = dataclasses.replace(options, strict=ranges_from.facts["checksum_mode"] == TEXT_MODE)
    conns: list[psycopg.Connection[Any]] = []
    try:
        main = connect(ref, options, application="restorecheck fingerprint")
        conns.append(main)
        begin_snapshot(main, options.snapshot)
        snapshot = options.snapshot
        if snapshot is None and jobs > 1:
            snapshot = main.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        facts = database_facts(main)
        taken_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        options.progress("catalog", 0, None)
        schema = pg_catalog.schema_snapshot(main)
        db_properties = pg_dbprops.read_properties(main, str(facts["database"]))
        tables = load_tables(main)
        fp = _Fingerprinter(options, ranges_from, jobs)
        results: dict[str, TableFingerprint] = {}
        plans: list[_TablePlan] = []
        for info in tables:
            skip = _unreadable(info, facts)
            if skip is not None:
                results[info.qualified] = skip
                continue
            if options.schema_only:
                results[info.qualified] = TableFingerprint(info.qualified, info.kind, key=info.key,
                                                           extra=_extra(info))
                continue
            plan = _TablePlan(info)
            fp.plans[info.qualified] = plan
            plans.append(plan)
        # biggest first, so that the last task to finish is a small one
        plans.sort(key=lambda p: -p.info.pages)
        tasks = [fp.table_task(p) for p in plans]
        fp.total_tables = len(tasks)
        units = sum(max(1, len(fp.chunks(p.info))) for p in plans)  # one big table still uses every job
        for _ in range(1, min(jobs, max(1, units))):
            c = connect(ref, options, application="restorecheck fingerprint worker")
            conns.append(c)
            begin_snapshot(c, snapshot)
        _run_tasks(conns, tasks)
        for name, plan in fp.plans.items():
            results[name] = _table_result(plan, options)
        _derive_parents(results, tables)
        sequences = sequence_states(main)
        fks = {} if options.schema_only else fk_orphan_counts(main)
        los = None if options.schema_only else large_object_summary(main)
        facts["checksum_mode"] = TEXT_MODE if options.strict else HASH_MODE
        facts["jobs"] = jobs
        ordered = tuple(results[t.qualified] for t in tables)
        return Manifest(
            engine="postgresql", database=str(facts["database"]), server_version=str(facts["server_version"]),
            taken_at=taken_at, snapshot=snapshot, tables=ordered, schema=schema, sequences=sequences,
            large_objects=los, fk_orphans=fks, facts=facts, database_properties=db_properties)
    except psycopg.OperationalError as exc:
        raise SourceUnreachableError(f"lost the connection to {ref.display()}: {_first_line(exc)}",
                                     "check the server and retry") from None
    finally:
        for c in conns:
            with contextlib.suppress(Exception):
                c.execute("COMMIT")
            with contextlib.suppress(Exception):
                c.close()


def _extra(info: TableInfo) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if info.persistence == "u":
        extra["unlogged"] = True
    if info.parents:
        extra["parents"] = list(info.parents)
    return extra


def _unreadable(info: TableInfo, facts: Mapping[str, Any]) -> TableFingerprint | None:
    note = None
    extra = _extra(info)
    if info.relkind == "f":
        note = "foreign table: its data lives on another server and is not read"
    elif info.relkind == "m" and not info.populated:
        note = "materialized view was never populated (WITH NO DATA): nothing to read"
    elif info.relkind == "p":
        return None  # handled as a derived total
    elif (info.row_security and not (facts.get("rolsuper") or facts.get("rolbypassrls"))
          and (info.force_row_security or not info.owner_is_me)):
        note = (f"row-level security applies to role {facts.get('role')}: its rows cannot all be read, so no "
                "count or checksum (use a superuser or a role with BYPASSRLS)")
        extra["row_security"] = True
    if note is None:
        return None
    return TableFingerprint(info.qualified, info.kind, key=info.key, readable=False, note=note, extra=extra)


def _table_result(plan: _TablePlan, options: FingerprintOptions) -> TableFingerprint:
    info = plan.info
    extra = _extra(info)
    mode = TEXT_MODE if options.strict else HASH_MODE
    if plan.error is not None:
        note: str | None = plan.error
        if plan.rls:
            extra["row_security"] = True
            note = f"row-level security: {plan.error} (use a superuser or a role with BYPASSRLS)"
        return TableFingerprint(info.qualified, info.kind, key=info.key, readable=False, note=note, extra=extra)
    rows = sum(v[0] for v in plan.buckets.values())
    total = sum(v[1] for v in plan.buckets.values())
    ranges: tuple[RangeChecksum, ...] = ()
    if plan.boundaries:
        ranges = ranges_from_boundaries(plan.boundaries, {k: (v[0], v[1]) for k, v in plan.buckets.items()})
    note = None if info.key else "no primary key: a difference cannot be localised to rows"
    return TableFingerprint(info.qualified, info.kind, rows=rows, checksum=format_checksum(total),
                            checksum_mode=mode, key=info.key, ranges=ranges, note=note, extra=extra)


def _derive_parents(results: dict[str, TableFingerprint], tables: Sequence[TableInfo]) -> None:
    """Partitioned parents: totals derived from their leaves (never scanned twice)."""
    children: dict[str, list[str]] = {}
    for t in tables:
        for p in t.parents:
            children.setdefault(p, []).append(t.qualified)

    def leaves(name: str) -> list[TableFingerprint]:
        out = []
        for c in children.get(name, []):
            fp = results.get(c)
            if fp is None:
                continue
            out += leaves(c) if fp.kind == "partitioned" else [fp]
        return out

    for t in tables:
        if t.relkind != "p":
            continue
        ls = leaves(t.qualified)
        readable = all(x.readable and x.rows is not None for x in ls)
        if readable and ls:
            rows = sum(x.rows or 0 for x in ls)
            checksum = add_checksums(*(x.checksum or "0" for x in ls))
        elif readable:
            rows, checksum = 0, format_checksum(0)
        else:
            rows, checksum = None, None
        results[t.qualified] = TableFingerprint(
            t.qualified, "partitioned", rows=rows, checksum=checksum,
            checksum_mode=next((x.checksum_mode for x in ls), ""), key=t.key, readable=readable,
            note=None if readable else "a partition could not be read",
            extra={**_extra(t), "derived": True, "partitions": sorted(x.name for x in ls)})


def self_checks_postgres(manifest: Manifest, reference: Manifest | None = None) -> list[Finding]:
    """What the restored copy says about itself: sequences behind their column, orphans on validated
    FKs, RLS. ``reference``: where it shows the same condition, it was inherited from the source
    (a warning); where it does not, the backup or the restore introduced it (an error)."""
    findings = (sequence_self_checks(manifest.sequences, None if reference is None else reference.sequences)
                + fk_self_checks(manifest.fk_orphans, None if reference is None else reference.fk_orphans))
    for t in manifest.tables:
        if t.extra.get("row_security"):
            findings.append(Finding("row_security", "warning", t.name, t.note or "row-level security applies"))
    return findings


# --- bisection -------------------------------------------------------------------------------------


def _range_where(info: TableInfo, lower: Sequence[Any] | None, upper: Sequence[Any] | None
                 ) -> tuple[sql.Composable, list[Any]] | None:
    conds: list[sql.Composable] = []
    params: list[Any] = []
    if lower is not None:
        lit, p = key_literal(info, lower)
        conds.append(sql.SQL("{} >= {}").format(key_expr(info), lit))
        params += p
    if upper is not None:
        lit, p = key_literal(info, upper)
        conds.append(sql.SQL("{} < {}").format(key_expr(info), lit))
        params += p
    if not conds:
        return None
    return sql.SQL(" AND ").join(conds), params


def _find_table(conn: psycopg.Connection[Any], table: str) -> TableInfo:
    for t in load_tables(conn):
        if t.qualified == table:
            return t
    raise BadInputError(f"table {table} not found", "name it as schema.table")


def narrow_down(
    ref_a: PostgresRef,
    ref_b: PostgresRef,
    table: str,
    key: tuple[str, ...] = (),
    ranges: Sequence[tuple[Sequence[Any] | None, Sequence[Any] | None]] = ((None, None),),
    max_keys: int = 20,
    *,
    options: FingerprintOptions | None = None,
    leaf_rows: int = 256,
) -> list[dict[str, Any]]:
    """Bisect the key ranges of ``table`` that differ between two live databases down to keys.

    Returns up to ``max_keys`` entries ``{"key": [...], "change": "missing" | "extra" | "changed"}``
    (missing: in A but not in B). Each side is read in its own snapshot.
    """
    options = options or FingerprintOptions()
    ca = connect(ref_a, options, application="restorecheck bisect")
    cb = connect(ref_b, options, application="restorecheck bisect")
    try:
        begin_snapshot(ca, None)
        begin_snapshot(cb, None)
        ia, ib = _find_table(ca, table), _find_table(cb, table)
        if key and tuple(key) != ia.key:
            raise BadInputError(f"{table}: key {key} is not its primary key {ia.key}")
        if not ia.key:
            return []
        # both sides must hash the same columns; use the column list of A
        ib = dataclasses.replace(ib, columns=ia.columns)
        out: list[dict[str, Any]] = []
        stack = list(ranges)[::-1]
        while stack and len(out) < max_keys:
            lo, hi = stack.pop()
            where_a = _range_where(ia, lo, hi)
            qa, pa = checksum_query(ia, strict=options.strict, where=where_a)
            qb, pb = checksum_query(ib, strict=options.strict, where=_range_where(ib, lo, hi))
            ra = execute_with_params(ca, qa, pa).fetchone() or (0, 0, 0)
            rb = execute_with_params(cb, qb, pb).fetchone() or (0, 0, 0)
            if (ra[1], int(ra[2]) % MOD64) == (rb[1], int(rb[2]) % MOD64):
                continue
            if max(ra[1], rb[1]) <= leaf_rows:
                out += _diff_rows(ca, cb, ia, options, lo, hi)[: max_keys - len(out)]
                continue
            bigger, info = (ca, ia) if ra[1] >= rb[1] else (cb, ib)
            mid = _median_key(bigger, info, lo, hi, max(ra[1], rb[1]) // 2)
            if mid is None or (lo is not None and [str(x) for x in mid] == [str(x) for x in lo]):
                out += _diff_rows(ca, cb, ia, options, lo, hi)[: max_keys - len(out)]
                continue
            stack.append((mid, hi))
            stack.append((lo, mid))
        return out[:max_keys]
    finally:
        for c in (ca, cb):
            with contextlib.suppress(Exception):
                c.execute("COMMIT")
                c.close()


def _median_key(conn: psycopg.Connection[Any], info: TableInfo, lo: Any, hi: Any, offset: int) -> list[Any] | None:
    w = _range_where(info, lo, hi)
    cols = sql.SQL(", ").join(sql.SQL("(t.{})::text").format(sql.Identifier(k)) for k in info.key)
    q = sql.SQL("SELECT {c} FROM {only}{t} AS t{w} ORDER BY {k} OFFSET {o} LIMIT 1").format(
        c=cols, only=sql.SQL("") if info.relkind == "p" else sql.SQL("ONLY "), t=info.ident,
        w=sql.SQL("") if w is None else sql.SQL(" WHERE ") + w[0], k=key_expr(info), o=sql.Literal(offset))
    row = execute_with_params(conn, q, [] if w is None else w[1]).fetchone()
    return None if row is None else list(row)


def _diff_rows(ca: psycopg.Connection[Any], cb: psycopg.Connection[Any], info: TableInfo,
               options: FingerprintOptions, lo: Any, hi: Any) -> list[dict[str, Any]]:
    def rows(conn: psycopg.Connection[Any]) -> dict[tuple[str, ...], int]:
        w = _range_where(info, lo, hi)
        cols = sql.SQL(", ").join(sql.SQL("(t.{})::text").format(sql.Identifier(k)) for k in info.key)
        q = sql.SQL("SELECT {c}, {h} FROM {only}{t} AS t{w}").format(
            c=cols, h=row_hash_sql(info.columns, strict=options.strict),
            only=sql.SQL("") if info.relkind == "p" else sql.SQL("ONLY "), t=info.ident,
            w=sql.SQL("") if w is None else sql.SQL(" WHERE ") + w[0])
        out: dict[tuple[str, ...], int] = {}
        for r in execute_with_params(conn, q, [] if w is None else w[1]).fetchall():
            k = tuple(r[:-1])
            out[k] = out.get(k, 0) + int(r[-1])  # a duplicated key (no unique index) sums
        return out

    a, b = rows(ca), rows(cb)
    diffs = []
    for k in sorted(set(a) | set(b)):
        if k not in b:
            diffs.append({"key": list(k), "change": "missing"})
        elif k not in a:
            diffs.append({"key": list(k), "change": "extra"})
        elif a[k] != b[k]:
            diffs.append({"key": list(k), "change": "changed"})
    return diffs


def narrow_table(ref_a: PostgresRef, ref_b: PostgresRef, a: TableFingerprint, b: TableFingerprint, *,
                 options: FingerprintOptions | None = None, max_keys: int = 20) -> list[dict[str, Any]]:
    """The differing keys of one table between two live databases, starting from its differing ranges."""
    if not a.key:
        return []
    if a.ranges and b.ranges and same_boundaries(a.ranges, b.ranges):
        start = [(x.lower, x.upper) for x, y in zip(a.ranges, b.ranges, strict=True)
                 if x.rows != y.rows or x.checksum != y.checksum]
    else:
        start = [(None, None)]
    return narrow_down(ref_a, ref_b, a.name, a.key, start, max_keys, options=options)
