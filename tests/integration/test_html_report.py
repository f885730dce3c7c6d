"""The HTML report in a real browser (issue 12): headless Chromium, the distribution's package, driven
by Playwright (its own browser downloads are never used: executable_path). Real runs make the pages:
the PostgreSQL self-test drill (pass), a verify of a tampered SQLite backup against its live source,
whose table is named <script>alert(1)</script> (fail, many findings, the differing keys), and a night of three jobs run twice (history).

Each page is opened from file://: the verdict is visible, the timeline has one bar per phase, the
hostile name is text, no script runs (no dialog, no <script>), the console has no error and the page
requests nothing. Screenshots are kept under RESTORECHECK_ARTIFACTS (default .test-artifacts/html in
the repository; the run prints it). Without Chromium or Playwright the tests skip saying why; with
CI=true or RESTORECHECK_REQUIRE_BROWSER=1 they fail instead (.ci/run installs chromium and sets the
latter)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from restorecheck.cli import run_cli
from restorecheck.dburl import SqliteRef
from restorecheck.seed import seed

HOSTILE = "<script>alert(1)</script>"
NASTY = ("it's \"quoted\"", "</style><b>bold</b>", "]]><i>cdata</i>")
CHROMIUM = os.environ.get("RESTORECHECK_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("RESTORECHECK_ARTIFACTS", Path(__file__).resolve().parents[2] / ".test-artifacts" / "html"))


def _missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set RESTORECHECK_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason:
        if os.environ.get("CI", "").lower() == "true" or os.environ.get("RESTORECHECK_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the browser tests must run in CI (CI=true or RESTORECHECK_REQUIRE_BROWSER=1): {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses its sandbox as root
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield b
        b.close()


@dataclass
class Opened:
    page: Any
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@contextlib.contextmanager
def open_page(browser: Any, path: Path, shot: str) -> Iterator[Opened]:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, java_script_enabled=True)
    page = context.new_page()
    seen = Opened(page)
    page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.console_errors.append(str(e)))
    page.on("request", lambda r: seen.requests.append(r.url) if r.url != path.as_uri() else None)
    page.on("dialog", lambda d: (seen.dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_timeout(200)  # anything late (a script, a fetch) would show up by now
    yield seen
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    print(f"screenshot: {ARTIFACTS / f'{shot}.png'}")
    context.close()


def assert_clean(seen: Opened) -> None:
    assert seen.console_errors == []
    assert seen.requests == []  # no font, image, script or style fetched: one self-contained file
    assert seen.dialogs == []  # no script ran
    assert seen.page.locator("script").count() == 0


def bars(section: Any) -> int:
    """The timeline's bars: pygal draws each phase as a series with a line (the RTO line has none)."""
    return int(section.locator(".timeline g.series path.line").count())


# --- the pages, from real runs ------------------------------------------------------------------


def make_hostile_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    q = '"' + HOSTILE.replace('"', '""') + '"'
    conn.executescript(f"""
        CREATE TABLE {q} (id INTEGER PRIMARY KEY, v TEXT);
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER, note TEXT);
        CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
    """)
    conn.executemany(f"INSERT INTO {q} (v) VALUES (?)", [(NASTY[i % 3],) for i in range(30)])
    conn.executemany("INSERT INTO customers (name) VALUES (?)", [(f"c{i} {NASTY[i % 3]}",) for i in range(50)])
    conn.executemany("INSERT INTO orders (customer, note) VALUES (?, ?)", [(i % 50, NASTY[1]) for i in range(200)])
    conn.executemany("INSERT INTO audit (what) VALUES (?)", [(f"a{i}",) for i in range(40)])
    conn.commit()
    conn.close()


