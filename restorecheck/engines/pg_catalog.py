"""PostgreSQL schema snapshot: catalog queries and their normalisation (PITFALLS I.1, D7, D8).

``schema_snapshot(conn)`` returns a JSON-able dict ``{section: {qualified_name: {...}}}`` that a
faithful restore reproduces exactly: everything is keyed by qualified name (never OID or attnum),
privileges are sorted ``grantee=PRIVILEGE`` lists computed from ``aclexplode`` with the defaults
filled in by ``acldefault`` (so an explicit ACL equal to the default compares equal to NULL), and
definitions come from ``pg_get_*def`` under ``search_path = pg_catalog`` (fully qualified names).
Objects that belong to an extension are represented by the extension (name, version, schema).

The connection must already have the pinned settings of ``pg_fingerprint.PINNED_SETTINGS``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from restorecheck.engines.pg_deparse import QUERY_TEXT

USER_NS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'"
)
# objects that an extension owns are dumped as CREATE EXTENSION, not one by one
NOT_EXT = "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = {cls}::regclass AND d.objid = {oid} " \
          "AND d.deptype = 'e')"
# the column a sequence belongs to (SERIAL, IDENTITY, OWNED BY) as a JSON array [schema, table,
# column, the table's relkind], NULL for a free sequence; {seq} is the sequence's oid. The catalog
# records it as owned_by, the sequence facts read that column's max and min through it.
SEQUENCE_OWNER = """(SELECT json_build_array(tn.nspname, tc.relname, ta.attname, tc.relkind)
                  FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid
                  JOIN pg_namespace tn ON tn.oid = tc.relnamespace
                  JOIN pg_attribute ta ON ta.attrelid = d.refobjid AND ta.attnum = d.refobjsubid
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = {seq}
                   AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
                 LIMIT 1)"""

_PRIV_NAMES = {
    "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "EXECUTE", "USAGE",
    "CREATE", "CONNECT", "TEMPORARY", "SET", "ALTER SYSTEM", "MAINTAIN",
}


def normalise_privileges(items: Iterable[Sequence[Any]]) -> list[str]:
    """``(grantee, privilege, grantable)`` rows from aclexplode -> a sorted, de-duplicated list.

    The grantor is left out on purpose: it is an artefact of who ran the restore, not of what
    the database allows. ``grantee`` None or '' stands for PUBLIC.
    """
    out = set()
    for grantee, priv, grantable in items:
        who = grantee if grantee else "PUBLIC"
        out.add(f"{who}={priv}{'*' if grantable else ''}")
    return sorted(out)


_QUALIFIER = re.compile(r'(?<![\w."$])(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")+")\.(?=[a-z_"])')


def normalise_definition(text: str | None) -> str | None:
    """A deparsed query (view, rule, policy) in a form that does not depend on the server major.

    PostgreSQL 16 stopped qualifying column names with their table in deparsed views
    (``orders.total`` became ``total``); whitespace and line breaks differ too. Qualifiers are
    dropped and whitespace collapsed (text in quotes keeps its content, qualifier-like text aside).
    """
    if text is None:
        return None
    return " ".join(_QUALIFIER.sub("", text).split())


def _acl_sql(acl: str, kind: str, owner: str) -> str:
    """SQL for a JSON array of [grantee, privilege, grantable] with acldefault filled in.

    ``kind`` is an SQL expression of type "char" (``'r'``, ``'f'``, ...).
    """
    return (
        "(SELECT coalesce(json_agg(json_build_array("
        "CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END, "
        "x.privilege_type, x.is_grantable)), '[]') "
        f"FROM aclexplode(coalesce({acl}, acldefault({kind}, {owner}))) x)"
    )


def _col_acl_sql(acl: str) -> str:
    """Like ``_acl_sql`` for ACLs without a default (columns, default privileges): NULL is none."""
    return (
        f"CASE WHEN coalesce(cardinality({acl}), 0) = 0 THEN '[]'::json ELSE "
        "(SELECT coalesce(json_agg(json_build_array("
        "CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END, "
        "x.privilege_type, x.is_grantable)), '[]') "
        f"FROM aclexplode({acl}) x) END"
    )


def _rows(conn: psycopg.Connection[Any], query: str) -> list[tuple[Any, ...]]:
    return conn.execute(query).fetchall()


def _q(schema: str, name: str) -> str:
    return f"{schema}.{name}"


_REL_ACL = _acl_sql("c.relacl", "(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::\"char\"", "c.relowner")
_RELKIND = {"r": "table", "p": "partitioned", "f": "foreign", "v": "view", "m": "matview", "S": "sequence",
            "c": "composite"}


def schema_snapshot(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """The normalised catalog snapshot of the connected database."""
    out: dict[str, Any] = {
        "schemas": _schemas(conn),
        "tables": {},
        "views": {},
        "matviews": {},
        "sequences": {},
        "indexes": _indexes(conn),
        "functions": _functions(conn),
        "triggers": _triggers(conn),
        "types": _types(conn),
        "extensions": _extensions(conn),
        "policies": _policies(conn),
        "rules": _rules(conn),
        "event_triggers": _event_triggers(conn),
        "default_privileges": _default_privileges(conn),
    }
    publications = _publications(conn)
    if publications:  # only when there are some: manifests written before keep comparing equal
        out["publications"] = publications
    _relations(conn, out)
    return out


def _schemas(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT n.nspname, pg_get_userbyid(n.nspowner), {_acl_sql('n.nspacl', "'n'", 'n.nspowner')},
               obj_description(n.oid, 'pg_namespace')
        FROM pg_namespace n WHERE {USER_NS} AND {NOT_EXT.format(cls="'pg_namespace'", oid='n.oid')}""")
    return {name: {"owner": owner, "privileges": normalise_privileges(acl), "comment": comment}
            for name, owner, acl, comment in rows}


