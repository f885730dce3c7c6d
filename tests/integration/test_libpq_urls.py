"""libpq URL forms reach a real server: a percent-encoded socket directory as the host, and a
list of hosts whose first one is down (psycopg for the snapshot, pg_dump through PGHOST/PGPORT
lists for the backup)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from restorecheck.dburl import PostgresRef

pytestmark = pytest.mark.postgres

EXE = [sys.executable, "-m", "restorecheck"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=300, check=False,
                          stdin=subprocess.DEVNULL)


def test_snapshot_through_a_percent_encoded_socket_directory(fresh_db: PostgresRef, tmp_path: Path) -> None:
    p = fresh_db.params
    assert p["host"].startswith("/")
    # the password comes from the tests' passfile, as a user's would from ~/.pgpass
    url = f"postgresql://{p['user']}@{quote(p['host'], safe='')}:{p['port']}/{p['dbname']}"
    assert "%2F" in url and "?" not in url
    out = run("snapshot", url, "-o", str(tmp_path / "m.json"))
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "m.json").read_text())["database"] == p["dbname"]


def test_backup_through_a_host_list_whose_first_host_is_down(fresh_db: PostgresRef, tmp_path: Path) -> None:
    p = fresh_db.params
    down = quote(str(tmp_path / "no-server-here"), safe="")
    url = f"postgresql://{p['user']}@{down}:{p['port']},{quote(p['host'], safe='')}:{p['port']}/{p['dbname']}"
    out = run("backup", url, "-o", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert sorted(f.name.split(".", 1)[1] for f in (tmp_path / "out").iterdir()) == ["dump", "manifest.json"]
