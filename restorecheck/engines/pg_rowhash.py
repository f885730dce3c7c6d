"""The row hash and the checksum query (pure, unit-tested): what ``checksum_mode`` means.

See ``pg_fingerprint`` for the definition of ``hash64-v2``, ``hash64-v1`` and ``text64-v1``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from restorecheck.model import ChecksumMode, RangeChecksum

log = logging.getLogger("restorecheck")


HASH_MODE: ChecksumMode = "hash64-v2"  # the default since 0.2
HASH_MODE_V1: ChecksumMode = "hash64-v1"  # manifests made before 0.2: still computed to compare with them
TEXT_MODE: ChecksumMode = "text64-v1"
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


def _ident(*names: str) -> str:
    """Quoted (and dotted) identifiers, as ``sql.Identifier`` writes them. The row hash is built as
    text from these: composing hundreds of small ``sql.SQL.format`` objects per table, each parsed and
    then rendered again, was a fifth of a catalog-heavy fingerprint (MusicBrainz: 516 tables)."""
    return sql.Identifier(*names).as_string(None)


def _int(n: int) -> str:
    """An integer literal as ``sql.Literal`` writes it (a negative one behind a space, so that it can
    never follow a minus sign as a comment)."""
    return str(int(n)) if n >= 0 else f" {int(n)}"


def _column_elements(col: ColumnInfo, alias: str) -> list[tuple[str, str]]:
    ref = _ident(alias, col.name)
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
        return [(_TEXT_HASH, f'({ref})::text COLLATE "C"')]
    fn: str = col.hashfn
    if col.base == "int8":
        value = ref if col.type_sql == "bigint" else f"({ref})::bigint"
        return [(fn, value), (fn, f"({value} >> 32)")]
    if col.base == "bool":
        return [("hashint4extended", f"({ref})::integer")]
    return [(fn, ref)]


def column_elements(col: ColumnInfo, *, alias: str = "t") -> list[tuple[str, sql.Composable]]:
    """``(hash function, expression)`` pairs that stand for ``col`` in the ``hash64-v1`` row hash."""
    return [(fn, sql.SQL(e)) for fn, e in _column_elements(col, alias)]


def row_hash_sql(columns: Sequence[ColumnInfo], *, strict: bool, alias: str = "t",
                 version: int = 2) -> sql.Composable:
    """The per-row 64-bit hash expression over ``columns`` sorted by name (PITFALLS D8).

    ``version`` 2 (``hash64-v2``, the default) or 1 (``hash64-v1``); ``strict``: ``text64-v1``.
    """
    if version == 2 and not strict:
        return mix_v2(xor_v2(columns, alias=alias))
    return row_hash_v1(columns, strict=strict, alias=alias)


def row_hash_v1(columns: Sequence[ColumnInfo], *, strict: bool, alias: str = "t") -> sql.Composable:
    """The ``hash64-v1`` (``text64-v1`` when ``strict``) row hash.

    ``hash64-v1``: element i (columns by name; a bigint is two elements) is hashed by its type's
    extended hash function with seed i, a NULL stands for a constant of its own per position,
    the elements are XORed (position-dependent through the seeds) and the result is hashed once
    more as text (non-linear, so that swaps between rows do not cancel in the sum).
    """
    cols = sorted(columns, key=lambda c: c.name)
    if not cols:
        return sql.SQL("0::bigint")
    if strict:
        refs = ", ".join(_ident(alias, c.name) for c in cols)
        return sql.SQL(f'hashtextextended((ROW({refs}))::text COLLATE "C", 0)')
    parts: list[str] = []
    i = 0
    for c in cols:
        for fn, expr in _column_elements(c, alias):
            i += 1
            parts.append(f"coalesce({fn}({expr}, {_int(i)}), {_int(_null_marker(i))})")
    return sql.SQL(f"hashtextextended(({' # '.join(parts)})::text, 0)")


def _null_marker(i: int) -> int:
    """A fixed 64-bit stand-in for NULL at element position ``i`` (never a plain 0)."""
    x = (0x9E3779B97F4A7C15 * (i + 1)) % MOD64
    return x - MOD64 if x >= 1 << 63 else x


# --- hash64-v2 ---------------------------------------------------------------------------------------

# Fixed-width temporal types: hashed as the bytes of their binary send form (the 64-bit count of
# microseconds, plus the day, month or zone fields), which is the same on every major and injective,
# where their own hash folds 64 bits into 32 and their text form costs a calendar conversion per value
# (measured per column: README, Performance, Fingerprint).
_SEND_TYPES = frozenset({"timestamp", "timestamptz", "time", "timetz", "date", "interval"})


def _column_elements_v2(col: ColumnInfo, i: int, alias: str) -> list[str]:
    if col.typtype in ("b", "d") and col.base in _SEND_TYPES and not col.nondeterministic:
        # col.base is one of _SEND_TYPES: a function name of ours, not the catalog's text
        pairs = [(_TEXT_HASH, f'(pg_catalog.{col.base}_send({_ident(alias, col.name)}))::text COLLATE "C"')]
    elif col.base == "bool" and col.typtype in ("b", "d"):
        return [f"coalesce(CASE {_ident(alias, col.name)} WHEN true THEN {_int(_bool_marker(i, True))} "
                f"WHEN false THEN {_int(_bool_marker(i, False))} END, {_int(_null_marker(i))})"]
    else:
        pairs = _column_elements(col, alias)
    return [f"coalesce({fn}({e}, {_int(i + k)}), {_int(_null_marker(i + k))})"
            for k, (fn, e) in enumerate(pairs)]


def column_elements_v2(col: ColumnInfo, i: int, *, alias: str = "t") -> list[sql.Composable]:
    """The element expressions (64-bit, never NULL) of ``col`` in ``hash64-v2``, from seed ``i`` up.

    As in ``hash64-v1`` (``column_elements``), except: a temporal type hashes its send form, and a
    boolean is one of two constants per position instead of a hash call.
    """
    return [sql.SQL(e) for e in _column_elements_v2(col, i, alias)]


def _bool_marker(i: int, value: bool) -> int:
    """The 64-bit constant for true or false at element position ``i`` (none is a NULL marker)."""
    x = (0xC2B2AE3D27D4EB4F * (2 * i + int(value) + 1) + 0x165667B19E3779F9) % MOD64
    return x - MOD64 if x >= 1 << 63 else x


def xor_v2(columns: Sequence[ColumnInfo], *, alias: str = "t") -> sql.Composable:
    """The XOR of every element of ``hash64-v2`` over ``columns`` sorted by name (before the mix)."""
    parts: list[str] = []
    i = 1
    for c in sorted(columns, key=lambda c: c.name):
        elems = _column_elements_v2(c, i, alias)
        parts += elems
        i += len(elems)
    if not parts:
        return sql.SQL("0::bigint")
    return sql.SQL(f"({' # '.join(parts)})")


def mix_v2(h: sql.Composable) -> sql.Composable:
    """The non-linear step of ``hash64-v2``: a 64-bit hash of the 64-bit ``h``, injective before the
    final XOR (the low half's hash folds the high half in; the high half is hashed on its own)."""
    return sql.SQL("(hashint8extended({h}, 0) # hashint8extended({h} >> 32, 1))").format(h=h)


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
    version: int = 2,
) -> tuple[sql.Composed, list[Any]]:
    """``SELECT bucket, count(*), sum(rowhash)`` over one relation, by key bucket when ``boundaries``.

    ``hash64-v2`` computes the XOR of the elements in a subquery (``OFFSET 0``: not flattened) and
    mixes it outside, so that the XOR is evaluated once although the mix reads it twice.
    """
    params: list[Any] = []
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
    if version == 2 and not strict:
        q = sql.SQL("SELECT s.b, count(*), coalesce(sum({m}), 0) FROM (SELECT {b} AS b, {x} AS h "
                    "FROM {only}{t} AS t{w} OFFSET 0) AS s GROUP BY 1").format(
            m=mix_v2(sql.SQL("s.h")), b=bucket, x=xor_v2(table.columns), only=only, t=table.ident,
            w=where_sql)
    else:
        q = sql.SQL("SELECT {b}, count(*), coalesce(sum({h}), 0) FROM {only}{t} AS t{w} GROUP BY 1").format(
            b=bucket, h=row_hash_sql(table.columns, strict=strict, version=version), only=only, t=table.ident,
            w=where_sql)
    if where is not None:
        params += where[1]
    return q, params


def format_checksum(total: int) -> str:
    """A checksum sum as 16 hex digits (modulo 2^64)."""
    return f"{total % MOD64:016x}"


def add_checksums(*values: str) -> str:
    return format_checksum(sum(int(v, 16) for v in values))


def ranges_from_boundaries(boundaries: Sequence[Sequence[Any]],
                           buckets: Mapping[int, tuple[int, int]]) -> tuple[RangeChecksum, ...]:
    """RangeChecksums [b_i, b_i+1) from ``width_bucket`` results (bucket i covers [b_i, b_i+1))."""
    bounds: list[tuple[Any, ...] | None] = [None, *(tuple(b) for b in boundaries), None]
    out = []
    for i in range(len(boundaries) + 1):
        rows, total = buckets.get(i, (0, 0))
        out.append(RangeChecksum(bounds[i], bounds[i + 1], rows, format_checksum(total)))
    return tuple(out)
