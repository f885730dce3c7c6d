"""Immutable result types and their (de)serialisation, in one place.

A manifest written today must load in three years: ``Manifest.from_dict`` accepts every
``manifest_version`` up to ``MANIFEST_VERSION`` and refuses newer or malformed files with a
``BadManifestError``. Golden files under ``tests/`` guard the format.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from restorecheck import __version__
from restorecheck.errors import BadManifestError, ExitCode, RestorecheckError
from restorecheck.paths import open_regular, require_output_file
from restorecheck.validate import SchemaError, Validator

MANIFEST_VERSION = 1
# the largest manifest Manifest.load reads: a manifest of tens of thousands of tables with their key
# ranges and catalog is tens of MiB; the limit keeps '--manifest /dev/zero'-like inputs from eating memory
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
# restorecheck writes manifests 7 levels deep; deeper JSON is refused before anything recurses into it
MAX_MANIFEST_DEPTH = 64
# Manifest fields kept under "facts" on disk (manifest_version 1 put them there; readers of it look there)
CONTROL_FACTS = ("checksum_mode", "sequences_at_least", "open_error")
_HINT = "give a file written by 'restorecheck snapshot' or 'restorecheck backup', unchanged"

Severity = Literal["error", "warning", "info"]
Verdict = Literal["pass", "fail", "error"]
Reference = Literal["manifest", "live", "none"]

# Names mypy checks, so that a typo is an error before it is a bug. The shipped schemas enumerate the
# same values (tests/unit/test_typed_contracts.py holds them equal).
EngineName = Literal["postgresql", "sqlite"]  # --engine, DatabaseRef.engine, Manifest/Report.engine
ENGINE_NAMES: tuple[EngineName, ...] = get_args(EngineName)
DumpFormat = Literal["custom", "directory", "tar", "plain"]  # what pg_dump writes (backup --format)
DUMP_FORMATS: tuple[DumpFormat, ...] = get_args(DumpFormat)
# a backup restorecheck restores: pg_dump's formats, a plain script compressed with one codec
# (sources.CODECS; plain-gzip is also recognised by the PostgreSQL engine itself), a SQLite file
BackupFormat = Literal[DumpFormat, "plain-gzip", "plain-zstd", "plain-lz4", "plain-bzip2", "plain-xz", "sqlite"]
BACKUP_FORMATS: tuple[BackupFormat, ...] = get_args(BackupFormat)
# BackupArtifact.format also says why there is no format: a layer failed before it was seen
# (encrypted, compressed), the file was not recognised (unknown), or it is empty
ArtifactFormat = Literal[BackupFormat, "encrypted", "compressed", "unknown", "empty"]
ARTIFACT_FORMATS: tuple[ArtifactFormat, ...] = get_args(ArtifactFormat)
# the row hash a checksum was made with (engines/pg_rowhash.py, engines/sqlite.py); checksums of
# different modes are never compared as if equal
ChecksumMode = Literal["hash64-v2", "hash64-v1", "text64-v1", "sqlite-keyed-sha256-v2", "sqlite-keyed-sha256-v1"]
CHECKSUM_MODES: tuple[ChecksumMode, ...] = get_args(ChecksumMode)

# Stable ids for Finding.check (SPEC). New checks get new ids; never rename one. A Literal, so that
# mypy rejects a finding made with an id that is not here; Finding refuses one at run time too, and
# the report schema's enum is tested to be exactly this list (tests/unit/test_check_ids.py).
CheckId = Literal[
    "restore_errors",
    "table_missing",
    "table_extra",
    "row_count",
    "checksum",
    "fk_orphans",
    "sequence",
    "schema",
    "large_objects",
    "integrity",
    "no_reference",
    # restorecheck's own additions
    "backup_file",  # the backup file itself: truncated, trailer missing, sha256 differs
    "rto",  # the restore took longer than --max-restore-seconds
    "unreadable",  # a relation that could not be fingerprinted (foreign table, unpopulated MV)
    "row_security",  # the reading role is subject to RLS: counts would lie
    "header",  # SQLite header values a copy must keep
    "database",  # database-level properties: the locale the throwaway database could not get, ...
    "restore_timeout",  # the restore tool was killed at --restore-timeout
    # between nights (the nightly job, against the history: checks/history.py)
    "drift",  # a table of the source vanished, emptied or lost more than a set share of its rows
    "rto_trend",  # the restore took more than a set factor of the recent median
    "backup_size",  # the backup shrank by more than a set share
]
CHECK_IDS: tuple[CheckId, ...] = get_args(CheckId)


@dataclass(frozen=True)
class Finding:
    """One thing a check found. ``severity == "error"`` makes the verdict fail."""

    check: CheckId
    severity: Severity
    object: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.check not in CHECK_IDS:
            raise ValueError(f"unknown check id {self.check!r} (model.CheckId lists them)")
        if self.severity not in ("error", "warning", "info"):
            raise ValueError(f"unknown severity {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check,
            "severity": self.severity,
            "object": self.object,
            "message": self.message,
        }
        if self.details:
            out["details"] = _jsonable(self.details)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Finding:
        return cls(
            check=d["check"],
            severity=d["severity"],
            object=str(d["object"]),
            message=str(d["message"]),
            details=dict(d.get("details") or {}),
        )


@dataclass(frozen=True)
class BackupArtifact:
    """A backup on disk: a file, or a directory for pg_dump's directory format."""

    path: str  # a local path, or s3://bucket/key
    format: ArtifactFormat
    bytes: int  # of what is stored (the ciphertext, the compressed file)
    sha256: str | None  # of what is stored
    encryption: str | None = None  # age | gpg (sources.py)
    compression: str | None = None  # the codec(s) around the backup, outermost first: zstd, gzip, ...
    # written moments ago by this process's own backup (the tool exited 0, the digest was taken):
    # the restore reads every block anyway, so a separate read check may be skipped. Never
    # serialized: an artifact read from a manifest or named by a user is never "written here".
    written_here: bool = dataclasses.field(default=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "format": self.format, "bytes": self.bytes, "sha256": self.sha256}
        for optional in ("encryption", "compression"):  # absent, not null, when there is none
            if getattr(self, optional) is not None:
                d[optional] = getattr(self, optional)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BackupArtifact:
        return cls(
            path=str(d["path"]),
            format=_one_of(d["format"], ARTIFACT_FORMATS, "backup format"),
            bytes=int(d["bytes"]),
            sha256=d.get("sha256"),
            encryption=d.get("encryption"),
            compression=d.get("compression"),
        )


