"""restorecheck backup on real servers: every format round-trips, the manifest describes the dump
taken in the same snapshot, a writer during the backup does not break the later verify."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg
import pytest

from restorecheck import pipeline
from restorecheck.cli import run_cli
from restorecheck.dburl import PostgresRef
from restorecheck.engines.base import BackupOptions, RestoreOptions
from restorecheck.engines.pg_dump import detect_format, sha256_of
from restorecheck.errors import BadInputError
from restorecheck.model import Manifest
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute, url
from tests.integration import pg5_helpers as h

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize(("fmt", "jobs", "suffix"), [
    ("custom", 1, ".dump"), ("directory", 2, ".dir"), ("tar", 1, ".tar"), ("plain", 1, ".sql"),
])
def test_round_trip_every_format(fresh_db: PostgresRef, tmp_path: Path, fmt: str, jobs: int, suffix: str) -> None:
    h.build_source(fresh_db)
    result = pipeline.backup(fresh_db, tmp_path, BackupOptions(format=fmt, jobs=jobs, name="shop"))
    path = Path(result.artifact.path)
    assert path == (tmp_path / f"shop{suffix}").resolve()
    assert result.manifest_path == tmp_path / "shop.manifest.json"
    assert detect_format(path) == fmt
    saved = Manifest.load(result.manifest_path)
    assert saved.backup is not None and saved.backup.sha256 == sha256_of(path) == result.artifact.sha256
    assert saved.backup.bytes == result.artifact.bytes > 0
    assert saved.snapshot and saved.facts["pg_dump_options"]["snapshot"] == saved.snapshot
    assert saved.facts["in_recovery"] is False and saved.facts["dump_role"]["rolsuper"] is True
    assert saved.facts["pg_dump_version"] and saved.facts["encoding"] == "UTF8"
    assert {t.name: t.rows for t in saved.tables} == {"public.parent": 50, "public.child": 2000}
    report = pipeline.verify(path, restore=RestoreOptions(jobs=2))
    h.validate_report(report)
    assert report.verdict == "pass", report.findings
    assert report.reference == "manifest"


def test_round_trip_on_postgresql_18(pg18: PgServer, tmp_path: Path) -> None:
    with pg18.fresh_database() as ref:
        h.build_source(ref)
        result = pipeline.backup(ref, tmp_path, BackupOptions(name="shop18"))
    assert result.manifest.facts["pg_dump_version"].startswith("18")
    report = pipeline.verify(result.artifact.path)
    assert report.verdict == "pass", report.findings
    assert report.extra["restore"]["server_version"].startswith("18")


def test_backup_never_overwrites(fresh_db: PostgresRef, tmp_path: Path) -> None:
    h.build_source(fresh_db)
    first = pipeline.backup(fresh_db, tmp_path, BackupOptions(name="nightly"))
    before = sha256_of(Path(first.artifact.path))
    with pytest.raises(BadInputError, match="already exists"):
        pipeline.backup(fresh_db, tmp_path, BackupOptions(name="nightly"))
    assert sha256_of(Path(first.artifact.path)) == before
    # the default name carries a timestamp: two nightly runs never collide
    a = pipeline.backup(fresh_db, tmp_path / "auto")
    time.sleep(1.1)
    b = pipeline.backup(fresh_db, tmp_path / "auto")
    assert a.artifact.path != b.artifact.path


def test_writer_during_backup_does_not_fail_verify(fresh_db: PostgresRef, tmp_path: Path) -> None:
    h.build_source(fresh_db)
    execute(fresh_db, "INSERT INTO public.child (parent_id, label, amount) "
                      "SELECT 1 + g % 50, repeat('x', 200), g FROM generate_series(1, 30000) g")
    stop = threading.Event()
    inserted = [0]

    def writer() -> None:
        with psycopg.connect(fresh_db.conninfo(), autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO public.child (parent_id, label, amount) VALUES (1, 'live', 1)")
                conn.execute("UPDATE public.parent SET name = name || '.' WHERE id = 2")
                inserted[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.3)
        result = pipeline.backup(fresh_db, tmp_path, BackupOptions(name="busy"))
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert inserted[0] > 0
    live_rows = execute(fresh_db, "SELECT count(*) FROM public.child")[0][0]
    manifest_rows = next(t.rows for t in result.manifest.tables if t.name == "public.child")
    assert manifest_rows is not None and manifest_rows < live_rows  # writes went on after the snapshot
    report = pipeline.verify(result.artifact.path)
    assert report.verdict == "pass", [(f.check, f.message) for f in report.errors]


def test_cli_backup_and_unreachable_source(fresh_db: PostgresRef, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    h.build_source(fresh_db)
    rc = run_cli(["backup", url(fresh_db), "-o", str(tmp_path), "--format", "tar", "--name", "t", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "t.tar" in out and "t.manifest.json" in out
    assert json.loads((tmp_path / "t.manifest.json").read_text())["backup"]["format"] == "tar"
    rc = run_cli(["backup", "postgresql://nobody@127.0.0.1:1/nothing", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 3
    assert len(err.strip().splitlines()) == 1 and "cannot connect" in err
    rc = run_cli(["backup", url(fresh_db), "-o", str(tmp_path), "--format", "tar", "--jobs", "2"])
    assert rc == 2


def test_unreadable_table_fails_the_backup_and_keeps_no_file(fresh_db: PostgresRef, tmp_path: Path) -> None:
    """pg_dump (or the fingerprint) cannot read a table: exit 3, and no partial backup is left."""
    from restorecheck.errors import EnvironmentFailure

    h.build_source(fresh_db)
    execute(fresh_db, "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rc5_nopriv') "
                      "THEN CREATE ROLE rc5_nopriv LOGIN; END IF; END $$; "
                      "GRANT SELECT ON public.parent TO rc5_nopriv")
    weak = PostgresRef({**fresh_db.params, "user": "rc5_nopriv"})
    with pytest.raises(EnvironmentFailure) as info:
        pipeline.backup(weak, tmp_path, BackupOptions(name="weak"))
    assert info.value.exit_code == 3 and "permission denied" in info.value.message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_backups_and_manifests_are_private_unless_told(fresh_db: PostgresRef, tmp_path: Path, fmt: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Written 0644 in 0.1: anyone on the machine could read a whole database's backup."""
    import stat

    execute(fresh_db, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
    for mode, args in ((0o600, []), (0o640, ["--file-mode", "640"])):
        out = tmp_path / f"m{mode:o}"
        rc = run_cli(["backup", url(fresh_db), "-o", str(out), "--format", fmt, "--name", "b", "-q", *args])
        assert rc == 0, capsys.readouterr().err
        manifest = out / "b.manifest.json"
        backup = next(p for p in out.iterdir() if p != manifest)
        assert stat.S_IMODE(manifest.stat().st_mode) == mode
        if backup.is_dir():
            assert stat.S_IMODE(backup.stat().st_mode) == mode | ((mode & 0o444) >> 2)
            assert {stat.S_IMODE(p.stat().st_mode) for p in backup.iterdir()} == {mode}
        else:
            assert stat.S_IMODE(backup.stat().st_mode) == mode
    assert run_cli(["backup", url(fresh_db), "-o", str(tmp_path / "x"), "--file-mode", "777"]) == 2


@pytest.mark.parametrize("compress, suffix", [("6", ".sql.gz"), ("0", ".sql")])
def test_a_compressed_plain_backup_is_named_for_what_it_holds(fresh_db: PostgresRef, tmp_path: Path,
                                                              compress: str, suffix: str) -> None:
    """pg_dump -Fp --compress writes gzip: it had been named x.sql, which psql -f cannot read."""
    h.build_source(fresh_db)
    result = pipeline.backup(fresh_db, tmp_path / "out",
                             pipeline.BackupOptions(format="plain", compress=compress, name="p"))
    path = Path(result.artifact.path)
    assert path.name == "p" + suffix and (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".sql.gz")
    assert result.manifest_path.name == "p.manifest.json"
    report = pipeline.verify(str(path))
    assert report.verdict == "pass", [(f.check, f.message) for f in report.errors]
