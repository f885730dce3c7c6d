"""restorecheck snapshot / compare on the command line: exit codes, reports, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from restorecheck.cli import run_cli
from restorecheck.dburl import PostgresRef
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute, url
from tests.integration.pg_shop import create_shop, template_copy

pytestmark = pytest.mark.postgres


def test_snapshot_then_compare(pg_server: PgServer, fresh_db: PostgresRef, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    create_shop(fresh_db)
    manifest = tmp_path / "shop.manifest.json"
    assert run_cli(["snapshot", url(fresh_db), "-o", str(manifest), "--jobs", "2"]) == 0
    assert json.loads(manifest.read_text())["manifest_version"] == 1
    assert run_cli(["compare", str(manifest), url(fresh_db), "-q"]) == 0
    with template_copy(pg_server, fresh_db) as copy:
        execute(copy, "DELETE FROM shop.orders WHERE id = 3")
        report = tmp_path / "report.json"
        junit = tmp_path / "junit.xml"
        capsys.readouterr()
        code = run_cli(["compare", url(fresh_db), url(copy), "--report", str(report),
                        "--junit", str(junit)])
        assert code == 1
        data = json.loads(report.read_text())
        assert data["verdict"] == "fail" and data["command"] == "compare" and data["reference"] == "live"
        f = next(f for f in data["findings"] if f["check"] == "row_count")
        assert f["object"] == "shop.orders" and f["details"]["keys"] == [{"key": ["3"], "change": "missing"}]
        assert junit.read_text().startswith("<?xml")
        assert "shop.orders" in capsys.readouterr().out


def test_bad_input_is_exit_2_with_one_line(tmp_path: Path, fresh_db: PostgresRef,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert run_cli(["compare", str(bad), url(fresh_db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not valid JSON" in err[0]
    assert run_cli(["compare", str(tmp_path / "missing.json"), url(fresh_db)]) == 2
    assert run_cli(["snapshot", "postgresql://nobody@127.0.0.1:1/x", "-o", str(tmp_path / "m.json")]) == 3
