"""fingerprint_postgres on real servers: snapshots, parallelism, modes, ranges, unreadable relations."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from restorecheck.checks.compare import compare_manifests
from restorecheck.checks.postgres import self_checks_postgres
from restorecheck.dburl import PostgresRef
from restorecheck.engines import pg_fingerprint, pg_session, pg_workers
from restorecheck.engines.base import FingerprintOptions
from restorecheck.engines.pg_fingerprint import fingerprint_postgres
from restorecheck.engines.pg_narrow import narrow_down
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute
from tests.integration.pg_shop import create_shop

pytestmark = pytest.mark.postgres

OPTS = FingerprintOptions(range_rows=50, max_ranges=8)


def errors(findings: list[Any]) -> list[dict[str, Any]]:
    return [f.to_dict() for f in findings if f.severity == "error"]


def test_manifest_content(fresh_db: PostgresRef) -> None:
    create_shop(fresh_db)
    m = fingerprint_postgres(fresh_db, OPTS)
    assert m.engine == "postgresql" and m.database == fresh_db.dbname
    assert m.facts["rolsuper"] is True and m.facts["in_recovery"] is False
    assert m.facts["encoding"] == "UTF8" and m.checksum_mode == "hash64-v2"
    assert m.taken_at.endswith("Z")
    orders = m.table("shop.orders")
    assert orders is not None and orders.rows == 400 and orders.key == ("id",)
    assert len(orders.ranges) == 8 and sum(r.rows for r in orders.ranges) == 400
    assert orders.ranges[0].lower is None and orders.ranges[-1].upper is None
    assert pg_fingerprint.add_checksums(*(r.checksum for r in orders.ranges)) == orders.checksum
    # partitioned parent: derived from its leaves, not scanned twice
    events = m.table("shop.events")
    leaves = [m.table("shop.events_2024"), m.table("shop.events_2025")]
    assert events is not None and events.kind == "partitioned" and events.extra["derived"] is True
    assert events.rows == 200 == sum(x.rows or 0 for x in leaves if x)
    assert events.checksum == pg_fingerprint.add_checksums(*(x.checksum or "" for x in leaves if x))
    # never populated: recorded as unreadable, never selected from
    mv = m.table("shop.empty_mv")
    assert mv is not None and mv.readable is False and "never populated" in (mv.note or "")
    nokey = m.table("shop.nokey")
    assert nokey is not None and "cannot be localised" in (nokey.note or "")
    # integrity facts
    seq = m.sequences["shop.customers_id_seq"]
    assert (seq["last_value"], seq["is_called"], seq["owned_by"], seq["column_max"]) == (
        60, True, "shop.customers.id", 60)
    assert m.sequences["shop.ticket_seq"]["last_value"] == 105
    assert m.fk_orphans["shop.legacy.legacy_customer_fk"] == {
        "table": "shop.legacy", "references": "shop.customers", "validated": False, "orphans": 1}
    assert m.large_objects is not None and m.large_objects["count"] == 2
    # schema: normalised, keyed by names
    s = m.schema
    assert s["tables"]["shop.orders"]["columns"]["total"]["type"] == "numeric(12,2)"
    assert "rc_reader=SELECT" in s["tables"]["shop.orders"]["privileges"]
    assert s["tables"]["shop.legacy"]["constraints"]["legacy_customer_fk"]["validated"] is False
    assert s["types"]["shop.status"]["labels"] == "new, paid, shipped"
    assert s["matviews"]["shop.empty_mv"]["populated"] is False
    assert "shop.orders.orders_reader" in s["policies"]
    assert "shop.orders.orders_log" in s["triggers"]
    assert s["tables"]["shop.orders"]["row_security"] is True
    assert self_checks_postgres(m) == []  # the NOT VALID FK's orphan is not a finding


def test_dropped_column_gaps_and_column_order_do_not_matter(pg_server: PgServer) -> None:
    with pg_server.fresh_database() as a, pg_server.fresh_database() as b:
        execute(a, "CREATE TABLE t (id int PRIMARY KEY, junk int, x text, y int); ALTER TABLE t DROP COLUMN junk;"
                   "INSERT INTO t SELECT g, 'x' || g, g FROM generate_series(1, 50) g")
        execute(b, "CREATE TABLE t (id int PRIMARY KEY, y int, x text);"
                   "INSERT INTO t SELECT g, g, 'x' || g FROM generate_series(1, 50) g")
        ma, mb = fingerprint_postgres(a, OPTS), fingerprint_postgres(b, OPTS)
        assert ma.table("public.t").checksum == mb.table("public.t").checksum  # type: ignore[union-attr]
        assert ma.schema["tables"] == mb.schema["tables"]


def test_pg15_dump_restored_into_pg18_compares_equal(pg15: PgServer, pg18: PgServer, tmp_path: Path) -> None:
    assert pg15.tools is not None and pg18.tools is not None
    execute(pg18.admin, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rc_reader') "
                        "THEN CREATE ROLE rc_reader NOLOGIN; END IF; "
                        "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rc_limited') "
                        "THEN CREATE ROLE rc_limited LOGIN; END IF; END $$")
    with pg15.fresh_database() as src, pg18.fresh_database() as dst:
        create_shop(src)
        dump = tmp_path / "shop.dump"
        _dump_on_15_restore_on_18(pg15, pg18, src, dst, dump)
        ref = fingerprint_postgres(src, OPTS)
        restored = fingerprint_postgres(dst, OPTS, ranges_from=ref)
        results, findings = compare_manifests(ref, restored)
        assert errors(findings) == [] and findings == [], [f.to_dict() for f in findings]
        assert all(r.match for r in results)
        assert restored.server_version.startswith("18") and ref.server_version.startswith("15")


EDGE_VALUES = """
CREATE DOMAIN ts_d AS timestamptz;
CREATE TABLE edge (id int PRIMARY KEY, tz timestamptz, ts timestamp, d date, t time, ttz timetz, iv interval,
                   b boolean, bb bytea, big bigint, j jsonb, n numeric, f float8, dom ts_d, arr timestamptz[]);
