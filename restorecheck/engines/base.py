"""The Engine protocol: what the pipeline needs from PostgreSQL and from SQLite.

``pipeline.py`` owns the ExitStack and the order of phases; an engine knows how to fingerprint a
database, take a backup with its manifest, recognise a backup file, provision a throwaway target
and restore into it, and run the checks that need no reference. Engines are looked up by name
with ``engines.get_engine`` or by database with ``engines.engine_for`` (``engines/__init__.py``).

Engines hold no state between calls: what one step makes and a later step needs (a target
started early, a source made for drill, a backup this process just wrote) is a value the step
returns and the pipeline passes on. One engine instance can serve any number of databases.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from restorecheck.dburl import DatabaseRef
from restorecheck.errors import BadInputError
from restorecheck.evidence import Evidence
from restorecheck.model import BackupArtifact, BackupFormat, EngineName, Finding, Manifest

# progress(task, done, total): total None when unknown. The CLI renders it with rich on a terminal.
ProgressFn = Callable[[str, float, float | None], None]


def no_progress(task: str, done: float, total: float | None) -> None:
    """The default progress sink: does nothing."""


@dataclass(frozen=True)
class FingerprintOptions:
    jobs: int = 1
    strict: bool = False  # hash the text form of values (1.0 != 1.00, -0 != 0) instead of type hashes
    hash_version: int = 2  # hash64-v2 / sqlite-keyed-sha256-v2; 1 for the v1 modes of manifests made by 0.1
    range_rows: int = 100_000  # tables above this many rows get key-range checksums
    max_ranges: int = 64
    snapshot: str | None = None  # an exported snapshot id to read in (PostgreSQL)
    lock_timeout: str = "10s"
    statement_timeout: str = "0"
    schema_only: bool = False  # catalog facts only, no counts or checksums
    progress: ProgressFn = no_progress


_NAME_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def check_name(name: str | None) -> None:
    """``--name`` is a plain file name (a '/' would write outside the output directory): exit 2."""
    if name is not None and (not name.strip() or "/" in name or "\0" in name
                             or name.startswith(".")):
        raise BadInputError(f"--name {name!r} is not a plain file name",
                            "give a name without '/' that does not start with '.'; -o chooses the directory")


def default_backup_name(stem: str | None, now: dt.datetime | None = None) -> str:
    """``<stem>-<UTC timestamp>`` (the database's name, the SQLite file's stem): a nightly job never
    collides with last night's file."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    base = _NAME_SAFE.sub("_", stem or "database").strip("._") or "database"
    return f"{base}-{stamp}"


def backup_files(outdir: Path, name: str | None, stem: str | None, suffix: str) -> tuple[Path, Path]:
    """Where ``Engine.backup`` writes: ``outdir/<name><suffix>`` and ``outdir/<name>.manifest.json``,
    ``name`` being ``--name`` or ``default_backup_name(stem)``. ``outdir`` is made if missing. Exit 2
    for a name that is not a plain file name, an ``outdir`` that is no directory, and a file that
    exists already: restorecheck never overwrites a backup."""
    check_name(name)
    if outdir.exists() and not outdir.is_dir():
        raise BadInputError(f"output {outdir} exists and is not a directory", "give a directory with -o")
    outdir.mkdir(parents=True, exist_ok=True)
    name = name or default_backup_name(stem)
    out, manifest = outdir / f"{name}{suffix}", outdir / f"{name}.manifest.json"
    for p in (out, manifest):
        if p.exists():
            raise BadInputError(f"{p} already exists; restorecheck never overwrites a backup",
                                "choose another --name or output directory, or remove the old file")
    return out, manifest


def in_checksum_mode_of(manifest: Manifest, options: FingerprintOptions) -> FingerprintOptions:
    """``options`` in the checksum mode ``manifest`` was made in, so that the two compare."""
    mode = manifest.checksum_mode
    if mode == "text64-v1":
        return dataclasses.replace(options, strict=True)
    if mode in ("hash64-v1", "hash64-v2", "sqlite-keyed-sha256-v1", "sqlite-keyed-sha256-v2"):
        return dataclasses.replace(options, strict=False, hash_version=int(mode[-1]))
    return options


@dataclass(frozen=True)
class BackupOptions:
    format: BackupFormat = "custom"  # custom | directory | tar | plain (PostgreSQL); sqlite
    jobs: int = 1
    name: str | None = None  # file stem; default from the database name
    compress: str | None = None  # passed to pg_dump -Z
    file_mode: int = 0o600  # the backup and its manifest (directories: 0700 plus the execute bits)
    fingerprint: FingerprintOptions = field(default_factory=FingerprintOptions)
    progress: ProgressFn = no_progress
    # pg_dump --exclude-table-data patterns: a backup that lacks those tables' rows while its manifest
    # (the source's) has them. Fault injection, to prove a test suite catches a lossy backup (the
    # pytest plugin's assert_restores); PostgreSQL only
    exclude_table_data: tuple[str, ...] = ()

    @classmethod
    def for_engine(cls, engine: EngineName, format: BackupFormat, jobs: int, **rest: Any) -> BackupOptions:
        """The options for a backup of an ``engine`` database: a SQLite backup is the file's copy
        (format ``sqlite``), and pg_dump runs workers (``jobs``) only for the directory format."""
        fmt: BackupFormat = "sqlite" if engine == "sqlite" else format
        return cls(format=fmt, jobs=jobs if fmt == "directory" else 1, **rest)


