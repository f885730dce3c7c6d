"""The SQLite "throwaway instance": a private temporary file in a private temporary directory.

Opening a SQLite file can write to it (WAL recovery, a checkpoint, new ``-wal``/``-shm`` files),
so restorecheck never opens a backup in place: it copies it here first. The directory is created
0700 with a sweepable ``restorecheck-sqlite-`` prefix and removed, with everything SQLite put
next to the file, on every way out of the ``with`` block (exceptions, Ctrl-C and SIGTERM, which
``signals.handle_termination`` turns into an exception), unless ``keep``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from restorecheck.signals import deferred_signals

log = logging.getLogger("restorecheck")

DIR_PREFIX = "restorecheck-sqlite-"


@contextlib.contextmanager
def temporary_sqlite(
    tmp_root: str | Path | None = None, *, name: str = "restored.db", keep: bool = False,
    size_hint: int | None = None,
) -> Iterator[Path]:
    """A path for a private SQLite file (not created) inside a new private directory.

    The directory and everything in it are removed when the block is left, unless ``keep``.
    ``size_hint`` (the bytes to be copied there): a small copy goes to memory, ``/dev/shm``, by the
    rule of small throwaway clusters (``provisioners.local.memory_parent``; not with ``tmp_root``).
    """
    from restorecheck.provisioners.local import memory_parent

    parent = memory_parent(size_hint, None, base=0, factor=1) if tmp_root is None else Path(tmp_root)
    workdir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=None if parent is None else str(parent)))
    try:
        yield workdir / name
    finally:
        if keep:
            log.warning("kept the restored SQLite copy in %s", workdir)
        else:
            with deferred_signals():  # a second signal must not cut the removal short
                shutil.rmtree(workdir, ignore_errors=True)
