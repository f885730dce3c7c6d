"""compare_manifests and its parts: pure functions over Manifests (no server)."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from restorecheck.checks.compare import (
    compare_fk_orphans,
    compare_large_objects,
    compare_manifests,
    compare_schema,
    compare_sequences,
    fk_self_checks,
    locale_of,
    next_value,
    sequence_self_checks,
)
from restorecheck.model import Manifest, RangeChecksum, TableFingerprint


def table(name: str = "s.t", rows: int = 10, checksum: str = "aa", **kw: Any) -> TableFingerprint:
    return TableFingerprint(name, rows=rows, checksum=checksum, checksum_mode="hash64-v1", **kw)


def manifest(*tables: TableFingerprint, **kw: Any) -> Manifest:
    return Manifest(engine="x", database="d", tables=tables, **kw)


def ids(findings: list[Any]) -> list[tuple[str, str, str]]:
    return [(f.check, f.severity, f.object) for f in findings]


def test_equal_manifests_have_no_findings() -> None:
    m = manifest(table(), schema={"tables": {"s.t": {"columns": {"a": {"type": "int"}}}}},
                 sequences={"s.q": {"last_value": 5, "is_called": True}})
    results, findings = compare_manifests(m, m)
    assert findings == [] and [r.match for r in results] == [True]


def test_missing_and_extra_tables_are_not_reported_twice_by_schema() -> None:
    a = manifest(table("s.a"), schema={"tables": {"s.a": {}}})
    b = manifest(table("s.b"), schema={"tables": {"s.b": {}}})
    _, findings = compare_manifests(a, b)
    assert ids(findings) == [("table_missing", "error", "s.a"), ("table_extra", "error", "s.b")]


def test_row_count_and_checksum() -> None:
    _, f = compare_manifests(manifest(table(rows=10)), manifest(table(rows=9)))
    assert ids(f) == [("row_count", "error", "s.t")] and "expected 10 rows, restored 9 (-1)" in f[0].message
    _, f = compare_manifests(manifest(table()), manifest(table(checksum="bb")))
    assert ids(f) == [("checksum", "error", "s.t")]


def test_matview_differences_are_warnings() -> None:
    _, f = compare_manifests(manifest(table(kind="matview")), manifest(table(kind="matview", checksum="bb")))
    assert ids(f) == [("checksum", "warning", "s.t")] and "recomputes" in f[0].message


def test_different_checksum_modes_are_not_compared() -> None:
    b = dataclasses.replace(table(checksum="bb"), checksum_mode="text64-v1")
    _, f = compare_manifests(manifest(table()), manifest(b))
    assert ids(f) == [("checksum", "warning", "s.t")] and "different modes" in f[0].message


def test_differing_ranges_are_listed() -> None:
    def ranges(second: str) -> tuple[RangeChecksum, ...]:
        return (RangeChecksum(None, ("10",), 10, "a"), RangeChecksum(("10",), ("20",), 10, second),
                RangeChecksum(("20",), None, 5, "c"))

    a = table(key=("id",), ranges=ranges("b"))
    b = table(key=("id",), ranges=ranges("x"), checksum="zz")
    _, f = compare_manifests(manifest(a), manifest(b))
    assert f[0].details["ranges"] == [{"lower": ["10"], "upper": ["20"], "rows_expected": 10, "rows_restored": 10}]
    assert "1 of 3 key ranges" in f[0].message
    # no key: said so
    _, f = compare_manifests(manifest(table()), manifest(table(checksum="zz")))
    assert f[0].details["localisable"] is False


def test_unreadable_relations() -> None:
    gone = table(readable=False, rows=None, checksum=None, note="not populated")  # type: ignore[arg-type]
    _, f = compare_manifests(manifest(table()), manifest(gone))
    assert ids(f) == [("unreadable", "error", "s.t")]
    _, f = compare_manifests(manifest(gone), manifest(table()))
    assert ids(f) == [("unreadable", "warning", "s.t")]
    assert compare_manifests(manifest(gone), manifest(gone))[1] == []


def test_sequences_exact_and_against_a_live_reference() -> None:
    ref = {"s.q": {"last_value": 10, "is_called": True, "increment": 1}}
    assert next_value(ref["s.q"]) == 11
    assert next_value({"last_value": 10, "is_called": False}) == 10
    lower = {"s.q": {"last_value": 5, "is_called": True, "increment": 1}}
    higher = {"s.q": {"last_value": 50, "is_called": True, "increment": 1}}
    assert ids(compare_sequences(ref, lower)) == [("sequence", "error", "s.q")]
    assert ids(compare_sequences(ref, higher)) == [("sequence", "error", "s.q")]
    assert ids(compare_sequences(ref, lower, live_reference=True)) == [("sequence", "error", "s.q")]
    assert compare_sequences(ref, higher, live_reference=True) == []
    assert ids(compare_sequences(ref, {})) == [("sequence", "error", "s.q")]
    desc = {"s.d": {"last_value": -10, "is_called": True, "increment": -1}}
    assert compare_sequences(desc, {"s.d": {"last_value": -20, "is_called": True, "increment": -1}},
                             live_reference=True) == []


def seq(last: int, *, called: bool = True, inc: int = 1, col_max: Any = 10, **kw: Any) -> dict[str, Any]:
    edge = {"column_max": col_max} if inc > 0 else {"column_min": col_max}
    return {"last_value": last, "is_called": called, "increment": inc, "owned_by": "s.t.id", **edge, **kw}


def test_sequence_self_checks_without_a_reference_cannot_tell() -> None:
    (f,) = sequence_self_checks({"s.q": seq(4)})
    assert (f.check, f.severity, f.object) == ("sequence", "warning", "s.q")
    assert "is behind its column s.t.id: next value 5, max(id) = 10" in f.message
    assert "cannot tell whether it was inherited from the source or introduced by the backup" in f.message
    assert "there is no reference" in f.message and f.details["inherited"] is None
    assert f.details["behind_by"] == 6  # nextval returns 5..10 before it is past the column
    assert sequence_self_checks({"s.q": seq(10)}) == []
    assert ids(sequence_self_checks({"s.q": seq(10, called=False)})) == [("sequence", "warning", "s.q")]
    assert sequence_self_checks({"s.q": {"last_value": 1, "is_called": True}}) == []  # owns no column
    assert sequence_self_checks({"s.q": seq(1, col_max=None)}) == []  # an empty column
    assert sequence_self_checks({"s.q": seq(1, col_max="1.5")}) == []  # not an integer column: not compared
    assert ids(sequence_self_checks({"s.d": seq(-5, inc=-1, col_max=-10)})) == [("sequence", "warning", "s.d")]
    assert sequence_self_checks({"s.d": seq(-11, inc=-1, col_max=-10)}) == []


def test_a_sequence_behind_in_the_source_too_is_inherited() -> None:
    # loaded with explicit ids, never advanced: setval(seq, 1, false) in the source and in the copy
    source = {"s.q": seq(1, called=False, col_max=100)}
    (f,) = sequence_self_checks(source, source)
    assert (f.check, f.severity, f.object) == ("sequence", "warning", "s.q")
    assert "inherited from the source, whose sequence is behind too (next value 1, max(id) = 100)" in f.message
    assert "SELECT setval('s.q', max(id)) FROM s.t" in f.message and f.details["inherited"] is True
    # the live source took more explicit ids since the backup: still inherited
    assert ids(sequence_self_checks(source, {"s.q": seq(1, called=False, col_max=120)})) == [
        ("sequence", "warning", "s.q")]


def test_a_sequence_behind_where_the_source_was_not_is_an_error() -> None:
    (f,) = sequence_self_checks({"s.q": seq(4)}, {"s.q": seq(10)})
    assert (f.check, f.severity) == ("sequence", "error")
    assert "the source's was not behind (next value 11, max(id) = 10): the backup or the restore introduced it" \
        in f.message and f.details["inherited"] is False
    # behind in the source, further behind in the copy: made worse
    (g,) = sequence_self_checks({"s.q": seq(2, col_max=100)}, {"s.q": seq(50, col_max=100)})
    assert (g.severity, g.details["behind_by"], g.details["reference_behind_by"]) == ("error", 98, 50)
    assert "the source's was behind by less" in g.message and "made it worse" in g.message
    # a descending sequence behind where the source's was not
    assert ids(sequence_self_checks({"s.d": seq(-5, inc=-1, col_max=-10)},
                                    {"s.d": seq(-11, inc=-1, col_max=-10)})) == [("sequence", "error", "s.d")]


def test_a_reference_that_does_not_record_the_column_cannot_tell() -> None:
    old = {"s.q": {"last_value": 1, "is_called": False, "increment": 1, "owned_by": "s.t.id"}}
    (f,) = sequence_self_checks({"s.q": seq(1, called=False)}, old)
    assert f.severity == "warning" and "the reference does not record this sequence's column" in f.message
    (g,) = sequence_self_checks({"s.q": seq(1, called=False)}, {})
    assert g.severity == "warning" and "cannot tell" in g.message


def test_fk_orphans() -> None:
    ref = {"s.c.fk": {"orphans": 0, "validated": True}, "s.c.nv": {"orphans": 2, "validated": False}}
    same = compare_fk_orphans(ref, ref)
    assert same == []
    more = compare_fk_orphans(ref, {"s.c.fk": {"orphans": 1, "validated": True},
                                    "s.c.nv": {"orphans": 2, "validated": False}})
    assert ids(more) == [("fk_orphans", "error", "s.c.fk")]
    assert "the backup or the restore introduced 1" in more[0].message
    assert ids(fk_self_checks(ref)) == []  # NOT VALID may have orphans
    assert ids(fk_self_checks(ref, ref)) == []


def test_fk_orphans_on_a_validated_key_inherited_or_not() -> None:
    restored = {"s.c.fk": {"orphans": 3, "validated": True, "table": "s.c"}}
    (f,) = fk_self_checks(restored)
    assert (f.check, f.severity, f.object) == ("fk_orphans", "warning", "s.c.fk")
    assert "cannot tell whether the source had them too" in f.message and "no reference" in f.message
    # the source has them too (its constraint was bypassed): inherited
    (g,) = fk_self_checks(restored, {"s.c.fk": {"orphans": 3, "validated": True}})
    assert g.severity == "warning" and "inherited from the source, which has 3" in g.message
    assert compare_fk_orphans({"s.c.fk": {"orphans": 3, "validated": True}}, restored) == []
    # more than the source: compare_fk_orphans's error, not repeated as a self-check warning
    fewer = {"s.c.fk": {"orphans": 1, "validated": True}}
    assert fk_self_checks(restored, fewer) == []
    assert ids(compare_fk_orphans(fewer, restored)) == [("fk_orphans", "error", "s.c.fk")]
    _, findings = compare_manifests(manifest(fk_orphans=fewer), manifest(fk_orphans=restored))
    assert ids(findings) == [("fk_orphans", "error", "s.c.fk")]


def test_large_objects() -> None:
    a = {"count": 2, "digest": "d1", "objects": {"1": {"md5": "x"}, "2": {"md5": "y"}}}
    b = {"count": 2, "digest": "d2", "objects": {"1": {"md5": "x"}, "3": {"md5": "y"}}}
    f = compare_large_objects(a, b)
    assert ids(f) == [("large_objects", "error", "large objects")]
    assert (f[0].details["missing"], f[0].details["extra"]) == (["2"], ["3"])
    assert compare_large_objects(a, a) == [] and compare_large_objects(None, a) == []


def test_schema_messages_for_humans() -> None:
    a = {"tables": {"shop.items": {"columns": {"price": {"type": "numeric(12,2)"}, "x": {"type": "int"}},
                                   "privileges": ["PUBLIC=SELECT", "rc_reader=SELECT"], "comment": "hi"}},
         "indexes": {"shop.orders_created_idx": {"definition": "CREATE INDEX ..."}},
         "policies": {"shop.items.p": {"command": "SELECT"}}}
    b = {"tables": {"shop.items": {"columns": {"price": {"type": "numeric"}, "y": {"type": "int"}},
                                   "privileges": ["PUBLIC=SELECT", "rc_writer=INSERT"], "comment": "ho"}},
         "indexes": {}, "policies": {}}
    msgs = sorted(f.message for f in compare_schema(a, b))
    assert msgs == sorted([
        "column shop.items.price: type numeric(12,2) -> numeric",
        "column shop.items.x is missing in the restored copy",
        "column shop.items.y is in the restored copy but not in the reference",
        "privileges on table shop.items: missing rc_reader=SELECT",
        "privileges on table shop.items: extra rc_writer=INSERT",
        "table shop.items: comment hi -> ho",
        "index shop.orders_created_idx is missing in the restored copy",
        "policy shop.items.p is missing in the restored copy",
    ])
    assert all(f.check == "schema" and f.severity == "error" for f in compare_schema(a, b))


def test_schema_of_another_shape_is_still_compared() -> None:
    f = compare_schema({"pragmas": {"user_version": 3}}, {"pragmas": {"user_version": 4}})
    assert [x.message for x in f] == ["pragma user_version: 3 -> 4"]
    assert compare_schema({}, {}) == []


@given(st.lists(st.sampled_from(["a=SELECT", "b=INSERT", "PUBLIC=USAGE", "c=UPDATE*"]), unique=True),
       st.randoms())
def test_privilege_lists_compare_as_sets(privs: list[str], rnd: Any) -> None:
    shuffled = list(privs)
    rnd.shuffle(shuffled)
    assert compare_schema({"tables": {"t": {"privileges": privs}}}, {"tables": {"t": {"privileges": shuffled}}}) == []


def test_partitioned_parents_leave_the_findings_to_their_partitions() -> None:
    parent = table("s.p", rows=10, kind="partitioned", extra={"derived": True})
    results, f = compare_manifests(manifest(parent, table("s.p1", rows=10)),
                                   manifest(dataclasses.replace(parent, rows=9), table("s.p1", rows=9)))
    assert ids(f) == [("row_count", "error", "s.p1")]
    assert [r.match for r in results] == [False, False]


def test_database_locale_difference_is_one_info_and_encoding_a_warning() -> None:
    a = manifest(facts={"encoding": "UTF8", "lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8",
                        "locale_provider": "icu", "icu_locale": "en-US"})
    b = manifest(facts={"encoding": "UTF8", "lc_collate": "C", "lc_ctype": "C", "locale_provider": "libc"})
    _, f = compare_manifests(a, b)
    assert ids(f) == [("database", "info", "database")]
    assert f[0].message.startswith("database locale differs from the reference's: lc_collate C.UTF-8 -> C, "
                                   "lc_ctype C.UTF-8 -> C, locale_provider icu -> libc")
    assert f[0].details["locale_difference"] is True
    _, f = compare_manifests(a, manifest(facts={**a.facts, "encoding": "LATIN1"}))
    assert ids(f) == [("schema", "warning", "database")] and "encoding" in f[0].message
    # an older manifest without the provider facts: only what both record is compared
    assert compare_manifests(manifest(facts={"lc_collate": "C"}), b)[1] == []
    assert locale_of(a.facts) == {"encoding": "UTF8", "lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8",
                                  "locale_provider": "icu", "icu_locale": "en-US"}


def test_a_foreign_key_the_source_own_rows_violate_is_inherited() -> None:
    from restorecheck.checks.compare import inherited_restore_errors
    from restorecheck.model import Finding

    restore_error = Finding("restore_errors", "error", "FK CONSTRAINT c c_p_id_fkey postgres",
                            'insert or update on table "c" violates foreign key constraint "c_p_id_fkey"',
                            {"tool": "pg_restore"})
    missing = Finding("schema", "error", "public.c", "constraint public.c.c_p_id_fkey is missing in the restored copy",
                      {"path": ["tables", "public.c", "constraints", "c_p_id_fkey"],
                       "change": "dictionary_item_removed"})
    other = Finding("restore_errors", "error", "line 9", 'relation "x" does not exist')
    source = {"public.c.c_p_id_fkey": {"table": "public.c", "orphans": 1, "validated": True}}
    out = inherited_restore_errors([restore_error, missing, other], source)
    assert [(f.check, f.severity) for f in out] == [("restore_errors", "warning"), ("schema", "warning"),
                                                    ("restore_errors", "error")]
    assert "inherited from the source: 1 rows of public.c reference a missing parent there too" in out[0].message
    assert "inherited from the source" in out[1].message
    # the source had no orphans there: the backup introduced them, both stay errors
    clean = {"public.c.c_p_id_fkey": {"table": "public.c", "orphans": 0, "validated": True}}
    assert inherited_restore_errors([restore_error, missing], clean) == [restore_error, missing]
    # orphans under a NOT VALID key restore fine (ADD CONSTRAINT ... NOT VALID): an error here is not theirs
    not_valid = {"public.c.c_p_id_fkey": {"table": "public.c", "orphans": 1, "validated": False}}
    assert inherited_restore_errors([restore_error], not_valid) == [restore_error]


def test_an_extension_version_set_by_the_target_is_a_warning() -> None:
    """pg_dump records no extension version (a 15 dump restored on 18 gets 18's default): a warning
    with the fix; an extension missing stays an error."""
    from restorecheck.checks.compare import compare_schema

    ref = {"extensions": {"citext": {"version": "1.6", "schema": "public"}}}
    found = compare_schema(ref, {"extensions": {"citext": {"version": "1.8", "schema": "public"}}})
    assert [(f.severity, f.object) for f in found] == [("warning", "citext")]
    assert "ALTER EXTENSION" in found[0].message
    assert [f.severity for f in compare_schema(ref, {"extensions": {}})] == ["error"]
