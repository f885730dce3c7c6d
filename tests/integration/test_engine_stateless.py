"""Engines keep no state between calls (issue 13): what one step makes is a value passed on.

One ``PostgresEngine`` instance backs up and restores several databases in one process, in any
order; whether a restore reuses a started target or skips the separate read check depends only on
what it is handed (``target=``, ``BackupArtifact.written_here``), never on earlier calls.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from restorecheck.checks import registry
from restorecheck.checks.compare import compare_manifests
from restorecheck.checks.registry import CheckContext
from restorecheck.dburl import SqliteRef
from restorecheck.engines.base import BackupOptions, FingerprintOptions, RestoreOptions, Target
from restorecheck.engines.postgres import PostgresEngine
from restorecheck.engines.sqlite import RestoredCopy, SqliteEngine
from restorecheck.model import BackupArtifact
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute, sqlite_script

pytestmark = pytest.mark.postgres


def _restore_and_compare(engine: PostgresEngine, artifact: BackupArtifact, manifest: object,
                         **kwargs: object) -> dict[str, object]:
    with contextlib.ExitStack() as stack:
        outcome = engine.restore(artifact, RestoreOptions(), stack, **kwargs)  # type: ignore[arg-type]
        assert [f for f in registry.convert(outcome.evidence) if f.severity == "error"] == []
        restored = engine.fingerprint(outcome.restored, FingerprintOptions())
        _, findings = compare_manifests(manifest, restored)  # type: ignore[arg-type]
        assert [f for f in findings if f.severity == "error"] == []
        return {**outcome.info, "restored_host": outcome.restored.params.get("host")}  # type: ignore[union-attr]


def test_one_engine_serves_many_databases(pg_server: PgServer, tmp_path: Path) -> None:
    engine = PostgresEngine()
    made = []
    with pg_server.fresh_database() as a, pg_server.fresh_database() as b:
        execute(a, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'a' || g FROM generate_series(1, 50) g")
        execute(b, "CREATE TABLE u (id int PRIMARY KEY); INSERT INTO u SELECT generate_series(1, 7)")
        for i, src in enumerate((a, b)):
            made.append(engine.backup(src, tmp_path / str(i), BackupOptions(format="custom")))
    # restored in the other order than backed up, each against its own manifest
    for artifact, manifest in reversed(made):
        info = _restore_and_compare(engine, artifact, manifest)
        assert str(info["read_check"]).startswith("skipped")  # the artifact says it was written here
    assert {t.name for t in made[0][1].tables} == {"public.t"}
    assert {t.name for t in made[1][1].tables} == {"public.u"}
    assert vars(engine) == {"pg_bin": None}  # nothing remembered from those calls


def test_the_read_check_follows_the_artifact_not_the_engine(pg_server: PgServer, tmp_path: Path) -> None:
    engine = PostgresEngine()
    with pg_server.fresh_database() as src:
        execute(src, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10)")
        artifact, manifest = engine.backup(src, tmp_path, BackupOptions(format="custom"))
    assert artifact.written_here
    assert "written_here" not in artifact.to_dict()  # never serialized into a manifest or report
    reloaded = BackupArtifact.from_dict(artifact.to_dict())
    assert not reloaded.written_here
    # same path, same digest, same engine instance: read in full all the same
    info = _restore_and_compare(engine, reloaded, manifest)
    assert info["read_check"] == "pg_restore --file=/dev/null"


def test_a_target_is_used_only_when_handed_over(pg_server: PgServer, tmp_path: Path) -> None:
    engine = PostgresEngine()
    with pg_server.fresh_database() as src, contextlib.ExitStack() as stack:
        execute(src, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10)")
        target = engine.prepare_target(src, RestoreOptions(), stack)
        assert isinstance(target, Target) and target.engine == "postgresql" and target.where == "local"
        started_on = target.handle.admin.params["host"]
        artifact, manifest = engine.backup(src, tmp_path, BackupOptions(format="custom"))
        assert _restore_and_compare(engine, artifact, manifest, target=target)["restored_host"] == started_on
        # not handed over: a target of its own, although this instance started one before
        assert _restore_and_compare(engine, artifact, manifest)["restored_host"] != started_on
    assert vars(engine) == {"pg_bin": None}


def test_sqlite_restore_returns_what_later_steps_need(tmp_path: Path) -> None:
    engine = SqliteEngine()
    good, bad = tmp_path / "good.db", tmp_path / "bad.db"
    sqlite_script(good, "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2);")
    bad.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    with contextlib.ExitStack() as stack:
        ok = engine.restore(BackupArtifact(str(good), "sqlite", good.stat().st_size, None), RestoreOptions(), stack)
        broken = engine.restore(BackupArtifact(str(bad), "sqlite", bad.stat().st_size, None), RestoreOptions(), stack)
        assert isinstance(ok.restored, RestoredCopy) and ok.restored.opens
        assert isinstance(broken.restored, RestoredCopy) and not broken.restored.opens
        assert [f.check for f in registry.convert(broken.evidence)] == ["restore_errors"]
        manifest = engine.fingerprint(broken.restored, FingerprintOptions())
        assert manifest.open_error
        # the restore already said it does not open: no second finding for the same fault, which
        # a plain reference to the same file (not the restore's copy) does get
        assert registry.run("self", CheckContext("sqlite", restored=engine.self_check_facts(broken.restored, manifest),
                                                 evidence=broken.evidence)) == []
        plain = SqliteRef(broken.restored.path)
        assert [f.check for f in registry.run("self", CheckContext("sqlite", restored=engine.self_check_facts(plain, manifest)))] == ["integrity"]
        assert engine.fingerprint(ok.restored, FingerprintOptions()).tables[0].rows == 2
    assert vars(engine) == {}
