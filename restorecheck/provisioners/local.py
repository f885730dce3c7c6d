"""``local``: a throwaway PostgreSQL cluster in a temporary directory, inside an OS sandbox.

Layout of one run (``<tmp>/restorecheck-XXXX/``, see ``RunDir``):

- ``run.json``: who owns the run (restorecheck's pid and start time, the server's pid), read by
  ``doctor --sweep``; written by restorecheck, never writable by the server.
- ``conf/pg_hba.conf``: the only authentication rules (restorecheck's admin role, by password),
  outside the data directory and read-only for the server, so a dump cannot rewrite them.
- ``cluster/``: the server's own directory (``data``, ``sock``, ``server.log``, tablespaces), the
  only place the server and the restore tools may write.

The server runs ``postgres`` directly (no ``pg_ctl``) as a child of restorecheck: inside
bubblewrap (``restorecheck.sandbox``) with no network, listening only on the Unix socket in
``cluster/sock``, in a PID namespace that dies with restorecheck; or, with ``--sandbox none``,
on 127.0.0.1 and the socket, with PR_SET_PDEATHSIG. Started as root, it runs as an unprivileged
user (``nobody`` unless ``RESTORECHECK_RUN_AS``) with its gid and no supplementary groups.
Binaries that user cannot reach (the embedded PostgreSQL inside root's site-packages) are copied
into a cache that is trusted only when it is safe (``safe_tree``).

The settings trade durability for speed, which is right for a cluster that lives for one
restore and is thrown away: see ``THROWAWAY_SETTINGS``.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restorecheck import pgconn
from restorecheck.dburl import PostgresRef
from restorecheck.errors import ProvisionError, ToolNotFoundError
from restorecheck.pg_hosting import DumpNeeds
from restorecheck.process import PgInstallation, choose, discover, tail
from restorecheck.provisioners.base import PgServer
from restorecheck.runner import run
from restorecheck.sandbox import Sandbox, popen_long_lived, resolve, unprivileged_user
from restorecheck.scram import VERIFIER_RE, scram_sha256_verifier
from restorecheck.signals import deferred_signals

log = logging.getLogger("restorecheck")

TMP_PREFIX = "restorecheck-"
SUPERUSER = "postgres"

# Each line says why it is safe for a throwaway restore target.
THROWAWAY_SETTINGS: dict[str, str] = {
    "fsync": "off",  # a crash loses a cluster we would delete anyway
    "synchronous_commit": "off",  # no waiting for WAL flushes at each COMMIT
    "full_page_writes": "off",  # torn-page protection only matters after a crash
    "wal_level": "minimal",  # no replication or archiving: COPY into new tables skips WAL
    "max_wal_senders": "0",  # required by wal_level=minimal
    "archive_mode": "off",
    "max_wal_size": "4GB",  # fewer checkpoints during a large load
    "checkpoint_timeout": "30min",
    "autovacuum": "off",  # no background work competing with the restore; we count with count(*)
    "maintenance_work_mem": "512MB",  # faster index builds and FK validation after the data
    "work_mem": "64MB",
    "max_parallel_maintenance_workers": "2",
    "max_parallel_workers_per_gather": "2",
    "shared_buffers": "256MB",
    "jit": "off",  # compile time outweighs the gain for one-off checksum scans
    "max_connections": "50",
    "huge_pages": "off",
    "lc_messages": "C",  # English server messages, so restore errors read the same everywhere
    "log_min_messages": "warning",
    "log_checkpoints": "off",
    "logging_collector": "off",
    "dynamic_shared_memory_type": "posix",
    "password_encryption": "scram-sha-256",
    # a client that stalls during login holds its slot (and, on 15, a DROP DATABASE waiting for it)
    # for this long at most, not the default minute
    "authentication_timeout": "10s",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_as_user(explicit: str | None = None) -> pwd.struct_passwd | None:
    """The unprivileged user the server runs as when we are root; None when we are not root."""
    return unprivileged_user(explicit or os.environ.get("RESTORECHECK_RUN_AS"))


def _can_run(path: Path, user: pwd.struct_passwd | None) -> bool:
    as_user = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    try:
        out = run([path, "--version"], timeout=20, stdout_limit=64 << 10, popen_kwargs=as_user)
    except (OSError, ToolNotFoundError):
        return False
    return out.ok


# --- the binary cache: trusted only when safe -------------------------------------------------


def unsafe_reason(path: Path, *, tree: bool = False) -> str | None:
    """Why ``path`` (and, with ``tree``, everything under it) could be changed by someone other
    than root or the running user; None when it is safe to run binaries from.

    Every directory from / down must be owned by root or the running user and not writable by
    group or others (a sticky world-writable directory such as /tmp is allowed as a parent when the
    entry below it is owned by root or the running user: nobody else can rename or replace it).
    """
    trusted = {0, os.geteuid()}
    p = Path(os.path.abspath(path))
    chain = [*reversed(p.parents), p]
    for i, d in enumerate(chain):
        try:
            st = os.lstat(d)
        except OSError as exc:
            return f"{d} cannot be examined ({exc.strerror})"
        if stat.S_ISLNK(st.st_mode):
            return f"{d} is a symbolic link"
        if st.st_uid not in trusted:
            return f"{d} is owned by uid {st.st_uid}"
        if st.st_mode & 0o022:
            sticky_ok = (st.st_mode & stat.S_ISVTX) and i + 1 < len(chain)
            if not sticky_ok:
                return f"{d} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    if tree:
        for dirpath, dirnames, filenames in os.walk(p):
            for n in dirnames + filenames:
                f = os.path.join(dirpath, n)
                st = os.lstat(f)
                if st.st_uid not in trusted:
                    return f"{f} is owned by uid {st.st_uid}"
                if stat.S_ISLNK(st.st_mode):
                    target = os.path.realpath(f)
                    if not (target == str(p) or target.startswith(str(p) + os.sep)):
                        return f"{f} links outside the cache ({target})"
                elif st.st_mode & 0o022:
                    return f"{f} is writable by group or others"
    return None


def default_cache_root() -> Path:
    """Where copies of unreachable installations go: ``RESTORECHECK_CACHE_DIR``, else
    /var/cache/restorecheck (as root) or ~/.cache/restorecheck."""
    env = os.environ.get("RESTORECHECK_CACHE_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/restorecheck")
    return Path.home() / ".cache" / "restorecheck"


def _copy_installation(root: Path, dest: Path) -> None:
    """Copy bin/lib/share of ``root`` (and sibling ``*.libs`` of its package) into ``dest``."""
    inner = Path(root.parent.name) / root.name
    for part in ("bin", "lib", "share"):
        if (root / part).is_dir():
            shutil.copytree(root / part, dest / inner / part, symlinks=True)
    for libs in root.parent.parent.glob("*.libs"):
        if libs.is_dir():
            shutil.copytree(libs, dest / libs.name, symlinks=True)
    for d, _dirs, files in os.walk(dest):
        os.chmod(d, 0o755)
        for f in files:
            fp = os.path.join(d, f)
            if not os.path.islink(fp):
                os.chmod(fp, (os.stat(fp).st_mode & 0o111) | 0o644)


def reachable_installation(inst: PgInstallation, user: pwd.struct_passwd | None,
                           private_root: Path | None = None) -> PgInstallation:
    """``inst`` itself if ``user`` can run its server, else a copy that it can run.

    The copy lives in a cache (``default_cache_root``) that is checked before every use
    (``unsafe_reason``: owners and modes along the whole path and the whole tree). A cache that is
    not safe is never used: the copy is then made privately under ``private_root`` (removed with
    the run) or, without one, refused.
    """
    if user is None or _can_run(inst.bindir / "postgres", user):
        return inst
    root = inst.bindir.parent
    if not ((root / "lib").is_dir() and (root / "share").is_dir()):
        raise ProvisionError(
            f"the unprivileged user {user.pw_name} cannot run {inst.bindir}/postgres, "
            "and that installation cannot be copied to a place it can reach",
            "install PostgreSQL under a world-readable directory or give --pg-bin",
        )
    digest = hashlib.sha256(f"{root}:{(inst.bindir / 'postgres').stat().st_mtime_ns}".encode()).hexdigest()
    name = f"pg{inst.version}-{digest[:12]}"
    inner = Path(root.parent.name) / root.name
    cache_root = default_cache_root()
    cache: Path | None = None
    why = None
    try:
        cache_root.mkdir(parents=True, exist_ok=True, mode=0o755)
        why = unsafe_reason(cache_root)
    except OSError as exc:
        why = f"{cache_root} cannot be created ({exc.strerror})"
    if why is None:
        cand = cache_root / name
        if cand.exists():
            why = unsafe_reason(cand, tree=True)
            if why is not None:
                log.warning("not using the binary cache %s: %s; rebuilding it", cand, why)
                shutil.rmtree(cand, ignore_errors=True)
                why = f"{cand} is not safe and cannot be removed" if cand.exists() else None
        if why is None:
            if not (cand / inner / "bin" / "postgres").exists():
                staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache_root))
                try:
                    _copy_installation(root, staging)
                    with contextlib.suppress(OSError):  # another process won the race: use its copy
                        staging.rename(cand)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
            why = unsafe_reason(cand, tree=True)  # checked before every use, also right after the copy
            if why is None:
                cache = cand
    if cache is None:
        if private_root is None:
            raise ProvisionError(f"the binary cache cannot be trusted: {why}",
                                 "set RESTORECHECK_CACHE_DIR to a directory only root can write")
        log.info("binary cache not trusted (%s): copying PostgreSQL privately for this run", why)
        cache = private_root / "pg"
        cache.mkdir(mode=0o755)
        _copy_installation(root, cache)
    copied = PgInstallation(cache / inner / "bin", inst.version, inst.origin + " (copied)", inst.tools)
    if not _can_run(copied.bindir / "postgres", user):
        raise ProvisionError(
            f"the unprivileged user {user.pw_name} cannot run PostgreSQL from {cache}",
            "set RESTORECHECK_CACHE_DIR to a world-readable directory only root can write",
        )
    return copied


def installation_paths(inst: PgInstallation) -> list[Path]:
    """What a sandbox must show of an installation: its prefix (bin, lib, share) and, for wheels
    repaired by auditwheel, the sibling ``*.libs`` directories its RPATH points at."""
    prefix = inst.bindir.parent
    if str(prefix).startswith("/usr/"):
        return []  # /usr is in every sandbox
    paths = [prefix]
    pkg_parent = prefix.parent.parent
    paths += [p for p in pkg_parent.glob("*.libs") if p.is_dir()]
    return paths


# --- the template data directory: initdb once per installation, copied for each run -----------
#
# ``<cache root>/templates/<key>/`` holds ``data/`` (what initdb made, owned by root or the running
# user, group and others locked out) and ``manifest.json`` (for every entry: kind, mode, size, inode
# and ctime). Each run copies ``data/`` into its own cluster directory, checking every entry it
# opens against the manifest as it goes: an entry that was changed, swapped, added, removed, linked
# or chowned since the template was made (any of these moves the ctime or the inode) stops the
# copy, and the template is removed and made again. The template's own admin password is random
# and forgotten at once; each run writes a verifier of its own password into its copy with a
# single-user backend before the server ever listens (``set_admin_password``).

TEMPLATE_LAYOUT = 1  # bump when what a template holds or how it is checked changes
_TEMPLATE_DATA = "data"
_TEMPLATE_MANIFEST = "manifest.json"


def template_wanted(explicit: bool | None = None) -> bool:
    """Whether runs copy a template data directory: ``explicit``, else ``RESTORECHECK_TEMPLATE``
    (0/false/no/off turn it off), else yes."""
    if explicit is not None:
        return explicit
    return os.environ.get("RESTORECHECK_TEMPLATE", "1").strip().lower() not in ("0", "false", "no", "off")


def template_key(inst: PgInstallation, env: Mapping[str, str] | None = None) -> str:
    """The template's name: the installation (binaries' paths, sizes and mtimes, version), initdb's
    options, the environment initdb sees (``env`` but HOME: TZ and the locale variables decide the
    ``timezone`` and ``lc_*`` it writes) and ``TEMPLATE_LAYOUT``. A new installation, another
    environment or a changed initdb call gets a new template."""
    parts: list[str] = [str(TEMPLATE_LAYOUT), inst.version, SUPERUSER]
    parts += sorted(f"{k}={v}" for k, v in (env or {}).items() if k != "HOME")
    for tool in ("postgres", "initdb"):
        path = Path(os.path.realpath(inst.tool(tool)))
        st = path.stat()
        parts += [str(path), str(st.st_size), str(st.st_mtime_ns)]
    parts += initdb_cmd(inst, Path("DATADIR"), Path("PWFILE"))[1:]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return f"pg{inst.version}-t{TEMPLATE_LAYOUT}-{digest[:16]}"


def template_root() -> Path:
    return default_cache_root() / "templates"


def _entry_facts(st: os.stat_result) -> list[Any]:
    kind = "d" if stat.S_ISDIR(st.st_mode) else "f" if stat.S_ISREG(st.st_mode) else "other"
    return [kind, stat.S_IMODE(st.st_mode), st.st_size if kind == "f" else 0, st.st_ino, st.st_ctime_ns,
            st.st_uid]


def template_manifest(data: Path) -> dict[str, list[Any]]:
    """What ``data`` holds, entry by entry (relative path -> kind, mode, size, inode, ctime, uid)."""
    out: dict[str, list[Any]] = {".": _entry_facts(os.lstat(data))}
    for dirpath, dirnames, filenames in os.walk(data):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, data)] = _entry_facts(os.lstat(p))
    return out


def _entry_problem(rel: str, st: os.stat_result, manifest: Mapping[str, list[Any]]) -> str | None:
    if st.st_uid not in {0, os.geteuid()}:
        return f"{rel} is owned by uid {st.st_uid}"
    if st.st_mode & 0o077:
        return f"{rel} is open to group or others (mode {stat.S_IMODE(st.st_mode):o})"
    want = manifest.get(rel)
    if want is None:
        return f"{rel} is not in the template's manifest"
    if _entry_facts(st) != want:
        return f"{rel} changed since the template was made"
    return None


def _copy_fd(src: int, dst: int, size: int) -> None:
    done = 0
    while done < size:
        try:
            n = os.copy_file_range(src, dst, size - done)
        except OSError:
            n = os.sendfile(dst, src, None, size - done)
        if n == 0:
            break
        done += n


def _cannot_write(dest: Path, exc: OSError) -> ProvisionError:
    return ProvisionError(f"cannot copy the template data directory into {dest} ({exc.strerror or exc})",
                          "free space in the temporary directory, or point TMPDIR elsewhere")


def copy_template(template: Path, dest: Path, user: pwd.struct_passwd | None) -> str | None:
    """Copy the template's ``data`` to ``dest`` (made here; modes kept, owned by ``user`` or the
    running user), checking every entry against the manifest. Returns None when copied, else why the
    template must not be used (``dest`` is then removed). A failure to write ``dest`` (a full disk)
    raises ``ProvisionError``: the template is not to blame."""
    why = unsafe_reason(template)
    if why is None:
        why = unsafe_reason(template / _TEMPLATE_MANIFEST)
    if why is not None:
        return why
    try:
        with open(template / _TEMPLATE_MANIFEST, "rb") as fh:
            manifest = json.loads(fh.read(4 << 20))
        if not isinstance(manifest, dict) or manifest.get("layout") != TEMPLATE_LAYOUT:
            return "its manifest is not one this restorecheck wrote"
        entries: dict[str, list[Any]] = manifest["entries"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its manifest cannot be read ({exc})"
    owner = (user.pw_uid, user.pw_gid) if user is not None else None
    src_root = template / _TEMPLATE_DATA
    seen: set[str] = set()
    try:
        for dirpath, dirnames, filenames in os.walk(src_root):
            rel_dir = os.path.relpath(dirpath, src_root)
            dfd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                why = _entry_problem(rel_dir, os.fstat(dfd), entries)
            finally:
                os.close(dfd)
            if why is not None:
                return why
            seen.add(rel_dir)
            out_dir = dest if rel_dir == "." else dest / rel_dir
            try:
                os.mkdir(out_dir, 0o700)
                os.chmod(out_dir, entries[rel_dir][1])
                if owner is not None:
                    os.chown(out_dir, *owner)
            except OSError as exc:
                raise _cannot_write(dest, exc) from exc
            for n in dirnames:  # os.walk lists a link to a directory here and never enters it
                if os.path.islink(os.path.join(dirpath, n)):
                    return f"{os.path.join(rel_dir, n)} is a symbolic link"
            for n in filenames:
                rel = os.path.normpath(os.path.join(rel_dir, n))
                try:
                    fd = os.open(os.path.join(dirpath, n), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except OSError as exc:
                    return f"{rel} cannot be opened ({exc.strerror})"
                try:
                    st = os.fstat(fd)
                    why = _entry_problem(rel, st, entries)
                    if why is None and not stat.S_ISREG(st.st_mode):
                        why = f"{rel} is not a regular file"
                    if why is not None:
                        return why
                    try:
                        out = os.open(out_dir / n, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                        try:
                            _copy_fd(fd, out, st.st_size)
                            os.fchmod(out, stat.S_IMODE(st.st_mode))
                            if owner is not None:
                                os.fchown(out, *owner)
                        finally:
                            os.close(out)
                    except OSError as exc:  # the run's side (a full disk): not the template's fault
                        raise _cannot_write(dest, exc) from exc
                finally:
                    os.close(fd)
                seen.add(rel)
        missing = sorted(set(entries) - seen)
        if missing:
            return f"{missing[0]} is missing"
        return None
    except OSError as exc:
        return f"it cannot be copied ({exc.strerror or exc})"
    finally:
        if not (dest.is_dir() and seen == set(entries)):
            shutil.rmtree(dest, ignore_errors=True)


def template_binaries(inst: PgInstallation) -> list[list[Any]]:
    """The binaries a template was made with (real path, size, mtime), recorded in its manifest so
    that the template of an installation since upgraded or removed can be pruned."""
    out: list[list[Any]] = []
    for tool in ("postgres", "initdb"):
        path = os.path.realpath(inst.tool(tool))
        st = os.stat(path)
        out.append([path, st.st_size, st.st_mtime_ns])
    return out


def publish_template(data: Path, template: Path, binaries: Sequence[Sequence[Any]] = ()) -> bool:
    """Copy a data directory initdb just made (and no server ever ran on) into the cache as
    ``template``: owned by the running user, a manifest beside it (``binaries``: see
    ``template_binaries``), renamed into place in one step (another process that got there first
    wins). Templates of installations that are gone are pruned first (``_remove_stale``). False
    when it could not be done."""
    staging: Path | None = None
    try:
        template.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if unsafe_reason(template.parent) is not None:
            return False
        _remove_stale(template.parent)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=template.parent))
        shutil.copytree(data, staging / _TEMPLATE_DATA, symlinks=True)
        me, my_gid = os.geteuid(), os.getegid()
        for dirpath, _dirnames, filenames in os.walk(staging):
            os.chown(dirpath, me, my_gid, follow_symlinks=False)
            for n in filenames:
                os.chown(os.path.join(dirpath, n), me, my_gid, follow_symlinks=False)
        os.chmod(staging, 0o755)
        manifest = {"layout": TEMPLATE_LAYOUT, "binaries": [list(b) for b in binaries],
                    "entries": template_manifest(staging / _TEMPLATE_DATA)}
        fd = os.open(staging / _TEMPLATE_MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as fh:
            json.dump(manifest, fh)
        try:
            staging.rename(template)
        except OSError:
            return template.is_dir()  # another run published it first
        staging = None
        return True
    except OSError as exc:
        log.info("could not keep a template data directory in %s: %s", template.parent, exc)
        return False
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


_OTHER_LAYOUT_DAYS = 30  # a template of another layout, untouched this long, belongs to no live version


def _remove_stale(templates: Path) -> None:
    """Staging and removed templates a killed run left behind (an hour old: no live run's), and
    templates no run will copy again: made with binaries that are gone or changed (an upgraded or
    removed installation: each holds about 40 MB), or of another ``TEMPLATE_LAYOUT`` and untouched
    for ``_OTHER_LAYOUT_DAYS``. Only the running user's; called when a new template is published,
    which is when an upgrade shows."""
    for d in templates.iterdir():
        with contextlib.suppress(OSError, ValueError, TypeError):  # a manifest not of ours: left alone
            st = os.lstat(d)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                continue
            age = time.time() - st.st_mtime
            if d.name.startswith((".staging-", ".removed-")):
                if age > _AGE_WITHOUT_OWNER:
                    shutil.rmtree(d, ignore_errors=True)
            elif not d.name.startswith(".") and _template_is_orphaned(d, age):
                log.info("removing the template data directory %s: its installation is gone", d)
                remove_template(d)


def _template_is_orphaned(template: Path, age: float) -> bool:
    path = template / _TEMPLATE_MANIFEST
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode) or st.st_size > 64 << 20:
        return False
    with open(path, "rb") as fh:
        manifest = json.loads(fh.read())
    binaries = manifest.get("binaries") if isinstance(manifest, dict) else None
    if not binaries:
        layout = manifest.get("layout") if isinstance(manifest, dict) else None
        return layout != TEMPLATE_LAYOUT and age > _OTHER_LAYOUT_DAYS * 86400
    for path_, size, mtime_ns in binaries:
        try:
            now = os.stat(path_)
        except FileNotFoundError:
            return True
        if (now.st_size, now.st_mtime_ns) != (size, mtime_ns):
            return True
    return False


def remove_template(template: Path) -> None:
    """Take an untrusted template out of the way (renamed first, so no run copies it meanwhile)."""
    aside = template.with_name(f".removed-{template.name}-{secrets.token_hex(4)}")
    try:
        template.rename(aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def set_admin_password_cmd(inst: PgInstallation, datadir: Path) -> list[str]:
    """A single-user backend that reads the statements on stdin and stops at the first error."""
    return [str(inst.tool("postgres")), "--single", "-D", str(datadir), "-c", "fsync=off",
            "-c", "exit_on_error=on", "-c", "log_min_messages=warning", "-c", "autovacuum=off", "postgres"]


def admin_password_statement(verifier: str) -> str:
    """``ALTER ROLE postgres PASSWORD '<verifier>'``: the server stores a SCRAM verifier as given."""
    from psycopg import sql

    if not VERIFIER_RE.fullmatch(verifier):
        raise ValueError("not a SCRAM-SHA-256 verifier")
    return sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(SUPERUSER), sql.Literal(verifier)).as_string(None)


# --- commands and configuration ---------------------------------------------------------------


def initdb_cmd(inst: PgInstallation, datadir: Path, pwfile: Path) -> list[str]:
    return [
        str(inst.tool("initdb")),
        "-D",
        str(datadir),
        "-U",
        SUPERUSER,
        "--auth-local=scram-sha-256",
        "--auth-host=scram-sha-256",
        f"--pwfile={pwfile}",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions",
    ]


def settings_text(port: int, sockdir: Path, extra: Mapping[str, str] | None = None, *,
                  tcp: bool = True, hba_file: Path | None = None) -> str:
    values = dict(THROWAWAY_SETTINGS)
    values.update({"port": str(port), "listen_addresses": "'127.0.0.1'" if tcp else "''"})
    values["unix_socket_directories"] = f"'{sockdir}'"
    values["unix_socket_permissions"] = "0700"
    if hba_file is not None:
        values["hba_file"] = f"'{hba_file}'"
    if extra:
        values.update(extra)
    return "".join(f"{k} = {v}\n" for k, v in values.items())


def hba_text(*, tcp: bool, any_role_on_socket: bool = False) -> str:
    """Only restorecheck's admin role may log in, by password; every other role is rejected, so a
    role a dump creates (even SUPERUSER LOGIN PASSWORD '...') cannot log in.

    ``any_role_on_socket``: every role may log in on the (0700) socket without a password: for a
    cluster that plays a *source* in tests, never for a restore target."""
    lines = ["# written by restorecheck: only its own admin role, by password",
             f"local all {SUPERUSER} scram-sha-256",
             "local all all trust" if any_role_on_socket else "local all all reject"]
    if tcp:
        lines += [f"host all {SUPERUSER} 127.0.0.1/32 scram-sha-256", "host all all 0.0.0.0/0 reject",
                  "host all all ::/0 reject"]
    return "\n".join(lines) + "\n"


def _chown_tree(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is None:
        return
    os.chown(path, user.pw_uid, user.pw_gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            os.chown(os.path.join(dirpath, n), user.pw_uid, user.pw_gid, follow_symlinks=False)


def _make_dir(path: Path, user: pwd.struct_passwd | None) -> Path:
    """A new empty directory owned by the server's user (for CREATE TABLESPACE)."""
    path.mkdir(parents=True, mode=0o700)
    if user is not None:
        for d in (path.parent, path):
            os.chown(d, user.pw_uid, user.pw_gid, follow_symlinks=False)
    return path


def _traversable(path: Path) -> bool:
    """True when every directory from / down to ``path`` is searchable by others (o+x)."""
    p = path.resolve()
    for d in (p, *p.parents):
        try:
            if not os.stat(d).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


MEMORY_DIR = Path("/dev/shm")
IN_MEMORY = "memory (tmpfs)"  # what the report says of a cluster or a copy made there (else "disk")
# A cluster's files besides its data: the template (39 MB), a fresh database, WAL segments.
_CLUSTER_BASE_BYTES = 64 << 20
_MEMORY_MAX_BYTES = 1 << 30  # never more than this in memory, whatever is free


def _is_tmpfs(path: Path) -> bool:
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as fh:
            mounts = [line.split() for line in fh]
    except OSError:
        return False
    found = [m[2] for m in mounts if len(m) > 2 and m[1] == str(path)]
    return bool(found) and found[-1] == "tmpfs"  # the last mount on a path is the one seen


def _mem_available() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def memory_parent(size_hint: int | None, user: pwd.struct_passwd | None, *,
                  base: int = _CLUSTER_BASE_BYTES, factor: int = 3) -> Path | None:
    """``/dev/shm`` for a throwaway cluster whose data is known to be small, else None (disk).

    Creating a file costs about 1 ms on this development machine's ext4 and 15 µs on tmpfs, and a
    cluster is ~970 files before the restore creates ~300 more per database: from the template, a
    cluster was ready in 1.0 s on disk and in 0.2 s in memory (``benchmarks/bench_cluster.py``).
    Only with ``size_hint`` (a drill's source by its ``pg_database_size``, the self-test's dataset,
    a trusted uncompressed dump, a SQLite backup by its bytes), when ``/dev/shm`` is a tmpfs
    that the server user can reach, and the estimate (64 MiB + 3x the data: the restored copy, its
    indexes and its WAL) is at most 1 GiB and a quarter of both the tmpfs's free space and the
    memory available. Where temporary files go was said (``TMPDIR``; ``tmp_root`` in the API), or
    ``RESTORECHECK_TMPFS=0``: every cluster goes there, on disk. ``base`` and ``factor`` make the
    estimate (a SQLite copy: the file's own bytes, 0 and 1)."""
    if size_hint is None or os.environ.get("RESTORECHECK_TMPFS", "1") == "0" or os.environ.get("TMPDIR"):
        return None
    estimate = base + factor * max(0, size_hint)
    if estimate > _MEMORY_MAX_BYTES or not _is_tmpfs(MEMORY_DIR):
        return None
    try:
        st = os.stat(MEMORY_DIR)
        vfs = os.statvfs(MEMORY_DIR)
    except OSError:
        return None
    shared = st.st_mode & 0o1777 == 0o1777  # world-writable and sticky, as /tmp
    if not (shared or st.st_uid == os.geteuid()) or not os.access(MEMORY_DIR, os.W_OK | os.X_OK):
        return None
    if user is not None and not _traversable(MEMORY_DIR):
        return None
    if vfs.f_bavail * vfs.f_frsize < 4 * estimate or _mem_available() < 4 * estimate:
        return None
    return MEMORY_DIR


def reachable_parent(tmp_root: str | os.PathLike[str] | None, user: pwd.struct_passwd | None) -> Path:
    """Where a directory the unprivileged user must reach goes: ``tmp_root`` (refused when that user
    cannot reach it) or the temporary directory (/tmp when that user cannot reach it)."""
    parent = Path(tmp_root or tempfile.gettempdir())
    if user is not None and not _traversable(parent):
        if tmp_root is not None:
            raise ProvisionError(
                f"the unprivileged server user {user.pw_name} cannot reach {parent}",
                "choose a temporary directory whose parents are all world-searchable (such as /tmp)",
            )
        parent = Path("/tmp")
    return parent


def _postmaster_pid(datadir: Path) -> int | None:
    try:
        first = (datadir / "postmaster.pid").read_text().splitlines()[0]
        return int(first.strip())
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat): with the pid
    it names one process, even after the pid is reused."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(text.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def same_process(pid: int | None, start: int | None) -> bool:
    return pid is not None and start is not None and process_start_time(pid) == start