@dataclass(frozen=True)
class RestoreOptions:
    target: str | None = None  # local | docker | postgresql://... (PostgreSQL); ignored by SQLite
    jobs: int = 1
    pg_bin: str | None = None
    keep: bool = False
    tmp_root: str | None = None
    start_timeout: float = 60.0
    # a server URL target: restore as the URL's role instead of an unprivileged role made for the
    # run (only for backups one trusts: README, threat model); no effect on local and docker
    trust_backup: bool = False
    progress: ProgressFn = no_progress
    sandbox: str = "auto"  # auto | bwrap | none: the OS sandbox around the server and the restore tools
    restore_timeout: float | None = None  # seconds: the restore tool (and its sandbox) is killed then
    # the reference's encoding and locale facts (checks.compare.locale_of): the throwaway database
    # gets its locale where the target has it; None: the dump's own, where it says
    reference_locale: Mapping[str, str] | None = None


@dataclass
class RestoreOutcome:
    """What a restore produced: the restored database and what was observed about the restore itself
    (``evidence``, in the order observed; the checks in ``checks/`` judge it)."""

    restored: DatabaseRef
    evidence: list[Evidence] = field(default_factory=list)
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)  # tool versions, server version, facts
    # with --keep: the command line that opens the kept restored database (no password in it)
    connect: str | None = None
    # what the backup carries about its database, to be applied once the copy is fingerprinted
    # (``Engine.apply_database_properties``); engine-specific, None when there is nothing
    carried_properties: Any = None
    # the role the restore ran as (on a server target the unprivileged restore role), for the statements
    # the checks run in the restored copy (PostgreSQL's deparse round trips); None: the restored ref's
    restored_as: DatabaseRef | None = None


@dataclass(frozen=True)
class Target:
    """A restore target started before the restore (drill): ``restore(..., target=)`` uses it
    instead of provisioning one. ``where`` is what it was asked for as (``local``, ``docker``, a
    URL); ``handle`` is the engine's own (PostgreSQL: a ``provisioners.base.PgServer``), alive
    until the ``ExitStack`` that made it closes."""

    engine: EngineName
    where: str
    handle: Any


@dataclass(frozen=True)
class ThrowawaySource:
    """What ``throwaway_source`` made: the empty database, and the target it lives on when the
    restore can reuse it (one server for both sides of a drill)."""

    ref: DatabaseRef
    target: Target | None = None


class Engine(Protocol):
    name: ClassVar[EngineName]

    def detect_format(self, path: Path) -> BackupFormat | None:
        """The backup format of ``path`` by content, or None when it is not this engine's."""

    def fingerprint(
        self, db: DatabaseRef, options: FingerprintOptions, *, ranges_from: Manifest | None = None
    ) -> Manifest:
        """Fingerprint a live database (read only). ``ranges_from``: a manifest of the same data
        elsewhere, whose key-range boundaries (and checksum mode) are reused so the two compare."""

    def backup(
        self, source: DatabaseRef, outdir: Path, options: BackupOptions
    ) -> tuple[BackupArtifact, Manifest]:
        """Take a backup of ``source`` into ``outdir`` and its manifest from the same snapshot."""

    def restore(
        self, artifact: BackupArtifact, options: RestoreOptions, stack: contextlib.ExitStack, *,
        target: Target | None = None,
    ) -> RestoreOutcome:
        """Provision a throwaway target (cleanup registered on ``stack``) and restore into it, or
        restore into ``target`` (from ``prepare_target``/``throwaway_source``) when it can host
        the backup. ``artifact.written_here``: this process's ``backup`` just wrote it.

        A backup that does not restore cleanly is evidence (``tool_errors``, ...) in the outcome,
        which the checks make ``restore_errors`` findings of, not an exception.
        """

    def self_check_facts(self, restored: DatabaseRef, manifest: Manifest) -> Manifest:
        """``manifest`` (the fingerprint of ``restored``) with what the self-checks of ``checks/``
        (phase ``self``: SQLite integrity_check, a sequence behind its column, ...) need and the
        fingerprint did not gather (SQLite: integrity_check after a schema-only fingerprint)."""

    def apply_database_properties(self, outcome: RestoreOutcome, manifest: Manifest, *,
                                  reference: Manifest | None = None) -> tuple[Manifest, list[Evidence]]:
        """After the restored copy was fingerprinted (``manifest``): give it the database-level
        properties its backup carries (``outcome.carried_properties``, from ``restore``), and return
        ``manifest`` with what it then has, plus evidence of what could not be applied. Engines
        without such properties return it unchanged."""

    def settle_definitions(self, outcome: RestoreOutcome, restored: Manifest, reference: Manifest
                           ) -> tuple[Manifest, dict[str, Any]]:
        """``restored`` with the definitions whose text differs from the reference's only by how the
        restored server prints them set to the reference's text, and what was done (may do nothing)."""

    def narrow(
        self,
        reference: DatabaseRef,
        restored: DatabaseRef,
        findings: Sequence[Finding],
        *,
        reference_manifest: Manifest | None = None,
        restored_manifest: Manifest | None = None,
        max_keys: int = 20,
    ) -> list[Finding]:
        """With both databases at hand, add ``details["keys"]`` (the differing keys, up to
        ``max_keys``) to the ``row_count``/``checksum`` findings; other findings pass unchanged."""

    def throwaway_source(self, options: RestoreOptions, stack: contextlib.ExitStack, *,
                         size_hint: int | None = None) -> ThrowawaySource:
        """A new empty database for drill's self-test, removed by ``stack``; ``size_hint``: the bytes
        the known dataset will take (a small one may be kept in memory)."""

    def prepare_target(self, source: DatabaseRef, options: RestoreOptions,
                       stack: contextlib.ExitStack) -> Target | None:
        """Start the restore target while the backup of ``source`` runs; None: nothing to start."""
