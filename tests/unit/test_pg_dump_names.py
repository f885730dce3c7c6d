"""Names of backups and manifests (no server)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from restorecheck.engines import pg_dump as pgd
from restorecheck.engines.base import default_backup_name
from restorecheck.pipeline import manifest_candidates, manifest_path_for


def test_default_backup_name_is_timestamped_and_safe() -> None:
    when = dt.datetime(2026, 11, 21, 3, 0, 5, tzinfo=dt.UTC)
    assert default_backup_name("shop", when) == "shop-20261121T030005Z"
    assert default_backup_name("we/ird name", when) == "we_ird_name-20261121T030005Z"
    assert default_backup_name(None, when) == "database-20261121T030005Z"


def test_manifest_beside_a_backup() -> None:
    assert manifest_path_for("/b/shop.dump") == Path("/b/shop.manifest.json")
    assert manifest_path_for("/b/shop.dir") == Path("/b/shop.manifest.json")
    cands = manifest_candidates("/b/shop.sql.gz")
    assert cands[:3] == [Path("/b/shop.sql.gz.manifest.json"), Path("/b/shop.sql.manifest.json"),
                         Path("/b/shop.manifest.json")]


def test_psql_knows_restrict() -> None:
    assert pgd.psql_knows_restrict("15.18") and pgd.psql_knows_restrict("16.10") and pgd.psql_knows_restrict("18.0")
    assert not pgd.psql_knows_restrict("16.2") and not pgd.psql_knows_restrict("15.13")
    assert not pgd.psql_knows_restrict("12.22") and not pgd.psql_knows_restrict(None)


def test_a_compressed_plain_backup_has_its_manifest_beside_it() -> None:
    assert pgd.plain_compression_suffix("6") == ".gz" and pgd.plain_compression_suffix("gzip:9") == ".gz"
    assert pgd.plain_compression_suffix("lz4") == ".lz4" and pgd.plain_compression_suffix("zstd:3") == ".zst"
    assert pgd.plain_compression_suffix("0") == "" and pgd.plain_compression_suffix(None) == ""
    assert manifest_path_for("/b/shop.sql.gz") == Path("/b/shop.manifest.json")
    assert manifest_path_for("/b/shop.sql.zst") == Path("/b/shop.manifest.json")
    assert manifest_path_for("/b/shop.2024.dump") == Path("/b/shop.2024.manifest.json")


def test_a_pg_dumpall_script_is_bad_input_not_a_failed_restore(tmp_path: Path) -> None:
    """pg_dumpall output restored as one database clashed with the roles restorecheck creates
    ("role ... already exists") and failed with exit 1; it is no dump of one database: exit 2."""
    from restorecheck.cli import run_cli

    script = tmp_path / "all.sql"
    script.write_text("--\n-- PostgreSQL database cluster dump\n--\n\nSET default_transaction_read_only = off;\n"
                      "CREATE ROLE app;\n\\connect template1\n")
    assert run_cli(["verify", str(script), "--no-progress"]) == 2


def test_owners_of_what_only_a_superuser_may_own() -> None:
    assert pgd.superuser_owner_in_line('ALTER EVENT TRIGGER et OWNER TO admin;') == "admin"
    assert pgd.superuser_owner_in_line('ALTER FOREIGN DATA WRAPPER "w x" OWNER TO "Ad""min";') == 'Ad"min'
    assert pgd.superuser_owner_in_line("ALTER TABLE t OWNER TO app;") is None
    assert pgd.superuser_owner_in_line("-- ALTER EVENT TRIGGER et OWNER TO admin;") is None
    assert pgd.superuser_owner_in_line("ALTER EVENT TRIGGER et OWNER TO CURRENT_USER;") is None