def _relations(conn: psycopg.Connection[Any], out: dict[str, Any]) -> None:
    rels = _rows(conn, f"""
        SELECT c.oid, n.nspname, c.relname, c.relkind, c.relpersistence, c.relispopulated,
               c.relrowsecurity, c.relforcerowsecurity, c.relispartition,
               pg_get_expr(c.relpartbound, c.oid), pg_get_userbyid(c.relowner),
               {_REL_ACL},
               obj_description(c.oid, 'pg_class'),
               CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
               CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
               (SELECT coalesce(json_agg(pn.nspname || '.' || pc.relname ORDER BY pn.nspname, pc.relname), '[]')
                  FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent
                  JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid),
               coalesce(array_to_json(c.reloptions), '[]'),
               CASE WHEN c.relkind = 'f' THEN (SELECT s.srvname FROM pg_foreign_table ft
                    JOIN pg_foreign_server s ON s.oid = ft.ftserver WHERE ft.ftrelid = c.oid) END,
               c.relreplident
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {USER_NS} AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
          AND {NOT_EXT.format(cls="'pg_class'", oid='c.oid')}""")
    cols = _columns(conn)
    cons = _constraints(conn)
    seqs = _sequence_params(conn)
    for (oid, nsp, name, kind, persistence, populated, rls, force, is_part, bound, owner, acl, comment,
         partkey, viewdef, parents, reloptions, server, replident) in rels:
        qn = _q(nsp, name)
        # MAINTAIN (PostgreSQL 17+) is part of an owner's default privileges there and absent before:
        # the owner's MAINTAIN is left out, so a dump from 15 restored into 18 compares equal
        acl = [item for item in acl if not (item[1] == "MAINTAIN" and item[0] == owner)]
        common = {"owner": owner, "privileges": normalise_privileges(acl), "comment": comment}
        if kind == "S":
            out["sequences"][qn] = {**common, **seqs.get(oid, {}),
                                    "persistence": {"p": "permanent", "u": "unlogged"}.get(persistence, persistence)}
            continue
        entry: dict[str, Any] = {**common, "columns": cols.get(oid, {})}
        if kind in ("v", "m"):
            entry["definition"] = normalise_definition(viewdef)
            # the text as the server printed it: not compared (the normalised one is), but what a
            # restored server parses again when the texts differ (engines/pg_deparse.py)
            entry[QUERY_TEXT] = viewdef
            if kind == "m":
                entry["populated"] = bool(populated)
                entry["options"] = sorted(reloptions)
            elif reloptions:
                # security_invoker, security_barrier, check_option: who the view's permission and
                # row-security checks apply to. Present only when set, as manifests before 0.3 had none
                entry["options"] = sorted(reloptions)
            out["views" if kind == "v" else "matviews"][qn] = entry
            continue
        entry.update({
            "kind": _RELKIND[kind],
            "persistence": {"p": "permanent", "u": "unlogged", "t": "temporary"}.get(persistence, persistence),
            "row_security": bool(rls),
            "force_row_security": bool(force),
            "inherits": parents,
            "partition_bound": bound if is_part else None,
            "partition_key": partkey,
            "options": sorted(reloptions),
            "replica_identity": replident,
            "constraints": cons.get(oid, {}),
        })
        if kind == "f":
            entry["server"] = server
        out["tables"][qn] = entry


