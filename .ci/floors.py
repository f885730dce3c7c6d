"""Print pip constraints pinning every direct dependency to its declared floor.

Each ``name>=X`` in pyproject.toml's ``dependencies`` and ``optional-dependencies`` becomes
``name==X`` (extras dropped: pip constraints take none). .ci/run installs the package with these
constraints in a second venv and runs the unit tests there, so a floor that does not work fails CI.
Requirements without a ``>=`` floor (the self-reference ``restorecheck[...]``) are skipped.
Usage: python3 .ci/floors.py [--skip NAME ...] > floors.txt
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

_REQ = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*>=\s*(?P<floor>[^,;\s]+)\s*(?:;.*)?$")


def floors(pyproject: Path) -> dict[str, str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    out: dict[str, str] = {}
    for req in reqs:
        m = _REQ.match(req)
        if m is None:
            continue
        name = re.sub(r"[-_.]+", "-", m["name"]).lower()
        if name in out and out[name] != m["floor"]:
            sys.exit(f"{name} has two floors: {out[name]} and {m['floor']}")
        out[name] = m["floor"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip", nargs="*", default=[], help="names to leave out (tools the tests do not import)")
    args = parser.parse_args()
    for name, floor in floors(Path(__file__).resolve().parent.parent / "pyproject.toml").items():
        if name not in args.skip:
            print(f"{name}=={floor}")


if __name__ == "__main__":
    main()
