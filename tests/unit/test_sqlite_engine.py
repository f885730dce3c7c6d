"""The SQLite engine through its methods, on small databases built in tmp_path (no server needed).

Each fault is made in a copy of a real backup and must be judged by the right check id; the clean
case must pass. Comparisons go through the shared ``checks.compare.compare_manifests`` (which
adds ``checks.sqlite.compare_sqlite`` for SQLite manifests), as the pipeline does.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from restorecheck.checks import registry
from restorecheck.checks.compare import compare_manifests
from restorecheck.checks.registry import CheckContext
from restorecheck.dburl import SqliteRef
from restorecheck.engines import get_engine
from restorecheck.engines.base import BackupOptions, FingerprintOptions, RestoreOptions
from restorecheck.engines.sqlite import (
    CHECKSUM_MODE,
    SqliteEngine,
    _sha256_file,
    differing_keys,
    quote_identifier,
)
from restorecheck.errors import BackupNotFoundError, BadInputError, UnknownFormatError
from restorecheck.model import BackupArtifact, Finding, Manifest
from tests.conftest import sha
from tests.conftest import sqlite_script as sql

SMALL = FingerprintOptions(range_rows=500, max_ranges=8)


def build_db(path: Path, *, books: int = 1200) -> Path:
    """A small database with what breaks SQLite backups: FKs, AUTOINCREMENT, WITHOUT ROWID,
    an index, a view, a trigger, FTS5, mixed storage classes, NUL in text, header values."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        PRAGMA user_version = 42;
        PRAGMA application_id = 1234567;
        CREATE TABLE authors(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL);
        CREATE TABLE books(id INTEGER PRIMARY KEY, author_id INTEGER REFERENCES authors(id),
                           title TEXT, price REAL, cover BLOB, anything);
        CREATE INDEX books_author ON books(author_id);
        CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
        CREATE VIEW cheap_books AS SELECT title FROM books WHERE price < 10;
        CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, book_id INTEGER, at TEXT);
        CREATE TRIGGER books_audit AFTER INSERT ON books BEGIN
            INSERT INTO audit(book_id, at) VALUES (new.id, 'x');
        END;
        CREATE VIRTUAL TABLE notes USING fts5(body);
        """
    )
    conn.executemany("INSERT INTO authors(name) VALUES (?)", [(f"author {i}",) for i in range(40)])
    kinds: list[object] = [1, 1.0, "1", b"\x01", None, "zero\x00byte", 2**62, -0.0]
    conn.executemany(
        "INSERT INTO books VALUES (?, ?, ?, ?, ?, ?)",
        [(i, i % 40 + 1, f"title {i}", i * 1.25, bytes([i % 256, 0, 255]), kinds[i % len(kinds)])
         for i in range(1, books + 1)],
    )
    conn.executemany("INSERT INTO kv VALUES (?, ?)", [(f"k{i:05d}", i * 0.5) for i in range(700)])
    conn.executemany("INSERT INTO notes(body) VALUES (?)", [(f"note number {i}",) for i in range(60)])
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def engine() -> SqliteEngine:
    return SqliteEngine()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return build_db(tmp_path / "app.db")


@pytest.fixture
def backup(engine: SqliteEngine, source: Path, tmp_path: Path) -> tuple[BackupArtifact, Manifest]:
    return engine.backup(SqliteRef(source), tmp_path / "out", BackupOptions(name="app", fingerprint=SMALL))


@contextlib.contextmanager
def restored(engine: SqliteEngine, path: Path) -> Iterator[tuple[list[Finding], Manifest, list[Finding]]]:
    """Restore ``path``, fingerprint the copy: (restore findings, manifest, self-check findings)."""
    art = BackupArtifact(str(path), "sqlite", path.stat().st_size, None)
    with contextlib.ExitStack() as stack:
        out = engine.restore(art, RestoreOptions(), stack)
        manifest = engine.fingerprint(out.restored, SMALL)
        yield registry.convert(out.evidence), manifest, registry.run("self", CheckContext(
            "sqlite", restored=engine.self_check_facts(out.restored, manifest), evidence=out.evidence))


def verify(engine: SqliteEngine, path: Path, reference: Manifest) -> list[Finding]:
    """Everything the pipeline would report for ``path`` against ``reference``."""
    with restored(engine, path) as (restore_findings, manifest, self_findings):
        _, compared = compare_manifests(reference, manifest)
        return [*restore_findings, *self_findings, *compared]


def errors(findings: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in findings:
        if f.severity == "error":
            out.setdefault(f.check, []).append(f)
    return out


def faulty_copy(art: BackupArtifact, tmp_path: Path, script: str) -> Path:
    bad = tmp_path / "bad.db"
    bad.write_bytes(Path(art.path).read_bytes())
    sql(bad, script)
    return bad


# --- format, names ----------------------------------------------------------------------------


def test_registry_and_detect_format(engine: SqliteEngine, source: Path, tmp_path: Path) -> None:
    assert get_engine("sqlite").name == "sqlite"
    assert engine.detect_format(source) == "sqlite"
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database\n")
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert engine.detect_format(text) is None
    assert engine.detect_format(empty) is None
    assert engine.detect_format(tmp_path) is None
    assert engine.detect_format(tmp_path / "missing.db") is None


def test_quote_identifier() -> None:
    assert quote_identifier('we"ird') == '"we""ird"'
    assert quote_identifier("plain") == '"plain"'


# --- the clean case ---------------------------------------------------------------------------


def test_clean_backup_passes(engine: SqliteEngine, source: Path,
                             backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    assert Path(art.path).name == "app.db" and art.format == "sqlite" and art.sha256
    assert (Path(art.path).parent / "app.manifest.json").exists()
    assert Manifest.load(Path(art.path).parent / "app.manifest.json").to_dict() == manifest.to_dict()
    names = {t.name: t for t in manifest.tables}
    # virtual table counted once, its shadow tables not at all; internal tables skipped
    assert set(names) == {"main.authors", "main.books", "main.kv", "main.audit", "main.notes"}
    assert names["main.books"].rows == 1200 and names["main.books"].ranges
    assert names["main.kv"].kind == "without_rowid" and names["main.kv"].key == ("k",)
    assert names["main.notes"].kind == "virtual" and names["main.notes"].rows == 60
    assert all(t.checksum_mode == CHECKSUM_MODE for t in manifest.tables)
    assert manifest.facts["header"]["user_version"] == 42
    assert manifest.facts["header"]["application_id"] == 1234567
    assert manifest.sequences["main.authors"]["last_value"] == 40
    assert set(manifest.schema["views"]) == {"main.cheap_books"}
    assert set(manifest.schema["triggers"]) == {"main.books_audit"}
    assert set(manifest.schema["indexes"]) == {"main.books_author"}
    assert manifest.schema["virtual_tables"]["main.notes"]["shadow_tables"]
    assert manifest.fk_orphans == {"main.books.fk0": {"orphans": 0, "validated": False, "table": "main.books",
                                                      "parent": "main.authors", "rowids": []}}
    findings = verify(engine, Path(art.path), manifest)
    assert [f for f in findings if f.severity == "error"] == []
    # a live snapshot of the source equals the backup's manifest
    live = engine.fingerprint(SqliteRef(source), SMALL)
    _, compared = compare_manifests(live, manifest)
    assert compared == [] and live.facts["integrity_check"] == ["ok"]


def test_backup_never_overwrites(engine: SqliteEngine, source: Path, tmp_path: Path,
                                 backup: tuple[BackupArtifact, Manifest]) -> None:
    with pytest.raises(BadInputError, match="already exists"):
        engine.backup(SqliteRef(source), tmp_path / "out", BackupOptions(name="app"))


def test_checksum_tells_storage_classes_apart(engine: SqliteEngine, tmp_path: Path) -> None:
    values: list[object] = [1, 1.0, "1", b"\x01", b"1", None, "", "a\x00b", "a\x00c", 0.1 + 0.2, 0.3]
    sums = []
    for i, v in enumerate(values):
        p = tmp_path / f"v{i}.db"
        sql(p, "CREATE TABLE t(x)")
        conn = sqlite3.connect(p)
        conn.execute("INSERT INTO t VALUES (?)", (v,))
        conn.commit()
        conn.close()
        (t,) = engine.fingerprint(SqliteRef(p), SMALL).tables
        sums.append(t.checksum)
    assert len(set(sums)) == len(values), "every value must hash differently"


def test_checksum_independent_of_physical_order(engine: SqliteEngine, tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    sql(a, "CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES (1,'x'),(2,'y'),(3,'z');")
    sql(b, "PRAGMA page_size=1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v);"
           "INSERT INTO t VALUES (3,'z'); INSERT INTO t VALUES (1,'x'); INSERT INTO t VALUES (2,'y'); VACUUM;")
    fa = engine.fingerprint(SqliteRef(a), SMALL).tables[0]
    fb = engine.fingerprint(SqliteRef(b), SMALL).tables[0]
    assert fa.checksum == fb.checksum


# --- each fault, judged by the right check ----------------------------------------------------


def test_deleted_row_is_row_count(engine: SqliteEngine, tmp_path: Path,
                                  backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    bad = faulty_copy(art, tmp_path, "DELETE FROM books WHERE id = 777;")
    errs = errors(verify(engine, bad, manifest))
    (f,) = errs["row_count"]
    assert f.object == "main.books" and f.details["rows_expected"] == 1200 and f.details["rows_restored"] == 1199
    (rng,) = f.details["ranges"]  # narrowed to the one rowid bucket holding 777
    assert rng["lower"][0] <= 777 <= rng["upper"][0]
    assert differing_keys(Path(art.path), bad, "main.books") == [777]


def test_changed_value_is_checksum_with_the_rowid(engine: SqliteEngine, tmp_path: Path,
                                                  backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    bad = faulty_copy(art, tmp_path, "UPDATE books SET price = price + 0.01 WHERE id = 1001;")
    errs = errors(verify(engine, bad, manifest))
    assert set(errs) == {"checksum"}
    (f,) = errs["checksum"]
    assert f.object == "main.books"
    (rng,) = f.details["ranges"]
    assert rng["lower"][0] <= 1001 <= rng["upper"][0]
    assert differing_keys(Path(art.path), bad, "main.books", lower=rng["lower"][0],
                          upper=rng["upper"][0]) == [1001]


def test_same_text_other_storage_class_is_checksum(engine: SqliteEngine, tmp_path: Path,
                                                   backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    # row 8 holds the integer 1 in the untyped column; make it the text '1'
    bad = faulty_copy(art, tmp_path, "UPDATE books SET anything = CAST(anything AS TEXT) WHERE id = 8;")
    conn = sqlite3.connect(bad)
    assert conn.execute("SELECT typeof(anything), anything = '1' FROM books WHERE id = 8").fetchone() == ("text", 1)
    conn.close()
    errs = errors(verify(engine, bad, manifest))
    assert set(errs) == {"checksum"} and errs["checksum"][0].object == "main.books"
    assert differing_keys(Path(art.path), bad, "main.books") == [8]


def test_without_rowid_change_is_checksum(engine: SqliteEngine, tmp_path: Path,
                                          backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    bad = faulty_copy(art, tmp_path, "UPDATE kv SET v = 'changed' WHERE k = 'k00300';")
    errs = errors(verify(engine, bad, manifest))
    (f,) = errs["checksum"]
    assert f.object == "main.kv" and len(f.details["ranges"]) == 1
    assert differing_keys(Path(art.path), bad, "main.kv") == ["k00300"]


def test_orphan_row_is_fk_orphans(engine: SqliteEngine, tmp_path: Path,
                                  backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    bad = faulty_copy(art, tmp_path, "PRAGMA foreign_keys = OFF; INSERT INTO books(id, author_id) VALUES (5000, 999);")
    errs = errors(verify(engine, bad, manifest))
    (f,) = errs["fk_orphans"]
    assert f.object == "main.books.fk0" and f.details["orphans_restored"] == 1
    assert f.details["orphans_expected"] == 0


def test_orphans_already_in_the_source_pass(engine: SqliteEngine, tmp_path: Path) -> None:
    src = build_db(tmp_path / "orphans.db")
    sql(src, "INSERT INTO books(id, author_id) VALUES (9000, 777);")  # foreign_keys is off by default
    art, manifest = engine.backup(SqliteRef(src), tmp_path / "o", BackupOptions(name="o", fingerprint=SMALL))
    assert manifest.fk_orphans["main.books.fk0"]["orphans"] == 1
    findings = verify(engine, Path(art.path), manifest)
    assert errors(findings) == {}
    warned = [f for f in findings if f.check == "fk_orphans"]
    assert warned and warned[0].severity == "warning" and warned[0].details["rowids"] == [9000]


def test_lost_header_value_is_header(engine: SqliteEngine, tmp_path: Path,
                                     backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    bad = faulty_copy(art, tmp_path, "PRAGMA user_version = 0;")
    errs = errors(verify(engine, bad, manifest))
    assert set(errs) == {"header"}
    (f,) = errs["header"]
    assert f.object == "header.user_version" and (f.details["expected"], f.details["restored"]) == (42, 0)
    bad2 = faulty_copy(art, tmp_path, "PRAGMA application_id = 0;")  # overwrites bad.db
    assert {f.object for f in errors(verify(engine, bad2, manifest))["header"]} == {"header.application_id"}


def test_lost_sqlite_sequence_is_sequence(engine: SqliteEngine, tmp_path: Path,
                                          backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    bad = faulty_copy(art, tmp_path, "DELETE FROM sqlite_sequence WHERE name = 'authors';")
    errs = errors(verify(engine, bad, manifest))
    assert set(errs) == {"sequence"} and errs["sequence"][0].object == "main.authors"


def test_dropped_trigger_and_view_are_schema(engine: SqliteEngine, tmp_path: Path,
                                             backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    bad = faulty_copy(art, tmp_path, "DROP TRIGGER books_audit; DROP VIEW cheap_books; DROP INDEX books_author;")
    errs = errors(verify(engine, bad, manifest))
    assert set(errs) == {"schema"}
    text = " ".join(f.object + " " + f.message for f in errs["schema"])
    assert "books_audit" in text and "cheap_books" in text and "books_author" in text


def test_truncated_file_is_integrity_not_a_crash(engine: SqliteEngine, tmp_path: Path,
                                                 backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    data = Path(art.path).read_bytes()
    bad = tmp_path / "truncated.db"
    bad.write_bytes(data[: len(data) // 2])
    errs = errors(verify(engine, bad, manifest))
    assert "integrity" in errs or "restore_errors" in errs
    assert errs  # and the verdict fails


def test_header_only_file_is_restore_errors(engine: SqliteEngine, tmp_path: Path,
                                            backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    bad = tmp_path / "stub.db"
    bad.write_bytes(Path(art.path).read_bytes()[:40])  # the magic string and not much else
    findings = verify(engine, bad, manifest)
    errs = errors(findings)
    assert "restore_errors" in errs or "integrity" in errs
    assert "table_missing" in errs


def test_damaged_page_is_integrity(engine: SqliteEngine, tmp_path: Path,
                                   backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    bad = tmp_path / "damaged.db"
    data = bytearray(Path(art.path).read_bytes())
    conn = sqlite3.connect(art.path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'books_author'").fetchone()
    conn.close()
    start = (root - 1) * page_size
    assert data[start] in (0x02, 0x0A)  # an index b-tree page
    data[start + 8 : start + page_size // 2] = b"\xa5" * (page_size // 2 - 8)
    bad.write_bytes(bytes(data))
    errs = errors(verify(engine, bad, manifest))
    assert "integrity" in errs
    assert errs["integrity"][0].details.get("problems") or errs["integrity"][0].details.get("error")


def test_not_sqlite_is_unknown_format(engine: SqliteEngine, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("PGDMP? no: just text\n")
    art = BackupArtifact(str(junk), "sqlite", junk.stat().st_size, None)
    with pytest.raises(UnknownFormatError), contextlib.ExitStack() as stack:
        engine.restore(art, RestoreOptions(), stack)
    with pytest.raises(UnknownFormatError):
        engine.fingerprint(SqliteRef(junk), SMALL)
    with pytest.raises(UnknownFormatError):
        engine.backup(SqliteRef(junk), tmp_path / "o", BackupOptions())
    with pytest.raises(BackupNotFoundError):
        engine.fingerprint(SqliteRef(tmp_path / "nope.db"), SMALL)


# --- sources: read only, WAL, concurrent writers -----------------------------------------------


def test_backup_leaves_source_bytes_unchanged(engine: SqliteEngine, source: Path, tmp_path: Path) -> None:
    before = sha(source)
    engine.backup(SqliteRef(source), tmp_path / "o1", BackupOptions(name="x"))
    engine.fingerprint(SqliteRef(source), SMALL)
    assert sha(source) == before
    assert not source.with_name(source.name + "-journal").exists()


def test_wal_source_with_uncheckpointed_writes(engine: SqliteEngine, tmp_path: Path) -> None:
    src = build_db(tmp_path / "wal.db")
    writer = sqlite3.connect(src, isolation_level=None)
    try:
        writer.execute("PRAGMA journal_mode = WAL")
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        writer.execute("INSERT INTO books(id, title) VALUES (424242, 'only in the wal')")
        writer.execute("UPDATE kv SET v = 'wal' WHERE k = 'k00001'")
        writer.execute("PRAGMA user_version = 43")
        wal = src.with_name("wal.db-wal")
        assert wal.stat().st_size > 0
        before = (sha(src), sha(wal))
        art, manifest = engine.backup(SqliteRef(src), tmp_path / "o", BackupOptions(name="w", fingerprint=SMALL))
        assert (sha(src), sha(wal)) == before, "the source's bytes must not change"
        books = manifest.table("main.books")
        assert books is not None and books.rows == 1201
        assert manifest.facts["header"]["user_version"] == 43
        assert manifest.facts["header"]["journal_mode"] == "wal"
        assert manifest.facts["source_wal_bytes"] > 0
        copy = sqlite3.connect(f"file:{art.path}?mode=ro&immutable=1", uri=True)
        assert copy.execute("SELECT title FROM books WHERE id = 424242").fetchone() == ("only in the wal",)
        copy.close()
        assert errors(verify(engine, Path(art.path), manifest)) == {}
        live = engine.fingerprint(SqliteRef(src), SMALL)
        assert compare_manifests(live, manifest)[1] == []
        assert (sha(src), sha(wal)) == before
    finally:
        writer.close()


def test_writer_during_stepped_backup_does_not_tear_it(engine: SqliteEngine, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import restorecheck.engines.sqlite as mod

    src = build_db(tmp_path / "busy.db", books=3000)
    sql(src, "PRAGMA journal_mode = WAL;")
    writer = sqlite3.connect(src, isolation_level=None)
    monkeypatch.setattr(mod, "BACKUP_STEP_PAGES", 5)
    writes = 0

    def progress(task: str, done: float, total: float | None) -> None:
        nonlocal writes
        if task == "backup" and writes < 5:
            writer.execute("INSERT INTO kv VALUES (?, 'late')", (f"late{writes}",))
            writes += 1

    try:
        art, manifest = engine.backup(SqliteRef(src), tmp_path / "o", BackupOptions(
            name="b", fingerprint=SMALL, progress=progress))
    finally:
        writer.close()
    assert writes == 5
    kv = manifest.table("main.kv")
    assert kv is not None and kv.rows == 700  # the snapshot of the backup's read transaction
    assert errors(verify(engine, Path(art.path), manifest)) == {}


def test_restore_is_a_private_copy_removed_afterwards(engine: SqliteEngine,
                                                      backup: tuple[BackupArtifact, Manifest]) -> None:
    art, _ = backup
    before = sha(Path(art.path))
    with contextlib.ExitStack() as stack:
        out = engine.restore(art, RestoreOptions(), stack)
        assert isinstance(out.restored, SqliteRef)
        copy = Path(out.restored.path)
        assert copy.exists() and copy != Path(art.path)
        sql(copy, "DELETE FROM books;")  # whatever happens to the copy ...
    assert not copy.parent.exists()
    assert sha(Path(art.path)) == before  # ... the backup is untouched
    assert sorted(p.name for p in Path(art.path).parent.iterdir()) == ["app.db", "app.manifest.json"]


def test_wal_file_beside_a_backup_is_a_warning(engine: SqliteEngine, tmp_path: Path) -> None:
    src = build_db(tmp_path / "hot.db")
    writer = sqlite3.connect(src, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("INSERT INTO books(id, title) VALUES (99999, 'in wal')")
    copy_dir = tmp_path / "filecopy"
    copy_dir.mkdir()
    (copy_dir / "hot.db").write_bytes(src.read_bytes())  # the classic file-copy backup (PITFALLS H2)
    (copy_dir / "hot.db-wal").write_bytes(src.with_name("hot.db-wal").read_bytes())
    writer.close()
    with restored(engine, copy_dir / "hot.db") as (restore_findings, manifest, _):
        assert [f.check for f in restore_findings] == ["backup_file"]
        books = manifest.table("main.books")
        assert books is not None and books.rows == 1201


def test_self_checks_without_integrity_fact_runs_it(engine: SqliteEngine,
                                                    backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    assert manifest.facts["integrity_check"] is None  # not run at backup time (verify runs it)
    checked = engine.self_check_facts(SqliteRef(Path(art.path)), manifest)
    assert checked.facts["integrity_check"] == ["ok"]
    assert registry.run("self", CheckContext("sqlite", restored=checked)) == []


def test_schema_only_fingerprint(engine: SqliteEngine, source: Path) -> None:
    m = engine.fingerprint(SqliteRef(source), FingerprintOptions(schema_only=True))
    assert m.tables == () and m.schema["tables"]


# --- narrowing a difference down to keys ------------------------------------------------------


def test_narrow_lists_the_exact_rowids(engine: SqliteEngine, tmp_path: Path,
                                       backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    bad = faulty_copy(art, tmp_path, "UPDATE books SET title = 'x' WHERE id IN (5, 900);"
                                     "UPDATE kv SET v = x'01' WHERE k = 'k00010';")
    findings = verify(engine, bad, manifest)
    narrowed = engine.narrow(SqliteRef(Path(art.path)), SqliteRef(bad), findings)
    keys = {f.object: f.details["keys"] for f in narrowed if f.check == "checksum"}
    assert keys == {"main.books": [5, 900], "main.kv": ["k00010"]}


def test_ranges_from_the_reference_align_the_ranges(engine: SqliteEngine, tmp_path: Path,
                                                    backup: tuple[BackupArtifact, Manifest]) -> None:
    art, manifest = backup
    # deleting the top rows changes the rowid span, so a fresh grid would be finer than the reference's
    bad = faulty_copy(art, tmp_path, "DELETE FROM books WHERE id > 1000; UPDATE books SET price = 0 WHERE id = 3;")
    own = engine.fingerprint(SqliteRef(bad), SMALL).table("main.books")
    ref = manifest.table("main.books")
    assert own is not None and ref is not None
    assert [r.lower for r in own.ranges] != [r.lower for r in ref.ranges]
    aligned = engine.fingerprint(SqliteRef(bad), SMALL, ranges_from=manifest)
    books = aligned.table("main.books")
    assert books is not None and books.checksum == own.checksum  # the table checksum ignores ranges
    _, compared = compare_manifests(manifest, aligned)
    (f,) = [f for f in compared if f.object == "main.books"]
    assert f.check == "row_count"
    differing = [(r["lower"][0], r["upper"][0]) for r in f.details["ranges"]]
    assert differing[0][0] <= 3 <= differing[0][1]  # the changed row's range
    assert all(lo > 3 for lo, _ in differing[1:])  # and the ranges that lost rows, nothing else


def test_manifest_describes_the_source_so_a_damaged_copy_is_caught(
        engine: SqliteEngine, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = SqliteEngine._online_backup

    def damaging(self: SqliteEngine, src_path: Path, dest: Path, options: BackupOptions,
                 phases: dict[str, float] | None = None) -> tuple[Manifest, tuple[int, str]]:
        manifest, _ = original(self, src_path, dest, options, phases)
        sql(dest, "UPDATE books SET title = 'flipped' WHERE id = 42;")  # the copy went wrong on its way
        return manifest, _sha256_file(dest)  # the damage is in the file as hashed

    monkeypatch.setattr(SqliteEngine, "_online_backup", damaging)
    art, manifest = engine.backup(SqliteRef(source), tmp_path / "d", BackupOptions(name="d", fingerprint=SMALL))
    assert manifest.facts["manifest_of"].startswith("the source")
    errs = errors(verify(engine, Path(art.path), manifest))
    assert set(errs) == {"checksum"} and errs["checksum"][0].object == "main.books"


# --- awkward names and shapes -----------------------------------------------------------------


def test_awkward_paths_names_and_shapes(engine: SqliteEngine, tmp_path: Path) -> None:
    where = tmp_path / "dir with space #1 %41 ?x"
    where.mkdir()
    db = where / "we'ird name.db"
    sql(db, """
        CREATE TABLE "odd ""table"" name" ("sp ace" TEXT, "quo""te" INTEGER);
        INSERT INTO "odd ""table"" name" VALUES ('a', 1), ('b', 2);
        CREATE TABLE shadowed(rowid TEXT, oid TEXT, _rowid_ TEXT);
        INSERT INTO shadowed VALUES ('x', 'y', 'z'), ('x', 'y', 'z'), ('p', 'q', 'r');
        CREATE TABLE desc_pk(id INTEGER PRIMARY KEY DESC, v);
        INSERT INTO desc_pk VALUES (1, 'one'), (2, 'two');
        CREATE TABLE strict_t(id INTEGER PRIMARY KEY, n INTEGER, g INTEGER GENERATED ALWAYS AS (n * 2) VIRTUAL) STRICT;
        INSERT INTO strict_t(id, n) VALUES (1, 21);
        CREATE TABLE pairs(a, b, v, PRIMARY KEY (a, b)) WITHOUT ROWID;
        INSERT INTO pairs VALUES (1, 'x', 1), (1, 'y', 2), ('1', 'x', 3), (x'01', 0, 4);
    """)
    art, manifest = engine.backup(SqliteRef(db), tmp_path / "o", BackupOptions(name="w", fingerprint=SMALL))
    tables = {t.name: t for t in manifest.tables}
    assert tables['main.odd "table" name'].rows == 2
    assert tables["main.shadowed"].rows == 3 and tables["main.shadowed"].key == ()  # duplicates kept
    assert tables["main.desc_pk"].key == ("rowid",)  # DESC: not a rowid alias
    assert tables["main.strict_t"].key == ("id",) and tables["main.strict_t"].extra == {"strict": True}
    assert tables["main.pairs"].key == ("a", "b") and tables["main.pairs"].rows == 4
    assert errors(verify(engine, Path(art.path), manifest)) == {}
    bad = faulty_copy(art, tmp_path, "UPDATE pairs SET v = 9 WHERE a = '1';")  # the text '1', not the integer
    errs = errors(verify(engine, bad, manifest))
    assert [f.object for f in errs["checksum"]] == ["main.pairs"]
    assert differing_keys(Path(art.path), bad, "main.pairs") == [["1", "x"]]


@pytest.mark.parametrize("python", ["/nonexistent/python", "/bin/false"], ids=["missing", "failing"])
def test_side_checks_fall_back_in_process(engine: SqliteEngine, tmp_path: Path, python: str,
                                          backup: tuple[BackupArtifact, Manifest],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import restorecheck.engines.sqlite as mod

    art, manifest = backup
    bad = faulty_copy(art, tmp_path, "PRAGMA foreign_keys = OFF; INSERT INTO books(id, author_id) VALUES (5000, 999);")
    monkeypatch.setattr(mod.sys, "executable", python)
    errs = errors(verify(engine, bad, manifest))
    assert errs["fk_orphans"][0].object == "main.books.fk0"
    with restored(engine, Path(art.path)) as (_, restored_manifest, self_findings):
        assert restored_manifest.facts["integrity_check"] == ["ok"] and self_findings == []


def test_checksum_of_text_that_is_not_utf8(engine: SqliteEngine, tmp_path: Path) -> None:
    sums = set()
    for i, expr in enumerate(["CAST(x'ff00fe' AS TEXT)", "CAST(x'ff00fd' AS TEXT)", "x'ff00fe'", "'ff00fe'"]):
        p = tmp_path / f"u{i}.db"
        sql(p, f"CREATE TABLE t(x); INSERT INTO t VALUES ({expr});")
        (t,) = engine.fingerprint(SqliteRef(p), SMALL).tables
        assert t.readable and t.rows == 1
        sums.add(t.checksum)
    assert len(sums) == 4


def test_a_small_private_copy_is_made_in_memory_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The restored copy of a small SQLite backup goes to /dev/shm when it is a tmpfs with room (the
    rule of small throwaway clusters), to TMPDIR when that is set; removed either way."""
    from restorecheck import pipeline
    from restorecheck.provisioners.local import MEMORY_DIR, memory_parent

    monkeypatch.delenv("TMPDIR", raising=False)
    if memory_parent(1 << 20, None, base=0, factor=1) is None:
        pytest.skip("/dev/shm is not a tmpfs with room on this machine")
    db = tmp_path / "small.db"
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t(v) VALUES (1), (2.5), ('x');")
    result = pipeline.backup(SqliteRef(db), tmp_path / "out")
    report = pipeline.verify(result.artifact.path)
    assert report.verdict == "pass"
    assert report.extra["restore"]["copy_on"] == "memory (tmpfs)"
    copy_dir = Path(report.extra["restore"]["copy"]).parent
    assert copy_dir.parent == MEMORY_DIR and copy_dir.name.startswith("restorecheck-sqlite-")
    assert not copy_dir.exists(), "the private copy is removed"
    work = tmp_path / "tmp"
    work.mkdir()
    monkeypatch.setenv("TMPDIR", str(work))
    monkeypatch.setattr("tempfile.tempdir", None)
    report = pipeline.verify(result.artifact.path)
    assert report.verdict == "pass" and report.extra["restore"]["copy_on"] == "disk"
    assert Path(report.extra["restore"]["copy"]).is_relative_to(work) and list(work.iterdir()) == []


