"""compare catches every fault class, and faithful copies compare equal (real servers)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from restorecheck import pipeline
from restorecheck.dburl import PostgresRef
from restorecheck.engines.base import FingerprintOptions
from restorecheck.model import Report
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute, url
from tests.integration.pg_shop import create_shop, template_copy

pytestmark = pytest.mark.postgres

OPTS = FingerprintOptions(range_rows=50, max_ranges=8)


@pytest.fixture(scope="module")
def shop(pg_server: PgServer) -> Iterator[PostgresRef]:
    with pg_server.fresh_database() as ref:
        create_shop(ref)
        yield ref


def compare_after(server: PgServer, shop: PostgresRef, mutation: str, **kw: Any) -> Report:
    with template_copy(server, shop) as copy:
        if mutation:
            execute(copy, mutation)
        return pipeline.compare(url(shop), url(copy), options=kw.pop("options", OPTS), **kw)


def checks(report: Report) -> set[tuple[str, str]]:
    return {(f.check, f.object) for f in report.findings if f.severity == "error"}


def only_finding(report: Report, check: str, obj: str) -> dict[str, Any]:
    errors = [f for f in report.findings if f.severity == "error"]
    assert [(f.check, f.object) for f in errors] == [(check, obj)], [f.to_dict() for f in report.findings]
    assert report.verdict == "fail"
    return dict(errors[0].details)


def test_template_copy_compares_equal(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop, "")
    assert report.verdict == "pass", [f.to_dict() for f in report.findings]
    assert report.findings == ()
    names = {t.name for t in report.tables}
    assert {"shop.orders", "shop.events", "shop.events_2024", "shop.totals", "shop.empty_mv"} <= names
    assert all(t.match for t in report.tables)


def test_template_copy_compares_equal_in_parallel_and_strict(pg_server: PgServer, shop: PostgresRef) -> None:
    for opts in (FingerprintOptions(jobs=2, range_rows=50), FingerprintOptions(strict=True, range_rows=50)):
        report = compare_after(pg_server, shop, "", options=opts)
        assert report.verdict == "pass", [f.to_dict() for f in report.findings]


# a changed value in a column of each type: (column, new value for the row with id 7)
CHANGES = [
    ("customer_id", "2"),
    ("status", "'shipped'"),
    ("total", "8.76"),
    ("qty", "3"),
    ("big", "9"),  # (7 << 33) + 7 and 9 fold to the same 32 bits in bigint's own hash
    ("created", "created + interval '1 microsecond'"),
    ("shipped", "shipped + 1"),
    ("flags", "NOT flags"),
    ("weight", "weight + 1e-9"),
    ("data", """'{"g": 7, "k": "w"}'"""),
    ("doc", """'{"g": 7}'"""),  # json keeps its text: only the whitespace differs
    ("raw", r"'\x00000008'"),
    ("tags", "ARRAY['t7', 'y']"),
    ("ref", "md5('x')::uuid"),
    ("amount", "22"),
    ("period", "interval '7 minutes 1 second'"),
    ("addr", "'10.0.0.99'"),
    ("pt", "point(7, -8)"),
    ("a", "'changed'"),
    ("b", "NULL"),
]


@pytest.mark.parametrize(("column", "value"), CHANGES, ids=[c for c, _ in CHANGES])
def test_changed_value_is_caught_and_located(pg_server: PgServer, shop: PostgresRef, column: str,
                                             value: str) -> None:
    report = compare_after(pg_server, shop, f"UPDATE shop.orders SET {column} = {value} WHERE id = 7")
    details = only_finding(report, "checksum", "shop.orders")
    assert details["keys"] == [{"key": ["7"], "change": "changed"}]
    assert details["ranges_differing"] == 1


def test_deleted_row(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop, "DELETE FROM shop.orders WHERE id = 9")
    details = only_finding(report, "row_count", "shop.orders")
    assert (details["rows_expected"], details["rows_restored"]) == (400, 399)
    assert details["keys"] == [{"key": ["9"], "change": "missing"}]


def test_duplicated_row_in_a_table_without_key(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop, "INSERT INTO shop.nokey SELECT * FROM shop.nokey WHERE n = 3")
    details = only_finding(report, "row_count", "shop.nokey")
    assert details["localisable"] is False


def test_values_swapped_between_columns(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop, "UPDATE shop.orders SET a = b, b = a WHERE id = 11")
    assert only_finding(report, "checksum", "shop.orders")["keys"] == [{"key": ["11"], "change": "changed"}]


def test_values_swapped_between_rows(pg_server: PgServer, shop: PostgresRef) -> None:
    swap = ("UPDATE shop.nokey SET b = CASE n WHEN 1 THEN (SELECT b FROM shop.nokey WHERE n = 2) "
            "ELSE (SELECT b FROM shop.nokey WHERE n = 1) END WHERE n IN (1, 2)")
    only_finding(compare_after(pg_server, shop, swap), "checksum", "shop.nokey")
    swap_keyed = ("UPDATE shop.orders o SET a = s.a FROM (VALUES (3, 'a4'), (4, 'a3')) s(id, a) "
                  "WHERE o.id = s.id")
    details = only_finding(compare_after(pg_server, shop, swap_keyed), "checksum", "shop.orders")
    assert sorted(k["key"][0] for k in details["keys"]) == ["3", "4"]


def test_null_is_not_the_empty_string(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop, "UPDATE shop.nokey SET b = NULL WHERE n = 5 AND b = ''")
    only_finding(report, "checksum", "shop.nokey")


def test_orphan(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop,
                           "SET session_replication_role = replica; DELETE FROM shop.customers WHERE id = 59")
    assert ("fk_orphans", "shop.orders.orders_customer_id_fkey") in checks(report)
    f = next(f for f in report.findings if f.check == "fk_orphans")
    assert f.object == "shop.orders.orders_customer_id_fkey"
    assert f.details["orphans_restored"] > 0 and f.details["orphans_expected"] == 0
    # the NOT VALID foreign key's existing orphan is not a finding
    assert not any("legacy" in f.object for f in report.findings)
    # a new orphan on the NOT VALID foreign key is
    report = compare_after(pg_server, shop,
                           "SET session_replication_role = replica; DELETE FROM shop.customers WHERE id = 8")
    f = next(f for f in report.findings if f.object == "shop.legacy.legacy_customer_fk")
    assert (f.check, f.details["orphans_expected"], f.details["orphans_restored"]) == ("fk_orphans", 1, 2)


def test_lowered_sequence(pg_server: PgServer, shop: PostgresRef) -> None:
    for live in (True, False):
        report = compare_after(pg_server, shop, "SELECT setval('shop.customers_id_seq', 5)", live_reference=live)
        only_finding(report, "sequence", "shop.customers_id_seq")


def test_raised_sequence_is_fine_against_a_live_reference_only(pg_server: PgServer, shop: PostgresRef) -> None:
    raise_it = "SELECT setval('shop.ticket_seq', 500)"
    assert compare_after(pg_server, shop, raise_it, live_reference=True).verdict == "pass"
    only_finding(compare_after(pg_server, shop, raise_it, live_reference=False), "sequence", "shop.ticket_seq")


def test_dropped_index(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop, "DROP INDEX shop.orders_created_idx")
    only_finding(report, "schema", "shop.orders_created_idx")
    assert "index shop.orders_created_idx is missing in the restored copy" in [f.message for f in report.findings]


def test_revoked_grant(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop, "REVOKE SELECT ON shop.orders FROM rc_reader")
    only_finding(report, "schema", "shop.orders")
    assert report.findings[0].message == "privileges on table shop.orders: missing rc_reader=SELECT"


def test_revoked_column_grant(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop, "REVOKE SELECT (name) ON shop.customers FROM rc_reader")
    only_finding(report, "schema", "shop.customers")
    assert "rc_reader=SELECT" in report.findings[0].message


def test_changed_comment(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop, "COMMENT ON TABLE shop.orders IS 'changed'")
    only_finding(report, "schema", "shop.orders")
    assert report.findings[0].message == "table shop.orders: comment all orders -> changed"


def test_dropped_policy(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop, "DROP POLICY orders_reader ON shop.orders")
    only_finding(report, "schema", "shop.orders.orders_reader")
    assert report.findings[0].message == "policy shop.orders.orders_reader is missing in the restored copy"


def test_changed_column_type_and_dropped_table(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop, "DROP VIEW shop.paid_orders; "
                           "ALTER TABLE shop.customers ALTER COLUMN email TYPE varchar(200); DROP TABLE shop.log")
    found = checks(report)
    assert ("table_missing", "shop.log") in found
    msgs = [f.message for f in report.findings]
    assert "column shop.customers.email: type character varying(100) -> character varying(200)" in msgs
    assert "view shop.paid_orders is missing in the restored copy" in msgs


def test_changed_large_object(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop,
                           "SELECT lo_put((SELECT min(oid) FROM pg_largeobject_metadata), 0, '\\xff')")
    details = only_finding(report, "large_objects", "large objects")
    assert len(details["changed"]) == 1


def test_stale_matview_is_a_warning(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop, "UPDATE shop.orders SET total = total + 1 WHERE id = 7; "
                           "REFRESH MATERIALIZED VIEW shop.totals; "
                           "UPDATE shop.orders SET total = total - 1 WHERE id = 7")
    assert report.verdict == "pass"
    assert [(f.check, f.severity, f.object) for f in report.findings] == [("checksum", "warning", "shop.totals")]


def test_unpopulated_matview_in_the_copy(pg_server: PgServer, shop: PostgresRef) -> None:
    report = compare_after(pg_server, shop, "REFRESH MATERIALIZED VIEW shop.totals WITH NO DATA")
    found = {(f.check, f.object) for f in report.findings}
    assert ("unreadable", "shop.totals") in found
    assert any(f.check == "schema" and "populated" in f.message for f in report.findings)


def test_manifest_against_live_and_manifest_against_manifest(pg_server: PgServer, shop: PostgresRef,
                                                             tmp_path: Any) -> None:
    ref_manifest = tmp_path / "ref.json"
    pipeline.snapshot(shop, OPTS).save(ref_manifest)
    with template_copy(pg_server, shop) as copy:
        execute(copy, "UPDATE shop.orders SET a = 'x' WHERE id = 200")
        report = pipeline.compare(str(ref_manifest), url(copy))
        details = only_finding(report, "checksum", "shop.orders")
        assert details["ranges_differing"] == 1  # narrowed to one key range (no live side to bisect)
        lo, hi = details["ranges"][0]["lower"], details["ranges"][0]["upper"]
        assert (lo is None or int(lo[0]) <= 200) and (hi is None or int(hi[0]) > 200)
        copy_manifest = tmp_path / "copy.json"
        pipeline.snapshot(copy, OPTS).save(copy_manifest)
    report = pipeline.compare(str(ref_manifest), str(copy_manifest))
    only_finding(report, "checksum", "shop.orders")
    assert report.reference == "manifest"
