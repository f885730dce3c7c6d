"""Golden manifest: a manifest_version 1 file written by restorecheck must keep loading, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from restorecheck.checks.compare import compare_manifests
from restorecheck.checks.postgres import self_checks_postgres
from restorecheck.model import Manifest

GOLDEN = Path(__file__).parent.parent / "golden" / "manifest_v1_postgresql.json"


def test_golden_manifest_loads() -> None:
    m = Manifest.load(GOLDEN)
    assert m.manifest_version == 1 and m.engine == "postgresql"
    assert m.database_properties is None  # written before they were recorded: "not recorded", not "none"
    assert m.checksum_mode == "hash64-v1" and "checksum_mode" not in m.facts  # a field now, from facts
    orders = m.table("shop.orders")
    assert orders is not None and orders.rows == 400 and orders.key == ("id",)
    assert len(orders.ranges) == 8 and orders.ranges[0].lower is None and orders.ranges[-1].upper is None
    assert m.table("shop.empty_mv").readable is False  # type: ignore[union-attr]
    assert m.sequences["shop.customers_id_seq"]["owned_by"] == "shop.customers.id"
    assert m.fk_orphans["shop.legacy.legacy_customer_fk"]["validated"] is False
    assert m.large_objects is not None and m.large_objects["count"] == 2
    assert set(m.schema) >= {"tables", "indexes", "views", "matviews", "sequences", "functions", "triggers",
                             "types", "extensions", "policies", "schemas"}


def test_golden_manifest_round_trips() -> None:
    """Loaded and written again, the golden manifest holds the same JSON. Not the same bytes: the
    control facts (model.CONTROL_FACTS) are typed Manifest fields now, written back under "facts"
    after the other facts, so "checksum_mode" moves after "jobs" there; a manifest this version
    writes round-trips byte for byte."""
    text = GOLDEN.read_text(encoding="utf-8")
    m = Manifest.load(GOLDEN)
    assert m.to_dict() == json.loads(text)
    assert m.to_dict()["facts"]["checksum_mode"] == "hash64-v1"  # where every reader of version 1 looks
    assert m.to_json().splitlines()[:-10] == text.splitlines()[:-10]  # all but the end of facts
    again = Manifest.from_dict(json.loads(m.to_json()))
    assert again == m and again.to_json() == m.to_json()


def test_golden_manifest_compares_equal_with_itself() -> None:
    m = Manifest.load(GOLDEN)
    results, findings = compare_manifests(m, Manifest.load(GOLDEN))
    assert findings == [] and all(r.match for r in results)
    assert self_checks_postgres(m) == []


def test_golden_manifest_tells_inherited_from_introduced() -> None:
    """A version 1 manifest already records what the inherited/introduced rule needs: per sequence
    its state, owned column and that column's max; per foreign key its orphan count."""
    import dataclasses

    from restorecheck.checks.compare import behind_by

    m = Manifest.load(GOLDEN)
    seq = m.sequences["shop.customers_id_seq"]
    assert behind_by(seq) == 0 and "column_max" in seq
    assert self_checks_postgres(m, m) == []
    behind = dict(seq, last_value=1, is_called=False)
    copy = dataclasses.replace(m, sequences={**m.sequences, "shop.customers_id_seq": behind})
    # behind in the copy only: introduced, an error; behind in the reference too: inherited, a warning
    assert [(f.check, f.severity) for f in self_checks_postgres(copy, m)] == [("sequence", "error")]
    assert [(f.check, f.severity) for f in self_checks_postgres(copy, copy)] == [("sequence", "warning")]
