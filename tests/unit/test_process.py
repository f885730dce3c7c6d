"""Tool discovery and the choice of an installation (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from restorecheck.errors import ExitCode, ToolNotFoundError
from restorecheck.process import CLIENT_TOOLS, SERVER_TOOLS, PgInstallation, choose
from restorecheck.runner import run

ALL = SERVER_TOOLS + CLIENT_TOOLS


def inst(version: str, origin: str = "system", tools: tuple[str, ...] = ALL) -> PgInstallation:
    return PgInstallation(Path(f"/opt/pg{version}/bin"), version, origin, tools)


def test_choose_lowest_major_at_least_asked() -> None:
    found = [inst("17.1"), inst("15.18"), inst("16.2", "embedded")]
    assert choose(found, min_major=16).version == "16.2"
    assert choose(found).version == "15.18"
    assert choose(found, min_major=17).version == "17.1"


def test_choose_skips_installations_missing_tools() -> None:
    found = [inst("15.18", tools=CLIENT_TOOLS), inst("16.2")]
    assert choose(found).version == "16.2"


def test_pg_bin_preferred_when_it_qualifies() -> None:
    found = [inst("15.18"), inst("16.2", "--pg-bin")]
    assert choose(found, prefer_origin="--pg-bin").version == "16.2"


def test_none_found_lists_every_place_and_the_remedy() -> None:
    with pytest.raises(ToolNotFoundError) as info:
        choose([inst("14.1")], min_major=15)
    msg = info.value.one_line()
    assert "PostgreSQL >= 15" in msg and "/opt/pg14.1/bin" in msg and "embedded" in msg
    assert info.value.exit_code == ExitCode.ENVIRONMENT


def test_run_captures_and_never_raises_on_failure() -> None:
    done = run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (done.returncode, done.stdout.strip(), done.stderr.strip()) == (3, "out", "err")


def test_run_missing_program_is_tool_not_found() -> None:
    with pytest.raises(ToolNotFoundError):
        run(["/nonexistent/pg_dump", "--version"])
