"""pg_dump, pg_restore and psql: argv builders, format detection, file checks, output parsing.

Everything here except the ``run_*`` helpers is pure (paths in, values out), so it is unit-tested
without a server. Formats are recognised by content, never by file name:

* custom: the file starts with ``PGDMP``;
* tar: ``ustar`` at offset 257 and a ``toc.dat`` member;
* directory: a directory holding ``toc.dat`` (which itself starts with ``PGDMP``);
* plain-gzip: the file starts with the gzip magic ``1f 8b`` (``pg_dump | gzip``);
* plain: SQL text (pg_dump's header comment, or SQL-looking text).

The plain-dump checks implement PITFALLS B1/E8/I.6: the ``-- PostgreSQL database dump
complete`` trailer, ``\\restrict``/``\\unrestrict`` pairing, and a ``\\.`` for every
``COPY ... FROM stdin;``. Archives are read fully with ``pg_restore -f /dev/null`` (B2/B4),
because ``pg_restore -l`` alone "validates" truncated archives.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import re
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from restorecheck.engines.base import ProgressFn, no_progress
from restorecheck.errors import BadInputError
from restorecheck.evidence import Evidence
from restorecheck.model import BackupFormat, DumpFormat
from restorecheck.runner import Completed

log = logging.getLogger("restorecheck")

ARCHIVE_FORMATS: tuple[DumpFormat, ...] = ("custom", "directory", "tar")
PLAIN_FORMATS: tuple[BackupFormat, ...] = ("plain", "plain-gzip")  # what detect_format tells as a script
FORMATS = ARCHIVE_FORMATS + PLAIN_FORMATS
# pg_dump -F letter and the file suffix restorecheck backup writes.
FORMAT_FLAG: dict[DumpFormat, str] = {"custom": "c", "directory": "d", "tar": "t", "plain": "p"}
SUFFIX: dict[DumpFormat, str] = {"custom": ".dump", "directory": ".dir", "tar": ".tar", "plain": ".sql"}


def plain_compression_suffix(compress: str | None) -> str:
    """What pg_dump -Fp --compress=X makes of the script, as a file suffix: ``.gz`` for a level or
    gzip, ``.lz4``, ``.zst``; none for 0 or none (``psql -f x.sql`` of a gzip file fails, and so
    would a person reading the name)."""
    if not compress:
        return ""
    method = compress.split(":", 1)[0].strip().lower()
    if method in ("0", "none"):
        return ""
    if method.isdigit() or method == "gzip":
        return ".gz"
    return {"lz4": ".lz4", "zstd": ".zst"}.get(method, "")

TRAILER = "-- PostgreSQL database dump complete"
HEADER = "-- PostgreSQL database dump"  # the first comment of every pg_dump plain script
CLUSTER_HEADER = "-- PostgreSQL database cluster dump"  # pg_dumpall's
CLUSTER_HEADER = "-- PostgreSQL database cluster dump"  # pg_dumpall: one HEADER per database inside
GZIP_MAGIC = b"\x1f\x8b"
CUSTOM_MAGIC = b"PGDMP"


# --- format detection -------------------------------------------------------------------------


def _looks_like_sql(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a cut in the middle of a multi-byte character at the end of the sample is fine
        try:
            text = head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            # a dump of a LATIN1/WIN1252/EUC_* database is written in that encoding (its
            # SET client_encoding line says which); pg_dump's own lines are ASCII, so a
            # byte-for-byte decoding is enough to recognise them
            text = head.decode("latin-1")
    if "PostgreSQL database dump" in text:
        return True
    words = ("CREATE ", "SET ", "SELECT ", "COPY ", "INSERT ", "ALTER ", "BEGIN", "\\connect", "--")
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        return stripped.upper().startswith(tuple(w.upper() for w in words))
    return False


def _is_tar_dump(path: Path, head: bytes) -> bool:
    if len(head) < 262 or head[257:262] != b"ustar":
        return False
    try:
        with tarfile.open(path, "r:") as tf:
            for member in tf:
                if member.name == "toc.dat":
                    return True
    except (tarfile.TarError, OSError, EOFError):
        # a truncated tar whose first member is toc.dat is still a (damaged) pg_dump tar
        return head[:7] == b"toc.dat"
    return False


def tar_damage(path: Path) -> str | None:
    """Why a tar archive is cut short or damaged, or None when its structure is whole.

    pg_restore 15 and 16 never return on a truncated tar archive (``pg_restore -l`` still
    lists it and exits 0; reading the data loops forever), so the structure is checked here
    first: every member's data lies inside the file, and the end-of-archive zero block follows
    the last member (pg_dump writes two).
    """
    size = Path(path).stat().st_size
    try:
        with tarfile.open(path, "r:") as tf:
            members = 0
            for member in tf:
                members += 1
                end = member.offset_data + member.size
                if end > size:
                    return (f"the tar archive is truncated: member {member.name} needs {end} bytes, "
                            f"the file has {size}")
            offset = tf.offset
    except (tarfile.TarError, OSError, EOFError) as exc:
        return f"the tar archive cannot be read: {exc}"
    if not members:
        return "the tar archive holds no members"
    with open(path, "rb") as f:
        f.seek(offset)
        tail = f.read(512)
    if len(tail) < 512 or tail.count(0) != 512:
        return (f"the tar archive is truncated or damaged: no end-of-archive block after its last "
                f"readable member (at byte {offset} of {size})")
    return None


def detect_format(path: Path) -> BackupFormat | None:
    """The pg_dump format of ``path`` by its content, or None when it is no pg_dump output."""
    p = Path(path)
    if p.is_dir():
        toc = p / "toc.dat"
        if toc.is_file():
            with open(toc, "rb") as f:
                if f.read(5) == CUSTOM_MAGIC:
                    return "directory"
        return None
    if not p.is_file():
        return None
    with open(p, "rb") as f:
        head = f.read(8192)
    if head.startswith(CUSTOM_MAGIC):
        return "custom"
    if head.startswith(GZIP_MAGIC):
        return "plain-gzip"
    if _is_tar_dump(p, head):
        return "tar"
    if CLUSTER_HEADER.encode() in head[:512]:
        raise BadInputError("the backup is a pg_dumpall script (a whole cluster: roles, tablespaces and every "
                            "database), which restorecheck does not restore: it proves the dump of one database",
                            "give a pg_dump of each database (pg_dump -Fc DBNAME); pg_dumpall --globals-only "
                            "keeps the roles")
    if head and _looks_like_sql(head):
        return "plain"
    return None


_CODEC_IDS = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}  # pg_compress_algorithm (PostgreSQL 16+)


def member_codec(path: Path, fmt: str) -> str | None:
    """How pg_dump compressed a custom or directory archive's data blocks, from its header: None
    (no header, or an archive older than 1.15 where only gzip existed), else none, gzip, lz4, zstd.

    Header (pg_backup_archiver.c): ``PGDMP``, version major, minor, revision, int size, offset size,
    format, then (archive version 1.15, PostgreSQL 16, and later) the compression algorithm byte."""
    p = Path(path)
    f = p / "toc.dat" if fmt == "directory" else p
    if fmt not in ("custom", "directory") or not f.is_file():
        return None
    with open(f, "rb") as fh:
        head = fh.read(16)
    if len(head) < 12 or not head.startswith(CUSTOM_MAGIC):
        return None
    if (head[5], head[6]) < (1, 15):
        return None
    return _CODEC_IDS.get(head[11], f"unknown ({head[11]})")


# --- sizes and digests ------------------------------------------------------------------------


def backup_bytes(path: Path) -> int:
    """Size of a backup file, or the total size of a directory-format backup's files."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


