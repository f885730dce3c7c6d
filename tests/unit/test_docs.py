"""Docs that are tested: every command has help and appears in the README; the quick start has
exactly two commands; .ci/run runs the README's test command verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from restorecheck.cli import cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_and_is_in_the_readme(name: str) -> None:
    command = cli.commands[name]
    assert isinstance(command, click.Command)
    assert command.help and len(command.help.strip()) > 20, f"{name} has no real help text"
    assert f"restorecheck {name}" in README, f"README does not document 'restorecheck {name}'"


def test_spec_commands_all_exist() -> None:
    assert {"seed", "snapshot", "backup", "verify", "drill", "compare", "doctor"} <= set(cli.commands)


def test_quick_start_has_exactly_two_commands_drill_and_tests() -> None:
    blocks = quick_start_commands()
    assert len(blocks) == 2 and all("\n" not in b for b in blocks), blocks
    assert "restorecheck drill" in blocks[0] and "[embedded]" in blocks[0]
    assert "pytest" in blocks[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert quick_start_commands()[1] in ci.splitlines()