INSERT INTO edge VALUES
  (1, '-infinity', 'infinity', '-infinity', '24:00', '00:00+14', '-178000000 years', true, '\\x', -1, '{}', 'NaN',
   '-0', 'infinity', '{-infinity,infinity}'),
  (2, '4713-01-01 00:00+00 BC', '294276-12-31 23:59:59.999999', '5874897-12-31', '00:00', '23:59:59.999999-15:59',
   '1 mon -1 day 00:00:00.000001', false, '\\x00ff', 9223372036854775807, '{"a": [1, 1.0, null]}', 1.000,
   'NaN', '2000-01-01 00:00+00', '{}'),
  (3, '2024-02-29 12:34:56.789012+05:30', '1970-01-01', '2000-01-01', '12:00:00.5', '12:00+00', '1 day',
   NULL, NULL, -9223372036854775808, 'null', -0.0, 1e308, NULL, NULL),
  (4, NULL, NULL, NULL, NULL, NULL, '24 hours', true, decode(repeat('ab', 5000), 'hex'), 0, '"x"', 1e-100,
   -1.5e-300, '1999-12-31 23:59:59.999999+00', '{2024-01-01 00:00+00,NULL}');
"""


def test_hash64_v2_is_the_same_on_15_and_18_for_edge_values(pg15: PgServer, pg18: PgServer) -> None:
    """The send forms and type hashes hash64-v2 uses give the same checksum on both majors (a
    cross-major restore must compare equal), on the edge values of every type it treats apart."""
    with pg15.fresh_database() as a, pg18.fresh_database() as b:
        for ref in (a, b):
            execute(ref, EDGE_VALUES)
        opts = dataclasses.replace(OPTS, range_rows=1)
        ma, mb = fingerprint_postgres(a, opts), fingerprint_postgres(b, opts)
        ta, tb = ma.table("public.edge"), mb.table("public.edge")
        assert ta is not None and tb is not None and ta.checksum_mode == "hash64-v2"
        assert (ta.rows, ta.checksum) == (tb.rows, tb.checksum) == (4, ta.checksum)
        assert [r.checksum for r in ta.ranges] == [r.checksum for r in tb.ranges]
        v1 = dataclasses.replace(opts, hash_version=1)
        t1 = fingerprint_postgres(a, v1).table("public.edge")
        assert t1 is not None and t1.checksum_mode == "hash64-v1" and t1.checksum != ta.checksum
        execute(b, "UPDATE edge SET ttz = '00:00+13' WHERE id = 1")  # a zone is part of a timetz
        assert fingerprint_postgres(b, opts).table("public.edge").checksum != ta.checksum  # type: ignore[union-attr]


def test_a_manifest_made_in_hash64_v1_is_verified_in_hash64_v1(fresh_db: PostgresRef) -> None:
    """Manifests of restorecheck 0.1 stay usable: the copy is hashed the way the manifest was."""
    execute(fresh_db, EDGE_VALUES)
    old = fingerprint_postgres(fresh_db, dataclasses.replace(OPTS, hash_version=1))
    assert old.checksum_mode == "hash64-v1"
    again = fingerprint_postgres(fresh_db, OPTS, ranges_from=old)
    assert again.checksum_mode == "hash64-v1"
    results, findings = compare_manifests(old, again)
    assert findings == [] and all(r.match for r in results)
    assert fingerprint_postgres(fresh_db, OPTS).table("public.edge").checksum != \
        old.table("public.edge").checksum  # type: ignore[union-attr]


def test_fingerprint_in_a_snapshot_exported_by_the_caller(fresh_db: PostgresRef) -> None:
    execute(fresh_db, "CREATE TABLE t (id int PRIMARY KEY, v text);"
                      "INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g")
    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as holder:
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snap = holder.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        execute(fresh_db, "INSERT INTO t SELECT g, 'late' FROM generate_series(101, 150) g;"
                          "UPDATE t SET v = 'changed' WHERE id = 1")
        for jobs in (1, 2):
            m = fingerprint_postgres(fresh_db, dataclasses.replace(OPTS, snapshot=snap, jobs=jobs))
            assert m.snapshot == snap
            assert m.table("public.t").rows == 100  # type: ignore[union-attr]
        holder.execute("COMMIT")
    now = fingerprint_postgres(fresh_db, OPTS)
    assert now.table("public.t").rows == 150  # type: ignore[union-attr]


def test_a_snapshot_that_is_gone_is_bad_input(fresh_db: PostgresRef) -> None:
    from restorecheck.errors import BadInputError

    with pytest.raises(BadInputError, match="cannot import snapshot"):
        fingerprint_postgres(fresh_db, dataclasses.replace(OPTS, snapshot="00000003-0000001B-1"))


def test_parallel_block_chunks_give_the_same_checksums(fresh_db: PostgresRef,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    create_shop(fresh_db)
    serial = fingerprint_postgres(fresh_db, OPTS)
    monkeypatch.setattr(pg_workers, "CHUNK_MIN_PAGES", 1)  # split even tiny tables by block
    parallel = fingerprint_postgres(fresh_db, dataclasses.replace(OPTS, jobs=3))
    assert parallel.snapshot  # the workers shared an exported snapshot
    assert [t.to_dict() for t in serial.tables] == [t.to_dict() for t in parallel.tables]


def test_strict_mode_sees_what_type_hashes_call_equal(pg_server: PgServer) -> None:
    with pg_server.fresh_database() as a, pg_server.fresh_database() as b:
        execute(a, "CREATE TABLE t (id int PRIMARY KEY, n numeric, f float8);INSERT INTO t VALUES (1, 1.0, 0)")
        execute(b, "CREATE TABLE t (id int PRIMARY KEY, n numeric, f float8);INSERT INTO t VALUES (1, 1.00, -0)")
        fast = compare_manifests(fingerprint_postgres(a, OPTS), fingerprint_postgres(b, OPTS))[1]
        assert fast == []  # documented: equal values hash alike in hash64-v1
        strict = dataclasses.replace(OPTS, strict=True)
        ma, mb = fingerprint_postgres(a, strict), fingerprint_postgres(b, strict)
        assert ma.table("public.t").checksum_mode == "text64-v1"  # type: ignore[union-attr]
        assert [(f.check, f.object) for f in compare_manifests(ma, mb)[1]] == [("checksum", "public.t")]
        # different modes are never compared as if equal
        mixed = compare_manifests(fingerprint_postgres(a, OPTS), mb)[1]
        assert [(f.check, f.severity) for f in mixed] == [("checksum", "warning")]


def test_case_insensitive_collation_does_not_hide_a_change(pg_server: PgServer) -> None:
    with pg_server.fresh_database() as a:
        _or_skip(a, "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
                 "no ICU collations here")
        execute(a, "CREATE TABLE t (id int PRIMARY KEY, s text COLLATE ci, arr text[] COLLATE ci);"
                   "INSERT INTO t VALUES (1, 'abc', '{x}')")
        before = fingerprint_postgres(a, OPTS)
        execute(a, "UPDATE t SET s = 'ABC'")
        after = fingerprint_postgres(a, OPTS)
        assert before.table("public.t").checksum != after.table("public.t").checksum  # type: ignore[union-attr]


def test_text_keys_are_ranged_in_the_C_collation(pg_server: PgServer) -> None:
    with pg_server.fresh_database() as a, pg_server.fresh_database(lc_collate="C", lc_ctype="C") as b:
        for db in (a, b):
            execute(db, "CREATE TABLE t (k text PRIMARY KEY, v int);"
                        "INSERT INTO t SELECT (CASE WHEN g % 2 = 0 THEN 'a' ELSE 'B' END) || g, g "
                        "FROM generate_series(1, 300) g")
        ma = fingerprint_postgres(a, OPTS)
        mb = fingerprint_postgres(b, OPTS, ranges_from=ma)
        ta, tb = ma.table("public.t"), mb.table("public.t")
        assert ta is not None and tb is not None and len(ta.ranges) > 1
        assert [r.to_dict() for r in ta.ranges] == [r.to_dict() for r in tb.ranges]


def test_ranges_from_a_reference_and_narrow_down(pg_server: PgServer) -> None:
    with pg_server.fresh_database() as a, pg_server.fresh_database() as b:
        for db in (a, b):
            execute(db, "CREATE TABLE t (x int, y text, v int, PRIMARY KEY (x, y));"
                        "INSERT INTO t SELECT g / 10, 'y' || (g % 10), g FROM generate_series(1, 2000) g")
        execute(b, "UPDATE t SET v = -1 WHERE (x, y) IN ((5, 'y3'), (150, 'y7')); DELETE FROM t WHERE x = 199")
        ma = fingerprint_postgres(a, OPTS)
        mb = fingerprint_postgres(b, OPTS, ranges_from=ma)
        ta, tb = ma.table("public.t"), mb.table("public.t")
        assert ta is not None and tb is not None and ta.key == ("x", "y")
        assert [(r.lower, r.upper) for r in ta.ranges] == [(r.lower, r.upper) for r in tb.ranges]
        differing = [(r.lower, r.upper) for r, s in zip(ta.ranges, tb.ranges, strict=True) if r != s]
        keys = narrow_down(a, b, "public.t", ("x", "y"), differing, 20, options=OPTS)
        assert {"key": ["5", "y3"], "change": "changed"} in keys
        assert {"key": ["150", "y7"], "change": "changed"} in keys
        assert sum(1 for k in keys if k["change"] == "missing") == 10
        assert len(narrow_down(a, b, "public.t", max_keys=3, options=OPTS)) == 3


def test_row_level_security_is_said_not_hidden(pg_server: PgServer) -> None:
    with pg_server.fresh_database() as a:
        create_shop(a)
        execute(a, "GRANT USAGE ON SCHEMA shop TO rc_limited; GRANT SELECT ON ALL TABLES IN SCHEMA shop "
                   "TO rc_limited; GRANT SELECT ON ALL SEQUENCES IN SCHEMA shop TO rc_limited")
        limited = PostgresRef({**a.params, "user": "rc_limited"}, a.password)
        m = fingerprint_postgres(limited, OPTS)
        orders = m.table("shop.orders")
        assert orders is not None and orders.readable is False and orders.rows is None
        assert orders.extra.get("row_security") is True and "row-level security" in (orders.note or "")
        assert m.table("shop.customers").rows == 60  # type: ignore[union-attr]
        assert m.facts["rolsuper"] is False
        found = [(f.check, f.object) for f in self_checks_postgres(m)]
        assert ("row_security", "shop.orders") in found


def test_self_checks_catch_a_sequence_behind_its_column(fresh_db: PostgresRef) -> None:
    execute(fresh_db, "CREATE TABLE t (id serial PRIMARY KEY, d int); INSERT INTO t (d) SELECT 1 FROM "
                      "generate_series(1, 10); SELECT setval('t_id_seq', 4)")
    behind = fingerprint_postgres(fresh_db, OPTS)
    found = self_checks_postgres(behind)
    assert [(f.check, f.severity, f.object) for f in found] == [("sequence", "warning", "public.t_id_seq")]
    assert "next value 5" in found[0].message and "cannot tell" in found[0].message
    assert behind.sequences["public.t_id_seq"]["column_max"] == 10  # what the manifest records to tell
    execute(fresh_db, "SELECT setval('t_id_seq', 10)")
    healthy = fingerprint_postgres(fresh_db, OPTS)
    assert self_checks_postgres(healthy) == []
    # against a reference: behind there too, inherited (warning); not behind there, introduced (error)
    assert [f.severity for f in self_checks_postgres(behind, behind)] == ["warning"]
    assert "inherited from the source" in self_checks_postgres(behind, behind)[0].message
    assert [f.severity for f in self_checks_postgres(behind, healthy)] == ["error"]


def test_unreachable_source_is_an_environment_failure() -> None:
    from restorecheck.errors import SourceUnreachableError

    with pytest.raises(SourceUnreachableError):
        fingerprint_postgres(PostgresRef({"host": "127.0.0.1", "port": "1", "dbname": "x"}), OPTS)


def _copy_roles(src: PgServer, dst: PgServer) -> None:
    roles = execute(src.admin, "SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' AND rolname <> 'postgres'")
    for (name,) in roles:
        execute(dst.admin, f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') "
                           f"THEN CREATE ROLE \"{name}\" NOLOGIN; END IF; END $$")


def test_known_dataset_survives_pg15_to_pg18(pg15: PgServer, pg18: PgServer, tmp_path: Path) -> None:
    seed_mod = pytest.importorskip("restorecheck.seed")
    assert pg15.tools is not None and pg18.tools is not None
    with pg15.fresh_database() as src, pg18.fresh_database() as dst:
        seed_mod.seed(src, scale=1, seed=0)
        _copy_roles(pg15, pg18)
        dump = tmp_path / "seed.dump"
        _dump_on_15_restore_on_18(pg15, pg18, src, dst, dump)
        ref = fingerprint_postgres(src, OPTS)
        restored = fingerprint_postgres(dst, OPTS, ranges_from=ref)
        _, findings = compare_manifests(ref, restored)
        assert errors(findings) == [], errors(findings)
        assert self_checks_postgres(restored) == []


def test_foreign_tables_are_recorded_unread_and_citext_is_case_sensitive(pg15: PgServer) -> None:
    with pg15.fresh_database() as a:
        _or_skip(a, "CREATE EXTENSION file_fdw; CREATE EXTENSION citext", "contrib extensions missing")
        execute(a, "CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;"
                   "CREATE FOREIGN TABLE remote (x int) SERVER files OPTIONS (filename '/nonexistent');"
                   "CREATE TABLE c (id int PRIMARY KEY, s citext); INSERT INTO c VALUES (1, 'abc')")
        m = fingerprint_postgres(a, OPTS)
        remote = m.table("public.remote")
        assert remote is not None and remote.kind == "foreign" and remote.readable is False
        assert "foreign table" in (remote.note or "")
        assert m.schema["tables"]["public.remote"]["server"] == "files"
        assert m.schema["extensions"]["citext"]["version"]
        execute(a, "UPDATE c SET s = 'ABC'")
        after = fingerprint_postgres(a, OPTS)
        assert m.table("public.c").checksum != after.table("public.c").checksum  # type: ignore[union-attr]


def test_one_large_table_is_read_by_every_job(fresh_db: PostgresRef, monkeypatch: pytest.MonkeyPatch) -> None:
    execute(fresh_db, "CREATE TABLE t (id int PRIMARY KEY, v text);"
                      "INSERT INTO t SELECT g, repeat('v', 100) FROM generate_series(1, 3000) g; ANALYZE t")
    serial = fingerprint_postgres(fresh_db, OPTS)
    monkeypatch.setattr(pg_workers, "CHUNK_MIN_PAGES", 4)
    opened: list[str] = []
    real_connect = pg_fingerprint.connect

    def counting(ref: PostgresRef, options: FingerprintOptions, *, application: str = "") -> Any:
        opened.append(application)
        return real_connect(ref, options, application=application)

    monkeypatch.setattr(pg_fingerprint, "connect", counting)
    parallel = fingerprint_postgres(fresh_db, dataclasses.replace(OPTS, jobs=2))
    assert len(opened) == 2
    assert parallel.table("public.t") == serial.table("public.t")


def _dump_on_15_restore_on_18(pg15: PgServer, pg18: PgServer, src: PostgresRef, dst: PostgresRef,
                              dump: Path) -> None:
    """pg_dump -Fc with PostgreSQL 15's tools, pg_restore into 18 with 18's: zero errors."""
    assert pg15.tools is not None and pg18.tools is not None
    subprocess.run([str(pg15.tools.tool("pg_dump")), "-Fc", "-f", str(dump)], env={**src.child_env()},
                   check=True, capture_output=True)
    done = subprocess.run([str(pg18.tools.tool("pg_restore")), "-d", dst.dbname or "", str(dump)],
                          env={**dst.child_env()}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _or_skip(db: PostgresRef, statement: str, missing: str) -> None:
    """Run ``statement`` (it needs something this server may lack), or skip the test saying what."""
    try:
        execute(db, statement)
    except psycopg.Error as exc:
        pytest.skip(f"{missing}: {exc}")


def _workers(ref: PostgresRef) -> list[Any]:
    return [pg_session.connect(ref, OPTS, application="rc-test-worker") for _ in range(2)]


def _sleeper(seen: list[str], on_start: Callable[[], Any]) -> Callable[[Any], list[Any]]:
    """A worker task that calls ``on_start``, then sleeps in the server for a minute; ``seen`` gets
    "cancelled" when its query was cancelled, "finished" when it ran to its end."""
    def sleeper(conn: Any) -> list[Any]:
        on_start()
        try:
            conn.execute("SELECT pg_sleep(60)")
            seen.append("finished")
        except psycopg.errors.QueryCanceled:
            seen.append("cancelled")
        return []
    return sleeper


def test_a_failed_task_stops_the_fingerprint_workers(fresh_db: PostgresRef) -> None:
    """The first task that raises cancels the query in flight on the other worker, tasks not yet
    started never run, and the error reaches the caller (issue 13: no worker keeps reading)."""
    conns = _workers(fresh_db)
    seen: list[str] = []
    started = threading.Event()
    sleeper = _sleeper(seen, started.set)

    def failing(conn: Any) -> list[Any]:
        started.wait(10)
        time.sleep(0.5)  # the sleeper's query is running by now
        raise RuntimeError("boom")

    def never(conn: Any) -> list[Any]:
        seen.append("ran")
        return []

    t0 = time.monotonic()
    try:
        with pytest.raises(RuntimeError, match="boom"):
            pg_workers._run_tasks(conns, [sleeper, failing, never, never])
    finally:
        for c in conns:
            c.close()
    assert time.monotonic() - t0 < 20
    assert seen == ["cancelled"]


def test_ctrl_c_cancels_the_fingerprint_workers(fresh_db: PostgresRef) -> None:
    """A real SIGINT while the workers read: KeyboardInterrupt in the caller within seconds, and
    both queries in flight were cancelled (none ran to its end)."""
    conns = _workers(fresh_db)
    seen: list[str] = []
    running = threading.Semaphore(0)
    sleeper = _sleeper(seen, running.release)

    def ctrl_c() -> None:
        for _ in range(2):
            running.acquire(timeout=10)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=ctrl_c, daemon=True).start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            pg_workers._run_tasks(conns, [sleeper, sleeper])
    finally:
        for c in conns:
            c.close()
    assert time.monotonic() - t0 < 20
    assert seen == ["cancelled", "cancelled"]


PARTITIONED_FKS = """
CREATE TABLE meas (id int, code text, PRIMARY KEY (id, code)) PARTITION BY RANGE (id);
CREATE TABLE meas_1 PARTITION OF meas FOR VALUES FROM (0) TO (100);
CREATE TABLE meas_2 PARTITION OF meas FOR VALUES FROM (100) TO (200);
CREATE TABLE lst (code text PRIMARY KEY) PARTITION BY LIST (code);
CREATE TABLE lst_a PARTITION OF lst FOR VALUES IN ('a');
CREATE TABLE lst_b PARTITION OF lst FOR VALUES IN ('b');
CREATE TABLE refs (id int PRIMARY KEY, mid int, mcode text, code text REFERENCES lst,
                   FOREIGN KEY (mid, mcode) REFERENCES meas);