class Cancelled(Exception):
    """``sha256_of`` stopped by its ``cancel`` event (the run is ending)."""


def sha256_of(path: Path, *, chunk: int = 1 << 20, cancel: threading.Event | None = None) -> str:
    """SHA-256 of a file; for a directory, over its files sorted by relative path.

    Directory digest: for each regular file in sorted order of its POSIX relative path, the
    path's UTF-8 bytes, a NUL byte, the size as 8 big-endian bytes, then the content, all fed
    into one SHA-256. A renamed, added, removed or changed file changes the digest. ``cancel``
    (for a digest taken on a thread): once set, the next block raises ``Cancelled``.
    """
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        files = sorted((f for f in p.rglob("*") if f.is_file()), key=lambda f: f.relative_to(p).as_posix())
        for f in files:
            rel = f.relative_to(p).as_posix().encode()
            h.update(rel + b"\x00" + f.stat().st_size.to_bytes(8, "big"))
            _feed(h, f, chunk, cancel)
        return h.hexdigest()
    _feed(h, p, chunk, cancel)
    return h.hexdigest()


def _feed(h: hashlib._Hash, f: Path, chunk: int, cancel: threading.Event | None = None) -> None:
    with open(f, "rb") as fh:
        while block := fh.read(chunk):
            if cancel is not None and cancel.is_set():
                raise Cancelled(str(f))
            h.update(block)


# --- argv builders (pure) ---------------------------------------------------------------------