@dataclass(frozen=True)
class RangeChecksum:
    """The checksum of the rows whose key lies between lower and upper (None = open).

    The engine defines the bounds: SQLite's are both inclusive; PostgreSQL's are [lower, upper),
    lower inclusive and upper exclusive, with text key columns compared in the "C" collation.
    Comparisons only pair ranges whose bounds are equal.
    """

    lower: tuple[Any, ...] | None
    upper: tuple[Any, ...] | None
    rows: int
    checksum: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "lower": None if self.lower is None else list(self.lower),
            "upper": None if self.upper is None else list(self.upper),
            "rows": self.rows,
            "checksum": self.checksum,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RangeChecksum:
        lo, up = d.get("lower"), d.get("upper")
        return cls(
            lower=None if lo is None else tuple(lo),
            upper=None if up is None else tuple(up),
            rows=int(d["rows"]),
            checksum=str(d["checksum"]),
        )


def same_boundaries(a: Sequence[RangeChecksum], b: Sequence[RangeChecksum]) -> bool:
    """True when both lists cover the same key ranges (so they can be compared range by range)."""
    return len(a) == len(b) and all(
        _norm(x.lower) == _norm(y.lower) and _norm(x.upper) == _norm(y.upper) for x, y in zip(a, b, strict=True)
    )


def _norm(v: tuple[Any, ...] | None) -> tuple[str, ...] | None:
    return None if v is None else tuple(str(x) for x in v)


