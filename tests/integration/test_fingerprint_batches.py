"""Small tables checksummed many to a statement (``pg_workers._Fingerprinter.batch_task``): the
same manifest as one statement per table, a table that fails costs only its own checksum, and a
table is batched only when it cannot need key ranges or a split across connections."""

from __future__ import annotations

import dataclasses
from typing import Any

import psycopg
import pytest

from restorecheck.dburl import PostgresRef
from restorecheck.engines import pg_workers
from restorecheck.engines.base import FingerprintOptions
from restorecheck.engines.pg_fingerprint import fingerprint_postgres
from restorecheck.engines.pg_relations import load_tables
from tests.conftest import execute

pytestmark = pytest.mark.postgres

TABLES = '''
CREATE TABLE a (id int PRIMARY KEY, v text, t timestamptz, b boolean, j jsonb);
INSERT INTO a SELECT g, 'v' || g, timestamptz '2024-01-01' + g * interval '1 hour', g % 2 = 0,
                     jsonb_build_object('g', g) FROM generate_series(1, 200) g;
CREATE TABLE empty (id bigint PRIMARY KEY, x numeric);
CREATE TABLE nokey (x text, y bytea);
INSERT INTO nokey SELECT 'x' || (g % 7), decode(md5(g::text), 'hex') FROM generate_series(1, 50) g;
CREATE TABLE "Odd ""name""" ("k%s" int PRIMARY KEY, "v;" text);
INSERT INTO "Odd ""name""" VALUES (1, 'one'), (2, NULL);
CREATE TABLE secret (id int PRIMARY KEY, v text);
INSERT INTO secret VALUES (1, 's');
CREATE TABLE ranged (id int PRIMARY KEY, v text);
INSERT INTO ranged SELECT g, 'r' || g FROM generate_series(1, 500) g;
CREATE MATERIALIZED VIEW mv AS SELECT id, v FROM a WHERE b;
'''


def _by_name(m: Any) -> dict[str, tuple[Any, ...]]:
    return {t.name: (t.rows, t.checksum, t.readable, t.note, tuple(t.ranges)) for t in m.tables}


def test_batched_small_tables_give_the_same_manifest(fresh_db: PostgresRef, monkeypatch: pytest.MonkeyPatch) -> None:
    execute(fresh_db, TABLES)
    execute(fresh_db, "ANALYZE")
    monkeypatch.setattr(pg_workers, "BATCH_TABLES", 3)  # several batches
    batches: list[int] = []
    made = pg_workers._Fingerprinter.batch_task

    def counting(self: Any, plans: Any) -> Any:
        batches.append(len(plans))
        return made(self, plans)

    monkeypatch.setattr(pg_workers._Fingerprinter, "batch_task", counting)
    options = FingerprintOptions(range_rows=300)
    for jobs in (1, 2):
        opts = dataclasses.replace(options, jobs=jobs)
        batched = fingerprint_postgres(fresh_db, opts)
        with monkeypatch.context() as m:
            m.setattr(pg_workers._Fingerprinter, "batchable", lambda self, info: False)
            one_by_one = fingerprint_postgres(fresh_db, opts)
        assert _by_name(batched) == _by_name(one_by_one)
    # every small table was in a batch; "ranged" (500 rows > range_rows) was not, and has its ranges
    assert sum(batches) == 2 * 6 and max(batches) == 3
    got = _by_name(batched)
    assert got["public.a"][0] == 200 and got["public.empty"][:2] == (0, "0" * 16)
    assert got['public.Odd "name"'][0] == 2 and got["public.mv"][0] == 100
    assert len(got["public.ranged"][4]) > 1


def test_a_table_that_fails_in_a_batch_costs_only_its_own_checksum(fresh_db: PostgresRef,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    execute(fresh_db, TABLES)
    execute(fresh_db, "ANALYZE")
    execute(fresh_db, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rc_batch') "
                      "THEN CREATE ROLE rc_batch LOGIN PASSWORD 'pw'; END IF; END $$")
    execute(fresh_db, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO rc_batch; REVOKE SELECT ON secret FROM rc_batch")
    limited = PostgresRef({**fresh_db.params, "user": "rc_batch"}, "pw")
    monkeypatch.setattr(pg_workers, "BATCH_TABLES", 64)  # all of them in one batch, which fails
    m = fingerprint_postgres(limited, FingerprintOptions(range_rows=300))
    got = _by_name(m)
    assert got["public.secret"][2] is False and "permission denied" in (got["public.secret"][3] or "")
    assert got["public.a"][0] == 200 and got["public.a"][2] is True
    assert got["public.nokey"][0] == 50 and got["public.mv"][0] == 100
    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as conn:
        conn.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM rc_batch")


def test_a_table_never_analyzed_is_sized_by_its_file(fresh_db: PostgresRef) -> None:
    """A restored table without an index has relpages 0 and reltuples -1 whatever it holds: it is
    planned by its actual size, so a big one is neither batched nor left without key ranges."""
    execute(fresh_db, "CREATE TABLE big (id int, v text); "
                      "INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g")
    with psycopg.connect(fresh_db.conninfo()) as conn:
        (info,) = [t for t in load_tables(conn) if t.name == "big"]
        size = conn.execute("SELECT pg_relation_size('big') / current_setting('block_size')::int").fetchone()
    assert info.reltuples < 0 and size is not None and info.pages == size[0] > 200
    fp = pg_workers._Fingerprinter(FingerprintOptions(), None, 1)
    assert not fp.batchable(info)
    assert fp.batchable(dataclasses.replace(info, pages=3))
    assert not pg_workers._Fingerprinter(FingerprintOptions(range_rows=1000), None, 1).batchable(
        dataclasses.replace(info, pages=3))  # 3 blocks may hold more than 1,000 rows


@pytest.mark.parametrize("rows", [50_000, 150_000])
def test_key_ranges_of_a_table_just_above_range_rows_are_balanced(fresh_db: PostgresRef, rows: int) -> None:
    """The boundaries come from a block sample: about 200 rows per range drew 2 of 300 blocks (or
    none: no ranges at all), so the ranges were lopsided. At least 16 blocks per range now."""
    execute(fresh_db, f"CREATE TABLE r (id int PRIMARY KEY, v int); "
                      f"INSERT INTO r SELECT g, g FROM generate_series(1, {rows}) g; ANALYZE r")
    m = fingerprint_postgres(fresh_db, FingerprintOptions(range_rows=rows // 2 + 1, max_ranges=8))
    t = m.table("public.r")
    assert t is not None and len(t.ranges) >= 2, t
    sizes = [r.rows for r in t.ranges]
    assert sum(sizes) == rows and min(sizes) >= rows / len(sizes) / 3, sizes
