"""Bisection: the differing keys of a table between two live databases, from its differing ranges."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from restorecheck.dburl import PostgresRef
from restorecheck.engines.base import FingerprintOptions
from restorecheck.engines.pg_relations import load_tables
from restorecheck.engines.pg_rowhash import (
    MOD64,
    TableInfo,
    checksum_query,
    key_expr,
    key_literal,
    row_hash_sql,
)
from restorecheck.engines.pg_session import begin_snapshot, connect, execute_with_params
from restorecheck.errors import BadInputError
from restorecheck.model import TableFingerprint, same_boundaries

log = logging.getLogger("restorecheck")


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
    for t in load_tables(conn, only=table):  # that table's catalog only, not the whole database's
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
            qa, pa = checksum_query(ia, strict=options.strict, version=options.hash_version, where=where_a)
            qb, pb = checksum_query(ib, strict=options.strict, version=options.hash_version,
                                    where=_range_where(ib, lo, hi))
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
            c=cols, h=row_hash_sql(info.columns, strict=options.strict, version=options.hash_version),
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
