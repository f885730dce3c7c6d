"""Backup faults no other test covered: each one is built for real (pg_dump options that silently
lose things, edited plain dumps, damaged archives, a wrong manifest) and verify must judge it
failed (exit 1) with the right check id, against the manifest that ``restorecheck backup`` wrote
for the faithful source, or against the live source.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from restorecheck import pipeline
from restorecheck.dburl import PostgresRef
from restorecheck.engines.base import BackupOptions, RestoreOptions
from restorecheck.engines.pg_dump import sha256_of
from restorecheck.model import Report
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute
from tests.integration import pg5_helpers as h
from tests.integration.pg_shop import create_shop

pytestmark = pytest.mark.postgres

EXTRA_SQL = r"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rc_fault_owner') THEN
    CREATE ROLE rc_fault_owner NOLOGIN;
  END IF;
END $$;
ALTER TABLE shop.nokey OWNER TO rc_fault_owner;
CREATE SCHEMA other;
CREATE TABLE other.things (id integer PRIMARY KEY, what text);
INSERT INTO other.things SELECT g, 'thing ' || g FROM generate_series(1, 30) g;
CREATE UNLOGGED TABLE shop.scratch (id integer PRIMARY KEY, v text);
INSERT INTO shop.scratch SELECT g, 'v' || g FROM generate_series(1, 40) g;
CREATE PUBLICATION rc_fault_pub FOR TABLE shop.customers;
CREATE TABLE shop.audited (id integer PRIMARY KEY);
CREATE FUNCTION shop.audit_noop() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NEW; END $f$;
CREATE TRIGGER audited_trg BEFORE INSERT ON shop.audited FOR EACH ROW EXECUTE FUNCTION shop.audit_noop();
ALTER TABLE shop.audited DISABLE TRIGGER audited_trg;
INSERT INTO shop.audited SELECT generate_series(1, 10);
"""


@dataclasses.dataclass
class Src:
    source: PostgresRef
    server: PgServer
    custom: Path
    plain: Path
    manifest: Path  # written by backup for the custom dump, without the file's sha256
    digest_manifest: Path  # the same with the sha256 (any other file fails on the digest alone)

    def pg_dump(self, out: Path, *args: str) -> Path:
        assert self.server.tools is not None
        subprocess.run([str(self.server.tools.tool("pg_dump")), *args, "-f", str(out)],
                       env={**os.environ, **self.source.child_env()}, check=True,
                       capture_output=True)
        return out


@pytest.fixture(scope="module")
def src(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Src]:
    out = tmp_path_factory.mktemp("faults")
    with pg_server.fresh_database() as ref:
        create_shop(ref)
        execute(ref, EXTRA_SQL)
        custom = pipeline.backup(ref, out, BackupOptions(format="custom", name="shop"))
        plain = pipeline.backup(ref, out, BackupOptions(format="plain", name="shop-plain"))
        # content faults are judged without the backup digest, so that the content checks
        # themselves (not the digest of a file that differs anyway) are shown to catch them
        content = out / "content.manifest.json"
        dataclasses.replace(custom.manifest, backup=None).save(content)
        yield Src(ref, pg_server, Path(custom.artifact.path), Path(plain.artifact.path), content,
                  custom.manifest_path)


def verify(path: Path, manifest: Path | None = None, **kw: object) -> Report:
    before = sha256_of(path) if path.is_file() else None
    report = pipeline.verify(path, manifest=manifest, restore=RestoreOptions(), **kw)  # type: ignore[arg-type]
    if before is not None:
        assert sha256_of(path) == before, "verify modified the backup"
    h.validate_report(report)
    return report


def errors(report: Report) -> list[tuple[str, str, str]]:
    return [(f.check, f.object, f.message) for f in report.findings if f.severity == "error"]


def assert_fails_with(report: Report, *expected: str) -> None:
    assert report.verdict == "fail", report.findings
    # exit 1 is exactly verdict fail (cli.py); a crash would raise out of pipeline.verify
    missing = set(expected) - h.checks(report)
    assert not missing, f"expected {missing} among {errors(report)}"


def has_error(report: Report, check: str, obj: str) -> bool:
    return any(c == check and o == obj for c, o, _ in errors(report))


# --- the faithful backups pass ------------------------------------------------------------------


def test_faithful_backups_pass(src: Src) -> None:
    for manifest in (src.manifest, src.digest_manifest):
        report = verify(src.custom, manifest)
        assert report.verdict == "pass", errors(report)
    report = verify(src.plain, None, against=src.source)
    assert report.verdict == "pass", errors(report)


# --- pg_dump options that silently lose things ---------------------------------------------------

