"""The HTML drill report: one self-contained page from the same ``Report`` as JSON/JUnit/metrics.

Jinja2 templates shipped as package data (``restorecheck/data/html/``), autoescape on: every value
that came from a database (table names, key values, error text) is escaped by the template. Charts
are inline SVG made by pygal (``_svg``): its text goes through ElementTree, which escapes it; the
script pygal adds for its tooltips is removed (``_strip_scripts``), so the page holds no script at
all, and its Content-Security-Policy forbids scripts and every network fetch anyway.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import platform
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restorecheck import __version__
from restorecheck.explain import explain
from restorecheck.model import Finding, Report

# the phases in the order a run makes them; "total" is their sum, not a phase
_PHASE_COLOURS = ("#4e79a7", "#59a14f", "#f28e2b", "#76b7b2", "#edc948", "#b07aa1", "#9c755f", "#bab0ac")
VERDICT_WORDS = {"pass": "PASS: the backup restored and was verified",
                 "fail": "FAIL: the restored copy is not the database backed up",
                 "error": "ERROR: the backup could not be verified"}
COMPARE_WORDS = {"pass": "PASS: the two are the same database",
                 "fail": "FAIL: B is not the same database as A",
                 "error": "ERROR: the two could not be compared"}
NIGHT_WORDS = {"pass": "PASS: every job's backup restored and was verified",
               "fail": "FAIL: a job's restored copy is not the database backed up",
               "error": "ERROR: a job could not be verified"}
MAX_TABLE_ROWS = 500  # tables shown in full (failing ones always); the JSON report lists all


@dataclass(frozen=True)
class Section:
    """One job of a page: its report and, when the job has a history, its recorded runs."""

    report: Report
    job: str | None = None
    kind: str | None = None
    exit_code: int | None = None
    history: Sequence[Any] = ()  # history.RunRecord, any order
    current_run_id: int | None = None
    report_dir: str | None = None


# --- charts (pygal) ---------------------------------------------------------------------------------


def _pygal() -> Any:
    """pygal, without the import hook it adds to sys.meta_path for its map plugins (pygal.maps.*):
    a finder without find_spec that makes every later import of a missing module warn."""
    import pygal

    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]
    return pygal


def _strip_scripts(tree: Any) -> Any:
    """pygal's xml_filter: drop the <script> elements (its tooltip config); the page runs no script."""
    for parent in list(tree.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return tree


def _style(**kw: Any) -> Any:
    _pygal()
    from pygal.style import Style

    return Style(background="transparent", plot_background="transparent", foreground="#333",
                 foreground_strong="#111", foreground_subtle="#aaa", opacity="1", opacity_hover="1",
                 colors=_PHASE_COLOURS, font_family="system-ui, sans-serif", label_font_size=11,
                 major_label_font_size=11, title_font_size=12, value_font_size=10, **kw)


class Stylesheets:
    """The charts of one page share their stylesheets: each chart is rendered without pygal's
    per-chart prefix, its <style> taken out and kept once per distinct text, scoped to a class the
    chart's <svg> gets (pygal repeats a 4 KiB prefix through an 8 KiB stylesheet in every chart)."""

    def __init__(self) -> None:
        self.css: dict[str, str] = {}

    def text(self) -> str:
        return "\n".join(self.css.values())

    def take(self, tree: Any) -> Any:
        for parent in list(tree.iter()):
            for child in list(parent):
                if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "style":
                    css = child.text or ""
                    if "@" in css or "<" in css:  # not the flat rules scope() handles: leave it inline
                        continue
                    cls = "pg-" + hashlib.sha256(css.encode()).hexdigest()[:10]
                    self.css.setdefault(cls, _scope(css, "." + cls))
                    parent.remove(child)
                    tree.set("class", f"{tree.get('class', '')} {cls}".strip())
        if tree.get("id") == "":
            del tree.attrib["id"]
        return tree


def _scope(css: str, scope: str) -> str:
    """pygal's minified, unprefixed rules with every selector put under ``scope`` (an empty selector
    is the chart itself)."""
    out = []
    for selectors, body in re.findall(r"([^{}]*)\{([^{}]*)\}", css):
        scoped = [f"{scope} {sel.strip()}" if sel.strip() else scope for sel in selectors.split(",")]
        out.append(",".join(scoped) + "{" + body + "}")
    return "".join(out)


def _svg(chart: Any, sheets: Stylesheets | None = None) -> str:
    chart.add_xml_filter(_strip_scripts)
    if sheets is not None:
        chart.add_xml_filter(sheets.take)
    return str(chart.render(is_unicode=True))


def _config(sheets: Stylesheets | None = None, **kw: Any) -> dict[str, Any]:
    return {"js": [], "disable_xml_declaration": True, "no_prefix": sheets is not None, "style": _style(),
            "explicit_size": True, "show_dots": False, "pretty_print": False, **kw}


def phase_spans(phases: Mapping[str, float]) -> list[tuple[str, float, float]]:
    """(phase, start, end) in seconds, one after the other in the order recorded; 'total' left out."""
    out, t = [], 0.0
    for name, seconds in phases.items():
        if name == "total":
            continue
        out.append((name, t, t + max(float(seconds), 0.0)))
        t += max(float(seconds), 0.0)
    return out


def rto_position(phases: Mapping[str, float], rto: float | None) -> float | None:
    """Where the RTO line goes on the timeline: the restore's start plus the target (the check 'rto'
    holds the restore phase to it); from 0 when there is no restore phase."""
    if rto is None:
        return None
    return next((st for name, st, _ in phase_spans(phases) if name == "restore"), 0.0) + rto


def timeline_svg(phases: Mapping[str, float], rto: float | None = None, sheets: Stylesheets | None = None) -> str:
    """The phases as a Gantt chart drawn to scale (one bar per phase); the RTO target (the check
    'rto' holds the restore phase to it) a dotted line where the restore had to end by."""
    pygal = _pygal()
    spans = phase_spans(phases)
    n = len(spans)
    rto_at = rto_position(phases, rto)
    end = max([e for _, _, e in spans] + [rto_at or 0.0, 0.001])
    # the bars are lines 18px wide: pygal sets every line's width from its style (.reactive)
    chart = pygal.XY(**_config(sheets, width=760, height=70 + 30 * max(n, 1), show_legend=False, margin=6,
                               show_y_guides=False, x_title="seconds", range=(-0.6, n - 0.4),
                               xrange=(0, end * 1.04), stroke_style={"linecap": "butt"},
                               style=_style(stroke_width="18", stroke_width_hover="18"),
                               print_values=False, truncate_label=-1))
    chart.y_labels = [{"label": f"{name} {e - s:.1f}s", "value": n - 1 - i} for i, (name, s, e) in enumerate(spans)]
    for i, (name, s, e) in enumerate(spans):
        chart.add(name, [(s, n - 1 - i), (max(e, s + end * 0.002), n - 1 - i)])
    if rto_at is not None:  # a dotted vertical line: dots without a stroke
        steps = 6 * max(n, 1)
        chart.add(f"RTO target {rto:g}s", [(rto_at, -0.6 + i * n / steps) for i in range(steps + 1)],
                  stroke=False, show_dots=True, dots_size=1.6)
    return _svg(chart, sheets)


def _short_number(v: float) -> str:
    if v is None:
        return ""
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def trend_svg(title: str, values: Sequence[float | None], current: int | None, unit: str,
              sheets: Stylesheets | None = None) -> str:
    """A small line chart of ``values`` (oldest first); the run at index ``current`` marked."""
    pygal = _pygal()
    chart = pygal.Line(**_config(sheets, width=300, height=160, title=title, show_legend=False, show_x_labels=False,
                                 margin=4, y_title=unit, show_dots=True, dots_size=2.5, allow_interruptions=True,
                                 min_scale=2, max_scale=4, include_x_axis=True, value_formatter=_short_number,
                                 style=_style(stroke_width="2", stroke_width_hover="2")))
    chart.add("runs", list(values))
    if current is not None:
        chart.add("this run", [v if i == current else None for i, v in enumerate(values)], dots_size=6)
    return _svg(chart, sheets)


# --- view model ---------------------------------------------------------------------------------------


def _fmt_bytes(n: int | None) -> str:
    from restorecheck.report import _fmt_bytes as fmt

    return fmt(n)


def _checksum_word(t: Any) -> str:
    if t.checksum_expected is None:
        return "not compared"
    return "equal" if t.checksum_expected == t.checksum_restored else "differs"


def _key_text(v: Any) -> str:
    if v is None:
        return "(open)"
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join("NULL" if x is None else str(x) for x in v) + ")"
    return str(v)


def _differences(f: Finding) -> list[str]:
    """The differing keys or key ranges a finding's details name, as lines of text."""
    d = f.details or {}
    out: list[str] = []
    for r in d.get("ranges") or ():
        if isinstance(r, Mapping):
            out.append(f"keys {_key_text(r.get('lower'))} to {_key_text(r.get('upper'))}: rows expected "
                       f"{r.get('rows_expected')}, restored {r.get('rows_restored')}")
    keys = d.get("keys")  # engine.narrow: [{"key": [...], "change": "missing" | "extra" | "changed"}]
    if isinstance(keys, (list, tuple)):  # or the keys alone (engines/sqlite.py)
        out += [f"key {_key_text(k.get('key'))}: {k.get('change', 'differs')}" for k in keys[:50]
                if isinstance(k, Mapping)]
        plain = [_key_text(k) for k in keys if not isinstance(k, Mapping)]
        if plain:
            out.append("differing keys: " + ", ".join(plain[:50]) + (f" … ({len(plain)} in all)" if len(plain) > 50 else ""))
    if isinstance(d.get("note"), str):
        out.append(d["note"])
    return out


def _tables(report: Report) -> tuple[list[dict[str, Any]], int]:
    by_object: dict[str, list[Finding]] = {}
    for f in report.findings:
        by_object.setdefault(f.object, []).append(f)
    failing = [t for t in report.tables if not t.match]
    rows = failing + [t for t in report.tables if t.match][: max(0, MAX_TABLE_ROWS - len(failing))]
    out = []
    for t in rows:
        diffs = [line for f in by_object.get(t.name, ()) for line in _differences(f)]
        out.append({"name": t.name, "expected": t.rows_expected, "restored": t.rows_restored,
                    "checksum": _checksum_word(t), "match": t.match, "diffs": diffs,
                    "messages": [f.message for f in by_object.get(t.name, ()) if f.severity == "error"]})
    return out, len(report.tables) - len(rows)


def _finding_groups(report: Report) -> list[dict[str, Any]]:
    groups: dict[str, list[Finding]] = {}
    rank = {"error": 0, "warning": 1, "info": 2}
    for f in sorted(report.findings, key=lambda f: (rank.get(f.severity, 3), f.check, f.object)):
        groups.setdefault(f.check, []).append(f)
    out = []
    for check, found in groups.items():
        help_ = explain(check)
        worst = min((rank.get(f.severity, 3) for f in found), default=2)
        out.append({"check": check, "title": help_.title, "meaning": help_.meaning, "todo": help_.todo,
                    "severity": ("error", "warning", "info", "info")[worst],
                    "findings": [{"severity": f.severity, "object": f.object, "message": f.message,
                                  "diffs": _differences(f)} for f in found]})
    return out


def _environment(report: Report) -> list[tuple[str, str]]:
    restore = report.extra.get("restore") if isinstance(report.extra.get("restore"), Mapping) else {}
    assert isinstance(restore, Mapping)
    env: list[tuple[str, str]] = [("restorecheck", report.version), ("engine", report.engine)]
    for key, label in (("server_version", "PostgreSQL (restored on)"), ("sqlite_version", "SQLite"),
                       ("restore_tool", "restore tool"), ("psql_version", "psql"), ("target_kind", "target kind")):
        if restore.get(key) is not None:
            env.append((label, str(restore[key])))
    if report.target:
        env.append(("target", report.target))
    sandbox = restore.get("sandbox")
    if isinstance(sandbox, Mapping):
        env.append(("sandbox", ", ".join(f"{k} {v}" for k, v in sandbox.items() if v not in (None, "", [], {}))))
    elif sandbox:
        env.append(("sandbox", str(sandbox)))
    env.append(("Python", platform.python_version()))
    env.append(("host", f"{platform.node()} ({platform.system()} {platform.release()}, {platform.machine()})"))
    return env


def _history(section: Section, sheets: Stylesheets | None) -> list[dict[str, str]]:
    runs = sorted(section.history, key=lambda r: (r.started_at, r.id))
    if not runs:
        return []
    ids = [r.id for r in runs]
    current = ids.index(section.current_run_id) if section.current_run_id in ids else None
    charts = []
    series: list[tuple[str, list[float | None], str]] = [
        ("restore time", [r.restore_seconds for r in runs], "seconds"),
        ("backup size", [None if r.backup_bytes is None else r.backup_bytes / 1_048_576 for r in runs], "MiB"),
        ("rows verified", [None if r.rows_verified is None else float(r.rows_verified) for r in runs], "rows")]
    for title, values, unit in series:
        if any(v is not None for v in values):
            charts.append({"title": title, "svg": trend_svg(f"{title}, last {len(runs)} runs", values, current, unit,
                                                                 sheets)})
    return charts


def _section(section: Section, index: int, sheets: Stylesheets | None = None) -> dict[str, Any]:
    r = section.report
    tables, more = _tables(r)
    rto = r.extra.get("rto_target_seconds") if r.extra else None
    phases = {k: float(v) for k, v in r.phases.items()}
    spans = phase_spans(phases)
    b = r.backup
    return {
        "index": index, "job": section.job, "kind": section.kind, "exit_code": section.exit_code,
        "report_dir": section.report_dir,
        "verdict": r.verdict,
        "verdict_words": (COMPARE_WORDS if r.command == "compare" else VERDICT_WORDS).get(r.verdict, r.verdict.upper()),
        "command": r.command, "started_at": r.started_at, "source": r.source, "error": r.error,
        "reference": {"manifest": "a manifest", "live": "the live source database",
                      "none": "nothing: counts and checksums were not compared"}.get(r.reference, r.reference),
        "n_errors": len(r.errors), "n_warnings": len(r.warnings), "n_tables": len(r.tables),
        "rows": sum(t.rows_restored or 0 for t in r.tables),
        "phases": [{"name": n, "seconds": e - s} for n, s, e in spans], "total": phases.get("total"),
        "timeline": timeline_svg(phases, float(rto) if isinstance(rto, (int, float)) else None, sheets)
        if spans else None,
        "rto": rto,
        "tables": tables, "tables_more": more, "groups": _finding_groups(r),
        "backup": None if b is None else {"path": b.path, "format": b.format, "bytes": _fmt_bytes(b.bytes),
                                          "raw_bytes": b.bytes, "sha256": b.sha256 or "not computed",
                                          "layers": ", ".join(x for x in (b.encryption, b.compression) if x)},
        "environment": _environment(r), "trends": _history(section, sheets), "kept": r.kept,
    }


@functools.cache
def _env() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("restorecheck", "data/html"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that reproduces this run, passwords masked (``dburl.mask``), shell-quoted."""
    import shlex

    from restorecheck.dburl import mask

    args = list(sys.argv[1:] if argv is None else argv)
    return mask(shlex.join(["restorecheck", *args]))


def render_page(sections: Sequence[Section], *, title: str, command: str | None = None,
                night: Mapping[str, Any] | None = None, generated_at: str | None = None) -> str:
    """The page: one section per report; ``night``: the nightly run's facts (seconds, verdict)."""
    from markupsafe import Markup

    sheets = Stylesheets()
    views = [_section(s, i, sheets) for i, s in enumerate(sections)]
    for v in views:  # pygal's SVG, its text escaped by ElementTree, its scripts removed
        v["timeline"] = Markup(v["timeline"]) if v["timeline"] else None
        for c in v["trends"]:
            c["svg"] = Markup(c["svg"])
    verdicts = [s.report.verdict for s in sections]
    overall = "error" if "error" in verdicts else "fail" if "fail" in verdicts else "pass"
    css = (Path(__file__).parent / "data" / "html" / "report.css").read_text(encoding="utf-8") + sheets.text()
    return str(_env().get_template("report.html.j2").render(
        title=title, sections=views, command=command, night=night, overall=overall,
        overall_words=NIGHT_WORDS[overall] if night else VERDICT_WORDS[overall], css=Markup(css),
        generated_at=generated_at or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        version=__version__))


def render_html(report: Report, *, history: Sequence[Any] = (), current_run_id: int | None = None,
                job: str | None = None, command: str | None = None, generated_at: str | None = None) -> str:
    """The page of one verify, drill or compare."""
    return render_page([Section(report, job=job, history=history, current_run_id=current_run_id)],
                       title=f"restorecheck {report.command}: {report.verdict.upper()}", command=command,
                       generated_at=generated_at)


def write_html(path: str | Path, text: str) -> None:
    """Write the page atomically (as every other output)."""
    from restorecheck.report import write_atomic

    write_atomic(Path(path), text)