def pg_dump_argv(
    pg_dump: Path | str,
    *,
    fmt: str,
    output: Path | str,
    snapshot: str | None = None,
    jobs: int = 1,
    compress: str | None = None,
    lock_wait_timeout: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """pg_dump argv. The connection (host, port, user, dbname, password) travels in the env."""
    if fmt not in FORMAT_FLAG:
        raise ValueError(f"unknown pg_dump format {fmt!r}")
    argv = [str(pg_dump), "--no-password", f"--format={FORMAT_FLAG[fmt]}", f"--file={output}"]
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    if jobs > 1:
        if fmt != "directory":
            raise ValueError("pg_dump --jobs needs --format directory")
        argv.append(f"--jobs={jobs}")
    if compress is not None:
        argv.append(f"--compress={compress}")
    if lock_wait_timeout:
        argv.append(f"--lock-wait-timeout={lock_wait_timeout}")
    argv.extend(extra)
    return argv


def _archive_arg(archive: Path | str | None) -> list[str]:
    """The archive operand: none means pg_restore reads the archive on its standard input."""
    return [] if archive is None else [str(archive)]


def pg_restore_argv(pg_restore: Path | str, archive: Path | str | None, *, dbname: str, fmt: str,
                    jobs: int = 1) -> list[str]:
    """pg_restore into ``dbname`` (connection in the env); parallel where the format allows."""
    argv = [str(pg_restore), "--no-password", f"--dbname={dbname}"]
    if jobs > 1 and fmt in ("custom", "directory") and archive is not None:
        argv.append(f"--jobs={jobs}")
    return argv + _archive_arg(archive)


def pg_restore_list_argv(pg_restore: Path | str, archive: Path | str | None, *, create: bool = False) -> list[str]:
    """The TOC; ``create``: with the database's own entries, which pg_restore lists only then."""
    return [str(pg_restore), "--list", *(["--create"] if create else []), *_archive_arg(archive)]


_DATABASE_ENTRY = re.compile(r"^\s*\d+;\s+\d+\s+\d+\s+(?:DATABASE - |DATABASE PROPERTIES - |COMMENT - DATABASE |"
                             r"ACL - DATABASE )")


def database_entries(listing: str) -> list[str]:
    """The ``pg_restore --list --create`` lines of the database's own entries: DATABASE (owner,
    tablespace), DATABASE PROPERTIES (settings, connection limit), its COMMENT and ACL."""
    return [line for line in listing.splitlines() if _DATABASE_ENTRY.match(line)]


def pg_restore_readall_argv(pg_restore: Path | str, archive: Path | str | None) -> list[str]:
    """Read every data block without a server (PITFALLS B2): fails on truncation or zlib errors."""
    return [str(pg_restore), "--file=/dev/null", *_archive_arg(archive)]


def pg_restore_schema_argv(pg_restore: Path | str, archive: Path | str | None) -> list[str]:
    """The schema as SQL on stdout (no data): read for the roles it names."""
    return [str(pg_restore), "--schema-only", "--file=-", *_archive_arg(archive)]


_LO_ENTRY = re.compile(r"^\s*\d+; \d+ \d+ (?:BLOB|BLOB METADATA|ACL - LARGE OBJECTS?) ")


def large_object_entries(listing: str) -> list[str]:
    """The ``pg_restore --list`` lines that create large objects, set their owners and grant on them.

    pg_restore counts them as data, so ``--schema-only`` leaves them out, and with them the roles
    that own large objects or are granted on them."""
    return [line for line in listing.splitlines() if _LO_ENTRY.match(line)]


def pg_restore_preamble_argv(pg_restore: Path | str, archive: Path | str | None,
                             empty_list: Path | str, *, create: bool = False) -> list[str]:
    """Only the script preamble (an empty --use-list): versions and client_encoding, cheaply.
    ``create``: with the archive's CREATE DATABASE statement too (its encoding and locale)."""
    return [str(pg_restore), *(["--create"] if create else []), f"--use-list={empty_list}", "--file=-",
            *_archive_arg(archive)]


def psql_restore_argv(psql: Path | str, script: Path | str | None, *, dbname: str) -> list[str]:
    """psql without ~/.psqlrc, stopping at the first error (PITFALLS A1, A4); ``script`` None: the
    script comes on standard input (``restricted_script``, which restricts psql first).

    No --single-transaction: a failed restore leaves what loaded before the error, so the
    fingerprint shows the damage instead of an empty database (A3).
    """
    return [str(psql), "-X", "--quiet", "--no-password", "-v", "ON_ERROR_STOP=1",
            f"--dbname={dbname}", f"--file={'-' if script is None else script}"]


def restricted_script(script: Path, key: str, edits: Mapping[int, bytes] | None = None,
                      chunk: int = 1 << 20) -> Iterator[bytes]:
    """The bytes psql reads on stdin: first ``\\restrict KEY`` (a key the dump cannot know, so psql
    refuses every meta-command of the dump: ``\\!``, ``\\o``, ``\\copy``, ``\\c``, ...), then the
    script with the lines at the offsets of ``edits`` replaced (``PlainScan.edits``). psql's line
    numbers are ``RESTRICT_LINES`` more than the script's."""
    yield f"\\restrict {key}\n".encode()
    pos = 0
    with open(script, "rb") as f:
        for offset in sorted(edits or {}):
            while pos < offset:
                block = f.read(min(chunk, offset - pos))
                if not block:
                    return
                pos += len(block)
                yield block
            line = f.readline()
            pos += len(line)
            if line:
                yield (edits or {})[offset]
        while block := f.read(chunk):
            yield block


RESTRICT_LINES = 1  # lines restricted_script puts before the script


def create_role_statements(roles: Iterable[str]) -> list[object]:
    """``CREATE ROLE x NOLOGIN`` for each role, identifiers quoted by psycopg."""
    from psycopg import sql

    return [sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(r)) for r in sorted(set(roles))]


# --- versions and headers ---------------------------------------------------------------------

_VERSION_NUM = re.compile(r"(\d+)(?:\.(\d+))?")


def major_of(version: str | None) -> int | None:
    """The major of '15.18 (Debian ...)', '9.6.24' (-> 9) or '16devel'; None when absent."""
    if not version:
        return None
    m = _VERSION_NUM.search(version)
    return int(m.group(1)) if m else None


def short_version(version: str | None) -> str | None:
    if not version:
        return None
    return version.split(" (")[0].strip() or None


# The first minor release of each major whose psql knows \\restrict / \\unrestrict (CVE-2025-8714).
_RESTRICT_SINCE = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}


def psql_knows_restrict(version: str | None) -> bool:
    """Whether psql of ``version`` ('15.18', '16.2') understands the \\restrict meta-command."""
    m = _VERSION_NUM.search(version or "")
    if not m:
        return False
    major, minor = int(m.group(1)), int(m.group(2) or 0)
    if major >= 18:
        return True
    return major in _RESTRICT_SINCE and minor >= _RESTRICT_SINCE[major]


@dataclass(frozen=True)
class ArchiveHeader:
    """What ``pg_restore --list`` says about an archive (and the preamble's encoding)."""

    format: str | None = None
    compression: str | None = None
    archive_version: str | None = None
    dbname: str | None = None
    dumped_from: str | None = None
    dumped_by: str | None = None
    toc_entries: int | None = None
    entry_counts: Mapping[str, int] = field(default_factory=dict)
    encoding: str | None = None

    @property
    def min_major(self) -> int | None:
        majors = [m for m in (major_of(self.dumped_from), major_of(self.dumped_by)) if m]
        return max(majors) if majors else None


