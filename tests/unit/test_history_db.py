"""The history database (restorecheck/history): created and migrated by Alembic at open, SQLAlchemy
Core for the queries; runs recorded with their phases, tables and findings; retention; trends."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from restorecheck.errors import BadInputError
from restorecheck.history import MIGRATIONS, History, open_history, trends
from restorecheck.model import BackupArtifact, Finding, Report, TableResult


def _report(rows: int = 100, restore: float = 2.0, size: int = 5000, verdict: str = "pass",
            started: str = "2026-12-01T02:00:00Z") -> Report:
    return Report(verdict, "postgresql", "manifest",  # type: ignore[arg-type]
                  backup=BackupArtifact("/b/app-1.dump", "custom", size, "ab" * 32),
                  phases={"backup": 1.0, "restore": restore, "verify": 0.5, "total": restore + 2},
                  tables=(TableResult("public.t", rows, rows, "c1", "c1", True),
                          TableResult("public.u", 3, 3, "c2", "c2", True)),
                  findings=(Finding("no_reference", "warning", "x", "postgresql://u:pw@h/d said so"),),
                  started_at=started, source="postgresql://u@h/d")


def test_migrations_ship_in_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file() and list((MIGRATIONS / "versions").glob("0001_*.py"))


def test_record_and_read_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    with open_history(url) as h:
        first = h.record("app", _report(), 0)
        h.record("app", _report(rows=90, started="2026-12-02T02:00:00Z"), 0)
        h.record("other", _report(verdict="fail"), 1, verified=False)
    with open_history(url) as h:  # a second open migrates nothing and reads the same
        runs = h.runs("app")
        assert [r.rows_verified for r in runs] == [93, 103]  # newest first
        r = runs[-1]
        assert r.id == first and r.verified and r.exit_code == 0 and r.command == "verify"
        assert r.started_at == dt.datetime(2026, 12, 1, 2, tzinfo=dt.UTC)
        assert r.phases == {"backup": 1.0, "restore": 2.0, "verify": 0.5, "total": 4.0}
        assert (r.backup_bytes, r.backup_sha256, r.restore_seconds) == (5000, "ab" * 32, 2.0)
        assert [(t.name, t.rows_expected, t.checksum_restored) for t in r.tables] == [("public.t", 100, "c1"), ("public.u", 3, "c2")]
        assert r.findings == (("no_reference", "warning", "x", "postgresql://u:***@h/d said so"),)  # masked
        assert [x.job for x in h.runs(verified_only=True)] == ["app", "app"]
        assert h.jobs() == ["app", "other"]
        assert [x.job for x in h.runs(since=dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC))] == ["app"]
    tables = {row[0] for row in sqlite3.connect(tmp_path / "h.db").execute("select name from sqlite_master")}
    assert {"rc_run", "rc_phase", "rc_table", "rc_finding", "restorecheck_alembic_version"} <= tables


def test_retention_of_history(tmp_path: Path) -> None:
    now = dt.datetime(2026, 12, 10, tzinfo=dt.UTC)
    with History(f"sqlite:///{tmp_path / 'h.db'}") as h:
        for day in range(1, 10):
            h.record("app", _report(started=f"2026-12-0{day}T02:00:00Z"), 0)
        h.record("keep", _report(started="2026-01-01T02:00:00Z"), 0)
        assert h.prune("app", keep_days=None, keep_runs=None) == 0
        assert h.prune("app", keep_days=None, keep_runs=6, now=now) == 3
        assert h.prune("app", keep_days=3, keep_runs=None, now=now) == 3  # 12-04..06 are older than 3 days
        assert [r.started_at.day for r in h.runs("app")] == [9, 8, 7]
        assert len(h.runs("keep")) == 1  # another job's runs are its own
    left = sqlite3.connect(tmp_path / "h.db").execute("select count(*) from rc_table").fetchone()
    assert left == (8,)  # the pruned runs' tables went with them


def test_trends_oldest_first() -> None:
    with History("sqlite://") as h:
        for i, (restore, size, rows) in enumerate([(2.0, 5000, 100), (3.0, 4000, 110), (4.0, 6000, 90)]):
            h.record("app", _report(rows=rows, restore=restore, size=size, started=f"2026-12-0{i + 1}T02:00:00Z"), 0)
        (t,) = trends(h.runs())
    assert t.restore_seconds == (2.0, 3.0, 4.0) and t.restore_median == 3.0
    assert t.backup_bytes == (5000, 4000, 6000) and t.rows == (103, 113, 93)


def test_bad_history_urls(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="not a SQLAlchemy URL"):
        History("::nonsense")
    with pytest.raises(BadInputError, match="SQLAlchemy does not know"):
        History("nonsense://h/d")
    with pytest.raises(BadInputError, match="does not exist"):
        History(f"sqlite:///{tmp_path / 'no' / 'h.db'}")
