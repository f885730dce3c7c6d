"""The SQLite table checksum computed inside SQLite (``checksum_table``: no Python call per value)
against its pure-Python reference (``reference_checksum``), on every storage class.

Both must give the same digest on any table (rowid, INTEGER PRIMARY KEY, WITHOUT ROWID, every
rowid alias shadowed; UTF-8 and UTF-16 databases; with and without key ranges), and both must
tell apart the mutations the checksum exists for: a storage-class change (1, 1.0, '1', x'31'),
NULL against '', a value moved to another column, two rows' contents swapped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import sqlite3
import struct
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from restorecheck.engines.base import FingerprintOptions
from restorecheck.engines.sqlite import checksum_table, read_tables, reference_checksum

RANGES = FingerprintOptions(range_rows=3, max_ranges=4)  # key ranges from 4 rows on
WHOLE = FingerprintOptions(range_rows=10**9)

values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),  # SQLite stores NaN as NULL
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12),  # NUL included
    st.binary(max_size=12),
)

SHAPES = {
    "rowid": "CREATE TABLE t(a, b, c)",
    "integer_pk": "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b, c)",
    "without_rowid": "CREATE TABLE t(id INTEGER NOT NULL PRIMARY KEY, a, b, c) WITHOUT ROWID",
    "aliases_shadowed": "CREATE TABLE t(rowid, _rowid_, oid, a, b, c)",
}


@contextlib.contextmanager
def database(shape: str, rows: Sequence[Sequence[Any]], encoding: str = "UTF-8") -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.execute(f"PRAGMA encoding = '{encoding}'")
        conn.execute(SHAPES[shape])
        for i, row in enumerate(rows, start=1):
            if shape in ("integer_pk", "without_rowid"):
                conn.execute("INSERT INTO t VALUES (?, ?, ?, ?)", (i * 3, *row))
            elif shape == "aliases_shadowed":
                conn.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", (i, -i, None, *row))
            else:
                conn.execute("INSERT INTO t VALUES (?, ?, ?)", tuple(row))
        yield conn
    finally:
        conn.close()


def both(conn: sqlite3.Connection, options: FingerprintOptions = WHOLE,
         version: int = 2) -> tuple[tuple[int, str], tuple[int, str]]:
    (info,) = read_tables(conn)
    fp = checksum_table(conn, info, dataclasses.replace(options, hash_version=version))
    assert fp.readable, fp.note
    assert fp.checksum is not None
    assert fp.checksum_mode == f"sqlite-keyed-sha256-v{version}"
    return (fp.rows or 0, fp.checksum), reference_checksum(conn, info, version)


rows_strategy = st.lists(st.tuples(values, values, values), max_size=9)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.sampled_from(sorted(SHAPES)), rows=rows_strategy,
       encoding=st.sampled_from(["UTF-8", "UTF-16le", "UTF-16be"]), ranged=st.booleans(),
       version=st.sampled_from([2, 1]))
def test_sql_checksum_equals_the_pure_python_reference(shape: str, rows: list[tuple[Any, Any, Any]],
                                                       encoding: str, ranged: bool, version: int) -> None:
    with database(shape, rows, encoding) as conn:
        fast, reference = both(conn, RANGES if ranged else WHOLE, version)
    assert fast == reference
    assert fast[0] == len(rows)


def mutations(rows: list[list[Any]]) -> Iterator[tuple[str, list[list[Any]]]]:
    """Copies of ``rows`` with one change the checksum must see."""
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            for other in (1, 1.0, "1", b"1", None, "", b"", 0, -0.5):
                if type(other) is not type(v) or other != v:
                    changed = [list(r) for r in rows]
                    changed[i][j] = other
                    yield f"row {i} col {j}: {v!r} -> {other!r}", changed
        if row[0] != row[1] or type(row[0]) is not type(row[1]):
            swapped = [list(r) for r in rows]
            swapped[i][0], swapped[i][1] = row[1], row[0]
            yield f"row {i}: columns 0 and 1 swapped", swapped
    for i in range(len(rows) - 1):
        if rows[i] != rows[i + 1]:
            swapped = [list(r) for r in rows]
            swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
            yield f"rows {i} and {i + 1} swapped", swapped


@pytest.mark.parametrize("shape", ["rowid", "integer_pk", "without_rowid"])
def test_both_detect_the_same_mutations_on_every_storage_class(shape: str) -> None:
    base = [[1, "1", 1.0], [b"\x01", None, ""], ["a\x00b", 2**63 - 1, -0.5], ["x'01'", b"", 0]]
    with database(shape, base) as conn:
        original = both(conn)
    assert original[0] == original[1]
    seen = 0
    for label, changed in mutations(base):
        with database(shape, changed) as conn:
            fast, reference = both(conn)
        assert fast == reference, label
        assert fast != original[0], f"the checksum missed: {label}"
        seen += 1
    assert seen > 100


def test_text_with_a_nul_and_the_storage_classes_of_one_look_alike_value_differ() -> None:
    digests = set()
    for v in (1, 1.0, "1", b"1", b"\x01", None, "", b"", "a\x00b", "a\x00c"):
        with database("rowid", [[v, None, None]]) as conn:
            fast, reference = both(conn)
        assert fast == reference
        digests.add(fast[1])
    assert len(digests) == 10


def test_v2_reals_are_their_bits_whatever_sqlite_renders() -> None:
    """v1 took REALs from quote(), whose digits changed in SQLite 3.43 (1.0/3 was
    3.33333333333333314829e-01 in 3.40 and is 0.33333333333333332 in 3.54): one database had two
    checksums. v2's digest is computed here from the definition alone, without SQLite."""
    reals = [1.0 / 3, 0.1 + 0.2, 5e-324, -1.7976931348623157e308, float("inf"), float("-inf"), 2.0**63, -0.0]
    with database("rowid", [(r, None, None) for r in reals]) as conn:
        fast, reference = both(conn)
    text = b"".join(b"%d,F%s,NULL,NULL\n" % (i, struct.pack(">d", r if r != 0 else 0.0).hex().upper().encode())
                    for i, r in enumerate(reals, start=1))
    assert fast == reference == (len(reals), hashlib.sha256(text).hexdigest()[:32])
    with database("rowid", [(0.0, None, None)]) as zero, database("rowid", [(-0.0, None, None)]) as minus:
        assert both(zero)[0] == both(minus)[0]  # equal in SQLite, equal here
    with database("rowid", [(1.0, None, None)]) as real, database("rowid", [(1, None, None)]) as integer:
        assert both(real)[0] != both(integer)[0]


def test_a_signal_during_the_checksum_is_not_swallowed_by_sqlite() -> None:
    """The REAL function is C (``struct.pack``): a signal handler's exception can never be raised
    inside SQLite's callback, where the sqlite3 module turns it into "user-defined function raised
    exception" and the checksum goes on. With a Python function there, this test fails: the
    handler runs inside the callback of the first REAL after the signal and the run ignores it."""
    import signal
    import threading

    class Stop(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Stop

    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, a REAL, b REAL, c REAL)")
    conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 300000) "
                 "INSERT INTO t SELECT i, i * 0.1, i / 3.0, -i * 1.5 FROM n")
    (info,) = read_tables(conn)
    old = signal.signal(signal.SIGUSR1, handler)
    timer = threading.Timer(0.05, signal.pthread_kill, (threading.main_thread().ident, signal.SIGUSR1))
    try:
        timer.start()
        with pytest.raises(Stop):
            for _ in range(20):  # far longer than 0.05 s
                fp = checksum_table(conn, info, WHOLE)
                assert fp.readable, fp.note  # a swallowed signal shows up here, as an unreadable table
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, old)
        conn.close()