_TOC_LINE = re.compile(r"^\d+;\s+\d+\s+\d+\s+(?P<desc>.+)$")
_TOC_TYPES = (
    "TABLE DATA", "SEQUENCE SET", "SEQUENCE OWNED BY", "FK CONSTRAINT", "DEFAULT ACL", "BLOB DATA",
    "BLOBS", "LARGE OBJECT", "MATERIALIZED VIEW DATA", "MATERIALIZED VIEW", "CHECK CONSTRAINT",
    "INDEX ATTACH", "TABLE ATTACH", "EVENT TRIGGER", "FOREIGN TABLE", "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY", "OPERATOR CLASS", "OPERATOR FAMILY", "ROW SECURITY", "SHELL TYPE",
    "PUBLICATION TABLE", "PUBLICATION TABLES IN SCHEMA", "FOREIGN DATA WRAPPER", "FOREIGN SERVER",
    "USER MAPPING", "ACCESS METHOD", "DATABASE PROPERTIES",
)


def toc_type(desc: str) -> str:
    """The object type of a TOC line's description ('TABLE DATA public t owner' -> 'TABLE DATA')."""
    for t in _TOC_TYPES:
        if desc.startswith(t + " ") or desc == t:
            return t
    return desc.split(" ", 1)[0]


def parse_archive_list(text: str) -> ArchiveHeader:
    """Parse ``pg_restore --list`` output: header fields and the TOC entry counts by type."""
    fields: dict[str, str] = {}
    counts: dict[str, int] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(";"):
            body = line.lstrip(";").strip()
            if ":" in body:
                key, _, value = body.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
            continue
        m = _TOC_LINE.match(line)
        if m:
            t = toc_type(m.group("desc"))
            counts[t] = counts.get(t, 0) + 1
    toc_entries = fields.get("toc entries")
    return ArchiveHeader(
        format=(fields.get("format") or "").lower() or None,
        compression=fields.get("compression"),
        archive_version=fields.get("dump version"),
        dbname=fields.get("dbname"),
        dumped_from=fields.get("dumped from database version"),
        dumped_by=fields.get("dumped by pg_dump version"),
        toc_entries=int(toc_entries) if toc_entries and toc_entries.isdigit() else None,
        entry_counts=counts,
    )


_ENCODING_RE = re.compile(r"^SET client_encoding = '([^']+)';")
_DUMPED_FROM = re.compile(r"^-- Dumped from database version (.+)$")
_DUMPED_BY = re.compile(r"^-- Dumped by pg_dump version (.+)$")


def parse_preamble(text: str) -> dict[str, str]:
    """client_encoding and the 'Dumped from/by' versions from the top of a SQL script."""
    out: dict[str, str] = {}
    for line in text.splitlines()[:200]:
        for key, rx in (("encoding", _ENCODING_RE), ("dumped_from", _DUMPED_FROM), ("dumped_by", _DUMPED_BY)):
            m = rx.match(line.strip())
            if m and key not in out:
                out[key] = m.group(1).strip()
    return out


# --- roles named by a dump --------------------------------------------------------------------

_TOKEN = re.compile(r'"(?:[^"]|"")*"|[^\s,;()"]+|[(),;]')
_NOT_ROLES = {"PUBLIC", "CURRENT_USER", "SESSION_USER", "CURRENT_ROLE", "GROUP", "-"}
# pg_dump writes keywords in upper case and unquoted identifiers in lower case: a stop word is
# matched case-sensitively, so a role named "granted" (an unreserved keyword, left bare) is kept.
_STOP_WORDS = {"WITH", "GRANTED", "USING", "CASCADE", "RESTRICT", "AS", "IN", "GRANT", "REVOKE", "ON", "FOR"}
_OWNER_COMMENT = re.compile(r"^-- Name: .*; Owner: (?P<owner>.+)$")


def _ident(token: str) -> str:
    if token.startswith('"') and token.endswith('"') and len(token) >= 2:
        return token[1:-1].replace('""', '"')
    return token


def _role_list(tokens: list[str]) -> list[str]:
    roles: list[str] = []
    for tok in tokens:
        if tok in (",",):
            continue
        if tok in (";", "(", ")") or tok in _STOP_WORDS:
            break
        roles.append(_ident(tok))
    return roles


def _last_keyword(tokens: list[str], word: str) -> int | None:
    for i in range(len(tokens) - 1, -1, -1):
        if tokens[i].upper() == word and not tokens[i].startswith('"'):
            return i
    return None


def roles_in_line(line: str) -> set[str]:
    """Roles named by one schema line of a pg_dump script (outside COPY data)."""
    s = line.strip()
    if not s:
        return set()
    found: list[str] = []
    m = _OWNER_COMMENT.match(s)
    if m:
        found.append(m.group("owner").strip())
    elif not s.startswith("--"):
        upper = s.upper()
        tokens = _TOKEN.findall(s)
        if " OWNER TO " in upper:
            i = _last_keyword(tokens, "TO")
            if i is not None:
                found.extend(_role_list(tokens[i + 1:])[:1])
        if upper.startswith("ALTER DEFAULT PRIVILEGES"):
            for i, tok in enumerate(tokens[:-2]):
                if tok.upper() == "FOR" and tokens[i + 1].upper() in ("ROLE", "USER"):
                    found.extend(_role_list(tokens[i + 2:]))
                    break
        if upper.startswith(("GRANT ", "ALTER DEFAULT PRIVILEGES")) and " TO " in upper:
            i = _last_keyword(tokens, "TO")
            if i is not None:
                found.extend(_role_list(tokens[i + 1:]))
            j = _last_keyword(tokens, "BY")
            if j is not None and j > 0 and tokens[j - 1].upper() == "GRANTED":
                found.extend(_role_list(tokens[j + 1:])[:1])
        if upper.startswith(("REVOKE ", "ALTER DEFAULT PRIVILEGES")) and " FROM " in upper:
            i = _last_keyword(tokens, "FROM")
            if i is not None:
                found.extend(_role_list(tokens[i + 1:]))
        if upper.startswith("CREATE POLICY"):
            i = next((k for k, t in enumerate(tokens) if t.upper() == "TO" and k > 3), None)
            if i is not None:
                found.extend(_role_list(tokens[i + 1:]))
        if upper.startswith("SET SESSION AUTHORIZATION"):
            found.extend(_role_list(tokens[3:])[:1])
        if upper.startswith("CREATE SCHEMA") and " AUTHORIZATION " in upper:
            i = _last_keyword(tokens, "AUTHORIZATION")
            if i is not None:
                found.extend(_role_list(tokens[i + 1:])[:1])
    return {r.strip("'") for r in found if r and r.upper() not in _NOT_ROLES and not r.startswith("pg_")}