@dataclass(frozen=True)
class TableFingerprint:
    """Row count and content checksum of one relation.

    ``name`` is qualified (``schema.table`` for PostgreSQL, ``main.table`` for SQLite).
    ``rows``/``checksum`` are None when the relation could not be read (``readable`` False and
    ``note`` says why). ``checksum_mode`` names the algorithm so that manifests made with
    different modes are never compared as if equal.
    """

    name: str
    kind: str = "table"  # table | partition | partitioned | matview | foreign | unlogged | ...
    rows: int | None = None
    checksum: str | None = None
    checksum_mode: ChecksumMode | Literal[""] = ""  # "": no checksum was made
    key: tuple[str, ...] = ()
    ranges: tuple[RangeChecksum, ...] = ()
    readable: bool = True
    note: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "checksum": self.checksum,
            "checksum_mode": self.checksum_mode,
            "key": list(self.key),
            "ranges": [r.to_dict() for r in self.ranges],
            "readable": self.readable,
        }
        if self.note:
            out["note"] = self.note
        if self.extra:
            out["extra"] = _jsonable(self.extra)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TableFingerprint:
        return cls(
            name=str(d["name"]),
            kind=str(d.get("kind", "table")),
            rows=None if d.get("rows") is None else int(d["rows"]),
            checksum=d.get("checksum"),
            checksum_mode=_one_of(d.get("checksum_mode") or "", ("", *CHECKSUM_MODES), "checksum mode"),
            key=tuple(d.get("key") or ()),
            ranges=tuple(RangeChecksum.from_dict(r) for r in d.get("ranges") or ()),
            readable=bool(d.get("readable", True)),
            note=d.get("note"),
            extra=dict(d.get("extra") or {}),
        )


