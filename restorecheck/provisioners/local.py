"""``local``: a throwaway PostgreSQL cluster in a temporary directory.

initdb + pg_ctl in ``<tmp>/restorecheck-XXXX/``, a free TCP port on 127.0.0.1 (password
authentication with a random password) and a private Unix socket directory (trust, reachable
only by its owner and root). Started as root, the cluster runs as an unprivileged user
(``nobody`` unless told otherwise); binaries under a directory that user cannot reach (the
embedded PostgreSQL inside root's site-packages) are copied once into a shared cache.

The settings trade durability for speed, which is right for a cluster that lives for one
restore and is thrown away: see ``THROWAWAY_SETTINGS``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from restorecheck.dburl import PostgresRef
from restorecheck.errors import ProvisionError
from restorecheck.pg_hosting import DumpNeeds
from restorecheck.process import PgInstallation, choose, discover, run, tail
from restorecheck.provisioners.base import PgServer
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
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_as_user(explicit: str | None = None) -> pwd.struct_passwd | None:
    """The unprivileged user the server runs as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    name = explicit or os.environ.get("RESTORECHECK_RUN_AS") or "nobody"
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ProvisionError(
            f"running as root, and the unprivileged user {name!r} to run PostgreSQL as does not exist",
            "create it (useradd --system postgres-rc) and set RESTORECHECK_RUN_AS, or run as a normal user",
        ) from None


def _can_run(path: Path, user: pwd.struct_passwd | None) -> bool:
    try:
        out = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            timeout=20,
            check=False,
            user=None if user is None else user.pw_uid,
            group=None if user is None else user.pw_gid,
            extra_groups=[] if user is not None else None,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0


def reachable_installation(inst: PgInstallation, user: pwd.struct_passwd | None) -> PgInstallation:
    """``inst`` itself if ``user`` can run its server, else a copy in a cache that it can run."""
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
    cache = Path(os.environ.get("RESTORECHECK_CACHE_DIR") or "/var/tmp") / f"restorecheck-pg{inst.version}-{digest[:12]}"
    # Mirror two levels above the installation, with sibling "*.libs" directories: wheels repaired
    # by auditwheel (pgserver) find libpq through an RPATH of $ORIGIN/../../../<pkg>.libs.
    inner = Path(root.parent.name) / root.name
    if not (cache / inner / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache.parent))
        try:
            for part in ("bin", "lib", "share"):
                shutil.copytree(root / part, staging / inner / part, symlinks=True)
            for libs in root.parent.parent.glob("*.libs"):
                if libs.is_dir():
                    shutil.copytree(libs, staging / libs.name, symlinks=True)
            for d, _dirs, _files in os.walk(staging):
                os.chmod(d, 0o755)
            with contextlib.suppress(OSError):  # another process won the race: use its copy
                staging.rename(cache)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    cache = cache / inner
    copied = PgInstallation(cache / "bin", inst.version, inst.origin + " (copied)", inst.tools)
    if not _can_run(copied.bindir / "postgres", user):
        raise ProvisionError(
            f"the unprivileged user {user.pw_name} cannot run PostgreSQL from {cache}",
            "set RESTORECHECK_CACHE_DIR to a world-readable directory",
        )
    return copied


def initdb_cmd(inst: PgInstallation, datadir: Path, pwfile: Path) -> list[str]:
    return [
        str(inst.tool("initdb")),
        "-D",
        str(datadir),
        "-U",
        SUPERUSER,
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        f"--pwfile={pwfile}",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions",
    ]


def settings_text(port: int, sockdir: Path, extra: Mapping[str, str] | None = None) -> str:
    values = dict(THROWAWAY_SETTINGS)
    values.update({"port": str(port), "listen_addresses": "'127.0.0.1'"})
    values["unix_socket_directories"] = f"'{sockdir}'"
    values["unix_socket_permissions"] = "0700"
    if extra:
        values.update(extra)
    return "".join(f"{k} = {v}\n" for k, v in values.items())


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
            os.chown(d, user.pw_uid, user.pw_gid)
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