_SET_TABLESPACE = re.compile(r"^SET default_tablespace = (?P<name>.+);$")


def tablespace_in_line(line: str) -> str | None:
    """The tablespace a ``SET default_tablespace = x;`` line of pg_dump names ('' is the default)."""
    m = _SET_TABLESPACE.match(line.strip())
    if not m:
        return None
    name = _ident(m.group("name").strip())
    return name.strip("'") or None


def tablespaces_in_sql(text: str) -> set[str]:
    """Tablespaces named by a schema-only SQL script (``pg_restore --schema-only`` output)."""
    return {t for t in map(tablespace_in_line, text.splitlines()) if t}


# objects only a superuser may own: their owner, when it is not the restoring superuser, must be one
_SUPERUSER_OWNED = ("ALTER EVENT TRIGGER ", "ALTER FOREIGN DATA WRAPPER ")


def superuser_owner_in_line(line: str) -> str | None:
    """The role an ``ALTER EVENT TRIGGER|FOREIGN DATA WRAPPER ... OWNER TO r`` line gives an object
    only a superuser may own (a source's second superuser, ``admin``): on a throwaway cluster that
    role is made a superuser too, or the restore fails on ownership the source has."""
    s = line.strip()
    upper = s.upper()
    if not upper.startswith(_SUPERUSER_OWNED) or " OWNER TO " not in upper:
        return None
    tokens = _TOKEN.findall(s)
    i = _last_keyword(tokens, "TO")
    roles = _role_list(tokens[i + 1:])[:1] if i is not None else []
    role = roles[0].strip("'") if roles else None
    return role if role and role.upper() not in _NOT_ROLES and not role.startswith("pg_") else None


def superuser_owners_in_sql(text: str) -> set[str]:
    return {r for r in map(superuser_owner_in_line, text.splitlines()) if r}


def roles_in_sql(text: str) -> set[str]:
    """Roles named by a schema-only SQL script (``pg_restore --schema-only`` output)."""
    roles: set[str] = set()
    for line in text.splitlines():
        roles |= roles_in_line(line)
    return roles


# --- plain dumps: streaming scan --------------------------------------------------------------

_COPY_START = re.compile(rb"^COPY (?P<table>.+?) (?:\(.*\) )?FROM stdin;\s*$")


@dataclass
class PlainScan:
    """What one pass over a plain SQL dump found."""

    trailer: bool = False
    restrict_key: str | None = None
    unrestricted: bool = False
    copy_blocks: int = 0
    unterminated_copy: str | None = None
    roles: set[str] = field(default_factory=set)
    superuser_owners: set[str] = field(default_factory=set)  # superuser_owner_in_line
    tablespaces: set[str] = field(default_factory=set)
    preamble: dict[str, str] = field(default_factory=dict)
    lines: int = 0
    ends_with_newline: bool = True
    decode_errors: int = 0
    database_statements: int = 0  # CREATE/ALTER/DROP DATABASE and \connect (pg_dump -C)
    # the text of those statements (pg_dbprops.parse reads the database's properties from it)
    database_sql: list[str] = field(default_factory=list)
    database_sql_bytes: int = 0
    clean_statements: int = 0  # the leading DROP section of pg_dump -c (--clean) without --if-exists
    dump_headers: int = 0  # '-- PostgreSQL database dump' lines: more than one is a concatenation
    cluster_dump: bool = False  # pg_dumpall output, which legitimately holds several dumps
    # Lines psql must read otherwise, by the byte offset where the line starts (outside COPY data
    # only): pg_dump's own \\restrict/\\unrestrict pair (psql is restricted with restorecheck's
    # key instead) and pg_dump -C's database statements become comments. ``restricted_script``
    # applies them while it streams the script: no edited copy of the dump is written.
    edits: dict[int, bytes] = field(default_factory=dict)
    meta_commands: int = 0  # other lines starting with a backslash outside COPY data

    def evidence(self, object_name: str) -> Evidence:
        """What the scan tells about the dump's completeness, for ``checks.backup_file``."""
        return Evidence("plain_scan", object_name, {
            "unterminated_copy": self.unterminated_copy, "trailer": self.trailer, "trailer_text": TRAILER,
            "dump_headers": self.dump_headers, "cluster_dump": self.cluster_dump,
            "restrict": bool(self.restrict_key), "unrestricted": self.unrestricted})


