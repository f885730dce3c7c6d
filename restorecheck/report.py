"""Renderers of a ``Report``: for people (text), and for machines (JSON, JUnit XML, Prometheus).

All renderers are pure functions of the report (and, for metrics, the time). ``write_outputs``
writes the files a command was asked for, each atomically (a temporary file renamed into place,
as node_exporter's textfile collector requires); ``-`` as the JSON report path means stdout.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from restorecheck.engines.base import ProgressFn, no_progress
from restorecheck.errors import BadInputError, EnvironmentFailure
from restorecheck.model import CHECK_IDS, Finding, Report
from restorecheck.paths import require_output_file

# Checks that compare against a reference: skipped (JUnit) when there is none.
REFERENCE_CHECKS = ("table_missing", "table_extra", "row_count", "checksum", "schema", "sequence",
                    "fk_orphans", "large_objects")
# The checks a JUnit report always lists, so that a dashboard sees the same testcases every night.
CORE_CHECKS = ("backup_file", "restore_errors", *REFERENCE_CHECKS)
_VERDICT_WORD = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}


# --- JSON ------------------------------------------------------------------------------------


def to_json(report: Report) -> str:
    """The SPEC's JSON report (plus extra fields), pretty-printed, ending with a newline."""
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False,
                      default=str) + "\n"


# --- human summary ---------------------------------------------------------------------------


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _fmt_rows(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


_PHASE_STYLES = ("blue", "green", "yellow", "cyan", "magenta", "bright_blue", "bright_green", "bright_yellow")
_PHASE_CHARS = "█▓▒░"  # without colour, neighbouring phases still look different
_VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "error": "bold yellow"}


def phase_bar(phases: dict[str, float] | Any, *, width: int = 40) -> Any:
    """The phases as one compact bar drawn to scale (a rich Text), each phase its own colour and
    fill, then the phases named with their durations. 'total' is their sum, left out."""
    from rich.text import Text

    spans = [(k, max(float(v), 0.0)) for k, v in phases.items() if k != "total"]
    whole = sum(v for _, v in spans) or 1.0
    bar = Text()
    for i, (_name, seconds) in enumerate(spans):
        cells = max(1, round(seconds / whole * width)) if seconds > 0 else 0
        bar.append(_PHASE_CHARS[i % len(_PHASE_CHARS)] * cells, style=_PHASE_STYLES[i % len(_PHASE_STYLES)])
    bar.append(" ")
    for i, (name, seconds) in enumerate(spans):
        bar.append(f"{name} {seconds:.1f}s", style=_PHASE_STYLES[i % len(_PHASE_STYLES)])
        if i < len(spans) - 1:
            bar.append(", ")
    if "total" in phases:
        bar.append(f" (total {float(phases['total']):.1f}s)")
    return bar


