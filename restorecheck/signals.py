"""Turn SIGTERM (and SIGHUP) into an exception, so every ``with`` block cleans up on the way out.

Ctrl-C already raises KeyboardInterrupt. A cron job or Kubernetes stops a job with SIGTERM,
which by default kills Python without running ``finally`` blocks: the throwaway cluster would
stay behind. ``handle_termination()`` installs a handler that raises ``Terminated``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


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
def handle_termination() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``Terminated``; the old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for s in old:
        signal.signal(s, _raise)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP until the block is done, so that cleanup runs to the end.

    A signal that arrives meanwhile is delivered (and raises) right after the block. The Python
    handlers are swapped for ones that only note the signal: blocking the signal with
    ``pthread_sigmask`` in the main thread is not enough once other threads exist (a worker
    thread, the spawner of long-lived children), since the kernel then hands a signal sent to the
    process to one of them and Python still runs its handler in the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    pending: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    old = {s: signal.getsignal(s) for s in held}
    for s in held:
        signal.signal(s, note)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        for signum in dict.fromkeys(pending):  # each once, in the order they came
            signal.raise_signal(signum)