def _columns(conn: psycopg.Connection[Any]) -> dict[int, dict[str, Any]]:
    rows = _rows(conn, f"""
        SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
               CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                    THEN (SELECT cn.nspname || '.' || co.collname FROM pg_collation co
                          JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END,
               col_description(a.attrelid, a.attnum), {_col_acl_sql('a.attacl')},
               a.attislocal, a.attstorage <> t.typstorage, a.attstorage
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE {USER_NS} AND c.relkind IN ('r', 'p', 'f', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped""")
    out: dict[int, dict[str, Any]] = {}
    for relid, name, typ, notnull, default, identity, generated, coll, comment, acl, _local, _st, _s in rows:
        col: dict[str, Any] = {"type": typ, "nullable": not notnull, "default": default}
        if identity:
            col["identity"] = {"a": "always", "d": "by default"}.get(identity, identity)
        if generated:
            col["generated"] = {"s": "stored"}.get(generated, generated)
        if coll:
            col["collation"] = coll
        if comment is not None:
            col["comment"] = comment
        privs = normalise_privileges(acl)
        if privs:
            col["privileges"] = privs
        out.setdefault(relid, {})[name] = col
    return out


def _constraints(conn: psycopg.Connection[Any]) -> dict[int, dict[str, Any]]:
    rows = _rows(conn, f"""
        SELECT co.conrelid, co.conname, co.contype, pg_get_constraintdef(co.oid), co.convalidated,
               co.condeferrable, co.condeferred, obj_description(co.oid, 'pg_constraint'), co.conislocal,
               co.conparentid <> 0
        FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {USER_NS} AND co.conrelid <> 0
          AND co.contype <> 'n'  -- PostgreSQL 18 catalogs NOT NULL as constraints: compared as nullability""")
    kinds = {"p": "primary key", "u": "unique", "f": "foreign key", "c": "check", "x": "exclusion",
             "t": "trigger", "n": "not null"}
    out: dict[int, dict[str, Any]] = {}
    for relid, name, ctype, definition, validated, deferrable, deferred, comment, _local, derived in rows:
        entry = out.setdefault(relid, {})[name] = {
            "type": kinds.get(ctype, ctype), "definition": definition, "validated": bool(validated),
            "deferrable": bool(deferrable), "deferred": bool(deferred), "comment": comment,
        }
        if derived:
            # made by the server from a partitioned table's constraint (a partition's copy, or one
            # per partition of a partitioned table a foreign key references), named by the server
            # at restore, differently across majors and orders: not compared (``compare_schema``)
            entry["derived"] = True
    return out


def _sequence_params(conn: psycopg.Connection[Any]) -> dict[int, dict[str, Any]]:
    rows = _rows(conn, f"""
        SELECT s.seqrelid, format_type(s.seqtypid, NULL), s.seqstart::text, s.seqincrement::text,
               s.seqmin::text, s.seqmax::text, s.seqcache::text, s.seqcycle, {SEQUENCE_OWNER.format(seq="s.seqrelid")}
        FROM pg_sequence s""")
    return {
        relid: {"type": typ, "start": start, "increment": inc, "min": mn, "max": mx, "cache": cache,
                "cycle": bool(cycle), "owned_by": None if owner is None else ".".join(owner[:3])}
        for relid, typ, start, inc, mn, mx, cache, cycle, owner in rows
    }


