"""What a dump needs and what an installation has: the parsers, the choice and the error line, without
a server (the same parsers on real pg_dump output: tests/integration/test_dump_needs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from restorecheck.engines.pg_needs import environment_limits, needs_of_script, needs_of_toc, schema_lines
from restorecheck.errors import ExitCode, ToolNotFoundError
from restorecheck.pg_hosting import Capabilities, DumpNeeds, capabilities, remedy, unmet, unmet_preferences
from restorecheck.process import CLIENT_TOOLS, SERVER_TOOLS, PgInstallation, choose

SCRIPT = """\
--
-- PostgreSQL database dump
--
SET client_encoding = 'LATIN1';
CREATE DATABASE app WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = icu LOCALE = 'en_US.UTF-8' ICU_LOCALE = 'en-US';
CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS plpgsql WITH SCHEMA pg_catalog;
CREATE EXTENSION hstore WITH SCHEMA public VERSION '1.7';
CREATE COLLATION public."Fr" (provider = icu, locale = 'fr-FR');
CREATE COLLATION public.c_like (provider = libc, locale = 'C');
CREATE DOMAIN public.doc AS xml;
CREATE TABLE public.t (
    id integer NOT NULL,
    a text COLLATE pg_catalog."de-DE-x-icu",
    b text COLLATE pg_catalog."unicode",
    "xml col" text
);
CREATE VIEW public.v AS
 SELECT xml FROM public.t2;
