"""Reading what a pg_dump backup needs from its target, before restoring it.

Pure functions over text: ``needs_of_script`` reads a plain script (its schema part: the data
that follows is never needed for this), ``needs_of_toc`` an archive's ``pg_restore --list``
listing and its schema SQL (``pg_restore --section=pre-data -f -``). They find:

- extensions: ``CREATE EXTENSION`` statements (pg_dump writes no version; a ``VERSION`` clause,
  as binary-upgrade dumps and hand-written scripts have, is kept) and the listing's EXTENSION entries;
- ICU collations: ``CREATE COLLATION ... (provider = icu, ...)`` and predefined ``"xx-x-icu"``
  collations used by columns, domains or indexes; a ``-C`` dump's ``LOCALE_PROVIDER = icu`` is
  noted (the restore goes into restorecheck's own database, so it is not required);
- XML: columns, domains or composite attributes of type ``xml`` (a server built without libxml
  rejects every xml value);
- the encoding (``SET client_encoding``) and the versions (the header's ``min_major``).

``environment_limits`` tells, after a restore, which of its errors came from what the server
lacks rather than from the backup: those are an environment failure, never a failed backup.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from restorecheck import pgconn
from restorecheck.pg_hosting import BUILTIN, DumpNeeds

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_CREATE_EXTENSION = re.compile(
    rf"^CREATE EXTENSION (?:IF NOT EXISTS )?(?P<name>{_IDENT})(?P<rest>.*?);?\s*$", re.I)
_VERSION = re.compile(r"\bVERSION\s+'(?P<v>(?:[^']|'')*)'|\bVERSION\s+\"(?P<q>[^\"]+)\"", re.I)
_CREATE_COLLATION = re.compile(
    rf"^CREATE COLLATION (?:IF NOT EXISTS )?(?P<name>(?:{_IDENT}\.)?{_IDENT})\s*\((?P<opts>.*)\)\s*;?\s*$", re.I)
_PROVIDER_ICU = re.compile(r"\bprovider\s*=\s*'?icu'?", re.I)
_X_ICU = re.compile(r'"(?P<name>[^"]+-x-icu)"')
_UNICODE = re.compile(r'\bCOLLATE\s+(?:pg_catalog\.)?"?unicode"?(?![\w"])', re.I)
_DB_ICU = re.compile(r"\bLOCALE_PROVIDER\s*=\s*'?icu'?|\bICU_LOCALE\s*=", re.I)
_TABLE_START = re.compile(r"^CREATE (?:(?:UNLOGGED|FOREIGN|TEMPORARY|TEMP) )?(?:TABLE|TYPE) .*\($", re.I)
_COLUMN_XML = re.compile(rf"^\s+{_IDENT}\s+(?:pg_catalog\.)?xml(?:\[\])*(?:\s|,|$)", re.I)
_DOMAIN_XML = re.compile(rf"^CREATE DOMAIN {_IDENT}(?:\.{_IDENT})? AS (?:pg_catalog\.)?xml(?:\[\])*\b", re.I)
_ENCODING = re.compile(r"^SET client_encoding = '([^']+)';")
_TOC_EXTENSION = re.compile(r"^\s*\d+;\s*\d+\s+\d+\s+EXTENSION\s+-\s+(?P<name>\S+)")
_DATA_START = ("-- Data for Name: ", "COPY ")


def _unquote(ident: str) -> str:
    if ident.startswith('"') and ident.endswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident.lower()


def needs_of_script(text: str | Iterable[str], *, min_major: int | None = None) -> DumpNeeds:
    """What the SQL of a plain script (or an archive's schema SQL) needs from its target."""
    lines = text.splitlines() if isinstance(text, str) else text
    extensions: dict[str, None] = {}
    versions: dict[str, str] = {}
    icu: dict[str, None] = {}
    database_icu = xml = False
    encoding: str | None = None
    in_table = False
    for raw in lines:
        line = raw.rstrip("\n")
        if not line or line.startswith("--"):
            continue
        if in_table:
            if line.startswith(")"):
                in_table = False
            elif _COLUMN_XML.match(line):
                xml = True
        elif _TABLE_START.match(line):
            in_table = True
        m = _CREATE_EXTENSION.match(line)
        if m:
            name = _unquote(m.group("name"))
            extensions[name] = None
            v = _VERSION.search(m.group("rest"))
            if v:
                versions[name] = v.group("v").replace("''", "'") if v.group("v") is not None else v.group("q")
            continue
        m = _CREATE_COLLATION.match(line)
        if m and _PROVIDER_ICU.search(m.group("opts")):
            icu[_unquote(m.group("name").split(".")[-1])] = None
        if "-x-icu" in line:
            for x in _X_ICU.finditer(line):
                icu[x.group("name")] = None
        if "unicode" in line.lower() and _UNICODE.search(line):
            icu["unicode"] = None  # PostgreSQL 16's predefined ICU collation
        if line.startswith(("CREATE DATABASE ", "create database ")) and _DB_ICU.search(line):
            database_icu = True
        if _DOMAIN_XML.match(line):
            xml = True
        if encoding is None:
            e = _ENCODING.match(line)
            if e:
                encoding = e.group(1)
    return DumpNeeds(
        extensions=tuple(sorted(n for n in extensions if n not in BUILTIN)),
        extension_versions=versions,
        icu_collations=tuple(sorted(icu)),
        database_icu=database_icu,
        xml=xml,
        encoding=encoding,
        min_major=min_major,
    )


def needs_of_toc(listing: str, schema_sql: str, *, min_major: int | None = None,
                 encoding: str | None = None) -> DumpNeeds:
    """What an archive needs: its listing's EXTENSION entries and what its schema SQL uses."""
    from_sql = needs_of_script(schema_sql, min_major=min_major)
    names = set(from_sql.extensions)
    for line in listing.splitlines():
        m = _TOC_EXTENSION.match(line)
        if m:
            names.add(_unquote(m.group("name")))
    return DumpNeeds(
        extensions=tuple(sorted(n for n in names if n not in BUILTIN)),
        extension_versions=from_sql.extension_versions,
        icu_collations=from_sql.icu_collations,
        database_icu=from_sql.database_icu,
        xml=from_sql.xml,
        encoding=encoding or from_sql.encoding,
        min_major=min_major,
    )


def schema_lines(path: Path, *, limit: int = 256 << 20) -> Iterable[str]:
    """The schema part of a plain script: its lines up to the first table data (or ``limit`` bytes).

    pg_dump writes every extension, collation, type and table before the data; what follows (the
    data, then indexes and constraints) never adds a need that the restore errors would not show.
    """
    read = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(_DATA_START):
                return
            read += len(line)
            if read > limit:
                return
            yield line


# --- restore errors that the environment caused ---------------------------------------------------

_LIMITS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r'extension "(?P<x>[^"]+)" is not available'), 'extension "{x}"'),
    (re.compile(r'could not open extension control file "[^"]*/(?P<x>[^/"]+)\.control"'), 'extension "{x}"'),
    (re.compile(r'extension "(?P<x>[^"]+)" has no (?:installation script|update path) '), 'extension "{x}"'),
    (re.compile(r'collation "(?P<x>[^"]+-x-icu)" for encoding "[^"]+" does not exist'), "ICU collations ({x})"),
    (re.compile(r"ICU is not supported in this build"), "ICU collations"),
    (re.compile(r"unsupported XML feature"), "XML support (libxml) for xml columns"),
)


