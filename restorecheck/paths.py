"""Path arguments checked before anything opens them: no path can hang restorecheck.

Opening a FIFO blocks until a writer (or a reader) comes; reading ``/dev/zero`` never ends;
writing a report over ``/dev/null`` with a rename would replace the device node. Every path a user
or a caller gives (a backup, a manifest, a SQLite database, an output file or directory, a
directory of binaries) goes through one of the functions here first. They ``stat`` the path
(following symlinks, so ``/dev/stdin`` and ``/proc/self/fd/N`` are judged by what they point to)
and never open it, and raise a ``BadInputError`` (exit 2) whose one line names the path and what
it is. A path that does not exist is left to the caller (which knows whether that is an error).

``open_regular`` is for readers that must also be safe against a path swapped after the check:
it opens with ``O_NONBLOCK`` (which never blocks, even on a FIFO) and checks the open file again.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from restorecheck.errors import BadInputError

PathLike = str | os.PathLike[str]


_KINDS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


def kind_of(mode: int) -> str:
    """A reader's name for the file type in ``mode`` (``st_mode``)."""
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def _stat(path: Path) -> os.stat_result | None:
    """``stat`` following symlinks; None when nothing is there (a dangling symlink included)."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    except OSError as exc:  # ELOOP, EACCES on a parent, ENAMETOOLONG: bad input, said plainly
        raise BadInputError(f"{path} cannot be examined: {exc.strerror or exc.__class__.__name__}",
                            "check the path") from None


def _fail(what: str, path: Path, st: os.stat_result, expected: str, hint: str | None,
          error: type[BadInputError]) -> BadInputError:
    return error(f"{what} {path} is {kind_of(st.st_mode)}, not {expected}",
                 hint or f"give {expected}")


def _require_kind(path: Path, what: str, expected: str, *kinds: Callable[[int], bool], hint: str | None,
                  error: type[BadInputError]) -> os.stat_result | None:
    """``path``'s stat when one of ``kinds`` (``stat.S_ISREG``, ...) accepts its mode, None when
    nothing is there; anything else is ``error`` saying it is not ``expected``."""
    st = _stat(path)
    if st is not None and not any(kind(st.st_mode) for kind in kinds):
        raise _fail(what, path, st, expected, hint, error)
    return st


def require_file(path: PathLike, what: str, *, hint: str | None = None,
                 error: type[BadInputError] = BadInputError) -> bool:
    """``path`` is a regular file, or does not exist (returns False then); anything else is exit 2."""
    return _require_kind(Path(path), what, "a regular file", stat.S_ISREG, hint=hint, error=error) is not None


def require_file_or_dir(path: PathLike, what: str, *, hint: str | None = None,
                        error: type[BadInputError] = BadInputError, max_entries: int = 1_000_000) -> bool:
    """A regular file, or a directory holding only regular files and directories (pg_dump's
    directory format); False when nothing is there. A FIFO or device inside the directory is
    exit 2 too: the tools that read the backup would block on it."""
    p = Path(path)
    st = _require_kind(p, what, "a regular file or a directory", stat.S_ISREG, stat.S_ISDIR, hint=hint, error=error)
    if st is None:
        return False
    if stat.S_ISREG(st.st_mode):
        return True
    seen = 0
    for root, dirs, files in os.walk(p, followlinks=False):
        for name in (*files, *dirs):
            seen += 1
            if seen > max_entries:
                raise error(f"{what} {p} holds more than {max_entries} files", hint or "check the path")
            entry = Path(root) / name
            est = _stat(entry)
            if est is None:
                raise error(f"{what} {p} holds a dangling symbolic link {entry}", hint or "check the path")
            if not (stat.S_ISREG(est.st_mode) or stat.S_ISDIR(est.st_mode)):
                raise error(f"{what} {p} holds {entry}, which is {kind_of(est.st_mode)}",
                            hint or "a backup directory holds regular files only")
    return True


def require_dir(path: PathLike, what: str, *, hint: str | None = None,
                error: type[BadInputError] = BadInputError) -> bool:
    """A directory, or nothing there (False); a file or special file is exit 2."""
    return _require_kind(Path(path), what, "a directory", stat.S_ISDIR, hint=hint, error=error) is not None


def require_output_file(path: PathLike, what: str, *, hint: str | None = None) -> None:
    """An output file may be new or a regular file to replace; never a directory, FIFO or device
    (a rename over ``/dev/null`` would replace the device node; writing a FIFO blocks)."""
    require_file(path, what, hint=hint or "give a regular file path ('-' writes to stdout where offered)")


def require_sqlite_file(path: PathLike, what: str, *, hint: str | None = None,
                        error: type[BadInputError] = BadInputError) -> bool:
    """A SQLite database path and its side files (``-wal``, ``-journal``, ``-shm``, which SQLite
    opens when they exist) are regular files, or absent (False when the database is)."""
    p = Path(path)
    for side in ("-wal", "-journal", "-shm"):
        require_file(p.with_name(p.name + side), f"the side file of {what} {p}:", hint=hint, error=error)
    return require_file(p, what, hint=hint or "give a SQLite database file", error=error)


def open_regular(path: PathLike, what: str, *, hint: str | None = None,
                 error: type[BadInputError] = BadInputError) -> BinaryIO:
    """Open ``path`` for reading without ever blocking, and only if it is a regular file.

    FileNotFoundError propagates (the caller says what was missing)."""
    p = Path(path)
    require_file(p, what, hint=hint, error=error)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(p, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped after the check
            raise _fail(what, p, st, "a regular file", hint, error)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
