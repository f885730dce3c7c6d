"""Every finding comes from a check registered in ``checks/`` (issue 13): the registry covers every
check id and every kind of evidence, ``Finding`` is made nowhere else, engines do not import checks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from restorecheck.checks import registry
from restorecheck.checks.compare import compare_manifests
from restorecheck.checks.registry import CheckContext
from restorecheck.evidence import EVIDENCE_KINDS, Evidence
from restorecheck.model import CHECK_IDS, Finding, Manifest

PACKAGE = Path(registry.__file__).resolve().parents[1]  # restorecheck/
# where a Finding may be constructed outside checks/: none. model.Finding.from_dict builds one from
# a report's JSON with cls(...), which is reading a finding, not making one.
ALLOWED_OUTSIDE_CHECKS: frozenset[str] = frozenset()


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_registry_covers_every_check_id() -> None:
    produced = {c for check in registry.checks() for c in check.produces}
    produced |= {c for judge in registry.evidence_checks().values() for c in judge.produces}
    assert sorted(set(CHECK_IDS) - produced) == []
    assert produced <= set(CHECK_IDS)


def test_every_kind_of_evidence_has_its_check() -> None:
    assert sorted(registry.evidence_checks()) == sorted(EVIDENCE_KINDS)


def test_findings_are_made_only_in_checks() -> None:
    made = []
    for path in _modules():
        rel = path.relative_to(PACKAGE.parent).as_posix()
        if rel.startswith("restorecheck/checks/") or rel in ALLOWED_OUTSIDE_CHECKS:
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.Call) and (
                    (isinstance(node.func, ast.Name) and node.func.id == "Finding")
                    or (isinstance(node.func, ast.Attribute) and node.func.attr == "Finding")):
                made.append(f"{rel}:{node.lineno}")
    assert made == [], "a Finding is made outside restorecheck/checks/: record Evidence and judge it there"


def test_engines_and_sources_do_not_import_checks() -> None:
    wrong = []
    for path in _modules():
        rel = path.relative_to(PACKAGE.parent).as_posix()
        if not rel.startswith(("restorecheck/engines/", "restorecheck/provisioners/", "restorecheck/sources.py",
                               "restorecheck/model.py", "restorecheck/evidence.py")):
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            wrong += [f"{rel}:{node.lineno} {n}" for n in names if n.startswith("restorecheck.checks")]
    assert wrong == []


def test_checks_run_in_a_stable_order_and_by_engine() -> None:
    compare = [c.name for c in registry.checks("compare", "sqlite")]
    assert compare == ["tables", "sequences", "fk_orphans", "large_objects", "schema", "sqlite_header",
                       "database_facts", "database_properties"]
    assert "sqlite_header" not in [c.name for c in registry.checks("compare", "postgresql")]
    assert [c.name for c in registry.checks("self", "postgresql")] == ["postgres_self"]
    assert [c.name for c in registry.checks("self", "sqlite")] == ["sqlite_self"]
    names = [c.name for c in registry.checks()]
    assert len(names) == len(set(names))


def test_engine_specific_compare_checks_need_both_manifests_of_that_engine() -> None:
    a = Manifest(engine="sqlite", database="a", facts={"header": {"user_version": 1}})
    b = Manifest(engine="sqlite", database="b", facts={"header": {"user_version": 2}})
    assert [f.check for f in compare_manifests(a, b)[1]] == ["header"]
    pg = Manifest(engine="postgresql", database="b", facts={"header": {"user_version": 2}})
    assert compare_manifests(a, pg)[1] == []


def test_evidence_is_judged_in_the_order_observed() -> None:
    found = registry.convert([
        Evidence("sandbox_missing", "x.dump", {"note": "no sandbox", "sandbox": "none"}),
        Evidence("tool_errors", "psql", {"tool": "psql", "returncode": 3, "errors": [
            {"message": "permission denied for schema public", "context": "line 4"}]}),
        Evidence("restore_role", "x.dump", {"role": "r1", "password_changed": False, "roles_not_granted": []}),
    ])
    assert [(f.check, f.severity, f.object) for f in found] == [
        ("restore_errors", "warning", "x.dump"), ("restore_errors", "error", "line 4"),
        ("restore_errors", "error", "x.dump")]
    assert "1 statement(s) needing more rights failed" in found[-1].message  # counts the ones before it


def test_a_check_may_only_report_the_ids_it_declares() -> None:
    @registry.register("test_undeclared", produces=("rto",), phase="restore", engines=("test-engine",))
    def undeclared(ctx: CheckContext) -> list[Finding]:
        return [Finding("schema", "error", "x", "y")]

    try:
        with pytest.raises(RuntimeError, match="declares only"):
            registry.run("restore", CheckContext("test-engine"))
    finally:
        registry._CHECKS.pop("test_undeclared")


def test_unknown_evidence_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown evidence kind"):
        Evidence("no_such_kind", "x")  # type: ignore[arg-type]


def test_rto_and_no_reference() -> None:
    ctx = CheckContext("postgresql", artifact_name="x.dump", restore_seconds=2.5, max_restore_seconds=2)
    [rto] = registry.run("restore", ctx)
    assert (rto.check, rto.severity, rto.object) == ("rto", "error", "x.dump")
    assert registry.run("restore", CheckContext("postgresql", restore_seconds=1.5, max_restore_seconds=2)) == []
    assert registry.run("restore", CheckContext("postgresql", restore_seconds=9.0)) == []
    [none] = registry.run("reference", ctx)
    assert (none.check, none.severity) == ("no_reference", "warning")
    assert registry.run("reference", CheckContext("postgresql", reference=Manifest("postgresql", "a"))) == []


def test_a_sqlite_copy_that_does_not_open_is_an_integrity_error_once() -> None:
    """The restored manifest's open_error (a typed field) reaches the SQLite self-check; when the
    restore already said the copy does not open, it is not said twice."""
    restored = Manifest("sqlite", "copy.db", open_error="file is not a database")
    [found] = registry.run("self", CheckContext("sqlite", restored=restored))
    assert (found.check, found.severity) == ("integrity", "error") and "file is not a database" in found.message
    said = Evidence("sqlite_unopenable", "copy.db", {"error": "file is not a database"})
    assert registry.run("self", CheckContext("sqlite", restored=restored, evidence=(said,))) == []
    assert registry.run("self", CheckContext("sqlite", restored=Manifest("sqlite", "copy.db"))) == []
