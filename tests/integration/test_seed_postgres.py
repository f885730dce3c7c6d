"""The PostgreSQL known dataset on real servers (15 and 18).

Content is compared with plain SQL (``restorecheck.seed.golden.postgres_digest``), never with
restorecheck's own fingerprints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from restorecheck.cli import run_cli
from restorecheck.dburl import PostgresRef
from restorecheck.errors import EnvironmentFailure, TargetNotEmptyError
from restorecheck.provisioners.base import PgServer
from restorecheck.runner import run
from restorecheck.seed import seed
from restorecheck.seed.golden import REGENERATE, diff_digests, load_golden, postgres_digest
from tests.conftest import execute

pytestmark = pytest.mark.postgres

SCALE_1_TABLES = {
    "public.rc_strings": 60, "public.rc_types": 30, "rc_audit.log": 535, "rc_ledger.accounts": 50,
    "rc_ledger.entries_2023": 250, "rc_ledger.entries_2024": 250, "rc_ledger.entries_2025": 250,
    "rc_ledger.entries_default": 250, "rc_ledger.fx_rates": 40, "rc_ledger.session_cache": 100,
    "rc_shop.Gift Cards": 20, "rc_shop.categories": 32, "rc_shop.customer_totals": 200,
    "rc_shop.customers": 200, "rc_shop.order_lines": 1490, "rc_shop.orders": 490, "rc_shop.products": 100,
    "rc_shop.venues": 30,
}

# Everything a refusal must leave alone: relations, schemas, large objects, and the rows.
_INVENTORY = """
SELECT string_agg(x, ',' ORDER BY x) FROM (
  SELECT n.nspname || '.' || c.relname || ':' || c.relkind::text FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
  UNION ALL SELECT 'schema:' || nspname FROM pg_namespace
  UNION ALL SELECT 'lo:' || oid FROM pg_largeobject_metadata
) AS s(x)
"""


def _golden_failure(diffs: list[str]) -> str:
    return ("the PostgreSQL dataset's content changed:\n  " + "\n  ".join(diffs[:20])
            + f"\nIf that was on purpose, bump GENERATOR_VERSION and run: {REGENERATE}")


def test_scale_1_matches_the_golden_values(fresh_db_any: PostgresRef) -> None:
    result = seed(fresh_db_any)
    assert result.tables == SCALE_1_TABLES
    assert result.rows == sum(SCALE_1_TABLES.values()) and result.large_objects == 5
    diffs = diff_digests(load_golden("postgresql"), postgres_digest(fresh_db_any))
    assert not diffs, _golden_failure(diffs)


def test_same_seed_identical_different_seed_differs(pg_server: PgServer) -> None:
    with pg_server.fresh_database() as a, pg_server.fresh_database() as b, pg_server.fresh_database() as c:
        seed(a, seed=42)
        seed(b, seed=42)
        seed(c, seed=43)
        da, db, dc = postgres_digest(a), postgres_digest(b), postgres_digest(c)
    assert da == db
    assert {t: v["rows"] for t, v in dc["tables"].items()} == {t: v["rows"] for t, v in da["tables"].items()}
    changed = {t for t in da["tables"] if da["tables"][t]["md5"] != dc["tables"][t]["md5"]}
    assert changed >= set(SCALE_1_TABLES) - {"rc_shop.customer_totals"}
    assert da["large_objects"] != dc["large_objects"]


def test_scale_10_holds_ten_times_the_rows(fresh_db: PostgresRef) -> None:
    result = seed(fresh_db, scale=10)
    assert result.tables == {t: 10 * n for t, n in SCALE_1_TABLES.items()}
    counted = {t: v["rows"] for t, v in postgres_digest(fresh_db)["tables"].items()}
    assert counted == result.tables
    assert execute(fresh_db, "SELECT count(*) FROM pg_largeobject_metadata")[0][0] == 50


def test_the_dataset_has_what_breaks_backups(fresh_db: PostgresRef) -> None:
    seed(fresh_db)
    def q(sql: str) -> list[tuple[object, ...]]:
        return execute(fresh_db, sql)

    def n(sql: str) -> int:
        value = execute(fresh_db, sql)[0][0]
        assert isinstance(value, int)
        return value

    assert n("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rc\\_%'") == 3
    assert q("SELECT relpersistence FROM pg_class WHERE oid = 'rc_ledger.session_cache'::regclass") == [("u",)]
    assert q("SELECT relrowsecurity FROM pg_class WHERE oid = 'rc_ledger.accounts'::regclass") == [(True,)]
    assert q("SELECT relkind FROM pg_class WHERE oid = 'rc_ledger.entries'::regclass") == [("p",)]
    assert q("SELECT relispopulated FROM pg_class WHERE oid = 'rc_shop.customer_totals'::regclass") == [(True,)]
    assert n("SELECT count(*) FROM pg_attribute WHERE attgenerated = 's' AND attrelid IN "
             "('rc_shop.customers'::regclass, 'rc_shop.order_lines'::regclass)") == 2
    assert q("SELECT attidentity FROM pg_attribute WHERE attrelid = 'rc_shop.customers'::regclass "
             "AND attname = 'id'") == [("a",)]
    assert n("SELECT count(*) FROM rc_shop.customers WHERE nickname = ''") > 0
    assert n("SELECT count(*) FROM rc_shop.customers WHERE nickname IS NULL") > 0
    assert n("SELECT count(*) FROM rc_strings WHERE body ~ '(^|\\n)\\\\\\.(\\n|$)'") > 0
    assert n("SELECT count(*) FROM rc_shop.products WHERE position('\\x00'::bytea IN photo) > 0") > 0
    assert n("SELECT count(*) FROM rc_ledger.fx_rates WHERE rate = 'NaN' OR rate = '-Infinity'") > 0
    assert n("SELECT count(*) FROM rc_ledger.fx_rates WHERE exact = 'Infinity'::numeric") > 0
    assert q("SELECT is_called FROM rc_ledger.spare_seq") == [(False,)]
    assert q("SELECT last_value FROM rc_ledger.invoice_no_seq") == [(1014,)]
    # the audit trail: one row per change, an unbroken hash chain
    assert q("SELECT op, count(*) FROM rc_audit.log GROUP BY op ORDER BY op") == [
        ("DELETE", 10), ("INSERT", 500), ("UPDATE", 25)]
    assert n("SELECT count(*) FROM rc_audit.log l JOIN rc_audit.log p ON p.id = l.id - 1 "
             "WHERE l.prev_hash IS DISTINCT FROM p.hash") == 0
    assert n("SELECT count(*) FROM rc_audit.log WHERE hash <> encode(sha256(convert_to("
             "coalesce(prev_hash, '') || '|' || op || '|' || row_data::text, 'UTF8')), 'hex')") == 0
    # cascades ran: no orphans, and the deleted category subtree took its products' references
    assert n("SELECT count(*) FROM rc_shop.order_lines l WHERE NOT EXISTS (SELECT 1 FROM rc_shop.orders o "
             "WHERE (o.region, o.order_no) = (l.region, l.order_no))") == 0
    # the sequences feeding columns are not behind them
    assert q("SELECT last_value >= (SELECT max(id) FROM rc_shop.customers) "
             "FROM rc_shop.customers_id_seq") == [(True,)]


def test_refusal_leaves_the_target_untouched(fresh_db: PostgresRef) -> None:
    execute(fresh_db, "CREATE TABLE public.things (id int PRIMARY KEY, name text)")
    execute(fresh_db, "INSERT INTO public.things VALUES (1, 'keep me')")
    execute(fresh_db, "CREATE VIEW public.things_v AS SELECT * FROM public.things")
    before = execute(fresh_db, _INVENTORY)
    with pytest.raises(TargetNotEmptyError, match=r"already holds tables \(public.things\)"):
        seed(fresh_db)
    assert run_cli(["seed", _url(fresh_db), "--no-progress"]) == 2
    assert execute(fresh_db, _INVENTORY) == before
    assert execute(fresh_db, "SELECT * FROM public.things") == [(1, "keep me")]


def _url(ref: PostgresRef) -> str:
    p = ref.params
    return f"postgresql://{p['user']}@/{p['dbname']}?host={p['host']}&port={p['port']}"


def test_second_seed_is_refused_and_replace_recreates_only_the_dataset(fresh_db: PostgresRef) -> None:
    seed(fresh_db, seed=9)
    with pytest.raises(TargetNotEmptyError):
        seed(fresh_db)
    execute(fresh_db, "CREATE SCHEMA app")
    execute(fresh_db, "CREATE TABLE app.things (id int PRIMARY KEY, name text)")
    execute(fresh_db, "INSERT INTO app.things VALUES (1, 'keep me')")
    execute(fresh_db, "SELECT lo_from_bytea(424242, 'not the dataset''s')")
    result = seed(fresh_db, replace=True)
    assert result.tables == SCALE_1_TABLES
    diffs = diff_digests(load_golden("postgresql"), postgres_digest(fresh_db))
    assert not diffs, _golden_failure(diffs)
    assert execute(fresh_db, "SELECT * FROM app.things") == [(1, "keep me")]
    assert execute(fresh_db, "SELECT convert_from(lo_get(424242), 'UTF8')") == [("not the dataset's",)]


def test_replace_refuses_to_drop_what_depends_on_the_dataset(fresh_db: PostgresRef) -> None:
    seed(fresh_db)
    execute(fresh_db, "CREATE VIEW public.my_report AS SELECT count(*) AS n FROM rc_shop.orders")
    before = execute(fresh_db, _INVENTORY)
    with pytest.raises(TargetNotEmptyError, match="my_report"):
        seed(fresh_db, replace=True)
    assert execute(fresh_db, _INVENTORY) == before


def test_replace_refuses_a_schema_it_did_not_create(fresh_db: PostgresRef) -> None:
    execute(fresh_db, "CREATE SCHEMA rc_shop")
    execute(fresh_db, "CREATE TABLE rc_shop.mine (id int)")
    before = execute(fresh_db, _INVENTORY)
    with pytest.raises(TargetNotEmptyError, match="not created by restorecheck seed"):
        seed(fresh_db, replace=True)
    assert execute(fresh_db, _INVENTORY) == before


def test_pg_dump_and_pg_restore_round_trip_with_zero_errors(pg_any: PgServer, tmp_path: Path) -> None:
    assert pg_any.tools is not None
    dump = tmp_path / "known.dump"
    with pg_any.fresh_database() as source:
        seed(source)
        expected = postgres_digest(source)
        done = run([pg_any.tools.tool("pg_dump"), "--format=custom", "--file", dump], env=source.child_env(),
                   inherit_env=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip() == ""
    with pg_any.fresh_database() as target:
        done = run([pg_any.tools.tool("pg_restore"), "--exit-on-error", "--dbname", target.dbname or "", dump],
                   env=target.child_env(), inherit_env=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip() == ""
        restored = postgres_digest(target)
    assert not diff_digests(expected, restored), diff_digests(expected, restored)
    diffs = diff_digests(load_golden("postgresql"), restored)
    assert not diffs, _golden_failure(diffs)


def test_cli_seeds_and_prints_the_tables(fresh_db: PostgresRef, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["seed", _url(fresh_db), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "rc_shop.order_lines" in out and "1,490" in out and "large objects" in out


def test_dump_on_15_restores_on_18_in_another_cluster(pg15: PgServer, pg18: PgServer, tmp_path: Path) -> None:
    """What the drill does across clusters: roles pre-created NOLOGIN, restore into template0 copy."""
    assert pg15.tools is not None and pg18.tools is not None
    dump = tmp_path / "known15.dump"
    with pg15.fresh_database() as source:
        seed(source, seed=5)
        expected = postgres_digest(source)
        done = run([pg15.tools.tool("pg_dump"), "-Fc", "--file", dump], env=source.child_env(), inherit_env=True,
                   timeout=300)
        assert done.returncode == 0, done.stderr
    for role in ("rc_reader", "rc_tenant"):
        execute(pg18.admin, f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
                            f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$")
    with pg18.fresh_database() as target:
        done = run([pg18.tools.tool("pg_restore"), "--exit-on-error", "--dbname", target.dbname or "", dump],
                   env=target.child_env(), inherit_env=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip() == ""
        restored = postgres_digest(target)
    assert not diff_digests(expected, restored), diff_digests(expected, restored)


def test_a_database_owner_without_superuser_can_seed(fresh_db: PostgresRef) -> None:
    owner = "rc_test_app_owner"
    execute(fresh_db, f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{owner}') "
                      f"THEN CREATE ROLE {owner} LOGIN; END IF; END $$")
    execute(fresh_db, f'ALTER DATABASE "{fresh_db.dbname}" OWNER TO {owner}')
    as_owner = PostgresRef({**fresh_db.params, "user": owner}, fresh_db.password)
    result = seed(as_owner)
    assert result.tables == SCALE_1_TABLES
    diffs = diff_digests(load_golden("postgresql"), postgres_digest(fresh_db))
    assert not diffs, _golden_failure(diffs)
    assert execute(fresh_db, "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
                             "WHERE relnamespace = 'rc_shop'::regnamespace") == [(owner,)]


# --- the contrib extensions the dataset uses ------------------------------------------------------


def test_the_dataset_uses_its_contrib_extensions_for_real(fresh_db: PostgresRef) -> None:
    from restorecheck.seed.postgres import EXTENSIONS

    seed(fresh_db)
    assert sorted(r[0] for r in execute(fresh_db, "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'")) \
        == sorted(EXTENSIONS)
    # citext: unique regardless of case; hstore: real keys; btree_gist: no double booking; pg_trgm: the index
    assert execute(fresh_db, "SELECT count(*) FROM rc_shop.venues WHERE handle = 'GRAND-HALL-0'") == [(1,)]
    assert execute(fresh_db, "SELECT count(*) FROM rc_shop.venues WHERE attrs ? 'k y'")[0][0] > 0
    with pytest.raises(psycopg.errors.ExclusionViolation):
        execute(fresh_db, "INSERT INTO rc_shop.venues SELECT 1000, 'x', 't', NULL, room, booked "
                          "FROM rc_shop.venues WHERE id = 1")
    assert "gin_trgm_ops" in str(execute(fresh_db, "SELECT indexdef FROM pg_indexes "
                                                   "WHERE indexname = 'venues_title_trgm_idx'"))
    assert execute(fresh_db, "SELECT count(*) FROM rc_shop.venues WHERE title % 'Grand Hal'")[0][0] > 0


def test_seed_on_a_server_lacking_an_extension_is_exit_3_with_the_remedy(fresh_db: PostgresRef,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from restorecheck.seed import postgres as seed_pg

    monkeypatch.setattr(seed_pg, "EXTENSIONS", (*seed_pg.EXTENSIONS, "restorecheck_no_such_extension"))
    before = execute(fresh_db, _INVENTORY)
    with pytest.raises(EnvironmentFailure) as info:
        seed(fresh_db)
    assert info.value.exit_code == 3
    assert "cannot install restorecheck_no_such_extension" in info.value.message
    assert "postgresql-15-restorecheck_no_such_extension" in info.value.one_line()
    assert execute(fresh_db, _INVENTORY) == before  # nothing created


def test_drill_where_no_installation_has_the_contrib_extensions_is_exit_3(monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The self-test's throwaway source must be an installation with the dataset's extensions: with
    citext gone from every installation (its capabilities faked, the servers are real), exit 3 naming
    it and the distribution package, before anything is seeded."""
    import dataclasses as dc

    from restorecheck import cli, pg_hosting

    real = pg_hosting.capabilities

    def without_citext(inst: Any) -> Any:
        caps = real(inst)
        return dc.replace(caps, extensions={k: v for k, v in caps.extensions.items() if k != "citext"})

    monkeypatch.setattr(pg_hosting, "capabilities", without_citext)
    rc = cli.run_cli(["drill", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 3, err
    assert 'extension "citext"' in err and "postgresql-contrib" in err and len(err.splitlines()) == 1
