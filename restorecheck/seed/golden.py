"""Golden values of the known dataset: row counts and content digests computed with plain SQL.

Deliberately independent of restorecheck's fingerprint code, so that a test comparing a seeded
database against ``fixtures/golden/*.json`` checks the generator and not the fingerprinter.

PostgreSQL: per relation, ``md5(string_agg((r.*)::text, '\\n' ORDER BY (r.*)::text COLLATE "C"))``
(``(r.*)`` and not ``r``: public.rc_types has a column named like a short alias, on purpose)
under pinned session settings (UTC, ISO dates, extra_float_digits 3, hex bytea), plus every
sequence's state and the large objects' OIDs and md5s. SQLite: per table, the SHA-256 of the
rows (rowid included where there is one) as ``typeof``/value pairs in a canonical text form, plus
``sqlite_sequence`` and the header values user_version and application_id.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

from psycopg import sql

from restorecheck.dburl import PostgresRef
from restorecheck.seed.values import GENERATOR_VERSION

GOLDEN_SCALE = 1
GOLDEN_SEED = 0
REGENERATE = ".venv/bin/python -m restorecheck.seed --write-golden"


def golden_dir() -> Path:
    """``fixtures/golden`` of the checkout this module belongs to."""
    return Path(__file__).resolve().parents[2] / "fixtures" / "golden"


def postgres_digest(ref: PostgresRef) -> dict[str, Any]:
    """Counts and digests of the dataset seeded in ``ref`` (read only)."""
    from restorecheck.seed.postgres import OWN_SCHEMAS, connect, dataset_relations

    with connect(ref) as conn:
        conn.execute("SET search_path = pg_catalog")
        conn.execute("SET row_security = off")
        tables: dict[str, Any] = {}
        for schema, table in dataset_relations(conn):
            row = conn.execute(sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg((r.*)::text, E'\\n' ORDER BY (r.*)::text COLLATE \"C\"), '')) "
                "FROM ONLY {} AS r").format(sql.Identifier(schema, table))).fetchone()
            assert row is not None
            tables[f"{schema}.{table}"] = {"rows": int(row[0]), "md5": row[1]}
        sequences: dict[str, Any] = {}
        for schema, name in conn.execute(
                "SELECT schemaname, sequencename FROM pg_sequences WHERE schemaname = ANY(%s) ORDER BY 1, 2",
                (list(OWN_SCHEMAS),)).fetchall():
            seq = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(
                sql.Identifier(schema, name))).fetchone()
            assert seq is not None
            sequences[f"{schema}.{name}"] = [int(seq[0]), bool(seq[1])]
        lo = conn.execute(
            "SELECT count(*), md5(coalesce(string_agg(oid::text || ':' || md5(lo_get(oid)), ',' ORDER BY oid), '')) "
            "FROM pg_largeobject_metadata WHERE oid::bigint >= 1380000000 AND oid::bigint < 1390000000"
        ).fetchone()
        assert lo is not None
    return {"tables": tables, "sequences": sequences, "large_objects": {"count": int(lo[0]), "md5": lo[1]}}


def _canon(value: Any) -> str:
    """One SQLite value as text that tells every storage class and every bit apart."""
    if value is None:
        return "null"
    if isinstance(value, int):
        return f"integer:{value}"
    if isinstance(value, float):
        return f"real:{'nan' if math.isnan(value) else value.hex()}"
    if isinstance(value, str):
        return "text:" + json.dumps(value, ensure_ascii=True)
    if isinstance(value, bytes):
        return f"blob:{value.hex()}"
    raise TypeError(f"unexpected SQLite value {value!r}")


def sqlite_tables(conn: sqlite3.Connection) -> list[tuple[str, bool]]:
    """(name, has_rowid) of the dataset's tables, by name."""
    from restorecheck.seed.sqlite import TABLE_PREFIX

    out = []
    for (name,) in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE ? ESCAPE '\\' ORDER BY name",
            (TABLE_PREFIX.replace("_", "\\_") + "%",)).fetchall():
        ddl = conn.execute("SELECT sql FROM sqlite_schema WHERE name = ?", (name,)).fetchone()[0] or ""
        out.append((name, "WITHOUT ROWID" not in ddl.upper()))
    return out


def sqlite_digest(path: Path | str) -> dict[str, Any]:
    """Counts and digests of the dataset seeded in the SQLite file ``path`` (opened read only)."""
    from restorecheck.seed.sqlite import quote_identifier

    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    conn.text_factory = str
    try:
        tables: dict[str, Any] = {}
        for name, has_rowid in sqlite_tables(conn):
            cols = [r[1] for r in conn.execute(f"PRAGMA table_xinfo({quote_identifier(name)})")]
            select = ", ".join((["rowid"] if has_rowid else []) + [quote_identifier(c) for c in cols])
            lines = sorted("|".join(_canon(v) for v in row)
                           for row in conn.execute(f"SELECT {select} FROM {quote_identifier(name)}"))
            digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
            tables[name] = {"rows": len(lines), "sha256": digest}
        seq = {n: int(v) for n, v in conn.execute("SELECT name, seq FROM sqlite_sequence ORDER BY name")}
        header = {p: conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("user_version", "application_id")}
    finally:
        conn.close()
    return {"tables": tables, "sequences": seq, "header": header}


def golden_document(engine: str, digest: dict[str, Any]) -> dict[str, Any]:
    return {
        "engine": engine,
        "generator_version": GENERATOR_VERSION,
        "scale": GOLDEN_SCALE,
        "seed": GOLDEN_SEED,
        "regenerate": REGENERATE,
        **digest,
    }


def load_golden(engine: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((golden_dir() / f"{engine}.json").read_text(encoding="utf-8"))
    return data


def write_golden(engine: str, digest: dict[str, Any], directory: Path | None = None) -> Path:
    out = (directory or golden_dir()) / f"{engine}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(golden_document(engine, digest), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return out


def diff_digests(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Human-readable differences between two digests (empty when equal)."""
    out: list[str] = []
    for section in ("tables", "sequences", "large_objects", "header"):
        exp, act = expected.get(section), actual.get(section)
        if exp == act:
            continue
        if isinstance(exp, dict) and isinstance(act, dict):
            for key in sorted(set(exp) | set(act)):
                if exp.get(key) != act.get(key):
                    out.append(f"{section}: {key}: expected {exp.get(key)!r}, got {act.get(key)!r}")
        else:
            out.append(f"{section}: expected {exp!r}, got {act!r}")
    return out
