"""The SQL builders behind the PostgreSQL checksums (pure; their effect is tested on real servers)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from restorecheck.engines.pg_catalog import normalise_definition, normalise_privileges
from restorecheck.engines.pg_rowhash import (
    ColumnInfo,
    TableInfo,
    add_checksums,
    checksum_query,
    column_elements,
    column_elements_v2,
    format_checksum,
    ranges_from_boundaries,
    row_hash_sql,
)
from restorecheck.engines.pg_workers import split_blocks


def render(c: sql.Composable) -> str:
    return c.as_string(None)


def col(name: str, base: str = "int4", typtype: str = "b", **kw: object) -> ColumnInfo:
    kw.setdefault("hashfn", {"int4": "hashint4extended", "int8": "hashint8extended"}.get(base, "f"))
    return ColumnInfo(name=name, type_sql=kw.pop("type_sql", base), base=base, typtype=typtype, **kw)  # type: ignore[arg-type]


def elements(c: ColumnInfo) -> list[tuple[str, str]]:
    return [(fn, render(e)) for fn, e in column_elements(c)]


def test_hashable_types_are_hashed_by_their_own_function() -> None:
    assert elements(col("n")) == [("hashint4extended", '"t"."n"')]
    assert elements(col("f", "bool", hashfn="hashcharextended")) == [("hashint4extended", '("t"."f")::integer')]


def test_bigint_gets_its_high_half_as_a_second_element() -> None:
    assert elements(col("b", "int8", type_sql="bigint")) == [
        ("hashint8extended", '"t"."b"'), ("hashint8extended", '("t"."b" >> 32)')]
    assert elements(col("d", "int8", type_sql="shop.big_domain"))[1] == (
        "hashint8extended", '(("t"."d")::bigint >> 32)')


def test_types_whose_hash_would_mislead_are_hashed_as_text() -> None:
    cases = [
        col("j", "json", hashable=False),
        col("e", "status", "e"),  # enum: hashes the label's OID
        col("ts", "timestamptz"),  # 64-bit hash folded into 32
        col("r", "regclass"),
        col("c", "text", nondeterministic=True),
        col("arr", "_int8", elem_base="int8", elem_typtype="b"),
        col("rng", "tstzrange", "r"),
        col("comp", "mytype", "c"),
        col("d", "date", hashfn=None),  # its hash function takes int4: not callable on a date
    ]
    for c in cases:
        assert elements(c) == [("hashtextextended", f'("t"."{c.name}")::text COLLATE "C"')], c


def test_row_hash_sorts_columns_by_name_seeds_by_position_and_rehashes() -> None:
    h = render(row_hash_sql([col("b"), col("a")], strict=False, version=1))
    assert h.startswith('hashtextextended((coalesce(hashint4extended("t"."a", 1), ')
    assert '# coalesce(hashint4extended("t"."b", 2), ' in h and h.endswith(")::text, 0)")
    s = render(row_hash_sql([col("b"), col("a")], strict=True))
    assert s == 'hashtextextended((ROW("t"."a", "t"."b"))::text COLLATE "C", 0)'


def test_hash64_v2_hashes_temporal_types_by_their_send_form_and_booleans_as_constants() -> None:
    def v2(c: ColumnInfo, i: int = 1) -> list[str]:
        return [render(e) for e in column_elements_v2(c, i)]

    (ts,) = v2(col("ts", "timestamptz"))
    assert ts.startswith('coalesce(hashtextextended((pg_catalog.timestamptz_send("t"."ts"))::text COLLATE "C", 1), ')
    for base in ("timestamp", "time", "timetz", "date", "interval"):
        assert f"pg_catalog.{base}_send(" in v2(col("x", base, "d"))[0]  # a domain over it too
    assert v2(col("arr", "_timestamptz", elem_base="timestamptz", elem_typtype="b"))[0].startswith(
        'coalesce(hashtextextended(("t"."arr")::text COLLATE "C", 1)')  # arrays: as in v1
    (b,) = v2(col("f", "bool", hashfn="hashint4extended"), 3)
    assert b.startswith('coalesce(CASE "t"."f" WHEN true THEN ') and " WHEN false THEN " in b
    big = v2(col("b", "int8", type_sql="bigint"), 5)
    assert big == [render(e) for e in column_elements_v2(col("b", "int8", type_sql="bigint"), 5)] and len(big) == 2
    assert 'hashint8extended(("t"."b" >> 32), 6)' in big[1]  # seeds go on by position


def test_hash64_v2_xors_the_elements_and_mixes_once_in_the_checksum_query() -> None:
    h = render(row_hash_sql([col("b"), col("a")], strict=False))
    assert h.startswith('(hashint8extended((coalesce(hashint4extended("t"."a", 1), ')
    assert h.endswith(" >> 32, 1))")
    t = TableInfo("s", "t", "r", (col("id"),), key=("id",), key_types=("integer",), key_collatable=(False,))
    q = render(checksum_query(t, strict=False)[0])
    assert q.startswith("SELECT s.b, count(*), coalesce(sum((hashint8extended(s.h, 0) # hashint8extended(s.h >> 32, 1)))")
    assert q.endswith('FROM ONLY "s"."t" AS t OFFSET 0) AS s GROUP BY 1')  # the XOR evaluated once per row
    assert q.count("hashint4extended") == 1


def test_a_manifest_s_checksum_mode_sets_the_row_hash() -> None:
    from restorecheck.engines.base import FingerprintOptions, in_checksum_mode_of
    from restorecheck.model import Manifest

    base = FingerprintOptions()
    assert (base.strict, base.hash_version) == (False, 2)
    for mode, expect in [("hash64-v1", (False, 1)), ("hash64-v2", (False, 2)), ("text64-v1", (True, 2)),
                         (None, (False, 2))]:
        o = in_checksum_mode_of(Manifest(engine="postgresql", database="d", checksum_mode=mode), base)  # type: ignore[arg-type]
        assert (o.strict, o.hash_version) == expect, mode


def test_boolean_constants_are_no_null_markers() -> None:
    from restorecheck.engines.pg_rowhash import _bool_marker, _null_marker

    nulls = {_null_marker(i) for i in range(1, 3000)}
    bools = {_bool_marker(i, v) for i in range(1, 1500) for v in (True, False)}
    assert len(bools) == 2998 and not nulls & bools and all(-(2**63) <= m < 2**63 for m in bools)


def test_checksum_query_with_buckets_and_blocks() -> None:
    t = TableInfo("s", "t", "r", (col("id"), col("v")), key=("id",), key_types=("integer",),
                  key_collatable=(False,))
    q, params = checksum_query(t, strict=False, boundaries=[["10"], ["20"]], blocks=(0, 100))
    text = render(q)
    assert 'width_bucket("t"."id", ARRAY[%s::integer, %s::integer])' in text
    assert "FROM ONLY \"s\".\"t\" AS t WHERE t.ctid >= '(0,0)'::tid AND t.ctid < '(100,0)'::tid" in text
    assert params == ["10", "20"]
    p = TableInfo("s", "p", "p", (col("id"),))
    assert "FROM \"s\".\"p\"" in render(checksum_query(p, strict=False)[0])


def test_ranges_from_boundaries_cover_everything() -> None:
    r = ranges_from_boundaries([["10"], ["20"]], {0: (3, 5), 2: (1, 7)})
    assert [(x.lower, x.upper, x.rows) for x in r] == [(None, ("10",), 3), (("10",), ("20",), 0), (("20",), None, 1)]
    assert add_checksums(*(x.checksum for x in r)) == format_checksum(12)


@given(st.lists(st.integers(min_value=-(2**70), max_value=2**70), max_size=20))
def test_checksums_add_modulo_2_64(parts: list[int]) -> None:
    assert add_checksums(*(format_checksum(p) for p in parts)) == format_checksum(sum(parts))
    assert len(format_checksum(sum(parts))) == 16


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=1, max_value=64))
def test_split_blocks_is_contiguous_and_open_ended(pages: int, parts: int) -> None:
    chunks = split_blocks(pages, parts)
    assert chunks[0][0] == 0 and chunks[-1][1] is None
    for (_, hi), (lo, _) in itertools.pairwise(chunks):
        assert hi == lo
    assert len(chunks) <= parts


@given(st.lists(st.tuples(st.sampled_from(["a", "b", None, ""]),
                          st.sampled_from(["SELECT", "INSERT", "USAGE"]), st.booleans())))
def test_privileges_normalise_to_a_sorted_set(items: list[tuple[str | None, str, bool]]) -> None:
    out = normalise_privileges(items)
    assert out == sorted(set(out)) == normalise_privileges(list(reversed(items)))
    assert all("=" in x for x in out)
    if any(g in (None, "") for g, _, _ in items):
        assert any(x.startswith("PUBLIC=") for x in out)


def test_view_definitions_do_not_depend_on_the_major() -> None:
    pg15 = " SELECT orders.id,\n    orders.total\n   FROM shop.orders\n  WHERE (orders.status = 'paid'::shop.status);"
    pg16 = " SELECT id,\n    total\n   FROM shop.orders\n  WHERE (status = 'paid'::shop.status);"
    assert normalise_definition(pg15) == normalise_definition(pg16)
    assert normalise_definition(None) is None


def test_null_markers_differ_by_position_and_fit_a_bigint() -> None:
    from restorecheck.engines.pg_rowhash import _null_marker

    markers = [_null_marker(i) for i in range(1, 2000)]
    assert len(set(markers)) == len(markers) and 0 not in markers
    assert all(-(2**63) <= m < 2**63 for m in markers)
