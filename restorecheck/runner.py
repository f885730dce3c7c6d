"""The one way restorecheck runs an external program.

Every tool restorecheck starts (pg_dump, pg_restore, psql, initdb, gpg, version probes, ...) is
described by a ``Command`` and executed by a ``Runner``; ``run(argv, ...)`` is the shorthand.

What the runner promises, whatever the tool does:

- argv only, never a shell;
- its own session and process group (``start_new_session``); on cancel, at the deadline, on an
  exception in the caller (Ctrl-C) and, once the tool itself has exited, for whatever it left
  running in its group, the whole group is killed (SIGKILL to ``-pgid``, after an optional
  SIGTERM ``grace``) before the tool is reaped, so the group id cannot have been reused;
- its pipes are drained by one loop (a selector, no threads): no deadlock whatever the tool
  prints, and memory bounded whatever it prints (``stderr_limit``: the first and the last bytes
  are kept, the middle is counted and left out; captured stdout keeps its first
  ``stdout_limit`` bytes);
- standard input from bytes, a file, or an iterator of byte blocks written as the tool reads
  them; a tool that exits before reading it all (psql with ON_ERROR_STOP) is not an error;
- an explicit environment: ``env`` is the whole environment unless ``inherit_env`` (a clean
  environment is the default; a tool that reads a backup gets ``Sandbox.env``).

``run`` blocks its thread until the tool and its group are gone: a parent-death signal in
``popen_kwargs`` (it fires when the *thread* that started the child ends) therefore never fires
early. A server that must outlive the call that starts it is the one exception
(``sandbox.popen_long_lived``).

The sandbox is not the runner's job: ``Sandbox.wrap`` builds the final argv and
``Sandbox.popen_kwargs`` the user and parent-death signal, which ``Command.popen_kwargs`` carries.

Tests substitute the runner without touching ``subprocess``: pass ``runner=`` where a function
takes one (``ToolJail.runner``, ``process.tool_version``, ...), or ``with use_runner(fake):`` for
everything the library starts in that block (``current_runner()`` is what ``run`` uses when no
runner is given).
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal, Protocol

from restorecheck.dburl import mask
from restorecheck.errors import ToolNotFoundError

log = logging.getLogger("restorecheck")

CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
CHUNK = 1 << 16
MiB = 1 << 20

# What a tool reads: nothing (/dev/null), bytes, a path or an open file (given to the tool as its
# own descriptor, nothing copied), or an iterator of byte blocks written as the tool reads them.
Stdin = bytes | os.PathLike[str] | IO[bytes] | Iterable[bytes] | None
# Where a tool's standard output goes: kept (bounded, ``Completed.stdout``), thrown away, a file
# (a path, truncated, or an open file), or handed block by block to a function (a decryptor's
# plaintext into a sink); an exception from the function stops the tool.
Stdout = Literal["capture", "discard"] | os.PathLike[str] | IO[bytes] | Callable[[bytes], object]

_RESERVED = frozenset({"args", "stdin", "stdout", "stderr", "env", "cwd", "shell", "start_new_session",
                       "process_group", "text", "universal_newlines", "encoding", "errors"})


@dataclass(frozen=True)
class Command:
    """One run of an external program, built by pure code and executed by a ``Runner``."""

    argv: tuple[str, ...]
    env: Mapping[str, str] | None = None  # the whole environment (PATH defaults to CLEAN_PATH) ...
    inherit_env: bool = False  # ... or added to a copy of restorecheck's own
    cwd: str | os.PathLike[str] | None = None
    stdin: Stdin = None
    stdout: Stdout = "capture"
    stdout_limit: int = 256 * MiB  # captured stdout: the first bytes kept, the rest counted
    stderr_limit: int = 4 * MiB  # the first and the last half kept, the middle counted
    timeout: float | None = None  # seconds from the start ...
    deadline: float | None = None  # ... or a time.monotonic() instant; the earlier one applies
    cancel: threading.Event | None = None  # set from any thread: the group is killed
    grace: float = 0.0  # seconds between SIGTERM and SIGKILL on cancel or at the deadline
    popen_kwargs: Mapping[str, Any] = field(default_factory=dict)  # user, group, umask, preexec_fn
    label: str = ""  # what the tool is doing, for progress and for tests
    on_tick: Callable[[float], object] | None = None  # called with the seconds elapsed, every ``poll``
    poll: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "argv", tuple(os.fspath(a) for a in self.argv))
        if not self.argv:
            raise ValueError("a command needs a program")
        clash = _RESERVED & set(self.popen_kwargs)
        if clash:
            raise ValueError(f"popen_kwargs may not set {sorted(clash)}: the runner decides them")


@dataclass
class Completed:
    """The outcome of one external command (a non-zero exit is a value, not an exception)."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False  # killed at the deadline
    cancelled: bool = False  # killed because ``Command.cancel`` was set
    stdout_dropped: int = 0  # bytes of captured stdout beyond ``stdout_limit``
    stderr_dropped: int = 0  # bytes of stderr left out in the middle
    stdin_refused: bool = False  # the tool closed its stdin before reading all that was fed

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.cancelled


