"""Turn SIGTERM (and SIGHUP) into an exception, so every ``with`` block cleans up on the way out.

A cron job or Kubernetes stops a job with SIGTERM, which by default kills Python without running
``finally`` blocks: the throwaway cluster would stay behind. ``handle_termination()`` installs a
handler that raises ``Terminated``, and one for SIGINT that raises KeyboardInterrupt. Each raises
once: the signal is ignored from then on, so a second Ctrl-C (an impatient user, a supervisor
that repeats itself) cannot cut the cleanup short or turn the one-line report into a traceback.
``ignore_from_now_on()`` is for the very end of the process, when everything is cleaned up.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM/SIGHUP. A BaseException, like KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, frame: FrameType | None) -> None:
    # Raise only once: a second signal during cleanup must not interrupt the cleanup itself.
    signal.signal(signum, signal.SIG_IGN)
    raise Terminated(signum)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C within ``handle_termination``: a KeyboardInterrupt to every ``except``, but not the
    exact type. CPython (3.11) marks an exact KeyboardInterrupt that leaves code run from a string
    (``exec`` of text: every dataclass a lazy import defines) as unhandled for good, even when it
    is caught further up; run with ``python -m restorecheck``, the interpreter then ends itself by
    SIGINT after the exit code was chosen (exit status -2, after the one line was printed: 2 and 3
    of 25 drills interrupted at start-up, before this class)."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_IGN)
    raise Interrupted


@contextlib.contextmanager
def _handled_by(handler: Callable[[int, FrameType | None], Any], *signums: int) -> Iterator[None]:
    """Within the block, ``handler`` handles ``signums``; the old handlers come back after. Only the
    main thread can set handlers: elsewhere the block runs with the handlers as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in signums}
    for s in signums:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextlib.contextmanager
def handle_termination() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``Terminated`` and SIGINT KeyboardInterrupt, each
    once; the old handlers come back after."""
    with _handled_by(_raise, signal.SIGTERM, signal.SIGHUP), _handled_by(_interrupt, signal.SIGINT):
        yield


_ENDING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def ignore_from_now_on() -> None:
    """For a process whose work is done and whose exit code is chosen: SIGINT, SIGTERM and SIGHUP
    are ignored until it exits. Without this a signal that lands while the interpreter shuts down
    finds the default action back (Python restores it before it finalizes the modules) and kills
    the process: exit status -SIGINT instead of the code already reported. A signal whose handler
    is still pending is run first (``signal.signal`` does that) and swallowed here."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _ENDING:
        while True:
            try:
                signal.signal(signum, signal.SIG_IGN)
                break
            except (KeyboardInterrupt, Terminated):
                continue


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP until the block is done, so that cleanup runs to the end.

    A signal that arrives meanwhile is delivered (and raises) right after the block. The Python
    handlers are swapped for ones that only note the signal: blocking the signal with
    ``pthread_sigmask`` in the main thread is not enough once other threads exist (a worker
    thread, the spawner of long-lived children), since the kernel then hands a signal sent to the
    process to one of them and Python still runs its handler in the main thread.
    """
    pending: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    try:
        with _handled_by(note, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            yield
    finally:
        for signum in dict.fromkeys(pending):  # each once, in the order they came
            signal.raise_signal(signum)