def environment_limits(messages: Sequence[str]) -> list[str]:
    """The needs (as ``pg_hosting.unmet`` phrases them) behind restore error messages that only a
    server lacking them prints; [] when every error may be the backup's own."""
    out: dict[str, None] = {}
    for msg in messages:
        for pattern, phrase in _LIMITS:
            m = pattern.search(msg)
            if m:
                out[phrase.format(**m.groupdict())] = None
                break
    return list(out)


# --- wiring helpers for engines/postgres.py -------------------------------------------------------

def dump_needs(fmt: str, script: Path | None, archive_text: Callable[[str], str] | None, *,
               readable: bool = True, min_major: int | None = None, encoding: str | None = None) -> DumpNeeds:
    """What the inspected backup needs: an archive through ``archive_text("list")`` and
    ``archive_text("schema")`` (``pg_restore --list`` and ``--schema-only -f -``, run by the caller
    in its sandbox; the data is not read), a plain script through its schema part. An unreadable
    backup needs nothing (its restore fails on its own)."""
    from restorecheck.engines import pg_dump as pgd

    if not readable or script is None:
        return DumpNeeds(encoding=encoding, min_major=min_major)
    if fmt in pgd.ARCHIVE_FORMATS and archive_text is not None:
        return needs_of_toc(archive_text("list"), archive_text("schema"), min_major=min_major, encoding=encoding)
    if fmt in pgd.PLAIN_FORMATS:
        needs = needs_of_script(schema_lines(script), min_major=min_major)
        return needs if encoding is None else dataclasses.replace(needs, encoding=encoding)
    return DumpNeeds(encoding=encoding, min_major=min_major)


