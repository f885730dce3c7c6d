"""What each check id means and what to do about a finding of it, in one place.

The HTML report (``html_report.py``) shows this beside every group of findings; the SPEC lists the
ids. ``tests/unit/test_html_report.py`` holds every id of ``model.CHECK_IDS`` to having an entry.
"""

from __future__ import annotations

from typing import NamedTuple

from restorecheck.model import CheckId


class Explanation(NamedTuple):
    title: str
    meaning: str
    todo: str


CHECK_HELP: dict[CheckId, Explanation] = {
    "restore_errors": Explanation(
        "The restore tool reported errors",
        "pg_restore or psql printed errors while restoring: some objects or rows may be missing from "
        "the restored copy.",
        "Read the quoted error lines; restore the backup by hand on a scratch server to see the object "
        "that failed, then fix what it needs (role, extension, tablespace) or the backup job."),
    "table_missing": Explanation(
        "A table of the source is missing after the restore",
        "The reference lists a table that the restored copy does not have: restoring this backup "
        "would lose it.",
        "Check the backup job's options (--table, --schema, --exclude-*) and the restore errors; take "
        "a new backup and verify it."),
    "table_extra": Explanation(
        "The restored copy has a table the reference lacks",
        "Usually harmless (a table created after the reference was taken), but it means the backup "
        "and the reference are not of the same moment.",
        "Take the manifest in the same run as the backup ('restorecheck backup' does)."),
    "row_count": Explanation(
        "Row counts differ",
        "The restored table does not hold the rows the reference counted: rows were lost or added "
        "between the backup and its reference.",
        "Look at the differing key ranges below; compare the backup's time with the reference's and "
        "with the source's writes. A loss of rows is a backup you cannot rely on."),
    "checksum": Explanation(
        "Table content differs",
        "Same rows counted, different content: values changed, or rows were replaced, between the "
        "reference and the restored copy.",
        "The key ranges shown localise the rows; 'restorecheck compare' on the two databases lists "
        "the differing keys."),
    "fk_orphans": Explanation(
        "Rows refer to rows that do not exist",
        "Foreign-key references point at missing parents in the restored copy (constraints that were "
        "not restored, or data restored without its parents).",
        "Check the restore errors for constraints that failed; restore with the parent tables."),
    "sequence": Explanation(
        "A sequence is behind its table",
        "After a failover to this backup, new rows would get ids that already exist.",
        "Make sure the backup includes sequence values (pg_dump does unless --data-only of a table "
        "subset); setval() the sequence after a partial restore."),
    "schema": Explanation(
        "The schema differs",
        "Columns, constraints, indexes, views or functions differ from the reference.",
        "Read the object named; a missing index or constraint is often a restore error further up."),
    "large_objects": Explanation(
        "Large objects differ",
        "Large objects (pg_largeobject) are missing or different in the restored copy.",
        "pg_dump includes large objects unless --schema/--table is used: add --large-objects (-b)."),
    "integrity": Explanation(
        "The database file is damaged",
        "SQLite's integrity check found corruption in the restored copy.",
        "Take a new backup with the online backup API ('restorecheck backup') instead of copying the "
        "file while it is written."),
    "no_reference": Explanation(
        "Nothing to compare with",
        "No manifest or live source was given: counts and checksums were not compared, only the "
        "checks that need no reference ran.",
        "Keep the manifest beside the backup (restorecheck backup writes one), or pass --manifest or "
        "--against."),
    "backup_file": Explanation(
        "The backup file itself is damaged",
        "The file is empty, cut short, its layers (compression, encryption) do not read, or its "
        "sha256 is not the one recorded.",
        "Check the transfer and the storage of the backup; take a new one and verify it."),
    "rto": Explanation(
        "The restore was slower than the RTO target",
        "Restoring took longer than --max-restore-seconds: a real recovery would miss its target.",
        "Restore with more jobs (--jobs), on faster storage, or revise the target with the people who "
        "set it."),
    "unreadable": Explanation(
        "A relation could not be read",
        "A foreign table, an unpopulated materialized view or a relation without privileges was not "
        "fingerprinted.",
        "Usually expected; refresh the view or grant the reading role access if it should be "
        "checked."),
    "row_security": Explanation(
        "Row-level security hides rows",
        "The role that read the data is subject to RLS: counts and checksums may describe only the "
        "rows it may see.",
        "Read as a role with BYPASSRLS, or the table's owner."),
    "header": Explanation(
        "A SQLite header value changed",
        "Page size, encoding, user_version or application_id differ: applications may treat the "
        "copy differently.",
        "Back up with the online backup API, which keeps the header."),
    "database": Explanation(
        "Database-level properties were not restored",
        "The locale, encoding, settings, comment or grants of the database differ from the "
        "source's.",
        "Create the target database with the source's properties, or restore with --create."),
    "restore_timeout": Explanation(
        "The restore was killed at its deadline",
        "The restore tool ran past --restore-timeout and was stopped: the copy is incomplete.",
        "Raise --restore-timeout, or find what made the restore slow (locks, a huge index)."),
    "drift": Explanation(
        "A table shrank between nights",
        "Compared with the job's last verified run, a table vanished, emptied or lost more than the "
        "allowed share of its rows.",
        "Confirm the deletion was intended (a purge, a migration); if not, the source lost data and "
        "the earlier backup is the one to keep."),
    "rto_trend": Explanation(
        "The restore is getting slower",
        "This restore took much longer than the recent median of the job.",
        "Look at the growth of the data and at the restore target's load; plan before the RTO "
        "target is missed."),
    "backup_size": Explanation(
        "The backup shrank",
        "The backup is much smaller than the last verified one.",
        "Check that the backup job still covers every schema and table, and that the source did not "
        "lose data."),
}


def explain(check: str) -> Explanation:
    """The explanation of ``check``; a generic one for an id this version does not know."""
    return CHECK_HELP.get(check, Explanation(check, "A finding of the check " + check + ".",  # type: ignore[call-overload]
                                             "See the README's list of checks."))
