"""The throwaway database gets the reference's encoding and locale (issue 10, item 5).

Every run used to warn ``database lc_collate: C.UTF-8 -> C``: the throwaway cluster always used
locale C, whatever the source used. Now the database is created with the reference's locale
(manifest or live source; else the dump's own CREATE DATABASE) where the target has it; where it
has not, ONE informational finding says so, never a warning.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from restorecheck import pipeline
from restorecheck.dburl import PostgresRef
from restorecheck.engines.base import BackupOptions, RestoreOptions
from restorecheck.model import Finding, Manifest, Report
from restorecheck.provisioners.base import PgServer
from tests.conftest import EMBEDDED_MAJOR, execute, installation_for

pytestmark = pytest.mark.postgres

DATA = """CREATE TABLE t (id int PRIMARY KEY, name text);
INSERT INTO t SELECT g, 'name ' || g FROM generate_series(1, 50) g;"""


def database_findings(report: Report) -> list[Finding]:
    """The locale's findings (not the database properties', test_database_properties.py)."""
    return [f for f in report.findings if f.object == "database" and "carried" not in f.details
            and "property" not in f.details]


def assert_no_locale_noise(report: Report) -> None:
    assert report.verdict == "pass", [(f.check, f.object, f.message) for f in report.errors]
    assert database_findings(report) == [], database_findings(report)


def test_drill_of_a_c_utf8_source_is_quiet(pg_any: PgServer) -> None:
    with pg_any.fresh_database(lc_collate="C.UTF-8", lc_ctype="C.UTF-8") as source:
        execute(source, DATA)
        report = pipeline.drill(source)
    assert_no_locale_noise(report)
    locale = report.extra["restore"]["locale"]
    assert locale["source"] == "reference" and locale["unavailable"] is None
    assert (locale["used"]["lc_collate"], locale["used"]["lc_ctype"]) == ("C.UTF-8", "C.UTF-8")


def test_a_locale_the_machine_lacks_is_one_info_finding(pg_server: PgServer, tmp_path: Path) -> None:
    with pg_server.fresh_database(lc_collate="C.UTF-8", lc_ctype="C.UTF-8") as source:
        execute(source, DATA)
        made = pipeline.backup(source, tmp_path, BackupOptions(format="custom", name="src"))
    m = Manifest.load(made.manifest_path)
    elsewhere = tmp_path / "elsewhere.manifest.json"
    dataclasses.replace(m, facts={**m.facts, "lc_collate": "xx_XX.UTF-8", "lc_ctype": "xx_XX.UTF-8"}).save(elsewhere)
    report = pipeline.verify(made.artifact.path, manifest=elsewhere, restore=RestoreOptions())
    assert report.verdict == "pass", report.errors
    (f,) = database_findings(report)  # one line: not also the comparison's locale difference
    assert (f.check, f.severity) == ("database", "info")
    assert f.message.startswith("the throwaway database could not get the reference's locale xx_XX.UTF-8: ")
    assert "xx_XX.UTF-8" in f.details["error"] and "install it on this machine" in f.message
    assert not [w for w in report.warnings if "lc_" in w.message or "locale" in w.message]
    assert report.extra["restore"]["locale"]["used"] == {}


def _pg_dump(server: PgServer, source: PostgresRef, out: Path, *args: str) -> Path:
    assert server.tools is not None
    subprocess.run([str(server.tools.tool("pg_dump")), *args, "-f", str(out)],
                   env={**os.environ, **source.child_env()}, check=True, capture_output=True)
    return out


def test_without_a_reference_the_dump_says_which_locale(pg_server: PgServer, tmp_path: Path) -> None:
    with pg_server.fresh_database(lc_collate="C.UTF-8", lc_ctype="C.UTF-8") as source:
        execute(source, DATA)
        plain = _pg_dump(pg_server, source, tmp_path / "c.sql", "-C")
        archive = _pg_dump(pg_server, source, tmp_path / "c.dump", "-Fc")  # archives always carry it
    for dump in (plain, archive):
        report = pipeline.verify(dump, restore=RestoreOptions())
        assert report.verdict == "pass" and report.reference == "none"
        assert database_findings(report) == []
        locale = report.extra["restore"]["locale"]
        assert locale["source"] == "dump" and locale["used"]["lc_collate"] == "C.UTF-8", locale
    lacking = tmp_path / "lacking.sql"
    lacking.write_text(plain.read_text().replace("LOCALE = 'C.UTF-8'", "LOCALE = 'xx_XX.UTF-8'"))
    report = pipeline.verify(lacking, restore=RestoreOptions())
    assert report.verdict == "pass"
    (f,) = database_findings(report)
    assert (f.check, f.severity) == ("database", "info")
    assert f.message.startswith("the throwaway database could not get the dump's locale xx_XX.UTF-8")


def test_icu_database_keeps_icu_and_falls_back_where_there_is_none(pg15: PgServer, tmp_path: Path) -> None:
    with pg15.fresh_database(lc_collate="C.UTF-8", lc_ctype="C.UTF-8", locale_provider="icu",
                             icu_locale="en-US") as source:
        execute(source, DATA)
        made = pipeline.backup(source, tmp_path, BackupOptions(format="custom", name="icu"))
    assert made.manifest.facts["locale_provider"] == "icu" and made.manifest.facts["icu_locale"] == "en-US"
    report = pipeline.verify(made.artifact.path, restore=RestoreOptions())
    assert_no_locale_noise(report)
    used = report.extra["restore"]["locale"]["used"]
    assert (used["locale_provider"], used["icu_locale"]) == ("icu", "en-US")
    # the embedded PostgreSQL is built without ICU: the libc part, and one line that says so
    embedded = installation_for(EMBEDDED_MAJOR)
    report = pipeline.verify(made.artifact.path, restore=RestoreOptions(pg_bin=str(embedded.bindir)))
    assert report.verdict == "pass", report.errors
    if report.extra["restore"]["locale"]["unavailable"] is None:
        pytest.skip(f"PostgreSQL {embedded.version} here has ICU: nothing to fall back from")
    (f,) = database_findings(report)
    assert (f.check, f.severity) == ("database", "info")
    assert "ICU locale en-US" in f.message and "it has locale C.UTF-8" in f.message, f.message
    assert report.extra["restore"]["locale"]["used"] == {"lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8",
                                                         "locale_provider": "libc"}