@dataclass(frozen=True)
class Manifest:
    """What a database holds: enough to verify a backup later, elsewhere, without the source.

    ``schema`` is a normalised, JSON-able catalog snapshot (no OIDs, grants as sorted lists),
    compared with deepdiff. ``sequences`` maps a qualified sequence name to its state;
    ``fk_orphans`` maps a qualified constraint name to ``{"orphans": n, "validated": bool, ...}``;
    ``large_objects`` is ``{"count": n, "digest": "...", ...}`` or None where the engine has none;
    ``facts`` holds engine-specific facts (SQLite header values, the reading role's attributes,
    ``pg_is_in_recovery()``, encoding and locale, dump options, ...).
    ``database_properties`` (PostgreSQL): the database's own settings, per-role settings in it,
    comment, owner, privileges, connection limit and default tablespace (``engines/pg_dbprops.py``);
    None means "not recorded" (a manifest written before restorecheck recorded them), never "none".

    Control data, typed (on disk they stay under ``facts``, where every manifest_version 1 reader looks;
    ``CONTROL_FACTS``): ``checksum_mode`` the row hash of every table (None: not recorded);
    ``sequences_at_least``: the sequences were read before the data (a backup's manifest), so a
    restored copy's may be ahead but never behind; ``open_error`` (SQLite): why the file did not
    open as a database, None when it did.
    """

    engine: EngineName
    database: str
    server_version: str = ""
    taken_at: str = ""
    snapshot: str | None = None
    tables: tuple[TableFingerprint, ...] = ()
    schema: Mapping[str, Any] = field(default_factory=dict)
    sequences: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    large_objects: Mapping[str, Any] | None = None
    fk_orphans: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)
    backup: BackupArtifact | None = None
    database_properties: Mapping[str, Any] | None = None
    checksum_mode: ChecksumMode | None = None
    sequences_at_least: bool = False
    open_error: str | None = None
    tool_version: str = __version__
    manifest_version: int = MANIFEST_VERSION

    def __post_init__(self) -> None:
        stray = [k for k in CONTROL_FACTS if k in self.facts]
        if stray:  # one place holds each: the typed field
            raise ValueError(f"{', '.join(stray)} is a Manifest field, not a fact")

    def table(self, name: str) -> TableFingerprint | None:
        for t in self.tables:
            if t.name == name:
                return t
        return None

    def with_backup(self, backup: BackupArtifact) -> Manifest:
        return dataclasses.replace(self, backup=backup)

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest_version": self.manifest_version,
            "tool": "restorecheck",
            "tool_version": self.tool_version,
            "engine": self.engine,
            "server_version": self.server_version,
            "database": self.database,
            "taken_at": self.taken_at,
            "snapshot": self.snapshot,
            "backup": None if self.backup is None else self.backup.to_dict(),
            "tables": [t.to_dict() for t in self.tables],
            "schema": _jsonable(self.schema),
            "sequences": _jsonable(self.sequences),
            "large_objects": None if self.large_objects is None else _jsonable(self.large_objects),
            "fk_orphans": _jsonable(self.fk_orphans),
            "facts": _jsonable({**self.facts, **self._control_facts()}),
            # only when recorded: absent means "not recorded", and older manifests round-trip unchanged
            **({} if self.database_properties is None
               else {"database_properties": _jsonable(self.database_properties)}),
        }

    def _control_facts(self) -> dict[str, Any]:
        """The typed control fields as the ``facts`` keys they were (and are) written under; each
        only when set, as restorecheck always wrote them."""
        out: dict[str, Any] = {}
        if self.checksum_mode is not None:
            out["checksum_mode"] = self.checksum_mode
        if self.sequences_at_least:
            out["sequences_at_least"] = True
        if self.open_error is not None:
            out["open_error"] = self.open_error
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "manifest") -> Manifest:
        """Build a Manifest from parsed JSON, after checking it against the shipped JSON Schema
        (``restorecheck/data/manifest.schema.json``): BadManifestError naming the field otherwise."""
        if not isinstance(d, Mapping) or d.get("tool") != "restorecheck" or "manifest_version" not in d:
            raise BadManifestError(
                f"{source} is not a restorecheck manifest",
                "give a file written by 'restorecheck snapshot' or 'restorecheck backup'",
            )
        version = d["manifest_version"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BadManifestError(f"{source} has an invalid manifest_version {_show(version)}",
                                   "give a file written by 'restorecheck snapshot' or 'restorecheck backup'")
        if version > MANIFEST_VERSION:
            raise BadManifestError(
                f"{source} has manifest_version {version}, newer than this restorecheck reads "
                f"({MANIFEST_VERSION})",
                "upgrade restorecheck",
            )
        validate_manifest(d, source=source)
        try:
            facts = dict(d.get("facts") or {})
            control = {k: facts.pop(k) for k in CONTROL_FACTS if k in facts}
            return cls(
                engine=_one_of(d["engine"], ENGINE_NAMES, "engine"),
                database=str(d.get("database", "")),
                server_version=str(d.get("server_version", "")),
                taken_at=str(d.get("taken_at", "")),
                snapshot=d.get("snapshot"),
                tables=tuple(TableFingerprint.from_dict(t) for t in d.get("tables") or ()),
                schema=dict(d.get("schema") or {}),
                sequences=dict(d.get("sequences") or {}),
                large_objects=d.get("large_objects"),
                fk_orphans=dict(d.get("fk_orphans") or {}),
                facts=facts,
                checksum_mode=None if not control.get("checksum_mode")
                else _one_of(control["checksum_mode"], CHECKSUM_MODES, "checksum mode"),
                sequences_at_least=control.get("sequences_at_least") is True,
                open_error=None if control.get("open_error") is None else str(control["open_error"]),
                backup=None if not d.get("backup") else BackupArtifact.from_dict(d["backup"]),
                database_properties=None if d.get("database_properties") is None
                else dict(d["database_properties"]),
                tool_version=str(d.get("tool_version", "")),
                manifest_version=version,
            )
        except (KeyError, TypeError, ValueError) as exc:  # the schema should have said it: a safety net
            raise BadManifestError(f"{source} is malformed ({exc.__class__.__name__} while reading it)",
                                   "give a file written by 'restorecheck snapshot' or 'restorecheck backup'"
                                   ) from None

    @classmethod
    def load(cls, path: str | Path, *, max_bytes: int = MAX_MANIFEST_BYTES) -> Manifest:
        """Read, check and build the manifest in ``path``; every problem is a BadManifestError (exit 2).

        Only a regular file is opened (never a FIFO or a device), at most ``max_bytes`` are read,
        JSON nested deeper than ``MAX_MANIFEST_DEPTH`` is refused, and the content is validated
        against the JSON Schema before any object is built."""
        p = Path(path)
        source = f"manifest {p}"
        data = _parse_json(_read_bounded(p, source, max_bytes), source)
        return cls.from_dict(data, source=source)

    def save(self, path: str | Path, mode: int = 0o600) -> None:
        """Write the manifest atomically, ``mode`` 0600 unless told (it names every table)."""
        import os

        p = Path(path)
        require_output_file(p, "manifest")  # the rename below would replace a FIFO or a device node
        tmp = p.with_name(p.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(self.to_json())
        os.chmod(tmp, mode)
        tmp.replace(p)


@dataclass(frozen=True)
class TableResult:
    """One row of the report's ``tables`` list."""

    name: str
    rows_expected: int | None
    rows_restored: int | None
    checksum_expected: str | None
    checksum_restored: str | None
    match: bool

    @property
    def source_rows(self) -> int | None:
        """The rows the source had (the reference's count), else what was restored."""
        return self.rows_expected if self.rows_expected is not None else self.rows_restored

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class HistoryThresholds:
    """Limits and severities of the between-nights checks (checks/history.py); restorecheck.toml
    sets them per job (config.py). Warnings by default: see the README's 'Nightly job'."""

    drift_max_loss: float = 0.10  # a table lost more than this share of its rows
    drift_severity: Severity = "warning"
    rto_trend_factor: float = 1.5  # the restore took more than this factor of the recent median
    rto_trend_runs: int = 7  # the median of this many recent verified runs
    rto_trend_min_runs: int = 3  # no trend before this many verified runs are recorded
    rto_trend_min_seconds: float = 1.0  # and at least this many seconds more (tiny restores are noise)
    rto_trend_severity: Severity = "warning"
    backup_size_max_shrink: float = 0.20  # the backup shrank by more than this share
    backup_size_severity: Severity = "warning"


@dataclass(frozen=True)
class Baseline:
    """What the history holds of a job before this run: its last verified run and recent restore
    times. Built by ``nightly`` from the history database; judged by the checks of phase history."""

    job: str
    last_run_id: int | None = None  # the last verified run (None: there is none yet)
    last_started_at: str | None = None
    table_rows: Mapping[str, int | None] = field(default_factory=dict)  # the source's rows then, per table
    backup_bytes: int | None = None
    restore_seconds: tuple[float, ...] = ()  # of the recent verified runs, newest first
    thresholds: HistoryThresholds = HistoryThresholds()


@dataclass(frozen=True)
class Report:
    """The outcome of verify, drill or compare. ``verdict`` follows the exit code (SPEC)."""

    verdict: Verdict
    engine: EngineName
    reference: Reference
    backup: BackupArtifact | None = None
    phases: Mapping[str, float] = field(default_factory=dict)
    tables: tuple[TableResult, ...] = ()
    findings: tuple[Finding, ...] = ()
    command: str = "verify"
    started_at: str = ""
    source: str | None = None  # masked URL or path
    target: str | None = None  # provisioner name or masked URL
    error: str | None = None  # the one-line error when verdict == "error"
    extra: Mapping[str, Any] = field(default_factory=dict)
    tool: str = "restorecheck"
    version: str = __version__
    kept: str | None = None  # --keep: the command line that opens the kept restored database

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def ok(self) -> bool:
        """True exactly when the verdict is ``pass`` (the CLI's exit code 0)."""
        return self.verdict == "pass"

    @property
    def failing_tables(self) -> tuple[TableResult, ...]:
        """The tables whose restored rows or checksum differ from the reference."""
        return tuple(t for t in self.tables if not t.match)

    def to_json(self) -> str:
        """The SPEC's JSON report, as ``--report FILE`` writes it."""
        from restorecheck.report import to_json

        return to_json(self)

    def summary(self, *, max_keys: int = 5) -> str:
        """The human summary the CLI prints (verdict, backup, phases, tables, findings), plus, under
        each finding, the key columns and differing key ranges or keys it names (up to ``max_keys``)."""
        from restorecheck.report import render_human

        return render_human(self, max_keys=max_keys)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tool": self.tool,
            "version": self.version,
            "command": self.command,
            "verdict": self.verdict,
            "engine": self.engine,
            "started_at": self.started_at,
            "source": self.source,
            "target": self.target,
            "backup": None if self.backup is None else self.backup.to_dict(),
            "reference": self.reference,
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "tables": [t.to_dict() for t in self.tables],
            "findings": [f.to_dict() for f in self.findings],
        }
        if self.kept:
            out["kept"] = self.kept
        if self.error:
            out["error"] = self.error
        if self.extra:
            out["extra"] = _jsonable(self.extra)
        return out


_T = TypeVar("_T")


def _one_of(value: Any, allowed: tuple[_T, ...], what: str) -> _T:
    """``value`` as the member of ``allowed`` it equals (typed), or ValueError naming ``what``."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}")
    return allowed[allowed.index(value)]


def verdict_for(findings: Iterable[Finding]) -> Verdict:
    """``fail`` when any finding is an error, else ``pass``."""
    return "fail" if any(f.severity == "error" for f in findings) else "pass"


def _jsonable(value: Any) -> Any:
    """Deep-convert mappings, tuples and sets into plain JSON types (sets sorted)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=lambda x: json.dumps(x, sort_keys=True))
    if isinstance(value, bytes):
        return value.hex()
    return value