def scan_plain(path: Path, *, progress: ProgressFn = no_progress) -> PlainScan:
    """One streaming pass over a plain dump: trailer, COPY terminators, roles, preamble."""
    scan = PlainScan()
    total = Path(path).stat().st_size
    in_copy: str | None = None
    head: list[str] = []
    clean = CleanSection()
    db_quote: str | None = None  # inside a database statement that spans lines: its open quote, or ""
    open_db = False
    done = 0
    last_report = 0
    last = b""
    with open(path, "rb") as f:
        for raw in f:
            scan.lines += 1
            done += len(raw)
            last = raw
            if done - last_report > (64 << 20):
                progress("check plain dump", done, total)
                last_report = done
            if in_copy is not None:
                if raw.rstrip(b"\r\n") == b"\\.":
                    in_copy = None
                continue
            if open_db:  # the next line of a database statement (a comment over several lines)
                text = raw.decode("utf-8", "replace")
                scan.edits[done - len(raw)] = _comment(b"left out by restorecheck", raw)
                _keep_database_sql(scan, text)
                db_quote, ended = statement_quotes(text, db_quote)
                open_db = not ended
                continue
            m = _COPY_START.match(raw)
            if m:
                in_copy = m.group("table").decode("utf-8", "replace")
                scan.copy_blocks += 1
                clean.state = "after"
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                scan.decode_errors += 1
                line = raw.decode("utf-8", "replace")
            if len(head) < 200:
                head.append(line)
            stripped = line.strip()
            start = done - len(raw)
            if clean.state != "after":
                rewritten = clean.rewrite(raw.decode("utf-8", "surrogateescape"))
                if rewritten is not None:  # pg_dump -c: as --if-exists writes it (CleanSection)
                    scan.clean_statements += 1
                    scan.edits[start] = rewritten.encode("utf-8", "surrogateescape")
            if stripped.startswith("\\restrict ") and not (scan.restrict_key and not scan.unrestricted):
                scan.restrict_key = stripped.split(None, 1)[1]
                scan.unrestricted = False
                scan.edits[start] = _comment(b"pg_dump's restrict line", raw)
            elif stripped.startswith("\\unrestrict ") and scan.restrict_key and not scan.unrestricted \
                    and stripped.split(None, 1)[1] == scan.restrict_key:
                scan.unrestricted = True
                scan.edits[start] = _comment(b"pg_dump's unrestrict line", raw)
            elif stripped == TRAILER:
                scan.trailer = True
            elif stripped == HEADER:
                scan.dump_headers += 1
            elif stripped == CLUSTER_HEADER:
                scan.cluster_dump = True
            elif stripped:
                if scan.trailer and not stripped.startswith("--"):
                    scan.trailer = False  # more SQL after the trailer: a concatenation, not complete
                if is_database_statement(stripped):
                    scan.database_statements += 1
                    scan.edits[start] = _comment(b"left out by restorecheck", raw)
                    if not stripped.startswith("\\"):
                        _keep_database_sql(scan, line)
                        db_quote, ended = statement_quotes(line, None)
                        open_db = not ended
                elif stripped.startswith("\\"):
                    scan.meta_commands += 1
                scan.roles |= roles_in_line(stripped)
                owner = superuser_owner_in_line(stripped)
                if owner:
                    scan.superuser_owners.add(owner)
                if stripped.startswith("SET default_tablespace"):
                    ts = tablespace_in_line(stripped)
                    if ts:
                        scan.tablespaces.add(ts)
    scan.unterminated_copy = in_copy
    scan.ends_with_newline = last.endswith(b"\n") if last else True
    scan.preamble = parse_preamble("".join(head))
    progress("check plain dump", total, total)
    return scan


_CREATE_DATABASE = re.compile(r'^CREATE DATABASE (?:"(?:[^"]|"")*"|[^\s"]+) WITH (?P<options>.*);\s*$')
_DB_OPTION = re.compile(r"\s*(?P<key>[A-Z_]+)\s*=\s*(?P<value>'(?:[^']|'')*'|[A-Za-z0-9_]+)")
_LOCALE_KEYS = {"ENCODING": "encoding", "LC_COLLATE": "lc_collate", "LC_CTYPE": "lc_ctype",
                "LOCALE_PROVIDER": "locale_provider", "ICU_LOCALE": "icu_locale", "ICU_RULES": "icu_rules",
                "BUILTIN_LOCALE": "builtin_locale"}


def database_locale_in_sql(text: str) -> dict[str, str]:
    """The encoding and locale of the first ``CREATE DATABASE ... WITH ...;`` line of a script
    (pg_dump -C, or ``pg_restore --create`` of an archive), as manifest facts name them
    (``lc_collate``, ``lc_ctype``, ``locale_provider``, ``icu_locale``, ...); ``LOCALE`` sets both
    LC_ values. Empty when there is none. Values are only ever passed on as SQL literals."""
    for line in text.splitlines():
        m = _CREATE_DATABASE.match(line)
        if not m:
            continue
        out: dict[str, str] = {}
        options = m["options"]
        pos = 0
        while pos < len(options):
            o = _DB_OPTION.match(options, pos)
            if o is None:
                break
            pos = o.end()
            key, value = o["key"], o["value"]
            if value.startswith("'"):
                value = value[1:-1].replace("''", "'")
            if key == "LOCALE":
                out.setdefault("lc_collate", value)
                out.setdefault("lc_ctype", value)
            elif key in _LOCALE_KEYS:
                out[_LOCALE_KEYS[key]] = value.lower() if key == "LOCALE_PROVIDER" else value
        return out
    return {}


_DATABASE_PREFIXES = ("CREATE DATABASE ", "ALTER DATABASE ", "DROP DATABASE ", "COMMENT ON DATABASE ",
                      "\\connect ", "\\c ")
MAX_DATABASE_SQL = 1 << 20  # bytes of database statements kept for pg_dbprops.parse


