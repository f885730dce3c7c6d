"""Check ids are a closed, typed list (issue 13): model.CheckId is the one place they are named."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from restorecheck.model import CHECK_IDS, Finding

SOURCE = Path(__file__).resolve().parents[2] / "restorecheck"


def test_the_report_schema_lists_exactly_the_check_ids() -> None:
    schema = json.loads(resources.files("restorecheck").joinpath("data/report.schema.json").read_text())
    assert schema["properties"]["findings"]["items"]["properties"]["check"]["enum"] == list(CHECK_IDS)


def test_a_finding_with_an_unknown_id_or_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown check id 'row_counts'"):
        Finding("row_counts", "error", "t", "m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown severity"):
        Finding("row_count", "fatal", "t", "m")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Finding.from_dict({"check": "made_up", "severity": "error", "object": "t", "message": "m"})


def test_every_check_id_is_made_somewhere() -> None:
    """No id is only declared: each appears as a string literal outside model.py (a finding made
    with it, or a check function registered for it)."""
    text = "\n".join(p.read_text() for p in SOURCE.rglob("*.py") if p.name != "model.py")
    unused = [c for c in CHECK_IDS if not re.search(rf'"{c}"', text)]
    assert unused == []
