"""The SQLite known dataset, seeded into real files (SQLite needs no server)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from restorecheck.cli import run_cli
from restorecheck.dburl import SqliteRef
from restorecheck.errors import BadInputError, TargetNotEmptyError
from restorecheck.seed import seed
from restorecheck.seed.golden import REGENERATE, diff_digests, load_golden, sqlite_digest
from restorecheck.seed.sqlite import APPLICATION_ID, USER_VERSION


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    path = tmp_path / "known.db"
    seed(SqliteRef(path))
    return path


def test_scale_1_matches_the_golden_values(seeded: Path) -> None:
    golden = load_golden("sqlite")
    diffs = diff_digests(golden, sqlite_digest(seeded))
    assert not diffs, (
        "the SQLite dataset's content changed:\n  " + "\n  ".join(diffs[:20])
        + f"\nIf that was on purpose, bump GENERATOR_VERSION and run: {REGENERATE}")


def test_same_seed_same_content_different_seed_differs(tmp_path: Path, seeded: Path) -> None:
    again, other = tmp_path / "again.db", tmp_path / "other.db"
    seed(SqliteRef(again))
    seed(SqliteRef(other), seed=7)
    d0, d1, d7 = sqlite_digest(seeded), sqlite_digest(again), sqlite_digest(other)
    assert d0 == d1
    assert {t: v["rows"] for t, v in d7["tables"].items()} == {t: v["rows"] for t, v in d0["tables"].items()}
    changed = [t for t in d0["tables"] if d0["tables"][t] != d7["tables"][t]]
    assert set(changed) >= {"rc_customers", "rc_orders", "rc_order_lines", "rc_products", "rc_audit"}
    # the golden check catches a changed generator output
    assert any(line.startswith("tables: rc_customers") for line in diff_digests(load_golden("sqlite"), d7))


def test_scale_10_holds_ten_times_the_rows(tmp_path: Path) -> None:
    one, ten = tmp_path / "one.db", tmp_path / "ten.db"
    r1 = seed(SqliteRef(one))
    r10 = seed(SqliteRef(ten), scale=10)
    assert r10.tables == {t: 10 * n for t, n in r1.tables.items()}
    assert r10.rows == 10 * r1.rows
    # counted with plain SQL, not taken from the result
    for table, n in r1.tables.items():
        assert _rows(ten, f'SELECT count(*) FROM "{table.removeprefix("main.")}"')[0][0] == 10 * n


def test_result_lists_every_table(seeded: Path, tmp_path: Path) -> None:
    r = seed(SqliteRef(tmp_path / "r.db"))
    assert r.engine == "sqlite" and r.scale == 1 and r.seed == 0 and r.seconds > 0
    assert r.tables == {"main.rc_audit": 535, "main.rc_customers": 200, "main.rc_inventory": 150,
                        "main.rc_order_lines": 1490, "main.rc_orders": 490, "main.rc_products": 100,
                        "main.rc_strings": 60, "main.rc_values": 60}
    assert r.rows == sum(r.tables.values())


def test_the_file_is_sound_and_keeps_its_header(seeded: Path) -> None:
    assert _rows(seeded, "PRAGMA integrity_check") == [("ok",)]
    assert _rows(seeded, "PRAGMA foreign_key_check") == []
    assert _rows(seeded, "PRAGMA journal_mode") == [("delete",)]
    assert _rows(seeded, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert _rows(seeded, "PRAGMA user_version") == [(USER_VERSION,)]
    assert dict(_rows(seeded, "SELECT name, seq FROM sqlite_sequence")) == {"rc_customers": 200, "rc_audit": 535}
    kinds = dict(_rows(seeded, "SELECT name, type FROM sqlite_schema WHERE name LIKE 'rc_%'"))
    assert kinds["rc_order_summary"] == "view"
    assert sum(1 for k in kinds.values() if k == "trigger") == 5
    ddl = _rows(seeded, "SELECT sql FROM sqlite_schema WHERE name = 'rc_inventory'")[0][0]
    assert "WITHOUT ROWID" in ddl


def test_storage_classes_are_kept_apart(seeded: Path) -> None:
    rows = _rows(seeded, "SELECT typeof(v), quote(v) FROM rc_values ORDER BY id LIMIT 6")
    assert rows == [("integer", "1"), ("real", "1.0"), ("text", "'1'"), ("blob", "X'01'"),
                    ("null", "NULL"), ("text", "''")]
    # affinity: the text '1' became an integer in the INTEGER and NUMERIC columns, a real in REAL
    assert _rows(seeded, "SELECT typeof(v_int), typeof(v_real), typeof(v_num), typeof(v_text) "
                         "FROM rc_values WHERE id = 3") == [("integer", "real", "integer", "text")]
    nul = _rows(seeded, "SELECT body FROM rc_strings WHERE instr(body, char(0)) > 0")
    assert nul and all("\x00" in r[0] for r in nul)


def test_audit_trail_and_cascades(seeded: Path) -> None:
    ops = dict(_rows(seeded, "SELECT op, count(*) FROM rc_audit GROUP BY op"))
    assert ops == {"INSERT": 500, "UPDATE": 25, "DELETE": 10}
    # every audit row names the one before: an unbroken chain
    assert _rows(seeded, "SELECT count(*) FROM rc_audit a WHERE a.id > 1 AND a.prev_id <> a.id - 1") == [(0,)]
    assert _rows(seeded, "SELECT count(*) FROM rc_order_lines l "
                         "WHERE NOT EXISTS (SELECT 1 FROM rc_orders o WHERE o.id = l.order_id)") == [(0,)]
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn = sqlite3.connect(seeded)
        try:
            conn.execute("DELETE FROM rc_audit WHERE id = 1")
        finally:
            conn.close()


def test_refusal_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO things VALUES (1, 'keep me')")
    conn.commit()
    conn.close()
    before = _sha(path)
    with pytest.raises(TargetNotEmptyError, match="already holds tables"):
        seed(SqliteRef(path))
    assert _sha(path) == before
    assert run_cli(["seed", str(path), "--no-progress"]) == 2
    assert _sha(path) == before


def test_replace_recreates_only_the_dataset(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    seed(SqliteRef(path), seed=3)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO things VALUES (1, 'keep me')")
    conn.execute("CREATE INDEX things_name ON things (name)")
    conn.commit()
    conn.close()
    with pytest.raises(TargetNotEmptyError):
        seed(SqliteRef(path))
    r = seed(SqliteRef(path), replace=True)
    assert "main.things" not in r.tables and "main.rc_orders" in r.tables
    assert _rows(path, "SELECT * FROM things") == [(1, "keep me")]
    assert _rows(path, "SELECT name FROM sqlite_schema WHERE name = 'things_name'") == [("things_name",)]
    fresh = tmp_path / "fresh.db"
    seed(SqliteRef(fresh))
    assert sqlite_digest(path)["tables"] == sqlite_digest(fresh)["tables"]
    assert sqlite_digest(path)["sequences"] == sqlite_digest(fresh)["sequences"]


def test_replace_refuses_when_other_objects_refer_to_the_dataset(seeded: Path) -> None:
    conn = sqlite3.connect(seeded)
    conn.execute("CREATE VIEW my_report AS SELECT count(*) AS n FROM rc_orders")
    conn.commit()
    conn.close()
    before = _sha(seeded)
    with pytest.raises(TargetNotEmptyError, match="my_report"):
        seed(SqliteRef(seeded), replace=True)
    assert _sha(seeded) == before


def test_not_a_database_and_missing_directory_are_bad_input(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("this is not sqlite " * 100)
    with pytest.raises(BadInputError, match="not a SQLite database"):
        seed(SqliteRef(junk))
    with pytest.raises(BadInputError, match="does not exist"):
        seed(SqliteRef(tmp_path / "nope" / "x.db"))
    with pytest.raises(BadInputError, match="directory"):
        seed(SqliteRef(tmp_path))


def test_cli_prints_what_was_loaded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cli.db"
    assert run_cli(["seed", f"sqlite:///{path}", "--scale", "2", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "rc_order_lines" in out and "2,980" in out and "rows/s" in out
    assert run_cli(["seed", str(path), "--replace", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert _rows(path, "SELECT count(*) FROM rc_orders") == [(490,)]