# --- reading and validating manifests -------------------------------------------------------------


def _read_bounded(p: Path, source: str, max_bytes: int) -> str:
    try:
        fh = open_regular(p, source.split(" ", 1)[0], error=BadManifestError,
                          hint="give the manifest file restorecheck wrote")
    except FileNotFoundError:
        raise BadManifestError(f"{source} does not exist", "check the path") from None
    except OSError as exc:
        raise BadManifestError(f"{source} cannot be read: {exc.strerror or exc.__class__.__name__}",
                               "check the path and its permissions") from None
    with fh:
        too_big = BadManifestError(f"{source} is larger than {_size(max_bytes)}, the limit for a manifest",
                                   "give the manifest restorecheck wrote; in the Python API, "
                                   "Manifest.load(path, max_bytes=...) reads a larger one")
        if os.fstat(fh.fileno()).st_size > max_bytes:
            raise too_big
        try:
            raw = fh.read(max_bytes + 1)
        except OSError as exc:
            raise BadManifestError(f"{source} cannot be read: {exc.strerror or exc.__class__.__name__}",
                                   "check the file") from None
        if len(raw) > max_bytes:  # a file that grows, or lies about its size (/proc)
            raise too_big
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadManifestError(f"{source} is not UTF-8 text (byte {exc.start})", _HINT) from None


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 and n % (1024 * 1024) == 0 else f"{n} bytes"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_json(text: str, source: str) -> Any:
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadManifestError(f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno})",
                               _HINT) from None
    except RecursionError:
        raise BadManifestError(f"{source} is nested more than {MAX_MANIFEST_DEPTH} levels deep", _HINT) from None
    except ValueError as exc:  # NaN/Infinity, or an integer of thousands of digits
        what = str(exc) if "JSON number" in str(exc) else "it holds a number too long to read"
        raise BadManifestError(f"{source} is not valid JSON: {what}", _HINT) from None
    if _deeper_than(data, MAX_MANIFEST_DEPTH):
        raise BadManifestError(f"{source} is nested more than {MAX_MANIFEST_DEPTH} levels deep", _HINT)
    return data