"""


def test_script_needs() -> None:
    n = needs_of_script(SCRIPT, min_major=15)
    assert n.extensions == ("hstore", "uuid-ossp")  # plpgsql is built in
    assert n.extension_versions == {"hstore": "1.7"}
    assert n.icu_collations == ("Fr", "de-DE-x-icu", "unicode")  # c_like is libc
    assert n.database_icu and n.encoding == "LATIN1" and n.min_major == 15
    assert n.xml  # the domain over xml


def test_xml_is_seen_in_tables_and_types_only() -> None:
    assert not needs_of_script('CREATE TABLE t (\n    "xml col" text,\n    xml_id integer\n);\n').xml
    assert not needs_of_script("CREATE VIEW v AS\n SELECT x\n   FROM xml d;\n").xml
    assert needs_of_script("CREATE TABLE t (\n    d xml NOT NULL\n);\n").xml
    assert needs_of_script("CREATE TYPE public.pair AS (\n\ta integer,\n\tb pg_catalog.xml[]\n);\n").xml
    assert needs_of_script('CREATE UNLOGGED TABLE s."T" (\n    "D" xml\n)\nPARTITION BY LIST (x);\n').xml


def test_nothing_needed_by_a_plain_dump_without_extensions() -> None:
    n = needs_of_script("CREATE TABLE t (\n    id integer\n);\nCOPY t (id) FROM stdin;\n1\n\\.\n")
    assert n.empty and n.extensions == () and not n.xml


def test_schema_lines_stop_at_the_data(tmp_path: Path) -> None:
    script = tmp_path / "d.sql"
    script.write_text("CREATE EXTENSION citext;\n--\n-- Data for Name: t; Type: TABLE DATA\n--\n"
                      "COPY t (a) FROM stdin;\nCREATE EXTENSION postgis;\n\\.\n")
    assert needs_of_script(schema_lines(script)).extensions == ("citext",)


def test_toc_needs_add_the_listing_extensions() -> None:
    listing = ";\n; Archive created at 2026-12-01\n;\n3; 3079 16396 EXTENSION - citext \n" \
              "2; 3079 16385 EXTENSION - uuid-ossp \n3606; 0 0 COMMENT - EXTENSION \"uuid-ossp\" \n" \
              "219; 1259 16718 TABLE public c postgres\n"
    n = needs_of_toc(listing, "CREATE COLLATION public.fr (provider = icu, locale = 'fr-FR');\n",
                     min_major=15, encoding="UTF8")
    assert n.extensions == ("citext", "uuid-ossp") and n.icu_collations == ("fr",) and n.encoding == "UTF8"


def test_environment_limits_are_told_apart_from_backup_errors() -> None:
    assert environment_limits([
        'extension "uuid-ossp" is not available',
        'could not open extension control file "/usr/share/postgresql/15/extension/vector.control": No such file',
        'collation "fr-FR-x-icu" for encoding "UTF8" does not exist',
        "unsupported XML feature",
        'relation "public.t" does not exist',
    ]) == ['extension "uuid-ossp"', 'extension "vector"', "ICU collations (fr-FR-x-icu)",
           "XML support (libxml) for xml columns"]
    assert environment_limits(['relation "public.t" does not exist', 'invalid input syntax for type integer']) == []


def test_unmet_and_preferences() -> None:
    needs = DumpNeeds(extensions=("citext", "vector"), extension_versions={"citext": "1.9"},
                      icu_collations=("fr",), xml=True)
    caps = Capabilities("x", {"citext": ("1.6", "1.5")}, icu=False, xml=False)
    assert unmet(caps, needs) == ['extension "citext" version 1.9 (has 1.6, 1.5)', 'extension "vector"',
                                  "ICU collations (fr)"]
    assert unmet_preferences(caps, needs) == ["XML support (libxml) for xml columns"]
    assert unmet(Capabilities("y", {"citext": ("1.9",), "vector": ("0.8.0",)}, icu=None), needs) == []
    text = remedy(unmet(caps, needs), 15)
    assert "postgresql-contrib" in text and "postgresql-15-pgvector" in text and "embedded" in text
    assert "ICU" in text and "--target postgresql://" in text


def _installation(tmp_path: Path, name: str, version: str, extensions: dict[str, str], links: str) -> PgInstallation:
    """A fake installation: bin/postgres names the libraries it 'links', share/extension its controls."""
    root = tmp_path / name
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "postgres").write_bytes(b"\x7fELF not really " + links.encode())
    ext = root / "share" / "extension"
    ext.mkdir(parents=True)
    for n, v in extensions.items():
        (ext / f"{n}.control").write_text(f"comment = 'x'\ndefault_version = '{v}'\n")
        (ext / f"{n}--{v}.sql").write_text("")
    return PgInstallation(root / "bin", version, name, SERVER_TOOLS + CLIENT_TOOLS)


def test_choose_takes_the_lowest_major_that_can_host_the_dump(tmp_path: Path) -> None:
    system = _installation(tmp_path, "system", "15.18", {"citext": "1.6", "uuid-ossp": "1.1"},
                           "libicuuc.so.72 libxml2.so.2")
    embedded = _installation(tmp_path, "embedded", "18.6", {"citext": "1.8", "vector": "0.8.1"}, "libz.so.1")
    assert capabilities(system).icu is True and capabilities(system).xml is True
    assert capabilities(embedded).icu is False and capabilities(embedded).extensions["vector"] == ("0.8.1",)
    both = [embedded, system]
    assert choose(both, needs=DumpNeeds(extensions=("citext",))) == system
    assert choose(both, needs=DumpNeeds(extensions=("vector",))) == embedded
    assert choose(both, min_major=15, needs=DumpNeeds(icu_collations=("fr",))) == system
    assert choose(both, needs=DumpNeeds(xml=True)) == system  # preferred, lowest major anyway
    with pytest.raises(ToolNotFoundError) as info:
        choose(both, needs=DumpNeeds(extensions=("uuid-ossp", "vector")))
    err = info.value
    assert err.exit_code == ExitCode.ENVIRONMENT
    line = err.one_line()
    assert "\n" not in line
    assert 'PostgreSQL 15.18 (system) lacks extension "vector"' in line
    assert 'PostgreSQL 18.6 (embedded) lacks extension "uuid-ossp"' in line
    assert "postgresql-15-pgvector" in line and "postgresql-contrib" in line and "--target" in line
    with pytest.raises(ToolNotFoundError, match="ICU"):
        choose(both, min_major=16, needs=DumpNeeds(icu_collations=("de-DE-x-icu",)))


def test_an_archive_with_zstd_members_needs_a_pg_restore_that_reads_zstd() -> None:
    needs = DumpNeeds(archive_codec="zstd")
    assert not needs.empty
    assert unmet(Capabilities("18 without zstd", codecs=frozenset({"gzip"})), needs) == [
        "a pg_restore that reads zstd-compressed archives"]
    assert unmet(Capabilities("17 with zstd", codecs=frozenset({"gzip", "lz4", "zstd"})), needs) == []
    assert unmet(Capabilities("unknown"), needs) == []  # unknown is not refused up front
    assert needs.to_dict()["archive_codec"] == "zstd" and "archive_codec" not in DumpNeeds().to_dict()
