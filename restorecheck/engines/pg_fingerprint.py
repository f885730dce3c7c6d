"""Fingerprint a live PostgreSQL database into a ``Manifest``: counts, checksums, catalog, integrity facts.

Everything is read in REPEATABLE READ, READ ONLY transactions that share one snapshot: the first
connection exports it (``pg_export_snapshot()``), or imports one given from outside
(``FingerprintOptions.snapshot``, e.g. the snapshot ``pg_dump --snapshot`` reads), and every
further connection imports it with ``SET TRANSACTION SNAPSHOT``. Every session setting that
changes how values print is pinned first (``PINNED_SETTINGS``).

The checksum of a relation is computed in the server and is a sum over rows of a 64-bit row hash,
reported modulo 2^64 as 16 hex digits. It is independent of row order and physical layout, and
additive: a table is split by key range (``RangeChecksum``) and by block range (across
connections) and the parts are added. The row hash (``checksum_mode``):

``hash64-v2`` (default since 0.2)
    ``hashint8extended(x, 0) # hashint8extended(x >> 32, 1)`` with ``x = e1 # e2 # ...``, the
    elements of ``hash64-v1`` below, except: timestamp, timestamptz, date, time, timetz and interval
    are hashed as their binary send form's text (``hashtextextended(timestamptz_send(c)::text)``):
    the same bytes on every major, injective, where ``::text`` costs a calendar conversion per value;
    a boolean is one of two constants per position instead of a hash call; and the final mix hashes
    the 64-bit XOR as two integers instead of as its decimal text. The XOR is computed once in a
    subquery and mixed outside it. About 20% cheaper than ``hash64-v1`` on a table of eight mixed
    columns (benchmarks/bench_fingerprint.py); it catches every mutation of
    tests/integration/test_fingerprint_sensitivity.py, the folded timestamp included.

``hash64-v1`` (restorecheck 0.1; still computed when verifying against a manifest made in it)
    ``hashtextextended((h1(c1, 1) # h2(c2, 2) # ...)::text, 0)`` over the columns sorted by name:
    each column is hashed by its type's own 64-bit extended hash function, seeded with its
    position (so a value moved to another column changes the row hash), a NULL by a constant of
    its own per position (so NULL differs from ''), the column hashes are XORed, and the result is
    hashed once more (non-linear, so values swapped between rows do not cancel in the sum; a
    plain sum of ``hash_record_extended`` misses them). This is about 30% cheaper than forming a
    ROW and hashing it with ``hash_record_extended``.
    Columns are cast where a type hash would be wrong for a restore check: types without an
    extended hash function (json, xml, money, geometric types, tsvector, bit), enums (their
    hash is the label's OID, which a restore changes), reg* types (OIDs), composite, range and
    multirange types, and the 64-bit temporal types (their hash folds 64 bits into 32) go through
    ``::text COLLATE "C"``; columns of non-deterministic collations or citext too (their hash
    treats 'a' and 'A' alike); bigint gets a second element ``c >> 32`` for the same reason.
    Equal values hash alike: numeric 1.0 and 1.00, float -0 and 0, interval '1 day' and '24 hours'.

``text64-v1`` (``FingerprintOptions.strict``)
    ``hashtextextended(ROW(c1, c2, ...)::text, 0)``: the text form of the row under the pinned
    settings, so 1.0 and 1.00 differ. About twice as slow (measured: benchmarks/bench_fingerprint.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from restorecheck.dburl import PostgresRef
from restorecheck.engines import pg_catalog, pg_dbprops
from restorecheck.engines.base import FingerprintOptions, in_checksum_mode_of
from restorecheck.engines.pg_facts import (
    database_facts,
    fk_orphan_counts,
    large_object_summary,
    sequence_states,
)
from restorecheck.engines.pg_relations import load_tables
from restorecheck.engines.pg_rowhash import (
    HASH_MODE,
    HASH_MODE_V1,
    TEXT_MODE,
    TableInfo,
    add_checksums,
    format_checksum,
    ranges_from_boundaries,
)
from restorecheck.engines.pg_session import begin_snapshot, connect
from restorecheck.engines.pg_workers import _Fingerprinter, _run_tasks, _TablePlan
from restorecheck.errors import SourceUnreachableError, first_line
from restorecheck.model import ChecksumMode, Manifest, RangeChecksum, TableFingerprint

log = logging.getLogger("restorecheck")


# --- the entry points ------------------------------------------------------------------------------


def fingerprint_postgres(
    ref: PostgresRef, options: FingerprintOptions, *, ranges_from: Manifest | None = None
) -> Manifest:
    """Fingerprint the live database ``ref`` (read only) into a Manifest.

    ``options.snapshot``: read in that exported snapshot (its exporting transaction must stay open
    until this returns), e.g. the one ``pg_dump --snapshot`` reads. Otherwise, with ``jobs`` > 1,
    the first connection exports a snapshot for the others. ``ranges_from``: use that manifest's
    key-range boundaries per table, and its checksum mode, so that the two fingerprints compare
    range by range.
    """
    jobs = max(1, options.jobs)
    if ranges_from is not None:  # checksums are only comparable in the same mode: follow the reference's
        options = in_checksum_mode_of(ranges_from, options)
    conns: list[psycopg.Connection[Any]] = []
    try:
        main = connect(ref, options, application="restorecheck fingerprint")
        conns.append(main)
        begin_snapshot(main, options.snapshot)
        snapshot = options.snapshot
        if snapshot is None and jobs > 1:
            snapshot = main.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        facts = database_facts(main)
        taken_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        options.progress("catalog", 0, None)
        schema = pg_catalog.schema_snapshot(main)
        db_properties = pg_dbprops.read_properties(main, str(facts["database"]))
        tables = load_tables(main)
        fp = _Fingerprinter(options, ranges_from, jobs)
        results: dict[str, TableFingerprint] = {}
        plans: list[_TablePlan] = []
        for info in tables:
            skip = _unreadable(info, facts)
            if skip is not None:
                results[info.qualified] = skip
                continue
            if options.schema_only:
                results[info.qualified] = TableFingerprint(info.qualified, info.kind, key=info.key,
                                                           extra=_extra(info))
                continue
            plan = _TablePlan(info)
            fp.plans[info.qualified] = plan
            plans.append(plan)
        tasks = fp.tasks(plans)
        fp.total_tables = len(tasks)
        units = sum(max(1, len(fp.chunks(p.info))) for p in plans)  # one big table still uses every job
        for _ in range(1, min(jobs, max(1, units))):
            c = connect(ref, options, application="restorecheck fingerprint worker")
            conns.append(c)
            begin_snapshot(c, snapshot)
        _run_tasks(conns, tasks)
        for name, plan in fp.plans.items():
            results[name] = _table_result(plan, options)
        _derive_parents(results, tables)
        empty = {name for name, t in results.items() if t.readable and t.rows == 0}
        sequences = sequence_states(main, empty)
        fks = {} if options.schema_only else fk_orphan_counts(main, empty)
        los = None if options.schema_only else large_object_summary(main)
        facts["jobs"] = jobs
        ordered = tuple(results[t.qualified] for t in tables)
        return Manifest(
            engine="postgresql", database=str(facts["database"]), server_version=str(facts["server_version"]),
            taken_at=taken_at, snapshot=snapshot, tables=ordered, schema=schema, sequences=sequences,
            large_objects=los, fk_orphans=fks, facts=facts, database_properties=db_properties,
            checksum_mode=_mode(options))
    except psycopg.OperationalError as exc:
        raise SourceUnreachableError(f"lost the connection to {ref.display()}: {first_line(exc)}",
                                     "check the server and retry") from None
    finally:
        for c in conns:
            with contextlib.suppress(Exception):
                c.execute("COMMIT")
            with contextlib.suppress(Exception):
                c.close()


def _mode(options: FingerprintOptions) -> ChecksumMode:
    if options.strict:
        return TEXT_MODE
    return HASH_MODE_V1 if options.hash_version == 1 else HASH_MODE


def _extra(info: TableInfo) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if info.persistence == "u":
        extra["unlogged"] = True
    if info.parents:
        extra["parents"] = list(info.parents)
    return extra


def _unreadable(info: TableInfo, facts: Mapping[str, Any]) -> TableFingerprint | None:
    note = None
    extra = _extra(info)
    if info.relkind == "f":
        note = "foreign table: its data lives on another server and is not read"
    elif info.relkind == "m" and not info.populated:
        note = "materialized view was never populated (WITH NO DATA): nothing to read"
    elif info.relkind == "p":
        return None  # handled as a derived total
    elif (info.row_security and not (facts.get("rolsuper") or facts.get("rolbypassrls"))
          and (info.force_row_security or not info.owner_is_me)):
        note = (f"row-level security applies to role {facts.get('role')}: its rows cannot all be read, so no "
                "count or checksum (use a superuser or a role with BYPASSRLS)")
        extra["row_security"] = True
    if note is None:
        return None
    return TableFingerprint(info.qualified, info.kind, key=info.key, readable=False, note=note, extra=extra)


def _table_result(plan: _TablePlan, options: FingerprintOptions) -> TableFingerprint:
    info = plan.info
    extra = _extra(info)
    mode = _mode(options)
    if plan.error is not None:
        note: str | None = plan.error
        if plan.rls:
            extra["row_security"] = True
            note = f"row-level security: {plan.error} (use a superuser or a role with BYPASSRLS)"
        return TableFingerprint(info.qualified, info.kind, key=info.key, readable=False, note=note, extra=extra)
    rows = sum(v[0] for v in plan.buckets.values())
    total = sum(v[1] for v in plan.buckets.values())
    ranges: tuple[RangeChecksum, ...] = ()
    if plan.boundaries:
        ranges = ranges_from_boundaries(plan.boundaries, {k: (v[0], v[1]) for k, v in plan.buckets.items()})
    note = None if info.key else "no primary key: a difference cannot be localised to rows"
    return TableFingerprint(info.qualified, info.kind, rows=rows, checksum=format_checksum(total),
                            checksum_mode=mode, key=info.key, ranges=ranges, note=note, extra=extra)


def _derive_parents(results: dict[str, TableFingerprint], tables: Sequence[TableInfo]) -> None:
    """Partitioned parents: totals derived from their leaves (never scanned twice)."""
    children: dict[str, list[str]] = {}
    for t in tables:
        for p in t.parents:
            children.setdefault(p, []).append(t.qualified)

    def leaves(name: str) -> list[TableFingerprint]:
        out = []
        for c in children.get(name, []):
            fp = results.get(c)
            if fp is None:
                continue
            out += leaves(c) if fp.kind == "partitioned" else [fp]
        return out

    for t in tables:
        if t.relkind != "p":
            continue
        ls = leaves(t.qualified)
        readable = all(x.readable and x.rows is not None for x in ls)
        if readable and ls:
            rows = sum(x.rows or 0 for x in ls)
            checksum = add_checksums(*(x.checksum or "0" for x in ls))
        elif readable:
            rows, checksum = 0, format_checksum(0)
        else:
            rows, checksum = None, None
        results[t.qualified] = TableFingerprint(
            t.qualified, "partitioned", rows=rows, checksum=checksum,
            checksum_mode=next((x.checksum_mode for x in ls), ""), key=t.key, readable=readable,
            note=None if readable else "a partition could not be read",
            extra={**_extra(t), "derived": True, "partitions": sorted(x.name for x in ls)})