def _deeper_than(value: Any, limit: int) -> bool:
    """Without recursion: does ``value`` nest arrays/objects more than ``limit`` levels deep?"""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            return True
        children = v.values() if isinstance(v, dict) else v
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


@functools.cache
def _validator() -> Validator:
    from importlib import resources

    text = resources.files("restorecheck").joinpath("data/manifest.schema.json").read_text(encoding="utf-8")
    return Validator(json.loads(text))


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema every manifest is validated against (``restorecheck/data/manifest.schema.json``)."""
    return dict(_validator().schema)


def validate_manifest(data: Any, *, source: str = "manifest") -> None:
    """BadManifestError naming the JSON path of the first problem when ``data`` does not match the schema."""
    if _deeper_than(data, MAX_MANIFEST_DEPTH):
        raise BadManifestError(f"{source} is nested more than {MAX_MANIFEST_DEPTH} levels deep", _HINT)
    validator = _validator()
    if validator.is_valid(data):
        return
    errors = validator.iter_errors(data)
    first = next(errors, None)
    if first is None:  # cannot be: both walk the same keywords
        raise BadManifestError(f"{source} does not match the manifest schema", _HINT)
    n = sum(1 for _ in itertools.islice(errors, 999))
    more = f" (and {n}{'+' if n == 999 else ''} more problem{'s' if n > 1 else ''})" if n else ""
    raise BadManifestError(f"{source} is malformed: {_describe(first, data)}{more}", _HINT)


_JSON_TYPES = {"null": "null", "boolean": "a boolean", "integer": "an integer", "number": "a number",
               "string": "a string", "array": "an array", "object": "an object"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _show(value: Any) -> str:
    """A value as JSON text (never a Python repr), shortened; containers by their type only."""
    if isinstance(value, (dict, list)):
        return _json_type(value)
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_path(parts: Iterable[Any], data: Any) -> str:
    """``$.tables[3].rows``, with the table's name when it has one: ``$.tables[3] (shop.orders).rows``."""
    out, node = "$", data
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
            out += f".{part}"
        else:
            out += "[" + json.dumps(str(part), ensure_ascii=False) + "]"
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
        if isinstance(part, int) and isinstance(node, dict) and isinstance(node.get("name"), str):
            out += f" ({_show(node['name'])[1:-1]})"
    return out


