"""The console script as users meet it: version, doctor, exit codes, one-line errors, no secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import installations

EXE = [sys.executable, "-m", "restorecheck"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)


def test_version_and_help() -> None:
    from restorecheck import __version__

    out = run("--version")
    assert out.returncode == 0 and __version__ in out.stdout
    helptext = run("--help").stdout
    for command in ("seed", "snapshot", "backup", "verify", "drill", "compare", "doctor"):
        assert command in helptext, f"{command} missing from --help"


@pytest.mark.postgres
def test_doctor_lists_local_with_every_major_and_docker_with_its_reason() -> None:
    out = run("doctor", "--json")
    data = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr
    prov = {p["name"]: p for p in data["provisioners"]}
    assert prov["local"]["usable"] and prov["sqlite"]["usable"]
    majors = {i["major"] for i in data["postgresql"]}
    assert majors >= {i.major for i in installations()}
    for major in majors:
        assert f"PostgreSQL {major}." in prov["local"]["detail"]
    if not prov["docker"]["usable"]:
        assert prov["docker"]["detail"] and "--target local" in prov["docker"]["remedy"]
    human = run("doctor")
    assert human.returncode == 0 and "local" in human.stdout and "docker" in human.stdout


def test_unknown_command_is_usage_error_without_traceback() -> None:
    out = run("frobnicate")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_verify_missing_file_is_exit_2_one_line(tmp_path: Path) -> None:
    out = run("verify", str(tmp_path / "nope.dump"))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.dump" in lines[0] and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_unreachable_source_is_exit_3_and_never_prints_the_password(tmp_path: Path) -> None:
    url = "postgresql://alice:Sup3rSecretPw@127.0.0.1:1/app"
    for args in (("snapshot", url, "-o", str(tmp_path / "m.json")),
                 ("backup", url, "-o", str(tmp_path / "out")),
                 ("drill", url)):
        out = run("-v", *args)
        assert out.returncode == 3, (args, out.stdout, out.stderr)
        assert "Sup3rSecretPw" not in out.stdout + out.stderr
        assert "127.0.0.1" in out.stderr
    assert not (tmp_path / "m.json").exists()


def test_malformed_url_is_exit_2() -> None:
    out = run("snapshot", "postgresql://u:pw@h:port/db", "-o", "/dev/null")
    assert out.returncode == 2
    assert "pw@" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_human_output_prints_brackets_verbatim(tmp_path: Path) -> None:
    """Names and remedies with [brackets] must not be eaten as rich markup."""
    import sqlite3

    db = tmp_path / "x.db"
    with sqlite3.connect(db) as conn:
        conn.execute('CREATE TABLE "orders[2024]" (id INTEGER PRIMARY KEY, note TEXT)')
        conn.execute("INSERT INTO \"orders[2024]\" VALUES (1, '[bold]x[/bold]')")
    conn.close()
    out = run("drill", str(db), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "orders[2024]" in out.stdout
    doctor = run("doctor").stdout
    if "testcontainers package is not installed" in doctor:
        assert "restorecheck[docker]" in doctor


def test_rendered_reports_and_doctor_keep_bracketed_text() -> None:
    from restorecheck.doctor import Diagnosis, ProvisionerStatus, render_doctor
    from restorecheck.model import Finding, Report, TableResult
    from restorecheck.report import render_human

    report = Report(verdict="fail", engine="sqlite", reference="manifest",
                    tables=(TableResult("main.t[bold]", 1, 0, "a", "b", False),),
                    findings=(Finding("row_count", "error", "main.t[bold]", "see [docker] and [red]x[/red]"),))
    text = render_human(report)
    assert "main.t[bold]" in text and "[docker]" in text and "[red]x[/red]" in text
    import contextlib
    import io

    diag = Diagnosis(provisioners=(ProvisionerStatus("docker", False, "why", "pip install 'restorecheck[docker]'"),),
                     installations=(), sqlite_version="3", python="3.11", running_as_root=False)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        render_doctor(diag)
    assert "restorecheck[docker]" in buf.getvalue()


@pytest.mark.parametrize("name", ["nightly.dump", "app.db"])
def test_an_empty_backup_file_is_a_failed_verification(tmp_path: Path, name: str) -> None:
    """`pg_dump db > f` that failed at once leaves an empty file: that is a failed backup (exit 1)."""
    backup = tmp_path / name
    backup.touch()
    report = tmp_path / "r.json"
    out = run("verify", str(backup), "--report", str(report), "--no-progress")
    assert out.returncode == 1, out.stderr
    data = json.loads(report.read_text())
    assert data["verdict"] == "fail"
    assert [f["check"] for f in data["findings"]] == ["backup_file"]
    assert "empty" in data["findings"][0]["message"]
    assert data["engine"] == ("sqlite" if name.endswith(".db") else "postgresql")
    assert backup.stat().st_size == 0


@pytest.mark.postgres
def test_debug_logs_every_external_command_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--debug names each program run (the sandbox around it included), never a password."""
    from restorecheck.cli import run_cli as cli_main

    dump = tmp_path / "d.sql"
    dump.write_text("--\n-- PostgreSQL database dump\n--\nCREATE TABLE t (a int);\n"
                    "--\n-- PostgreSQL database dump complete\n--\n")
    rc = cli_main(["--debug", "verify", str(dump), "--no-progress", "-q"])
    err = capsys.readouterr().err
    assert rc == 0, err
    runs = [ln for ln in err.splitlines() if "run: " in ln]
    # the cluster comes from initdb, or from the template with its password set by postgres --single
    assert any("initdb" in ln or "--single" in ln for ln in runs) and any("psql" in ln for ln in runs), runs
    assert "PGPASSWORD" not in err and "password=" not in err