def is_database_statement(line: str) -> bool:
    """A line of ``pg_dump -C`` that creates, alters or switches the database itself, or sets its
    properties: also ``ALTER ROLE r IN DATABASE d SET ...`` and ``GRANT``/``REVOKE ... ON DATABASE``
    (run as written they would act on the source's database, by its name)."""
    if line.startswith(_DATABASE_PREFIXES):
        return True
    if line.startswith(("ALTER ROLE ", "GRANT ", "REVOKE ")):
        from restorecheck.engines.pg_dbprops import tokens

        words = []
        for tok in tokens(line):
            if tok.kind == "punct" and tok.text == ";":
                break
            words.append(tok.upper)
        if words[:2] == ["ALTER", "ROLE"]:
            return words[3:5] == ["IN", "DATABASE"]
        return any(words[i:i + 2] == ["ON", "DATABASE"] for i in range(len(words)))
    return False


def statement_quotes(line: str, quote: str | None) -> tuple[str | None, bool]:
    """Track quotes through one line of a statement: the quote still open at its end (None: none),
    and whether the statement ends on this line (a ';' outside quotes is its last character)."""
    last = ""
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == quote:
                if line[i + 1:i + 2] == quote:
                    i += 2
                    continue
                quote = None
                last = c
            i += 1
            continue
        if c in "'\"":
            quote = c
        elif line.startswith("--", i):
            break
        if not c.isspace():
            last = c
        i += 1
    return quote, quote is None and last == ";"


def _keep_database_sql(scan: PlainScan, line: str) -> None:
    if scan.database_sql_bytes + len(line) <= MAX_DATABASE_SQL:
        scan.database_sql.append(line)
        scan.database_sql_bytes += len(line)
    else:
        scan.database_sql_bytes = MAX_DATABASE_SQL + 1  # pg_dbprops is told it was cut


def _comment(why: bytes, raw: bytes) -> bytes:
    """One line that stands for ``raw`` in the script psql reads: a comment saying why (the line count
    stays, so psql's line numbers still point into the file)."""
    text = raw.rstrip(b"\r\n").replace(b"\\", b"/")[:200]
    return b"-- (" + why + b") " + text + b"\n"


# The object kinds of pg_dump's DROP statements (te->desc), longest first: "IF EXISTS" goes after them.
_DROP_KINDS = sorted((
    "ACCESS METHOD", "AGGREGATE", "CAST", "COLLATION", "CONVERSION", "DOMAIN", "EVENT TRIGGER", "EXTENSION",
    "FOREIGN DATA WRAPPER", "FOREIGN TABLE", "FUNCTION", "INDEX", "LANGUAGE", "MATERIALIZED VIEW", "OPERATOR",
    "OPERATOR CLASS", "OPERATOR FAMILY", "POLICY", "PROCEDURAL LANGUAGE", "PROCEDURE", "PUBLICATION", "RULE",
    "SCHEMA", "SEQUENCE", "SERVER", "STATISTICS", "SUBSCRIPTION", "TABLE", "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY", "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE", "TRANSFORM", "TRIGGER", "TYPE",
    "USER MAPPING", "VIEW",
), key=len, reverse=True)
_LO_UNLINK = re.compile(r"^SELECT pg_catalog\.lo_unlink\('(?P<oid>\d+)'\);$")
# preamble lines pg_dump writes before the DROP section (-C: the database lines come first)
_PREAMBLE = re.compile(r"^(SET [a-z_]+ = .*;|SELECT pg_catalog\.set_config\(.*\);|\\(restrict|unrestrict) \S+)$")


@dataclass
class CleanSection:
    """Finds and rewrites the leading DROP section of a ``pg_dump -c`` plain dump, line by line.

    pg_dump writes it right after the preamble (the ``SET`` lines), one statement per line, before
    the first object's ``-- Name:`` comment; every statement there is a DROP of an object the dump
    then creates. Only that section is touched: the first line that is neither preamble nor such a
    DROP ends it for good (``state == "after"``), so a ``DROP`` in COPY data, a function body or
    anywhere later in the script is never rewritten. Each statement becomes what ``pg_dump -c
    --if-exists`` writes (pg_backup_archiver.c, ``_printTocEntry``): ``ALTER TABLE IF EXISTS``,
    ``DROP CONSTRAINT IF EXISTS``, ``DROP <kind> IF EXISTS``, and a ``lo_unlink`` that skips missing
    large objects. A line it does not recognise ends the section unchanged, so it still fails if it
    fails.
    """

    state: str = "preamble"  # preamble | clean | after

    def rewrite(self, line: str) -> str | None:
        """The rewritten line, or None when it is left as is (the state is updated either way)."""
        stripped = line.strip()
        end = line[len(line.rstrip("\r\n")):] or "\n"
        if not stripped or (stripped.startswith("--") and self.state == "preamble"):
            return None
        if self.state == "preamble" and (_PREAMBLE.match(stripped) or is_database_statement(stripped)):
            return None
        new = if_exists(stripped)
        if new is None:
            self.state = "after"
            return None
        self.state = "clean"
        return None if new == stripped else new + end


def if_exists(statement: str) -> str | None:
    """``statement`` (one line of pg_dump's DROP section) as ``--if-exists`` writes it, or None when
    it is not such a statement. Already-IF-EXISTS statements are returned unchanged."""
    if not statement.endswith(";") or "\n" in statement:
        return None
    m = _LO_UNLINK.match(statement)
    if m:
        return f"SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata WHERE oid = '{m['oid']}';"
    if statement.startswith("SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata WHERE oid = "):
        return statement
    if statement.startswith("ALTER TABLE "):
        rest = statement[len("ALTER TABLE "):]
        head = "ALTER TABLE " if rest.startswith("IF EXISTS ") else "ALTER TABLE IF EXISTS "
        if rest.endswith(" DROP DEFAULT;") and " ALTER COLUMN " in rest:
            return head + rest  # ALTER COLUMN ... DROP DEFAULT has no IF EXISTS (pg_dump leaves it too)
        mark = rest.find(" DROP CONSTRAINT ")
        if mark < 0:
            return None
        after = rest[mark + len(" DROP CONSTRAINT "):]
        if after.startswith("IF EXISTS "):
            return head + rest
        return f"{head}{rest[:mark]} DROP CONSTRAINT IF EXISTS {after}"
    if not statement.startswith("DROP "):
        return None
    rest = statement[len("DROP "):]
    for kind in _DROP_KINDS:
        if rest.startswith(kind + " ") or (kind == "CAST" and rest.startswith("CAST (")):
            after = rest[len(kind):].lstrip(" ")
            if after.startswith("IF EXISTS "):
                return statement
            return f"DROP {kind} IF EXISTS {after}"
    return None