OPTION_FAULTS = [
    (("--schema-only",), {("row_count", "shop.orders"), ("large_objects", "large objects")}),
    (("-n", "shop"), {("large_objects", "large objects"), ("table_missing", "other.things")}),
    (("-T", "shop.log"), {("table_missing", "shop.log")}),
    (("--no-owner",), {("schema", "shop.nokey")}),
    (("--no-acl",), {("schema", "shop.orders")}),
    (("-x",), {("schema", "shop.customers")}),
    (("--no-comments",), {("schema", "shop.orders")}),
    (("--no-unlogged-table-data",), {("row_count", "shop.scratch")}),
    (("--no-blobs",), {("large_objects", "large objects")}),
    (("-B",), {("large_objects", "large objects")}),
    (("--exclude-table-data=other.things",), {("row_count", "other.things")}),
    (("--no-publications",), {("schema", "")}),
    (("--section=pre-data",), {("row_count", "shop.orders"), ("schema", "shop.orders_created_idx")}),
]


@pytest.mark.parametrize(("options", "expected"), OPTION_FAULTS, ids=[" ".join(o) for o, _ in OPTION_FAULTS])
def test_lossy_pg_dump_option(src: Src, tmp_path: Path, options: tuple[str, ...],
                              expected: set[tuple[str, str]]) -> None:
    # -O/--no-owner only changes plain scripts (archives keep the owners; pg_restore -O drops them)
    fmt = "-Fp" if "--no-owner" in options else "-Fc"
    dump = src.pg_dump(tmp_path / "lossy.dump", fmt, *options)
    report = verify(dump, src.manifest)
    assert report.verdict == "fail", errors(report)
    for check, obj in expected:
        if obj:
            assert has_error(report, check, obj), f"{check} {obj} not among {errors(report)}"
        else:
            assert check in h.checks(report), errors(report)


def test_no_publications_names_the_publication(src: Src, tmp_path: Path) -> None:
    dump = src.pg_dump(tmp_path / "nopub.dump", "-Fc", "--no-publications")
    report = verify(dump, None, against=src.source)
    assert_fails_with(report, "schema")
    assert any("rc_fault_pub" in o or "rc_fault_pub" in m for c, o, m in errors(report) if c == "schema"), \
        errors(report)


# --- materialized views, triggers, NOT VALID foreign keys (edited plain dumps) -------------------


def test_stale_matview_at_the_source_is_a_warning(pg_server: PgServer, tmp_path: Path) -> None:
    with pg_server.fresh_database() as ref:
        execute(ref, "CREATE TABLE t (n integer); INSERT INTO t SELECT generate_series(1, 10);"
                     "CREATE MATERIALIZED VIEW mv AS SELECT sum(n) AS s FROM t;"
                     "INSERT INTO t SELECT generate_series(11, 20)")  # mv is now stale
        made = pipeline.backup(ref, tmp_path, BackupOptions(format="custom", name="stale"))
        report = verify(Path(made.artifact.path), made.manifest_path)
    assert report.verdict == "pass", errors(report)
    assert ("checksum", "warning", "public.mv") in {(f.check, f.severity, f.object) for f in report.findings}


def _add_refresh(lines: list[str]) -> list[str]:
    at = next(i for i, ln in enumerate(lines) if ln.startswith("REFRESH MATERIALIZED VIEW shop.totals"))
    return [*lines[:at + 1], "REFRESH MATERIALIZED VIEW shop.empty_mv;\n", *lines[at + 1:]]


def _drop_refresh(lines: list[str]) -> list[str]:
    return [ln for ln in lines if not ln.startswith("REFRESH MATERIALIZED VIEW shop.totals")]


@pytest.mark.parametrize("edit", [_add_refresh, _drop_refresh], ids=["no-data-comes-back-populated",
                                                                       "populated-comes-back-empty"])
def test_matview_populated_state_is_recorded(src: Src, tmp_path: Path, edit: object) -> None:
    report = verify(h.edit_plain(src.plain, tmp_path / "mv.sql", edit), src.manifest)
    mv = "shop.empty_mv" if edit is _add_refresh else "shop.totals"
    assert any(f.check == "schema" and f.object == mv and "populated" in f.message for f in report.findings), \
        [f.to_dict() for f in report.findings]
    assert report.verdict == "fail"


def _enable_trigger(lines: list[str]) -> list[str]:
    return [ln for ln in lines if "DISABLE TRIGGER audited_trg" not in ln]


def test_trigger_disabled_at_source_enabled_in_restore(src: Src, tmp_path: Path) -> None:
    plain_text = src.plain.read_text()
    assert "DISABLE TRIGGER audited_trg" in plain_text
    report = verify(h.edit_plain(src.plain, tmp_path / "trg.sql", _enable_trigger), src.manifest)
    assert_fails_with(report, "schema")
    assert any("audited_trg" in o or "audited_trg" in m for c, o, m in errors(report)), errors(report)


def _more_legacy_orphans(lines: list[str]) -> list[str]:
    _start, end = h.copy_block(lines, "shop.legacy")
    return [*lines[:end], "22\t998\n", *lines[end:]]


def test_not_valid_fk_orphans(src: Src, tmp_path: Path) -> None:
    # the source's own orphan (NOT VALID) restored as is: no finding (the clean case passes above)
    report = verify(h.edit_plain(src.plain, tmp_path / "orph.sql", _more_legacy_orphans), src.manifest)
    assert_fails_with(report, "fk_orphans")
    f = next(f for f in report.findings if f.check == "fk_orphans")
    assert f.object == "shop.legacy.legacy_customer_fk"
    assert (f.details["orphans_expected"], f.details["orphans_restored"]) == (1, 2)