class Runner(Protocol):
    """Runs a ``Command`` to its end and says how it went."""

    def run(self, cmd: Command) -> Completed: ...


class _Kept:
    """At most ``head + tail`` bytes of a stream: its first ``head`` and its last ``tail`` bytes."""

    def __init__(self, head: int, tail: int) -> None:
        self.head, self.tail = max(0, head), max(0, tail)
        self.first = bytearray()
        self.last = bytearray()
        self.dropped = 0

    def add(self, block: bytes) -> None:
        room = self.head - len(self.first)
        if room > 0:
            self.first += block[:room]
            block = block[room:]
        if not block:
            return
        if self.tail == 0:
            self.dropped += len(block)
            return
        self.last += block
        over = len(self.last) - self.tail
        if over > self.tail:  # trimmed in large steps: amortised O(1) per byte
            del self.last[:over]
            self.dropped += over

    def text(self) -> str:
        over = len(self.last) - self.tail
        if over > 0:
            del self.last[:over]
            self.dropped += over
        first = self.first.decode("utf-8", "replace")
        if not self.last:
            return first
        gap = f"\n[... {self.dropped} bytes left out by restorecheck ...]\n" if self.dropped else ""
        return first + gap + self.last.decode("utf-8", "replace")


class SubprocessRunner:
    """The real runner: ``subprocess.Popen`` and one selector loop (see the module docstring)."""

    def run(self, cmd: Command) -> Completed:
        args = list(cmd.argv)
        child_env = dict(os.environ) if cmd.inherit_env else {}
        child_env.update(cmd.env or {})
        child_env.setdefault("PATH", CLEAN_PATH)
        log.debug("run: %s", mask(" ".join(args)))
        start = time.monotonic()
        deadline = cmd.deadline
        if cmd.timeout is not None:
            deadline = start + cmd.timeout if deadline is None else min(deadline, start + cmd.timeout)
        with contextlib.ExitStack() as stack:
            stdin_arg, feed = _stdin(cmd.stdin, stack)
            stdout_arg, sink = _stdout(cmd.stdout, stack)
            try:
                proc = subprocess.Popen(args, env=child_env, cwd=cmd.cwd, stdin=stdin_arg, stdout=stdout_arg,
                                        stderr=subprocess.PIPE, start_new_session=True, **cmd.popen_kwargs)
            except FileNotFoundError:
                if cmd.cwd is not None and not os.path.isdir(cmd.cwd):
                    raise
                raise ToolNotFoundError(f"{args[0]} was not found",
                                        "check the installation of the program named") from None
            stack.callback(_close_pipes, proc)
            return _Loop(proc, cmd, feed, sink, start, deadline).run()


