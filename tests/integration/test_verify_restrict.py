"""A plain dump with \\restrict (CVE-2025-8714) needs a psql that honours it; restorecheck never
strips it (that would let a hostile source's dump run psql meta-commands in the verifier)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from restorecheck.cli import run_cli
from restorecheck.engines import pg_dump as pgd
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute

pytestmark = pytest.mark.postgres


def test_no_psql_that_knows_restrict_is_an_environment_failure(
    pg15: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pg15.fresh_database() as ref:
        execute(ref, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        dump = tmp_path / "plain.sql"
        assert pg15.tools is not None
        subprocess.run([str(pg15.tools.tool("pg_dump")), "-Fp", "-f", str(dump)], env={**ref.child_env()},
                       check=True)
    text = dump.read_text()
    if "\\restrict" not in text:
        pytest.skip(f"pg_dump {pg15.version} writes no \\restrict (before 15.14)")
    before = dump.read_bytes()
    monkeypatch.setattr(pgd, "psql_knows_restrict", lambda version: False)
    code = run_cli(["verify", str(dump), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "\\restrict" in err and "current PostgreSQL client" in err and len(err.strip().splitlines()) == 1
    assert dump.read_bytes() == before
