"""The C row encoder (restorecheck/_sqlite_rows.c): the same bytes as the SQL encoding on every
storage class, key shape and text encoding, and every way it can refuse to be used falls back to the
SQL encoding instead of a wrong checksum."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from restorecheck.engines import sqlite as engine
from restorecheck.engines.sqlite import checksum_table, read_tables, reference_checksum
from tests.unit.test_sqlite_checksum_reference import RANGES, SHAPES, WHOLE, database, values


@contextlib.contextmanager
def sql_encoding() -> Iterator[None]:
    """The SQL encoding, as an install without the C encoder computes it."""
    old = os.environ.get("RESTORECHECK_SQLITE_NATIVE")
    os.environ["RESTORECHECK_SQLITE_NATIVE"] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["RESTORECHECK_SQLITE_NATIVE"]
        else:
            os.environ["RESTORECHECK_SQLITE_NATIVE"] = old


@contextlib.contextmanager
def logged_warnings() -> Iterator[list[str]]:
    """The warnings of the "restorecheck" logger, from a handler on that logger itself (the CLI,
    once run by an earlier test, stops its propagation to the root logger where caplog listens)."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("restorecheck")
    handler, level = Collect(logging.WARNING), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def native_available() -> bool:
    conn = sqlite3.connect(":memory:")
    try:
        return engine.register_native(conn)
    finally:
        conn.close()


needs_native = pytest.mark.skipif(not native_available() and not os.environ.get("CI"),
                                  reason="restorecheck/_sqlite_rows.c was not built here (no C compiler at "
                                         "install): the SQL encoding is used, which the other tests cover")


def test_the_c_encoder_is_built_and_used_in_ci() -> None:
    """CI installs with a C compiler: the encoder must be there, or its tests would quietly test
    nothing (they skip without it elsewhere, saying why)."""
    if not os.environ.get("CI"):
        pytest.skip("only CI promises a C compiler at install")
    assert native_available()


@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.sampled_from(sorted(SHAPES)), rows=st.lists(st.tuples(values, values, values), max_size=12),
       encoding=st.sampled_from(["UTF-8", "UTF-16le", "UTF-16be"]), ranged=st.booleans())
def test_native_and_sql_checksums_are_equal(shape: str, rows: list[tuple[Any, Any, Any]],
                                            encoding: str, ranged: bool) -> None:
    options = RANGES if ranged else WHOLE
    with database(shape, rows, encoding) as conn:
        (info,) = read_tables(conn)
        reader = engine._Reader(conn, info, engine.no_progress, None)
        assert reader.native
        assert reader.direct == (shape in ("rowid", "integer_pk"))
        native = checksum_table(conn, info, options)
        with sql_encoding():
            assert not engine._Reader(conn, info, engine.no_progress, None).native
            by_sql = checksum_table(conn, info, options)
        assert native == by_sql
        assert (native.rows, native.checksum) == reference_checksum(conn, info)


