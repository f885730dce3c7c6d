"""The result types: JSON round trips, refusal of bad manifests, verdict rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from restorecheck.errors import BadManifestError, ExitCode
from restorecheck.model import (
    MANIFEST_VERSION,
    BackupArtifact,
    Finding,
    Manifest,
    RangeChecksum,
    TableFingerprint,
    verdict_for,
)

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.", min_size=1, max_size=20)
scalars = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=10))

ranges = st.builds(
    RangeChecksum,
    lower=st.one_of(st.none(), st.tuples(scalars)),
    upper=st.one_of(st.none(), st.tuples(scalars)),
    rows=st.integers(0, 10**9),
    checksum=st.text(alphabet="0123456789abcdef", min_size=1, max_size=20),
)
tables = st.builds(
    TableFingerprint,
    name=names,
    kind=st.sampled_from(["table", "partition", "matview", "foreign"]),
    rows=st.one_of(st.none(), st.integers(0, 10**12)),
    checksum=st.one_of(st.none(), st.text(alphabet="0123456789abcdef", max_size=20)),
    checksum_mode=st.sampled_from(["", "hash64-v1", "text64-v1"]),
    key=st.lists(names, max_size=3).map(tuple),
    ranges=st.lists(ranges, max_size=3).map(tuple),
    readable=st.booleans(),
    note=st.one_of(st.none(), st.text(min_size=1, max_size=30)),
)
manifests = st.builds(
    Manifest,
    engine=st.sampled_from(["postgresql", "sqlite"]),
    database=names,
    server_version=st.text(max_size=8),
    taken_at=st.text(max_size=25),
    snapshot=st.one_of(st.none(), st.text(max_size=20)),
    tables=st.lists(tables, max_size=4).map(tuple),
    schema=st.dictionaries(names, st.dictionaries(names, scalars, max_size=3), max_size=3),
    sequences=st.dictionaries(names, st.dictionaries(names, scalars, max_size=3), max_size=3),
    backup=st.one_of(st.none(), st.builds(BackupArtifact, path=names, format=st.just("custom"),
                                          bytes=st.integers(0, 10**12), sha256=st.none())),
)


@given(manifests)
def test_manifest_json_round_trip(m: Manifest) -> None:
    again = Manifest.from_dict(json.loads(m.to_json()))
    assert again == m


def test_manifest_load_errors_are_bad_input(tmp_path: Path) -> None:
    cases = {
        "missing.json": None,
        "notjson.json": "{nope",
        "other.json": json.dumps({"hello": 1}),
        "future.json": json.dumps({"tool": "restorecheck", "manifest_version": MANIFEST_VERSION + 1,
                                   "engine": "postgresql"}),
        "broken.json": json.dumps({"tool": "restorecheck", "manifest_version": 1, "engine": "postgresql",
                                   "tables": [{"rows": 1}]}),
    }
    for name, text in cases.items():
        p = tmp_path / name
        if text is not None:
            p.write_text(text)
        with pytest.raises(BadManifestError) as info:
            Manifest.load(p)
        assert info.value.exit_code == ExitCode.BAD_INPUT
        assert name in info.value.one_line() and "\n" not in info.value.one_line()


def test_verdict_fails_on_any_error_only() -> None:
    warn = Finding("no_reference", "warning", "db", "no reference")
    err = Finding("row_count", "error", "public.t", "expected 2 rows, restored 1")
    assert verdict_for([]) == "pass"
    assert verdict_for([warn]) == "pass"
    assert verdict_for([warn, err]) == "fail"


def test_public_api_is_importable_from_the_package() -> None:
    import restorecheck

    for name in restorecheck.__all__:
        assert getattr(restorecheck, name) is not None, name
    assert restorecheck.Manifest is Manifest
