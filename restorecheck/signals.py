"""Turn SIGTERM (and SIGHUP) into an exception, so every ``with`` block cleans up on the way out.

Ctrl-C already raises KeyboardInterrupt. A cron job or Kubernetes stops a job with SIGTERM,
which by default kills Python without running ``finally`` blocks: the throwaway cluster would
stay behind. ``handle_termination()`` installs a handler that raises ``Terminated``.
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
    """Within the block, SIGTERM and SIGHUP raise ``Terminated``; the old handlers come back after."""
    with _handled_by(_raise, signal.SIGTERM, signal.SIGHUP):
        yield


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
