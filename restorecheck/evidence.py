"""What engines and sources observed, as facts for the checks in ``checks/`` to judge.

Engines, sources and the pipeline do not make findings (``model.Finding``): where a step notices
something a check has to judge while it runs (a restore tool printed errors, a compressed layer is
cut, the throwaway database could not get the reference's locale), it records an ``Evidence``: a
kind from ``EvidenceKind``, the object it is about, and the data a check needs. A check in
``checks/`` registered for that kind (``checks.registry.on_evidence``) turns it into findings:
which check id, which severity and which words are decided there, and nowhere else.

A leaf module: anyone may import it; it imports nothing of restorecheck.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

EvidenceKind = Literal[
    # the backup file and its layers (sources.open_backup, pipeline)
    "backup_empty",  # the file has 0 bytes
    "sha256_mismatch",  # the file's sha256 differs from the manifest's
    "layer_name_mismatch",  # x.gz that is not gzip
    "layer_damaged",  # a compressed or encrypted layer is cut or corrupt
    "recipient_header_damaged",  # an age file changed since its manifest and no identity opens it
    # a PostgreSQL backup as inspected (engines/postgres.py, engines/pg_dump.py)
    "tar_damaged",
    "toc_unreadable",
    "archive_without_data",
    "gzip_damaged",
    "archive_read_failed",  # pg_restore --file=/dev/null over every data block failed
    "plain_scan",  # one pass over a plain dump: trailer, COPY terminators, headers, \restrict
    # the restore (engines/postgres.py, engines/sqlite.py)
    "sandbox_missing",  # the tools ran without the OS sandbox (--sandbox auto, no bubblewrap)
    "nothing_restored",  # the backup could not be read at all
    "tool_errors",  # what pg_restore / psql printed and its exit status
    "tablespaces_missing",  # on a target where restorecheck cannot create them
    "restore_role",  # a server target's unprivileged restore role: password changed, statements denied
    "restore_timed_out",
    "locale_fallback",  # the throwaway database could not get the wanted locale
    "wal_beside_backup",  # SQLite: a non-empty -wal file beside the backup
    "sqlite_unopenable",  # SQLite: the restored copy does not open
    "virtual_table_damaged",  # SQLite: an FTS or R*Tree index fails its own integrity check
    # database-level properties applied after the fingerprint (engines/postgres.py)
    "property_refused",
    "properties_unreadable",
    "property_not_applied",
    "properties_carried",
]
EVIDENCE_KINDS: tuple[EvidenceKind, ...] = get_args(EvidenceKind)


@dataclass(frozen=True)
class Evidence:
    """One observation: ``kind``, the ``object`` it is about (a file, a table, a tool), its ``data``."""

    kind: EvidenceKind
    object: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in EVIDENCE_KINDS:
            raise ValueError(f"unknown evidence kind {self.kind!r} (evidence.EvidenceKind lists them)")
