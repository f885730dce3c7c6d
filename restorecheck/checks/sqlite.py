"""SQLite-specific checks: pure functions over manifests (no database access here).

The generic comparison (tables, row counts, checksums and their key ranges, ``sqlite_sequence``
through ``Manifest.sequences``, foreign-key orphan counts, schema) is ``checks.compare``. This
module adds what only SQLite has:

- ``compare_header``: the database-header values a copy must keep (PITFALLS H4). A different
  ``user_version`` (often the application's migration number), ``application_id``, ``page_size``,
  ``auto_vacuum`` or text ``encoding`` is an error (check ``header``); a different journal mode
  (WAL or rollback, header bytes 18-19) is a warning.
- ``self_check_findings``: what the restored copy says about itself, with no reference needed:
  ``PRAGMA integrity_check`` (check ``integrity``), tables that could not be read, and rows that
  ``PRAGMA foreign_key_check`` reports. Orphans are a warning here: SQLite does not enforce
  foreign keys by default, so the source may have held them; ``checks.compare.compare_fk_orphans``
  makes them an error when the reference had fewer (PITFALLS H3).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from restorecheck.checks import registry
from restorecheck.checks.registry import CheckContext
from restorecheck.evidence import Evidence
from restorecheck.model import Finding, Manifest

# Header values whose difference is an error, in the order they are reported.
HEADER_ERRORS = ("user_version", "application_id", "page_size", "auto_vacuum", "encoding")
# Header values whose difference is a warning.
HEADER_WARNINGS = ("journal_mode",)

MAX_LISTED = 20


def compare_header(reference: Mapping[str, Any], restored: Mapping[str, Any]) -> list[Finding]:
    """Findings for header values that differ between two ``facts["header"]`` mappings.

    Values missing on either side (an older manifest, an unreadable file) are not compared.
    """
    findings: list[Finding] = []
    for key in HEADER_ERRORS + HEADER_WARNINGS:
        if key not in reference or key not in restored:
            continue
        a, b = reference[key], restored[key]
        if a == b:
            continue
        severity: Any = "error" if key in HEADER_ERRORS else "warning"
        why = {
            "user_version": "; an application that keeps its schema version there may re-run its migrations",
            "application_id": "; tools that recognise the file by its application id will reject it",
        }.get(key, "")
        findings.append(Finding(
            "header", severity, f"header.{key}",
            f"SQLite header value {key}: expected {_json(a)}, restored {_json(b)}{why}",
            {"expected": a, "restored": b},
        ))
    return findings


def _json(value: Any) -> str:
    """A header value as JSON ("wal", 42, null), not as a Python repr ('wal', None)."""
    return json.dumps(value, ensure_ascii=False, default=str)


@registry.register("sqlite_header", produces=("header",), phase="compare", engines=("sqlite",), order=600)
def check_header(ctx: CheckContext) -> list[Finding]:
    """The header values a copy must keep (after the schema, before the database facts)."""
    assert ctx.reference is not None and ctx.restored is not None
    return compare_sqlite(ctx.reference, ctx.restored)


@registry.register("sqlite_self", produces=("integrity", "fk_orphans"), phase="self", engines=("sqlite",))
def check_self(ctx: CheckContext) -> list[Finding]:
    """integrity_check, unreadable tables and FK orphans of the restored copy (``self_check_findings``);
    a copy the restore already said does not open (``sqlite_unopenable``) is not reported twice."""
    assert ctx.restored is not None
    return self_check_findings(ctx.restored.facts, ctx.restored.fk_orphans, open_error=ctx.restored.open_error,
                               open_error_reported=ctx.observed("sqlite_unopenable"),
                               reference_fk_orphans=None if ctx.reference is None else ctx.reference.fk_orphans)


@registry.on_evidence("wal_beside_backup", produces=("backup_file",))
def wal_beside_backup(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    name = str(ev.data.get("name") or ev.object)
    why = ("a copy taken in the middle of a transaction, which SQLite rolls back" if name.endswith("-journal")
           else "a file copy of a WAL-mode database?")
    return [Finding(
        "backup_file", "warning", ev.object,
        f"a non-empty {name} lies beside the backup: the backup alone is not the whole "
        f"database ({why}); it was restored with it",
        {"wal_bytes": ev.data.get("wal_bytes")})]


@registry.on_evidence("virtual_table_damaged", produces=("integrity",))
def virtual_table_damaged(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    module, error = ev.data.get("module"), ev.data.get("error")
    return [Finding("integrity", "error", ev.object,
                    f"the {module} index of {ev.object} fails its own integrity check: {error} (PRAGMA "
                    "integrity_check does not look into it; searches of the restored copy would fail or "
                    "miss rows)", {"module": module, "error": error})]


@registry.on_evidence("sqlite_unopenable", produces=("restore_errors",))
def sqlite_unopenable(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    error = ev.data.get("error")
    return [Finding("restore_errors", "error", ev.object,
                    f"the backup does not open as a SQLite database: {error}", {"error": error})]


def compare_sqlite(reference: Manifest, restored: Manifest) -> list[Finding]:
    """The SQLite-only comparisons of two manifests (empty unless both are SQLite manifests)."""
    if reference.engine != "sqlite" or restored.engine != "sqlite":
        return []
    ref_header = reference.facts.get("header") or {}
    res_header = restored.facts.get("header") or {}
    return compare_header(ref_header, res_header)


def self_check_findings(
    facts: Mapping[str, Any],
    fk_orphans: Mapping[str, Mapping[str, Any]],
    *,
    open_error: str | None = None,
    open_error_reported: bool = False,
    reference_fk_orphans: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """Findings from a restored copy's own facts: integrity_check, read errors, FK orphans.

    ``open_error``: why the file did not open as a database (``Manifest.open_error``), None when it did.
    ``open_error_reported``: the restore already reported that the file does not open (a
    ``restore_errors`` finding), so that is not reported a second time.
    ``reference_fk_orphans``: the reference's orphan counts (None: no reference). Orphans the
    reference has as many of are inherited (a warning that says so); more than the reference are
    ``compare_fk_orphans``'s error and not repeated here; with no reference the warning says that
    it cannot tell.
    """
    findings: list[Finding] = []
    if open_error:
        if not open_error_reported:
            findings.append(Finding(
                "integrity", "error", "database",
                f"the restored file cannot be used as a SQLite database: {open_error}",
                {"error": open_error},
            ))
        return findings
    integrity = facts.get("integrity_check")
    problems = [] if integrity is None or list(integrity) == ["ok"] else [str(x) for x in integrity]
    if facts.get("integrity_note"):
        findings.append(Finding("integrity", "warning", "database", f"PRAGMA integrity_check: {facts['integrity_note']}",
                                {"note": facts["integrity_note"]}))
    read_errors = dict(sorted((facts.get("read_errors") or {}).items()))
    if problems or read_errors:
        if problems:
            more = "+" if facts.get("integrity_truncated") else ""
            message = f"PRAGMA integrity_check found {len(problems)}{more} problem(s), first: {problems[0]}"
        else:
            message = "PRAGMA integrity_check passed, but tables could not be read to the end"
        if read_errors:
            message += "; unreadable: " + ", ".join(f"{k} ({v})" for k, v in list(read_errors.items())[:3])
        details: dict[str, Any] = {"problems": problems[:MAX_LISTED]}
        if read_errors:
            details["read_errors"] = read_errors
        findings.append(Finding("integrity", "error", "database", message, details))
    for name, state in sorted(fk_orphans.items()):
        if state.get("error"):
            findings.append(Finding(
                "fk_orphans", "warning", name,
                f"foreign key {name} of {state.get('table')} cannot be checked: {state['error']} (SQLite "
                "cannot enforce it either: the parent table is missing, or its referenced columns are no "
                "PRIMARY KEY or UNIQUE)", {"error": state["error"], "table": state.get("table")}))
            continue
        n = int(state.get("orphans") or 0)
        if n <= 0:
            continue
        if reference_fk_orphans is None:
            why = ("cannot tell whether the source had them too: there is no reference (give --manifest or "
                   "--against to tell)")
        else:
            expected = int((reference_fk_orphans.get(name) or {}).get("orphans") or 0)
            if n > expected:
                continue  # compare_fk_orphans: an error, the backup added them
            why = f"inherited from the source, which has {expected}: the restored copy is as the source"
        findings.append(Finding(
            "fk_orphans", "warning", name,
            f"foreign key {name}: {n} row(s) of {state.get('table')} reference a missing parent in "
            f"{state.get('parent')} (SQLite does not enforce foreign keys by default); {why}",
            {"orphans": n, "table": state.get("table"), "parent": state.get("parent"),
             "rowids": list(state.get("rowids") or [])[:MAX_LISTED]},
        ))
    return findings
