"""checks.sqlite (pure functions over manifests) and the SQLite temporary-file provisioner."""

from __future__ import annotations

from pathlib import Path

import pytest

from restorecheck.checks.compare import compare_manifests
from restorecheck.checks.sqlite import compare_header, compare_sqlite, self_check_findings
from restorecheck.model import CHECK_IDS, Manifest
from restorecheck.provisioners.sqlite import DIR_PREFIX, temporary_sqlite

HEADER = {"user_version": 7, "application_id": 99, "page_size": 4096, "auto_vacuum": "none",
          "encoding": "UTF-8", "journal_mode": "wal"}


def test_equal_headers_pass() -> None:
    assert compare_header(HEADER, dict(HEADER)) == []


@pytest.mark.parametrize("key", ["user_version", "application_id", "page_size", "auto_vacuum", "encoding"])
def test_header_values_a_copy_must_keep_are_errors(key: str) -> None:
    changed = {**HEADER, key: "other"}
    (f,) = compare_header(HEADER, changed)
    assert (f.check, f.severity, f.object) == ("header", "error", f"header.{key}")
    assert f.details == {"expected": HEADER[key], "restored": "other"}


def test_journal_mode_is_a_warning() -> None:
    (f,) = compare_header(HEADER, {**HEADER, "journal_mode": "rollback"})
    assert (f.check, f.severity) == ("header", "warning")


def test_missing_values_are_not_compared() -> None:
    assert compare_header({"user_version": 1}, {"application_id": 2}) == []


def test_compare_sqlite_only_for_sqlite_manifests() -> None:
    a = Manifest(engine="sqlite", database="a", facts={"header": HEADER})
    b = Manifest(engine="sqlite", database="b", facts={"header": {**HEADER, "user_version": 0}})
    assert [f.object for f in compare_sqlite(a, b)] == ["header.user_version"]
    assert compare_sqlite(Manifest(engine="postgresql", database="a"), b) == []
    # compare_manifests includes it for SQLite manifests
    _, findings = compare_manifests(a, b)
    assert [f.check for f in findings] == ["header"]
    assert "header" in CHECK_IDS and "integrity" in CHECK_IDS


def test_self_checks_clean() -> None:
    facts = {"integrity_check": ["ok"]}
    fks = {"main.b.fk0": {"orphans": 0, "validated": False, "table": "main.b", "parent": "main.a"}}
    assert self_check_findings(facts, fks) == []


def test_self_checks_integrity_problems() -> None:
    facts = {"integrity_check": ["row 3 missing from index i", "wrong # of entries in index i"],
             "read_errors": {"main.t": "database disk image is malformed"}}
    (f,) = self_check_findings(facts, {})
    assert (f.check, f.severity) == ("integrity", "error")
    assert "2 problem(s)" in f.message and "row 3 missing" in f.message and "main.t" in f.message
    assert f.details["read_errors"] == {"main.t": "database disk image is malformed"}


def test_self_checks_open_error_once() -> None:
    (f,) = self_check_findings({}, {}, open_error="file is not a database")
    assert f.check == "integrity" and "file is not a database" in f.message
    assert self_check_findings({}, {}, open_error="file is not a database", open_error_reported=True) == []


def test_self_checks_orphans_are_a_warning() -> None:
    fks = {"main.b.fk0": {"orphans": 2, "validated": False, "table": "main.b", "parent": "main.a",
                          "rowids": [4, 9]}}
    (f,) = self_check_findings({"integrity_check": ["ok"]}, fks)
    assert (f.check, f.severity, f.details["rowids"]) == ("fk_orphans", "warning", [4, 9])


def test_orphans_beyond_the_reference_are_errors() -> None:
    ref = Manifest(engine="sqlite", database="a",
                   fk_orphans={"main.b.fk0": {"orphans": 1, "validated": False, "table": "main.b"}})
    same = Manifest(engine="sqlite", database="b",
                    fk_orphans={"main.b.fk0": {"orphans": 1, "validated": False, "table": "main.b"}})
    more = Manifest(engine="sqlite", database="b",
                    fk_orphans={"main.b.fk0": {"orphans": 3, "validated": False, "table": "main.b"}})
    assert compare_manifests(ref, same)[1] == []
    (f,) = compare_manifests(ref, more)[1]
    assert (f.check, f.severity) == ("fk_orphans", "error")


def test_temporary_sqlite_is_private_and_removed(tmp_path: Path) -> None:
    with temporary_sqlite(tmp_path) as path:
        assert path.parent.name.startswith(DIR_PREFIX) and not path.exists()
        assert (path.parent.stat().st_mode & 0o777) == 0o700
        path.write_bytes(b"x")
        path.with_name(path.name + "-wal").write_bytes(b"y")
    assert not path.parent.exists()


def test_temporary_sqlite_removed_on_error(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), temporary_sqlite(tmp_path) as path:
        path.write_bytes(b"x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_temporary_sqlite_keep(tmp_path: Path) -> None:
    with temporary_sqlite(tmp_path, keep=True) as path:
        path.write_bytes(b"x")
    assert path.exists()