def _indexes(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT n.nspname, ic.relname, tn.nspname || '.' || tc.relname, pg_get_indexdef(i.indexrelid),
               i.indisvalid, i.indisclustered, obj_description(ic.oid, 'pg_class'),
               EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid AND co.contype IN ('p','u','x'))
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = ic.relnamespace
        JOIN pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
        WHERE {USER_NS} AND {NOT_EXT.format(cls="'pg_class'", oid='tc.oid')}""")
    return {
        _q(nsp, name): {"table": table, "definition": definition, "valid": bool(valid), "clustered": bool(clustered),
                        "comment": comment, "constraint": bool(is_con)}
        for nsp, name, table, definition, valid, clustered, comment, is_con in rows
    }


def _functions(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT p.oid::regprocedure::text, p.prokind, pg_get_function_result(p.oid),
               l.lanname, p.provolatile, p.prosecdef, p.proleakproof, p.proisstrict, p.proparallel,
               coalesce(array_to_json(p.proconfig), '[]'), pg_get_userbyid(p.proowner),
               {_acl_sql('p.proacl', "'f'", 'p.proowner')}, obj_description(p.oid, 'pg_proc'),
               CASE WHEN p.prokind = 'a' THEN
                    md5((SELECT concat_ws('|', a.aggkind, a.aggtransfn::regproc::text, a.aggfinalfn::regproc::text,
                        a.aggcombinefn::regproc::text, format_type(a.aggtranstype, NULL), a.agginitval,
                        a.aggsortop::regoperator::text) FROM pg_aggregate a WHERE a.aggfnoid = p.oid))
                    ELSE md5(pg_get_functiondef(p.oid)) END
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
        WHERE {USER_NS} AND {NOT_EXT.format(cls="'pg_proc'", oid='p.oid')}""")
    kinds = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window"}
    return {
        sig: {"kind": kinds.get(kind, kind), "returns": result, "language": lang, "volatility": vol,
              "security_definer": bool(secdef), "leakproof": bool(leak), "strict": bool(strict),
              "parallel": par, "config": sorted(config), "owner": owner,
              "privileges": normalise_privileges(acl), "comment": comment, "body_md5": digest}
        for sig, kind, result, lang, vol, secdef, leak, strict, par, config, owner, acl, comment, digest in rows
    }


def _triggers(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled,
               obj_description(t.oid, 'pg_trigger')
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {USER_NS} AND NOT t.tgisinternal""")
    enabled = {"O": "origin", "D": "disabled", "R": "replica", "A": "always"}
    return {
        f"{nsp}.{rel}.{name}": {"definition": definition, "enabled": enabled.get(state, state), "comment": comment}
        for nsp, rel, name, definition, state, comment in rows
    }


def _types(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT n.nspname, t.typname, t.typtype, pg_get_userbyid(t.typowner),
               {_acl_sql('t.typacl', "'T'", 't.typowner')}, obj_description(t.oid, 'pg_type'),
               CASE WHEN t.typtype = 'e' THEN (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder)
                                                 FROM pg_enum e WHERE e.enumtypid = t.oid) END,
               CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
               t.typnotnull, t.typdefault,
               CASE WHEN t.typtype = 'd' THEN (SELECT coalesce(json_agg(json_build_array(co.conname,
                    pg_get_constraintdef(co.oid), co.convalidated) ORDER BY co.conname), '[]')
                    FROM pg_constraint co WHERE co.contypid = t.oid) END,
               CASE WHEN t.typtype = 'c' THEN (SELECT json_agg(json_build_array(a.attname,
                    format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum) FROM pg_attribute a
                    WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) END,
               CASE WHEN t.typtype = 'r' THEN (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r
                    WHERE r.rngtypid = t.oid) END
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE {USER_NS} AND t.typtype IN ('e', 'd', 'c', 'r')
          AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
          AND {NOT_EXT.format(cls="'pg_type'", oid='t.oid')}""")
    out: dict[str, Any] = {}
    for (nsp, name, typtype, owner, acl, comment, labels, base, notnull, default, checks, attrs,
         subtype) in rows:
        if nsp in ("pg_catalog", "information_schema") or nsp.startswith("pg_"):
            continue
        entry: dict[str, Any] = {"kind": {"e": "enum", "d": "domain", "c": "composite", "r": "range",
                                          "b": "base"}[typtype],
                                 "owner": owner, "privileges": normalise_privileges(acl), "comment": comment}
        if typtype == "e":
            entry["labels"] = ", ".join(labels or [])  # order matters: one string
        elif typtype == "d":
            entry.update({"base": base, "not_null": bool(notnull), "default": default,
                          "constraints": {c[0]: {"definition": c[1], "validated": c[2]} for c in checks or []}})
        elif typtype == "c":
            entry["attributes"] = ", ".join(f"{a[0]} {a[1]}" for a in attrs or [])  # ordered
        elif typtype == "r":
            entry["subtype"] = subtype
        out[_q(nsp, name)] = entry
    return out


