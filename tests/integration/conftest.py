"""Fixtures shared by the integration tests (the servers themselves are in tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def world_tmp() -> Iterator[Path]:
    """A temporary root the unprivileged server user can reach (pytest's tmp_path is private)."""
    root = Path(tempfile.mkdtemp(prefix="rc-test-", dir="/tmp"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


_SESSION_START = time.time()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say where the HTML report's browser tests left their screenshots (when this run made some)."""
    from tests.integration.test_html_report import ARTIFACTS

    if ARTIFACTS.is_dir() and any(p.stat().st_mtime >= _SESSION_START for p in ARTIFACTS.glob("*.png")):
        terminalreporter.write_line(f"HTML report screenshots and PDF (browser tests): {ARTIFACTS}")