@needs_native
def test_many_chunks_and_ranges_agree_with_the_reference() -> None:
    """Enough rows for several chunks per range and a worker-thread hash: sparse rowids with gaps,
    rows of every storage class and size, deleted rows."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t(a, b, c)")
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 150000) "
        "INSERT INTO t(rowid, a, b, c) SELECT i * 7 + (i / 1000) * 100000, i, "
        "CASE i % 5 WHEN 0 THEN NULL WHEN 1 THEN i / 3.0 WHEN 2 THEN 'x' || i WHEN 3 THEN randomblob(i % 64) "
        "ELSE -i END, zeroblob(i % 3) FROM n")
    conn.execute("DELETE FROM t WHERE rowid % 11 = 0")
    (info,) = read_tables(conn)
    options = dataclasses.replace(RANGES, range_rows=10_000, max_ranges=16)
    native = checksum_table(conn, info, options)
    with sql_encoding():
        by_sql = checksum_table(conn, info, options)
    assert native == by_sql
    assert len(native.ranges) > 4
    assert (native.rows, native.checksum) == reference_checksum(conn, info)
    conn.close()


@needs_native
def test_the_aggregate_refuses_rows_out_of_key_order() -> None:
    conn = sqlite3.connect(":memory:")
    assert engine.register_native(conn)
    with pytest.raises(sqlite3.OperationalError, match="out of key order"):
        conn.execute("SELECT restorecheck_rows(k, v) FROM (SELECT 2 AS k, 'a' AS v UNION ALL SELECT 1, 'b')"
                     ).fetchone()
    with pytest.raises(sqlite3.OperationalError, match="out of key order"):  # a repeated key too
        conn.execute("SELECT restorecheck_rows(k, v) FROM (SELECT 1 AS k, 'a' AS v UNION ALL SELECT 1, 'b')"
                     ).fetchone()
    # NULL: no key to check (WITHOUT ROWID tables, read through ORDER BY)
    assert conn.execute("SELECT restorecheck_rows(NULL, v) FROM (SELECT 'a' AS v UNION ALL SELECT 'b')"
                        ).fetchone()[0] == b"T1:a\nT1:b"
    conn.close()


@needs_native
def test_rows_out_of_rowid_order_fall_back_to_order_by() -> None:
    """Were a plan ever to feed the rows in another order, the key check fails the chunk and the
    table is read again through ORDER BY: the same checksum, a warning, never a wrong digest."""
    rows = [(i, i / 7, f"v{i}") for i in range(3000)]
    with database("rowid", rows) as conn:
        (info,) = read_tables(conn)
        expected = reference_checksum(conn, info)
        original = engine._Reader.__init__

        def misordered(self: engine._Reader, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            assert self.direct
            # the same values, but the checked key runs backwards
            self.direct_aggregate = self.direct_aggregate.replace("(rowid,", "(-rowid,", 1)

        with pytest.MonkeyPatch.context() as mp, logged_warnings() as warned:
            mp.setattr(engine._Reader, "__init__", misordered)
            fp = checksum_table(conn, info, WHOLE)
        assert fp.readable, fp.note
        assert (fp.rows, fp.checksum) == expected
        assert any("out of rowid order" in w for w in warned), warned


@needs_native
@pytest.mark.parametrize("native", [True, False])
def test_a_value_past_sqlites_length_limit_is_an_unreadable_table_either_way(native: bool) -> None:
    """A chunk larger than SQLITE_LIMIT_LENGTH is refused ("too big") by the C encoder as by
    group_concat: the table is reported unreadable, and no unbounded buffer is built."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)")
    conn.execute("INSERT INTO t VALUES (1, randomblob(600))")
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)  # the hex of 600 bytes is 1,203
    (info,) = read_tables(conn)
    with contextlib.ExitStack() as stack:
        if not native:
            stack.enter_context(sql_encoding())
        fp = checksum_table(conn, info, WHOLE)
    assert not fp.readable
    assert "too big" in (fp.note or "")
    conn.close()


def test_an_encoder_that_disagrees_with_the_sql_is_not_used() -> None:
    """register_native proves the encoder on a row of every storage class before using it: one
    that encodes differently (a wrong build, another layout of sqlite3.Connection) is refused."""

    class Wrong:
        def __init__(self) -> None:
            self.rows: list[str] = []

        def step(self, *values: Any) -> None:
            self.rows.append(",".join(map(str, values[1:])))

        def finalize(self) -> bytes:
            return "\n".join(self.rows).encode()

    class FakeModule:
        @staticmethod
        def register(conn: sqlite3.Connection, _type: type, _library: str, _utf16: bool, name: str) -> None:
            conn.create_aggregate(name, -1, Wrong)  # type: ignore[arg-type]

    conn = sqlite3.connect(":memory:")
    with pytest.MonkeyPatch.context() as mp, logged_warnings() as warned:
        mp.setitem(engine._native_state, "module", FakeModule)
        mp.setitem(engine._native_state, "library", "unused")
        assert not engine.register_native(conn)
    assert any("disagrees" in w for w in warned), warned
    conn.close()


@needs_native
def test_a_closed_connection_or_a_foreign_object_is_refused() -> None:
    module = engine._native_module()
    assert module is not None
    conn = sqlite3.connect(":memory:")
    conn.close()
    assert not engine.register_native(conn)
    with pytest.raises(TypeError):
        module.register(object(), sqlite3.Connection, engine._native_state["library"], False, "f")


@needs_native
def test_doctor_says_how_sqlite_checksums_are_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    from restorecheck.doctor import diagnose

    def detail() -> str:
        (sqlite_status,) = [p for p in diagnose().provisioners if p.name == "sqlite"]
        assert sqlite_status.usable
        return sqlite_status.detail

    assert "C row encoder" in detail() and "by SQL" not in detail()
    monkeypatch.setenv("RESTORECHECK_SQLITE_NATIVE", "0")
    assert "checksums by SQL" in detail() and "RESTORECHECK_SQLITE_NATIVE=0" in detail()
    monkeypatch.delenv("RESTORECHECK_SQLITE_NATIVE")
    monkeypatch.setitem(engine._native_state, "module", None)  # not built
    assert "was not built" in detail()


