"""restorecheck run on real servers (issue 11): three jobs (a PostgreSQL source, a SQLite file, a
directory of existing dumps whose newest is corrupt) run twice; the history sees both runs; rows
deleted from the source between the runs raise drift, an unchanged source does not; the corrupt
job's failure leaves the others' verdicts intact; SIGTERM stops everything and leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from restorecheck import pipeline
from restorecheck.cli import run_cli
from restorecheck.dburl import PostgresRef, SqliteRef
from restorecheck.engines.base import BackupOptions
from restorecheck.seed import seed
from tests.conftest import execute, url
from tests.integration import pg5_helpers as h
from tests.integration.test_sources import s3, s3_server  # noqa: F401 (fixtures: moto on 127.0.0.1)

pytestmark = pytest.mark.postgres


def _three_jobs(tmp_path: Path, source: PostgresRef) -> Path:
    h.build_source(source)
    notes = tmp_path / "notes.db"
    seed(SqliteRef(notes))
    dumps = tmp_path / "staging"
    dumps.mkdir()
    good = Path(pipeline.backup(source, dumps, BackupOptions(format="custom", name="staging-1")).artifact.path)
    data = good.read_bytes()
    corrupt = dumps / "staging-2.dump"  # newer, cut short, no manifest: as another tool might leave it
    corrupt.write_bytes(data[: len(data) * 6 // 10])
    now = time.time()
    os.utime(good, (now - 3600, now - 3600))
    os.utime(corrupt, (now, now))
    cfg = tmp_path / "restorecheck.toml"
    cfg.write_text(f"""
[defaults]
output_dir = "out"

[[job]]
name = "app"
source = "{url(source)}"

[[job]]
name = "notes"
source = "{notes}"

