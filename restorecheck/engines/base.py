"""The Engine protocol: what the pipeline needs from PostgreSQL and from SQLite.

``pipeline.py`` owns the ExitStack and the order of phases; an engine knows how to fingerprint a
database, take a backup with its manifest, recognise a backup file, provision a throwaway target
and restore into it, and run the checks that need no reference. Engines are looked up by name
in ``ENGINES`` (``engines/__init__.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from restorecheck.dburl import DatabaseRef
from restorecheck.model import BackupArtifact, Finding, Manifest

# progress(task, done, total): total None when unknown. The CLI renders it with rich on a terminal.
ProgressFn = Callable[[str, float, float | None], None]


def no_progress(task: str, done: float, total: float | None) -> None:
    """The default progress sink: does nothing."""


@dataclass(frozen=True)
class FingerprintOptions:
    jobs: int = 1
    strict: bool = False  # hash the text form of values (1.0 != 1.00, -0 != 0) instead of type hashes
    range_rows: int = 100_000  # tables above this many rows get key-range checksums
    max_ranges: int = 64
    snapshot: str | None = None  # an exported snapshot id to read in (PostgreSQL)
    lock_timeout: str = "10s"
    statement_timeout: str = "0"
    schema_only: bool = False  # catalog facts only, no counts or checksums
    progress: ProgressFn = no_progress


def in_checksum_mode_of(manifest: Manifest, options: FingerprintOptions) -> FingerprintOptions:
    """``options`` in the checksum mode ``manifest`` was made in, so that the two compare."""
    mode = str(manifest.facts.get("checksum_mode", ""))
    if mode:
        return dataclasses.replace(options, strict=mode.startswith("text"))
    return options


@dataclass(frozen=True)
class BackupOptions:
    format: str = "custom"  # custom | directory | tar | plain (PostgreSQL); sqlite
    jobs: int = 1
    name: str | None = None  # file stem; default from the database name
    compress: str | None = None  # passed to pg_dump -Z
    file_mode: int = 0o600  # the backup and its manifest (directories: 0700 plus the execute bits)
    fingerprint: FingerprintOptions = field(default_factory=FingerprintOptions)
    progress: ProgressFn = no_progress


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
    """What a restore produced: the restored database and the findings about the restore itself."""

    restored: DatabaseRef
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)  # tool versions, server version, connect hint
    # the role the restore ran as (on a server target the unprivileged restore role), for the statements
    # the checks run in the restored copy (PostgreSQL's deparse round trips); None: the restored ref's
    restored_as: DatabaseRef | None = None


class Engine(Protocol):
    name: ClassVar[str]

    def detect_format(self, path: Path) -> str | None:
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
        self, artifact: BackupArtifact, options: RestoreOptions, stack: contextlib.ExitStack
    ) -> RestoreOutcome:
        """Provision a throwaway target (cleanup registered on ``stack``) and restore into it.

        A backup that does not restore cleanly is a ``restore_errors`` finding, not an exception.
        """

    def self_checks(self, restored: DatabaseRef, manifest: Manifest, *,
                    reference: Manifest | None = None) -> list[Finding]:
        """Checks that need no reference (SQLite integrity_check, a sequence behind its column, ...).

        ``reference`` (None when there is none) only decides whether a condition was inherited
        from the source (it shows it too: a warning) or introduced by the backup (an error)."""

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

    def throwaway_source(self, options: RestoreOptions, stack: contextlib.ExitStack) -> DatabaseRef:
        """A new empty database for drill's self-test, removed by ``stack``."""

    def prepare_target(self, source: DatabaseRef, options: RestoreOptions, stack: contextlib.ExitStack) -> None:
        """Get the restore target ready while the backup of ``source`` runs (may do nothing)."""
