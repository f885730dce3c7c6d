"""restorecheck verify from the command line: exit codes, one-line errors, the report files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from restorecheck import pipeline
from restorecheck.cli import run_cli
from restorecheck.dburl import PostgresRef
from restorecheck.engines.base import BackupOptions
from restorecheck.provisioners.base import PgServer
from tests.integration import pg5_helpers as h

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def backup_file(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, PostgresRef]]:
    out = tmp_path_factory.mktemp("cli")
    with pg_server.fresh_database() as ref:
        h.build_source(ref)
        result = pipeline.backup(ref, out, BackupOptions(name="shop"))
        yield Path(result.artifact.path), ref


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def validate_file(path: Path) -> dict[str, object]:
    doc = json.loads(path.read_text())
    from importlib import resources

    import jsonschema

    schema = json.loads(resources.files("restorecheck").joinpath("data/report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    return doc  # type: ignore[no-any-return]


def test_pass_writes_every_report_and_quiet_prints_nothing(backup_file: tuple[Path, PostgresRef],
                                                           tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = backup_file
    rc = run_cli(["verify", str(path), "--quiet", "--report", str(tmp_path / "r.json"),
                  "--junit", str(tmp_path / "j.xml"), "--metrics", str(tmp_path / "m.prom")])
    captured = capsys.readouterr()
    assert rc == 0 and captured.out == ""
    doc = validate_file(tmp_path / "r.json")
    assert doc["verdict"] == "pass" and doc["reference"] == "manifest"
    cases = ET.parse(tmp_path / "j.xml").getroot().findall(".//testcase")
    assert {c.get("name") for c in cases} >= {"public.parent", "public.child", "row_count", "checksum"}
    assert 'restorecheck_success{engine="postgresql",command="verify"} 1' in (tmp_path / "m.prom").read_text()


def test_report_to_stdout_keeps_stdout_json(backup_file: tuple[Path, PostgresRef],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = backup_file
    rc = run_cli(["verify", str(path), "--report", "-", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0
    assert json.loads(captured.out)["verdict"] == "pass"
    assert "PASS" in captured.err


def test_failure_exit_1_with_report(backup_file: tuple[Path, PostgresRef], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = backup_file
    cut = tmp_path / "cut.dump"
    cut.write_bytes(path.read_bytes()[:4000])
    rc = run_cli(["verify", str(cut), "--manifest", str(path.with_name("shop.manifest.json")), "--quiet",
                  "--report", str(tmp_path / "r.json"), "--max-restore-seconds", "3600"])
    out = capsys.readouterr().out
    assert rc == 1
    assert out.startswith("FAIL")  # --quiet still prints a failure, for cron's mail
    doc = validate_file(tmp_path / "r.json")
    assert doc["verdict"] == "fail"


def test_rto_target(backup_file: tuple[Path, PostgresRef], tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = backup_file
    rc = run_cli(["verify", str(path), "--max-restore-seconds", "0", "--report", str(tmp_path / "r.json")])
    capsys.readouterr()
    assert rc == 1
    doc = validate_file(tmp_path / "r.json")
    assert [f["check"] for f in doc["findings"] if f["severity"] == "error"] == ["rto"]  # type: ignore[index,union-attr]


def test_bad_input_is_exit_2_with_one_line(backup_file: tuple[Path, PostgresRef], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = backup_file
    assert run_cli(["verify", str(tmp_path / "missing.dump")]) == 2
    assert "does not exist" in one_error_line(capsys)
    junk = tmp_path / "notes.dump"
    junk.write_bytes(b"\x00\x01 just some binary junk \xff" * 40)
    assert run_cli(["verify", str(junk), "--report", str(tmp_path / "err.json")]) == 2
    assert "not a backup restorecheck recognises" in one_error_line(capsys)
    doc = validate_file(tmp_path / "err.json")
    assert doc["verdict"] == "error" and doc["error"]
    bad_manifest = tmp_path / "bad.manifest.json"
    bad_manifest.write_text("{not json")
    assert run_cli(["verify", str(path), "--manifest", str(bad_manifest)]) == 2
    assert "not valid JSON" in one_error_line(capsys)
    assert run_cli(["verify", str(path), "--against", "postgresql://u:secret@host:notaport/db"]) == 2
    line = one_error_line(capsys)
    assert "secret" not in line and "port" in line


def test_unreachable_source_is_exit_3(backup_file: tuple[Path, PostgresRef], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = backup_file
    rc = run_cli(["verify", str(path), "--against", "postgresql://nobody:pw@127.0.0.1:1/db",
                  "--report", str(tmp_path / "r.json")])
    assert rc == 3
    line = one_error_line(capsys)
    assert "pw@" not in line
    assert validate_file(tmp_path / "r.json")["verdict"] == "error"


def test_archive_from_a_newer_pg_dump_is_an_environment_failure(backup_file: tuple[Path, PostgresRef],
                                                                tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = backup_file
    data = bytearray(path.read_bytes())
    assert data[:5] == b"PGDMP"
    data[6] = 20  # archive format version 1.20: plausible, but no pg_restore here reads it
    newer = tmp_path / "future.dump"
    newer.write_bytes(bytes(data))
    assert run_cli(["verify", str(newer)]) == 3
    assert "newer pg_dump" in one_error_line(capsys)
    data[6] = 200  # a garbled version byte: a corrupt backup, exit 1
    newer.write_bytes(bytes(data))
    assert run_cli(["verify", str(newer), "--quiet"]) == 1
    assert "table of contents cannot be read" in capsys.readouterr().out