@dataclass(frozen=True)
class RunDir:
    """One run's directory: ``run.json``, ``pgpass`` and ``conf/`` (restorecheck's) and ``cluster/``
    (the server's: ``data/``, ``sock/``, ``server.log``)."""

    base: Path
    cluster: Path = field(init=False)
    datadir: Path = field(init=False)
    sockdir: Path = field(init=False)
    logfile: Path = field(init=False)
    passfile: Path = field(init=False)
    conf: Path = field(init=False)

    def __post_init__(self) -> None:
        cluster = self.base / "cluster"
        layout = {"cluster": cluster, "datadir": cluster / "data", "sockdir": cluster / "sock",
                  "logfile": cluster / "server.log", "passfile": self.base / "pgpass", "conf": self.base / "conf"}
        for name, path in layout.items():
            object.__setattr__(self, name, path)

    def write_meta(self, **fields: Any) -> None:
        meta = self.read_meta()
        meta.update(fields)
        tmp = self.base / ".run.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.chmod(tmp, 0o600)
        tmp.replace(self.base / "run.json")

    def read_meta(self) -> dict[str, Any]:
        try:
            data = json.loads((self.base / "run.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def record_owner(directory: Path) -> None:
    """Write ``run.json`` naming this process (pid and start time) into a directory restorecheck
    made (work, drill, input staging), so that ``doctor --sweep`` removes it once this process is gone."""
    RunDir(directory).write_meta(owner_pid=os.getpid(), owner_start=process_start_time(os.getpid()))


def _wait_ready(admin: PostgresRef, logfile: Path, proc: subprocess.Popen[bytes], deadline: float,
                started: float | None = None) -> str:
    """Poll until the server answers a query; return its server_version. ``deadline`` seconds count
    from ``started`` (the server's start, time.monotonic()): an answer that comes later is late too
    (a connection attempt can itself wait for the server)."""
    import psycopg
    from tenacity import (
        RetryError,
        Retrying,
        retry_if_exception_type,
        stop_after_delay,
        wait_exponential,
    )

    class _NotYet(Exception):
        pass

    def attempt() -> str:
        if proc.poll() is not None:
            raise ProvisionError(
                "the throwaway PostgreSQL server did not start: "
                + tail(logfile.read_text(errors="replace") if logfile.exists() else "(no log)", 5)
            )
        try:
            with pgconn.connect(admin.conninfo(), connect_timeout=3, autocommit=True) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                return str(row[0]).split()[0] if row else ""
        except psycopg.OperationalError as exc:  # "starting up", socket not yet there
            raise _NotYet(str(exc)) from exc

    started = time.monotonic() if started is None else started

    def not_ready() -> ProvisionError:
        log_tail = tail(logfile.read_text(errors="replace"), 15) if logfile.exists() else "(no log)"
        return ProvisionError(
            f"the throwaway PostgreSQL server was not ready within {deadline:.0f}s; server log tail:\n{log_tail}",
            "a slow or busy machine: raise --start-timeout; else run 'restorecheck doctor'",
        )

    version = ""
    try:
        for att in Retrying(
            stop=stop_after_delay(deadline),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            retry=retry_if_exception_type(_NotYet),
            reraise=False,
        ):
            with att:
                version = attempt()
    except RetryError:
        raise not_ready() from None
    if time.monotonic() - started > deadline:  # it answered, but only after the deadline
        raise not_ready()
    return version


def stop_server(proc: subprocess.Popen[bytes] | None, *, sandboxed: bool, timeout: float = 15) -> None:
    """Stop the server started by ``local_cluster``; never raises.

    The cluster is thrown away, so it never gets a shutdown checkpoint. Sandboxed: SIGKILL to
    bubblewrap ends its PID namespace, and the kernel kills every process in it (the postmaster, its
    backends, and anything a dump started); it returns once the namespace's first process is gone
    (the kernel empties a PID namespace before its first process may end), so nothing of the sandbox
    outlives the call, even on a busy machine. Otherwise: immediate shutdown (SIGQUIT: the
    postmaster stops its backends and exits without a checkpoint), then SIGKILL.
    """
    if proc is None:
        return
    inner = []
    if sandboxed and proc.poll() is None:
        try:
            kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            kids = []
        inner = [(int(k), process_start_time(int(k))) for k in kids]
    steps = ((signal.SIGKILL, 5.0),) if sandboxed else ((signal.SIGQUIT, timeout), (signal.SIGKILL, 5.0))
    for sig, wait in steps:
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
    with contextlib.suppress(Exception):
        proc.wait(1)
    end = time.monotonic() + 5.0
    for pid, start in inner:
        while time.monotonic() < end and same_process(pid, start) and not _exited(pid):
            time.sleep(0.005)


def _exited(pid: int) -> bool:
    """True when ``pid`` has ended (a zombie, or gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _initdb(inst: PgInstallation, sb: Sandbox, rd: RunDir, binds_ro: list[Path], env: dict[str, str],
            password: str) -> None:
    """initdb into the run's data directory, in the sandbox, as the server's user."""
    pwfile = rd.cluster / "pwfile"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    if sb.user is not None:
        os.chown(pwfile, sb.user.pw_uid, sb.user.pw_gid)
    try:
        res = run(sb.wrap(initdb_cmd(inst, rd.datadir, pwfile), rw=[rd.cluster], ro=binds_ro, chdir=rd.cluster),
                  timeout=300, cwd=rd.cluster, env=env, inherit_env=False, popen_kwargs=sb.popen_kwargs())
    finally:
        pwfile.unlink()
    if not res.ok:
        raise ProvisionError(
            f"initdb failed ({'killed after 300 s' if res.timed_out else f'exit {res.returncode}'}): "
            f"{tail(res.stderr or res.stdout, 5)}",
            "run 'restorecheck doctor' to see which PostgreSQL installations can run here",
        )


def set_admin_password(inst: PgInstallation, sb: Sandbox, rd: RunDir, binds_ro: list[Path],
                       env: dict[str, str], password: str) -> None:
    """Give the admin role of the data directory ``password`` before any server listens on it: a
    single-user backend (in the sandbox, as the server's user) stores a SCRAM verifier computed here,
    so the password itself never reaches the server."""
    stmt = admin_password_statement(scram_sha256_verifier(password))
    argv = sb.wrap(set_admin_password_cmd(inst, rd.datadir), rw=[rd.cluster], ro=binds_ro, chdir=rd.cluster)
    res = run(argv, stdin=(stmt + "\n").encode(), timeout=120, cwd=rd.cluster, env=env, inherit_env=False,
              popen_kwargs=sb.popen_kwargs())
    if not res.ok:
        text = VERIFIER_RE.sub("<verifier>", res.stderr or res.stdout)
        raise ProvisionError(
            f"could not set the throwaway cluster's admin password (single-user postgres "
            f"{'killed after 120 s' if res.timed_out else f'exit {res.returncode}'}): {tail(text, 5)}",
            "set RESTORECHECK_TEMPLATE=0 to run initdb for each cluster, and run 'restorecheck doctor'",
        )


def _make_datadir(inst: PgInstallation, sb: Sandbox, rd: RunDir, binds_ro: list[Path], env: dict[str, str],
                  password: str, *, use_template: bool) -> str:
    """Make ``rd.datadir`` with ``password`` for the admin role; say how (``template``: copied from
    the installation's template; ``initdb+template``: initdb, kept as the template; ``initdb``)."""
    tpl: Path | None = None
    if use_template:
        try:
            tpl = template_root() / template_key(inst, env)
            template_root().mkdir(parents=True, exist_ok=True, mode=0o755)
            why = unsafe_reason(template_root())
        except OSError as exc:
            why = f"it cannot be made ({exc.strerror})"
        if why is not None:
            log.info("no template data directory (the cache %s: %s): running initdb", template_root(), why)
            tpl = None
        elif tpl is not None and tpl.exists():
            why = copy_template(tpl, rd.datadir, sb.user)
            if why is None:
                set_admin_password(inst, sb, rd, binds_ro, env, password)
                return "template"
            log.warning("not using the template data directory %s: %s; making it again", tpl, why)
            remove_template(tpl)
    # A template is made only from an initdb no backup could reach while it ran: in the sandbox
    # (a dump's code stays in its own run's), or as a normal user (the server is that user).
    if tpl is None or not (sb.user is None or sb.kind == "bwrap"):
        _initdb(inst, sb, rd, binds_ro, env, password)
        return "initdb"
    _initdb(inst, sb, rd, binds_ro, env, secrets.token_urlsafe(24))  # forgotten at once
    publish_template(rd.datadir, tpl, template_binaries(inst))
    set_admin_password(inst, sb, rd, binds_ro, env, password)
    return "initdb+template"


@contextlib.contextmanager
def local_cluster(
    *,
    min_major: int | None = None,
    pg_bin: str | Path | None = None,
    installation: PgInstallation | None = None,
    keep: bool = False,
    settings: Mapping[str, str] | None = None,
    start_timeout: float = 60.0,
    tmp_root: str | Path | None = None,
    run_as: str | None = None,
    sandbox: Sandbox | None = None,
    any_role_on_socket: bool = False,
    needs: DumpNeeds | None = None,
    template: bool | None = None,
    size_hint: int | None = None,
) -> Iterator[PgServer]:
    """Start a throwaway cluster; yield a ``PgServer``; stop it and delete its directory on exit.

    The installation is the lowest major >= ``min_major`` that can host ``needs`` (the dump's
    extensions and collations), unless ``installation`` is given. ``any_role_on_socket``
    (``hba_text``) is for clusters that stand in for a source in tests. ``template``: copy the
    installation's template data directory instead of running initdb (``template_wanted``: on
    unless turned off; initdb where the cache cannot be trusted). ``size_hint``: the bytes of data
    the cluster will hold, when known: a small one goes to memory (``memory_parent``) unless
    ``tmp_root`` says where."""
    inst = installation or choose(discover(pg_bin), min_major=min_major,
                                  prefer_origin="--pg-bin" if pg_bin else None, needs=needs)
    sb = sandbox or resolve("auto", run_as or os.environ.get("RESTORECHECK_RUN_AS"))
    user = sb.user
    in_memory = memory_parent(size_hint, user) if tmp_root is None else None
    rd = RunDir(Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=in_memory or reachable_parent(tmp_root, user))))
    proc: subprocess.Popen[bytes] | None = None
    port = 0
    password = secrets.token_urlsafe(24)
    sandboxed = sb.kind == "bwrap"
    tcp = not sandboxed  # in the sandbox: no network at all, the Unix socket only
    try:
        # the unprivileged user must reach cluster/ and conf/ (o+x), but may list or change nothing
        os.chmod(rd.base, 0o711 if user is not None else 0o700)
        record_owner(rd.base)
        if keep:  # how a person reaches the kept cluster: restorecheck's file (0600), not the server's
            fd = os.open(rd.passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{rd.sockdir}:*:*:{SUPERUSER}:{password}\n")
        inst = reachable_installation(inst, user, private_root=rd.base)
        rd.cluster.mkdir(mode=0o700)
        rd.sockdir.mkdir(mode=0o700)
        rd.conf.mkdir(mode=0o755)
        (rd.conf / "pg_hba.conf").write_text(hba_text(tcp=tcp, any_role_on_socket=any_role_on_socket))
        os.chmod(rd.conf / "pg_hba.conf", 0o644)
        _chown_tree(rd.cluster, user)
        binds_ro = [*installation_paths(inst), rd.conf]
        env = sb.env(home=rd.cluster)
        made = _make_datadir(inst, sb, rd, binds_ro, env, password, use_template=template_wanted(template))
        rd.write_meta(datadir_from=made)
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probe and bind
            port = free_port() if tcp else 5432
            with open(rd.datadir / "postgresql.conf", "a") as conf:
                conf.write("\n# restorecheck throwaway settings\n"
                           + settings_text(port, rd.sockdir, settings, tcp=tcp, hba_file=rd.conf / "pg_hba.conf"))
            admin = PostgresRef({"host": str(rd.sockdir), "port": str(port), "user": SUPERUSER,
                                 "dbname": "postgres"}, password)
            with contextlib.suppress(FileNotFoundError):
                rd.logfile.unlink()
            log_fd = os.open(rd.logfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            if user is not None:
                os.fchown(log_fd, user.pw_uid, user.pw_gid)
            argv = sb.wrap([str(inst.tool("postgres")), "-D", str(rd.datadir)], rw=[rd.cluster], ro=binds_ro,
                           chdir=rd.cluster, die_with_parent=not keep)
            started = time.monotonic()
            try:
                proc = popen_long_lived(argv, env=env, cwd=rd.cluster, stdin=subprocess.DEVNULL, stdout=log_fd,
                                        stderr=log_fd, start_new_session=True,
                                        **sb.popen_kwargs(die_with_parent=not keep))
            finally:
                os.close(log_fd)
            rd.write_meta(server_pid=proc.pid, server_start=process_start_time(proc.pid), keep=keep,
                          sandbox=sb.kind)
            log.debug("started %s (pid %s)", " ".join(argv[-3:]), proc.pid)
            try:
                version = _wait_ready(admin, rd.logfile, proc, start_timeout, started)
            except ProvisionError as exc:
                log_text = rd.logfile.read_text(errors="replace") if rd.logfile.exists() else ""
                if tcp and ("could not bind" in log_text or "Address already in use" in log_text):
                    last_error = str(exc)
                    stop_server(proc, sandboxed=sandboxed)
                    proc = None
                    continue
                raise
            info: dict[str, Any] = {
                "base": str(rd.base), "datadir": str(rd.datadir), "logfile": str(rd.logfile), "port": port,
                "socket_dir": str(rd.sockdir), "bindir": str(inst.bindir), "server_pid": proc.pid,
                "sandbox": sb.facts(), "cluster_dir": str(rd.cluster),
                "datadir_from": made, "datadir_on": IN_MEMORY if in_memory else "disk",
            }
            if keep:
                info["passfile"] = str(rd.passfile)
            if tcp:
                info["tcp"] = PostgresRef({"host": "127.0.0.1", "port": str(port), "user": SUPERUSER,
                                           "dbname": "postgres"}, password)
            server = PgServer(
                admin=admin,
                version=version,
                kind="local",
                tools=inst,
                info=info,
                tablespace_dir=lambda name: _make_dir(rd.cluster / "tablespaces" / name, user),
                sandbox=sb,
                tool_binds_rw=(rd.sockdir,),
                tool_binds_ro=tuple(installation_paths(inst)),
                tool_network=False,
            )
            yield server
            return
        raise ProvisionError(f"the throwaway PostgreSQL server did not start: {last_error}",
                             "run 'restorecheck doctor'")
    finally:
        with deferred_signals():  # a Ctrl-C or SIGTERM now must not cut the cleanup short
            _cleanup(rd, proc, sandboxed=sandboxed, keep=keep, port=port)


def _cleanup(rd: RunDir, proc: subprocess.Popen[bytes] | None, *, sandboxed: bool, keep: bool,
             port: int) -> None:
    try:
        if keep and proc is not None and proc.poll() is None:
            _KEPT.append(proc)  # outlives this run on purpose: never reaped (nor warned about) here
            log.warning(
                "kept the throwaway cluster in %s: connect with PGPASSFILE=%s psql -h %s -p %s -U %s postgres; "
                "stop and remove it with: %s && rm -rf %s",
                rd.base, rd.passfile, rd.sockdir, port, SUPERUSER, stop_command(proc.pid, sandboxed), rd.base,
            )
            return
        stop_server(proc, sandboxed=sandboxed)
    finally:
        if not (keep and proc is not None and proc.poll() is None):
            shutil.rmtree(rd.base, ignore_errors=True)


_KEPT: list[subprocess.Popen[bytes]] = []


@atexit.register
def _forget_kept() -> None:
    """Servers kept with --keep outlive restorecheck on purpose: Popen must not warn at exit that
    they still run (their stop command was printed)."""
    for proc in _KEPT:
        if proc.returncode is None:
            proc.returncode = 0


def stop_command(pid: int, sandboxed: bool) -> str:
    """How a person stops a kept server (``pid``: ``server_pid``). In the sandbox: SIGKILL to the PID
    namespace's first process (the kernel then kills the namespace); else the postmaster's fast
    shutdown."""
    if not sandboxed:
        return f"kill -INT {pid}"
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return f"kill -KILL {children[0] if children else pid}"


# --- what killed runs leave behind --------------------------------------------------------------

STRAY_PREFIXES = ("restorecheck-", )
_AGE_WITHOUT_OWNER = 3600.0


@dataclass
class Stray:
    path: Path
    kind: str  # cluster | work
    server_pid: int | None = None


def _owner_alive(meta: dict[str, Any], path: Path) -> bool | None:
    """True/False from run.json; None when the directory names no owner."""
    pid, start = meta.get("owner_pid"), meta.get("owner_start")
    if isinstance(pid, int) and isinstance(start, int):
        return same_process(pid, start)
    old = path / "owner.pid"  # restorecheck 0.1
    try:
        return _alive(int(old.read_text().strip()))
    except (OSError, ValueError):
        return None


def _server_of(meta: dict[str, Any], path: Path) -> int | None:
    """The live server process a run directory names, verified: same start time, and its command
    line names this directory (a pid the server could have written elsewhere is never trusted)."""
    pid, start = meta.get("server_pid"), meta.get("server_start")
    if not (isinstance(pid, int) and isinstance(start, int) and same_process(pid, start)):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return None
    return pid if str(path) in cmdline else None


def stray_directories(tmp_root: str | Path | None = None) -> list[Path]:
    """Directories left by a run that was killed (SIGKILL, power loss): throwaway clusters, work,
    drill and input directories. A directory counts as stray when the restorecheck process that
    made it is gone; a live run's, and a cluster kept with --keep whose server still runs, never do.
    """
    return [s.path for s in _strays(tmp_root)]


def _strays(tmp_root: str | Path | None = None) -> list[Stray]:
    roots = [Path(tmp_root or tempfile.gettempdir())]
    if tmp_root is None and MEMORY_DIR.is_dir() and MEMORY_DIR not in roots:
        roots.append(MEMORY_DIR)  # small clusters run there (memory_parent)
    return [s for root in roots for s in _strays_in(root)]


def _strays_in(root: Path) -> list[Stray]:
    out: list[Stray] = []
    # restorecheck's own, or (0.1 made a cluster's directory its server user's) the server user's
    trusted = {0, os.geteuid()}
    with contextlib.suppress(ProvisionError):
        user = run_as_user()
        if user is not None:
            trusted.add(user.pw_uid)
    for d in sorted(root.glob(TMP_PREFIX + "*")):
        try:
            st = os.lstat(d)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in trusted:
            continue  # never follow a link, never touch what another user made
        rd = RunDir(d)
        meta = rd.read_meta()
        is_cluster = (d / "cluster").exists() or (d / "data").exists() or (d / "sock").exists()
        server = _server_of(meta, d) if is_cluster else None
        if is_cluster and meta.get("keep") and server is not None:
            continue  # kept with --keep and still running
        if is_cluster and not meta:  # restorecheck 0.1: the postmaster pid in the data directory
            pid = _postmaster_pid(d / "data")
            if pid is not None and _alive(pid):
                continue
        owner = _owner_alive(meta, d)
        if owner:
            continue  # its run is still going
        if owner is None and time.time() - st.st_mtime < _AGE_WITHOUT_OWNER:
            continue  # no owner recorded: only sweep it once it is clearly old
        out.append(Stray(d, "cluster" if is_cluster else "work", server))
    return out


def sweep(tmp_root: str | Path | None = None) -> list[Path]:
    """Stop the orphan servers and remove the stray directories (``stray_directories``); return what
    was removed."""
    removed = []
    for s in _strays(tmp_root):
        if s.server_pid is not None:
            for sig, wait in ((signal.SIGKILL, 5.0),):
                with contextlib.suppress(OSError):
                    os.kill(s.server_pid, sig)
                end = time.monotonic() + wait
                while time.monotonic() < end and _alive(s.server_pid):
                    time.sleep(0.05)
        shutil.rmtree(s.path, ignore_errors=True)
        if not s.path.exists():
            removed.append(s.path)
    return removed
