"""The nightly job without a PostgreSQL server (SQLite jobs): the lock, the webhook, retention, the
newest backup of a glob, the combined JUnit and metrics. tests/integration/test_nightly.py runs it
with PostgreSQL too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from restorecheck.cli import run_cli
from restorecheck.config import Webhook, load_config
from restorecheck.dburl import SqliteRef
from restorecheck.errors import BackupNotFoundError
from restorecheck.nightly import newest_backup, post_webhook
from restorecheck.seed import seed


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    db = tmp_path / "notes.db"
    seed(SqliteRef(db))
    return db


def _config(tmp_path: Path, body: str, defaults: str = "") -> Path:
    p = tmp_path / "restorecheck.toml"
    p.write_text(f'[defaults]\noutput_dir = "out"\n{defaults}\n{body}')
    return p


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []
    fail_first = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Hook.fail_first > 0:
            _Hook.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[str]:
    _Hook.received, _Hook.fail_first = [], 0
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_a_sqlite_job_and_a_missing_one(tmp_path: Path, notes: Path, hook_server: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """One job passes, one cannot run (exit 2): the run goes on, the exit code is the worst, the
    combined files have both, the webhook gets the summary."""
    cfg = _config(tmp_path, f'[[job]]\nname = "notes"\nsource = "{notes}"\n\n[[job]]\nname = "gone"\nbackups = "nothing/*.dump"\n',
                  f'on_failure = "{hook_server}"')
    rc = run_cli(["run", "--config", str(cfg)])
    out = capsys.readouterr().out
    assert rc == 2, out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith(("notes", "gone"))}
    assert "PASS" in lines["notes"] and "ERROR" in lines["gone"] and "  gone: ERROR no backup matches" in out
    outdir = tmp_path / "out"
    summary = json.loads((outdir / "summary.json").read_text())
    assert [(j["job"], j["verdict"], j["exit_code"]) for j in summary["jobs"]] == [("notes", "pass", 0), ("gone", "error", 2)]
    assert summary["exit_code"] == 2
    (job_dir,) = (outdir / "notes").glob("2*")
    assert json.loads((job_dir / "report.json").read_text())["verdict"] == "pass"
    assert (job_dir / "junit.xml").is_file() and (job_dir / "metrics.prom").is_file()
    assert len(list((outdir / "notes" / "backups").iterdir())) == 2  # the backup and its manifest
    suites = ET.parse(outdir / "junit.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["notes", "gone"] and suites[1].get("errors") == "1"
    prom = (outdir / "metrics.prom").read_text()
    assert 'restorecheck_exit_code{job="gone",engine="postgresql",command="verify"} 2' in prom
    assert 'restorecheck_success{job="notes",engine="sqlite",command="drill"} 1' in prom
    assert prom.count("# TYPE restorecheck_success gauge") == 1  # one family, a sample per job
    assert "rc_orders" not in prom  # no table names in labels
    assert [r["exit_code"] for r in _Hook.received] == [2]  # type: ignore[index]
    assert [j["job"] for j in _Hook.received[0]["jobs"]] == ["notes", "gone"]  # type: ignore[index]

    # --only, the second run sees the first in the history
    assert run_cli(["run", "--config", str(cfg), "--only", "notes", "-q"]) == 0
    assert capsys.readouterr().out == ""  # quiet on success
    assert run_cli(["history", "notes", "--config", str(cfg), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["verdict"] for r in doc["runs"]] == ["pass", "pass"] and doc["trends"][0]["runs"] == 2
    assert run_cli(["history", "--config", str(cfg), "--since", "1d"]) == 0
    text = capsys.readouterr().out
    assert "notes" in text and "gone" in text and "restore time" in text
    assert len(_Hook.received) == 1  # a run that passed posts nothing


def test_drift_on_a_sqlite_source(tmp_path: Path, notes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    cfg = _config(tmp_path, f'[[job]]\nname = "notes"\nsource = "{notes}"\ndrift_severity = "error"\n')
    assert run_cli(["run", "--config", str(cfg), "-q"]) == 0
    assert run_cli(["run", "--config", str(cfg), "-q"]) == 0  # unchanged: no drift
    conn = sqlite3.connect(notes)
    conn.execute("DELETE FROM rc_strings WHERE rowid % 2 = 0")
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert run_cli(["run", "--config", str(cfg), "--json"]) == 1  # drift_severity error
    job = json.loads(capsys.readouterr().out)["jobs"][0]
    assert [(f["check"], f["object"]) for f in job["findings"]] == [("drift", "main.rc_strings")]
    assert run_cli(["run", "--config", str(cfg), "-q"]) == 0  # compared with the run before it, verified
    capsys.readouterr()


def test_a_second_run_of_the_same_config_is_refused(tmp_path: Path, notes: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, f'[[job]]\nname = "notes"\nsource = "{notes}"\n')
    (tmp_path / "out").mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(tmp_path / 'out' / 'run.lock')!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, ('{\"pid\": %d, \"host\": \"h1\", \"since\": \"2026-12-02T01:00:00Z\"}' % os.getpid()).encode())\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        rc = run_cli(["run", "--config", str(cfg)])
        err = capsys.readouterr().err
        assert rc == 3 and len(err.strip().splitlines()) == 1, err
        assert f"pid {holder.pid} on h1 (since 2026-12-02T01:00:00Z) holds" in err
        assert not (tmp_path / "out" / "notes").exists()  # nothing ran
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert run_cli(["run", "--config", str(cfg), "-q"]) == 0  # the lock died with its holder


def test_the_webhook_retries_and_never_changes_the_exit_code(hook_server: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    _Hook.fail_first = 2
    post_webhook(Webhook(hook_server, timeout=5, attempts=3), {"exit_code": 1, "jobs": []})
    assert _Hook.received == [{"exit_code": 1, "jobs": []}]
    _Hook.fail_first = 5
    with pytest.raises(Exception, match="503"):
        post_webhook(Webhook(hook_server, timeout=5, attempts=2), {"exit_code": 1})
    # unreachable: the run's exit code stays the jobs' own, a warning line says the webhook failed
    cfg = _config(tmp_path, '[[job]]\nname = "gone"\nbackups = "nothing/*"\n',
                  'on_failure = { url = "http://127.0.0.1:9/x", timeout = 1, attempts = 2 }')
    start = time.monotonic()
    assert run_cli(["run", "--config", str(cfg), "-q"]) == 2
    err = capsys.readouterr().err
    assert "the on_failure webhook http://127.0.0.1:9/x failed after 2 attempt(s)" in err
    assert time.monotonic() - start < 20


def test_newest_backup(tmp_path: Path) -> None:
    d = tmp_path / "dumps"
    d.mkdir()
    for i, name in enumerate(["a.dump", "b.dump", "b.manifest.json", ".hidden.dump", "c.sql"]):
        (d / name).write_text("x")
        os.utime(d / name, (1000 + i, 1000 + i))
    (d / "dirfmt").mkdir()
    (d / "dirfmt" / "toc.dat").write_text("x")
    os.utime(d / "dirfmt", (900, 900))
    assert newest_backup(str(d / "*.dump")).name == "b.dump"
    assert newest_backup(str(d)).name == "c.sql"
    assert newest_backup(str(d / "dirfmt")).name == "dirfmt"
    with pytest.raises(BackupNotFoundError, match="no backup matches"):
        newest_backup(str(d / "*.gz"))
    with pytest.raises(BackupNotFoundError, match="do not exist"):
        newest_backup(str(tmp_path / "none"))


def test_retention_keeps_the_newest_of_its_own(tmp_path: Path, notes: Path) -> None:
    from restorecheck import nightly

    cfg_path = _config(tmp_path, f'[[job]]\nname = "notes"\nsource = "{notes}"\n[job.retention]\nkeep_runs = 2\n')
    config = load_config(cfg_path)
    backups = tmp_path / "out" / "notes" / "backups"
    backups.mkdir(parents=True)
    (backups / "notes-20200101T000000Z.db").write_text("old")
    (backups / "notes-20200101T000000Z.manifest.json").write_text("{}")
    (backups / "unrelated.db").write_text("not ours")
    (tmp_path / "out" / "notes" / "20200101T000000Z").mkdir()
    for _ in range(2):
        assert nightly.run(config).exit_code == 0
        time.sleep(1.1)  # a new timestamp
    names = sorted(p.name for p in backups.iterdir())
    assert "unrelated.db" in names and not any(n.startswith("notes-2020") for n in names)
    assert len([n for n in names if n.endswith(".db")]) == 3  # two runs' own and the unrelated file
    assert len([p for p in (tmp_path / "out" / "notes").iterdir() if p.name[0] == "2"]) == 2


def test_a_history_that_breaks_mid_run_costs_the_record_not_the_jobs(
        tmp_path: Path, notes: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from restorecheck.history import History

    def broken(*args: object, **kw: object) -> int:
        raise OSError("disk I/O error")

    cfg = _config(tmp_path, f'[[job]]\nname = "a"\nsource = "{notes}"\n[[job]]\nname = "b"\nsource = "{notes}"\n')
    monkeypatch.setattr(History, "record", broken)
    assert run_cli(["run", "--config", str(cfg), "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count("not recorded in the history") == 2 and "disk I/O error" in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [(j["job"], j["verdict"]) for j in summary["jobs"]] == [("a", "pass"), ("b", "pass")]


def test_history_before_any_run_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, '[[job]]\nname = "a"\nsource = "a.db"\n')
    assert run_cli(["history", "--config", str(cfg)]) == 0
    assert "no runs recorded yet" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert run_cli(["history", "--config", str(cfg), "--since", "yesterday"]) == 2
    assert "--since" in capsys.readouterr().err


def test_an_unwritable_metrics_file_is_exit_2_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, '[[job]]\nname = "a"\nsource = "a.db"\n', 'metrics_file = "no/such/dir/m.prom"')
    assert run_cli(["run", "--config", str(cfg)]) == 2
    assert "cannot write the metrics_file file" in capsys.readouterr().err
    assert not (tmp_path / "out" / "a").exists()
