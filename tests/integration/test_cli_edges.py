"""The command line as a demanding user and a cron job meet it: bad input, odd paths, signals.

Every case checks the contract: one line on stderr naming the problem and the fix, the right exit
code (2 bad input, 3 environment), no traceback, nothing left behind, the backup untouched.
Most cases use SQLite files (no server); the signal cases run a real PostgreSQL drill.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from restorecheck.cli import run_cli


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = run_cli([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    return lines[0]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def sqlite_backup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    src = tmp_path / "src.db"
    assert run(capsys, "seed", src, "-q")[0] == 0
    assert run(capsys, "backup", src, "-o", tmp_path / "out", "--name", "app", "-q")[0] == 0
    return tmp_path / "out" / "app.db"


# --- backup -o / --name ----------------------------------------------------------------------


def test_backup_into_an_uncreatable_directory_is_exit_2(tmp_path: Path, sqlite_backup: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a parent directory should be")
    code, out, err = run(capsys, "backup", sqlite_backup, "-o", blocker / "sub")
    assert code == 2 and out == ""
    line = one_line(err)
    assert "cannot create the output directory" in line and "-o" in line


@pytest.mark.parametrize("name", ["a/b", "../escape", ".hidden"])
def test_backup_name_with_a_slash_is_exit_2_and_writes_nothing_outside(
        tmp_path: Path, sqlite_backup: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(capsys, "backup", sqlite_backup, "-o", tmp_path / "o2", "--name", name)
    assert code == 2 and out == ""
    assert "is not a plain file name" in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # not even the -o directory
    assert not (tmp_path / "escape.db").exists()


def test_second_backup_with_the_same_name_does_not_overwrite(tmp_path: Path, sqlite_backup: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    first = sha(sqlite_backup)
    code, _, err = run(capsys, "backup", tmp_path / "src.db", "-o", sqlite_backup.parent, "--name", "app")
    assert code == 2 and "never overwrites" in one_line(err)
    assert sha(sqlite_backup) == first


# --- verify: what the BACKUP argument can be --------------------------------------------------


def test_engine_option_that_contradicts_the_content_names_the_right_engine(
        sqlite_backup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sha(sqlite_backup)
    code, out, err = run(capsys, "verify", sqlite_backup, "--engine", "postgresql")
    assert code == 2 and out == ""
    line = one_line(err)
    assert "is a sqlite backup, not postgresql" in line and "--engine sqlite" in line
    assert sha(sqlite_backup) == before


def test_drill_engine_that_contradicts_the_source_is_exit_2_and_makes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src.db"
    assert run(capsys, "seed", src, "-q")[0] == 0
    before = sha(src)
    for source, engine, actual in ((src, "postgresql", "sqlite"),
                                   ("postgresql://u:Pw1secret@127.0.0.1:1/db", "sqlite", "postgresql")):
        code, out, err = run(capsys, "drill", source, "--engine", engine, "-o", tmp_path / "kept",
                             "--report", tmp_path / "r.json")
        assert code == 2 and out == "", err
        line = one_line(err)
        assert f"is a {actual} database, not {engine}" in line and f"--engine {actual}" in line
        assert "Pw1secret" not in line
        assert not (tmp_path / "kept").exists()
        assert json.loads((tmp_path / "r.json").read_text())["engine"] == actual
    assert sha(src) == before


def test_drill_engine_that_agrees_with_the_source_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src.db"
    assert run(capsys, "seed", src, "-q")[0] == 0
    code, _, err = run(capsys, "drill", src, "--engine", "sqlite", "-q")
    assert code == 0, err


@pytest.mark.parametrize("kind", ["missing", "dir", "fifo", "devnull", "one_byte"])
def test_verify_of_what_is_not_a_backup_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  kind: str) -> None:
    path = tmp_path / "thing"
    if kind == "dir":
        path.mkdir()
        (path / "x").write_text("hi")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "devnull":
        path = Path("/dev/null")
    elif kind == "one_byte":
        path.write_bytes(b"x")
    report = tmp_path / "r.json"
    code, out, err = run(capsys, "verify", path, "--report", report)
    assert code == 2 and out == ""
    one_line(err)
    doc = json.loads(report.read_text())
    assert doc["verdict"] == "error" and doc["started_at"]  # an error report is dated too (was "")


# --- output files ----------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--report", "--junit", "--metrics"])
def test_unwritable_output_is_exit_2_before_any_work(tmp_path: Path, sqlite_backup: Path,
                                                     capsys: pytest.CaptureFixture[str], option: str) -> None:
    code, out, err = run(capsys, "verify", sqlite_backup, option, tmp_path / "no-such-dir" / "file", "-q")
    assert code == 2 and out == ""
    line = one_line(err)
    assert f"cannot write the {option} file" in line and "does not exist" in line


def test_an_unwritable_output_does_not_cost_the_others(tmp_path: Path, sqlite_backup: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "r.json"
    code, _, err = run(capsys, "verify", sqlite_backup, "--report", report,
                       "--metrics", tmp_path / "no-such-dir" / "m.prom", "-q")
    assert code == 2
    one_line(err)
    doc = json.loads(report.read_text())
    assert doc["verdict"] == "error" and "--metrics" in doc["error"]


def test_drill_and_compare_check_their_outputs_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "drill", "--engine", "sqlite", "--junit", tmp_path / "nope" / "j.xml")
    assert code == 2 and "--junit" in one_line(err)
    code, _, err = run(capsys, "compare", "a.json", "b.json", "--metrics", tmp_path / "nope" / "m.prom")
    assert code == 2 and "--metrics" in one_line(err)


def test_a_report_that_cannot_be_written_at_the_end_is_one_line_exit_3(
        tmp_path: Path, sqlite_backup: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up between the check and the write: exit 3, one line, no stray temp file."""
    from restorecheck import report as report_mod

    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    (tmp_path / "rep").mkdir()
    monkeypatch.setattr(report_mod.os, "replace", disk_full)
    code, _, err = run(capsys, "verify", sqlite_backup, "--report", tmp_path / "rep" / "r.json", "-q")
    monkeypatch.undo()
    assert code == 3
    assert "No space left on device" in one_line(err)
    assert list((tmp_path / "rep").iterdir()) == []