def render_human(report: Report, *, max_tables: int = 40, width: int = 110, max_keys: int = 0,
                 color: bool = False, html_path: str | None = None) -> str:
    """A summary for a terminal or an e-mail: verdict, backup, phases, tables, findings; the path of
    the HTML report last when one was written. ``max_keys``: under each finding, up to that many of
    the differing keys or key ranges it names (``Report.summary``, the pytest plugin's assertion
    message). ``color``: ANSI colours (for a terminal only)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, color_system="standard" if color else None,
                      no_color=not color, highlight=False, markup=False, soft_wrap=True)
    head = f"{_VERDICT_WORD.get(report.verdict, report.verdict.upper())}: restorecheck {report.command}"
    n_err, n_warn = len(report.errors), len(report.warnings)
    if report.verdict == "pass":
        head += f" verified the backup ({len(report.tables)} tables"
        head += f", {n_warn} warnings)" if n_warn else ")"
    elif report.verdict == "fail":
        head += f" found {n_err} problem{'s' if n_err != 1 else ''}"
        head += f" and {n_warn} warnings" if n_warn else ""
    else:
        head += f" could not verify: {report.error or 'error'}"
    console.print(Text(head, style=_VERDICT_STYLE.get(report.verdict, "")))
    if report.backup:
        b = report.backup
        sha = f", sha256 {b.sha256[:16]}…" if b.sha256 else ""
        console.print(f"backup: {b.path} ({b.format}, {_fmt_bytes(b.bytes)}{sha})")
    if report.source:
        console.print(f"source: {report.source}")
    ref_text = {"manifest": "a manifest", "live": "the live source database",
                "none": "nothing (no reference: counts and checksums were not compared)"}
    console.print(f"compared with: {ref_text.get(report.reference, report.reference)}")
    if report.phases:
        console.print(Text("phases: ").append_text(phase_bar(report.phases)))

    if report.tables:
        mismatched = [t for t in report.tables if not t.match]
        shown = mismatched + [t for t in report.tables if t.match]
        table = Table(title=None, show_edge=False, pad_edge=False)
        table.add_column("table")
        table.add_column("rows expected", justify="right")
        table.add_column("rows restored", justify="right")
        table.add_column("checksum")
        table.add_column("ok")
        for t in shown[:max_tables]:
            if t.checksum_expected is None:
                cs = "not compared"
            elif t.checksum_expected == t.checksum_restored:
                cs = "equal"
            else:
                cs = "DIFFERS"
            table.add_row(t.name, _fmt_rows(t.rows_expected), _fmt_rows(t.rows_restored), cs,
                          Text("yes", style="green") if t.match else Text("NO", style="bold red"))
        console.print(table)
        if len(shown) > max_tables:
            console.print(f"... and {len(shown) - max_tables} more tables (all listed in --report)")
    if report.findings:
        console.print("findings:")
        for f in sorted(report.findings, key=_finding_order):
            line = Text("  ")
            line.append(f"{f.severity.upper():7}", style={"error": "bold red", "warning": "yellow"}.get(f.severity, ""))
            line.append(f" {f.check:15} {f.object}: {f.message}")
            console.print(line)
            for key_line in _key_lines(f, max_keys):
                console.print(f"          {key_line}", markup=False)
    if html_path:
        console.print(f"HTML report: {html_path}")
    return buf.getvalue()


def _key_lines(f: Finding, limit: int) -> list[str]:
    """The keys a finding names (``details``: ``key`` columns, ``keys`` narrowed down between two
    live databases, ``ranges`` of differing key ranges), at most ``limit`` of each."""
    if limit <= 0 or not f.details:
        return []
    d = f.details
    lines: list[str] = []
    key = d.get("key")
    cols = ", ".join(str(c) for c in key) if isinstance(key, list | tuple) else None
    keys = d.get("keys")
    if isinstance(keys, Mapping):  # narrowing: {"missing": [...], "extra": [...], "changed": [...]}
        for kind, values in keys.items():
            if isinstance(values, list | tuple) and values:
                shown = "; ".join(_show_key(v) for v in values[:limit])
                more = f" (+{len(values) - limit} more in the report)" if len(values) > limit else ""
                lines.append(f"keys {kind}{f' ({cols})' if cols else ''}: {shown}{more}")
    elif isinstance(keys, list | tuple) and keys:
        shown = "; ".join(_show_key(v) for v in keys[:limit])
        more = f" (+{len(keys) - limit} more in the report)" if len(keys) > limit else ""
        lines.append(f"keys{f' ({cols})' if cols else ''}: {shown}{more}")
    ranges = d.get("ranges")
    if isinstance(ranges, list | tuple) and ranges:
        parts = []
        for r in ranges[:limit]:
            if isinstance(r, Mapping):
                lo = "start" if r.get("lower") is None else _show_key(r.get("lower"))
                hi = "end" if r.get("upper") is None else _show_key(r.get("upper"))
                parts.append(f"[{lo} .. {hi}) rows {_fmt_rows(r.get('rows_expected'))} -> "
                             f"{_fmt_rows(r.get('rows_restored'))}")
        more = f" (+{len(ranges) - limit} more in the report)" if len(ranges) > limit else ""
        lines.append(f"differing key ranges{f' ({cols})' if cols else ''}: {'; '.join(parts)}{more}")
    return lines


def _show_key(value: Any) -> str:
    if isinstance(value, Mapping) and "key" in value:  # narrowed: {"key": [...], "change": ...}
        return f"{_show_key(value['key'])} {value.get('change', '')}".strip()
    if isinstance(value, list | tuple):
        return "(" + ", ".join(str(v) for v in value) + ")" if len(value) != 1 else str(value[0])
    return str(value)


def _finding_order(f: Finding) -> tuple[int, str, str]:
    return ({"error": 0, "warning": 1}.get(f.severity, 2), f.check, f.object)


# --- JUnit XML --------------------------------------------------------------------------------


def _check_list(report: Report) -> list[str]:
    extra = report.extra.get("checks") if report.extra else None
    checks = list(extra) if isinstance(extra, (list, tuple)) else list(CORE_CHECKS)
    for f in report.findings:
        if f.check not in checks:
            checks.append(f.check)
    return checks


def to_junit(report: Report) -> str:
    """JUnit XML: a testcase per table (rows and checksum) and per check."""
    suite_name = f"restorecheck.{report.command}"
    suites = ET.Element("testsuites", name="restorecheck")
    suite = ET.SubElement(suites, "testsuite", name=suite_name)
    total = failures = errors = skipped = 0
    duration = float(report.phases.get("total", sum(report.phases.values()) if report.phases else 0.0))

    if report.verdict == "error":
        case = ET.SubElement(suite, "testcase", classname=suite_name, name="run")
        err = ET.SubElement(case, "error", message=report.error or "error", type="error")
        err.text = report.error or ""
        total, errors = 1, 1

    by_object: dict[str, list[Finding]] = {}
    for f in report.findings:
        by_object.setdefault(f.object, []).append(f)
    for t in report.tables:
        total += 1
        case = ET.SubElement(suite, "testcase", classname=f"{suite_name}.tables", name=t.name)
        if not t.match:
            failures += 1
            msgs = [f.message for f in by_object.get(t.name, []) if f.severity == "error"]
            message = msgs[0] if msgs else (
                f"rows expected {t.rows_expected}, restored {t.rows_restored}; checksum "
                f"{'equal' if t.checksum_expected == t.checksum_restored else 'differs'}")
            fail = ET.SubElement(case, "failure", message=message, type="mismatch")
            fail.text = "\n".join(msgs) or message
        else:
            out = ET.SubElement(case, "system-out")
            out.text = f"rows {t.rows_restored} checksum {t.checksum_restored}"

    # after an error nothing was verified: no check is shown as passed
    for check in [] if report.verdict == "error" else _check_list(report):
        total += 1
        case = ET.SubElement(suite, "testcase", classname=f"{suite_name}.checks", name=check)
        found = [f for f in report.findings if f.check == check]
        errs = [f for f in found if f.severity == "error"]
        if errs:
            failures += 1
            fail = ET.SubElement(case, "failure", type=check,
                                 message=f"{len(errs)} {check} finding(s): {errs[0].message}")
            fail.text = "\n".join(f"{f.object}: {f.message}" for f in errs)
        elif report.reference == "none" and check in REFERENCE_CHECKS:
            skipped += 1
            ET.SubElement(case, "skipped", message="no reference: not compared")
        warns = [f for f in found if f.severity != "error"]
        if warns:
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(f"{f.severity}: {f.object}: {f.message}" for f in warns)

    suite.set("tests", str(total))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    suite.set("time", f"{duration:.3f}")
    if report.started_at:
        suite.set("timestamp", report.started_at)
    suites.set("tests", str(total))
    suites.set("failures", str(failures))
    suites.set("errors", str(errors))
    suites.set("time", f"{duration:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


# --- Prometheus text format -------------------------------------------------------------------


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(base: dict[str, str], **more: str) -> str:
    items = {**base, **more}
    return "{" + ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in items.items()) + "}"


def _num(value: float) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


Family = tuple[str, str, str, list[tuple[dict[str, str], float]]]  # name, help, type, samples


def _families(report: Report, now: float) -> list[Family]:
    """The metric families of one report, their samples without the base labels."""
    out: list[Family] = []

    def metric(name: str, help_text: str, kind: str, samples: Iterable[tuple[dict[str, str], float]]) -> None:
        out.append((name, help_text, kind, list(samples)))

    metric("restorecheck_last_run_timestamp_seconds", "Unix time when this run finished.", "gauge",
           [({}, round(now, 3))])
    metric("restorecheck_verdict", "1 for the verdict of the last run, 0 for the others.", "gauge",
           [({"verdict": v}, 1 if report.verdict == v else 0) for v in ("pass", "fail", "error")])
    metric("restorecheck_success", "1 when the backup was verified (exit 0), else 0.", "gauge",
           [({}, 1 if report.verdict == "pass" else 0)])
    metric("restorecheck_phase_duration_seconds", "Duration of each phase of the last run.", "gauge",
           [({"phase": k}, round(float(v), 3)) for k, v in report.phases.items()])
    rows = sum(t.rows_restored or 0 for t in report.tables)
    metric("restorecheck_rows_verified", "Rows counted and checksummed in the restored copy.", "gauge",
           [({}, rows)])
    metric("restorecheck_bytes_verified", "Size of the backup that was verified, in bytes.", "gauge",
           [({}, report.backup.bytes if report.backup else 0)])
    metric("restorecheck_tables", "Tables in the report, by whether they matched their reference.", "gauge",
           [({"match": "true"}, sum(1 for t in report.tables if t.match)),
            ({"match": "false"}, sum(1 for t in report.tables if not t.match))])
    checks = list(CHECK_IDS)
    for f in report.findings:
        if f.check not in checks:
            checks.append(f.check)
    samples = []
    for check in checks:
        for sev in ("error", "warning"):
            n = sum(1 for f in report.findings if f.check == check and f.severity == sev)
            samples.append(({"check": check, "severity": sev}, n))
    metric("restorecheck_findings", "Findings of the last run by check and severity.", "gauge", samples)
    return out


def _render_families(per_base: list[tuple[dict[str, str], list[Family]]]) -> str:
    """One HELP/TYPE per family, then its samples for every base label set (the text format wants
    a family's samples together)."""
    lines: list[str] = []
    order: list[str] = []
    grouped: dict[str, tuple[str, str, list[str]]] = {}
    for base, families in per_base:
        for name, help_text, kind, samples in families:
            if name not in grouped:
                order.append(name)
                grouped[name] = (help_text, kind, [])
            grouped[name][2].extend(f"{name}{_labels(base, **extra)} {_num(value)}" for extra, value in samples)
    for name in order:
        help_text, kind, rendered = grouped[name]
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *rendered]
    return "\n".join(lines) + "\n"