def _describe(error: SchemaError, data: Any) -> str:
    path = _json_path(error.absolute_path, data)
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        want = " or ".join(_JSON_TYPES.get(t, t) for t in types)
        got = _json_type(value)
        return f"{path} must be {want}, not {got}" + ("" if isinstance(value, (dict, list)) or value is None
                                                      else f" {_show(value)}")
    if kind == "required":
        missing = [k for k in expected if isinstance(value, dict) and k not in value]
        names = ", ".join(missing) or ", ".join(expected)
        path = "the top level" if path == "$" else path
        return f"{path} lacks the field{'s' if len(missing) > 1 else ''} {names}"
    if kind == "minimum":
        return f"{path} must be at least {expected}, not {_show(value)}"
    if kind == "maximum":
        shown = _show(value) if len(str(value)) <= 40 else f"a number of {len(str(value))} digits"
        return f"{path} must be at most {expected} (a 64-bit integer), not {shown}"
    if kind == "const":
        return f"{path} must be {_show(expected)}, not {_show(value)}"
    if kind == "enum":
        return f"{path} must be one of {', '.join(_show(x) for x in expected)}, not {_show(value)}"
    if kind == "minLength":
        return f"{path} must not be empty"
    if kind == "pattern":
        return f"{path} must match the pattern {expected}, not {_show(value)}"
    return f"{path} does not satisfy the schema's {kind}"


def error_report(exc: BaseException, *, command: str, engine: EngineName, backup_path: str | Path | None = None,
                 source: str | None = None) -> tuple[Report, int]:
    """The report of a run that could not finish (verdict error), and the SPEC's exit code: the
    error's own for a ``RestorecheckError``, else 3 (an interrupt, an unexpected error). The CLI
    writes it for ``--report``/``--junit``/``--html``, the nightly job for a job that could not run."""
    import datetime as dt

    from restorecheck.dburl import mask

    if isinstance(exc, RestorecheckError):
        message, code = exc.one_line(), int(exc.exit_code)
    elif not isinstance(exc, Exception):  # KeyboardInterrupt, signals.Terminated
        message, code = f"interrupted ({exc.__class__.__name__} {exc})".strip(), int(ExitCode.ENVIRONMENT)
    else:
        text = str(exc).strip()
        message = f"internal error: {exc.__class__.__name__}: {text.splitlines()[0] if text else ''}"
        code = int(ExitCode.ENVIRONMENT)
    backup = None
    if backup_path is not None:
        local = Path(backup_path)
        try:
            size = local.stat().st_size if not str(backup_path).startswith("s3://") and local.is_file() else 0
        except OSError:
            size = 0
        backup = BackupArtifact(str(backup_path), "unknown", size, None)
    report = Report(verdict="error", engine=engine, reference="none", backup=backup, command=command,
                    source=mask(source) if source else None, error=mask(message), extra={"exit_code": code},
                    started_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return report, code
