"""A restore target that runs out of space is the environment's failure (exit 3, where and what to
do), never a failed backup; and a dump cannot pass its own failure off as one by printing the words."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from restorecheck.cli import run_cli
from restorecheck.engines import postgres
from restorecheck.errors import EnvironmentFailure

pytestmark = pytest.mark.postgres


@pytest.fixture
def small_tmpfs() -> Iterator[Path]:
    """A 120 MiB tmpfs: room for a throwaway cluster (the template is 39 MB), not for 200 MB of data."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    where = Path(tempfile.mkdtemp(prefix="rc-small-tmpfs-", dir="/tmp"))
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=120m,mode=1777", "tmpfs", str(where)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        shutil.rmtree(where, ignore_errors=True)
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


def test_a_restore_that_fills_the_disk_is_exit_3_naming_it(small_tmpfs: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    dump = tmp_path / "big.sql"
    dump.write_text("CREATE TABLE t (x text);\n"
                    "INSERT INTO t SELECT (SELECT string_agg(md5(g::text || i), '') FROM generate_series(1, 40) i) FROM generate_series(1, 150000) g;\n")
    monkeypatch.setenv("TMPDIR", str(small_tmpfs))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    rc = run_cli(["verify", str(dump), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 3, err
    assert "ran out of space" in err and str(small_tmpfs) in err and "TMPDIR" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(small_tmpfs.iterdir()) == [], "the throwaway cluster is removed"


class _Server:
    kind = "local"

    def __init__(self, datadir: Path, logfile: Path, on: str = "disk") -> None:
        self.info: dict[str, Any] = {"datadir": str(datadir), "logfile": str(logfile), "base": str(datadir.parent),
                                     "datadir_on": on}


def test_the_words_alone_do_not_make_it_the_environments_failure(tmp_path: Path) -> None:
    """A dump that raises "No space left on device" itself, on a disk with room, is judged as any
    other restore error (a failed backup), not excused as an environment failure."""
    log = tmp_path / "server.log"
    log.write_text("ERROR:  could not extend file: No space left on device\n")
    server = _Server(tmp_path, log)
    postgres._raise_if_out_of_space(["ERROR: No space left on device"], server)  # room here: no raise
    postgres._raise_if_out_of_space([], server)  # no error at all: nothing to explain


def test_a_full_cluster_in_memory_says_how_to_restore_on_disk(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    server = _Server(tmp_path, tmp_path / "none.log", on="memory (tmpfs)")

    class Full:
        f_bavail, f_frsize, f_blocks = 10, 4096, 1 << 20

    monkeypatch.setattr(postgres.os, "statvfs", lambda _p: Full())
    with pytest.raises(EnvironmentFailure, match="ran out of space") as exc:
        postgres._raise_if_out_of_space(["could not extend file \"base/1/2\": No space left on device"], server)
    assert "RESTORECHECK_TMPFS=0" in (exc.value.hint or "")