def to_prometheus(report: Report, now: float | None = None) -> str:
    """Prometheus text exposition format (for node_exporter's textfile collector)."""
    now = time.time() if now is None else now
    # Labels stay stable from run to run (no file names: a nightly backup gets a new name every
    # night, which would make a new time series each time).
    base = {"engine": report.engine, "command": report.command}
    return _render_families([(base, _families(report, now))])


def combined_prometheus(jobs: Iterable[tuple[str, Report, int]], now: float | None = None) -> str:
    """The nightly job's one textfile: every job's metrics with a ``job`` label (bounded: job names
    come from the config, never table or file names), plus each job's exit code."""
    now = time.time() if now is None else now
    per_base: list[tuple[dict[str, str], list[Family]]] = []
    for job, report, code in jobs:
        families = _families(report, now)
        families.append(("restorecheck_exit_code", "Exit code of the job's last run (0 verified, 1 failed, "
                         "2 bad input, 3 environment).", "gauge", [({}, code)]))
        per_base.append(({"job": job, "engine": report.engine, "command": report.command}, families))
    return _render_families(per_base)


def combined_junit(jobs: Iterable[tuple[str, Report]]) -> str:
    """One JUnit file with a testsuite per job (each job's suite as ``to_junit`` makes it)."""
    suites = ET.Element("testsuites", name="restorecheck run")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    seconds = 0.0
    for job, report in jobs:
        suite = ET.fromstring(to_junit(report)).find("testsuite")
        assert suite is not None
        suite.set("name", job)
        for case in suite.iter("testcase"):
            case.set("classname", job + case.get("classname", "").removeprefix(f"restorecheck.{report.command}"))
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        seconds += float(suite.get("time", "0"))
        suites.append(suite)
    for key, n in totals.items():
        suites.set(key, str(n))
    suites.set("time", f"{seconds:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def render_run_summary(rows: Iterable[tuple[str, str, Report, int]], *, width: int = 120,
                       max_findings: int = 5, color: bool = False) -> str:
    """The nightly job's table: one line per job (name, kind, verdict, exit code, backup size, rows,
    restore and total time, findings), then each job's error and its first findings, one a line."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, color_system="standard" if color else None,
                      no_color=not color, highlight=False, markup=False, soft_wrap=True)
    table = Table(show_edge=False, pad_edge=False)
    for col, justify in (("job", "left"), ("kind", "left"), ("verdict", "left"), ("exit", "right"),
                         ("backup", "right"), ("rows", "right"), ("restore", "right"), ("total", "right"),
                         ("errors", "right"), ("warnings", "right")):
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    problems: list[str] = []
    for job, kind, report, code in rows:
        restore = report.phases.get("restore")
        total = report.phases.get("total")
        table.add_row(job, kind, Text(_VERDICT_WORD.get(report.verdict, report.verdict),
                                      style=_VERDICT_STYLE.get(report.verdict, "")), str(code),
                      _fmt_bytes(report.backup.bytes) if report.backup else "-",
                      _fmt_rows(sum(t.rows_restored or 0 for t in report.tables)) if report.tables else "-",
                      f"{restore:.1f}s" if restore is not None else "-", f"{total:.1f}s" if total is not None else "-",
                      str(len(report.errors)), str(len(report.warnings)))
        if report.error:
            problems.append(f"  {job}: ERROR {report.error}")
        shown = [f for f in sorted(report.findings, key=_finding_order) if f.severity != "info"]
        for f in shown[:max_findings]:
            problems.append(f"  {job}: {f.severity.upper()} {f.check} {f.object}: {f.message}")
        if len(shown) > max_findings:
            problems.append(f"  {job}: ... and {len(shown) - max_findings} more (its report.json lists them)")
    console.print(table)
    for line in problems:
        console.print(line, markup=False)
    return buf.getvalue()


def _spark(values: Sequence[float]) -> str:
    """A one-line chart of ``values`` (oldest first)."""
    bars = "▁▂▃▄▅▆▇█"
    if not values:
        return ""
    lo, hi = min(values), max(values)
    return "".join(bars[0 if hi == lo else int((v - lo) / (hi - lo) * (len(bars) - 1))] for v in values)


def _change(first: float, last: float) -> str:
    if not first:
        return ""
    return f" ({(last - first) / first:+.1%})"


def render_history(runs: Sequence[Any], trends: Sequence[Any], *, width: int = 130) -> str:
    """``restorecheck history``: the runs (newest first), then per job the trends of restore time,
    backup size and rows, oldest to newest."""
    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None, highlight=False,
                      markup=False, soft_wrap=True)
    if not runs:
        console.print("no runs recorded (for the job and time asked)")
        return buf.getvalue()
    table = Table(show_edge=False, pad_edge=False)
    for col, justify in (("started (UTC)", "left"), ("job", "left"), ("command", "left"), ("verdict", "left"),
                         ("exit", "right"), ("restore", "right"), ("total", "right"), ("backup", "right"),
                         ("rows", "right"), ("errors", "right"), ("warnings", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in runs:
        errors = sum(1 for f in r.findings if f[1] == "error")
        warnings = sum(1 for f in r.findings if f[1] == "warning")
        table.add_row(r.started_at.strftime("%Y-%m-%d %H:%M:%S"), r.job, r.command,
                      _VERDICT_WORD.get(r.verdict, r.verdict), str(r.exit_code),
                      f"{r.restore_seconds:.1f}s" if r.restore_seconds is not None else "-",
                      f"{r.total_seconds:.1f}s" if r.total_seconds is not None else "-",
                      _fmt_bytes(r.backup_bytes) if r.backup_bytes is not None else "-",
                      _fmt_rows(r.rows_verified), str(errors), str(warnings))
    console.print(table)
    console.print("trends (oldest to newest):")
    for t in trends:
        console.print(f"  {t.job} ({t.runs} runs)")
        if t.restore_seconds:
            rs = t.restore_seconds
            console.print(f"    restore time  {_spark(rs)}  last {rs[-1]:.1f}s, median {t.restore_median:.1f}s, "
                          f"min {min(rs):.1f}s, max {max(rs):.1f}s")
        if t.backup_bytes:
            bs = t.backup_bytes
            console.print(f"    backup size   {_spark(bs)}  last {_fmt_bytes(bs[-1])}, first {_fmt_bytes(bs[0])}"
                          f"{_change(bs[0], bs[-1])}")
        if t.rows:
            rows = t.rows
            console.print(f"    rows          {_spark(rows)}  last {_fmt_rows(rows[-1])}, first {_fmt_rows(rows[0])}"
                          f"{_change(rows[0], rows[-1])}")
    return buf.getvalue()


# --- writing ---------------------------------------------------------------------------------


def _write_atomic(path: Path, text: str) -> None:
    path = Path(path)
    require_output_file(path, "output file")  # a rename over /dev/null would replace the device
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise EnvironmentFailure(f"cannot write {path}: {exc.strerror or exc}",
                                 "choose a writable path, or free space on its file system") from None


write_atomic = _write_atomic  # for the nightly job's combined files


def check_writable(path: str | Path | None, option: str) -> None:
    """Fail fast, before any long work, when ``path`` (an output file; '-' is stdout) cannot be written.

    Creates and removes a temporary file beside it, as ``write_outputs`` will; BadInputError (exit 2).
    """
    if path is None or str(path) == "-":
        return
    path = Path(path)
    parent = path.parent
    require_output_file(path, f"the {option} file")
    if path.is_dir():
        problem = "it is a directory"
    elif not parent.is_dir():
        problem = f"the directory {parent} does not exist"
    else:
        try:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
        except OSError as exc:
            problem = f"the directory {parent} is not writable ({exc.strerror or exc})"
        else:
            os.close(fd)
            os.unlink(name)
            return
    raise BadInputError(f"cannot write the {option} file {path}: {problem}",
                        "give a path in an existing, writable directory")


def write_outputs(
    report: Report,
    *,
    report_file: str | Path | None = None,
    junit_file: str | Path | None = None,
    metrics_file: str | Path | None = None,
    now: float | None = None,
) -> None:
    """Write the JSON report ('-' = stdout), the JUnit XML and the Prometheus metrics asked for."""
    if report_file is not None:
        text = to_json(report)
        if str(report_file) == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            _write_atomic(Path(report_file), text)
    if junit_file is not None:
        _write_atomic(Path(junit_file), to_junit(report))
    if metrics_file is not None:
        _write_atomic(Path(metrics_file), to_prometheus(report, now))


# --- progress on a terminal -------------------------------------------------------------------


@contextlib.contextmanager
def progress_reporter(enabled: bool) -> Iterator[ProgressFn]:
    """A ProgressFn that draws rich progress bars on stderr; a no-op when not ``enabled``.

    One bar per task name; ``total`` None shows a spinner with the elapsed time. Safe to call
    from worker threads (rich's Progress locks internally).
    """
    if not enabled:
        yield no_progress
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    tasks: dict[str, Any] = {}
    lock = threading.Lock()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        totals: dict[str, float | None] = {}

        def report(task: str, done: float, total: float | None) -> None:
            with lock:
                if task not in tasks:
                    for prev, tid in tasks.items():  # a new phase: the earlier ones are finished
                        end = totals.get(prev) or 1.0
                        bar.update(tid, total=end, completed=end)
                    tasks.clear()
                    tasks[task] = bar.add_task(task, total=total)
                totals[task] = total
                bar.update(tasks[task], completed=done if total is not None else 0, total=total)

        yield report
