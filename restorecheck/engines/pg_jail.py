"""Where the PostgreSQL restore tools run: the sandbox, and how they see the backup.

Every program that reads a backup (``pg_restore --list``, the full read check, ``--schema-only``,
the restore itself, ``psql``) runs through one ``ToolJail``: as the unprivileged user, in the
sandbox of ``restorecheck.sandbox``, with a clean environment and a deadline, started by
``restorecheck.runner`` (``ToolJail.runner``, else the current runner). It sees the
PostgreSQL installation, the backup (read-only), an exchange directory for the lists restorecheck
writes for it, and, for the restore, the target's socket directory (or the network, for a
server target); nothing else.

How the backup reaches a tool that does not run as the user who can read it (restorecheck as
root, a backup that is 0600 root's, as ``restorecheck backup`` writes them):

- a single file read front to back (plain scripts, custom and tar archives restored without
  ``--jobs``): on the tool's standard input, opened by restorecheck, so nothing is copied;
- a directory archive, or ``--jobs`` (pg_restore workers reopen the file by name): a private copy
  in the exchange directory, readable by the unprivileged user only (the report says so).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from restorecheck.engines import pg_dump as pgd
from restorecheck.engines.base import ProgressFn
from restorecheck.process import PgInstallation
from restorecheck.runner import Command, Runner, Stdin, current_runner
from restorecheck.sandbox import Sandbox, readable_by

log = logging.getLogger("restorecheck")


@dataclasses.dataclass
class Input:
    """How a tool is given one backup: ``path`` (an operand, visible in the sandbox) or stdin."""

    path: Path | None
    binds: tuple[Path, ...] = ()
    copied: bool = False


@dataclasses.dataclass
class ToolJail:
    """One restore's way of running the tools that read its backup (see the module docstring)."""

    sandbox: Sandbox
    exchange: Path  # restorecheck's directory for what the tools read: lists, private copies
    rw: tuple[Path, ...] = ()  # e.g. the local cluster's socket directory
    ro: tuple[Path, ...] = ()
    network: bool = False
    deadline: float | None = None  # time.monotonic() at which a restore tool is killed
    staged: dict[str, Input] = dataclasses.field(default_factory=dict)
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)
    runner: Runner | None = None  # what starts the tools (None: runner.current_runner(); tests: a fake)

    @classmethod
    def create(cls, sandbox: Sandbox, tmp_root: str | os.PathLike[str] | None,
               stack: contextlib.ExitStack) -> ToolJail:
        from restorecheck.provisioners.local import reachable_parent, record_owner

        parent = reachable_parent(tmp_root, sandbox.user)
        exchange = Path(tempfile.mkdtemp(prefix="restorecheck-input-", dir=parent))
        stack.callback(shutil.rmtree, exchange, True)
        # root: the unprivileged user may pass through (o+x) to the files made for it, list nothing
        os.chmod(exchange, 0o711 if sandbox.user is not None else 0o700)
        record_owner(exchange)
        return cls(sandbox, exchange)

    def for_target(self, *, rw: Sequence[Path] = (), ro: Sequence[Path] = (), network: bool = True) -> ToolJail:
        return dataclasses.replace(self, rw=tuple(rw), ro=tuple(ro), network=network)

    # --- files for the tools ----------------------------------------------------------------

    def give(self, name: str, text: str) -> Path:
        """A file restorecheck writes for a tool to read (a --use-list), readable by the tool's user."""
        path = self.exchange / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        self._hand_over(path)
        return path

    def _hand_over(self, path: Path) -> None:
        if self.sandbox.user is None:
            return
        uid, gid = self.sandbox.uid, self.sandbox.gid
        os.chown(path, uid, gid, follow_symlinks=False)
        for dirpath, dirnames, filenames in os.walk(path):
            for n in dirnames + filenames:
                os.chown(os.path.join(dirpath, n), uid, gid, follow_symlinks=False)

    def input(self, path: Path, *, need_path: bool) -> Input:
        """How a tool reads ``path``: in place when its user can, else on stdin (``need_path`` False)
        or as a private copy (a directory archive; pg_restore --jobs)."""
        path = Path(path)
        key = f"{path}|{need_path}"
        if key in self.staged:
            return self.staged[key]
        if self.sandbox.user is None or readable_by(path, self.sandbox.uid, self.sandbox.gid):
            got = Input(path, (path,))
        elif not need_path and path.is_file():
            got = Input(None)
        else:
            copy = self.exchange / f"copy-{len(self.staged)}-{path.name}"
            t0 = time.monotonic()
            if path.is_dir():
                shutil.copytree(path, copy, symlinks=False)
            else:
                shutil.copyfile(path, copy)
            for dirpath, _dirs, filenames in os.walk(copy) if copy.is_dir() else []:
                os.chmod(dirpath, 0o500)
                for n in filenames:
                    os.chmod(os.path.join(dirpath, n), 0o400)
            if copy.is_file():
                os.chmod(copy, 0o400)
            self._hand_over(copy)
            self.facts["copied_for_sandbox"] = {"bytes": pgd.backup_bytes(copy),
                                                "seconds": round(time.monotonic() - t0, 3)}
            log.info("the backup is not readable by %s: copied privately for the tools (%s)",
                     self.sandbox.username, copy)
            got = Input(copy, (copy,), copied=True)
        self.staged[key] = got
        return got

    # --- running --------------------------------------------------------------------------

    def run(self, inst: PgInstallation, argv: Sequence[str], *, source: Path | None = None,
            inp: Input | None = None, env: Mapping[str, str] | None = None,
            feed: Iterator[bytes] | None = None, restore: bool = False, capture_stdout: bool = False,
            label: str = "", progress: ProgressFn | None = None,
            cancel: threading.Event | None = None) -> pgd.ToolResult:
        """Run ``argv`` (built with ``inp.path`` as its operand) in the sandbox. ``source``: the file
        to give on stdin when ``inp.path`` is None; ``feed``: blocks written to its stdin (psql's
        restricted script); ``restore``: the restore deadline applies; ``capture_stdout``: what it
        prints is kept (else thrown away); ``cancel``: set from another thread, the tool and its
        sandbox are killed."""
        from restorecheck.provisioners.local import installation_paths

        ro = [*self.ro, *installation_paths(inst), self.exchange]
        if inp is not None:
            ro += list(inp.binds)
        wrapped = self.sandbox.wrap(argv, rw=self.rw, ro=ro, network=self.network)
        stdin: Stdin = feed
        if inp is not None and inp.path is None and source is not None and feed is None:
            stdin = Path(source)  # opened by restorecheck: the tool gets the descriptor, not the path
        cmd = Command(tuple(wrapped), env=self.sandbox.env(env, network=self.network, home=Path("/tmp")),
                      stdin=stdin, stdout="capture" if capture_stdout else "discard",
                      popen_kwargs=self.sandbox.popen_kwargs(), deadline=self.deadline if restore else None,
                      cancel=cancel,
                      label=label, on_tick=None if progress is None else pgd.ticker(progress, label), poll=0.5)
        res = (self.runner or current_runner()).run(cmd)
        if res.stdout_dropped:
            log.warning("%s printed more than %d MiB: only the first were read", label or argv[0],
                        cmd.stdout_limit >> 20)
        return res