[[job]]
name = "staging"
backups = "{dumps}/*.dump"
""")
    return cfg


def _jobs(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {j["job"]: j for j in summary["jobs"]}


def test_three_jobs_twice_with_history_and_drift(fresh_db: PostgresRef, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _three_jobs(tmp_path, fresh_db)
    out = tmp_path / "out"
    start = time.monotonic()
    rc = run_cli(["run", "--config", str(cfg)])
    first_seconds = time.monotonic() - start
    printed = capsys.readouterr()
    assert rc == 1, printed  # the worst job's: staging failed verification
    summary = json.loads((out / "summary.json").read_text())
    jobs = _jobs(summary)
    assert {n: (j["verdict"], j["exit_code"]) for n, j in jobs.items()} == {
        "app": ("pass", 0), "notes": ("pass", 0), "staging": ("fail", 1)}
    assert jobs["staging"]["backup"]["path"].endswith("staging-2.dump")  # the newest was verified
    assert {f["check"] for f in jobs["staging"]["findings"] if f["severity"] == "error"} & {"backup_file", "restore_errors"}
    assert jobs["app"]["rows_verified"] == 2050 and jobs["app"]["backup"]["format"] == "custom"
    assert "staging: ERROR" in printed.out or "staging: " in printed.out
    suites = {s.get("name"): s for s in ET.parse(out / "junit.xml").getroot().findall("testsuite")}
    assert set(suites) == {"app", "notes", "staging"}
    assert suites["app"].get("failures") == "0" and int(suites["staging"].get("failures") or 0) > 0
    assert any(c.get("name") == "public.child" for c in suites["app"].iter("testcase"))
    prom = (out / "metrics.prom").read_text()
    assert 'restorecheck_exit_code{job="staging",engine="postgresql",command="verify"} 1' in prom
    assert 'restorecheck_success{job="app",engine="postgresql",command="drill"} 1' in prom
    assert "public." not in prom and "rc_" not in prom  # no table names in labels
    for job in ("app", "notes", "staging"):
        (run_dir,) = (out / job).glob("2*")
        assert json.loads((run_dir / "report.json").read_text())["verdict"] == jobs[job]["verdict"]
    capsys.readouterr()

    # between the nights: a third of the child rows go, the SQLite file is unchanged
    execute(fresh_db, "DELETE FROM public.child WHERE id % 3 = 0")
    start = time.monotonic()
    rc = run_cli(["run", "--config", str(cfg), "--parallel", "3", "--json"])
    second_seconds = time.monotonic() - start
    second = json.loads(capsys.readouterr().out)
    jobs = _jobs(second)
    assert rc == 1 and second["exit_code"] == 1
    assert {n: j["verdict"] for n, j in jobs.items()} == {"app": "pass", "notes": "pass", "staging": "fail"}
    drift = [f for f in jobs["app"]["findings"] if f["check"] == "drift"]
    assert [(f["severity"], f["object"]) for f in drift] == [("warning", "public.child")]
    assert "lost 666 of 2,000 rows (33.3%)" in drift[0]["message"]
    assert not [f for f in jobs["notes"]["findings"] if f["check"] in ("drift", "backup_size", "rto_trend")]
    assert not [f for f in jobs["staging"]["findings"] if f["check"] == "drift"]  # never verified: no baseline
    from importlib import resources

    import jsonschema

    schema = json.loads(resources.files("restorecheck").joinpath("data/report.schema.json").read_text())
    for job in ("app", "notes", "staging"):  # every job's report.json, the drift finding included
        jsonschema.Draft202012Validator(schema).validate(json.loads((Path(jobs[job]["report_dir"]) / "report.json").read_text()))

    assert run_cli(["history", "--config", str(cfg), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted((r["job"], r["verdict"]) for r in doc["runs"]) == sorted(
        [("app", "pass"), ("notes", "pass"), ("staging", "fail")] * 2)
    app_runs = [r for r in doc["runs"] if r["job"] == "app"]
    assert [r["rows_verified"] for r in app_runs] == [1384, 2050]  # newest first
    assert any(f["check"] == "drift" for f in app_runs[0]["findings"])
    assert {t["job"]: t["runs"] for t in doc["trends"]} == {"app": 2, "notes": 2, "staging": 2}
    assert run_cli(["history", "app", "--config", str(cfg), "--since", "1h"]) == 0
    text = capsys.readouterr().out
    assert "restore time" in text and "rows" in text and "(-32.5%)" in text
    print(f"\nthree-job run: first {first_seconds:.1f}s (sequential), second {second_seconds:.1f}s (--parallel 3)",
          file=sys.__stderr__)


def test_drill_and_verify_record_with_history(fresh_db: PostgresRef, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    h.build_source(fresh_db)
    hist = f"sqlite:///{tmp_path / 'h.db'}"
    out = tmp_path / "b"
    assert run_cli(["drill", url(fresh_db), "-o", str(out), "--history", hist, "--job", "app", "-q"]) == 0
    execute(fresh_db, "TRUNCATE public.child")
    # another directory: drill names a backup by the second, and both may fall in the same one
    rc = run_cli(["drill", url(fresh_db), "-o", str(tmp_path / "b2"), "--history", hist, "--job", "app"])
    printed = capsys.readouterr().out
    assert rc == 0 and "WARNING drift" in printed and "public.child" in printed and "emptied" in printed
    (dump,) = sorted(out.glob("*.dump"))[:1]
    assert run_cli(["verify", str(dump), "--history", hist, "-q"]) == 0
    assert run_cli(["history", "--history", hist, "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [(r["job"], r["command"]) for r in runs] == [(str(out.resolve()), "verify"), ("app", "drill"), ("app", "drill")]
    # a bad history URL is exit 2 before any work
    assert run_cli(["verify", str(dump), "--history", "nonsense://x/y"]) == 2


@pytest.mark.parametrize("sig, word", [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_a_signal_stops_the_run_and_leaves_nothing(fresh_db: PostgresRef, world_tmp: Path, sig: int,
                                                   word: str) -> None:
    h.build_source(fresh_db)
    work = world_tmp / "tmp"
    work.mkdir()
    cfg = world_tmp / "restorecheck.toml"
    cfg.write_text(f'[defaults]\noutput_dir = "out"\n[[job]]\nname = "app"\nsource = "{url(fresh_db)}"\n'
                   f'[[job]]\nname = "again"\nsource = "{url(fresh_db)}"\n')
    env = {**os.environ, "TMPDIR": str(work)}
    proc = subprocess.Popen([sys.executable, "-m", "restorecheck", "run", "--config", str(cfg), "--parallel", "2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(work.glob("restorecheck-*")):
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert word in err.decode() and len(err.decode().strip().splitlines()) == 1, err
    assert list(work.iterdir()) == []  # the throwaway clusters and work directories are gone
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(work) not in ps
    # the lock died with the run: the next one runs
    assert subprocess.run([sys.executable, "-m", "restorecheck", "run", "--config", str(cfg), "-q", "--only", "app"],
                          env=env, capture_output=True).returncode == 0


def test_the_history_in_a_postgresql_database(fresh_db: PostgresRef, tmp_path: Path) -> None:
    """history_url may name a team's PostgreSQL (psycopg 3; the password from the libpq passfile)."""
    from restorecheck.history import open_history
    from restorecheck.model import Report, TableResult

    report = Report("pass", "sqlite", "manifest", phases={"restore": 1.5, "total": 2.0},
                    tables=(TableResult("main.t", 3, 3, "a", "a", True),), started_at="2026-12-01T02:00:00Z")
    with open_history(url(fresh_db)) as hist:
        hist.record("notes", report, 0)
    with open_history(url(fresh_db)) as hist:  # migrated once, opened again
        (run,) = hist.runs("notes")
    assert (run.verdict, run.restore_seconds, run.tables[0].rows_restored) == ("pass", 1.5, 3)
    names = {r[0] for r in execute(fresh_db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"rc_run", "rc_table", "rc_finding", "rc_phase", "restorecheck_alembic_version"} <= names


def test_a_backups_job_in_object_storage(fresh_db: PostgresRef, tmp_path: Path, s3: str) -> None:  # noqa: F811
    """backups = "s3://bucket/prefix/*.dump": the newest object (its manifest beside it, in the bucket)."""
    from restorecheck import nightly
    from restorecheck.config import load_config

    h.build_source(fresh_db)
    pipeline.backup(fresh_db, f"s3://{s3}/app", BackupOptions(format="custom", name="app-1"))
    time.sleep(1.1)  # S3's LastModified has one-second resolution
    pipeline.backup(fresh_db, f"s3://{s3}/app", BackupOptions(format="custom", name="app-2"))
    cfg = tmp_path / "restorecheck.toml"
    cfg.write_text(f'[defaults]\noutput_dir = "out"\n[[job]]\nname = "app"\nbackups = "s3://{s3}/app/*.dump"\n')
    summary = nightly.run(load_config(cfg))
    (result,) = summary.results
    assert result.exit_code == 0, result.report.findings
    assert result.report.backup is not None and result.report.backup.path == f"s3://{s3}/app/app-2.dump"
    assert result.report.reference == "manifest"