def tamper(path: Path) -> None:
    """Rows lost, values changed, a table gone, one added: many findings of several checks."""
    conn = sqlite3.connect(path)
    q = '"' + HOSTILE.replace('"', '""') + '"'
    conn.executescript(f"""
        DELETE FROM {q} WHERE id > 20;
        UPDATE customers SET name = name || '{NASTY[2]}' WHERE id % 7 = 0;
        DELETE FROM orders WHERE id % 5 = 0;
        DROP TABLE audit;
        CREATE TABLE "</style><h1>extra</h1>" (x);
    """)
    conn.commit()
    conn.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("html")
    out: dict[str, Path] = {}
    # pass: the PostgreSQL self-test drill
    out["pass"] = d / "drill-pass.html"
    assert run_cli(["drill", "--no-progress", "-q", "--max-restore-seconds", "600", "--html", str(out["pass"]),
                    "--report", str(d / "drill-pass.json")]) == 0
    # fail: a tampered SQLite backup against the source's manifest
    src = d / "shop.db"
    make_hostile_sqlite(src)
    assert run_cli(["snapshot", str(src), "-o", str(d / "shop.manifest.json"), "-q"]) == 0
    broken = d / "broken"
    broken.mkdir()
    shutil.copy(src, broken / "shop.db")
    shutil.copy(d / "shop.manifest.json", broken / "shop.manifest.json")
    tamper(broken / "shop.db")
    out["fail"] = d / "verify-fail.html"
    assert run_cli(["verify", str(broken / "shop.db"), "--against", str(src), "--no-progress",
                    "--html", str(out["fail"]), "--report", str(d / "verify-fail.json")]) == 1
    # a night of three jobs (SQLite sources and the broken backup), run twice: the second has history
    notes = d / "notes.db"
    seed(SqliteRef(notes))
    cfg = d / "restorecheck.toml"
    cfg.write_text(f'[defaults]\noutput_dir = "{d / "night"}"\n'
                   f'[[job]]\nname = "notes"\nsource = "{notes}"\n'
                   f'[[job]]\nname = "shop"\nsource = "{src}"\n'
                   f'[[job]]\nname = "broken"\nbackups = "{broken}/*.db"\n')
    out["night"] = d / "night.html"
    assert run_cli(["run", "--config", str(cfg), "-q"]) == 1
    assert run_cli(["run", "--config", str(cfg), "-q", "--html", str(out["night"])]) == 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, path in out.items():  # one file each, kept small (the README states the sizes)
        size = path.stat().st_size
        assert size < 200_000, (name, size)
        shutil.copy(path, ARTIFACTS / path.name)
    return out


def test_pass_report(browser: Any, pages: dict[str, Path]) -> None:
    phases = {k for k in json.loads(pages["pass"].with_suffix(".json").read_text())["phases"] if k != "total"}
    with open_page(browser, pages["pass"], "drill-pass") as seen:
        page = seen.page
        verdict = page.locator("#verdict")
        assert verdict.is_visible()
        assert verdict.inner_text().startswith("PASS")
        assert page.locator(".timeline svg").is_visible()
        assert bars(page) == len(phases) >= 4
        assert page.locator("table.tables tbody tr").count() >= 10
        assert page.locator("#command").inner_text().startswith("restorecheck drill")
        assert "sha256" in page.locator("body").inner_text()
        assert_clean(seen)


def test_fail_report_with_many_findings_and_a_hostile_table(browser: Any, pages: dict[str, Path]) -> None:
    report = json.loads(pages["fail"].with_suffix(".json").read_text())
    checks = sorted({f["check"] for f in report["findings"]})
    assert len(report["findings"]) >= 4 and {"row_count", "table_missing"} <= set(checks)
    with open_page(browser, pages["fail"], "verify-fail") as seen:
        page = seen.page
        assert page.locator("#verdict").inner_text().startswith("FAIL")
        assert bars(page) == len([k for k in report["phases"] if k != "total"])
        groups = page.locator("div.group")
        assert sorted(groups.nth(i).get_attribute("data-check") for i in range(groups.count())) == checks
        assert page.locator("div.group .todo").first.is_visible()
        # the hostile name is text: in the first (failing) row and in the findings
        first = page.locator("table.tables tbody tr").first
        assert HOSTILE in first.inner_text() and "bad" in (first.get_attribute("class") or "")
        assert page.get_by_text(HOSTILE, exact=False).count() >= 2
        assert page.locator("h1").count() == 1  # "</style><h1>extra</h1>" stayed text
        assert "</style><h1>extra</h1>" in page.locator("body").inner_text()
        # the differing keys, localised against the live source
        assert "differing keys: 21, 22, 23" in first.inner_text()
        assert_clean(seen)


