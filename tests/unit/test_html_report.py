"""The HTML report (no browser here: tests/integration/test_html_report.py opens it in Chromium)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html.parser
import re

import pytest

from restorecheck import html_report as hr
from restorecheck import report as rep
from restorecheck.explain import CHECK_HELP
from restorecheck.history import RunRecord
from restorecheck.model import CHECK_IDS, BackupArtifact, Finding, Report, TableResult

HOSTILE = "<script>alert(1)</script>"
NASTY = ['"quoted" \'single\'', "</style><b>x</b>", "]]><i>y</i>", "</svg><img src=x onerror=alert(2)>"]


def hostile_report() -> Report:
    tables = (
        TableResult("main.ok", 10, 10, "aa", "aa", True),
        TableResult(f"main.{HOSTILE}", 7, 5, "01", "02", False),
        *(TableResult(f"main.t{i}", 3, 3, "c", "c", True) for i in range(5)),
    )
    findings = (
        Finding("row_count", "error", f"main.{HOSTILE}", f"expected 7 rows, restored 5 {NASTY[0]}",
                details={"key": ["id"], "ranges": [{"lower": [NASTY[1]], "upper": [NASTY[2]],
                                                    "rows_expected": 7, "rows_restored": 5}]}),
        Finding("checksum", "error", f"main.{HOSTILE}", "content differs " + NASTY[3],
                details={"keys": [{"key": [NASTY[0], 7], "change": "changed"}, {"key": [None, 8], "change": "missing"}]}),
        Finding("table_missing", "error", "main.gone", "table missing: " + NASTY[1]),
        Finding("sequence", "warning", "main.s", "behind"),
    )
    return Report(verdict="fail", engine="sqlite", reference="manifest",
                  backup=BackupArtifact(f"/b/{HOSTILE}.db", "sqlite", 4096, "f" * 64),
                  phases={"backup": 0.5, "restore": 1.5, "verify": 0.25, "total": 2.25, "cleanup": 0.1},
                  tables=tables, findings=findings, command="verify", started_at="2026-12-01T02:00:00Z",
                  source=NASTY[2], extra={"rto_target_seconds": 1.0, "restore": {"sqlite_version": NASTY[1]}})


class _Scan(html.parser.HTMLParser):
    """Every start tag and all text, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, _ in attrs:
            assert not name.startswith("on"), f"an event handler attribute {name} on <{tag}>"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def scan(page: str) -> _Scan:
    s = _Scan()
    s.feed(page)
    return s


def test_hostile_names_and_values_render_as_text() -> None:
    page = hr.render_html(hostile_report(), command="restorecheck verify x.db")
    s = scan(page)
    assert "script" not in s.tags and "img" not in s.tags and "i" not in s.tags
    assert s.tags.count("style") == 1  # one stylesheet: ours and the charts's (html_report.Stylesheets)
    text = "".join(s.text)
    assert f"main.{HOSTILE}" in text  # shown, as text
    for nasty in NASTY:
        assert nasty in text
    assert "</style><b>" not in page and "]]><i>" not in page and HOSTILE not in page


def test_page_forbids_scripts_and_network() -> None:
    page = hr.render_html(hostile_report())
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp and "default-src 'none'" in csp.group(1) and "script-src" not in csp.group(1)
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing fetched
    assert not re.search(r"@import|url\(", page)


def test_chart_text_from_pygal_is_escaped() -> None:
    svg = hr.timeline_svg({HOSTILE: 1.0, NASTY[1]: 2.0, NASTY[2]: 0.5}, rto=2.0)
    assert "<script" not in svg and "</style><b>" not in svg and "]]><i>" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    trend = hr.trend_svg(f"restore {HOSTILE}", [1.0, None, 2.0], 2, NASTY[3])
    assert "<script" not in trend and "<img" not in trend and "&lt;script&gt;" in trend


def test_timeline_has_one_bar_per_phase_and_the_rto_line() -> None:
    svg = hr.timeline_svg({"backup": 1.0, "restore": 2.0, "verify": 0.5, "total": 3.5, "cleanup": 0.2}, rto=2.5)
    bars = re.findall(r'<g class="series serie-\d+ color-\d+"><path [^>]*class="line reactive nofill"', svg)
    assert len(bars) == 4  # total is their sum, not a phase; the RTO line has no stroke, only dots
    assert hr.phase_spans({"a": 1.0, "total": 9.0, "b": 2.0}) == [("a", 0.0, 1.0), ("b", 1.0, 3.0)]


def test_failing_tables_first_with_their_differing_ranges() -> None:
    page = hr.render_html(hostile_report())
    body = page[page.index('<table class="tables">'):]
    assert body.index("main.&lt;script&gt;") < body.index("main.ok")
    assert "keys (&lt;/style&gt;&lt;b&gt;x&lt;/b&gt;) to (]]&gt;&lt;i&gt;y&lt;/i&gt;): rows expected 7, restored 5" in body
    assert "key (&#34;quoted&#34; &#39;single&#39;, 7): changed" in body and "key (NULL, 8): missing" in body