def gunzip_to(src: Path, dest: Path, *, progress: ProgressFn = no_progress) -> str | None:
    """Decompress a gzip file into ``dest`` (a separate step, PITFALLS A5).

    Returns None when gzip's own checks passed (every member complete, CRC and length right),
    else the error, in which case ``dest`` holds what could be decompressed before it.
    """
    total = src.stat().st_size
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with open(src, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as zin, os.fdopen(fd, "wb") as out:
            while block := zin.read(1 << 20):
                out.write(block)
                progress("decompress gzip", raw.tell(), total)
    except EOFError:
        return "the gzip file is cut short (unexpected end of file)"
    except gzip.BadGzipFile as exc:
        return f"the gzip file is damaged: {exc}"
    except zlib.error as exc:
        return f"the gzip data is corrupt: {exc}"
    except OSError as exc:
        return f"the gzip file cannot be read: {exc}"
    return None


# --- restore output parsing -------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreError:
    """One error a restore tool printed."""

    message: str
    context: str | None = None  # the TOC entry (pg_restore) or the script line (psql)
    command: str | None = None
    detail: str | None = None


_IGNORED = re.compile(r"errors ignored on restore:\s*(\d+)")
_TOC_ENTRY = re.compile(r"from TOC entry \d+;\s*\d+\s+\d+\s+(?P<desc>.+)$")
_PSQL_ERR = re.compile(
    r"^psql:(?P<file>.*?):(?P<line>\d+):\s*(?P<level>ERROR|FATAL|error|fatal):\s*(?P<msg>.*)$"
)


def parse_pg_restore_stderr(stderr: str) -> tuple[list[RestoreError], int | None]:
    """Every 'error:' pg_restore printed, with its TOC entry and command; and the ignored count."""
    errors: list[RestoreError] = []
    ignored: int | None = None
    context: str | None = None
    lines = stderr.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        m = _IGNORED.search(line)
        if m:
            ignored = int(m.group(1))
            i += 1
            continue
        m = _TOC_ENTRY.search(line)
        if m:
            context = m.group("desc").strip()
            i += 1
            continue
        if "error:" in line and line.startswith("pg_restore"):
            msg = line.split("error:", 1)[1].strip()
            msg = msg.removeprefix("could not execute query:").strip()
            command = None
            detail_lines: list[str] = []
            j = i + 1
            while j < len(lines) and not lines[j].startswith("pg_restore:"):
                nxt = lines[j].strip()
                if nxt.startswith("Command was:"):
                    command = nxt.removeprefix("Command was:").strip()
                elif nxt.startswith(("DETAIL:", "HINT:", "CONTEXT:")):
                    detail_lines.append(nxt)
                j += 1
            errors.append(RestoreError(msg, context, command, " ".join(detail_lines) or None))
            i = j
            continue
        i += 1
    return errors, ignored


def parse_psql_stderr(stderr: str, *, line_offset: int = 0) -> list[RestoreError]:
    """Every ERROR/FATAL psql printed (``psql:FILE:LINE: ERROR: ...``) with DETAIL/CONTEXT lines."""
    errors: list[RestoreError] = []
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        m = _PSQL_ERR.match(line.strip())
        if not m:
            continue
        details = []
        for nxt in lines[i + 1:i + 6]:
            s = nxt.strip()
            if s.startswith(("DETAIL:", "HINT:", "CONTEXT:")):
                details.append(s)
            elif _PSQL_ERR.match(s):
                break
        line_no = max(1, int(m.group("line")) - line_offset)
        errors.append(RestoreError(m.group("msg").strip(), f"line {line_no}", None,
                                   " ".join(details) or None))
    return errors


def tool_errors(tool: str, returncode: int, stderr: str, errors: Sequence[RestoreError],
                ignored: int | None = None) -> Evidence:
    """What a restore tool printed (``errors``: parsed from ``stderr``) and its exit status, for
    ``checks.restore``."""
    return Evidence("tool_errors", tool, {
        "tool": tool, "returncode": returncode, "ignored": ignored,
        "stderr_tail": " ".join(stderr.strip().splitlines()[-3:]),
        "errors": [{"message": e.message, "context": e.context, "command": e.command, "detail": e.detail}
                   for e in errors]})


# --- running with progress --------------------------------------------------------------------
# The tools run through restorecheck.runner (ToolJail.run for those that read a backup).

ToolResult = Completed  # what a pg_dump / pg_restore / psql run returns


def ticker(progress: ProgressFn, label: str, *, size_of: Path | None = None,
           total: float | None = None) -> Callable[[float], None]:
    """``Command.on_tick`` reporting a running tool: the growing size of ``size_of`` (pg_dump's
    output), else the seconds elapsed."""

    def tick(elapsed: float) -> None:
        done = elapsed
        if size_of is not None:
            done = 0.0
            with contextlib.suppress(OSError):
                done = float(backup_bytes(size_of)) if size_of.exists() else 0.0
        progress(label, done, total)

    return tick
