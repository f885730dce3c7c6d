"""Database properties without a server: the parser of pg_dump's database entries, the statements
restorecheck re-issues, the comparison's findings and severities, the manifest field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from restorecheck.checks.compare import PROPERTY_SEVERITY, compare_database_properties
from restorecheck.engines import pg_dbprops as p
from restorecheck.engines import pg_dump as pgd
from restorecheck.errors import BadManifestError
from restorecheck.model import Manifest

# pg_restore --create --use-list=<the database entries> of a pg_dump 18 archive, as restorecheck reads it
ENTRIES = """--
-- PostgreSQL database dump
--

\\restrict abc

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

CREATE DATABASE src WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8' TABLESPACE = fast;

ALTER DATABASE src OWNER TO app_user;

\\unrestrict abc
\\connect src
\\restrict abc

COMMENT ON DATABASE src IS 'multi
line; with '' quote';

ALTER DATABASE src CONNECTION LIMIT = 42;
ALTER DATABASE src SET search_path TO 'app', 'public';
ALTER DATABASE src SET "TimeZone" TO 'Europe/Paris';
ALTER DATABASE src SET "myext.knob" TO 'on';
ALTER ROLE app_user IN DATABASE src SET work_mem TO '8MB';

REVOKE CONNECT,TEMPORARY ON DATABASE src FROM PUBLIC;
REVOKE ALL ON DATABASE src FROM app_user;
GRANT ALL ON DATABASE src TO app_user WITH GRANT OPTION;
SET SESSION AUTHORIZATION app_user;
GRANT CONNECT ON DATABASE src TO reader;
RESET SESSION AUTHORIZATION;
"""


def test_parses_what_pg_dump_writes() -> None:
    d = p.parse(ENTRIES)
    assert d.refused == [] and d.carried and d.database == "src"
    assert d.owner == "app_user" and d.tablespace == "fast" and d.connection_limit == 42
    assert d.comment == "multi\nline; with ' quote"
    assert d.settings == {"search_path": ["app", "public"], "TimeZone": ["Europe/Paris"], "myext.knob": ["on"]}
    assert d.role_settings == {"app_user": {"work_mem": ["8MB"]}}
    assert [(g.grant, g.privileges, g.grantees, g.grant_option) for g in d.grants] == [
        (False, ("CONNECT", "TEMPORARY"), ("PUBLIC",), False), (False, ("ALL",), ("app_user",), False),
        (True, ("ALL",), ("app_user",), True), (True, ("CONNECT",), ("reader",), False)]
    assert d.roles() == {"app_user", "reader"} and d.revokes_from_public("TEMPORARY")
    assert d.summary()["settings"]["search_path"] == "app, public"


def test_drop_database_of_pg_dump_clean_create_is_recognised() -> None:
    for drop in ("DROP DATABASE src;", "DROP DATABASE IF EXISTS src;"):
        d = p.parse(drop + "\n" + ENTRIES)
        assert d.refused == [] and d.owner == "app_user"
    assert [r.hostile for r in p.parse("CREATE DATABASE src;\nDROP DATABASE other;").refused] == [True]


def test_nothing_carried() -> None:
    d = p.parse("")
    assert not d.carried and d.summary() == {} and d.roles() == set()


def test_statements_name_only_the_scratch_database_and_quote_everything() -> None:
    d = p.parse(ENTRIES)
    texts = [a.statement.as_string(None) for a in p.apply_statements(d, "rc scratch", "rc_owner")]
    assert texts[0] == """COMMENT ON DATABASE "rc scratch" IS 'multi\nline; with '' quote'"""
    assert 'ALTER DATABASE "rc scratch" SET "search_path" TO \'app\', \'public\'' in texts
    assert 'ALTER ROLE "app_user" IN DATABASE "rc scratch" SET "work_mem" TO \'8MB\'' in texts
    # the dump's owner in a grant stands for the scratch database's owner
    assert 'GRANT ALL ON DATABASE "rc scratch" TO "rc_owner" WITH GRANT OPTION' in texts
    assert all('"rc scratch"' in t and "src" not in t for t in texts)
    assert not any("OWNER TO" in t or "TABLESPACE" in t for t in texts)


@pytest.mark.parametrize("statement, hostile", [
    ("ALTER DATABASE src SET session_preload_libraries TO 'evil';", False),
    ("ALTER DATABASE src SET local_preload_libraries TO 'evil';", False),
    ("ALTER ROLE x IN DATABASE src SET role TO 'postgres';", False),
    ("ALTER DATABASE src IS_TEMPLATE = true;", False),
    ("ALTER DATABASE src RENAME TO other;", True),
    ("ALTER DATABASE src SET TABLESPACE pg_global;", True),
    ("ALTER DATABASE src RESET ALL;", True),
    ("ALTER DATABASE other SET work_mem TO '1MB';", True),
    ("GRANT ALL ON DATABASE other TO PUBLIC;", True),
    ("COMMENT ON DATABASE src IS 'x'; DROP TABLE t;", True),
    ("COMMENT ON DATABASE src IS $$x$$;", True),
    ("ALTER DATABASE src SET work_mem TO (SELECT 1);", True),
    ("DO $$ BEGIN END $$;", True),
    ("GRANT pg_read_server_files ON DATABASE src TO x;", True),
])
def test_refused(statement: str, hostile: bool) -> None:
    d = p.parse("CREATE DATABASE src WITH TEMPLATE = template0;\n" + statement)
    assert [r.hostile for r in d.refused] == [hostile], d.refused
    texts = [a.statement.as_string(None) for a in p.apply_statements(d, "scratch", "o")]
    assert not any(w in " ".join(texts) for w in ("preload", "RENAME", "DROP", "other", "role", "TABLESPACE"))


def test_plain_scan_leaves_out_every_database_statement_and_keeps_its_text(tmp_path: Path) -> None:
    body = ENTRIES.replace("\\restrict abc\n", "").replace("\\unrestrict abc\n", "")
    script = tmp_path / "d.sql"
    script.write_text(body + "CREATE TABLE t (x int);\n-- PostgreSQL database dump complete\n")
    scan = pgd.scan_plain(script)
    fed = b"".join(pgd.restricted_script(script, "k", scan.edits)).decode()
    runs = [ln for ln in fed.splitlines() if ln and not ln.startswith("--")]
    assert not any("DATABASE" in ln or ln.startswith(("line;", "\\connect")) for ln in runs), runs
    assert "CREATE TABLE t (x int);" in runs
    assert p.parse("".join(scan.database_sql)).settings == p.parse(ENTRIES).settings


def test_statement_quotes() -> None:
    assert pgd.statement_quotes("COMMENT ON DATABASE d IS 'a", None) == ("'", False)
    assert pgd.statement_quotes("b'';c';", "'") == (None, True)
    assert pgd.statement_quotes("GRANT x ON DATABASE d TO y; -- z", None) == (None, True)
    assert pgd.is_database_statement("GRANT CONNECT ON DATABASE d TO r;")
    assert pgd.is_database_statement("ALTER ROLE r IN DATABASE d SET x TO '1';")
    assert not pgd.is_database_statement("GRANT SELECT ON TABLE database TO r;")
    assert not pgd.is_database_statement("ALTER ROLE r SET x TO '1';")


REF = {"owner": "app", "comment": "c", "connection_limit": 42, "tablespace": "pg_default",
       "privileges": ["OWNER=CONNECT", "reader=CONNECT"], "settings": {"search_path": "app, public"},
       "role_settings": {"app": {"work_mem": "8MB"}}}


def test_compare_equal_and_lost() -> None:
    assert compare_database_properties(REF, {**REF, "settings": {"search_path": '"app", public'}}) == []
    lost = compare_database_properties(REF, {"owner": None, "comment": None, "connection_limit": -1,
                                             "tablespace": None, "privileges": ["OWNER=CONNECT", "PUBLIC=CONNECT"],
                                             "settings": {}, "role_settings": {}, "carried": False})
    kinds = {f.details["property"]: f.severity for f in lost}
    assert kinds == {k: v for k, v in PROPERTY_SEVERITY.items() if k != "tablespace"}
    assert all("--create" in f.message and f.check == "database" for f in lost)


def test_compare_changed() -> None:
    found = compare_database_properties(REF, {**REF, "settings": {"search_path": "public"}, "comment": "d"})
    assert [(f.severity, f.message) for f in found] == [
        ("error", "database setting search_path: app, public -> public"),
        ("info", 'database comment: "c" -> "d"')]


def test_manifest_field_is_optional_and_round_trips() -> None:
    base = Manifest(engine="postgresql", database="d")
    assert "database_properties" not in base.to_dict()
    assert Manifest.from_dict(base.to_dict()).database_properties is None
    with_props = Manifest(engine="postgresql", database="d", database_properties=REF)
    again = Manifest.from_dict(json.loads(with_props.to_json()))
    assert again.database_properties == REF
    bad = {**with_props.to_dict(), "database_properties": {"settings": {"x": 1}}}
    with pytest.raises(BadManifestError, match=r"database_properties\.settings"):
        Manifest.from_dict(bad)


def test_owner_lost_is_info_when_the_superuser_owned_it() -> None:
    """A plain dump without --create of a database the cluster's superuser owns: the owner is not in
    it, and a restore by the superuser gives the same owner: information, not a warning."""
    ref = {"owner": "postgres", "owner_is_bootstrap_superuser": True, "privileges": [], "settings": {}}
    [f] = compare_database_properties(ref, {"owner": None, "privileges": [], "settings": {}, "carried": False})
    assert f.severity == "info" and "--create" in f.message
    [g] = compare_database_properties({**ref, "owner_is_bootstrap_superuser": False},
                                      {"owner": None, "privileges": [], "settings": {}, "carried": False})
    assert g.severity == "warning"