def test_findings_grouped_by_check_with_explanation() -> None:
    page = hr.render_html(hostile_report())
    groups = re.findall(r'<div class="group g-(\w+)" data-check="(\w+)">', page)
    assert groups == [("error", "checksum"), ("error", "row_count"), ("error", "table_missing"),
                      ("warning", "sequence")]
    assert CHECK_HELP["row_count"].todo.split(";")[0] in page.replace("&#39;", "'")


def test_every_check_id_is_explained() -> None:
    assert set(CHECK_HELP) == set(CHECK_IDS)
    assert all(e.title and e.meaning and e.todo for e in CHECK_HELP.values())


def test_backup_environment_and_masked_command() -> None:
    cmd = hr.command_line(["drill", "postgresql://app:s3cret@db/shop", "--html", "r.html"])
    assert "s3cret" not in cmd and "***" in cmd
    page = hr.render_html(hostile_report(), command=cmd)
    assert "f" * 64 in page and "4.0 KiB" in page and "sqlite" in page
    assert '<pre id="command">restorecheck drill' in page
    assert "restorecheck</dt><dd>" in page and "Python</dt>" in page


def _run(i: int, restore: float, current: bool = False) -> RunRecord:
    t = dt.datetime(2026, 11, 1, 2, 0) + dt.timedelta(days=i)
    return RunRecord(id=i, job="app", command="drill", started_at=t, finished_at=t, verdict="pass", exit_code=0,
                     verified=True, engine="postgresql", source=None, backup_path=None, backup_format="custom",
                     backup_bytes=1_000_000 + i * 1000, backup_sha256=None, rows_verified=100 + i,
                     restore_seconds=restore, total_seconds=restore + 1, error=None)


def test_history_trends_mark_the_current_run() -> None:
    runs = [_run(i, 1.0 + i / 10) for i in range(6)]
    page = hr.render_html(hostile_report(), history=list(reversed(runs)), current_run_id=5)
    assert page.count('<div class="chart"') == 3
    assert "restore time, last 6 runs" in page
    no_history = hr.render_html(hostile_report())
    assert '<div class="chart"' not in no_history


def test_night_page_has_a_section_per_job() -> None:
    ok = dataclasses.replace(hostile_report(), verdict="pass", findings=(), tables=())
    err = Report(verdict="error", engine="postgresql", reference="none", command="verify", error="no backup matched")
    page = hr.render_page([hr.Section(ok, job="a", exit_code=0), hr.Section(hostile_report(), job=HOSTILE, exit_code=1),
                           hr.Section(err, job="c", exit_code=3)], title="night", night={"seconds": 3.0,
                                                                                         "started_at": "x", "passed": 1})
    assert page.count('<section class="job"') == 3
    assert "ERROR: the backup could not be verified" in page and "no backup matched" in page
    assert HOSTILE not in page


def test_page_is_small() -> None:
    page = hr.render_html(hostile_report())
    assert len(page.encode()) < 60_000, len(page.encode())


# --- the terminal summary ---------------------------------------------------------------------


def test_summary_has_no_colour_by_default_and_ends_with_the_html_path() -> None:
    text = rep.render_human(hostile_report(), html_path="out/drill.html")
    assert "\x1b[" not in text
    assert text.rstrip().splitlines()[-1] == "HTML report: out/drill.html"
    phases = next(line for line in text.splitlines() if line.startswith("phases: "))
    assert "backup 0.5s, restore 1.5s, verify 0.2s, cleanup 0.1s (total 2.2s)" in phases
    bar = phases.split()[1]
    assert set(bar) <= set("█▓▒░") and 30 <= len(bar) <= 44  # drawn to scale: restore the longest
    assert bar.count("▓") > bar.count("█") > bar.count("▒")


def test_summary_colours_only_when_asked() -> None:
    coloured = rep.render_human(hostile_report(), color=True)
    assert "\x1b[" in coloured
    plain = re.sub(r"\x1b\[[0-9;]*m", "", coloured)
    assert plain == rep.render_human(hostile_report())


def test_colour_needs_a_terminal_and_no_NO_COLOR(monkeypatch: pytest.MonkeyPatch) -> None:
    from restorecheck.cli import _use_color

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert _use_color(Tty()) is True
    with open(__file__) as fh:
        assert _use_color(fh) is False  # a file
    monkeypatch.setenv("NO_COLOR", "1")
    assert _use_color(Tty()) is False


def test_rto_line_is_where_the_restore_had_to_end() -> None:
    phases = {"seed": 4.0, "backup": 1.0, "restore": 2.0, "verify": 1.0, "total": 8.0}
    assert hr.rto_position(phases, 3.0) == 8.0  # restore starts at 5s
    assert hr.rto_position({"verify": 1.0}, 3.0) == 3.0 and hr.rto_position(phases, None) is None
    assert '<circle' in hr.timeline_svg(phases, rto=3.0)  # the dotted line: dots only
    assert '<circle' not in hr.timeline_svg(phases)


def test_run_summary_colours_only_when_asked() -> None:
    rows = [("a", "source", hostile_report(), 1)]
    assert "\x1b[" not in rep.render_run_summary(rows)
    coloured = rep.render_run_summary(rows, color=True)
    assert "\x1b[" in coloured and re.sub(r"\x1b\[[0-9;]*m", "", coloured) == rep.render_run_summary(rows)
