"""Fixtures shared by the integration tests (the servers themselves are in tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
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
