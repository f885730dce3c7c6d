"""The OS sandbox around everything that reads a backup: the throwaway server and the restore tools.

A backup is untrusted input (README, "Threat model"). Whatever a dump makes the server or a
restore tool do, it does as an unprivileged user (uid, gid and supplementary groups dropped when
restorecheck runs as root) and, where bubblewrap works, inside a sandbox:

- a read-only view of the system (``/usr``, ``/etc`` and the PostgreSQL installation; not
  ``/home``, ``/root``, ``/tmp``, ``/var`` or the backup directory),
- write access to the run's own directory only (plus a private ``/tmp``),
- no network (a local cluster listens on a Unix socket in the run's directory, which
  restorecheck reaches from outside), unless the tools must reach a server target,
- its own PID namespace with ``--die-with-parent``: when restorecheck dies, even by ``kill -9``,
  the kernel kills every process of the sandbox, whatever the dump started in it,
- a clean environment: the sandbox never sees restorecheck's own environment (which may hold the
  source's ``PGPASSWORD`` or cloud credentials), only what a tool needs.

``--sandbox none`` (or ``auto`` where bubblewrap cannot run) keeps the unprivileged user and
the clean environment, and asks the kernel to kill the child when restorecheck dies
(``PR_SET_PDEATHSIG``); the report says that the restore ran unsandboxed.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import pwd
import queue
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restorecheck.errors import BadInputError, ProvisionError, ToolNotFoundError
from restorecheck.runner import run

log = logging.getLogger("restorecheck")

MODES = ("auto", "bwrap", "none")

# Environment variables a sandboxed tool may inherit from restorecheck's own environment. Nothing
# else passes: restorecheck's environment may hold the source's password or cloud credentials.
_PASS_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "LC_COLLATE", "LC_MESSAGES", "TZ", "PGTZ")
# libpq settings that only matter for reaching a server target (the tools then have the network)
_PASS_ENV_NETWORK = ("PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL", "PGCONNECT_TIMEOUT",
                     "PGTARGETSESSIONATTRS", "PGGSSENCMODE", "PGKRBSRVNAME", "PGREQUIRESSL")


def unprivileged_user(explicit: str | None = None) -> pwd.struct_passwd | None:
    """The user whatever reads a backup runs as when restorecheck is root; None when it is not root.

    ``nobody`` unless ``explicit`` (``RESTORECHECK_RUN_AS``, read by the caller) names another.
    A user with uid 0 is refused: it would be root again.
    """
    if os.geteuid() != 0:
        return None
    name = explicit or "nobody"
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        raise ProvisionError(
            f"running as root, and the unprivileged user {name!r} to run PostgreSQL as does not exist",
            "create it (useradd --system restorecheck) and set RESTORECHECK_RUN_AS, or run as a normal user",
        ) from None
    if user.pw_uid == 0 or user.pw_gid == 0:
        raise ProvisionError(
            f"the user {name!r} to run PostgreSQL as has uid or gid 0: it would run the restore as root",
            "set RESTORECHECK_RUN_AS to an unprivileged user",
        )
    return user


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # looked up now: the child only calls it


def set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    """``preexec_fn``: the kernel kills the child when restorecheck dies (PR_SET_PDEATHSIG)."""
    _PRCTL(1, signal.SIGKILL, 0, 0, 0)


@dataclass(frozen=True)
class Sandbox:
    """How the processes that read a backup are confined. Build argv with ``wrap`` and start them
    with ``popen_kwargs``."""

    kind: str  # "bwrap" | "none"
    user: pwd.struct_passwd | None = None  # drop to this user (restorecheck runs as root)
    bwrap: str | None = None
    note: str = ""  # why the sandbox is not in use (auto fell back), for the report
    requested: str = "auto"

    @property
    def uid(self) -> int:
        return os.geteuid() if self.user is None else self.user.pw_uid

    @property
    def gid(self) -> int:
        return os.getegid() if self.user is None else self.user.pw_gid

    @property
    def username(self) -> str:
        if self.user is not None:
            return self.user.pw_name
        try:
            return pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            return str(os.geteuid())

    def facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "requested": self.requested, "user": self.username}
        if self.note:
            out["note"] = self.note
        return out

    def wrap(self, argv: Sequence[str | os.PathLike[str]], *, rw: Sequence[Path] = (), ro: Sequence[Path] = (),
             network: bool = False, chdir: Path | None = None, die_with_parent: bool = True) -> list[str]:
        """``argv`` as it runs in this sandbox. ``rw``/``ro``: host paths visible inside (same path)."""
        args = [os.fspath(a) for a in argv]
        if self.kind != "bwrap":
            return args
        assert self.bwrap is not None
        return [self.bwrap, *bwrap_args(rw=rw, ro=ro, network=network, chdir=chdir,
                                        die_with_parent=die_with_parent), "--", *args]

    def popen_kwargs(self, *, die_with_parent: bool = True) -> dict[str, Any]:
        """Keyword arguments for ``subprocess.Popen``: the unprivileged user (uid, gid, no
        supplementary groups), and where bubblewrap is not the parent, PR_SET_PDEATHSIG."""
        kw: dict[str, Any] = {}
        if self.user is not None:
            kw.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        if die_with_parent and self.kind != "bwrap":
            kw["preexec_fn"] = set_pdeathsig
        return kw

    def env(self, extra: Mapping[str, str] | None = None, *, network: bool = False,
            home: Path | None = None) -> dict[str, str]:
        """A clean environment for a sandboxed process: a few locale variables, and ``extra``."""
        out = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
        for name in _PASS_ENV + (_PASS_ENV_NETWORK if network else ()):
            if name in os.environ:
                out[name] = os.environ[name]
        if home is not None:
            out["HOME"] = str(home)
        out.update(extra or {})
        return out


def _system_binds() -> list[str]:
    """The read-only view of the system: /usr and /etc, and /bin, /lib, ... as on the host."""
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / top
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    return args


def bwrap_args(*, rw: Sequence[Path] = (), ro: Sequence[Path] = (), network: bool = False,
               chdir: Path | None = None, die_with_parent: bool = True) -> list[str]:
    """bubblewrap's options for one sandboxed process (pure, for tests)."""
    args = ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not network:
        args.append("--unshare-net")
    if die_with_parent:
        args.append("--die-with-parent")
    args += ["--new-session", *_system_binds(), "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    if network:  # name resolution for a server target
        args += ["--ro-bind-try", "/run/systemd/resolve", "/run/systemd/resolve"]
    for p in ro:
        if not str(p).startswith(("/usr/", "/etc/")):
            args += ["--ro-bind", str(p), str(p)]
    for p in rw:
        args += ["--bind", str(p), str(p)]
    if chdir is not None:
        args += ["--chdir", str(chdir)]
    return args


@functools.lru_cache(maxsize=8)
def _probe_bwrap(uid: int | None, gid: int | None) -> tuple[str | None, str]:
    """(path of bwrap, '') when bubblewrap can run a sandbox here as that user, else (None, why)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return None, "bubblewrap (bwrap) is not installed"
    kw: dict[str, Any] = {}
    if uid is not None:
        kw.update(user=uid, group=gid, extra_groups=[])
    try:
        res = run([exe, *bwrap_args(), "--", "/bin/true"], timeout=20, env={"PATH": "/usr/bin:/bin"},
                  popen_kwargs=kw)
    except (OSError, ToolNotFoundError) as exc:
        return None, f"bubblewrap cannot start: {exc}"
    if not res.ok:
        why = res.stderr.strip().splitlines()
        return None, f"bubblewrap cannot create a sandbox here: {why[-1] if why else 'exit ' + str(res.returncode)}"
    return exe, ""


def resolve(mode: str | None = "auto", run_as: str | None = None) -> Sandbox:
    """The sandbox for ``--sandbox MODE``: ``bwrap`` (refused with exit 3 where it cannot run),
    ``none``, or ``auto`` (bwrap where it works, else none with a note for the report)."""
    mode = (mode or "auto").strip().lower()
    if mode not in MODES:
        raise BadInputError(f"unknown --sandbox {mode!r}", "use auto, bwrap or none")
    user = unprivileged_user(run_as)
    if mode == "none":
        return Sandbox("none", user, note="--sandbox none: the restore ran without an OS sandbox",
                       requested=mode)
    exe, why = _probe_bwrap(None if user is None else user.pw_uid, None if user is None else user.pw_gid)
    if exe is not None:
        return Sandbox("bwrap", user, exe, requested=mode)
    if mode == "bwrap":
        raise ProvisionError(f"--sandbox bwrap was asked for, and {why}",
                             "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap), allow "
                             "unprivileged user namespaces, or choose --sandbox none for backups you trust")
    return Sandbox("none", user, note=f"the restore ran unsandboxed: {why}", requested=mode)


# --- long-lived children ------------------------------------------------------------------------
# PR_SET_PDEATHSIG (and so bwrap's --die-with-parent) fires when the *thread* that started the
# child ends, not the process. A server started from a worker thread (drill starts the target
# while the backup runs) would be killed when that thread ends; long-lived children are therefore
# started from one thread that lives as long as restorecheck.

_spawn_queue: queue.Queue[tuple[Callable[[], Any], queue.Queue[tuple[bool, Any]]]] = queue.Queue()
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()


def _spawner_loop() -> None:
    while True:
        fn, reply = _spawn_queue.get()
        try:
            reply.put((True, fn()))
        except BaseException as exc:
            reply.put((False, exc))


def popen_long_lived(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(argv, **kwargs)`` from a thread that lives as long as the process (or the
    main thread), so that a parent-death signal means restorecheck died, not a worker thread.

    The one start outside ``restorecheck.runner``, on purpose: the runner runs a command to its end
    in the calling thread, while a server must outlive the call that starts it (it is handed back,
    polled for readiness, and stopped by its provisioner with a shutdown sequence, ``stop_server``)
    and must be started from a thread that outlives it. Give it ``start_new_session=True``, as the
    runner does, so that it can be stopped as a group."""
    if threading.current_thread() is threading.main_thread():
        return subprocess.Popen(list(argv), **kwargs)
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = threading.Thread(target=_spawner_loop, name="restorecheck-spawner", daemon=True)
            _spawner.start()
    reply: queue.Queue[tuple[bool, Any]] = queue.Queue()
    _spawn_queue.put((lambda: subprocess.Popen(list(argv), **kwargs), reply))
    ok, value = reply.get()
    if not ok:
        raise value
    proc: subprocess.Popen[bytes] = value
    return proc


def readable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether a process of uid/gid (no supplementary groups) can reach and read ``path``: every
    parent searchable, the file (every file and directory, for a directory) readable."""

    def ok(st: os.stat_result, bits_user: int, bits_group: int, bits_other: int) -> bool:
        if uid == 0:
            return True
        if st.st_uid == uid:
            return bool(st.st_mode & bits_user)
        if st.st_gid == gid:
            return bool(st.st_mode & bits_group)
        return bool(st.st_mode & bits_other)

    p = path.absolute()
    try:
        for d in p.parents:
            if not ok(os.stat(d), 0o100, 0o010, 0o001):
                return False
        st = os.stat(p)
        if not p.is_dir():
            return ok(st, 0o400, 0o040, 0o004)
        for dirpath, _dirnames, filenames in os.walk(p):
            if not ok(os.stat(dirpath), 0o500, 0o050, 0o005):
                return False
            for n in filenames:
                if not ok(os.stat(os.path.join(dirpath, n)), 0o400, 0o040, 0o004):
                    return False
    except OSError:
        return False
    return True