def _wait_ready(admin: PostgresRef, logfile: Path, datadir: Path, deadline: float) -> str:
    """Poll until the server answers a query; return its server_version."""
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
        pid = _postmaster_pid(datadir)
        if pid is None and logfile.exists() and "FATAL" in logfile.read_text(errors="replace"):
            raise ProvisionError(
                "the throwaway PostgreSQL server did not start: " + tail(logfile.read_text(errors="replace"), 5)
            )
        try:
            with psycopg.connect(admin.conninfo(), connect_timeout=3, autocommit=True) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                return str(row[0]).split()[0] if row else ""
        except psycopg.OperationalError as exc:  # "starting up", socket not yet there
            raise _NotYet(str(exc)) from exc

    try:
        for att in Retrying(
            stop=stop_after_delay(deadline),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            retry=retry_if_exception_type(_NotYet),
            reraise=False,
        ):
            with att:
                return attempt()
    except RetryError:
        log_tail = tail(logfile.read_text(errors="replace"), 15) if logfile.exists() else "(no log)"
        raise ProvisionError(
            f"the throwaway PostgreSQL server was not ready within {deadline:.0f}s; server log tail:\n{log_tail}",
            "raise --start-timeout, or run 'restorecheck doctor'",
        ) from None
    raise AssertionError("unreachable")


def stop_cluster(inst: PgInstallation, datadir: Path, user: pwd.struct_passwd | None, timeout: float = 30) -> None:
    """Fast shutdown, then immediate, then SIGKILL; never raises."""
    pid = _postmaster_pid(datadir)
    if pid is None:
        return
    uid = None if user is None else user.pw_uid
    with contextlib.suppress(Exception):
        run([inst.tool("pg_ctl"), "-D", datadir, "-m", "fast", "-w", "-t", str(int(timeout)), "stop"],
            user=uid, timeout=timeout + 10)
    for sig, wait in ((signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        if not _alive(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        end = time.monotonic() + wait
        while time.monotonic() < end and _alive(pid):
            time.sleep(0.05)


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
    needs: DumpNeeds | None = None,
) -> Iterator[PgServer]:
    """Start a throwaway cluster; yield a ``PgServer``; stop it and delete its directory on exit.

    The installation is the lowest major >= ``min_major`` that can host ``needs`` (the dump's
    extensions and collations), unless ``installation`` is given."""
    inst = installation or choose(discover(pg_bin), min_major=min_major,
                                  prefer_origin="--pg-bin" if pg_bin else None, needs=needs)
    user = run_as_user(run_as)
    inst = reachable_installation(inst, user)
    parent = Path(tmp_root or tempfile.gettempdir())
    if user is not None and not _traversable(parent):
        if tmp_root is not None:
            raise ProvisionError(
                f"the unprivileged server user {user.pw_name} cannot reach {parent}",
                "choose a temporary directory whose parents are all world-searchable (such as /tmp)",
            )
        parent = Path("/tmp")
    base = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=parent))
    datadir, sockdir, logfile = base / "data", base / "sock", base / "server.log"
    started = False
    port = 0
    try:
        os.chmod(base, 0o700)
        (base / "owner.pid").write_text(f"{os.getpid()}\n")  # for stray_directories()
        sockdir.mkdir(mode=0o700)
        password = secrets.token_urlsafe(24)
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        _chown_tree(base, user)
        uid = None if user is None else user.pw_uid
        res = run(initdb_cmd(inst, datadir, pwfile), user=uid, timeout=300, cwd=base)
        pwfile.unlink()
        if not res.ok:
            raise ProvisionError(
                f"initdb failed (exit {res.returncode}): {tail(res.stderr or res.stdout, 5)}",
                "run 'restorecheck doctor' to see which PostgreSQL installations can run here",
            )
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probe and bind
            port = free_port()
            with open(datadir / "postgresql.conf", "a") as conf:
                conf.write("\n# restorecheck throwaway settings\n" + settings_text(port, sockdir, settings))
            admin = PostgresRef({"host": str(sockdir), "port": str(port), "user": SUPERUSER,
                                 "dbname": "postgres"})
            with contextlib.suppress(FileNotFoundError):
                logfile.unlink()
            started = True  # from here on, cleanup stops whatever postmaster.pid names
            res = run([inst.tool("pg_ctl"), "-D", datadir, "-l", logfile, "-W", "start"],
                      user=uid, timeout=60, cwd=base)
            if not res.ok:
                last_error = tail(res.stderr or res.stdout, 5)
                continue
            try:
                version = _wait_ready(admin, logfile, datadir, start_timeout)
            except ProvisionError as exc:
                log_text = logfile.read_text(errors="replace") if logfile.exists() else ""
                if "could not bind" in log_text or "Address already in use" in log_text:
                    last_error = str(exc)
                    stop_cluster(inst, datadir, user)
                    continue
                raise
            server = PgServer(
                admin=admin,
                version=version,
                kind="local",
                tools=inst,
                info={"base": str(base), "datadir": str(datadir), "logfile": str(logfile), "port": port,
                      "socket_dir": str(sockdir), "bindir": str(inst.bindir),
                      "tcp": PostgresRef({"host": "127.0.0.1", "port": str(port), "user": SUPERUSER,
                                          "dbname": "postgres"}, password)},
                tablespace_dir=lambda name: _make_dir(base / "tablespaces" / name, user),
            )
            yield server
            return
        raise ProvisionError(f"the throwaway PostgreSQL server did not start: {last_error}",
                             "run 'restorecheck doctor'")
    finally:
        with deferred_signals():  # a Ctrl-C or SIGTERM now must not cut the cleanup short
            _cleanup(inst, base, datadir, sockdir, port, user, keep=keep, started=started)


