"""SQLite end to end through the CLI (in process): seed, snapshot, backup, verify, drill, compare.

No server is needed; every database is a file under tmp_path. Each fault is made in the backup file
and ``verify`` must exit 1 with the right check id in the JSON report; the clean case exits 0.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from restorecheck.cli import run_cli
from tests.conftest import sha
from tests.conftest import sqlite_script as sql


def rc(*args: str | Path) -> int:
    return run_cli([str(a) for a in args])


def report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def error_checks(rep: dict[str, Any]) -> set[str]:
    return {f["check"] for f in rep["findings"] if f["severity"] == "error"}


@pytest.fixture
def app(tmp_path: Path) -> Path:
    db = tmp_path / "app.db"
    assert rc("seed", db, "--scale", "1", "-q") == 0
    return db


@pytest.fixture
def backed_up(app: Path, tmp_path: Path) -> Path:
    assert rc("backup", app, "-o", tmp_path / "out", "--name", "app", "-q") == 0
    backup = tmp_path / "out" / "app.db"
    assert backup.exists() and (tmp_path / "out" / "app.manifest.json").exists()
    return backup


def damaged_copy(backup: Path, script: str) -> Path:
    """A copy of the backup, changed by ``script``, with the manifest beside it."""
    bad = backup.with_name("bad.db")
    bad.write_bytes(backup.read_bytes())
    sql(bad, script)
    bad.with_name("bad.manifest.json").write_text(backup.with_name("app.manifest.json").read_text())
    return bad


def verify_report(backup: Path, tmp_path: Path, *extra: str | Path) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "report.json"
    code = rc("verify", backup, "--report", out, "-q", *extra)
    return code, report(out)


def test_clean_backup_verifies(backed_up: Path, tmp_path: Path) -> None:
    code, rep = verify_report(backed_up, tmp_path)
    assert code == 0 and rep["verdict"] == "pass"
    assert rep["engine"] == "sqlite" and rep["reference"] == "manifest"
    assert rep["backup"]["format"] == "sqlite" and rep["backup"]["sha256"]
    assert {"restore", "verify", "total"} <= set(rep["phases"])
    assert all(t["match"] for t in rep["tables"]) and len(rep["tables"]) == 8
    assert error_checks(rep) == set()


def test_a_manifest_of_restorecheck_0_1_still_verifies_and_still_catches(backed_up: Path, tmp_path: Path) -> None:
    """A manifest in sqlite-keyed-sha256-v1 (REALs by quote()): the copy is checksummed in v1."""
    import dataclasses

    from restorecheck.engines.base import FingerprintOptions
    from restorecheck.engines.sqlite import connect_readonly, fingerprint_connection

    conn = connect_readonly(backed_up)
    try:
        old = fingerprint_connection(conn, database="app", path=backed_up,
                                     options=dataclasses.replace(FingerprintOptions(), hash_version=1))
    finally:
        conn.close()
    assert old.checksum_mode == "sqlite-keyed-sha256-v1"
    manifest = tmp_path / "v1.manifest.json"
    manifest.write_text(json.dumps(old.to_dict()))
    code, rep = verify_report(backed_up, tmp_path, "--manifest", manifest)
    assert code == 0 and error_checks(rep) == set(), rep["findings"]
    v1 = {t.name: t.checksum for t in old.tables}
    assert all(t["checksum_restored"] == v1[t["name"]] for t in rep["tables"]), rep["tables"]  # hashed in v1
    bad = damaged_copy(backed_up, "UPDATE rc_values SET v = 0.3000000000000001 "  # one ulp above 0.1 + 0.2
                                  "WHERE typeof(v) = 'real' AND v BETWEEN 0.3 AND 0.31;")
    code, rep = verify_report(bad, tmp_path, "--manifest", manifest)
    assert code == 1 and "checksum" in error_checks(rep), rep["findings"]


def test_verify_without_reference_runs_the_checks_that_need_none(backed_up: Path, tmp_path: Path) -> None:
    lone = tmp_path / "lone.db"
    lone.write_bytes(backed_up.read_bytes())
    code, rep = verify_report(lone, tmp_path)
    assert code == 0 and rep["reference"] == "none"
    assert [f["check"] for f in rep["findings"]] == ["no_reference"]


@pytest.mark.parametrize(
    ("script", "check", "table"),
    [
        ("DELETE FROM rc_strings WHERE rowid = 7;", "row_count", "main.rc_strings"),
        ("UPDATE rc_customers SET name = name || '!' WHERE rowid = 17;", "checksum", "main.rc_customers"),
        ("UPDATE rc_values SET v = CAST(v AS TEXT) "
         "WHERE rowid = (SELECT min(rowid) FROM rc_values WHERE typeof(v) = 'integer');", "checksum", "main.rc_values"),
        ("PRAGMA user_version = 0;", "header", "header.user_version"),
    ],
    ids=["deleted_row", "changed_value", "storage_class", "lost_user_version"],
)
def test_faults_fail_with_their_check(backed_up: Path, tmp_path: Path, script: str, check: str, table: str) -> None:
    bad = damaged_copy(backed_up, script)
    code, rep = verify_report(bad, tmp_path)
    assert code == 1 and rep["verdict"] == "fail"
    found = {f["object"] for f in rep["findings"] if f["check"] == check and f["severity"] == "error"}
    assert table in found, rep["findings"]
    # the file differs from the one the manifest describes, and says so
    assert error_checks(rep) <= {check, "backup_file"}


def test_orphan_row_is_fk_orphans(backed_up: Path, tmp_path: Path) -> None:
    conn = sqlite3.connect(backed_up)
    fks = conn.execute("SELECT m.name, f.\"from\", f.\"table\" FROM sqlite_master m, "
                       "pragma_foreign_key_list(m.name) f WHERE m.type = 'table' LIMIT 1").fetchone()
    conn.close()
    assert fks is not None, "the known dataset has foreign keys"
    child, column, _parent = fks
    bad = damaged_copy(backed_up, f'PRAGMA foreign_keys = OFF; UPDATE "{child}" SET "{column}" = 987654321 '
                                  f'WHERE rowid = (SELECT min(rowid) FROM "{child}" WHERE "{column}" IS NOT NULL);')
    code, rep = verify_report(bad, tmp_path)
    assert code == 1 and "fk_orphans" in error_checks(rep)


def test_truncated_backup_fails_not_crashes(backed_up: Path, tmp_path: Path) -> None:
    bad = backed_up.with_name("bad.db")
    data = backed_up.read_bytes()
    bad.write_bytes(data[: len(data) * 3 // 4])
    code, rep = verify_report(bad, tmp_path, "--manifest", backed_up.with_name("app.manifest.json"))
    assert code == 1 and rep["verdict"] == "fail"
    assert error_checks(rep) & {"restore_errors", "integrity"}


def test_damaged_page_is_integrity(backed_up: Path, tmp_path: Path) -> None:
    conn = sqlite3.connect(backed_up)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                        "ORDER BY rootpage LIMIT 1").fetchone()[0]
    conn.close()
    data = bytearray(backed_up.read_bytes())
    start = (root - 1) * page_size
    data[start + 8 : start + page_size // 2] = b"\x5a" * (page_size // 2 - 8)
    bad = backed_up.with_name("bad.db")
    bad.write_bytes(bytes(data))
    code, rep = verify_report(bad, tmp_path, "--manifest", backed_up.with_name("app.manifest.json"))
    assert code == 1 and "integrity" in error_checks(rep)


def test_not_sqlite_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("just some text, not a database\n")
    assert rc("verify", junk) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.db" in err[0] and "Traceback" not in err[0]
    assert rc("backup", junk, "-o", tmp_path / "o") == 2
    assert rc("verify", tmp_path / "missing.db") == 2


def test_drill_self_test(tmp_path: Path) -> None:
    out = tmp_path / "drill.json"
    assert rc("drill", "--engine", "sqlite", "--report", out, "-q") == 0
    rep = report(out)
    assert rep["verdict"] == "pass" and rep["engine"] == "sqlite"
    assert {"seed", "backup", "restore", "verify", "total"} <= set(rep["phases"])
    assert len(rep["tables"]) == 8 and all(t["match"] for t in rep["tables"])


def test_drill_of_a_wal_source_with_uncheckpointed_writes(app: Path, tmp_path: Path) -> None:
    writer = sqlite3.connect(app, isolation_level=None)
    try:
        writer.execute("PRAGMA journal_mode = WAL")
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        writer.execute("UPDATE rc_customers SET name = 'only in the wal' WHERE rowid = 1")
        writer.execute("DELETE FROM rc_strings WHERE rowid = 7")
        wal = app.with_name("app.db-wal")
        assert wal.stat().st_size > 0
        before = (sha(app), sha(wal))
        out = tmp_path / "drill.json"
        assert rc("drill", app, "-o", tmp_path / "kept", "--report", out, "-q") == 0
        assert (sha(app), sha(wal)) == before, "drill must not change the source's bytes"
        rep = report(out)
        assert rep["verdict"] == "pass"
        strings = next(t for t in rep["tables"] if t["name"] == "main.rc_strings")
        assert strings["rows_restored"] == strings["rows_expected"] == 59
        (kept,) = (tmp_path / "kept").glob("*.db")
        conn = sqlite3.connect(f"file:{kept}?mode=ro&immutable=1", uri=True)
        assert conn.execute("SELECT name FROM rc_customers WHERE rowid = 1").fetchone() == ("only in the wal",)
        conn.close()
    finally:
        writer.close()


def test_snapshot_and_compare(app: Path, backed_up: Path, tmp_path: Path) -> None:
    snap = tmp_path / "snap.json"
    assert rc("snapshot", app, "-o", snap, "-q") == 0
    manifest = report(snap)
    assert manifest["engine"] == "sqlite" and manifest["facts"]["integrity_check"] == ["ok"]
    assert manifest["facts"]["header"]["user_version"] == 1001
    out = tmp_path / "cmp.json"
    assert rc("compare", snap, backed_up, "--report", out, "-q") == 0
    assert rc("compare", app, backed_up, "--report", out, "-q") == 0
    changed = damaged_copy(backed_up, "UPDATE rc_products SET title = 'x' WHERE rowid IN (3, 5);")
    assert rc("compare", app, changed, "--report", out, "-q") == 1
    rep = report(out)
    (f,) = [f for f in rep["findings"] if f["check"] == "checksum"]
    assert f["object"] == "main.rc_products" and f["details"]["keys"] == [3, 5]


def test_verify_against_the_live_source_lists_the_keys(app: Path, backed_up: Path, tmp_path: Path) -> None:
    bad = damaged_copy(backed_up, "UPDATE rc_customers SET name = 'changed' WHERE rowid = 42;")
    code, rep = verify_report(bad, tmp_path, "--against", app)
    assert code == 1 and rep["reference"] == "live"
    (f,) = [f for f in rep["findings"] if f["check"] == "checksum"]
    assert f["object"] == "main.rc_customers" and f["details"]["keys"] == [42]


def test_seed_refuses_a_database_with_tables(app: Path) -> None:
    assert rc("seed", app, "-q") == 2
    assert rc("seed", app, "--replace", "-q") == 0


def test_sigterm_during_verify_removes_the_private_copy(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    db = tmp_path / "big.db"
    sql(db, """
        CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB);
        CREATE INDEX t_a ON t(a);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 400000)
        INSERT INTO t SELECT i, hex(randomblob(12)), i * 0.25, randomblob(16) FROM n;
    """)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    proc = subprocess.Popen([sys.executable, "-m", "restorecheck", "verify", str(db), "-q"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(temp.glob("restorecheck-sqlite-*")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the restore never started"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    assert "interrupted" in err
    assert list(temp.iterdir()) == []


def test_drill_keep_prints_a_sqlite3_command_that_opens_the_restored_copy(tmp_path: Path) -> None:
    """SQLite's restore set a key the CLI never read: --keep printed the kept directory, never how
    to open the copy."""
    import os
    import re
    import shlex
    import shutil
    import subprocess
    import sys

    src = tmp_path / "src.db"
    assert rc("seed", src, "-q") == 0
    work = tmp_path / "tmp"
    work.mkdir()
    done = subprocess.run([sys.executable, "-m", "restorecheck", "drill", str(src), "--keep", "-q"],
                          env={**os.environ, "TMPDIR": str(work)}, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    m = re.search(r"kept the restored database: (sqlite3 .+)$", done.stderr, re.M)
    assert m, done.stderr
    argv = shlex.split(m.group(1))
    restored = Path(argv[1])
    try:
        assert restored.is_file() and work in restored.parents
        tables = subprocess.run([*argv, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"],
                                capture_output=True, text=True, timeout=60, check=True, stdin=subprocess.DEVNULL)
        assert int(tables.stdout.strip()) > 0
    finally:
        for kept in work.iterdir():
            shutil.rmtree(kept)
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_backup_compressed_after_it_was_taken_verifies_against_its_manifest(
        backed_up: Path, tmp_path: Path, codec: str) -> None:
    """The manifest records the sha256 of the plain backup; the nightly job then compresses it. Once
    the layer is peeled, the content's sha256 is compared: equal, no finding. A different file of the
    same rows (VACUUM INTO) compressed the same way is still told apart by its sha256."""
    import shutil
    import subprocess

    if shutil.which(codec) is None:
        pytest.skip(f"{codec} is not installed (apt-get install -y {codec})")
    out = backed_up.parent
    subprocess.run([codec, "-q", "-k", str(backed_up)], check=True)
    packed = out / (backed_up.name + (".gz" if codec == "gzip" else ".zst"))
    code, rep = verify_report(packed, tmp_path)
    assert code == 0 and rep["verdict"] == "pass", rep["findings"]
    assert rep["backup"]["compression"] == codec
    other = tmp_path / "other"
    other.mkdir()
    conn = sqlite3.connect(backed_up)
    conn.execute(f"VACUUM INTO '{other / 'app.db'}'")
    conn.close()
    assert sha(other / "app.db") != sha(backed_up)
    shutil.copy(out / "app.manifest.json", other / "app.manifest.json")
    subprocess.run([codec, "-q", str(other / "app.db")], check=True)
    code, rep = verify_report(other / packed.name, tmp_path)
    assert code == 1 and error_checks(rep) == {"backup_file"}, rep["findings"]
