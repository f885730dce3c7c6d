"""Checksums are a stored format: a manifest made by one release is verified by the next, maybe
years later. The known dataset (scale 1, seed 0) has fixed checksums in every mode, on every
installed major; a change to the row hash, the SQL that computes it or the SQLite row encoding
that alters a single checksum fails here, where the mutation tests (which compare two fingerprints
made by the same code) cannot see it.

To change a checksum mode on purpose, add a new mode (old manifests keep the old one) and run:

    RESTORECHECK_WRITE_GOLDEN=1 .venv/bin/pytest tests/integration/test_fingerprint_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from restorecheck.dburl import PostgresRef, SqliteRef
from restorecheck.engines.base import FingerprintOptions
from restorecheck.engines.pg_fingerprint import fingerprint_postgres
from restorecheck.engines.sqlite import SqliteEngine
from restorecheck.model import Manifest
from restorecheck.seed import seed

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "golden" / "fingerprints.json"
WRITE = os.environ.get("RESTORECHECK_WRITE_GOLDEN") == "1"

PG_MODES = {
    "hash64-v2": FingerprintOptions(),
    "hash64-v1": FingerprintOptions(hash_version=1),
    "text64-v1": FingerprintOptions(strict=True),
}


def _checksums(manifest: Manifest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in manifest.tables:
        if t.checksum is None:
            continue
        out[t.name] = {"rows": t.rows, "checksum": t.checksum,
                       "ranges": [[r.rows, r.checksum] for r in t.ranges]}
    return out


def _compare(key: str, got: dict[str, Any]) -> None:
    data: dict[str, Any] = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if WRITE:
        data[key] = got
        GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        return
    want = data.get(key)
    assert want is not None, f"no golden checksums for {key}: run with RESTORECHECK_WRITE_GOLDEN=1"
    assert len(got) >= 5 and len(want) == len(got)
    changed = sorted(n for n in set(want) | set(got) if want.get(n) != got.get(n))
    assert not changed, (f"{key}: the checksums of {changed} changed; a manifest made before this change "
                         "would no longer verify (add a new checksum mode instead)")


@pytest.mark.postgres
def test_postgres_checksums_are_those_of_earlier_releases(fresh_db_any: PostgresRef) -> None:
    seed(fresh_db_any)
    for mode, options in PG_MODES.items():
        manifest = fingerprint_postgres(fresh_db_any, options)
        assert manifest.checksum_mode == mode
        _compare(f"postgresql {mode}", _checksums(manifest))
    # key ranges too: a table fingerprinted in several ranges sums to the same checksum
    ranged = fingerprint_postgres(fresh_db_any, FingerprintOptions(range_rows=100))
    _compare("postgresql hash64-v2 ranges of 100 rows", _checksums(ranged))


@pytest.mark.parametrize("native", ["1", "0"], ids=["c-encoder-if-built", "sql"])
def test_sqlite_checksums_are_those_of_earlier_releases(tmp_path: Path, native: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTORECHECK_SQLITE_NATIVE", native)
    from restorecheck.engines import sqlite as engine

    monkeypatch.setattr(engine, "_native_state", {})
    path = tmp_path / "known.db"
    seed(SqliteRef(path))
    for mode, options in {"sqlite-keyed-sha256-v2": FingerprintOptions(),
                          "sqlite-keyed-sha256-v2 ranges of 100 rows": FingerprintOptions(range_rows=100)}.items():
        manifest = SqliteEngine().fingerprint(SqliteRef(path), options)
        assert manifest.checksum_mode == "sqlite-keyed-sha256-v2"
        _compare(mode, _checksums(manifest))