def server_lacks(server: Any, needs: DumpNeeds) -> list[str]:
    """What an already running server (drill's early target) lacks of ``needs``: a local cluster
    by its installation's files, any other by its catalog."""
    if needs.empty:
        return []
    from restorecheck.pg_hosting import capabilities, server_capabilities, unmet

    if server.kind == "local" and server.tools is not None:
        return unmet(capabilities(server.tools), needs)
    with pgconn.connect(server.admin.conninfo(), autocommit=True, connect_timeout=15) as conn:
        return unmet(server_capabilities(conn, server.kind), needs)


def raise_if_environment_limited(messages: Sequence[str], server_version: str, where: str) -> None:
    """Restore errors that only a server lacking something prints: an environment failure (exit 3)
    naming it, never a failed backup."""
    from restorecheck.errors import EnvironmentFailure
    from restorecheck.pg_hosting import remedy

    limits = environment_limits(messages)
    if limits:
        raise EnvironmentFailure(
            f"the restore target (PostgreSQL {server_version}, {where}) cannot host this dump: "
            f"it lacks {', '.join(limits)}; the backup itself was not judged",
            remedy(limits, int(m.group(1)) if (m := re.match(r"(\d+)", server_version)) else None),
        )


def _text(value: str | bytes) -> str:
    """A name as text: on a SQL_ASCII database psycopg hands text over as bytes (no encoding to
    decode it by); a name that is not UTF-8 keeps its bytes as escapes."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def needs_of_database(conn: Any, *, min_major: int | None = None) -> DumpNeeds:
    """What a dump of the live database behind ``conn`` will need (drill starts its target before
    the dump exists): its extensions, the ICU collations its columns or its schemas use, xml columns."""
    exts = [_text(r[0]) for r in conn.execute("SELECT extname FROM pg_catalog.pg_extension").fetchall()]
    icu = [_text(r[0]) for r in conn.execute(
        "SELECT DISTINCT co.collname FROM pg_catalog.pg_collation co "
        "WHERE co.collprovider = 'i' AND (co.oid IN (SELECT a.attcollation FROM pg_catalog.pg_attribute a "
        "  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid WHERE c.relnamespace NOT IN "
        "  ('pg_catalog'::regnamespace, 'information_schema'::regnamespace) AND a.attnum > 0 "
        "  AND NOT a.attisdropped) "
        "OR co.collnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace))"
    ).fetchall()]
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
        "WHERE a.atttypid = 'pg_catalog.xml'::regtype AND a.attnum > 0 AND NOT a.attisdropped "
        "AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace))"
    ).fetchone()
    return DumpNeeds(extensions=tuple(sorted(e for e in exts if e not in BUILTIN)), icu_collations=tuple(sorted(icu)),
                     xml=bool(row and row[0]), min_major=min_major)
