"""Facts of a database besides its rows: sequences, foreign-key orphans, large objects, locale."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence, Set
from typing import Any

import psycopg
from psycopg import sql

from restorecheck.engines import pg_catalog
from restorecheck.engines.pg_session import _savepoint
from restorecheck.errors import first_line

log = logging.getLogger("restorecheck")


# --- facts: sequences, foreign keys, large objects ------------------------------------------------


_BATCH = 64  # one-row queries per statement (``one_row_each``)


def one_row_each(conn: psycopg.Connection[Any], queries: Sequence[sql.Composed],
                 widths: Sequence[int]) -> list[tuple[Any, ...] | Exception]:
    """The one row of each query (``widths[i]`` columns), or the exception it raised.

    The queries run in batches of ``_BATCH`` as one statement, each a scalar sub-select of its row
    as JSON (``row_to_json`` keeps the column order; planned one by one, where a cross join of 64
    sub-selects made the planner search join orders and was slower than the round trips): hundreds
    of tiny queries, each in its own savepoint, were most of a catalog-heavy fingerprint
    (MusicBrainz, 516 tables: the foreign-key orphan counts 0.57 s and the sequences 0.25 s of a
    1.1 s fingerprint). A batch that fails (one object unreadable, a lock not granted) runs again
    query by query, each in its own savepoint, so that only the failing one loses its value."""
    out: list[tuple[Any, ...] | Exception] = []
    for start in range(0, len(queries), _BATCH):
        part, cols = queries[start:start + _BATCH], widths[start:start + _BATCH]
        stmt = sql.SQL("SELECT {}").format(sql.SQL(", ").join(
            sql.SQL("(SELECT row_to_json(x) FROM ({}) AS x)").format(q) for q in part))
        row: tuple[Any, ...] | None
        try:
            with _savepoint(conn):
                row = conn.execute(stmt).fetchone()
        except psycopg.Error:
            row = None
        if row is not None and all(isinstance(v, dict) and len(v) == w for v, w in zip(row, cols, strict=True)):
            out.extend(tuple(v.values()) for v in row)
            continue
        for q in part:
            try:
                with _savepoint(conn):
                    one = conn.execute(q).fetchone()
                out.append(tuple(one) if one is not None else LookupError("the query returned no row"))
            except psycopg.Error as exc:
                out.append(exc)
    return out


def sequence_states(conn: psycopg.Connection[Any], empty: Set[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """Each sequence's state and, for one owned by a column, that column's extremes (PITFALLS I.4);
    ``empty``: tables counted empty in this snapshot, whose columns have none (not queried)."""
    rows = conn.execute(f"""
        SELECT n.nspname, c.relname, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle,
               {pg_catalog.SEQUENCE_OWNER.format(seq="c.oid")}
        FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {pg_catalog.USER_NS} ORDER BY 1, 2""").fetchall()
    values = one_row_each(conn, [sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(nsp, name))
                                 for nsp, name, *_ in rows], [2] * len(rows))
    owned_rows = [r for r in rows if r[6] and f"{r[6][0]}.{r[6][1]}" not in empty]
    extremes = one_row_each(conn, [
        sql.SQL("SELECT max({c})::text, min({c})::text FROM {o}{t}").format(
            c=sql.Identifier(r[6][2]), o=sql.SQL("") if r[6][3] == "p" else sql.SQL("ONLY "),
            t=sql.Identifier(r[6][0], r[6][1]))
        for r in owned_rows], [2] * len(owned_rows))
    extreme_of = {(r[0], r[1]): e for r, e in zip(owned_rows, extremes, strict=True)}
    out: dict[str, dict[str, Any]] = {}
    for (nsp, name, inc, smin, smax, cycle, owned), got in zip(rows, values, strict=True):
        state: dict[str, Any] = {"increment": int(inc), "min": int(smin), "max": int(smax), "cycle": bool(cycle)}
        if isinstance(got, Exception):
            state.update(last_value=None, is_called=None, note=first_line(got))
        else:
            state.update(last_value=int(got[0]), is_called=bool(got[1]))
        if owned:
            tnsp, trel, tcol, _tkind = owned
            state["owned_by"] = f"{tnsp}.{trel}.{tcol}"
            ext = extreme_of.get((nsp, name), (None, None))  # absent: its table is empty
            if isinstance(ext, Exception):
                state["column_note"] = first_line(ext)
            else:
                mx, mn = ext
                state["column_max"] = None if mx is None else _int_or_str(mx)
                state["column_min"] = None if mn is None else _int_or_str(mn)
        out[f"{nsp}.{name}"] = state
    return out


def _int_or_str(v: str) -> int | str:
    try:
        return int(v)
    except ValueError:
        return v


def fk_orphan_counts(conn: psycopg.Connection[Any], empty: Set[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """Orphan rows per foreign key (MATCH SIMPLE / FULL semantics; PITFALLS I.5). ``empty``: tables
    (``schema.name``) counted empty in this very snapshot, whose foreign keys have no orphans and
    are not queried (a schema-heavy database has hundreds of foreign keys on empty tables)."""
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
    queries: list[sql.Composed] = []
    asked = [fk for fk in fks if f"{fk[0]}.{fk[1]}" not in empty]
    for _nsp, _rel, _con, kind, _pnsp, _prel, pkind, _validated, match, ccols, pcols in asked:
        child = sql.SQL("{}{}").format(sql.SQL("") if kind == "p" else sql.SQL("ONLY "), sql.Identifier(_nsp, _rel))
        parent = sql.SQL("{}{}").format(sql.SQL("") if pkind == "p" else sql.SQL("ONLY "),
                                        sql.Identifier(_pnsp, _prel))
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
        queries.append(sql.SQL("SELECT count(*) FROM {c} AS c WHERE {m}").format(c=child, m=missing))
    counts = iter(one_row_each(conn, queries, [1] * len(queries)))
    out: dict[str, dict[str, Any]] = {}
    for nsp, rel, con, _k, pnsp, prel, _pk, validated, _m, _cc, _pc in fks:
        got: tuple[Any, ...] | Exception = (0,) if f"{nsp}.{rel}" in empty else next(counts)
        entry: dict[str, Any] = {"table": f"{nsp}.{rel}", "references": f"{pnsp}.{prel}",
                                 "validated": bool(validated)}
        if isinstance(got, Exception):
            entry["orphans"] = None
            entry["note"] = first_line(got)
        else:
            entry["orphans"] = int(got[0])
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
        return {"count": n, "digest": None, "objects": {}, "note": f"contents not readable: {first_line(exc)}"}
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
