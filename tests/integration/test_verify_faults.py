"""verify on real pg_dump output: clean backups pass, every injected fault fails with its finding.

The faults are made by editing copies of real dumps of a real database. Content faults are
judged against a manifest without the backup's sha256, so that the content checks themselves
(not the file digest) are shown to catch them; the digest check has its own test.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from restorecheck import pipeline
from restorecheck.dburl import PostgresRef
from restorecheck.engines.base import BackupOptions, RestoreOptions
from restorecheck.engines.pg_dump import sha256_of
from restorecheck.model import Manifest, Report
from restorecheck.provisioners.base import PgServer
from tests.integration import pg5_helpers as h

pytestmark = pytest.mark.postgres


@dataclasses.dataclass
class Dumps:
    source: PostgresRef
    server: PgServer
    dir: Path
    custom: Path  # -Z0: data blocks stored uncompressed
    plain: Path
    manifest: Path  # written by backup, with the custom dump's sha256
    content_manifest: Path  # the same, without a backup digest


@pytest.fixture(scope="module")
def dumps(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dumps]:
    out = tmp_path_factory.mktemp("dumps")
    with pg_server.fresh_database() as ref:
        h.build_source(ref)
        custom = pipeline.backup(ref, out, BackupOptions(format="custom", compress="0", name="shop"))
        plain = pipeline.backup(ref, out, BackupOptions(format="plain", name="shop-plain"))
        content = out / "content.manifest.json"
        dataclasses.replace(custom.manifest, backup=None).save(content)
        yield Dumps(ref, pg_server, out, Path(custom.artifact.path), Path(plain.artifact.path),
                    custom.manifest_path, content)


def verify(path: Path, manifest: Path | None = None, **kw: object) -> Report:
    before = sha256_of(path)
    report = pipeline.verify(path, manifest=manifest, restore=RestoreOptions(), **kw)  # type: ignore[arg-type]
    assert sha256_of(path) == before, "verify modified the backup"
    h.validate_report(report)
    return report


def assert_fails_with(report: Report, *expected: str) -> None:
    assert report.verdict == "fail", report.findings
    missing = set(expected) - h.checks(report)
    assert not missing, f"expected {missing} among {[(f.check, f.message) for f in report.findings]}"


# --- clean cases ------------------------------------------------------------------------------


def test_clean_custom_passes_with_the_manifest_beside_it(dumps: Dumps) -> None:
    report = verify(dumps.custom)
    assert report.verdict == "pass", report.findings
    assert report.reference == "manifest"
    assert {t.name for t in report.tables} == {"public.parent", "public.child"}
    assert all(t.match for t in report.tables)
    assert report.extra["restore"]["roles_created"] == ["rc5 reader", "rc5_owner"]


def test_clean_plain_and_gzip_pass(dumps: Dumps, tmp_path: Path) -> None:
    assert verify(dumps.plain, dumps.content_manifest).verdict == "pass"
    gz = tmp_path / "shop.sql.gz"
    gz.write_bytes(gzip.compress(dumps.plain.read_bytes()))
    report = verify(gz, dumps.content_manifest)
    assert report.verdict == "pass", report.findings
    assert report.backup is not None and report.backup.format == "plain-gzip"


def test_no_reference_runs_what_needs_none_and_says_so(dumps: Dumps, tmp_path: Path) -> None:
    lone = tmp_path / "lone.dump"
    lone.write_bytes(dumps.custom.read_bytes())
    report = verify(lone)
    assert report.reference == "none"
    assert report.verdict == "pass"
    assert h.checks(report, "warning") >= {"no_reference"}
    assert all(t.rows_expected is None and t.rows_restored is not None for t in report.tables)


def test_against_the_live_source(dumps: Dumps) -> None:
    report = verify(dumps.custom, None, against=dumps.source)
    assert report.reference == "live" and report.verdict == "pass", report.findings


# --- faults in archives -----------------------------------------------------------------------


def test_truncated_custom_archive(dumps: Dumps, tmp_path: Path) -> None:
    data = dumps.custom.read_bytes()
    cut = tmp_path / "cut.dump"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    report = verify(cut, dumps.content_manifest)
    assert_fails_with(report, "backup_file", "restore_errors")


def test_byte_changed_inside_uncompressed_data(dumps: Dumps, tmp_path: Path) -> None:
    data = bytearray(dumps.custom.read_bytes())
    at = data.index(b"flip-target-Alpha") + len("flip-target-")
    data[at] = ord("a")
    flipped = tmp_path / "flipped.dump"
    flipped.write_bytes(bytes(data))
    report = verify(flipped, dumps.content_manifest)
    assert_fails_with(report, "checksum")
    assert "restore_errors" not in h.checks(report)  # pg_restore itself notices nothing (PITFALLS B4)
    bad = [t for t in report.tables if not t.match]
    assert [t.name for t in bad] == ["public.child"] and bad[0].rows_restored == bad[0].rows_expected
    # with the manifest written by backup, the file digest catches it too
    assert "backup_file" in h.checks(verify(flipped, dumps.manifest))


def test_dump_with_exclude_table_data(dumps: Dumps, tmp_path: Path) -> None:
    assert dumps.server.tools is not None
    out = tmp_path / "excluded.dump"
    subprocess.run([str(dumps.server.tools.tool("pg_dump")), "-Fc", "--exclude-table-data=public.child",
                    "-f", str(out)], env={**__import__("os").environ, **dumps.source.child_env()}, check=True)
    report = verify(out, dumps.content_manifest)
    assert_fails_with(report, "row_count")
    child = next(t for t in report.tables if t.name == "public.child")
    assert child.rows_expected == 2000 and child.rows_restored == 0


# --- faults in plain dumps --------------------------------------------------------------------


@pytest.mark.parametrize(("edit", "expected"), [
    (h.cut_inside_copy, ("backup_file",)),
    (h.drop_row, ("row_count",)),
    (h.change_value, ("checksum",)),
    (h.drop_table_data, ("row_count",)),
    (h.lower_setval, ("sequence",)),
    (h.drop_index_and_fk, ("schema",)),
    (h.add_orphan_without_fk, ("row_count", "schema")),
    (h.failing_statement, ("restore_errors", "row_count")),
], ids=["cut-in-copy", "row-removed", "value-changed", "table-data-removed", "setval-lowered",
        "index-and-fk-removed", "orphan-added-fk-removed", "restore-error-stops-psql"])
def test_plain_dump_faults(dumps: Dumps, tmp_path: Path, edit: object, expected: tuple[str, ...]) -> None:
    faulty = h.edit_plain(dumps.plain, tmp_path / "faulty.sql", edit)
    report = verify(faulty, dumps.content_manifest)
    assert_fails_with(report, *expected)


def test_gzip_cut_short(dumps: Dumps, tmp_path: Path) -> None:
    data = gzip.compress(dumps.plain.read_bytes())
    gz = tmp_path / "cut.sql.gz"
    gz.write_bytes(data[: len(data) // 2])
    report = verify(gz, dumps.content_manifest)
    assert_fails_with(report, "backup_file")
    assert any("gzip" in f.message for f in report.findings if f.check == "backup_file")


def test_sha256_mismatch_with_manifest_beside(dumps: Dumps, tmp_path: Path) -> None:
    copy = tmp_path / "shop.dump"
    data = bytearray(dumps.custom.read_bytes())
    data[-1] ^= 0x01
    copy.write_bytes(bytes(data))
    Manifest.load(dumps.manifest).save(tmp_path / "shop.manifest.json")
    report = verify(copy)
    assert report.reference == "manifest"
    assert "backup_file" in h.checks(report)


def test_gzip_of_a_custom_archive(dumps: Dumps, tmp_path: Path) -> None:
    gz = tmp_path / "shop.dump.gz"
    gz.write_bytes(gzip.compress(dumps.custom.read_bytes()))
    report = verify(gz, dumps.content_manifest)
    assert report.verdict == "pass", report.findings
    assert report.backup is not None and (report.backup.format, report.backup.compression) == ("custom", "gzip")
    assert report.extra["source"]["layers"] == ["gzip"]
    assert report.extra["restore"]["restore_tool"] == "pg_restore"


def test_plain_15_dump_into_an_existing_18_server(dumps: Dumps, pg18: PgServer) -> None:
    """--target URL --trust-backup: only a database and the dump's roles are created there, and
    removed after; the cross-major case of a plain dump (pg_dump 15 writes \\restrict, psql 18
    honours it). (Without --trust-backup: tests/integration/test_server_target_hostile.py.)"""
    admin = pg18.admin  # over its socket: in the sandbox the fixture server has no network
    # other tests in this session may have made the roles on this server (their databases are gone)
    h.execute(pg18.admin, 'DROP ROLE IF EXISTS rc5_owner, "rc5 reader"')
    url = (f"postgresql://{admin.params['user']}:{admin.password}@/postgres"
           f"?host={admin.params['host']}&port={admin.params['port']}")
    roles_before = {r[0] for r in h.execute(pg18.admin, "SELECT rolname FROM pg_roles")}
    dbs_before = {r[0] for r in h.execute(pg18.admin, "SELECT datname FROM pg_database")}
    report = pipeline.verify(dumps.plain, manifest=dumps.content_manifest,
                             restore=RestoreOptions(target=url, trust_backup=True))
    assert report.verdict == "pass", [(f.check, f.message) for f in report.findings]
    info = report.extra["restore"]
    assert info["target_kind"] == "server" and info["server_version"].startswith("18")
    assert info["restored_as"] == "the target URL's role"
    assert info["roles_created"] == ["rc5 reader", "rc5_owner"]
    assert {r[0] for r in h.execute(pg18.admin, "SELECT rolname FROM pg_roles")} == roles_before
    assert {r[0] for r in h.execute(pg18.admin, "SELECT datname FROM pg_database")} == dbs_before
    assert admin.password and admin.password not in json.dumps(report.to_dict())  # the target URL is masked
    assert report.target is not None and "***" in report.target


def test_strict_manifest_from_snapshot(dumps: Dumps, tmp_path: Path) -> None:
    """A manifest from 'restorecheck snapshot --strict': the restored copy is hashed the same way."""
    from restorecheck.engines.base import FingerprintOptions

    manifest = pipeline.snapshot(dumps.source, FingerprintOptions(strict=True))
    path = tmp_path / "strict.manifest.json"
    manifest.save(path)
    report = verify(dumps.custom, path)
    assert report.verdict == "pass", [(f.check, f.message) for f in report.findings]


def test_plain_dump_with_create_database(dumps: Dumps, tmp_path: Path) -> None:
    """pg_dump -C: the script would create and \\connect to its own database; restorecheck restores
    it into the database it created, and the comparison passes."""
    import os

    assert dumps.server.tools is not None
    out = tmp_path / "withdb.sql"
    subprocess.run([str(dumps.server.tools.tool("pg_dump")), "-C", "-Fp", "-f", str(out)],
                   env={**os.environ, **dumps.source.child_env()}, check=True)
    assert "\\connect" in out.read_text()
    report = verify(out, dumps.content_manifest)
    assert report.verdict == "pass", [(f.check, f.message) for f in report.findings]
    assert report.extra["restore"]["database_lines_left_out"] >= 2
