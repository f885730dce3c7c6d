"""Report renderers: JSON against the schema kept in the repo, JUnit XML, Prometheus text, summary."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from restorecheck import report as rep
from restorecheck.model import BackupArtifact, Finding, Report, TableResult, verdict_for


def schema() -> dict[str, Any]:
    text = resources.files("restorecheck").joinpath("data/report.schema.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


def validate(doc: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema()).validate(doc)


def make(verdict: str = "pass", *, findings: tuple[Finding, ...] = (), reference: str = "manifest",
         tables: tuple[TableResult, ...] | None = None, error: str | None = None) -> Report:
    if tables is None:
        tables = (
            TableResult("public.orders", 1000, 1000, "00ab", "00ab", True),
            TableResult('public."we""ird"', 5, 4 if verdict == "fail" else 5, "11", "12" if verdict == "fail" else "11",
                        verdict != "fail"),
        )
    return Report(
        verdict=verdict,  # type: ignore[arg-type]
        engine="postgresql",
        reference=reference,  # type: ignore[arg-type]
        backup=BackupArtifact("/b/shop.dump", "custom", 123456, "a" * 64),
        phases={"backup": 1.25, "restore": 3.5, "verify": 0.75, "total": 5.5},
        tables=tables,
        findings=findings,
        command="drill",
        started_at="2026-11-21T20:00:00Z",
        error=error,
    )


FAIL = (Finding("row_count", "error", 'public."we""ird"', "expected 5 rows, restored 4"),
        Finding("no_reference", "warning", "x", "not compared"))


def test_schema_is_valid_and_required_fields_match_spec() -> None:
    s = schema()
    jsonschema.Draft202012Validator.check_schema(s)
    assert set(s["required"]) == {"tool", "version", "verdict", "engine", "backup", "reference", "phases",
                                  "tables", "findings"}


@pytest.mark.parametrize("r", [make(), make("fail", findings=FAIL),
                               make("error", tables=(), error="backup x does not exist")])
def test_json_report_validates(r: Report) -> None:
    doc = json.loads(rep.to_json(r))
    validate(doc)
    assert doc["verdict"] == r.verdict and doc["tool"] == "restorecheck"
    assert doc["phases"]["total"] == 5.5


def test_schema_rejects_a_pass_with_errors_and_bad_fields() -> None:
    doc = json.loads(rep.to_json(make()))
    bad = dict(doc, findings=[FAIL[0].to_dict()])
    with pytest.raises(jsonschema.ValidationError):
        validate(bad)
    with pytest.raises(jsonschema.ValidationError):
        validate({k: v for k, v in doc.items() if k != "reference"})
    with pytest.raises(jsonschema.ValidationError):
        validate(dict(doc, verdict="ok"))
    assert verdict_for(FAIL) == "fail"


def test_junit_has_a_testcase_per_table_and_check() -> None:
    r = make("fail", findings=FAIL)
    root = ET.fromstring(rep.to_junit(r))
    cases = root.findall(".//testcase")
    names = [(c.get("classname"), c.get("name")) for c in cases]
    assert ("restorecheck.drill.tables", "public.orders") in names
    assert ("restorecheck.drill.checks", "row_count") in names
    assert ("restorecheck.drill.checks", "restore_errors") in names
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == {'public."we""ird"', "row_count"}
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == "2" and suite.get("tests") == str(len(cases))


def test_junit_skips_reference_checks_without_reference_and_reports_errors() -> None:
    root = ET.fromstring(rep.to_junit(make(reference="none")))
    skipped = {c.get("name") for c in root.iter("testcase") if c.find("skipped") is not None}
    assert {"row_count", "checksum"} <= skipped and "restore_errors" not in skipped
    err = ET.fromstring(rep.to_junit(make("error", tables=(), error="boom")))
    assert err.find(".//error") is not None
    assert [c.get("name") for c in err.iter("testcase")] == ["run"]  # no check shown as passed


_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*\{([a-z_]+="(?:[^"\\]|\\.)*",?)*\} [-+0-9.eE]+(?:NaN|Inf)?$')


def test_prometheus_text_format() -> None:
    r = make("fail", findings=FAIL)
    text = rep.to_prometheus(r, now=1_700_000_000.5)
    metrics: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) restorecheck_\w+ ", line), line
            continue
        assert _SAMPLE.match(line), line
        name_labels, value = line.rsplit(" ", 1)
        metrics[name_labels] = float(value)
    base = 'engine="postgresql",command="drill"'
    assert "shop.dump" not in text  # file names change nightly: no label churn
    assert metrics[f"restorecheck_last_run_timestamp_seconds{{{base}}}"] == 1_700_000_000.5
    assert metrics[f'restorecheck_verdict{{{base},verdict="fail"}}'] == 1
    assert metrics[f'restorecheck_verdict{{{base},verdict="pass"}}'] == 0
    assert metrics[f'restorecheck_phase_duration_seconds{{{base},phase="restore"}}'] == 3.5
    assert metrics[f"restorecheck_rows_verified{{{base}}}"] == 1004
    assert metrics[f"restorecheck_bytes_verified{{{base}}}"] == 123456
    assert metrics[f'restorecheck_findings{{{base},check="row_count",severity="error"}}'] == 1
    assert metrics[f'restorecheck_findings{{{base},check="checksum",severity="error"}}'] == 0
    assert text.endswith("\n")


def test_prometheus_label_escaping() -> None:
    assert rep._labels({"a": 'we"ird\\name\n'}) == '{a="we\\"ird\\\\name\\n"}'


def test_human_summary() -> None:
    text = rep.render_human(make("fail", findings=FAIL))
    assert text.startswith("FAIL: restorecheck drill found 1 problem")
    assert "expected 5 rows, restored 4" in text and "DIFFERS" in text and "restore 3.5s" in text
    ok = rep.render_human(make())
    assert ok.startswith("PASS") and "2 tables" in ok
    none = rep.render_human(make(reference="none"))
    assert "NOT compared" in none or "not compared" in none


def test_write_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = make()
    rep.write_outputs(r, report_file=tmp_path / "r.json", junit_file=tmp_path / "j.xml",
                      metrics_file=tmp_path / "m.prom", now=1.0)
    validate(json.loads((tmp_path / "r.json").read_text()))
    ET.fromstring((tmp_path / "j.xml").read_text())
    assert "restorecheck_success" in (tmp_path / "m.prom").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.xml", "m.prom", "r.json"]  # no temp files left
    rep.write_outputs(r, report_file="-")
    validate(json.loads(capsys.readouterr().out))
