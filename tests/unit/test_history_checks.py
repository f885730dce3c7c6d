"""The between-nights checks (checks/history.py): drift, rto_trend, backup_size; pure functions of a
Baseline (the job's history) and this run's facts. Each fault is caught and the clean case passes."""

from __future__ import annotations

import dataclasses

from restorecheck.checks import registry
from restorecheck.checks.registry import CheckContext
from restorecheck.model import BackupArtifact, Baseline, HistoryThresholds, Report, TableResult
from restorecheck.nightly import between_nights

BEFORE = {"public.orders": 1000, "public.customers": 200, "public.audit": 50, "public.empty": 0}


def _tables(**rows: int | None) -> tuple[TableResult, ...]:
    return tuple(TableResult(f"public.{n}", r, r, "c", "c", True) for n, r in rows.items())


def _base(**kw: object) -> Baseline:
    return Baseline("app", **{"last_run_id": 7, "last_started_at": "2026-12-01T02:00:00Z",  # type: ignore[arg-type]
                              "table_rows": BEFORE, "backup_bytes": 10_000, **kw})


def _run(base: Baseline, tables: tuple[TableResult, ...], *, restore: float | None = 10.0,
         size: int | None = 10_000) -> list[tuple[str, str, str]]:
    ctx = CheckContext("postgresql", baseline=base, tables=tables, tables_known=True, backup_bytes=size,
                       restore_seconds=restore, artifact_name="app.dump")
    return [(f.check, f.severity, f.object) for f in registry.run("history", ctx)]


UNCHANGED = _tables(orders=1000, customers=200, audit=50, empty=0)


def test_an_unchanged_source_has_no_finding() -> None:
    assert _run(_base(), UNCHANGED) == []
    assert _run(_base(), _tables(orders=1100, customers=195, audit=50, empty=0)) == []  # growth, 2.5% loss


def test_drift_a_table_vanished_emptied_or_lost_rows() -> None:
    found = _run(_base(), _tables(orders=850, customers=0, empty=0))
    assert sorted(found) == [("drift", "warning", "public.audit"), ("drift", "warning", "public.customers"),
                             ("drift", "warning", "public.orders")]
    ctx = CheckContext("postgresql", baseline=_base(), tables=_tables(orders=850, customers=0, empty=0), tables_known=True)
    by = {f.object: f for f in registry.run("history", ctx)}
    assert by["public.orders"].details["kind"] == "lost" and "150 of 1,000 rows (15.0%)" in by["public.orders"].message
    assert by["public.customers"].details["kind"] == "emptied"
    assert by["public.audit"].details["kind"] == "vanished"


def test_drift_threshold_and_severity_are_settings() -> None:
    strict = _base(thresholds=HistoryThresholds(drift_max_loss=0.01, drift_severity="error"))
    assert _run(strict, _tables(orders=980, customers=200, audit=50, empty=0)) == [("drift", "error", "public.orders")]
    lax = _base(thresholds=HistoryThresholds(drift_max_loss=0.5))
    assert _run(lax, _tables(orders=600, customers=200, audit=50, empty=0)) == []


def test_drift_needs_a_verified_run_and_known_tables() -> None:
    assert _run(Baseline("app"), _tables(orders=1)) == []  # first night: nothing to compare with
    ctx = CheckContext("postgresql", baseline=_base(), tables=(), tables_known=False)
    assert registry.run("history", ctx) == []


def test_rto_trend_against_the_median_of_recent_runs() -> None:
    base = _base(restore_seconds=(10.0, 11.0, 9.0, 10.0, 50.0))
    assert _run(base, UNCHANGED, restore=14.0) == []
    assert _run(base, UNCHANGED, restore=16.0) == [("rto_trend", "warning", "app.dump")]
    few = _base(restore_seconds=(10.0, 10.0))  # fewer than rto_trend_min_runs (3)
    assert _run(few, UNCHANGED, restore=100.0) == []
    tiny = _base(restore_seconds=(0.1, 0.1, 0.1))  # 5x, but 0.4 s is noise (rto_trend_min_seconds)
    assert _run(tiny, UNCHANGED, restore=0.5) == []
    only_last = _base(restore_seconds=(100.0, 1.0, 1.0, 1.0), thresholds=HistoryThresholds(rto_trend_runs=1, rto_trend_min_runs=1))
    assert _run(only_last, UNCHANGED, restore=120.0) == []


def test_backup_size_shrink() -> None:
    assert _run(_base(), UNCHANGED, size=8_500) == []
    assert _run(_base(), UNCHANGED, size=7_000) == [("backup_size", "warning", "app.dump")]
    severe = _base(thresholds=HistoryThresholds(backup_size_severity="error", backup_size_max_shrink=0.5))
    assert _run(severe, UNCHANGED, size=6_000) == []
    assert _run(severe, UNCHANGED, size=4_000) == [("backup_size", "error", "app.dump")]
    assert _run(_base(), UNCHANGED, size=20_000) == []  # growth is fine


def test_between_nights_recomputes_the_verdict_and_never_judges_an_error() -> None:
    report = Report("pass", "postgresql", "manifest", backup=BackupArtifact("/b/app.dump", "custom", 10_000, "x"),
                    phases={"restore": 1.0}, tables=_tables(orders=0, customers=200, audit=50, empty=0))
    warned = between_nights(report, _base())
    assert warned.verdict == "pass" and [f.check for f in warned.findings] == ["drift"]
    failed = between_nights(report, _base(thresholds=HistoryThresholds(drift_severity="error")))
    assert failed.verdict == "fail"
    error = dataclasses.replace(report, verdict="error", error="x")
    assert between_nights(error, _base()) is error
    # a failed restore without a reference says nothing about the source's tables
    no_ref = dataclasses.replace(report, verdict="fail", reference="none")
    assert [f.check for f in between_nights(no_ref, _base()).findings] == []