def _cleanup(inst: PgInstallation, base: Path, datadir: Path, sockdir: Path, port: int,
             user: pwd.struct_passwd | None, *, keep: bool, started: bool) -> None:
    try:
        if keep and started:
            sock = sockdir if user is None else f"{sockdir} (as root)"
            # pg_ctl refuses to run as root: the server's own user stops it
            as_user = "" if user is None else f"runuser -u {user.pw_name} -- "
            log.warning(
                "kept the throwaway cluster in %s: connect with psql -h %s -p %s -U %s postgres "
                "(socket %s); stop and remove it with: %s%s -D %s -m fast stop && rm -rf %s",
                base, sockdir, port, SUPERUSER, sock, as_user, inst.tool("pg_ctl"), datadir, base,
            )
            return
        if started:
            stop_cluster(inst, datadir, user)
    finally:
        if not (keep and started):
            shutil.rmtree(base, ignore_errors=True)


def stray_directories(tmp_root: str | Path | None = None) -> list[Path]:
    """Throwaway cluster directories left by a run that was killed (SIGKILL, power loss).

    A directory counts as stray when no live postmaster owns it; a running cluster (another
    restorecheck run, or one kept with --keep) is never listed.
    """
    root = Path(tmp_root or tempfile.gettempdir())
    strays: list[Path] = []
    for d in sorted(root.glob(TMP_PREFIX + "*")):
        if not d.is_dir() or not ((d / "data").exists() or (d / "sock").exists()):
            continue
        pid = _postmaster_pid(d / "data")
        if pid is not None and _alive(pid):
            continue  # a running cluster: another run's, or one kept with --keep
        try:
            owner = int((d / "owner.pid").read_text().strip())
        except (OSError, ValueError):
            owner = None
        if owner is not None and _alive(owner):
            continue  # its run is still going (perhaps still in initdb)
        if owner is None and time.time() - d.stat().st_mtime < 3600:
            continue  # no owner recorded: only sweep it once it is clearly old
        strays.append(d)
    return strays


def sweep(tmp_root: str | Path | None = None) -> list[Path]:
    """Remove the stray throwaway directories (see ``stray_directories``); return what was removed."""
    removed = []
    for d in stray_directories(tmp_root):
        shutil.rmtree(d, ignore_errors=True)
        if not d.exists():
            removed.append(d)
    return removed