def test_backup_warns_of_a_table_the_manifest_could_not_read(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A source table with a damaged page is copied by the backup API page for page, so the backup
    succeeds; its manifest has no count or checksum for that table, and the backup says so now
    (one line naming the table and the reason), not at the first verify."""
    import sqlite3

    from restorecheck.cli import run_cli

    src = tmp_path / "src.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE fine (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("INSERT INTO fine VALUES (1, 'x')")
    conn.execute("CREATE TABLE damaged (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO damaged VALUES (?, ?)", [(i, "v" * 200) for i in range(2000)])
    conn.commit()
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    data = bytearray(src.read_bytes())
    last = (pages - 1) * page_size  # a leaf page of the damaged table (the last one written)
    data[last:last + 8] = b"\xff" * 8  # not a b-tree page type any more
    src.write_bytes(bytes(data))
    rc = run_cli(["backup", str(src), "-o", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0
    warnings = [line for line in err.splitlines() if line.startswith("restorecheck: warning:")]
    assert len(warnings) == 1, err
    assert "main.damaged has no count or checksum" in warnings[0] and "malformed" in warnings[0]
    assert "main.fine" not in err


KEY_SHAPES = {
    # (create, rows): keys a manifest cannot store as they are, or Python cannot decode
    "text key not UTF-8": ("CREATE TABLE t (k TEXT PRIMARY KEY, v) WITHOUT ROWID",
                           [(f"k{i:05}", i) for i in range(300)] + [(b"\xff\xfe".decode("latin-1"), -1)]),
    "infinite real keys": ("CREATE TABLE t (k REAL PRIMARY KEY, v) WITHOUT ROWID",
                           [(float("-inf"), 0), (float("inf"), 1)] + [(i / 3, i) for i in range(300)]),
    "blob keys": ("CREATE TABLE t (k BLOB PRIMARY KEY, v) WITHOUT ROWID",
                  [(bytes([i // 256, i % 256]), i) for i in range(300)]),
    "every rowid name a column": ("CREATE TABLE t (rowid, _rowid_, oid)",
                                  [(i, f"x{i}", i % 2) for i in range(300)] + [("bad", "y", 0)]),
}


@pytest.mark.parametrize("shape", sorted(KEY_SHAPES))
@pytest.mark.parametrize("range_rows", [100_000, 100])
def test_keys_a_manifest_cannot_store_or_python_cannot_decode(tmp_path: Path, shape: str, range_rows: int) -> None:
    """A healthy table was reported unreadable (a text key that is not UTF-8: "Could not decode"), or
    its manifest could not be read back (an infinite REAL key range bound written as -Infinity) or
    its ranges were wrong (a blob bound stored as hex text). Such a table is checksummed whole, as
    the reference does, and without key ranges when a bound could not be stored as it is."""
    import json

    from restorecheck.engines.sqlite import read_tables, reference_checksum
    from tests.unit.test_sqlite_native import sql_encoding

    path = tmp_path / "k.db"
    conn = sqlite3.connect(path)
    create, rows = KEY_SHAPES[shape]
    conn.execute(create)
    conn.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(rows[0]))})", rows)
    if shape == "text key not UTF-8":
        conn.execute("UPDATE t SET k = CAST(x'ff41' AS TEXT) WHERE v = -1")
    if shape == "every rowid name a column":
        conn.execute("UPDATE t SET _rowid_ = CAST(x'c3' AS TEXT) WHERE rowid = 'bad'")
    conn.commit()
    (info,) = read_tables(conn)
    decodable = shape not in ("text key not UTF-8", "every rowid name a column")
    want = reference_checksum(conn, info) if decodable else None  # the Python reference decodes text
    conn.close()
    m = SqliteEngine().fingerprint(SqliteRef(path), FingerprintOptions(range_rows=range_rows))
    t = m.table("main.t")
    assert t is not None and t.readable, t.note if t else None
    if want is not None:
        assert (t.rows, t.checksum) == want
    with sql_encoding():  # the other implementation, and the whole table in any case
        by_sql = SqliteEngine().fingerprint(SqliteRef(path), FingerprintOptions(range_rows=10**9)).table("main.t")
    assert by_sql is not None and (t.rows, t.checksum) == (by_sql.rows, by_sql.checksum) == (len(rows), t.checksum)
    text = json.dumps(m.to_dict(), allow_nan=False)  # a manifest strict JSON can read back
    back = Manifest.from_dict(json.loads(text))
    assert back.table("main.t") == t
    if shape in ("infinite real keys", "blob keys", "text key not UTF-8"):
        assert t.ranges == ()


def test_a_sqlite_sequence_that_is_not_an_integer(tmp_path: Path) -> None:
    """sqlite_sequence is an ordinary table: seq can be text. Backup wrote it into the manifest as a
    string, which verify then rejected (exit 2) and drill failed on (an internal error). It is kept
    as its type and bytes, and a change of it is still a difference."""
    import json

    from restorecheck import pipeline

    src = tmp_path / "seq.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, v)")
    conn.execute("INSERT INTO a (v) VALUES (1)")
    conn.execute("UPDATE sqlite_sequence SET seq = 'text'")
    conn.commit()
    conn.close()
    result = pipeline.backup(SqliteRef(src), tmp_path / "out", BackupOptions())
    saved = json.loads(Path(result.manifest_path).read_text())
    assert saved["sequences"]["main.a"]["last_value"] is None and saved["sequences"]["main.a"]["raw"] == "text:74657874"
    report = pipeline.verify(result.artifact.path, restore=RestoreOptions())
    assert report.verdict == "pass", [f.message for f in report.findings]
    assert pipeline.drill(SqliteRef(src), restore=RestoreOptions()).verdict == "pass"
    changed = tmp_path / "changed.db"
    Path(changed).write_bytes(Path(result.artifact.path).read_bytes())
    conn = sqlite3.connect(changed)
    conn.execute("UPDATE sqlite_sequence SET seq = 'other'")
    conn.commit()
    conn.close()
    report = pipeline.verify(str(changed), manifest=result.manifest, restore=RestoreOptions())
    assert [(f.check, f.object) for f in report.findings if f.severity == "error" and f.check == "sequence"] == [
        ("sequence", "main.a")]


def _app_defined(path: Path) -> None:
    """A database whose application defines a collation (Android's LOCALIZED) and a function used by
    an index: restorecheck has neither."""
    conn = sqlite3.connect(path)
    conn.create_collation("LOCALIZED", lambda a, b: (a > b) - (a < b))
    conn.create_function("myfn", 1, lambda x: x * 2, deterministic=True)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT COLLATE LOCALIZED, n INT)")
    conn.execute("CREATE INDEX t_name ON t (name)")
    conn.execute("CREATE INDEX t_fn ON t (myfn(n))")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"n{i}", i) for i in range(100)])
    conn.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("CREATE INDEX u_v ON u (v)")
    conn.executemany("INSERT INTO u VALUES (?, ?)", [(i, "v" * 100 + str(i)) for i in range(3000)])
    conn.commit()
    conn.close()


def _damage_last_page(path: Path) -> None:
    """The last page: one of u's (its index, written last), nothing to do with the stand-ins."""
    conn = sqlite3.connect(path)
    page_size, pages = conn.execute("PRAGMA page_size").fetchone()[0], conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    data[(pages - 1) * page_size:(pages - 1) * page_size + 16] = b"\x00" * 16
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [False, True], ids=["clean", "damaged"])
def test_collations_and_functions_only_the_application_defines(tmp_path: Path, damage: bool) -> None:
    """integrity_check refused to run ("no such collation sequence: LOCALIZED"), which failed every
    verify of such a database. It runs with stand-ins; what it says of the indexes built with them is
    left out (a warning says which), and damage elsewhere is still an error."""
    from restorecheck import pipeline

    src = tmp_path / "app.db"
    _app_defined(src)
    result = pipeline.backup(SqliteRef(src), tmp_path / "out", BackupOptions())
    backup = Path(result.artifact.path)
    if damage:
        _damage_last_page(backup)
    report = pipeline.verify(str(backup), restore=RestoreOptions())
    by_severity = {(f.check, f.severity) for f in report.findings}
    if damage:
        assert report.verdict == "fail" and ("integrity", "error") in by_severity
        return
    assert report.verdict == "pass", [f.message for f in report.findings]
    notes = [f.message for f in report.findings if f.check == "integrity" and f.severity == "warning"]
    assert len(notes) == 1 and "LOCALIZED" in notes[0] and "myfn" in notes[0] and "t_name" in notes[0]
    assert "u_v" not in notes[0]


def test_a_locked_source_waits_for_lock_timeout_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--lock-timeout was ignored for SQLite (5 s whatever was asked), and a lock was reported as
    "check that it is a healthy SQLite database"."""
    import time

    from restorecheck.cli import run_cli
    from restorecheck.engines.sqlite import lock_wait_seconds

    assert [lock_wait_seconds(d) for d in ("10s", "500ms", "2min", "1500", "0", "junk")] == [10, 0.5, 120, 1.5, 86400, 10]
    src = tmp_path / "busy.db"
    writer = sqlite3.connect(src, isolation_level=None)
    writer.execute("CREATE TABLE t (v)")
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("INSERT INTO t VALUES (1)")
    try:
        started = time.monotonic()
        rc = run_cli(["backup", str(src), "-o", str(tmp_path / "out"), "--lock-timeout", "1s", "--no-progress"])
        took = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    err = capsys.readouterr().err
    assert rc == 3 and 0.9 < took < 4.5, (rc, took)
    assert "another connection holds a lock on it (waited 1 s)" in err and "--lock-timeout" in err
    assert "healthy" not in err
    assert not (tmp_path / "out").exists()  # the output directory it made, empty, is gone


def test_a_hot_journal_beside_the_backup_is_restored_with_it(tmp_path: Path) -> None:
    """A file copy taken mid-transaction: the database file holds half-written pages and the -journal
    beside it their originals. Restored without it, the copy was reported corrupt; with it, SQLite
    rolls the transaction back, as it would for the application."""
    import shutil

    from restorecheck import pipeline

    src = tmp_path / "app.db"
    conn = sqlite3.connect(src, isolation_level=None)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, "v" * 200) for i in range(2000)])
    result = pipeline.backup(SqliteRef(src), tmp_path / "out", BackupOptions())
    conn.execute("PRAGMA cache_size = 1")  # so that the transaction spills pages into the file
    conn.execute("BEGIN")
    conn.execute("UPDATE t SET v = 'w' || v")
    conn.execute("DELETE FROM t WHERE id % 3 = 0")
    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    shutil.copyfile(src, snapshot / "app.db")
    shutil.copyfile(str(src) + "-journal", snapshot / "app.db-journal")
    conn.execute("ROLLBACK")
    conn.close()
    report = pipeline.verify(str(snapshot / "app.db"), manifest=result.manifest, restore=RestoreOptions())
    errors = [f for f in report.findings if f.severity == "error" and f.check != "backup_file"]
    assert errors == [], [f.message for f in errors]
    assert any("app.db-journal lies beside the backup" in f.message for f in report.findings)
    assert (snapshot / "app.db-journal").exists()  # the backup's own files are left as they are


def test_a_foreign_key_sqlite_cannot_check_is_a_warning_not_silence(tmp_path: Path) -> None:
    """A foreign key to columns that are no key of the parent: foreign_key_check refuses the table
    ("foreign key mismatch"), and verify passed without a word."""
    from restorecheck import pipeline

    src = tmp_path / "m.db"
    conn = sqlite3.connect(src)
    conn.executescript("CREATE TABLE p (id INTEGER PRIMARY KEY, code TEXT); "
                       "CREATE TABLE c (id INTEGER PRIMARY KEY, code TEXT REFERENCES p (code)); "
                       "INSERT INTO p VALUES (1, 'a'); INSERT INTO c VALUES (1, 'a');")
    conn.close()
    result = pipeline.backup(SqliteRef(src), tmp_path / "out", BackupOptions())
    report = pipeline.verify(result.artifact.path, restore=RestoreOptions())
    assert report.verdict == "pass"
    warned = [f for f in report.findings if f.check == "fk_orphans" and f.severity == "warning"]
    assert len(warned) == 1 and "foreign key mismatch" in warned[0].message and warned[0].object == "main.c.fk0"


@pytest.mark.parametrize("module", ["fts5", "fts4", "rtree"])
def test_a_damaged_full_text_or_rtree_index_is_caught(tmp_path: Path, module: str) -> None:
    """integrity_check sees an FTS or R*Tree index's shadow tables as ordinary tables: an index that
    no longer matches its content passed verify (searches of the copy then fail or miss rows)."""
    from restorecheck import pipeline

    src = tmp_path / "v.db"
    conn = sqlite3.connect(src)
    try:
        if module == "rtree":
            conn.execute("CREATE VIRTUAL TABLE v USING rtree (id, x0, x1)")
            conn.executemany("INSERT INTO v VALUES (?, ?, ?)", [(i, i, i + 1) for i in range(1, 200)])
        else:
            conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)")
            conn.executemany("INSERT INTO docs VALUES (?, ?)", [(i, f"alpha beta {i}") for i in range(1, 200)])
            conn.execute(f"CREATE VIRTUAL TABLE v USING {module} (body, content='docs', content_rowid='id')"
                         if module == "fts5" else f"CREATE VIRTUAL TABLE v USING {module} (content='docs', body)")
            conn.execute("INSERT INTO v (v) VALUES ('rebuild')")
    except sqlite3.OperationalError as exc:
        pytest.skip(f"this SQLite lacks {module}: {exc}")
    conn.commit()
    conn.close()
    result = pipeline.backup(SqliteRef(src), tmp_path / "out", BackupOptions())
    clean = pipeline.verify(result.artifact.path, restore=RestoreOptions())
    assert clean.verdict == "pass", [f.message for f in clean.findings]
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(Path(result.artifact.path).read_bytes())
    conn = sqlite3.connect(damaged)
    if module == "rtree":
        conn.execute("UPDATE v_node SET data = zeroblob(length(data)) WHERE nodeno = 1")
    elif module == "fts5":
        conn.execute("DELETE FROM v_data WHERE id > 10")  # segments of the index itself
    else:
        conn.execute("DELETE FROM docs WHERE id > 10")  # the content goes, the index keeps it
    conn.commit()
    conn.close()
    report = pipeline.verify(str(damaged), restore=RestoreOptions())  # no reference: its own checks
    found = [(f.check, f.severity, f.object) for f in report.findings if f.object == "main.v"]
    assert ("integrity", "error", "main.v") in found, [f.message for f in report.findings]


def test_the_module_of_a_virtual_table_is_read_from_its_place_not_from_its_name(tmp_path: Path) -> None:
    """A virtual table whose name (or arguments) says "USING fts5" is not taken for a full-text index:
    the FTS check would have been sent to an R*Tree table and reported it damaged."""
    from restorecheck import pipeline

    src = tmp_path / "n.db"
    conn = sqlite3.connect(src)
    conn.execute('CREATE VIRTUAL TABLE "a USING fts5 b" USING rtree (id, x0, x1)')
    conn.execute('INSERT INTO "a USING fts5 b" VALUES (1, 0, 1)')
    conn.commit()
    conn.close()
    result = pipeline.backup(SqliteRef(src), tmp_path / "out", BackupOptions())
    report = pipeline.verify(result.artifact.path, restore=RestoreOptions())
    assert report.verdict == "pass", [f.message for f in report.findings]