@needs_native
@pytest.mark.parametrize("encoding", ["UTF-16le", "UTF-16be", "UTF-8"])
def test_text_that_is_not_valid_utf16_is_checksummed_by_sql(encoding: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite renders invalid UTF-16 (a lone surrogate, an odd byte) together with whatever follows it
    in the row or the chunk, which no value-by-value encoder can reproduce: the C encoder refuses
    such text and the table is checksummed by SQL, so both installs agree (measured: a lone high
    surrogate before ',' became U+1002C, before a newline U+FFFD, at a chunk's end its raw bytes)."""
    monkeypatch.setattr(engine, "CHUNK_TARGET_BYTES", 64)  # many chunks: the fallback mid-table
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(f"PRAGMA encoding = '{encoding}'")
    conn.execute("CREATE TABLE t(a, b)")
    for i in range(60):
        conn.execute("INSERT INTO t VALUES (?, ?)", (f"row {i}", i))
    conn.execute("INSERT INTO t VALUES (CAST(x'ff00fe41' AS TEXT), CAST(x'00d8' AS TEXT)), "
                 "(CAST(x'c3' AS TEXT), 1), (CAST(x'00d8' AS TEXT), CAST(x'd800' AS TEXT)), "
                 "(CAST(x'' AS TEXT), CAST(x'00dc' AS TEXT)), (char(0), CAST(x'4100d8' AS TEXT)), "
                 "(x'', CAST(x'00d8' AS TEXT))")
    for i in range(60):
        conn.execute("INSERT INTO t VALUES (?, ?)", (f"after {i}", -i))
    (info,) = read_tables(conn)
    for options in (WHOLE, RANGES):
        native = checksum_table(conn, info, options)
        with sql_encoding():
            by_sql = checksum_table(conn, info, options)
        assert native.readable and native == by_sql
    conn.close()


@needs_native
def test_a_table_wider_than_a_functions_arguments_is_checksummed_by_sql() -> None:
    """SQLite lets a function take 127 arguments and a table have 2,000 columns: a wider table is
    encoded by SQL (its || has no such limit), not reported unreadable."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(f"CREATE TABLE wide({', '.join(f'c{i}' for i in range(300))})")
    conn.execute(f"INSERT INTO wide VALUES ({', '.join(str(i) for i in range(300))})")
    conn.execute("CREATE TABLE narrow(a, b)")
    conn.execute("INSERT INTO narrow VALUES (1, 'x')")
    wide, narrow = sorted(read_tables(conn), key=lambda t: t.name != "wide")
    assert not engine._Reader(conn, wide, engine.no_progress, None).native
    assert engine._Reader(conn, narrow, engine.no_progress, None).native
    fp = checksum_table(conn, wide, WHOLE)
    assert fp.readable, fp.note
    assert (fp.rows, fp.checksum) == reference_checksum(conn, wide)
    conn.close()


@pytest.mark.parametrize("native", [True, False], ids=["c-encoder-if-built", "sql"])
@pytest.mark.parametrize("width", [600, 1999])
@pytest.mark.parametrize("kind", ["rowid", "without_rowid"])
def test_a_table_of_up_to_2000_columns_is_checksummed(width: int, kind: str, native: bool) -> None:
    """The SQL encoding joins a row's values with ||: as one flat chain, a table of about 500 columns
    or more passed SQLite's expression depth (1,000) and was reported unreadable, a false alarm on a
    legal table (SQLite allows 2,000 columns). Every storage class, NULL included, in a wide row."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    cols = ", ".join(f"c{i}" for i in range(width))
    tail = " WITHOUT ROWID" if kind == "without_rowid" else ""
    conn.execute(f"CREATE TABLE wide (id INTEGER PRIMARY KEY, {cols}){tail}")
    kinds = [lambda r, i: r * i, lambda r, i: r + i / 7, lambda r, i: f"t{r}:{i}", lambda r, i: bytes([r % 256, i % 256]),
             lambda r, i: None]
    rows = [(r, *[kinds[(r + i) % 5](r, i) for i in range(width)]) for r in range(1, 41)]
    conn.executemany(f"INSERT INTO wide VALUES (?, {', '.join('?' * width)})", rows)
    (info,) = read_tables(conn)
    with contextlib.nullcontext() if native else sql_encoding():
        fp = checksum_table(conn, info, WHOLE)
    assert fp.readable, fp.note
    assert (fp.rows, fp.checksum) == reference_checksum(conn, info)
    conn.execute(f"UPDATE wide SET c{width - 1} = 'changed' WHERE id = 17")
    with contextlib.nullcontext() if native else sql_encoding():
        changed = checksum_table(conn, info, WHOLE)
    assert changed.readable and changed.checksum != fp.checksum
    assert (changed.rows, changed.checksum) == reference_checksum(conn, info)
    conn.close()
