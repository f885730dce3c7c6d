"""The catalog of the relations a fingerprint reads (``TableInfo`` per table, matview, partition)."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from restorecheck.engines import pg_catalog
from restorecheck.engines.pg_rowhash import ColumnInfo, TableInfo
from restorecheck.engines.pg_session import _savepoint

log = logging.getLogger("restorecheck")


# --- catalog of the relations to read ------------------------------------------------------------


def load_tables(conn: psycopg.Connection[Any], only: str | None = None) -> list[TableInfo]:
    """Every user relation with data of its own (r, p, m, f), with its columns and primary key;
    ``only``: just the one of that qualified name (``schema.name``, as ``TableInfo.qualified``).

    ``pages`` is the catalog's ``relpages``, except for a table never analyzed (``reltuples`` -1:
    a restored table without an index, whose ``relpages`` is 0 whatever it holds): its actual size
    in blocks, so that it is split across connections and batched (``pg_workers``) by what it is."""
    one = "" if only is None else "AND n.nspname || '.' || c.relname = %(only)s"
    params = None if only is None else {"only": only}
    rels = conn.execute(f"""
        SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispopulated, c.relpersistence,
               c.relrowsecurity, c.relforcerowsecurity, pg_has_role(c.relowner, 'USAGE'), c.relispartition,
               CASE WHEN c.reltuples < 0 AND c.relkind IN ('r', 'm')
                    THEN pg_relation_size(c.oid) / current_setting('block_size')::int ELSE c.relpages END,
               c.reltuples,
               (SELECT coalesce(array_agg(pn.nspname || '.' || pc.relname), '{{}}') FROM pg_inherits i
                  JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
                 WHERE i.inhrelid = c.oid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {pg_catalog.USER_NS} AND c.relkind IN ('r', 'p', 'm', 'f')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e') {one}
        ORDER BY 2, 3""", params).fetchall()
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
        WHERE {pg_catalog.USER_NS} AND c.relkind IN ('r', 'p', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped {one}
        ORDER BY a.attrelid, a.attnum""", params).fetchall()
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