def _extensions(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = _rows(conn, """
        SELECT e.extname, e.extversion, n.nspname FROM pg_extension e
        JOIN pg_namespace n ON n.oid = e.extnamespace""")
    return {name: {"version": version, "schema": nsp} for name, version, nsp in rows}


def _policies(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = _rows(conn, """
        SELECT schemaname, tablename, policyname, permissive, roles::text[], cmd, qual, with_check
        FROM pg_policies""")
    return {
        f"{nsp}.{tbl}.{name}": {"permissive": permissive, "roles": sorted(roles or []), "command": cmd,
                                "using": normalise_definition(qual),
                                "with_check": normalise_definition(check)}
        for nsp, tbl, name, permissive, roles, cmd, qual, check in rows
    }


def _rules(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT n.nspname, c.relname, r.rulename, pg_get_ruledef(r.oid), r.ev_enabled
        FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {USER_NS} AND r.rulename <> '_RETURN'""")
    return {f"{nsp}.{rel}.{name}": {"definition": normalise_definition(d), "enabled": e}
            for nsp, rel, name, d, e in rows}


def _event_triggers(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = _rows(conn, """
        SELECT e.evtname, e.evtevent, e.evtfoid::regprocedure::text, e.evtenabled,
               coalesce(array_to_json(e.evttags), '[]'), pg_get_userbyid(e.evtowner)
        FROM pg_event_trigger e""")
    return {name: {"event": ev, "function": fn, "enabled": en, "tags": sorted(tags), "owner": owner}
            for name, ev, fn, en, tags, owner in rows}


def _publications(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """Publications and the tables they publish (pg_dump --no-publications drops them silently)."""
    rows = _rows(conn, """
        SELECT p.pubname, pg_get_userbyid(p.pubowner), p.puballtables, p.pubinsert, p.pubupdate,
               p.pubdelete, p.pubtruncate, p.pubviaroot,
               coalesce((SELECT array_to_json(array_agg(t.schemaname || '.' || t.tablename
                                                        ORDER BY t.schemaname, t.tablename))
                         FROM pg_publication_tables t WHERE t.pubname = p.pubname), '[]')
        FROM pg_publication p""")
    return {name: {"owner": owner, "all_tables": alltables,
                   "actions": [a for a, on in (("insert", ins), ("update", upd), ("delete", dele),
                                               ("truncate", trunc)) if on],
                   "via_root": viaroot, "tables": sorted(tables)}
            for name, owner, alltables, ins, upd, dele, trunc, viaroot, tables in rows}


def _default_privileges(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = _rows(conn, f"""
        SELECT pg_get_userbyid(d.defaclrole), coalesce(n.nspname, ''), d.defaclobjtype,
               {_col_acl_sql('d.defaclacl')}
        FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace""")
    kinds = {"r": "tables", "S": "sequences", "f": "functions", "T": "types", "n": "schemas"}
    return {f"{role}/{nsp or '*'}/{kinds.get(k, k)}": normalise_privileges(acl) for role, nsp, k, acl in rows}