def _stdin(spec: Stdin, stack: contextlib.ExitStack) -> tuple[Any, Iterator[bytes] | None]:
    if spec is None:
        return subprocess.DEVNULL, None
    if isinstance(spec, (bytes, bytearray, memoryview)):
        data = bytes(spec)
        return subprocess.PIPE, iter([data[i:i + CHUNK] for i in range(0, len(data), CHUNK)])
    if isinstance(spec, str):
        raise TypeError("stdin: give bytes (text encoded) or a pathlib.Path, not a str")
    if isinstance(spec, os.PathLike):
        return stack.enter_context(open(spec, "rb")), None
    if hasattr(spec, "fileno"):
        return spec, None
    return subprocess.PIPE, iter(spec)


def _stdout(spec: Stdout, stack: contextlib.ExitStack) -> tuple[Any, Callable[[bytes], object] | None]:
    if isinstance(spec, str):
        if spec == "capture":
            return subprocess.PIPE, None
        if spec == "discard":
            return subprocess.DEVNULL, None
        raise ValueError(f"stdout={spec!r}: a path is given as a pathlib.Path")
    if isinstance(spec, os.PathLike):
        return stack.enter_context(open(spec, "wb")), None
    if hasattr(spec, "fileno"):
        return spec, None
    if callable(spec):
        return subprocess.PIPE, spec
    raise TypeError(f"stdout={spec!r} is not a destination")


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


