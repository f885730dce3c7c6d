"""Reference manifest x restored manifest -> per-table results and findings (engine-agnostic).

Nothing here talks to a database: both sides are ``Manifest`` values, whichever engine made them.
The checks only use the generic parts of a manifest (``tables``, ``sequences``, ``fk_orphans``,
``large_objects``, ``schema``) and tolerate keys that an engine does not fill in.

Conventions the engines follow so that the messages read well:

- ``schema`` is ``{section: {qualified_name: {...}}}`` with sections such as ``tables``,
  ``indexes``, ``views``, ``functions`` (plural nouns); a table's entry may hold ``columns``
  (``{name: {"type": ..., ...}}``), ``constraints``, ``privileges`` (a sorted list of
  ``grantee=PRIV`` strings) and so on. Any other shape is still compared, with generic messages.
- ``sequences[name]`` may hold ``last_value``, ``is_called``, ``increment``, ``owned_by`` and
  ``column_max`` (the maximum of the owned column).
- ``fk_orphans[name]`` holds ``orphans`` and ``validated``.
- ``large_objects`` holds ``count``, ``digest`` and ``objects`` (``{oid: {"md5": ..., "owner": ...}}``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from restorecheck.checks import registry
from restorecheck.checks.registry import CheckContext
from restorecheck.model import (
    Finding,
    Manifest,
    RangeChecksum,
    Severity,
    TableFingerprint,
    TableResult,
    same_boundaries,
)

# Kinds whose content a restore recomputes instead of copying (PITFALLS D1): a content
# difference there is a warning, not an error.
RECOMPUTED_KINDS = frozenset({"matview"})


def compare_manifests(
    reference: Manifest,
    restored: Manifest,
    *,
    live_reference: bool = False,
    max_keys: int = 20,
) -> tuple[list[TableResult], list[Finding]]:
    """Compare what ``restored`` holds with what ``reference`` says it should hold: the per-table
    results and the findings of every check of the ``compare`` phase (``checks.registry``) that
    applies to the engine (the engine-specific ones only when both manifests are of that engine).

    ``live_reference``: the reference was read from a live database, whose sequences are not
    MVCC (PITFALLS F2): the restored state must then be at least the reference's, instead of
    equal to it.
    """
    engine = reference.engine if reference.engine == restored.engine else ""
    ctx = CheckContext(engine, reference, restored, live_reference=live_reference, max_keys=max_keys)
    findings = registry.run("compare", ctx)
    return _table_comparison(ctx)[0], findings


def _table_comparison(ctx: CheckContext) -> tuple[list[TableResult], list[Finding]]:
    if "tables" not in ctx.memo:
        assert ctx.reference is not None and ctx.restored is not None
        ctx.memo["tables"] = compare_tables(ctx.reference.tables, ctx.restored.tables, max_keys=ctx.max_keys)
    results, findings = ctx.memo["tables"]
    return results, findings


def _both(ctx: CheckContext) -> tuple[Manifest, Manifest]:
    assert ctx.reference is not None and ctx.restored is not None
    return ctx.reference, ctx.restored


@registry.register("tables", produces=("table_missing", "table_extra", "row_count", "checksum", "unreadable"),
                   phase="compare", order=100)
def check_tables(ctx: CheckContext) -> list[Finding]:
    """Tables missing or extra; row counts and checksums (per key range) that differ."""
    return list(_table_comparison(ctx)[1])


@registry.register("sequences", produces=("sequence",), phase="compare", order=200)
def check_sequences(ctx: CheckContext) -> list[Finding]:
    ref, res = _both(ctx)
    return compare_sequences(ref.sequences, res.sequences, live_reference=ctx.live_reference)


@registry.register("fk_orphans", produces=("fk_orphans",), phase="compare", order=300)
def check_fk_orphans(ctx: CheckContext) -> list[Finding]:
    ref, res = _both(ctx)
    return compare_fk_orphans(ref.fk_orphans, res.fk_orphans)


@registry.register("large_objects", produces=("large_objects",), phase="compare", order=400)
def check_large_objects(ctx: CheckContext) -> list[Finding]:
    ref, res = _both(ctx)
    return compare_large_objects(ref.large_objects, res.large_objects, max_keys=ctx.max_keys)


@registry.register("schema", produces=("schema",), phase="compare", order=500)
def check_schema(ctx: CheckContext) -> list[Finding]:
    ref, res = _both(ctx)
    skip = {t.name for t in ref.tables} ^ {t.name for t in res.tables}  # reported as table_missing/extra
    return compare_schema(ref.schema, res.schema, reported_tables=skip)


@registry.register("database_facts", produces=("schema", "database"), phase="compare", order=700)
def check_database_facts(ctx: CheckContext) -> list[Finding]:
    ref, res = _both(ctx)
    return compare_database_facts(ref.facts, res.facts)


@registry.register("database_properties", produces=("database",), phase="compare", order=800)
def check_database_properties(ctx: CheckContext) -> list[Finding]:
    ref, res = _both(ctx)
    if ref.database_properties is None or res.database_properties is None:
        return []
    return compare_database_properties(ref.database_properties, res.database_properties)


# facts of the database as a whole that a restore should keep: a different encoding is worth a warning
DATABASE_FACTS = ("encoding",)
# the locale (PITFALLS E4): a different collation changes sort order, text range partitions and text
# comparisons, not the rows; restorecheck creates the throwaway database with the reference's locale
# where the target has it, so a difference says the target lacks it: one informational finding
LOCALE_FACTS = ("lc_collate", "lc_ctype", "locale_provider", "icu_locale", "icu_rules", "builtin_locale")


def compare_database_facts(reference: Mapping[str, Any], restored: Mapping[str, Any]) -> list[Finding]:
    findings = []
    for key in DATABASE_FACTS:
        if key in reference and key in restored and reference[key] != restored[key]:
            findings.append(Finding("schema", "warning", "database",
                                    f"database {key}: {reference[key]} -> {restored[key]}",
                                    {"expected": reference[key], "restored": restored[key]}))
    differ = [k for k in LOCALE_FACTS
              if reference.get(k) is not None and restored.get(k) is not None and reference[k] != restored[k]]
    if differ:
        changes = ", ".join(f"{k} {reference[k]} -> {restored[k]}" for k in differ)
        findings.append(Finding(
            "database", "info", "database",
            f"database locale differs from the reference's: {changes}; text sorts and compares differently "
            "there, row counts and checksums do not depend on it",
            {"locale_difference": True, "expected": {k: reference[k] for k in differ},
             "restored": {k: restored[k] for k in differ}}))
    return findings


# Severity per kind of database property (README, "Database properties"): settings change what
# queries return (search_path picks the tables a name means, TimeZone how timestamps print) and
# privileges decide who may connect at all: errors. The owner, connection limit and default
# tablespace change administration and placement, not results: warnings. A comment changes nothing
# an application sees: informational.
PROPERTY_SEVERITY: dict[str, Severity] = {
    "settings": "error", "role_settings": "error", "privileges": "error",
    "owner": "warning", "connection_limit": "warning", "tablespace": "warning", "comment": "info",
}
_KEEP_THEM = ("keep them with pg_dump --create (restorecheck backup uses it; archives hold them either way "
              "and pg_restore --create restores them)")


def _setting_norm(value: Any) -> str:
    return ",".join(part.strip().strip('"') for part in str(value).split(","))


def compare_database_properties(reference: Mapping[str, Any], restored: Mapping[str, Any]) -> list[Finding]:
    """The database's own properties (settings, per-role settings, comment, owner, privileges,
    connection limit, default tablespace): one finding per property lost or changed.

    ``restored`` is what the restored copy got (``carried``: whether the backup held any database
    property at all; values it carried but that could not be applied on this target count as
    restored, and the restore reported them)."""
    carried = bool(restored.get("carried", True))
    how = (f"the backup carries no database properties (a plain dump made without --create): {_KEEP_THEM}"
           if not carried else f"the backup does not carry it: {_KEEP_THEM}")
    out: list[Finding] = []

    def add(kind: str, message: str, details: Mapping[str, Any]) -> None:
        out.append(Finding("database", PROPERTY_SEVERITY[kind], "database", message,
                           {"property": kind, **details}))

    ref_s, res_s = reference.get("settings") or {}, restored.get("settings") or {}
    for name in sorted(set(ref_s) | set(res_s)):
        a, b = ref_s.get(name), res_s.get(name)
        if b is None:
            add("settings", f"database setting {name}={a} was not restored; {how}", {"setting": name, "expected": a})
        elif a is None:
            add("settings", f"database setting {name}={b} is in the restored copy but not in the reference",
                {"setting": name, "restored": b})
        elif _setting_norm(a) != _setting_norm(b):
            add("settings", f"database setting {name}: {a} -> {b}", {"setting": name, "expected": a, "restored": b})
    ref_r, res_r = reference.get("role_settings") or {}, restored.get("role_settings") or {}
    for role in sorted(set(ref_r) | set(res_r)):
        ra, rb = ref_r.get(role) or {}, res_r.get(role) or {}
        for name in sorted(set(ra) | set(rb)):
            a, b = ra.get(name), rb.get(name)
            what = f"setting of role {role} in the database (ALTER ROLE ... IN DATABASE) {name}"
            d = {"role": role, "setting": name}
            if b is None:
                add("role_settings", f"{what}={a} was not restored; {how}", {**d, "expected": a})
            elif a is None:
                add("role_settings", f"{what}={b} is in the restored copy but not in the reference",
                    {**d, "restored": b})
            elif _setting_norm(a) != _setting_norm(b):
                add("role_settings", f"{what}: {a} -> {b}", {**d, "expected": a, "restored": b})
    a_p, b_p = set(reference.get("privileges") or ()), set(restored.get("privileges") or ())
    if a_p != b_p:
        lost, extra = sorted(a_p - b_p), sorted(b_p - a_p)
        parts = ([f"lost {', '.join(lost)}"] if lost else []) + ([f"gained {', '.join(extra)}"] if extra else [])
        add("privileges", f"database privileges differ ({'; '.join(parts)}; OWNER is the database's owner)"
            + (f"; {how}" if not carried else ""), {"lost": lost, "extra": extra})
    if "owner" in reference and reference.get("owner") != restored.get("owner"):
        if restored.get("owner") is None and reference.get("owner_is_bootstrap_superuser"):
            # the cluster's superuser owned it: a restore run by the superuser gives the same owner
            out.append(Finding("database", "info", "database",
                               f"database owner {reference['owner']} (the superuser) is not in the backup; {how}",
                               {"property": "owner", "expected": reference["owner"]}))
        elif restored.get("owner") is None:
            add("owner", f"database owner {reference['owner']} was not restored; {how}",
                {"expected": reference["owner"]})
        else:
            add("owner", f"database owner: {reference['owner']} -> {restored['owner']}",
                {"expected": reference["owner"], "restored": restored["owner"]})
    a_c, b_c = reference.get("comment"), restored.get("comment")
    if a_c != b_c:
        if b_c is None:
            add("comment", f"database comment {_quoted(a_c)} was not restored; {how}", {"expected": a_c})
        else:
            add("comment", f"database comment: {_quoted(a_c)} -> {_quoted(b_c)}", {"expected": a_c, "restored": b_c})
    a_l, b_l = reference.get("connection_limit", -1), restored.get("connection_limit", -1)
    if a_l is not None and a_l != b_l:
        if b_l in (-1, None):
            add("connection_limit", f"database connection limit {a_l} was not restored; {how}", {"expected": a_l})
        else:
            add("connection_limit", f"database connection limit: {a_l} -> {b_l}", {"expected": a_l, "restored": b_l})
    a_t, b_t = reference.get("tablespace") or "pg_default", restored.get("tablespace") or "pg_default"
    if a_t != b_t:
        add("tablespace", f"database default tablespace: {a_t} -> {b_t}"
            + (f"; {how}" if not carried else ""), {"expected": a_t, "restored": b_t})
    return out


def _quoted(v: Any) -> str:
    return "none" if v is None else json.dumps(_short(v), ensure_ascii=False)


def locale_of(facts: Mapping[str, Any]) -> dict[str, str]:
    """The encoding and locale facts of a manifest (what the throwaway database should get)."""
    return {k: str(facts[k]) for k in ("encoding", *LOCALE_FACTS) if facts.get(k) is not None}


# --- tables ---------------------------------------------------------------------------------------


def compare_tables(
    reference: Iterable[TableFingerprint],
    restored: Iterable[TableFingerprint],
    *,
    max_keys: int = 20,
) -> tuple[list[TableResult], list[Finding]]:
    ref = {t.name: t for t in reference}
    res = {t.name: t for t in restored}
    results: list[TableResult] = []
    findings: list[Finding] = []
    for name in sorted(ref):
        a = ref[name]
        b = res.get(name)
        if b is None:
            results.append(TableResult(name, a.rows, None, a.checksum, None, False))
            findings.append(Finding("table_missing", "error", name,
                                    f"{_kind_word(a)} {name} is missing in the restored copy",
                                    {"rows_expected": a.rows}))
            continue
        match, table_findings = _compare_one(a, b, max_keys=max_keys)
        results.append(TableResult(name, a.rows, b.rows, a.checksum, b.checksum, match))
        findings += table_findings
    for name in sorted(set(res) - set(ref)):
        b = res[name]
        results.append(TableResult(name, None, b.rows, None, b.checksum, False))
        findings.append(Finding("table_extra", "error", name,
                                f"{_kind_word(b)} {name} is in the restored copy but not in the reference",
                                {"rows_restored": b.rows}))
    return _rerouted_partitions(ref, res, results, findings)


def _rerouted_partitions(ref: Mapping[str, TableFingerprint], res: Mapping[str, TableFingerprint],
                         results: list[TableResult], findings: list[Finding]
                         ) -> tuple[list[TableResult], list[Finding]]:
    """Rows that moved between the partitions of a table whose total content is equal: warnings.

    The restore routes rows again when pg_dump loads a table through its root (it does so by
    itself for hash partitioning on an enum, whose hashes follow the enum's OIDs, PITFALLS E5).
    The partitioned table holds the same rows (equal count and checksum, summed over its leaves)
    but a leaf gains what another loses: a warning, as PITFALLS E5 asks. A row changed or lost
    changes the partitioned table too, and stays an error."""
    moved: dict[str, str] = {}
    for name, a in ref.items():
        b = res.get(name)
        if (b is None or a.kind != "partitioned" or not a.extra.get("derived") or a.rows is None
                or a.checksum is None or (a.rows, a.checksum) != (b.rows, b.checksum)):
            continue
        leaves = set(a.extra.get("partitions") or ())
        if leaves and leaves == set(b.extra.get("partitions") or ()):
            for leaf in leaves:
                moved.setdefault(leaf, name)
    if not moved:
        return results, findings
    out: list[Finding] = []
    for f in findings:
        if f.severity == "error" and f.check in ("row_count", "checksum") and f.object in moved:
            f = Finding(f.check, "warning", f.object,
                        f"{f.message} (rows re-routed between partitions on restore: the partitioned table "
                        f"{moved[f.object]} has the same rows)", f.details)
        out.append(f)
    rerouted = {f.object for f in out if f.object in moved}
    results = [dataclasses.replace(r, match=True) if r.name in rerouted else r for r in results]
    return results, out


def _kind_word(t: TableFingerprint) -> str:
    return {"matview": "materialized view", "foreign": "foreign table",
            "partitioned": "partitioned table"}.get(t.kind, "table")


def _compare_one(a: TableFingerprint, b: TableFingerprint, *, max_keys: int) -> tuple[bool, list[Finding]]:
    name = a.name
    recomputed = a.kind in RECOMPUTED_KINDS or b.kind in RECOMPUTED_KINDS
    severity: Any = "warning" if recomputed else "error"
    why_warning = (" (a restore recomputes materialized views from the restored tables, so this is a "
                   "warning: refresh the source's view to compare)") if recomputed else ""
    if not a.readable or not b.readable:
        if a.readable and not b.readable:
            return False, [Finding("unreadable", severity, name,
                                   f"{name} could not be read in the restored copy: {b.note or 'unreadable'}",
                                   {"note_restored": b.note})]
        if b.readable and not a.readable:
            return False, [Finding("unreadable", "warning", name,
                                   f"{name} was not readable in the reference ({a.note or 'unreadable'}), "
                                   "so its content was not compared", {"note_expected": a.note})]
        return True, []  # unreadable on both sides (a foreign table): nothing to compare
    if a.rows is None or b.rows is None:
        return True, []  # schema-only fingerprints
    if a.extra.get("derived") and b.extra.get("derived"):
        # a partitioned parent's numbers are the sums of its partitions, which carry the findings
        return (a.rows, a.checksum) == (b.rows, b.checksum), []
    details: dict[str, Any] = {}
    if a.rows != b.rows:
        details.update(_range_details(a, b, max_keys=max_keys))
        diff = b.rows - a.rows
        return False, [Finding("row_count", severity, name,
                               f"expected {a.rows} rows, restored {b.rows} ({diff:+d}){why_warning}",
                               {"rows_expected": a.rows, "rows_restored": b.rows, **details})]
    if a.checksum is None or b.checksum is None:
        return True, []
    if a.checksum_mode != b.checksum_mode:
        return False, [Finding("checksum", "warning", name,
                               f"checksums of {name} were made in different modes "
                               f"({a.checksum_mode or '?'} vs {b.checksum_mode or '?'}) and were not compared; "
                               "fingerprint both sides in the same mode",
                               {"mode_expected": a.checksum_mode, "mode_restored": b.checksum_mode})]
    if a.checksum == b.checksum:
        return True, []
    details.update(_range_details(a, b, max_keys=max_keys))
    msg = f"content differs: same {a.rows} rows, different checksum{why_warning}"
    if details.get("ranges"):
        n = details.get("ranges_differing", len(details["ranges"]))
        msg = f"content differs in {n} of {len(a.ranges)} key ranges: same row count, different checksum{why_warning}"
    return False, [Finding("checksum", severity, name, msg,
                           {"checksum_expected": a.checksum, "checksum_restored": b.checksum,
                            "checksum_mode": a.checksum_mode, **details})]


def differing_ranges(a: Sequence[RangeChecksum], b: Sequence[RangeChecksum]) -> list[tuple[RangeChecksum, RangeChecksum]]:
    """The pairs of ranges whose row counts or checksums differ (same boundaries assumed)."""
    return [(x, y) for x, y in zip(a, b, strict=True) if x.rows != y.rows or x.checksum != y.checksum]


def _range_details(a: TableFingerprint, b: TableFingerprint, *, max_keys: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not a.key:
        out["localisable"] = False
        out["note"] = "no primary key: the differing rows cannot be localised"
        return out
    if a.ranges and b.ranges and same_boundaries(a.ranges, b.ranges):
        diffs = differing_ranges(a.ranges, b.ranges)
        out["key"] = list(a.key)
        out["ranges_differing"] = len(diffs)
        out["ranges"] = [
            {"lower": None if x.lower is None else list(x.lower),
             "upper": None if x.upper is None else list(x.upper),
             "rows_expected": x.rows, "rows_restored": y.rows}
            for x, y in diffs[:max_keys]
        ]
    elif a.ranges or b.ranges:
        out["note"] = "key ranges differ between the two fingerprints: the difference was not narrowed down"
    return out


# --- sequences ------------------------------------------------------------------------------------


def next_value(state: Mapping[str, Any]) -> int | None:
    """The value the next ``nextval`` returns (PITFALLS D9), or None when unknown."""
    last = state.get("last_value")
    if last is None:
        return None
    inc = int(state.get("increment", 1) or 1)
    return int(last) + (inc if state.get("is_called", True) else 0)


def compare_sequences(
    reference: Mapping[str, Mapping[str, Any]],
    restored: Mapping[str, Mapping[str, Any]],
    *,
    live_reference: bool = False,
) -> list[Finding]:
    findings: list[Finding] = []
    for name in sorted(reference):
        a = reference[name]
        b = restored.get(name)
        if b is None:
            findings.append(Finding("sequence", "error", name, f"sequence {name} is missing in the restored copy"))
            continue
        na, nb = next_value(a), next_value(b)
        if na is None or nb is None:
            if (a.get("raw") or b.get("raw")) and a.get("raw") != b.get("raw"):  # SQLite: a seq not an integer
                findings.append(Finding(
                    "sequence", "error", name,
                    f"sequence {name}: {_seq_shown(a)} expected, restored {_seq_shown(b)}",
                    {"raw_expected": a.get("raw"), "raw_restored": b.get("raw"),
                     "last_value_expected": a.get("last_value"), "last_value_restored": b.get("last_value")}))
            continue
        ascending = int(a.get("increment", 1) or 1) > 0
        if live_reference:
            # sequences are not MVCC (PITFALLS F2): a dump taken from a live source may hold values
            # newer than the reference read; the restored copy must not be behind it
            behind = nb < na if ascending else nb > na
            if behind:
                findings.append(Finding(
                    "sequence", "error", name,
                    f"sequence {name}: restored next value {nb} is behind the reference's {na}",
                    {"next_expected_at_least": na, "next_restored": nb}))
            continue
        if (a.get("last_value"), bool(a.get("is_called"))) != (b.get("last_value"), bool(b.get("is_called"))):
            findings.append(Finding(
                "sequence", "error", name,
                f"sequence {name}: next value {na} expected, restored {nb} "
                f"(last_value {a.get('last_value')}/{b.get('last_value')}, "
                f"is_called {a.get('is_called')}/{b.get('is_called')})",
                {"next_expected": na, "next_restored": nb,
                 "last_value_expected": a.get("last_value"), "last_value_restored": b.get("last_value"),
                 "is_called_expected": a.get("is_called"), "is_called_restored": b.get("is_called")}))
    return findings


def _seq_shown(state: Mapping[str, Any]) -> str:
    raw = state.get("raw")
    return f"seq {raw} (type:hex)" if raw else f"last_value {state.get('last_value')}"


def _as_int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None  # a column of another type (numeric 1.5, text): not compared


def behind_by(state: Mapping[str, Any]) -> int | None:
    """How far a sequence is behind the column it feeds: the number of ``nextval`` calls that would
    return a value already in the column (0: not behind), or None when that is unknown (it feeds no
    column, its state or its column could not be read, or a manifest that does not record it)."""
    nv = next_value(state)
    if nv is None or state.get("owned_by") is None or state.get("column_note"):
        return None
    inc = int(state.get("increment", 1) or 1)
    key = "column_max" if inc > 0 else "column_min"
    if key not in state:
        return None
    if state[key] is None:
        return 0  # the column is empty
    edge = _as_int(state[key])
    if edge is None:
        return None
    gap = edge - nv if inc > 0 else nv - edge
    return max(0, gap // abs(inc) + 1)


def _sequence_state_text(state: Mapping[str, Any]) -> str:
    inc = int(state.get("increment", 1) or 1)
    col = str(state.get("owned_by") or "?").rsplit(".", 1)[-1]
    edge = f"max({col}) = {state.get('column_max')}" if inc > 0 else f"min({col}) = {state.get('column_min')}"
    return f"next value {next_value(state)}, {edge}"


def sequence_self_checks(
    sequences: Mapping[str, Mapping[str, Any]],
    reference: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """A sequence whose next value collides with its owned column's maximum (minimum if descending).

    Whether that is the backup's fault depends on the reference (``reference``: its sequence
    states, None when there is no reference):

    - the reference's sequence is behind as far or further: inherited from the source, a warning
      (a database loaded with explicit ids never advanced its sequences; the copy is faithful);
    - the reference's is not behind, or less: the backup or the restore introduced it, an error;
    - no reference, or the reference does not record the sequence's column: a warning that says
      it cannot tell which (pg_dump reads sequences after the data, so a faithful dump of a healthy
      source never has one behind; ``--manifest`` or ``--against`` tells the two apart).
    """
    findings: list[Finding] = []
    for name in sorted(sequences):
        s = sequences[name]
        lag = behind_by(s)
        if not lag:
            continue
        col = str(s["owned_by"])
        inc = int(s.get("increment", 1) or 1)
        what = "descending sequence" if inc < 0 else "sequence"
        head = f"{what} {name} is behind its column {col}: {_sequence_state_text(s)}; the next insert would collide"
        details: dict[str, Any] = {"next_value": next_value(s), "owned_by": col, "behind_by": lag,
                                   "column_max" if inc > 0 else "column_min":
                                       s.get("column_max") if inc > 0 else s.get("column_min")}
        ref = None if reference is None else reference.get(name)
        ref_lag = None if ref is None else behind_by(ref)
        table = col.rsplit(".", 1)[0]
        fix = (f"fix it in the source: SELECT setval('{name}', max({col.rsplit('.', 1)[-1]})) FROM {table}"
               if inc > 0 else "fix it in the source with setval")
        if ref is not None and ref_lag is not None:
            ref_text = _sequence_state_text(ref)
            details.update(reference_next_value=next_value(ref), reference_behind_by=ref_lag)
            if ref_lag == 0:
                findings.append(Finding("sequence", "error", name,
                                        f"{head}; the source's was not behind ({ref_text}): the backup or the "
                                        "restore introduced it", {**details, "inherited": False}))
            elif lag > ref_lag:
                findings.append(Finding("sequence", "error", name,
                                        f"{head}; the source's was behind by less ({ref_text}): the backup or "
                                        "the restore made it worse", {**details, "inherited": False}))
            else:
                findings.append(Finding("sequence", "warning", name,
                                        f"{head}; inherited from the source, whose sequence is behind too "
                                        f"({ref_text}): the restored copy is as the source ({fix})",
                                        {**details, "inherited": True}))
            continue
        why = ("there is no reference" if reference is None
               else "the reference does not record this sequence's column")
        findings.append(Finding("sequence", "warning", name,
                                f"{head}; cannot tell whether it was inherited from the source or introduced "
                                f"by the backup: {why} (give --manifest or --against to tell; a source loaded "
                                "with explicit ids has it behind too)",
                                {**details, "inherited": None}))
    return findings


# --- foreign keys ---------------------------------------------------------------------------------


def compare_fk_orphans(
    reference: Mapping[str, Mapping[str, Any]], restored: Mapping[str, Mapping[str, Any]]
) -> list[Finding]:
    findings: list[Finding] = []
    for name in sorted(restored):
        b = restored[name]
        a = reference.get(name)
        got = b.get("orphans")
        if got is None:
            continue
        expected = 0 if a is None else int(a.get("orphans") or 0)
        if int(got) > expected:
            state = "" if b.get("validated", True) else " (NOT VALID constraint)"
            findings.append(Finding(
                "fk_orphans", "error", name,
                f"foreign key {name}{state}: {got} rows reference a missing parent, the reference had {expected}: "
                f"the backup or the restore introduced {int(got) - expected}",
                {"orphans_expected": expected, "orphans_restored": int(got),
                 "validated": b.get("validated"), "table": b.get("table")}))
    return findings


def fk_self_checks(
    fks: Mapping[str, Mapping[str, Any]],
    reference: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """Orphans on validated foreign keys (NOT VALID ones may have orphans; ``compare_fk_orphans``
    compares their counts with the reference's).

    ``reference``: the reference's orphan counts per foreign key, None when there is no reference.
    As many orphans as the reference or fewer: inherited from the source, a warning. More: the
    backup or the restore added them, and ``compare_fk_orphans`` reports that error (not repeated
    here). No reference: a warning that says it cannot tell which.
    """
    findings: list[Finding] = []
    for name in sorted(fks):
        b = fks[name]
        got = _as_int(b.get("orphans"))
        if not b.get("validated", True) or not got:
            continue
        details = {"orphans": got, "table": b.get("table")}
        head = f"foreign key {name}: {got} rows reference a missing parent"
        if reference is None:
            findings.append(Finding(
                "fk_orphans", "warning", name,
                f"{head}; cannot tell whether the source had them too or the backup introduced them: there is no "
                "reference (give --manifest or --against to tell)", {**details, "inherited": None}))
            continue
        expected = _as_int((reference.get(name) or {}).get("orphans"))
        if expected is not None and got <= expected:
            findings.append(Finding(
                "fk_orphans", "warning", name,
                f"{head}; inherited from the source, which has {expected} (its constraint was bypassed there, "
                "e.g. with session_replication_role = replica or disabled triggers): the restored copy is as "
                "the source", {**details, "orphans_expected": expected, "inherited": True}))
    return findings


_FK_VIOLATION = re.compile(
    r'on table "(?P<table>(?:[^"]|"")+)" violates foreign key constraint "(?P<con>(?:[^"]|"")+)"')


def inherited_restore_errors(findings: Sequence[Finding],
                             reference_fk_orphans: Mapping[str, Mapping[str, Any]]) -> list[Finding]:
    """A foreign key the restore could not re-create because the source's own rows violate it.

    A source whose validated foreign key has orphans (the constraint bypassed there, e.g. with
    ``session_replication_role = replica``) dumps faithfully, but no restore can add the constraint
    back on that data: ``ADD CONSTRAINT`` fails with "violates foreign key constraint". Where the
    reference records orphans under that very key, the error and the constraint missing from the
    restored copy are inherited: warnings that say so. Anything else stays as it was."""
    inherited: dict[tuple[str, str], int] = {}
    out: list[Finding] = []
    for f in findings:
        m = _FK_VIOLATION.search(f.message) if f.check == "restore_errors" and f.severity == "error" else None
        if m is not None:
            table, con = m["table"].replace('""', '"'), m["con"].replace('""', '"')
            hits = [(str(ref.get("table")), n) for key, ref in reference_fk_orphans.items()
                    if ref.get("validated", True) and (n := _as_int(ref.get("orphans")) or 0) > 0
                    and str(ref.get("table", "")).endswith("." + table) and key == f"{ref.get('table')}.{con}"]
            if len(hits) == 1:
                qualified, n = hits[0]
                inherited[(qualified, con)] = n
                f = Finding(f.check, "warning", f.object,
                            f"{f.message} (inherited from the source: {n} rows of {qualified} reference a missing "
                            f"parent there too, under its validated foreign key {con}, so no restore can add the "
                            "constraint back; repair those rows in the source)",
                            {**f.details, "inherited": True, "orphans_expected": n})
        out.append(f)
    if not inherited:
        return out
    result = []
    for f in out:
        path = f.details.get("path") if f.check == "schema" and f.severity == "error" else None
        if (isinstance(path, list) and len(path) == 4 and path[0] == "tables" and path[2] == "constraints"
                and (path[1], path[3]) in inherited and f.details.get("change") == "dictionary_item_removed"):
            f = Finding(f.check, "warning", f.object,
                        f"{f.message} (inherited from the source: its rows violate it, so the restore could not "
                        "add it back; see the restore error)", {**f.details, "inherited": True})
        result.append(f)
    return result


# --- large objects --------------------------------------------------------------------------------


def compare_large_objects(
    reference: Mapping[str, Any] | None, restored: Mapping[str, Any] | None, *, max_keys: int = 20
) -> list[Finding]:
    if reference is None or restored is None:
        return []
    if reference.get("count") == restored.get("count") and reference.get("digest") == restored.get("digest"):
        return []
    a_objs: Mapping[str, Any] = reference.get("objects") or {}
    b_objs: Mapping[str, Any] = restored.get("objects") or {}
    missing = sorted(set(a_objs) - set(b_objs), key=_oid_key)
    extra = sorted(set(b_objs) - set(a_objs), key=_oid_key)
    changed = sorted((o for o in set(a_objs) & set(b_objs) if a_objs[o] != b_objs[o]), key=_oid_key)
    parts = [f"{reference.get('count')} expected, {restored.get('count')} restored"]
    if missing:
        parts.append(f"{len(missing)} missing")
    if extra:
        parts.append(f"{len(extra)} extra")
    if changed:
        parts.append(f"{len(changed)} with different content or owner")
    return [Finding("large_objects", "error", "large objects", "large objects differ: " + ", ".join(parts),
                    {"count_expected": reference.get("count"), "count_restored": restored.get("count"),
                     "missing": missing[:max_keys], "extra": extra[:max_keys], "changed": changed[:max_keys]})]


def _oid_key(o: str) -> tuple[int, str]:
    return (int(o), o) if str(o).isdigit() else (0, str(o))


# --- schema ---------------------------------------------------------------------------------------

_SINGULAR = {
    "tables": "table", "indexes": "index", "views": "view", "matviews": "materialized view",
    "sequences": "sequence", "functions": "function", "triggers": "trigger", "types": "type",
    "extensions": "extension", "policies": "policy", "schemas": "schema", "columns": "column",
    "constraints": "constraint", "comments": "comment", "event_triggers": "event trigger",
    "rules": "rule", "publications": "publication", "foreign_servers": "foreign server",
    "default_privileges": "default privileges", "statistics": "extended statistics",
    "pragmas": "pragma", "header": "header value", "objects": "object",
}


def _singular(section: str) -> str:
    return _SINGULAR.get(section, section[:-1] if section.endswith("s") else section)


def compare_schema(
    reference: Mapping[str, Any], restored: Mapping[str, Any], *, reported_tables: Iterable[str] = ()
) -> list[Finding]:
    """Schema differences as ``schema`` findings with messages for humans (deepdiff underneath)."""
    if not reference and not restored:
        return []
    from deepdiff import DeepDiff

    skip = set(reported_tables)
    findings: list[Finding] = []
    restored = _without_template_public(reference, restored, findings)
    reference, restored = _without_uncompared(reference), _without_uncompared(restored)
    reference, restored = _without_derived_constraints(reference, restored)
    # lists compare as sets (privileges, roles): engines encode ordered lists as one string
    diff = DeepDiff(_plain(reference), _plain(restored), ignore_order=True, verbose_level=2,
                    view="tree", threshold_to_diff_deeper=0)
    for change_type, items in sorted(diff.items()):
        for item in items:
            path = [str(p) for p in item.path(output_format="list")]
            t1, t2 = item.t1, item.t2
            if change_type in ("values_changed", "type_changes") and len(path) > 1 and path[-1].isdigit():
                # a list item paired with another one: one is missing, the other extra
                pairs = [("iterable_item_removed", t1, None), ("iterable_item_added", None, t2)]
            else:
                pairs = [(change_type, t1, t2)]
            for change, x1, x2 in pairs:
                f = _schema_finding(change, path, x1, x2, skip)
                if f is not None:
                    findings.append(f)
    findings.sort(key=lambda f: (f.object, f.message))
    return findings


# keys of a schema entry that are carried, not compared: a view's query as the server printed it
# (the normalised "definition" is compared; the raw text is what a round trip parses, pg_deparse.py)
UNCOMPARED = {"views": frozenset({"query_text"}), "matviews": frozenset({"query_text"})}


def _without_derived_constraints(reference: Mapping[str, Any], restored: Mapping[str, Any]
                                 ) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Leave out the constraints the server derives from a partitioned table's own (``"derived"``:
    a partition's copy of its parent's key, the copies of a foreign key that references a
    partitioned table, one per partition): the server names them at restore, and names them
    differently across majors (``refs_code_fkey1`` on 15, ``refs_code_fkey_1`` on 18), while
    what they enforce is the parent constraint's, which is compared. One marked on either side
    goes from both, by name (a manifest made before 0.3 does not mark them)."""
    ref_tables, res_tables = reference.get("tables"), restored.get("tables")
    if not isinstance(ref_tables, Mapping) or not isinstance(res_tables, Mapping):
        return reference, restored

    def derived(tables: Mapping[str, Any], name: str) -> set[str]:
        cons = (tables.get(name) or {}).get("constraints") if isinstance(tables.get(name), Mapping) else None
        if not isinstance(cons, Mapping):
            return set()
        return {c for c, e in cons.items() if isinstance(e, Mapping) and e.get("derived")}

    def without(tables: Mapping[str, Any], drop: Mapping[str, set[str]]) -> dict[str, Any]:
        out = dict(tables)
        for name, names in drop.items():
            entry = tables.get(name)
            if names and isinstance(entry, Mapping) and isinstance(entry.get("constraints"), Mapping):
                out[name] = {**entry, "constraints": {c: e for c, e in entry["constraints"].items()
                                                      if c not in names}}
        return out

    drop = {name: derived(ref_tables, name) | derived(res_tables, name) for name in set(ref_tables) | set(res_tables)}
    if not any(drop.values()):
        return reference, restored
    return ({**reference, "tables": without(ref_tables, drop)}, {**restored, "tables": without(res_tables, drop)})


def _without_uncompared(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    out = dict(schema)
    for section, keys in UNCOMPARED.items():
        entries = schema.get(section)
        if isinstance(entries, Mapping):
            out[section] = {name: ({k: v for k, v in e.items() if k not in keys} if isinstance(e, Mapping) else e)
                            for name, e in entries.items()}
    return out


def _without_template_public(reference: Mapping[str, Any], restored: Mapping[str, Any],
                             findings: list[Finding]) -> Mapping[str, Any]:
    """Leave out an empty ``public`` schema that only the restored copy has.

    A source may have dropped its ``public`` schema; pg_dump does not drop it on restore, so the
    new database (from template0) still has its own, empty one. That is the restore target's, not
    a difference in what the backup holds: a warning, not a failed backup."""
    ref_schemas = reference.get("schemas")
    res_schemas = restored.get("schemas")
    if not isinstance(ref_schemas, Mapping) or not isinstance(res_schemas, Mapping):
        return restored
    if "public" in ref_schemas or "public" not in res_schemas:
        return restored
    for section, objects in restored.items():
        if section != "schemas" and isinstance(objects, Mapping) and any(
                str(k).startswith("public.") for k in objects):
            return restored  # something lives in it: a real difference, reported as such
    findings.append(Finding("schema", "warning", "public",
                            "schema public (empty) is in the restored copy only: the reference dropped it, "
                            "and a new database always has one (pg_dump does not drop it)"))
    return {**restored, "schemas": {k: v for k, v in res_schemas.items() if k != "public"}}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value


def _short(v: Any) -> str:
    """A value for a message: strings as they are, anything else as JSON (null, true, {"a": 1}),
    never as a Python repr (None, True, {'a': 1})."""
    text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)
    text = " ".join(text.split())
    return text if len(text) <= 120 else text[:117] + "..."


def _schema_finding(change: str, path: list[str], t1: Any, t2: Any, skip: set[str]) -> Finding | None:
    if not path:
        return Finding("schema", "error", "schema", f"schema differs ({change})")
    section = path[0]
    if len(path) == 1:
        what = _singular(section)
        # a section only one side has (engines may leave out empty ones): name its objects
        side = t1 if change == "dictionary_item_removed" else t2
        names = f": {', '.join(sorted(map(str, side)))}" if isinstance(side, Mapping) and side else ""
        if change == "dictionary_item_removed":
            return Finding("schema", "error", section,
                           f"the reference's {section} are missing in the restored copy{names}")
        if change == "dictionary_item_added":
            return Finding("schema", "error", section, f"the restored copy has {section} the reference has not{names}")
        return Finding("schema", "error", section, f"{what}: {_short(t1)} -> {_short(t2)}")
    name = path[1]
    obj = name
    what = _singular(section)
    rest = path[2:]
    if section == "extensions" and rest == ["version"] and change == "values_changed":
        # pg_dump writes CREATE EXTENSION without a version: the target installs its own default
        # (1.7 on 15, 1.8 on 18 for btree_gist), whatever the backup holds; a warning with the fix
        return Finding("schema", "warning", obj,
                       f"extension {name}: version {_short(t1)} -> {_short(t2)} (a dump records no extension "
                       "version: the target installed its default; ALTER EXTENSION ... UPDATE TO on one side "
                       "makes them equal)", {"path": path, "change": change, "expected": t1, "restored": t2})
    if section == "tables" and name in skip and not rest:
        return None  # already reported as table_missing / table_extra
    details: dict[str, Any] = {"path": path, "change": change}
    if not rest:
        if change == "dictionary_item_removed":
            return Finding("schema", "error", obj, f"{what} {name} is missing in the restored copy", details)
        if change == "dictionary_item_added":
            return Finding("schema", "error", obj, f"{what} {name} is in the restored copy but not in the reference",
                           details)
        return Finding("schema", "error", obj, f"{what} {name}: {_short(t1)} -> {_short(t2)}",
                       {**details, "expected": t1, "restored": t2})
    # nested: e.g. tables/shop.items/columns/price/type, tables/shop.orders/privileges/[3]
    sub = rest[0]
    if sub in ("columns", "constraints", "policies", "triggers", "indexes") and len(rest) >= 2:
        label = f"{_singular(sub)} {name}.{rest[1]}"
        tail = rest[2:]
    else:
        label = f"{what} {name}"
        tail = rest
    tail = [p for p in tail if not p.isdigit()]
    attr = " ".join(tail)
    if change in ("dictionary_item_removed", "iterable_item_removed"):
        if not tail or (change == "dictionary_item_removed" and len(tail) == 0):
            return Finding("schema", "error", obj, f"{label} is missing in the restored copy", details)
        return Finding("schema", "error", obj, f"{attr} on {label}: missing {_short(t1)}",
                       {**details, "expected": t1})
    if change in ("dictionary_item_added", "iterable_item_added"):
        if not tail:
            return Finding("schema", "error", obj, f"{label} is in the restored copy but not in the reference", details)
        return Finding("schema", "error", obj, f"{attr} on {label}: extra {_short(t2)}", {**details, "restored": t2})
    if attr:
        return Finding("schema", "error", obj, f"{label}: {attr} {_short(t1)} -> {_short(t2)}",
                       {**details, "expected": t1, "restored": t2})
    return Finding("schema", "error", obj, f"{label}: {_short(t1)} -> {_short(t2)}",
                   {**details, "expected": t1, "restored": t2})