INSERT INTO meas VALUES (1, 'a'), (150, 'b'); INSERT INTO lst VALUES ('a'), ('b');
INSERT INTO refs VALUES (1, 1, 'a', 'a'), (2, 150, 'b', 'b');
-- a name the server's own clone names would take, taken first (the order of a restore differs)
ALTER TABLE refs RENAME CONSTRAINT refs_code_fkey1 TO zz_clone;
CREATE TABLE lst_c (code text PRIMARY KEY);
ALTER TABLE refs ADD CONSTRAINT refs_code_fkey1 CHECK (code <> '');
ALTER TABLE lst ATTACH PARTITION lst_c FOR VALUES IN ('c');
"""


def test_foreign_keys_to_partitioned_tables_compare_across_majors(pg15: PgServer, pg18: PgServer,
                                                                   tmp_path: Path) -> None:
    """The server makes one constraint per partition for a foreign key that references a partitioned
    table, and names them at restore: differently on 18 than on 15, and differently when names were
    taken. Those derived constraints are not compared (the foreign key itself is); a real difference
    in the foreign key still is."""
    assert pg15.tools is not None and pg18.tools is not None
    with pg15.fresh_database() as src, pg18.fresh_database() as dst, pg15.fresh_database() as same:
        execute(src, PARTITIONED_FKS)
        dump = tmp_path / "p.dump"
        _dump_on_15_restore_on_18(pg15, pg18, src, dst, dump)
        subprocess.run([str(pg15.tools.tool("pg_restore")), "-d", same.dbname or "", str(dump)],
                       check=True, capture_output=True, env={**same.child_env()})
        ref = fingerprint_postgres(src, OPTS)
        derived = [c for c, e in ref.schema["tables"]["public.refs"]["constraints"].items() if e.get("derived")]
        assert len(derived) >= 4 and "zz_clone" in derived
        for target in (dst, same):
            restored = fingerprint_postgres(target, OPTS, ranges_from=ref)
            _, findings = compare_manifests(ref, restored)
            assert errors(findings) == [], errors(findings)
        execute(same, "ALTER TABLE refs DROP CONSTRAINT refs_mid_mcode_fkey")
        _, findings = compare_manifests(ref, fingerprint_postgres(same, OPTS, ranges_from=ref))
        assert any("refs_mid_mcode_fkey" in f.message for f in findings if f.severity == "error")


def test_view_options_are_compared(fresh_db: PostgresRef, tmp_path: Path) -> None:
    """security_invoker, security_barrier and check_option decide whose permissions and row security
    a view applies; a restore that lost them passed. A view with none records no options (manifests
    before 0.3 recorded none)."""
    execute(fresh_db, """
        CREATE TABLE t (id int PRIMARY KEY, s text);
        CREATE VIEW plain_v AS SELECT * FROM t;
        CREATE VIEW v1 WITH (security_invoker = true) AS SELECT * FROM t;
        CREATE VIEW v2 WITH (security_barrier = true) AS SELECT * FROM t WHERE id > 0 WITH LOCAL CHECK OPTION;
    """)
    ref = fingerprint_postgres(fresh_db, OPTS)
    views = ref.schema["views"]
    assert "options" not in views["public.plain_v"]
    assert views["public.v1"]["options"] == ["security_invoker=true"]
    assert views["public.v2"]["options"] == ["check_option=local", "security_barrier=true"]
    execute(fresh_db, "ALTER VIEW v1 RESET (security_invoker); ALTER VIEW v2 RESET (check_option)")
    _, findings = compare_manifests(ref, fingerprint_postgres(fresh_db, OPTS))
    bad = sorted(f.object for f in findings if f.severity == "error" and f.check == "schema")
    assert bad == ["public.v1", "public.v2"], [f.message for f in findings]