class _Loop:
    """Drives one started process to its end: pipes, stdin feed, deadline, cancel, ticks."""

    def __init__(self, proc: subprocess.Popen[bytes], cmd: Command, feed: Iterator[bytes] | None,
                 sink: Callable[[bytes], object] | None, start: float, deadline: float | None) -> None:
        self.proc, self.cmd, self.feed, self.sink = proc, cmd, feed, sink
        self.start, self.deadline = start, deadline
        self.err = _Kept(cmd.stderr_limit // 2, cmd.stderr_limit - cmd.stderr_limit // 2)
        self.out = _Kept(cmd.stdout_limit, 0)
        self.pending = memoryview(b"")
        self.stdin_refused = False
        self.sel = selectors.DefaultSelector()
        self.pidfd: int | None = None

    def run(self) -> Completed:
        proc, cmd = self.proc, self.cmd
        timed_out = cancelled = False
        try:
            self._register()
            next_tick = self.start + cmd.poll
            while True:
                now = time.monotonic()
                if cmd.cancel is not None and cmd.cancel.is_set():
                    cancelled = True
                    self._stop()
                    break
                if self.deadline is not None and now >= self.deadline:
                    timed_out = True
                    self._stop()
                    break
                if self._leader_exited():
                    break
                if cmd.on_tick is not None and now >= next_tick:
                    cmd.on_tick(now - self.start)
                    next_tick = now + cmd.poll
                wait = max(0.0, next_tick - now)
                if self.deadline is not None:
                    wait = min(wait, max(0.0, self.deadline - now))
                if self.pidfd is None:  # no pidfd: the exit is noticed by polling
                    wait = min(wait, 0.02)
                self._pump(wait)
            # the tool is gone (or killed): whatever it left in its group goes too, before the reap
            self._kill_group(signal.SIGKILL)
            self._drain(time.monotonic() + 2.0)
            proc.wait()
        except BaseException:
            self._kill_group(signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.kill()
            proc.wait()
            self._close_feed()
            raise
        finally:
            self.sel.close()
            if self.pidfd is not None:
                os.close(self.pidfd)
        self._close_feed()
        return Completed(list(cmd.argv), proc.returncode, self.out.text(), self.err.text(),
                         time.monotonic() - self.start, timed_out=timed_out, cancelled=cancelled,
                         stdout_dropped=self.out.dropped, stderr_dropped=self.err.dropped,
                         stdin_refused=self.stdin_refused)

    # --- setup ---------------------------------------------------------------------------------

    def _register(self) -> None:
        proc = self.proc
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                os.set_blocking(pipe.fileno(), False)
                self.sel.register(pipe, selectors.EVENT_READ)
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            self.sel.register(proc.stdin, selectors.EVENT_WRITE)
        try:
            self.pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):  # kernels before 5.3: polled instead
            self.pidfd = None
        else:
            self.sel.register(self.pidfd, selectors.EVENT_READ)

    # --- the loop ------------------------------------------------------------------------------

    def _pump(self, wait: float) -> None:
        for key, _events in self.sel.select(wait):
            if key.fileobj is self.pidfd:
                continue  # noticed by _leader_exited
            if key.fileobj is self.proc.stdin:
                self._write()
            else:
                self._read(key.fileobj)  # type: ignore[arg-type]

    def _read(self, pipe: IO[bytes]) -> None:
        try:
            block = os.read(pipe.fileno(), CHUNK)
        except BlockingIOError:
            return
        if not block:
            self.sel.unregister(pipe)
            pipe.close()
            return
        if pipe is self.proc.stderr:
            self.err.add(block)
        elif self.sink is not None:
            self.sink(block)
        else:
            self.out.add(block)

    def _write(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None and self.feed is not None
        while not self.pending:
            block = next(self.feed, None)
            if block is None:
                self._close_stdin()
                return
            self.pending = memoryview(block)
        try:
            written = os.write(stdin.fileno(), self.pending)
        except BlockingIOError:
            return
        except (BrokenPipeError, ConnectionResetError):
            self.stdin_refused = True  # the tool stopped reading (psql with ON_ERROR_STOP): not an error
            self._close_stdin()
            return
        self.pending = self.pending[written:]

    def _close_stdin(self) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(stdin)
            with contextlib.suppress(OSError):
                stdin.close()
        self.pending = memoryview(b"")
        self._close_feed()

    def _close_feed(self) -> None:
        close = getattr(self.feed, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()

    def _leader_exited(self) -> bool:
        """Whether the tool has exited, without reaping it (its pid still names the group)."""
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None and info.si_pid != 0

    def _drain(self, until: float) -> None:
        """Read what the pipes still hold after the group is gone (holders outside it: bounded)."""
        stdin = self.proc.stdin
        if self.feed is not None and stdin is not None and not stdin.closed and (
                self.pending or next(self.feed, None) is not None):
            self.stdin_refused = True  # it exited with input left: refused, even if no write saw EPIPE
        self._close_stdin()
        if self.pidfd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(self.pidfd)
        while self.sel.get_map() and time.monotonic() < until:
            self._pump(max(0.0, until - time.monotonic()))

    # --- stopping ------------------------------------------------------------------------------

    def _kill_group(self, sig: int) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, sig)

    def _stop(self) -> None:
        """Cancel or deadline: SIGTERM to the group and ``grace`` seconds, then SIGKILL."""
        if self.cmd.grace > 0:
            self._kill_group(signal.SIGTERM)
            until = time.monotonic() + self.cmd.grace
            while time.monotonic() < until and not self._leader_exited():
                self._pump(min(0.05, max(0.0, until - time.monotonic())))
        self._kill_group(signal.SIGKILL)


_default: Runner = SubprocessRunner()
_default_lock = threading.Lock()


def current_runner() -> Runner:
    """The runner ``run`` uses when none is given (the real one, unless ``use_runner`` swapped it)."""
    return _default


@contextlib.contextmanager
def use_runner(runner: Runner) -> Iterator[Runner]:
    """Every command run without an explicit runner, in any thread, goes to ``runner`` in this
    block (tests: record or alter what the library starts; wrap the real runner to let it run)."""
    global _default
    with _default_lock:
        previous, _default = _default, runner
    try:
        yield runner
    finally:
        with _default_lock:
            _default = previous


def run(argv: Sequence[str | os.PathLike[str]], *, runner: Runner | None = None, **options: Any) -> Completed:
    """Run ``argv`` (``options``: the fields of ``Command``) with ``runner`` or the current one."""
    return (runner or current_runner()).run(Command(tuple(os.fspath(a) for a in argv), **options))
