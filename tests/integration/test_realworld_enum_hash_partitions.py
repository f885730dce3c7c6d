"""Hash partitioning on an enum column (PITFALLS E5).

An enum's hash follows its OIDs, which a restore assigns anew; pg_dump therefore loads such a
table through its root, and the restore routes rows to other partitions than the source's. The
partitioned table holds the same rows, but every leaf's count and checksum differ: a faithful
backup was judged failed. Re-routed rows are now a warning when the partitioned table is equal;
a lost or changed row still fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from restorecheck import pipeline
from restorecheck.checks.compare import compare_tables
from restorecheck.engines.base import RestoreOptions
from restorecheck.model import TableFingerprint
from restorecheck.provisioners.base import PgServer
from tests.conftest import execute

pytestmark = pytest.mark.postgres

# the DDL churn moves the OID counter, so the enum's OIDs (and hashes) differ after the restore
SCHEMA = """
DO $$ BEGIN FOR i IN 1..300 LOOP
  EXECUTE format('CREATE TABLE junk%s (a int); DROP TABLE junk%s', i, i);
END LOOP; END $$;
CREATE TYPE color AS ENUM ('red', 'green', 'blue', 'cyan', 'magenta', 'yellow', 'black', 'white');
CREATE TABLE hp (id int, c color, PRIMARY KEY (id, c)) PARTITION BY HASH (c);
CREATE TABLE hp0 PARTITION OF hp FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE hp1 PARTITION OF hp FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE hp2 PARTITION OF hp FOR VALUES WITH (MODULUS 3, REMAINDER 2);
INSERT INTO hp SELECT g, (enum_range(NULL::color))[g % 8 + 1] FROM generate_series(1, 400) g;
"""


def test_enum_hash_partitioned_table_verifies_with_rerouting_warnings(pg_server: PgServer, tmp_path: Path) -> None:
    with pg_server.fresh_database() as ref:
        execute(ref, SCHEMA)
        result = pipeline.backup(ref, tmp_path / "out", pipeline.BackupOptions(format="custom"))
    report = pipeline.verify(result.artifact.path, restore=RestoreOptions(target="local"))
    assert report.verdict == "pass", [f.message for f in report.findings if f.severity == "error"]
    assert {t.name: t.rows_restored for t in report.tables}["public.hp"] == 400
    # the rows did move (else this test proves nothing), and each move is reported
    moved = [f for f in report.findings if "re-routed" in f.message]
    assert moved and all(f.severity == "warning" for f in moved)


def _leaf(name: str, rows: int, checksum: str) -> TableFingerprint:
    return TableFingerprint(name, "partition", rows=rows, checksum=checksum, checksum_mode="m")


def _parent(rows: int, checksum: str) -> TableFingerprint:
    return TableFingerprint("s.p", "partitioned", rows=rows, checksum=checksum, checksum_mode="m",
                            extra={"derived": True, "partitions": ["s.p0", "s.p1"]})


def test_rerouting_is_a_warning_only_when_the_partitioned_table_is_equal() -> None:
    reference = [_parent(10, "c"), _leaf("s.p0", 6, "a"), _leaf("s.p1", 4, "b")]
    rerouted = [_parent(10, "c"), _leaf("s.p0", 5, "x"), _leaf("s.p1", 5, "y")]
    results, findings = compare_tables(reference, rerouted)
    assert findings and all(f.severity == "warning" for f in findings)
    assert all(r.match for r in results)
    lost = [_parent(9, "d"), _leaf("s.p0", 5, "x"), _leaf("s.p1", 4, "b")]
    results, findings = compare_tables(reference, lost)
    assert [f.severity for f in findings] == ["error"]
    assert not all(r.match for r in results)