def test_report_to_stdout_with_quiet_is_pure_json(sqlite_backup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "verify", sqlite_backup, "--report", "-", "--quiet")
    assert code == 0 and err == ""
    assert json.loads(out)["verdict"] == "pass"


# --- --pg-bin -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["verify", "x.dump"], ["drill"], ["backup", "x.db", "-o", "out"]])
def test_pg_bin_that_does_not_exist_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              command: list[str]) -> None:
    code, out, err = run(capsys, *command, "--pg-bin", tmp_path / "nonexistent")
    assert code == 2 and out == ""
    assert "--pg-bin" in one_line(err) and "does not exist" in err


# --- paths with spaces and non-ASCII characters --------------------------------------------


def test_paths_with_spaces_and_non_ascii(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "sp ace" / "ünï cödé"
    src = d / "sö urce.db"
    d.mkdir(parents=True)
    assert run(capsys, "seed", src, "-q")[0] == 0
    assert run(capsys, "backup", src, "-o", d, "--name", "bäck up", "-q") == (0, "", "")
    backup = d / "bäck up.db"
    before = sha(backup)
    code, out, err = run(capsys, "verify", backup, "--report", d / "rép ort.json", "-q")
    assert (code, out, err) == (0, "", "")
    doc = json.loads((d / "rép ort.json").read_text(encoding="utf-8"))
    assert doc["verdict"] == "pass" and doc["backup"]["path"].endswith("bäck up.db")
    assert run(capsys, "verify", backup, "--manifest", d / "bäck up.manifest.json", "-q")[0] == 0
    assert run(capsys, "compare", d / "bäck up.manifest.json", src, "-q")[0] == 0
    assert sha(backup) == before


# --- Ctrl-C and SIGTERM (a real PostgreSQL drill) -------------------------------------------


def _interrupt_drill(world_tmp: Path, sig: int, when: str, *, repeat: int = 0) -> tuple[int, str]:
    """Start a drill, send ``sig`` once ``when`` appears in its TMPDIR, then ``repeat`` more times
    every 20 ms while it runs (a user who keeps pressing Ctrl-C)."""
    env = {**os.environ, "TMPDIR": str(world_tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "restorecheck", "drill", "--no-progress",
                             "--report", str(world_tmp / "r.json")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(world_tmp.glob(when)):
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    for _ in range(repeat):
        time.sleep(0.02)
        if proc.poll() is not None:
            break
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err.decode()


@pytest.mark.postgres
@pytest.mark.parametrize("sig, word", [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_interrupted_drill_is_one_line_exit_3_and_leaves_nothing(world_tmp: Path, sig: int, word: str) -> None:
    """Ctrl-C used to print click's blank line and a bare 'interrupted': two lines, cause unnamed."""
    code, err = _interrupt_drill(world_tmp, sig, "restorecheck-drill-*")
    assert code == 3, err
    assert word in one_line(err)
    assert json.loads((world_tmp / "r.json").read_text())["verdict"] == "error"
    assert sorted(p.name for p in world_tmp.iterdir()) == ["r.json"]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(world_tmp) not in ps


@pytest.mark.postgres
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_repeated_during_the_cleanup_is_still_one_line_exit_3(world_tmp: Path, sig: int) -> None:
    """A second Ctrl-C used to be able to interrupt the line being written (a traceback) or, once
    the handlers were gone, to kill the process (exit status -2 instead of 3)."""
    code, err = _interrupt_drill(world_tmp, sig, "restorecheck-drill-*", repeat=150)
    assert code == 3, err
    assert "interrupted by" in one_line(err)
    assert sorted(p.name for p in world_tmp.iterdir()) == ["r.json"]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(world_tmp) not in ps


def test_drill_into_an_uncreatable_output_directory_fails_before_seeding(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    code, out, err = run(capsys, "drill", "--engine", "sqlite", "-o", blocker / "kept", "--report",
                         tmp_path / "r.json")
    assert code == 2 and out == ""
    assert "cannot create the output directory" in one_line(err)
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "error"


# --- a stopped tool takes its children with it -----------------------------------------------


def test_run_kills_the_children_of_a_stopped_tool(tmp_path: Path) -> None:
    """initdb forks postgres --single: when a Ctrl-C/SIGTERM/timeout stopped initdb, the orphan kept
    writing into the cluster directory after the cleanup had removed it (a directory left behind)."""
    from restorecheck.runner import run

    late = tmp_path / "written-by-the-orphan"
    script = f"(sleep 1; touch '{late}') & sleep 30"
    assert run(["sh", "-c", script], timeout=0.3).timed_out
    time.sleep(1.5)
    assert not late.exists()


def test_run_kills_the_children_of_a_tool_stopped_by_ctrl_c(tmp_path: Path) -> None:
    """The same for pg_dump / pg_restore run with -j (their workers are children)."""
    import threading

    from restorecheck.runner import run

    late = tmp_path / "written-by-a-worker"
    stop = threading.Timer(0.3, lambda: signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT))
    stop.start()
    with pytest.raises(KeyboardInterrupt):
        run(["sh", "-c", f"(sleep 1; touch '{late}') & sleep 30"], poll=0.05)
    time.sleep(1.5)
    assert not late.exists()


def test_driver_warnings_stay_off_stderr_without_v(capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM during a COPY made psycopg log 'error ignored in rollback ...' twice, bare, through
    Python's last-resort handler: three lines on stderr instead of one."""
    import logging

    from restorecheck.cli import _setup_logging

    _setup_logging(0, False)
    logging.getLogger("psycopg.transaction").warning("error ignored in rollback")
    assert capsys.readouterr().err == ""
    _setup_logging(1, False)
    logging.getLogger("psycopg.transaction").warning("error ignored in rollback")
    assert "error ignored in rollback" in capsys.readouterr().err
    _setup_logging(0, False)


def test_snapshot_to_an_unwritable_manifest_fails_before_reading_the_source(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Checked first: the source here is unreachable, so exit 2 proves nothing was fingerprinted."""
    code, out, err = run(capsys, "snapshot", "postgresql://u:hunter2@127.0.0.1:1/x", "-o",
                         tmp_path / "nope" / "m.json")
    assert code == 2 and out == ""
    line = one_line(err)
    assert "cannot write the -o file" in line and "hunter2" not in err


def test_bare_command_prints_the_help_not_an_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    """It printed 'restorecheck: error: Usage: ...' with the whole help and a '(see --help)' tail."""
    code, out, err = run(capsys)
    assert code == 2 and out == ""
    assert err.startswith("Usage: restorecheck") and "error:" not in err and "see 'restorecheck --help'" not in err


@pytest.mark.parametrize("option, value", [("--lock-timeout", "bogus"), ("--statement-timeout", "10 parsecs"),
                                           ("--compress", "bogus"), ("--compress", "gzip;rm")])
def test_malformed_timeout_or_compression_is_exit_2_up_front(capsys: pytest.CaptureFixture[str],
                                                             option: str, value: str) -> None:
    """They were handed to the source server or pg_dump after a cluster was provisioned and seeded:
    exit 3 with an unrelated hint ('check that the role may read every table')."""
    code, out, err = run(capsys, "drill", option, value)
    assert code == 2 and out == ""
    assert option in one_line(err)


@pytest.mark.parametrize("option, value", [("--lock-timeout", "0"), ("--lock-timeout", "1.5s"),
                                           ("--statement-timeout", "5min"), ("--compress", "gzip:6"),
                                           ("--compress", "0"), ("--compress", "zstd:level=3,long")])
def test_valid_timeouts_and_compressions_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              option: str, value: str) -> None:
    code, _, err = run(capsys, "drill", "--engine", "sqlite", option, value, "-q")
    assert code == 0, err


@pytest.mark.postgres
def test_keep_prints_instructions_that_work_as_printed(world_tmp: Path) -> None:
    """--keep printed a psql URL of the server's 'postgres' database (not the restored one) and, as
    root, a 'pg_ctl stop' that pg_ctl refuses to run as root."""
    import re

    env = {**os.environ, "TMPDIR": str(world_tmp)}
    cmd = [sys.executable, "-m", "restorecheck"]
    out_dir = world_tmp / "kept"
    done = subprocess.run([*cmd, "drill", "-o", str(out_dir), "-q"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    backup = next(out_dir.glob("*.dump"))
    kept = subprocess.run([*cmd, "verify", str(backup), "--keep", "-q"], env=env, capture_output=True, text=True)
    assert kept.returncode == 0, kept.stderr
    url = re.search(r"kept the restored database: PGPASSFILE=(\S+) psql '([^']+)'", kept.stderr)
    stop = re.search(r"stop and remove it with: (.+)$", kept.stderr, re.M)
    assert url and stop, kept.stderr
    try:
        import psycopg

        with psycopg.connect(url.group(2), passfile=url.group(1)) as conn:
            row = conn.execute("SELECT current_database(), count(*) FROM rc_shop.orders").fetchone()
        assert row is not None and row[0].startswith("restorecheck_") and row[1] > 0
    finally:
        stopped = subprocess.run(stop.group(1), shell=True, capture_output=True, text=True)
    assert stopped.returncode == 0, stopped.stderr
    assert sorted(p.name for p in world_tmp.iterdir()) == ["kept"]


def test_compare_writes_an_error_report_for_an_unexpected_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """compare wrote its error report only for restorecheck's own errors, unlike verify and drill."""
    from restorecheck import pipeline

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "compare", boom)
    code, _, err = run(capsys, "compare", "a.json", "b.json", "--report", tmp_path / "r.json")
    assert code == 3 and "internal error" in err and len(err.strip().splitlines()) == 1
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "error"


def test_the_error_report_of_compare_names_the_engine_compared(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """compare's error report always said engine postgresql."""
    src = tmp_path / "src.db"
    assert run(capsys, "seed", src, "-q")[0] == 0
    assert run(capsys, "snapshot", src, "-o", tmp_path / "m.json")[0] == 0
    (tmp_path / "dir").mkdir()
    cases = [
        (src, tmp_path / "dir", 2, "sqlite"),                          # a database side: by its name
        (tmp_path / "m.json", tmp_path / "dir", 2, "sqlite"),           # a manifest side: by its engine
        ("postgresql://u:pw@127.0.0.1:1/db", tmp_path / "m.json", 3, "postgresql"),  # the database side's
    ]
    for a, b, exit_code, engine in cases:
        code, _, err = run(capsys, "compare", a, b, "--report", tmp_path / "r.json")
        assert code == exit_code, err
        doc = json.loads((tmp_path / "r.json").read_text())
        assert doc["verdict"] == "error" and doc["engine"] == engine, (a, b, doc)


def test_manifest_problems_are_one_line_exit_2_naming_the_file(tmp_path: Path, sqlite_backup: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    good = json.loads(sqlite_backup.with_name("app.manifest.json").read_text())
    other = tmp_path / "pg.manifest.json"
    other.write_text(json.dumps({**good, "engine": "postgresql"}))
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**good, "manifest_version": 99}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for manifest, words in ((tmp_path / "missing.json", "does not exist"), (broken, "not valid JSON"),
                            (newer, "upgrade restorecheck"), (other, "is for postgresql")):
        code, out, err = run(capsys, "verify", sqlite_backup, "--manifest", manifest)
        assert code == 2 and out == "", err
        line = one_line(err)
        assert words in line and str(manifest) in line, line
    code, _, err = run(capsys, "verify", sqlite_backup, "--manifest", other, "--against", "x.db")
    assert code == 2 and "not both" in one_line(err)


@pytest.mark.parametrize("target", ["bogus", "docker", "postgresql://u:hunter2@127.0.0.1:1/x"])
def test_sqlite_backup_with_a_postgresql_target_is_exit_2(sqlite_backup: Path, capsys: pytest.CaptureFixture[str],
                                                          target: str) -> None:
    """It was silently ignored (exit 0), even --target bogus: the run did not do what it was asked."""
    code, out, err = run(capsys, "verify", sqlite_backup, "--target", target, "-q")
    assert code == 2 and out == ""
    line = one_line(err)
    assert "--target" in line and "SQLite" in line and "hunter2" not in err
    assert run(capsys, "drill", "--engine", "sqlite", "--target", target, "-q")[0] == 2


def test_sqlite_backup_with_target_local_verifies(sqlite_backup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "verify", sqlite_backup, "--target", "local", "-q") == (0, "", "")
