"""Sensitivity of the server-side row hash: trials of the faults a sum-of-hashes can miss."""

from __future__ import annotations

import random

import psycopg
import pytest
from psycopg import sql

from restorecheck.dburl import PostgresRef
from restorecheck.engines import pg_relations, pg_session
from restorecheck.engines import pg_rowhash as pf
from restorecheck.engines.base import FingerprintOptions

pytestmark = pytest.mark.postgres

TABLE = """
CREATE TABLE t (id int PRIMARY KEY, a int, b text, c bigint, d timestamptz, e numeric, f text,
                g interval, h boolean, i bytea, j date, k time, l timestamp);
INSERT INTO t SELECT g, g % 17, 'b' || (g % 23), g::bigint << 20, timestamptz '2024-01-01' + g * interval '1 minute',
                     g / 3.0, CASE WHEN g % 4 = 0 THEN NULL ELSE 'f' || (g % 5) END,
                     CASE WHEN g % 3 = 0 THEN interval '1 day' ELSE g * interval '1 hour' END,
                     CASE g % 3 WHEN 0 THEN true WHEN 1 THEN false END, decode(md5(g::text), 'hex'),
                     date '2024-01-01' + g, time '00:00' + g * interval '1 minute',
                     timestamp '1999-12-31 23:00' + g * interval '1 second'
FROM generate_series(1, 300) g;
"""
# a value whose 64-bit microseconds differ from d's by (1 << 32 | 1) in XOR: the type's own hash folds
# the halves together and calls the two equal
FOLD = ("timestamptz '2000-01-01 00:00+00' + (((extract(epoch FROM d - timestamptz '2000-01-01 00:00+00') "
        "* 1000000)::bigint # ((1::bigint << 32) | 1)) * interval '1 microsecond')")
MODES = {"hash64-v2": (False, 2), "hash64-v1": (False, 1), "text64-v1": (True, 1)}


def checksum(conn: psycopg.Connection[object], info: pf.TableInfo, strict: bool, version: int = 2) -> tuple[int, int]:
    q, params = pf.checksum_query(info, strict=strict, version=version)
    rows = conn.execute(q, params).fetchall()
    return int(rows[0][1]), int(rows[0][2]) % pf.MOD64


@pytest.mark.parametrize("mode", list(MODES))
def test_every_swap_and_single_change_is_caught(fresh_db: PostgresRef, mode: str) -> None:
    strict, version = MODES[mode]
    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as setup:
        setup.execute(TABLE)  # type: ignore[arg-type]
    conn = pg_session.connect(fresh_db, FingerprintOptions())
    conn.execute("SET default_transaction_read_only = off")
    conn.execute("SET search_path = public, pg_catalog")
    info = next(t for t in pg_relations.load_tables(conn) if t.name == "t")
    # the fold mutation is a real trap: the type's own hash calls the two values equal
    assert conn.execute(f"SELECT hash_array_extended(ARRAY[d], 0) = hash_array_extended(ARRAY[{FOLD}], 0) "
                        "AND d <> {FOLD} FROM public.t WHERE id = 3".replace("{FOLD}", FOLD)).fetchone() == (True,)
    base = checksum(conn, info, strict, version)
    rnd = random.Random(4)
    mutations: list[str] = []
    for col in ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"):
        for _ in range(25):  # the same column's values swapped between two rows
            i, j = rnd.sample(range(1, 301), 2)
            mutations.append(
                f"UPDATE t SET {col} = CASE id WHEN {i} THEN (SELECT {col} FROM t WHERE id = {j}) "
                f"ELSE (SELECT {col} FROM t WHERE id = {i}) END WHERE id IN ({i}, {j}) "
                f"AND (SELECT {col} FROM t WHERE id = {i}) IS DISTINCT FROM (SELECT {col} FROM t WHERE id = {j})")
    for _ in range(25):  # two values swapped between columns of one row
        i = rnd.randrange(1, 301)
        mutations.append(f"UPDATE t SET b = f, f = b WHERE id = {i} AND b IS DISTINCT FROM f")
    mutations += [f"UPDATE t SET c = c # 1 WHERE id = {rnd.randrange(1, 301)}" for _ in range(10)]
    # bigint's own hash folds the high half into the low one: c and (1 << 32) | (c # 1) hash alike
    mutations += ["UPDATE t SET c = (1::bigint << 32) | (c # 1) WHERE id = 5"]
    mutations += [f"UPDATE t SET d = {FOLD} WHERE id = {i}" for i in (3, 150)]
    mutations += ["UPDATE t SET f = '' WHERE f IS NULL AND id = 4", "UPDATE t SET b = NULL WHERE id = 7"]
    mutations += ["UPDATE t SET g = interval '24 hours' WHERE id = 3",  # equal as intervals, not the same value
                  "UPDATE t SET h = NOT h WHERE id = 10", "UPDATE t SET h = NULL WHERE id = 10",
                  "UPDATE t SET h = false WHERE id = 5",  # NULL -> false
                  "UPDATE t SET i = i || '\\x00'::bytea WHERE id = 8", "UPDATE t SET j = j + 1 WHERE id = 9",
                  "UPDATE t SET k = k + interval '1 microsecond' WHERE id = 11",
                  "UPDATE t SET l = l - interval '1 microsecond' WHERE id = 12",
                  "UPDATE t SET d = d + interval '1 hour' WHERE id = 13"]
    missed = []
    for m in mutations:
        conn.execute("BEGIN")
        changed = conn.execute(m).rowcount  # type: ignore[arg-type]
        after = checksum(conn, info, strict, version)
        conn.execute("ROLLBACK")
        if changed and after == base:
            missed.append(m)
    conn.close()
    assert missed == []


def test_a_plain_sum_of_record_hashes_would_miss_swaps_between_rows(fresh_db: PostgresRef) -> None:
    """Why the row hash is re-hashed: column hashes combine linearly, so swaps between rows cancel."""
    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as conn:
        conn.execute(TABLE)  # type: ignore[arg-type]
        plain = sql.SQL("SELECT sum(hash_record_extended(ROW(t.a, t.b), 0)) FROM t")
        ours = sql.SQL("SELECT sum({}) FROM t").format(pf.row_hash_sql(
            [pf.ColumnInfo("a", "integer", "int4", "b", hashfn="hashint4extended"),
             pf.ColumnInfo("b", "text", "text", "b", hashfn="hashtextextended")], strict=False))
        before = conn.execute(plain).fetchone(), conn.execute(ours).fetchone()
        conn.execute("BEGIN")
        # rows (a=1, b='b1') and (a=2, b='b2') become (2, 'b1') and (1, 'b2')
        conn.execute("UPDATE t SET a = CASE id WHEN 1 THEN 2 WHEN 2 THEN 1 END WHERE id IN (1, 2)")
        after = conn.execute(plain).fetchone(), conn.execute(ours).fetchone()
        conn.execute("ROLLBACK")
    mod = [int(x[0]) % pf.MOD64 for x in before], [int(x[0]) % pf.MOD64 for x in after]  # type: ignore[index]
    assert mod[0][0] == mod[1][0]  # the trap: a plain sum does not see values swapped between rows
    assert mod[0][1] != mod[1][1]
