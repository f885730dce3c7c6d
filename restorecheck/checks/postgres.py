"""Checks of a restored PostgreSQL copy that its own manifest answers (with the reference deciding
whether a condition was inherited or introduced): pure functions, like the rest of ``checks/``."""

from __future__ import annotations

from restorecheck.checks import registry
from restorecheck.checks.compare import fk_self_checks, sequence_self_checks
from restorecheck.checks.registry import CheckContext
from restorecheck.model import Finding, Manifest


def self_checks_postgres(manifest: Manifest, reference: Manifest | None = None) -> list[Finding]:
    """What the restored copy says about itself: sequences behind their column, orphans on validated
    FKs, RLS. ``reference``: where it shows the same condition, it was inherited from the source
    (a warning); where it does not, the backup or the restore introduced it (an error)."""
    findings = (sequence_self_checks(manifest.sequences, None if reference is None else reference.sequences)
                + fk_self_checks(manifest.fk_orphans, None if reference is None else reference.fk_orphans))
    for t in manifest.tables:
        if t.extra.get("row_security"):
            findings.append(Finding("row_security", "warning", t.name, t.note or "row-level security applies"))
    return findings


@registry.register("postgres_self", produces=("sequence", "fk_orphans", "row_security"), phase="self",
                   engines=("postgresql",))
def check_self(ctx: CheckContext) -> list[Finding]:
    assert ctx.restored is not None
    return self_checks_postgres(ctx.restored, ctx.reference)
