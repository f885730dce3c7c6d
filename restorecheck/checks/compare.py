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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from restorecheck.model import Finding, Manifest, RangeChecksum, TableFingerprint, TableResult

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
    """Compare what ``restored`` holds with what ``reference`` says it should hold.

    ``live_reference``: the reference was read from a live database, whose sequences are not
    MVCC (PITFALLS F2): the restored state must then be at least the reference's, instead of
    equal to it.
    """
    results, findings = compare_tables(reference.tables, restored.tables, max_keys=max_keys)
    findings += compare_sequences(reference.sequences, restored.sequences, live_reference=live_reference)
    findings += compare_fk_orphans(reference.fk_orphans, restored.fk_orphans)
    findings += compare_large_objects(reference.large_objects, restored.large_objects, max_keys=max_keys)
    skip = {t.name for t in reference.tables} ^ {t.name for t in restored.tables}
    findings += compare_schema(reference.schema, restored.schema, reported_tables=skip)
    if reference.engine == "sqlite" and restored.engine == "sqlite":
        from restorecheck.checks.sqlite import compare_sqlite  # header values a copy must keep

        findings += compare_sqlite(reference, restored)
    findings += compare_database_facts(reference.facts, restored.facts)
    return results, findings


# facts of the database as a whole that a restore should keep; a difference is worth a warning
# (a different collation changes sort order and text indexes, PITFALLS E4)
DATABASE_FACTS = ("encoding", "lc_collate", "lc_ctype")


def compare_database_facts(reference: Mapping[str, Any], restored: Mapping[str, Any]) -> list[Finding]:
    findings = []
    for key in DATABASE_FACTS:
        if key in reference and key in restored and reference[key] != restored[key]:
            findings.append(Finding("schema", "warning", "database",
                                    f"database {key}: {reference[key]} -> {restored[key]}",
                                    {"expected": reference[key], "restored": restored[key]}))
    return findings


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


def same_boundaries(a: Sequence[RangeChecksum], b: Sequence[RangeChecksum]) -> bool:
    """True when both lists cover the same key ranges (so they can be compared range by range)."""
    return len(a) == len(b) and all(
        _norm(x.lower) == _norm(y.lower) and _norm(x.upper) == _norm(y.upper) for x, y in zip(a, b, strict=True)
    )


def _norm(v: tuple[Any, ...] | None) -> tuple[str, ...] | None:
    return None if v is None else tuple(str(x) for x in v)


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


def sequence_self_checks(sequences: Mapping[str, Mapping[str, Any]]) -> list[Finding]:
    """A sequence whose next value collides with its owned column's current maximum (no reference needed)."""
    findings: list[Finding] = []
    for name in sorted(sequences):
        s = sequences[name]
        nv = next_value(s)
        inc = int(s.get("increment", 1) or 1)
        col = s.get("owned_by")
        if nv is None or col is None:
            continue
        if inc > 0 and s.get("column_max") is not None and nv <= int(s["column_max"]):
            findings.append(Finding(
                "sequence", "error", name,
                f"sequence {name} is behind its column {col}: next value {nv}, max({col.rsplit('.', 1)[-1]}) "
                f"= {s['column_max']}; the next insert would collide",
                {"next_value": nv, "column_max": s["column_max"], "owned_by": col}))
        if inc < 0 and s.get("column_min") is not None and nv >= int(s["column_min"]):
            findings.append(Finding(
                "sequence", "error", name,
                f"descending sequence {name} is behind its column {col}: next value {nv}, "
                f"min = {s['column_min']}; the next insert would collide",
                {"next_value": nv, "column_min": s["column_min"], "owned_by": col}))
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
                f"foreign key {name}{state}: {got} rows reference a missing parent, the reference had {expected}",
                {"orphans_expected": expected, "orphans_restored": int(got),
                 "validated": b.get("validated"), "table": b.get("table")}))
    return findings


def fk_self_checks(fks: Mapping[str, Mapping[str, Any]]) -> list[Finding]:
    """Orphans on validated foreign keys (no reference needed; NOT VALID ones may have orphans)."""
    findings: list[Finding] = []
    for name in sorted(fks):
        b = fks[name]
        if b.get("validated", True) and int(b.get("orphans") or 0) > 0:
            findings.append(Finding(
                "fk_orphans", "error", name,
                f"foreign key {name}: {b['orphans']} rows reference a missing parent",
                {"orphans": int(b["orphans"]), "table": b.get("table")}))
    return findings


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