def test_night_of_several_jobs(browser: Any, pages: dict[str, Path]) -> None:
    with open_page(browser, pages["night"], "run-night") as seen:
        page = seen.page
        assert page.locator("#verdict").inner_text().startswith("FAIL")
        sections = page.locator("section.job")
        assert sections.count() == 3
        verdicts = {sections.nth(i).locator("h2").inner_text().split()[1]: sections.nth(i).get_attribute("data-verdict")
                    for i in range(3)}
        assert verdicts == {"notes": "pass", "shop": "pass", "broken": "fail"}
        for i in range(3):
            s = sections.nth(i)
            assert s.locator(".verdict").is_visible()
            n = int(s.locator(".timeline").get_attribute("data-phases") or 0)
            assert n >= 3 and bars(s) == n
            # the second night: each job has two runs, the charts show them, this run marked
            assert s.locator(".chart svg").count() == 3
        assert_clean(seen)


def test_print_stylesheet_gives_a_clean_pdf(browser: Any, pages: dict[str, Path]) -> None:
    with open_page(browser, pages["fail"], "verify-fail-print") as seen:
        seen.page.emulate_media(media="print")
        assert re.match(r"FAIL", seen.page.locator("#verdict").inner_text())
        pdf = seen.page.pdf(format="A4", print_background=True)
        assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "verify-fail.pdf").write_bytes(pdf)
        assert_clean(seen)


# --- without a browser: the option's edges ---------------------------------------------------------


def test_unwritable_html_path_fails_first_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "a.db"
    seed(SqliteRef(db))
    target = tmp_path / "missing-dir" / "r.html"
    assert run_cli(["verify", str(db), "--html", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--html" in err[0] and "does not exist" in err[0]
    assert not target.parent.exists()
    cfg = tmp_path / "restorecheck.toml"
    cfg.write_text(f'[defaults]\noutput_dir = "{tmp_path / "night"}"\n[[job]]\nname = "a"\nsource = "{db}"\n')
    assert run_cli(["run", "--config", str(cfg), "--html", str(target)]) == 2
    assert not (tmp_path / "night").exists()  # refused before any job ran


def test_an_error_run_still_writes_its_page(tmp_path: Path) -> None:
    page = tmp_path / "err.html"
    assert run_cli(["verify", str(tmp_path / "no-such.db"), "--html", str(page), "-q"]) == 2
    text = page.read_text()
    assert "ERROR: the backup could not be verified" in text and "no-such.db" in text
    assert "<script" not in text


def test_password_is_masked_in_the_reproduce_line(tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    # nothing listens on port 1: exit 3, and the page of the error holds the command, masked
    rc = run_cli(["drill", "postgresql://app:hunter2@127.0.0.1:1/shop", "--html", str(page), "-q"])
    assert rc == 3
    text = page.read_text()
    assert "hunter2" not in text and "app:***@127.0.0.1:1/shop" in text


def test_compare_writes_its_page(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    make_hostile_sqlite(a)
    shutil.copy(a, b)
    tamper(b)
    page = tmp_path / "c.html"
    assert run_cli(["compare", str(a), str(b), "--html", str(page), "-q"]) == 1
    text = page.read_text()
    assert "<h1>restorecheck compare</h1>" in text and "FAIL: B is not the same database as A" in text
    assert "main.&lt;script&gt;alert(1)&lt;/script&gt;" in text and HOSTILE not in text
    assert "differing keys: 21, 22" in text
