"""Facts read in batches (``pg_facts.one_row_each``): the same values as one query each, and an
object that cannot be read costs only its own value."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from restorecheck.dburl import PostgresRef
from restorecheck.engines import pg_facts
from tests.conftest import execute

pytestmark = pytest.mark.postgres


def test_batches_give_each_querys_row_and_isolate_the_one_that_fails(fresh_db: PostgresRef,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_facts, "_BATCH", 4)  # several batches, one of them failing
    execute(fresh_db, "CREATE TABLE t (id bigint, v text); "
                      "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g; "
                      "CREATE SEQUENCE s START 9223372036854775000")
    execute(fresh_db, "SELECT nextval('s')")
    queries = [sql.SQL("SELECT count(*) FROM t WHERE id > {}").format(sql.Literal(i)) for i in range(6)]
    queries.insert(5, sql.SQL("SELECT 1 / 0"))  # the second batch fails: its queries run one by one
    queries.append(sql.SQL("SELECT last_value, is_called FROM s"))
    queries.append(sql.SQL("SELECT max(v), min(id)::text FROM t"))
    queries.append(sql.SQL("SELECT 1 WHERE false"))  # no row
    with psycopg.connect(fresh_db.conninfo()) as conn:
        got = pg_facts.one_row_each(conn, queries, [1] * 7 + [2, 2, 1])
        # the transaction is still usable after the failures
        assert conn.execute("SELECT 42").fetchone() == (42,)
    assert got[:5] == [(10,), (9,), (8,), (7,), (6,)]
    assert isinstance(got[5], psycopg.errors.DivisionByZero)
    assert got[6] == (5,)
    assert got[7] == (9223372036854775000, True)  # bigint exact, boolean a boolean
    assert got[8] == ("v9", "1")
    assert isinstance(got[9], LookupError)


def test_sequence_and_orphan_facts_read_in_batches_match_one_query_each(fresh_db: PostgresRef,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    execute(fresh_db, """
        CREATE TABLE p (id int PRIMARY KEY);
        INSERT INTO p SELECT generate_series(1, 5);
        CREATE TABLE c1 (id serial PRIMARY KEY, p int);
        CREATE TABLE c2 (id bigserial PRIMARY KEY, p int);
        INSERT INTO c1 (p) VALUES (1), (7), (8), (NULL);
        INSERT INTO c2 (p) VALUES (2), (9);
        ALTER TABLE c1 ADD CONSTRAINT c1_p_fkey FOREIGN KEY (p) REFERENCES p NOT VALID;
        ALTER TABLE c2 ADD CONSTRAINT c2_p_fkey FOREIGN KEY (p) REFERENCES p NOT VALID;
        CREATE SEQUENCE lone INCREMENT 5;
    """)
    with psycopg.connect(fresh_db.conninfo()) as conn:
        batched = (pg_facts.sequence_states(conn), pg_facts.fk_orphan_counts(conn))
        monkeypatch.setattr(pg_facts, "_BATCH", 1)  # one statement each
        single = (pg_facts.sequence_states(conn), pg_facts.fk_orphan_counts(conn))
    assert batched == single
    seqs, fks = batched
    assert fks["public.c1.c1_p_fkey"]["orphans"] == 2 and fks["public.c2.c2_p_fkey"]["orphans"] == 1
    assert seqs["public.c1_id_seq"]["last_value"] == 4 and seqs["public.c1_id_seq"]["column_max"] == 4
    assert seqs["public.lone"]["increment"] == 5 and seqs["public.lone"]["is_called"] is False


def test_facts_of_tables_counted_empty_are_not_queried_and_are_the_same(fresh_db: PostgresRef,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The fingerprint passes the tables it counted empty in its snapshot: their foreign keys have no
    orphans and their columns no extremes, without a query each; the facts are those of a full read."""
    from restorecheck.engines.base import FingerprintOptions
    from restorecheck.engines.pg_fingerprint import fingerprint_postgres

    execute(fresh_db, """
        CREATE TABLE p (id int PRIMARY KEY);
        INSERT INTO p SELECT generate_series(1, 5);
        CREATE TABLE full_child (id serial PRIMARY KEY, p int);
        INSERT INTO full_child (p) VALUES (1), (7), (NULL);
        ALTER TABLE full_child ADD CONSTRAINT fc_p FOREIGN KEY (p) REFERENCES p NOT VALID;
        CREATE TABLE empty_child (id bigserial PRIMARY KEY, p int REFERENCES p);
        CREATE TABLE emptied (id serial PRIMARY KEY, p int REFERENCES p);
        INSERT INTO emptied (p) VALUES (1); DELETE FROM emptied;
        CREATE TABLE parted (id int, p int REFERENCES p) PARTITION BY RANGE (id);
        CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
    """)
    asked: list[str] = []
    real = pg_facts.one_row_each

    def recording(conn: object, queries: list[sql.Composed], widths: object) -> object:
        asked.extend(q.as_string(None) for q in queries)
        return real(conn, queries, widths)  # type: ignore[arg-type]

    monkeypatch.setattr(pg_facts, "one_row_each", recording)
    m = fingerprint_postgres(fresh_db, FingerprintOptions())
    during = list(asked)
    with psycopg.connect(fresh_db.conninfo()) as conn:
        full = (pg_facts.sequence_states(conn), pg_facts.fk_orphan_counts(conn))
    assert (m.sequences, m.fk_orphans) == full
    assert m.fk_orphans["public.full_child.fc_p"]["orphans"] == 1
    assert m.fk_orphans["public.empty_child.empty_child_p_fkey"]["orphans"] == 0
    assert m.sequences["public.emptied_id_seq"]["last_value"] == 1
    assert m.sequences["public.emptied_id_seq"]["column_max"] is None
    facts = [q for q in during if "count(*)" in q or "max(" in q]
    assert not any("empty_child" in q or "emptied" in q or "parted" in q for q in facts), facts
    assert any("full_child" in q and "count(*)" in q for q in facts)
    assert any("full_child" in q and "max(" in q for q in facts)
    assert any("empty_child" in q for q in asked[len(during):])  # the full read does ask
