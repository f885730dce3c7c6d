"""SQLite: backups with the online backup API, fingerprints, restore into a private copy.

Backup (PITFALLS H1, H2): the source is opened read-only (``file:...?mode=ro``), one read
transaction is opened and held while ``Connection.backup`` copies the pages in steps, so the copy
is one consistent snapshot that includes commits still only in the ``-wal`` file, and writers on
other connections never make the stepped backup restart. The manifest is the fingerprint of that
same snapshot, read in the same transaction right after the copy: it describes exactly what the
copy must hold, and verify then compares the restored copy with the source rather than with
itself (a copy damaged on its way to disk is caught). The source's bytes are never modified
(SQLite may create the ``-shm``/``-wal`` files a WAL reader needs next to a WAL-mode source, as
every reader does).

Restore (PITFALLS H6): the backup is copied into a private temporary directory
(``provisioners.sqlite.temporary_sqlite``) and only the copy is ever opened. A file with the
SQLite header that cannot be opened or read is a finding (exit 1); a file without the header is
not this engine's (``detect_format`` returns None; the pipeline reports an unknown format, exit 2).

Fingerprint (PITFALLS H3-H5, I.7): header values, the schema from ``sqlite_master`` and
``PRAGMA table_list``/``table_xinfo`` (virtual tables counted once, their shadow tables skipped),
per table the row count and a content checksum, ``PRAGMA integrity_check`` (full),
``PRAGMA foreign_key_check`` for every foreign key whether enforced or not, and
``sqlite_sequence`` (as ``Manifest.sequences``).

The checksum (mode ``sqlite-keyed-sha256-v2``): SHA-256 over the rows in key order (the rowid,
or the INTEGER PRIMARY KEY column that is the rowid, for rowid and virtual tables; the primary key
for WITHOUT ROWID tables), each row the key and every column encoded by SQLite itself, typed:
``quote()`` for INTEGER, BLOB (``X'..'``) and NULL, ``F`` and the 16 upper-case hex digits of the IEEE 754
binary64 for REAL (0.0 for -0.0), ``T<bytes>:<text>`` for TEXT
(so ``1``, ``1.0``, ``'1'`` and ``x'01'`` differ, and text with an embedded NUL is hashed whole;
the raw text was measured a third faster than its hex on wide rows, and no slower on narrow ones).
Ordering by key makes it independent of physical row order and page layout (a VACUUMed or
differently paged copy has the same checksum); ``FingerprintOptions.strict`` changes nothing, the
encoding is exact already. The encoding runs inside SQLite and Python only hashes chunks of a few
megabytes: by the C aggregate ``restorecheck_rows`` (restorecheck/_sqlite_rows.c, added to the
connection by ``register_native``, which first proves it encodes a row of every storage class as
the SQL does), else by the SQL of ``row_sql`` (an install without a C compiler), the same bytes
either way. Rowid tables are read straight off the table b-tree (``_direct_chunk``: ``NOT
INDEXED``, the aggregate refusing a key that does not grow), other tables through ``ORDER BY``;
SHA-256 runs on a worker thread (``_Hashing``). Tables above ``FingerprintOptions.range_rows`` rows
also get key-range checksums: rowid tables on a grid of power-of-two rowid buckets (a deleted row shifts no
boundary), WITHOUT ROWID tables in runs of a power-of-two number of rows; a fingerprint made with
``ranges_from`` reuses the reference's bounds. ``SqliteEngine.narrow`` lists the exact differing
keys when both databases are at hand. ``reference_checksum`` is the same checksum spelled out value
by value in Python: the definition of the format, tested equal to the in-SQLite one on every
storage class (``tests/unit/test_sqlite_checksum_reference.py``).

``sqlite-keyed-sha256-v1`` (restorecheck 0.1) rendered a REAL by ``quote()``, whose digits changed
in SQLite 3.43 (``1.0/3`` is ``3.33333333333333314829e-01`` in 3.40 and ``0.33333333333333332``
in 3.54): a manifest made with one SQLite library did not match a verify run with another. v2's
REALs are the bits of the double, the same under every SQLite: SQLite calls ``struct.pack`` itself
per REAL value (``restorecheck_f64``; no Python code runs inside SQLite) and ``hex()``s it. v1 is
still computed to verify against a manifest made in it (on a machine with that manifest's SQLite).

Throughput (``benchmarks/bench_sqlite.py``, SQLite 3.40.1, 256 MB of narrow rows): about 240 MB/s
per core with the C aggregate, the speed of a bare ``length()`` of every value; 45 MB/s by SQL.

Speed: fingerprint connections use a 128 MiB page cache, and a restored copy is memory-mapped;
``integrity_check`` of a private file runs in a child process beside the checksums, then
``foreign_key_check`` here (the backup's copy: ``foreign_key_check`` in the child, its sha256 on a
thread); see ``benchmarks/bench_sqlite.py`` for the figures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import os
import re
import shlex
import shutil
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from restorecheck.dburl import DatabaseRef, SqliteRef
from restorecheck.engines.base import (
    BackupOptions,
    FingerprintOptions,
    ProgressFn,
    RestoreOptions,
    RestoreOutcome,
    Target,
    ThrowawaySource,
    backup_files,
    no_progress,
)
from restorecheck.errors import (
    BackupNotFoundError,
    BadInputError,
    BadManifestError,
    SourceUnreachableError,
    UnknownFormatError,
    first_line,
)
from restorecheck.evidence import Evidence
from restorecheck.model import (
    BackupArtifact,
    BackupFormat,
    ChecksumMode,
    EngineName,
    Finding,
    Manifest,
    RangeChecksum,
    TableFingerprint,
)
from restorecheck.runner import Command, Completed, current_runner
from restorecheck.signals import deferred_signals

log = logging.getLogger("restorecheck")

SQLITE_MAGIC = b"SQLite format 3\x00"
CHECKSUM_MODE: ChecksumMode = "sqlite-keyed-sha256-v2"
CHECKSUM_MODE_V1: ChecksumMode = "sqlite-keyed-sha256-v1"  # manifests of 0.1: REALs by quote()
REAL_FUNCTION = "restorecheck_f64"
_PACK_F64 = struct.Struct(">d").pack
FORMAT: BackupFormat = "sqlite"
SUFFIX = ".db"
BACKUP_STEP_PAGES = 4096
MAX_INTEGRITY_ERRORS = 100
MAX_ORPHAN_ROWIDS = 20
CHUNK_TARGET_BYTES = 8 << 20
THREADED_HASH_ROWS = 100_000  # from this many rows a table's chunks are hashed on a worker thread
CACHE_KIB = 128 << 10  # page cache of a fingerprint connection: 128 MiB at most
MMAP_BYTES = (1 << 31) - 1  # SQLite caps it at its compile-time maximum
_ROWID_ALIASES = ("rowid", "_rowid_", "oid")
ENCODINGS = {1: "UTF-8", 2: "UTF-16le", 3: "UTF-16be"}


# --- small helpers ----------------------------------------------------------------------------


def quote_identifier(name: str) -> str:
    """An SQL identifier for SQLite: double quotes, inner double quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def is_sqlite_file(path: Path) -> bool:
    """True when ``path`` is a regular file that starts with the SQLite header string."""
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _uri(path: Path, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return path.resolve().as_uri() + (f"?{query}" if query else "")


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def lock_wait_seconds(duration: str) -> float:
    """A PostgreSQL duration (``--lock-timeout``: ``10s``, ``500ms``, ``2min``; a bare number is
    milliseconds, as lock_timeout's) as the seconds a SQLite connection waits for a lock; ``0``
    (PostgreSQL: wait forever) is a day, an unreadable value the default 10 s."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*", duration or "")
    if m is None:
        return 10.0
    seconds = float(m.group(1)) * _UNITS[m.group(2) or "ms"]
    return 86400.0 if seconds == 0 else seconds


def connect_readonly(path: Path, *, immutable: bool = False, private: bool = False,
                     timeout: float = 5.0) -> sqlite3.Connection:
    """Open ``path`` read-only (``mode=ro``; ``immutable=1`` only for a file nothing else touches).

    A larger page cache halves the time of ``integrity_check`` on large files. ``private``: a file
    no other process touches (a restored copy) is also memory-mapped, which saves a read() per
    page; a live source is not, since a file truncated under a mapping would kill the process.
    """
    params = {"mode": "ro"}
    if immutable:
        params["immutable"] = "1"
    conn = sqlite3.connect(_uri(path, **params), uri=True, isolation_level=None, check_same_thread=False,
                           timeout=timeout)
    conn.execute("PRAGMA query_only = 1")
    try:  # these read the schema: a damaged file is reported by the reads that follow, not here
        conn.execute(f"PRAGMA cache_size = {-CACHE_KIB}")
        if private:
            conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    except sqlite3.DatabaseError:
        pass
    return conn


def _read_hint(exc: sqlite3.Error, path: Path, waited: float) -> str:
    """The fix for a source that cannot be read, by what SQLite said."""
    msg = str(exc).lower()
    if "locked" in msg or "busy" in msg:
        return (f"another connection holds a lock on it (waited {waited:g} s): retry when its write "
                "is done, or wait longer with --lock-timeout")
    if "readonly" in msg and Path(str(path) + "-journal").exists():
        return (f"an interrupted transaction left {path.name}-journal (a hot journal), which only a "
                "writer can roll back: open the database once with write access (sqlite3 "
                f"{path.name} 'PRAGMA user_version') and retry")
    return "check that it is a healthy SQLite database"


def _sha256_file(path: Path, progress: ProgressFn = no_progress) -> tuple[int, str]:
    h = hashlib.sha256()
    size = path.stat().st_size
    done = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(4 << 20)
            if not block:
                break
            h.update(block)
            done += len(block)
            progress("sha256", done, size)
    return done, h.hexdigest()


# --- catalog ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    notnull: bool
    default: str | None
    pk: int
    hidden: int  # 0 normal, 1 hidden (virtual tables), 2 virtual generated, 3 stored generated


@dataclass(frozen=True)
class TableInfo:
    """What the fingerprint needs to know about one table."""

    name: str
    kind: str  # table | without_rowid | virtual
    columns: tuple[Column, ...]
    sql: str | None
    strict: bool = False
    shadow: tuple[str, ...] = ()
    rowid_alias: str | None = None  # the INTEGER PRIMARY KEY column that is the rowid

    @property
    def qualified(self) -> str:
        return f"main.{self.name}"

    @property
    def data_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.hidden != 1)

    @property
    def key_columns(self) -> tuple[str, ...]:
        if self.kind != "without_rowid":
            return ()
        return tuple(c.name for c in sorted((c for c in self.columns if c.pk), key=lambda c: c.pk))

    def rowid_name(self) -> str | None:
        """An unshadowed name for the rowid, or None when every alias is a real column."""
        if self.kind == "without_rowid":
            return None
        names = {c.name.lower() for c in self.columns}
        for alias in _ROWID_ALIASES:
            if alias not in names:
                return alias
        return None


def _table_list(conn: sqlite3.Connection) -> list[tuple[str, str, bool, bool]]:
    """(name, type, without_rowid, strict) of schema ``main``; type: table|view|virtual|shadow."""
    try:
        rows = conn.execute("PRAGMA main.table_list").fetchall()
        return [(r[1], r[2], bool(r[4]), bool(r[5])) for r in rows]
    except sqlite3.OperationalError:  # SQLite < 3.37: fall back on sqlite_master and name patterns
        out: list[tuple[str, str, bool, bool]] = []
        master = conn.execute("SELECT type, name, sql FROM main.sqlite_master").fetchall()
        virtual = [n for t, n, s in master if t == "table" and (s or "").upper().startswith("CREATE VIRTUAL")]
        for typ, name, sql in master:
            if typ not in ("table", "view"):
                continue
            kind = typ
            upper = (sql or "").upper()
            if typ == "table" and upper.startswith("CREATE VIRTUAL"):
                kind = "virtual"
            elif typ == "table" and any(name.startswith(v + "_") for v in virtual):
                kind = "shadow"
            wr = bool(re.search(r"\)\s*WITHOUT\s+ROWID\s*(,|$|;)", upper))
            out.append((name, kind, wr, False))
        return out


def read_tables(conn: sqlite3.Connection) -> list[TableInfo]:
    """The tables whose data restorecheck fingerprints: ordinary, WITHOUT ROWID and virtual ones.

    Internal ``sqlite_*`` tables and the shadow tables of virtual tables are left out: a virtual
    table is read through the virtual table itself, once (PITFALLS H5).
    """
    entries = _table_list(conn)
    sql_of = dict(conn.execute("SELECT name, sql FROM main.sqlite_master WHERE type = 'table'").fetchall())
    shadows = sorted(n for n, t, _, _ in entries if t == "shadow")
    tables: list[TableInfo] = []
    for name, typ, without_rowid, strict in sorted(entries):
        if typ not in ("table", "virtual") or name.startswith("sqlite_"):
            continue
        try:
            cols = tuple(
                Column(r[1], r[2] or "", bool(r[3]), r[4], int(r[5]), int(r[6]))
                for r in conn.execute(f"PRAGMA main.table_xinfo({quote_identifier(name)})").fetchall()
            )
        except sqlite3.DatabaseError:  # a virtual table whose module is not available here
            cols = ()
        kind = "virtual" if typ == "virtual" else "without_rowid" if without_rowid else "table"
        own_shadows = tuple(s for s in shadows if s.startswith(name + "_")) if kind == "virtual" else ()
        alias = _rowid_alias(conn, name, cols) if kind == "table" else None
        tables.append(TableInfo(name, kind, cols, sql_of.get(name), strict, own_shadows, alias))
    return tables


def _rowid_alias(conn: sqlite3.Connection, name: str, cols: Sequence[Column]) -> str | None:
    """The column that aliases the rowid: a lone ``INTEGER PRIMARY KEY`` backed by no index
    (``INTEGER PRIMARY KEY DESC`` is an ordinary column with an automatic index)."""
    pks = [c for c in cols if c.pk]
    if len(pks) != 1 or pks[0].type.strip().upper() != "INTEGER":
        return None
    try:
        origins = [r[3] for r in conn.execute(f"PRAGMA main.index_list({quote_identifier(name)})")]
    except sqlite3.DatabaseError:
        return None
    return None if "pk" in origins else pks[0].name


def _norm_sql(sql: str | None) -> str | None:
    return None if sql is None else " ".join(sql.split())


def read_schema(conn: sqlite3.Connection, tables: Sequence[TableInfo]) -> dict[str, Any]:
    """The schema as normalised JSON-able sections keyed by qualified name (for deepdiff)."""
    schema: dict[str, Any] = {"tables": {}, "virtual_tables": {}, "indexes": {}, "views": {}, "triggers": {}}
    for t in tables:
        entry: dict[str, Any] = {
            "sql": _norm_sql(t.sql),
            "columns": {
                c.name: {"type": c.type, "notnull": c.notnull, "default": c.default, "pk": c.pk,
                         "hidden": c.hidden}
                for c in t.columns
            },
        }
        if t.kind == "virtual":
            entry["shadow_tables"] = list(t.shadow)
            schema["virtual_tables"][t.qualified] = entry
        else:
            entry["without_rowid"] = t.kind == "without_rowid"
            entry["strict"] = t.strict
            try:
                entry["foreign_keys"] = [
                    {"id": r[0], "seq": r[1], "table": r[2], "from": r[3], "to": r[4],
                     "on_update": r[5], "on_delete": r[6], "match": r[7]}
                    for r in conn.execute(f"PRAGMA main.foreign_key_list({quote_identifier(t.name)})")
                ]
            except sqlite3.DatabaseError:
                entry["foreign_keys"] = []
            schema["tables"][t.qualified] = entry
    shadow = {s for t in tables for s in t.shadow}
    for typ, name, tbl, sql in conn.execute(
        "SELECT type, name, tbl_name, sql FROM main.sqlite_master WHERE type IN ('index', 'view', 'trigger')"
    ).fetchall():
        if tbl in shadow or sql is None:
            continue  # shadow tables' objects; automatic indexes (UNIQUE/PRIMARY KEY) live in the table SQL
        qualified = f"main.{name}"
        if typ == "index":
            schema["indexes"][qualified] = {"table": f"main.{tbl}", "sql": _norm_sql(sql)}
        elif typ == "view":
            schema["views"][qualified] = {"sql": _norm_sql(sql)}
        else:
            schema["triggers"][qualified] = {"table": f"main.{tbl}", "sql": _norm_sql(sql)}
    return schema


def read_header(conn: sqlite3.Connection, path: Path | None = None) -> dict[str, Any]:
    """The header values a copy must keep, plus the journal mode recorded in the file header."""
    def pragma(name: str) -> Any:
        row = conn.execute(f"PRAGMA main.{name}").fetchone()
        return None if row is None else row[0]

    header: dict[str, Any] = {
        "user_version": pragma("user_version"),
        "application_id": pragma("application_id"),
        "page_size": pragma("page_size"),
        "auto_vacuum": {0: "none", 1: "full", 2: "incremental"}.get(pragma("auto_vacuum"), pragma("auto_vacuum")),
        "encoding": pragma("encoding"),
    }
    if path is not None:
        try:
            with open(path, "rb") as f:
                raw = f.read(100)
            if len(raw) >= 20:
                header["journal_mode"] = "wal" if raw[18] == 2 and raw[19] == 2 else "rollback"
        except OSError:
            pass
    return header


# --- content checksums ------------------------------------------------------------------------


def real64(value: float) -> str:
    """A REAL in ``sqlite-keyed-sha256-v2``: ``F`` and the big-endian IEEE 754 bits in upper-case hex
    (-0.0 as 0.0). The definition; the SQL (``value_sql``) computes the same with SQLite's ``hex()``."""
    return "F" + _PACK_F64(value if value != 0 else 0.0).hex().upper()


def register_functions(conn: sqlite3.Connection) -> None:
    """The SQL function the v2 checksum calls for REAL values (on every connection that checksums):
    ``struct.Struct(">d").pack``, a C function. No Python bytecode runs inside SQLite's callback, so
    a signal's exception (Ctrl-C, SIGTERM) is never raised there, where the sqlite3 module would
    swallow it into "user-defined function raised exception" and the run would go on."""
    conn.create_function(REAL_FUNCTION, 1, _PACK_F64, deterministic=True)


ROWS_FUNCTION = "restorecheck_rows"
# One row of every storage class, encoded by the C aggregate and by the SQL: the two must agree
# before the aggregate is used on a connection (a wrong sqlite3* or library cannot go unnoticed).
_NATIVE_PROBE = ("SELECT -9223372036854775808 AS a, 1.0/3 AS b, -0.0 AS c, 'x,\ny' AS d, "
                 "x'00ff10' AS e, NULL AS f, 'é' AS g, 1e308*10 AS h")
_native_state: dict[str, Any] = {}


def _native_module() -> Any | None:
    """``restorecheck._sqlite_rows`` when it was built and this Python's sqlite3 module is a shared
    library it can look SQLite up in, else None (``RESTORECHECK_SQLITE_NATIVE=0`` forces None)."""
    if os.environ.get("RESTORECHECK_SQLITE_NATIVE", "1") == "0":
        return None
    if "module" not in _native_state:
        module: Any = None
        try:
            import _sqlite3

            from restorecheck import _sqlite_rows

            _native_state["library"] = _sqlite3.__file__
            module = _sqlite_rows
        except (ImportError, AttributeError) as exc:  # not built, or sqlite3 linked into python itself
            log.debug("SQLite checksums by SQL: the C row encoder is not available (%s)", exc)
        _native_state["module"] = module
    return _native_state["module"]


def register_native(conn: sqlite3.Connection) -> bool:
    """Add ``restorecheck_rows`` (restorecheck/_sqlite_rows.c) to ``conn`` and prove it encodes as the
    SQL does; False (and the SQL encoding is used) when it is not built or does not agree."""
    module = _native_module()
    if module is None:
        return False
    try:
        register_functions(conn)  # the SQL encoding it is checked against needs it
        utf16 = conn.execute("PRAGMA main.encoding").fetchone()[0] != "UTF-8"
        module.register(conn, sqlite3.Connection, _native_state["library"], utf16, ROWS_FUNCTION)
        factory, conn.text_factory = conn.text_factory, bytes
        try:
            native = conn.execute(f"SELECT {ROWS_FUNCTION}(NULL, a, b, c, d, e, f, g, h) FROM ({_NATIVE_PROBE})").fetchone()[0]
            by_sql = conn.execute(
                f"SELECT {row_sql(None, list('abcdefgh'))} FROM ({_NATIVE_PROBE})").fetchone()[0]
        finally:
            conn.text_factory = factory
    except (RuntimeError, TypeError, ValueError, sqlite3.Error) as exc:
        log.debug("SQLite checksums by SQL: the C row encoder could not be added (%s)", exc)
        return False
    if bytes(native) != bytes(by_sql):
        log.warning("SQLite checksums by SQL: the C row encoder disagrees with the SQL encoding "
                    "(%r against %r)", native, by_sql)
        return False
    return True


def value_sql(column: str, version: int = 2) -> str:
    """SQL that encodes one value with its storage class, lossless (see the module docstring)."""
    c = quote_identifier(column)
    # TEXT: its byte length, then its bytes as they are (NULs included); REAL (v2): its bits; the rest: quote()
    real = (f" WHEN 'real' THEN CASE WHEN {c} = 0 THEN 'F0000000000000000' ELSE 'F'||hex({REAL_FUNCTION}({c})) END"
            if version >= 2 else "")
    return f"CASE typeof({c}) WHEN 'text' THEN 'T'||length(CAST({c} AS BLOB))||':'||{c}{real} ELSE quote({c}) END"


_FLAT_CONCAT = 32  # values joined in one flat chain of ||; more are nested (``_joined``)


def row_sql(key: str | None, columns: Sequence[str], version: int = 2) -> str:
    parts = ([f"quote({key})"] if key else []) + [value_sql(c, version) for c in columns]
    return _joined(parts) if parts else "''"


def _joined(parts: Sequence[str]) -> str:
    """``parts`` joined by ``||','||``, as a balanced tree of parenthesised halves beyond
    ``_FLAT_CONCAT`` parts: a flat chain is as deep as it is long, and SQLite refuses an expression
    deeper than 1,000 (SQLITE_MAX_EXPR_DEPTH), which a table of about 500 columns reached; nested,
    the depth grows with the logarithm of the width (a table may have 2,000 columns)."""
    if len(parts) <= _FLAT_CONCAT:
        return "||','||".join(parts)
    half = len(parts) // 2
    return f"({_joined(parts[:half])})||','||({_joined(parts[half:])})"


class _Reader:
    """Reads a table in key order in chunks of a few megabytes, each encoded by SQLite."""

    def __init__(self, conn: sqlite3.Connection, info: TableInfo, progress: ProgressFn,
                 total_hint: int | None, version: int = 2) -> None:
        register_functions(conn)
        self.conn = conn
        self.info = info
        self.progress = progress
        self.total_hint = total_hint
        self.limit = 1024
        self.done = 0
        tbl = f"main.{quote_identifier(info.name)}"
        cols = [c.name for c in info.data_columns]
        self.rowid = info.rowid_name()
        self.unique = True
        self.key_encoded = False  # the rowid leads each encoded row (it is no column of the table)
        if info.kind == "without_rowid" and info.key_columns:
            self.keys = [quote_identifier(k) for k in info.key_columns]
            enc = row_sql(None, cols, version)
        elif info.rowid_alias is not None:  # the rowid is a column already: hash it once
            self.rowid = quote_identifier(info.rowid_alias)
            self.keys = [self.rowid]
            enc = row_sql(None, cols, version)
        elif self.rowid is not None:
            self.keys = [self.rowid]
            self.key_encoded = True
            enc = row_sql(self.rowid, cols, version)
        else:  # every rowid alias is a real column: order by all columns, read in one piece
            self.keys = [quote_identifier(c) for c in cols]
            self.unique = False
            enc = row_sql(None, cols, version)
        self.tbl = tbl
        self.enc = enc
        self.order = ", ".join(self.keys)
        # v2 on a connection the C encoder could be added to (``register_native``): the aggregate
        # encodes the raw values, byte for byte as group_concat of ``enc`` would. Its first argument
        # is the integer key, which it checks grows strictly (NULL: no check)
        raw = [quote_identifier(c) for c in cols]
        args = ([self.rowid] if self.key_encoded and self.rowid else []) + raw
        # a table wider than a function may take arguments (SQLITE_LIMIT_FUNCTION_ARG, 127 by
        # default; a table may have 2,000 columns) is encoded by SQL, whose || has no such limit
        self.native = (version >= 2 and len(args) + 1 <= conn.getlimit(sqlite3.SQLITE_LIMIT_FUNCTION_ARG)
                       and register_native(conn))
        integer_key = self.rowid is not None and self.keys == [self.rowid]
        # through a sub-select of the values (aliased, so that no column name can clash) in key order
        self.values = ", ".join(f"{a} AS _c{i}" for i, a in enumerate(args)) or "NULL AS _c"
        self.aggregate = f"{ROWS_FUNCTION}({', '.join(['k' if integer_key else 'NULL'] + [f'_c{i}' for i in range(len(args))])})"
        # an ordinary rowid table: straight off the table b-tree in rowid order, no sub-select (whose
        # copy of every value costs a third of the checksum); NOT INDEXED so that no covering index
        # can feed the rows in another order, and the key check proves the order anyway
        self.direct = self.native and info.kind == "table" and integer_key
        self.direct_aggregate = f"{ROWS_FUNCTION}({', '.join([str(self.rowid), *args])})"

    def after_condition(self) -> str:
        return self.key_condition(">")

    def _fetch(self, query: str, params: Sequence[Any]) -> tuple[Any, ...]:
        """One row, text as bytes: the encoded rows are hashed as SQLite returns them, never decoded."""
        self.conn.text_factory = bytes
        try:
            row: tuple[Any, ...] = self.conn.execute(query, params).fetchone()
        finally:
            self.conn.text_factory = str
        return row

    def _direct_chunk(self, cond: str, params: list[Any], limit: int) -> tuple[Any, ...]:
        """(rows, encoded text, last key) of the next ``limit`` rows of an ordinary rowid table: the
        chunk's last key is found by walking the rowids alone (no value is read), then the rows up
        to it are aggregated straight from the table."""
        k = self.rowid
        last = self.conn.execute(f"SELECT {k} FROM {self.tbl} NOT INDEXED{cond} ORDER BY {k} LIMIT 1 OFFSET ?",
                                 [*params, limit - 1]).fetchone()
        if last is not None:
            cond = f"{cond} AND {k} <= ?" if cond else f" WHERE {k} <= ?"
            params = [*params, last[0]]
        return self._fetch(f"SELECT count(*), {self.direct_aggregate}, max({k}) FROM {self.tbl} NOT INDEXED{cond}",
                           params)

    def key_condition(self, op: str) -> str:
        """The WHERE condition "key <op> ?" (a row value for a composite key)."""
        if len(self.keys) == 1:
            return f"{self.keys[0]} {op} ?"
        return f"({', '.join(self.keys)}) {op} ({', '.join('?' * len(self.keys))})"

    def chunks(self, after: tuple[Any, ...] | None, before: tuple[Any, ...] | None = None,
               max_rows: int | None = None) -> Iterator[tuple[int, bytes, tuple[Any, ...] | None]]:
        """Yield (rows, text, last_key) for the rows with ``after`` < key < ``before`` in key order."""
        remaining = max_rows
        if not self.unique:  # keys that may repeat cannot be paged with "key > last"
            self.limit = 2**62
        while remaining is None or remaining > 0:
            limit = self.limit if remaining is None else min(self.limit, remaining)
            where: list[str] = []
            params: list[Any] = []
            if after is not None:
                where.append(self.after_condition())
                params.extend(after)
            if before is not None:
                where.append(self.key_condition("<"))
                params.extend(before)
            cond = f" WHERE {' AND '.join(where)}" if where else ""
            try:
                if self.direct:
                    (n, text, top) = self._direct_chunk(cond, params, limit)
                    if not n:
                        return
                    after = (top,)
                else:
                    got = self._ordered_chunk(cond, params, limit)
                    if got is None:
                        return
                    n, text, after = got
            except sqlite3.OperationalError as exc:
                if "out of key order" in str(exc) and self.direct:
                    log.warning("%s: rows came out of rowid order; reading it through ORDER BY", self.info.name)
                    self.direct = False
                    continue
                if "not valid UTF-16" in str(exc) and self.native:
                    # the SQL encoding's rendering of invalid UTF-16 depends on what follows it: that
                    # encoding it is, from this chunk on (the chunks before are the same bytes either way)
                    log.debug("%s: text that is not valid UTF-16; checksummed by SQL", self.info.name)
                    self.native = self.direct = False
                    continue
                raise
            self.done += n
            self.progress(f"checksum {self.info.name}", self.done, self.total_hint)
            yield n, text, after
            # aim at CHUNK_TARGET_BYTES per chunk
            per_row = max(1, len(text) // n)
            self.limit = max(16, min(1_000_000, CHUNK_TARGET_BYTES // per_row))
            if remaining is not None:
                remaining -= n
            if n < limit:
                return

    def _ordered_chunk(self, cond: str, params: list[Any], limit: int
                       ) -> tuple[int, bytes, tuple[Any, ...]] | None:
        """(rows, encoded text, last key) of the next ``limit`` rows through ``ORDER BY``, or None
        at the end: by the C aggregate over a sub-select of the raw values, else by SQL."""
        if self.rowid is not None and self.keys == [self.rowid]:
            # integer keys: the last key of the chunk is its maximum, read in the same pass
            if self.native:
                sub = (f"SELECT {self.rowid} AS k, {self.values} FROM {self.tbl}{cond} "
                       f"ORDER BY {self.order} LIMIT ?")
                query = f"SELECT count(*), {self.aggregate}, max(k) FROM ({sub})"
            else:
                sub = (f"SELECT {self.rowid} AS k, {self.enc} AS x FROM {self.tbl}{cond} "
                       f"ORDER BY {self.order} LIMIT ?")
                query = f"SELECT count(*), group_concat(x, char(10)), max(k) FROM ({sub})"
            (n, text, top) = self._fetch(query, [*params, limit])
            return (n, text, (top,)) if n else None
        if self.native:
            sub = f"SELECT {self.values} FROM {self.tbl}{cond} ORDER BY {self.order} LIMIT ?"
            query = f"SELECT count(*), {self.aggregate} FROM ({sub})"
        else:
            sub = f"SELECT {self.enc} AS x FROM {self.tbl}{cond} ORDER BY {self.order} LIMIT ?"
            query = f"SELECT count(*), group_concat(x, char(10)) FROM ({sub})"
        (n, text) = self._fetch(query, [*params, limit])
        if not n:
            return None
        if limit >= 2**62:  # in one piece: nothing follows, and the last key may not decode
            return n, text, ()
        last = self.conn.execute(
            f"SELECT {self.order} FROM {self.tbl}{cond} ORDER BY {self.order} LIMIT 1 OFFSET ?",
            [*params, n - 1],
        ).fetchone()
        return n, text, tuple(last)


def checksum_mode(options: FingerprintOptions) -> ChecksumMode:
    """v2, or v1 when verifying against a manifest made in v1 (``in_checksum_mode_of``)."""
    return CHECKSUM_MODE_V1 if options.hash_version == 1 else CHECKSUM_MODE


def reference_checksum(conn: sqlite3.Connection, info: TableInfo, version: int = 2) -> tuple[int, str]:
    """(rows, checksum) of one table by the pure-Python reference of ``sqlite-keyed-sha256-v<version>``.

    What ``checksum_table`` computes inside SQLite, spelled out value by value in Python (slow: a
    Python call per value; for tests and as the definition of the format): the rows in key order,
    each row the rowid (when it is no column) then every column, ``,``-separated, ``\n`` after
    every row, SHA-256 over all of it, the first 32 hex digits. A value is ``NULL``; an INTEGER in
    decimal; a REAL (v2) as ``F`` and the 16 hex digits of its big-endian IEEE 754 bits, -0.0 as 0.0
    (v1: as SQLite's ``quote()`` renders it, which depends on the SQLite version); TEXT as ``T<n>:<text>``, n
    the byte length in the database's encoding, the text in UTF-8; a BLOB as ``X'<HEX>'``.
    """
    reader = _Reader(conn, info, no_progress, None, version)
    cols = [quote_identifier(c.name) for c in info.data_columns]
    select = ([reader.rowid] if reader.key_encoded and reader.rowid else []) + cols
    encoding = {"UTF-8": "utf-8", "UTF-16le": "utf-16-le", "UTF-16be": "utf-16-be"}[
        conn.execute("PRAGMA main.encoding").fetchone()[0]]
    reals = conn.cursor()

    def value(v: Any) -> bytes:
        if v is None:
            return b"NULL"
        if isinstance(v, int):
            return str(v).encode()
        if isinstance(v, float) and version >= 2:
            return real64(v).encode()
        if isinstance(v, float):
            rendered: str = reals.execute("SELECT quote(?)", (v,)).fetchone()[0]
            return rendered.encode()
        if isinstance(v, str):
            return b"T%d:%s" % (len(v.encode(encoding, "surrogatepass")), v.encode("utf-8", "surrogatepass"))
        return b"X'" + bytes(v).hex().upper().encode() + b"'"

    digest = hashlib.sha256()
    rows = 0
    cursor = conn.execute(f"SELECT {', '.join(select) or chr(39) * 2} FROM {reader.tbl} ORDER BY {reader.order}")
    for row in cursor:
        digest.update(b",".join(value(v) for v in row) if select else b"")
        digest.update(b"\n")
        rows += 1
    return rows, digest.hexdigest()[:32]


def _grid(lo: int, hi: int, max_ranges: int) -> int:
    """The smallest bucket exponent k such that rowids lo..hi fall in at most max_ranges buckets."""
    k = 0
    while (hi >> k) - (lo >> k) + 1 > max(1, max_ranges):
        k += 1
    return k


def _plan_from(reference: TableFingerprint | None, key: tuple[str, ...]) -> list[tuple[Any, Any]] | None:
    """The reference's range bounds, when it has ranges on the same key (so both sides align)."""
    if reference is None or not reference.ranges or tuple(reference.key) != key:
        return None
    for r in reference.ranges:
        for v in (*(r.lower or ()), *(r.upper or ())):
            if isinstance(v, int) and not -(1 << 63) <= v < (1 << 63):
                raise BadManifestError(f"the manifest's key ranges of {reference.name} hold {str(v)[:24]}..., "
                                       "which no SQLite key can be (a 64-bit integer)",
                                       "give the manifest written with this backup, unchanged")
    return [(r.lower, r.upper) for r in reference.ranges]


def _update_all(digests: Sequence[Any], data: bytes) -> None:
    for d in digests:
        d.update(data)
        d.update(b"\n")


class _Hashing:
    """Feeds the chunks to their digests on one worker thread, so that SHA-256 of one chunk runs
    while SQLite reads the next (both release the GIL; measured: a fifth of a ranged checksum's wall
    time on 2 cores). Updates run in order; at most one chunk waits, so memory stays at two chunks.
    Without ``threaded`` (small tables: no thread is worth starting) it hashes in place."""

    def __init__(self, threaded: bool) -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="restorecheck-sha256") if threaded else None
        self.pending: Future[Any] | None = None  # the last task queued

    def update(self, digests: Sequence[Any], data: bytes) -> None:
        if self.pool is None:
            _update_all(digests, data)
            return
        self.wait()
        self.pending = self.pool.submit(_update_all, digests, data)

    def digest(self, part: Any) -> Future[str]:
        """The first 32 hex digits of ``part`` once every chunk given so far is in it (no waiting:
        the range after it is read meanwhile)."""
        done: Future[str]
        if self.pool is None:
            done = Future()
            done.set_result(part.hexdigest()[:32])
            return done
        # after the chunks already queued (one worker: in order); waiting for it waits for them
        done = self.pool.submit(lambda: part.hexdigest()[:32])
        self.pending = done
        return done

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _hash_run(chunks: Iterator[tuple[int, bytes, tuple[Any, ...] | None]], whole: Any, hashing: _Hashing,
              after: tuple[Any, ...] | None) -> tuple[int, tuple[Any, ...] | None, Future[str]]:
    """Hash one key range's chunks into its own digest and the table's ``whole`` digest.

    Returns (rows, the last key read, or ``after`` when the range was empty, the range's digest
    once hashed).
    """
    part = hashlib.sha256()
    rows = 0
    for n, text, last in chunks:
        hashing.update((part, whole), text)
        rows += n
        after = last
    return rows, after, hashing.digest(part)


def checksum_table(
    conn: sqlite3.Connection,
    info: TableInfo,
    options: FingerprintOptions,
    reference: TableFingerprint | None = None,
    *,
    one_piece: bool = False,
) -> TableFingerprint:
    """Row count, content checksum and (for large tables) key-range checksums of one table.

    The table checksum covers every row in key order, whatever the ranges. Range ``i`` holds the
    rows from the end of range ``i - 1`` up to (excluding) the lower bound of range ``i + 1``, so
    the ranges cover the table without gaps; with ``reference`` (a fingerprint of the same table
    elsewhere) its bounds are reused, so that the two fingerprints can be compared range by range.
    """
    name = info.qualified
    kind = info.kind
    if info.kind == "virtual" and not info.columns:
        return TableFingerprint(name, kind, readable=False,
                                note="virtual table module not available in this SQLite")
    mode = checksum_mode(options)
    hashing: _Hashing | None = None
    try:
        reader = _Reader(conn, info, options.progress, None, options.hash_version)
        if info.kind == "without_rowid":
            key = tuple(info.key_columns)
        elif info.rowid_alias is not None:
            key = (info.rowid_alias,)
        elif reader.rowid is not None:
            key = (reader.rowid,)
        else:
            key = ()  # no unique key to localise differences by
        first_key = reader.keys[0]
        # three queries, each optimised alone (count(*) by the b-tree's page walk, min and max by one
        # seek each for a key); together they would read every row (measured: 1 ms against 36 ms)
        count = int(conn.execute(f"SELECT count(*) FROM {reader.tbl}").fetchone()[0])
        # integers only: a text key need not be valid UTF-8, which Python could not decode
        kmin = conn.execute(f"SELECT CASE WHEN typeof(m) = 'integer' THEN m END "
                            f"FROM (SELECT min({first_key}) AS m FROM {reader.tbl})").fetchone()[0]
        kmax = conn.execute(f"SELECT CASE WHEN typeof(m) = 'integer' THEN m END "
                            f"FROM (SELECT max({first_key}) AS m FROM {reader.tbl})").fetchone()[0]
        reader.total_hint = count
        whole = hashlib.sha256()
        hashing = _Hashing(threaded=count > THREADED_HASH_ROWS)
        rows = 0
        ranges: list[tuple[Any, Any, int, Future[str]]] = []
        plan = _plan_from(reference, key) if not (options.schema_only or one_piece) else None
        if plan is None and count > options.range_rows and options.max_ranges > 1 \
                and reader.keys == [reader.rowid] and isinstance(kmin, int) and isinstance(kmax, int):
            k = _grid(kmin, kmax, options.max_ranges)  # power-of-two rowid buckets
            plan = [((b << k,), (((b + 1) << k) - 1,)) for b in range(kmin >> k, (kmax >> k) + 1)]
        if plan is not None:
            after: tuple[Any, ...] | None = None
            for i, (lower, upper) in enumerate(plan):
                nxt = plan[i + 1][0] if i + 1 < len(plan) else None
                before = tuple(nxt) if nxt is not None else None
                n_part, after, digest = _hash_run(reader.chunks(after, before=before), whole, hashing, after)
                rows += n_part
                ranges.append((None if lower is None else tuple(lower),
                               None if upper is None else tuple(upper), n_part, digest))
        elif count > options.range_rows and options.max_ranges > 1 and not one_piece:
            # runs of a power-of-two number of rows in key order (WITHOUT ROWID, composite keys)
            per = 1
            while per * options.max_ranges < count:
                per *= 2
            after = None
            while True:
                first = _next_key(conn, reader, after)
                if first is None:
                    break
                n_part, after, digest = _hash_run(reader.chunks(after, max_rows=per), whole, hashing, after)
                rows += n_part
                ranges.append((first, after, n_part, digest))
        else:
            if one_piece:
                reader.limit = 2**62
            for n, text, _ in reader.chunks(None):
                hashing.update((whole,), text)
                rows += n
        hashing.wait()
        if not all(_storable_key(lo) and _storable_key(hi) for lo, hi, _n, _d in ranges):
            ranges = []  # the table's checksum stands; its ranges could not be stored as they are
        return TableFingerprint(name, kind, rows=rows, checksum=whole.hexdigest()[:32],
                                checksum_mode=mode, key=key,
                                ranges=tuple(RangeChecksum(lo, hi, n, d.result()) for lo, hi, n, d in ranges),
                                extra={"strict": True} if info.strict else {})
    except sqlite3.DatabaseError as exc:
        if not one_piece and "decode" in str(exc).lower() and isinstance(exc, sqlite3.OperationalError):
            # a key that is text but not UTF-8 (Python cannot hold it to page by, nor a manifest
            # store it): the whole table in one piece, in key order, without key ranges
            log.debug("%s: a key Python cannot decode (%s); read in one piece", name, first_line(exc))
            if hashing is not None:
                hashing.close()
            return checksum_table(conn, info, options, reference, one_piece=True)
        return TableFingerprint(name, kind, readable=False, note=first_line(exc),
                                checksum_mode=mode)
    finally:
        if hashing is not None:
            hashing.close()


def _next_key(conn: sqlite3.Connection, reader: _Reader, after: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    """The first key above ``after`` in key order, or None at the end of the table."""
    if after is None:
        row = conn.execute(f"SELECT {reader.order} FROM {reader.tbl} ORDER BY {reader.order} LIMIT 1").fetchone()
    else:
        cond = reader.after_condition()
        row = conn.execute(f"SELECT {reader.order} FROM {reader.tbl} WHERE {cond} ORDER BY {reader.order} LIMIT 1",
                           list(after)).fetchone()
    return None if row is None else tuple(row)


def _storable_key(key: tuple[Any, ...] | None) -> bool:
    """Whether a manifest can store this key as it is: a blob would be stored as hex text (another
    key) and an infinite REAL is no JSON number."""
    return key is None or not any(isinstance(v, bytes) or (isinstance(v, float) and not math.isfinite(v))
                                  for v in key)


def differing_keys(
    reference: Path, restored: Path, table: str, *, lower: int | None = None, upper: int | None = None,
    limit: int = 20,
) -> list[Any]:
    """The rowids (or primary keys) whose rows differ between two SQLite files, up to ``limit``.

    For a table in both files, comparing typed encodings of each row (so a change of storage class
    counts). Used when both databases are at hand (drill, ``verify --against``).
    """
    name = table.split(".", 1)[1] if table.startswith("main.") else table
    with contextlib.closing(connect_readonly(restored)) as conn:
        conn.execute("ATTACH DATABASE ? AS ref", (_uri(reference, mode="ro"),))
        infos = {t.name: t for t in read_tables(conn)}
        info = infos.get(name)
        if info is None:
            return []
        reader = _Reader(conn, info, no_progress, None)
        cols = [c.name for c in info.data_columns]
        enc = row_sql(None, cols)
        keys = reader.keys
        key_sel = ", ".join(keys)
        cond = []
        params: list[Any] = []
        if lower is not None:
            cond.append(f"{keys[0]} >= ?")
            params.append(lower)
        if upper is not None:
            cond.append(f"{keys[0]} <= ?")
            params.append(upper)
        where = f" WHERE {' AND '.join(cond)}" if cond else ""
        q = quote_identifier(name)
        sql = (
            f"SELECT {key_sel} FROM (SELECT {key_sel}, {enc} AS x FROM ref.{q}{where} "
            f"EXCEPT SELECT {key_sel}, {enc} AS x FROM main.{q}{where}) "
            f"UNION SELECT {key_sel} FROM (SELECT {key_sel}, {enc} AS x FROM main.{q}{where} "
            f"EXCEPT SELECT {key_sel}, {enc} AS x FROM ref.{q}{where}) ORDER BY {key_sel} LIMIT ?"
        )
        rows = conn.execute(sql, [*params, *params, *params, *params, limit]).fetchall()
    return [r[0] if len(r) == 1 else list(r) for r in rows]


# --- foreign keys, sequences, integrity -------------------------------------------------------


def read_fk_orphans(conn: sqlite3.Connection, tables: Sequence[TableInfo]) -> dict[str, dict[str, Any]]:
    """Orphan counts for every foreign key of every table (0 when none), from foreign_key_check."""
    out: dict[str, dict[str, Any]] = {}
    for t in tables:
        if t.kind == "virtual":
            continue
        try:
            fks = conn.execute(f"PRAGMA main.foreign_key_list({quote_identifier(t.name)})").fetchall()
        except sqlite3.DatabaseError:
            continue
        seen: set[int] = set()
        for r in fks:
            if r[0] in seen:
                continue
            seen.add(r[0])
            out[f"{t.qualified}.fk{r[0]}"] = {"orphans": 0, "validated": False, "table": t.qualified,
                                             "parent": f"main.{r[2]}", "rowids": []}
        if not fks:
            continue
        try:
            rows = conn.execute(f"PRAGMA main.foreign_key_check({quote_identifier(t.name)})").fetchall()
        except sqlite3.DatabaseError as exc:
            for state in out.values():
                if state["table"] == t.qualified:
                    state["error"] = first_line(exc)
            continue
        for _tbl, rowid, _parent, fkid in rows:
            state = out.setdefault(f"{t.qualified}.fk{fkid}", {"orphans": 0, "validated": False,
                                                                "table": t.qualified, "parent": None,
                                                                "rowids": []})
            state["orphans"] += 1
            if len(state["rowids"]) < MAX_ORPHAN_ROWIDS:
                state["rowids"].append(rowid)
    return out


def read_sequences(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """``sqlite_sequence`` rows (AUTOINCREMENT high-water marks) as sequence states."""
    try:
        rows = conn.execute("SELECT name, seq, typeof(seq) || ':' || hex(CAST(seq AS BLOB)) "
                            "FROM main.sqlite_sequence").fetchall()
    except sqlite3.OperationalError:
        return {}  # no AUTOINCREMENT table: no sqlite_sequence
    out: dict[str, dict[str, Any]] = {}
    for name, seq, raw in rows:
        state: dict[str, Any] = {"last_value": seq, "is_called": True, "increment": 1, "table": f"main.{name}"}
        if not isinstance(seq, int):
            # sqlite_sequence is an ordinary table: its seq can be text, a REAL or NULL (a hand-made
            # edit; SQLite then treats it as 0): kept as its type and bytes, compared as they are
            state.update(last_value=None, raw=raw)
        out[f"main.{name}"] = state
    return out


_MISSING_COLLATION = re.compile(r"no such collation sequence: (.+)$")
_MISSING_FUNCTION = re.compile(r"(?:unknown|no such) function: ([^()\s]+)")


# the module of a CREATE VIRTUAL TABLE: the word after USING that follows the (quoted) table name,
# never a "USING fts5" inside a name or the module's arguments
_IDENT = r'(?:"(?:[^"]|"")*"|\[[^\]]*\]|`(?:[^`]|``)*`|\'(?:[^\']|\'\')*\'|[^\s.("\'`\[]+)'
_VTAB_MODULE = re.compile(rf"\s*CREATE\s+VIRTUAL\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:{_IDENT}\s*\.\s*)?{_IDENT}"
                          rf"\s+USING\s+(\w+)", re.IGNORECASE)


def check_virtual_tables(conn: sqlite3.Connection, tables: Sequence[TableInfo]) -> list[Evidence]:
    """The integrity checks of full-text and R*Tree indexes, which ``PRAGMA integrity_check`` does
    not look into (their shadow tables are ordinary tables to it): the FTS ``'integrity-check'``
    command (FTS5, FTS4/3: the index against its content) and ``rtreecheck()``. On the private,
    writable restored copy only: the FTS command is an INSERT that writes nothing. A module this
    SQLite lacks is skipped (its table is reported unreadable by the fingerprint)."""
    out: list[Evidence] = []
    for t in tables:
        if t.kind != "virtual" or not t.sql:
            continue
        m = _VTAB_MODULE.match(t.sql)
        module = m.group(1).lower() if m else ""
        fts, rtree = module in ("fts3", "fts4", "fts5"), module in ("rtree", "rtree_i32")
        if not fts and not rtree:
            continue
        name = quote_identifier(t.name)
        try:
            if fts:
                conn.execute(f"INSERT INTO main.{name} ({name}) VALUES ('integrity-check')")
                continue
            got = conn.execute("SELECT rtreecheck('main', ?)", (t.name,)).fetchone()[0]
            problem = None if got == "ok" else str(got)
        except sqlite3.DatabaseError as exc:
            msg = first_line(exc)
            if "no such module" in msg or "no such function" in msg:
                continue
            problem = msg
        if problem:
            out.append(Evidence("virtual_table_damaged", t.qualified, {"module": module, "error": problem}))
    return out


def run_integrity_check(conn: sqlite3.Connection, max_errors: int = MAX_INTEGRITY_ERRORS
                        ) -> tuple[list[str], str | None]:
    """``PRAGMA integrity_check`` (the full one, not quick_check): ``["ok"]`` or the problems, and a
    note when it could only run in part.

    A database may use collations and functions that only its application defines (Android's
    ``LOCALIZED``, an index on ``myfn(x)``): SQLite cannot check the indexes built with them, and
    refuses to run the check at all. Each such name gets a stand-in here (a binary collation, a
    function returning NULL), the check runs, and what it says of the indexes whose definition or
    table names them (which the stand-ins cannot order or compute as the application did) is left
    out: the pages, the records and every other index are still checked; the note says what was not."""
    missing: list[str] = []
    while True:
        try:
            # one row may hold several problems, one per line, under a "*** in database main ***" line
            rows = [line for r in conn.execute(f"PRAGMA main.integrity_check({int(max_errors)})").fetchall()
                    for line in str(r[0]).splitlines() if line.strip() and not line.startswith("*** in database")]
            rows = rows or ["ok"]
            break
        except sqlite3.DatabaseError as exc:
            msg = first_line(exc)
            coll, func = _MISSING_COLLATION.search(msg), _MISSING_FUNCTION.search(msg)
            name = (coll or func).group(1).strip() if (coll or func) else None  # type: ignore[union-attr]
            if name is None or name in missing or len(missing) >= 32:
                return [f"integrity_check failed: {msg}"], None
            missing.append(name)
            if coll:
                conn.create_collation(name, lambda a, b: (a > b) - (a < b))
            else:
                conn.create_function(name, -1, lambda *args: None)
    if not missing:
        return rows, None
    pattern = re.compile("|".join(rf"\b{re.escape(n)}\b" for n in missing), re.IGNORECASE)
    tables = {str(t) for t, sql in conn.execute(
        "SELECT name, sql FROM main.sqlite_master WHERE type = 'table'").fetchall() if sql and pattern.search(sql)}
    indexes = sorted(str(n) for n, t, sql in conn.execute(
        "SELECT name, tbl_name, sql FROM main.sqlite_master WHERE type = 'index'").fetchall()
        if t in tables or (sql and pattern.search(sql)))
    def about_them(line: str) -> bool:
        return any(re.search(rf"\b{re.escape(i)}\b", line) for i in indexes)
    kept = [r for r in rows if r != "ok" and not about_them(r)] or ["ok"]
    note = (f"the database uses {', '.join(missing)}, which only its application defines: integrity_check "
            f"ran without checking the order and content of the indexes built with them "
            f"({', '.join(indexes) or 'none'}); the pages, the records and every other index were checked")
    return kept, note


# --- the fingerprint --------------------------------------------------------------------------


def fingerprint_connection(
    conn: sqlite3.Connection,
    *,
    database: str,
    path: Path | None,
    options: FingerprintOptions,
    integrity: bool = True,
    ranges_from: Manifest | None = None,
    side_file: Path | None = None,
) -> Manifest:
    """Fingerprint the ``main`` schema of an open connection, inside one read transaction.

    ``ranges_from``: a manifest of the same database elsewhere whose key-range bounds are reused.
    ``side_file``: a file that holds exactly this snapshot and that nothing else writes (the
    restored copy; the fresh backup of a source): ``integrity_check`` (or, without it,
    ``foreign_key_check``) then runs on it in a child process while the rows are checksummed here;
    with ``integrity_check`` in the child, ``foreign_key_check`` runs here after the checksums, so
    that the two processes finish together (256 MB: integrity 2.5 s, against checksums 1.0-1.5 s
    plus the foreign keys 0.8 s). A process, not a thread: two threads were measured slower than
    one, SQLite's allocator mutex serialising them. If the child fails, its checks run here
    afterwards.
    """
    taken_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    facts: dict[str, Any] = {"sqlite_version": sqlite3.sqlite_version}
    stack = contextlib.ExitStack()
    try:
        conn.execute("BEGIN")
        own_txn = True
    except sqlite3.OperationalError:
        own_txn = False  # already inside the caller's read transaction
    try:
        try:
            tables = read_tables(conn)
            header = read_header(conn, path)
            schema = read_schema(conn, tables)
        except sqlite3.DatabaseError as exc:
            return Manifest(engine="sqlite", database=database, server_version=sqlite3.sqlite_version,
                            taken_at=taken_at, facts=facts, checksum_mode=checksum_mode(options),
                            open_error=first_line(exc))
        facts["header"] = header
        facts["page_count"] = conn.execute("PRAGMA main.page_count").fetchone()[0]
        facts["freelist_count"] = conn.execute("PRAGMA main.freelist_count").fetchone()[0]
        attached = [r[1] for r in conn.execute("PRAGMA database_list").fetchall() if r[1] not in ("main", "temp")]
        if attached:
            facts["attached"] = attached
        fingerprints: list[TableFingerprint] = []
        side_fk = not integrity  # the child runs one long check; this process the foreign keys
        side = _SideChecks.start(side_file, integrity=integrity, fk=side_fk) if side_file is not None else None
        if side is not None:
            stack.callback(side.stop)
        if not options.schema_only:
            for i, t in enumerate(tables):
                options.progress("fingerprint", i, len(tables))
                ref = ranges_from.table(t.qualified) if ranges_from is not None else None
                fingerprints.append(checksum_table(conn, t, options, ref))
            options.progress("fingerprint", len(tables), len(tables))
        read_errors = {f.name: f.note for f in fingerprints if not f.readable and f.kind != "virtual"}
        if read_errors:
            facts["read_errors"] = read_errors
        sequences = read_sequences(conn)
        result: list[str] | None = None
        note: str | None = None
        fk: dict[str, dict[str, Any]] | None = None
        if side is not None and not side_fk:
            fk = read_fk_orphans(conn, tables)
        side_result = side.result() if side is not None else None
        if side_result is not None:
            side_fk_result, result, note = side_result
            fk = side_fk_result if side_fk_result is not None else fk
        if fk is None:
            fk = read_fk_orphans(conn, tables)
        if integrity and side_result is None:
            options.progress("integrity_check", 0, None)
            result, note = run_integrity_check(conn)
        if note:
            facts["integrity_note"] = note
        facts["foreign_key_check"] = sum(int(v["orphans"]) for v in fk.values())
        if result is not None:
            facts["integrity_check"] = result
            if len(result) >= MAX_INTEGRITY_ERRORS:
                facts["integrity_truncated"] = True
            options.progress("integrity_check", 1, 1)
        else:
            facts["integrity_check"] = None
        return Manifest(
            engine="sqlite", database=database, server_version=sqlite3.sqlite_version, taken_at=taken_at,
            tables=tuple(fingerprints), schema=schema, sequences=sequences, fk_orphans=fk, facts=facts,
            checksum_mode=checksum_mode(options),
        )
    finally:
        stack.close()
        if own_txn:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("COMMIT")


class _SideChecks:
    """``foreign_key_check`` and ``integrity_check`` of a private file in a child Python process,
    run by ``restorecheck.runner`` from a thread while the fingerprint is read in this one."""

    def __init__(self, cmd: Command) -> None:
        self.cancel = threading.Event()
        self.cmd = dataclasses.replace(cmd, cancel=self.cancel)
        self.done: Completed | BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="restorecheck-sqlite-side", daemon=True)

    def _run(self) -> None:
        try:
            self.done = current_runner().run(self.cmd)
        except BaseException as exc:  # handed to result()
            self.done = exc

    @classmethod
    def start(cls, path: Path, *, integrity: bool, fk: bool) -> _SideChecks:
        argv = (sys.executable, "-c", "from restorecheck.engines.sqlite import _side_main; _side_main()",
                str(path), "1" if integrity else "0", "1" if fk else "0")
        side = cls(Command(argv, inherit_env=True, label="sqlite side checks"))
        side.thread.start()
        return side

    def result(self) -> tuple[dict[str, dict[str, Any]] | None, list[str] | None, str | None] | None:
        """The child's (fk_orphans, integrity_check, its note), each None when it was not asked for,
        or None when it failed (the caller reruns its checks)."""
        self.thread.join()
        done = self.done
        if not isinstance(done, Completed):
            log.debug("side checks not run (%s): running them in process", done)
            return None
        if not done.ok or done.stdout_dropped:
            log.debug("side checks failed (exit %s): %s", done.returncode, done.stderr.strip()[-500:])
            return None
        try:
            data = json.loads(done.stdout)
            return (None if data["fk"] is None else dict(data["fk"])), data["integrity"], data.get("integrity_note")
        except (ValueError, KeyError, TypeError):
            return None

    def stop(self) -> None:
        self.cancel.set()
        self.thread.join()


def _side_main() -> None:
    """Entry point of the child process: ``_side_main PATH INTEGRITY(0|1) FK(0|1)``, JSON on stdout."""
    path, integrity, fk_too = Path(sys.argv[1]), sys.argv[2] == "1", sys.argv[3] == "1"
    with contextlib.closing(connect_readonly(path, immutable=True, private=True)) as conn:
        conn.execute("BEGIN")
        fk = read_fk_orphans(conn, read_tables(conn)) if fk_too else None
        result, note = run_integrity_check(conn) if integrity else (None, None)
    json.dump({"fk": fk, "integrity": result, "integrity_note": note}, sys.stdout)


# --- the engine -------------------------------------------------------------------------------


def _require_sqlite(path: Path, what: str) -> None:
    if not path.exists():
        raise BackupNotFoundError(f"{what} {path} does not exist", "check the path")
    if path.is_dir():
        raise BadInputError(f"{what} {path} is a directory, not a SQLite file", "give the database file")
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise BackupNotFoundError(f"{what} {path} cannot be read: {exc.strerror}",
                                  "check its permissions") from None
    if head != SQLITE_MAGIC:
        raise UnknownFormatError(f"{what} {path} is not a SQLite database (no 'SQLite format 3' header)",
                                 "give a SQLite database file")


@dataclasses.dataclass(frozen=True)
class RestoredCopy(SqliteRef):
    """The copy ``restore`` made: a private file no other process touches (safe to memory-map,
    its foreign_key_check may run in a side process on the file). ``opens`` False: the restore
    found that it does not open as a SQLite database and already said so (``restore_errors``)."""

    opens: bool = True


class SqliteEngine:
    """The Engine protocol for SQLite (see the module docstring). Keeps no state between calls."""

    name: ClassVar[EngineName] = "sqlite"

    def detect_format(self, path: Path) -> BackupFormat | None:
        return FORMAT if Path(path).is_file() and is_sqlite_file(Path(path)) else None

    def throwaway_source(self, options: RestoreOptions, stack: contextlib.ExitStack, *,
                         size_hint: int | None = None) -> ThrowawaySource:
        """A new database file in a private temporary directory, for drill's self-test."""
        from restorecheck.provisioners.sqlite import temporary_sqlite

        with deferred_signals():  # the directory made and its removal registered, or neither
            path = stack.enter_context(temporary_sqlite(options.tmp_root, name="selftest.db", keep=options.keep))
        return ThrowawaySource(SqliteRef(path))

    def prepare_target(self, source: DatabaseRef, options: RestoreOptions,
                       stack: contextlib.ExitStack) -> Target | None:
        """Nothing to start: a SQLite target is a file made at restore time."""
        return None

    # --- fingerprint --------------------------------------------------------------------------

    def fingerprint(self, db: DatabaseRef, options: FingerprintOptions, *,
                    ranges_from: Manifest | None = None) -> Manifest:
        """Fingerprint a live database read-only, in one read transaction (``ranges_from``: reuse
        that manifest's key-range bounds)."""
        if not isinstance(db, SqliteRef):
            raise BadInputError(f"{db} is not a SQLite database")
        path = Path(db.path)
        _require_sqlite(path, "database")
        private = isinstance(db, RestoredCopy)
        try:
            conn = connect_readonly(path, private=private)
        except sqlite3.Error as exc:
            raise SourceUnreachableError(f"cannot open {path}: {first_line(exc)}",
                                         "check the file and its directory's permissions") from None
        with contextlib.closing(conn):
            manifest = fingerprint_connection(conn, database=str(path), path=path, options=options,
                                              ranges_from=ranges_from, side_file=path if private else None)
        return manifest

    # --- backup -------------------------------------------------------------------------------

    def backup(self, source: DatabaseRef, outdir: Path, options: BackupOptions) -> tuple[BackupArtifact, Manifest]:
        if not isinstance(source, SqliteRef):
            raise BadInputError(f"{source} is not a SQLite database")
        if options.exclude_table_data:
            raise BadInputError("exclude_table_data is a pg_dump option: a SQLite backup copies the whole file",
                                "leave it out for a SQLite source")
        src_path = Path(source.path)
        _require_sqlite(src_path, "source")
        out, manifest_path = backup_files(Path(outdir), options.name, src_path.stem, SUFFIX)
        with contextlib.suppress(OSError):
            if out.resolve() == src_path.resolve():
                raise BadInputError("the backup would overwrite its source", "choose another output directory")
        partial = out.with_name(out.name + ".partial")
        started = time.monotonic()
        phases: dict[str, float] = {}
        try:
            manifest, (size, digest) = self._online_backup(src_path, partial, options, phases=phases)
            partial.replace(out)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        artifact = BackupArtifact(path=str(out), format=FORMAT, bytes=size, sha256=digest)
        facts = dict(manifest.facts)
        facts["backup_method"] = "sqlite3 online backup API"
        facts["manifest_of"] = "the source, read in the backup's own read transaction"
        facts["backup_seconds"] = round(time.monotonic() - started, 3)
        # seconds: copy, fingerprint (checksums beside the fk check and the copy's sha256), and the
        # wait for the sha256 after the fingerprint
        facts["backup_phases"] = phases
        facts["source_wal_bytes"] = _wal_size(src_path)
        manifest = dataclasses.replace(manifest, facts=facts).with_backup(artifact)
        manifest.save(manifest_path, options.file_mode)
        return artifact, manifest

    def _online_backup(self, src_path: Path, dest: Path, options: BackupOptions,
                       phases: dict[str, float] | None = None) -> tuple[Manifest, tuple[int, str]]:
        """Copy ``src_path`` into ``dest`` with the backup API and fingerprint the source, both in
        one read transaction: the manifest describes exactly the snapshot the copy holds (PITFALLS
        H2), so verify compares the restored copy with the source, not with itself. Returns the
        manifest and (bytes, sha256) of ``dest``, hashed on a thread during the fingerprint.
        ``phases`` receives the seconds of the copy, of the fingerprint and of the sha256's tail."""
        progress = options.progress
        phases = {} if phases is None else phases
        wait = lock_wait_seconds(options.fingerprint.lock_timeout)
        try:
            src = connect_readonly(src_path, timeout=wait)
        except sqlite3.Error as exc:
            raise SourceUnreachableError(f"cannot open the source {src_path}: {first_line(exc)}",
                                         "check the file and its directory's permissions") from None
        with contextlib.closing(src):
            try:
                src.execute("BEGIN")
                src.execute("SELECT count(*) FROM main.sqlite_master").fetchone()  # starts the read
            except sqlite3.DatabaseError as exc:
                raise SourceUnreachableError(f"cannot read the source {src_path}: {first_line(exc)}",
                                             _read_hint(exc, src_path, wait)) from None
            with contextlib.suppress(FileNotFoundError):
                dest.unlink()
            os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, options.file_mode))
            dst = sqlite3.connect(str(dest), isolation_level=None)
            try:
                def step(status: int, remaining: int, total: int) -> None:
                    progress("backup", total - remaining, total)

                copying = time.monotonic()
                src.backup(dst, pages=BACKUP_STEP_PAGES, progress=step)
                phases["copy"] = round(time.monotonic() - copying, 3)
            except sqlite3.DatabaseError as exc:
                raise SourceUnreachableError(f"the online backup of {src_path} failed: {first_line(exc)}",
                                             "check that the source is a healthy SQLite database") from None
            finally:
                dst.close()
            # the copy holds exactly this snapshot: its foreign_key_check runs beside the checksums,
            # and so does its sha256 (on a thread: reading and hashing release the GIL)
            fingerprinting = time.monotonic()
            with ThreadPoolExecutor(1, thread_name_prefix="restorecheck-sha256") as pool:
                hashed = pool.submit(_sha256_file, dest)
                manifest = fingerprint_connection(src, database=str(src_path), path=src_path,
                                                  options=options.fingerprint, integrity=False, side_file=dest)
                phases["fingerprint"] = round(time.monotonic() - fingerprinting, 3)
                waited = time.monotonic()
                sha256 = hashed.result()
                phases["sha256"] = round(time.monotonic() - waited, 3)
            if manifest.open_error:
                raise SourceUnreachableError(f"cannot read the source {src_path}: {manifest.open_error}",
                                             "check that it is a healthy SQLite database")
            with contextlib.suppress(sqlite3.Error):
                src.execute("COMMIT")
        return manifest, sha256

    # --- restore ------------------------------------------------------------------------------

    def restore(self, artifact: BackupArtifact, options: RestoreOptions, stack: contextlib.ExitStack, *,
                target: Target | None = None) -> RestoreOutcome:
        """Copy the backup (and a ``-wal`` beside it) into a private file and open it; ``target``
        is unused (nothing is started ahead for SQLite)."""
        from restorecheck.provisioners.local import IN_MEMORY, MEMORY_DIR
        from restorecheck.provisioners.sqlite import temporary_sqlite

        path = Path(artifact.path)
        _require_sqlite(path, "backup")
        started = time.monotonic()
        wal = path.with_name(path.name + "-wal")
        size = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        with deferred_signals():  # the directory made and its removal registered, or neither
            copy = stack.enter_context(temporary_sqlite(options.tmp_root, keep=options.keep, size_hint=size))
        options.progress("restore: copy", 0, path.stat().st_size)
        shutil.copyfile(path, copy)
        evidence: list[Evidence] = []
        opens = True
        info: dict[str, Any] = {"copy": str(copy), "sqlite_version": sqlite3.sqlite_version,
                                "copy_on": IN_MEMORY if copy.parent.parent == MEMORY_DIR else "disk"}
        # a -wal (a file copy of a WAL-mode database) or a hot -journal (a copy taken mid-transaction,
        # which SQLite rolls back on the first read) beside it: the backup alone is not the database
        for side in (wal, path.with_name(path.name + "-journal")):
            if side.exists() and side.is_file() and side.stat().st_size > 0:
                shutil.copyfile(side, copy.with_name(copy.name + side.name[len(path.name):]))
                evidence.append(Evidence("wal_beside_backup", str(side),
                                         {"name": side.name, "wal_bytes": side.stat().st_size}))
        options.progress("restore: copy", path.stat().st_size, path.stat().st_size)
        try:
            conn = sqlite3.connect(str(copy), isolation_level=None)
            try:
                conn.execute("SELECT count(*) FROM main.sqlite_master").fetchone()
                mode = conn.execute("PRAGMA main.journal_mode").fetchone()[0]
                if mode == "wal":  # fold a restored -wal into the copy; reads then need no -wal
                    conn.execute("PRAGMA main.wal_checkpoint(TRUNCATE)")
                tables = read_tables(conn)
                read_schema(conn, tables)  # the catalog must be readable
                evidence += check_virtual_tables(conn, tables)
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            opens = False
            evidence.append(Evidence("sqlite_unopenable", str(path), {"error": first_line(exc)}))
        return RestoreOutcome(restored=RestoredCopy(copy, opens=opens), evidence=evidence,
                              seconds=time.monotonic() - started, info=info,
                              connect=f"sqlite3 {shlex.quote(str(copy))}" if options.keep else None)

    # --- exact keys when both databases are at hand ---------------------------------------------

    def narrow(self, reference: DatabaseRef, restored: DatabaseRef, findings: Sequence[Finding], *,
               reference_manifest: Manifest | None = None, restored_manifest: Manifest | None = None,
               max_keys: int = 20) -> list[Finding]:
        """Add ``details["keys"]``, the exact differing rowids (or primary keys), to every
        ``row_count``/``checksum`` finding on a table, by comparing the typed rows of both files.

        For drill, ``verify --against`` and ``compare`` of two files: the manifest alone narrows a
        difference to key ranges; with both databases at hand it is narrowed to the rows.
        """
        if not isinstance(reference, SqliteRef) or not isinstance(restored, SqliteRef):
            return list(findings)
        out: list[Finding] = []
        for f in findings:
            if f.check in ("row_count", "checksum") and f.object.startswith("main."):
                try:
                    keys = differing_keys(Path(reference.path), Path(restored.path), f.object, limit=max_keys)
                    f = dataclasses.replace(f, details={**f.details, "keys": keys})
                except sqlite3.Error as exc:
                    f = dataclasses.replace(f, details={**f.details, "keys_error": first_line(exc)})
            out.append(f)
        return out

    # --- checks that need no reference --------------------------------------------------------

    def apply_database_properties(self, outcome: RestoreOutcome, manifest: Manifest, *,
                                  reference: Manifest | None = None) -> tuple[Manifest, list[Evidence]]:
        """SQLite has no database-level properties beyond its header (compared as ``header``)."""
        return manifest, []

    def settle_definitions(self, outcome: RestoreOutcome, restored: Manifest, reference: Manifest
                           ) -> tuple[Manifest, dict[str, Any]]:
        """SQLite keeps a table's SQL text as written: nothing to settle."""
        return restored, {}

    def self_check_facts(self, restored: DatabaseRef, manifest: Manifest) -> Manifest:
        """``manifest`` (the fingerprint of ``restored``) with an integrity_check result: when it holds
        none (a schema-only or older fingerprint) the check is run on ``restored`` here."""
        facts = dict(manifest.facts)
        if facts.get("integrity_check") is not None or manifest.open_error or not isinstance(restored, SqliteRef):
            return manifest
        try:
            with contextlib.closing(connect_readonly(Path(restored.path))) as conn:
                facts["integrity_check"], note = run_integrity_check(conn)
                if note:
                    facts["integrity_note"] = note
        except sqlite3.DatabaseError as exc:
            return dataclasses.replace(manifest, facts=facts, open_error=first_line(exc))
        return dataclasses.replace(manifest, facts=facts)


def _wal_size(path: Path) -> int:
    try:
        return os.stat(str(path) + "-wal").st_size
    except OSError:
        return 0