# --- plain dumps that are more than one dump -----------------------------------------------------


def test_two_concatenated_plain_dumps(src: Src, tmp_path: Path) -> None:
    twice = tmp_path / "twice.sql"
    twice.write_text(src.plain.read_text() * 2)
    assert_fails_with(verify(twice, src.manifest), "backup_file")


def test_sql_after_the_trailer(src: Src, tmp_path: Path) -> None:
    extra = tmp_path / "after.sql"
    extra.write_text(src.plain.read_text() + "\nDELETE FROM shop.nokey WHERE n = 1;\n")
    assert_fails_with(verify(extra, src.manifest), "backup_file")


# --- damaged archives ---------------------------------------------------------------------------


def test_custom_archive_with_a_flipped_compressed_byte(src: Src, tmp_path: Path) -> None:
    data = bytearray(src.custom.read_bytes())
    for frac in (0.5, 0.6, 0.75):
        at = int(len(data) * frac)
        bad = bytearray(data)
        bad[at] ^= 0xFF
        flipped = tmp_path / f"flip{frac}.dump"
        flipped.write_bytes(bytes(bad))
        report = verify(flipped, src.manifest)
        assert report.verdict == "fail", errors(report)
        assert h.checks(report) & {"restore_errors", "backup_file"}, errors(report)


@pytest.fixture(scope="module")
def directory_backup(src: Src, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dirfmt") / "shopdir"
    src.pg_dump(out, "-Fd")
    return out


def _copy_dir(src_dir: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(src_dir, dest)
    return dest


def _biggest_data_file(d: Path) -> Path:
    return max((p for p in d.iterdir() if p.name != "toc.dat"), key=lambda p: p.stat().st_size)


def test_directory_backup_with_a_data_file_deleted(src: Src, directory_backup: Path, tmp_path: Path) -> None:
    d = _copy_dir(directory_backup, tmp_path / "d")
    _biggest_data_file(d).unlink()
    assert_fails_with(verify(d, src.manifest))


def test_directory_backup_with_a_data_file_truncated(src: Src, directory_backup: Path, tmp_path: Path) -> None:
    d = _copy_dir(directory_backup, tmp_path / "d")
    f = _biggest_data_file(d)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    assert_fails_with(verify(d, src.manifest))


@pytest.mark.parametrize("damage", ["cut-inside", "cut-at-member", "header-flipped"])
def test_truncated_tar_backup(src: Src, tmp_path: Path, damage: str) -> None:
    """pg_restore 15 never returns on a cut tar archive: restorecheck must judge it, not hang."""
    import tarfile

    tar = src.pg_dump(tmp_path / "shop.tar", "-Ft")
    data = bytearray(tar.read_bytes())
    with tarfile.open(tar) as tf:
        member = max(tf.getmembers(), key=lambda m: m.size)
    if damage == "cut-inside":
        data = data[: member.offset_data + member.size // 2]
    elif damage == "cut-at-member":
        data = data[: member.offset]
    else:
        data[member.offset + 10] ^= 0xFF
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(data))
    report = verify(bad, src.manifest)
    assert_fails_with(report, "backup_file")


# --- checks that need no reference; a wrong reference -------------------------------------------


def _lower_customers_seq(lines: list[str]) -> list[str]:
    return ["SELECT pg_catalog.setval('shop.customers_id_seq', 5, true);\n"
            if ln.startswith("SELECT pg_catalog.setval('shop.customers_id_seq'") else ln for ln in lines]


def test_sequence_behind_its_column_without_a_reference(src: Src, tmp_path: Path) -> None:
    faulty = h.edit_plain(src.plain, tmp_path / "seq.sql", _lower_customers_seq)
    report = verify(faulty)
    assert report.reference == "none"
    # without a reference it cannot tell inherited from introduced: a warning that says so
    assert report.verdict == "pass", errors(report)
    (f,) = [f for f in report.findings if f.check == "sequence"]
    assert (f.severity, f.object) == ("warning", "shop.customers_id_seq")
    assert "cannot tell whether it was inherited from the source or introduced by the backup" in f.message
    # with the manifest of the source (whose sequence was not behind): an error
    against = verify(faulty, src.manifest)
    assert_fails_with(against, "sequence")
    assert any(o == "shop.customers_id_seq" and "introduced it" in m for c, o, m in errors(against)
               if c == "sequence"), errors(against)


def test_manifest_of_another_database(src: Src, pg_server: PgServer, tmp_path: Path) -> None:
    with pg_server.fresh_database() as other:
        h.build_source(other)
        made = pipeline.backup(other, tmp_path, BackupOptions(format="custom", name="other"))
    report = verify(src.custom, made.manifest_path)
    assert_fails_with(report, "backup_file", "table_missing", "table_extra")
    assert has_error(report, "table_missing", "public.parent") and has_error(report, "table_extra", "shop.orders")
