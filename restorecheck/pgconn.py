"""``psycopg.connect``, except that an attempt a Ctrl-C or SIGTERM cut short is closed at once.

psycopg re-raises the KeyboardInterrupt from a frame that still holds the half-made connection
(the connection generator and its libpq handle), and the traceback keeps that frame alive while
the exception climbs through every cleanup on its way out. Meanwhile the socket stays open and the
server's backend waits in authentication for an answer that never comes, until its
``authentication_timeout`` (one minute by default): a DROP DATABASE in that cleanup waited for
it, and an interrupted drill took 60 s to exit. Clearing the frames of the traceback frees the
handle, and libpq closes the socket, before the exception goes on.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg


def connect(conninfo: str = "", **kwargs: Any) -> psycopg.Connection[Any]:
    """``psycopg.connect(conninfo, **kwargs)``; an interrupted attempt leaves no socket open."""
    import psycopg  # not at import time: a SQLite-only run never loads the driver

    try:
        return psycopg.connect(conninfo, **kwargs)
    except BaseException as exc:
        if not isinstance(exc, Exception):  # KeyboardInterrupt, signals.Terminated, SystemExit
            traceback.clear_frames(exc.__traceback__)
        raise
