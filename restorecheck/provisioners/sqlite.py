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

log = logging.getLogger("restorecheck")

DIR_PREFIX = "restorecheck-sqlite-"


@contextlib.contextmanager
def temporary_sqlite(
    tmp_root: str | Path | None = None, *, name: str = "restored.db", keep: bool = False
) -> Iterator[Path]:
    """A path for a private SQLite file (not created) inside a new private directory.

    The directory and everything in it are removed when the block is left, unless ``keep``.
    """
    workdir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=None if tmp_root is None else str(tmp_root)))
    try:
        yield workdir / name
    finally:
        if keep:
            log.warning("kept the restored SQLite copy in %s", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
