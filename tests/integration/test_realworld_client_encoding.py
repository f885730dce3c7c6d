"""A UTF8 database whose sessions default to another client_encoding, and other per-database settings.

``ALTER DATABASE ... SET client_encoding = 'LATIN1'`` (legacy applications do this; a
PGCLIENTENCODING in the environment has the same effect) made pg_dump write the dump in LATIN1;
verify then restored into a LATIN1 database, so every non-ASCII value hashed differently and a
faithful backup was judged failed. restorecheck's pg_dump now writes in the database's encoding.
The other settings (DateStyle, TimeZone, IntervalStyle, extra_float_digits, bytea_output,
search_path, default_transaction_read_only) are pinned by the fingerprint and must not matter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from restorecheck import pipeline
from restorecheck.engines.base import RestoreOptions
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TABLE t (id int PRIMARY KEY, name text, ts timestamptz, iv interval, f float8, b bytea, j json);
INSERT INTO t SELECT g, 'café ' || g, '2024-03-10 12:00+00'::timestamptz + g * interval '1 hour',
       g * interval '90 minutes', g / 7.0, '\\x00ff', '{"é": 1}' FROM generate_series(1, 200) g;
"""

SETTINGS = {
    "client_encoding": "LATIN1", "DateStyle": "SQL, DMY", "TimeZone": "America/New_York",
    "IntervalStyle": "iso_8601", "extra_float_digits": "0", "bytea_output": "escape", "search_path": "",
    "default_transaction_read_only": "on",
}


@pytest.mark.parametrize("fmt", ["custom", "plain"])
def test_database_level_session_settings_do_not_fail_a_faithful_backup(pg_server: PgServer, tmp_path: Path,
                                                                       fmt: str) -> None:
    with pg_server.fresh_database() as ref:
        execute(ref, SCHEMA)
        for name, value in SETTINGS.items():
            execute(pg_server.admin, f"ALTER DATABASE \"{ref.dbname}\" SET {name} = '{value}'")
        result = pipeline.backup(ref, tmp_path / "out", pipeline.BackupOptions(format=fmt))
    report = pipeline.verify(result.artifact.path, restore=RestoreOptions(target="local"))
    assert report.verdict == "pass", [f.message for f in report.findings]
    assert report.extra["restore"]["encoding"] == "UTF8"
    assert not report.findings
