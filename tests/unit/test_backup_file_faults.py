"""Backup-file checks that need no server: a cut tar archive (pg_restore hangs on it), concatenated plain dumps."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from restorecheck.checks.registry import convert
from restorecheck.engines.pg_dump import scan_plain, tar_damage


def _tar(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, size in (("toc.dat", 700), ("3001.dat", 3000), ("restore.sql", 900)):
            info = tarfile.TarInfo(name)
            info.size = size
            tf.addfile(info, io.BytesIO(bytes([65 + len(name)]) * size))
    data = buf.getvalue()
    path.write_bytes(data)
    return data


def test_whole_archive(tmp_path: Path) -> None:
    _tar(tmp_path / "a.tar")
    assert tar_damage(tmp_path / "a.tar") is None


@pytest.mark.parametrize("cut", [10, 600, 1500, 3000, 5000])
def test_cut_inside_a_member_or_header(tmp_path: Path, cut: int) -> None:
    data = _tar(tmp_path / "a.tar")
    bad = tmp_path / "cut.tar"
    bad.write_bytes(data[:cut])
    assert tar_damage(bad) is not None


def test_cut_at_a_member_boundary_or_without_end_block(tmp_path: Path) -> None:
    data = _tar(tmp_path / "a.tar")
    with tarfile.open(tmp_path / "a.tar") as tf:
        last = tf.getmembers()[-1]
    for cut in (last.offset, last.offset_data + 1024):  # before the last member; end block missing
        bad = tmp_path / "cut.tar"
        bad.write_bytes(data[:cut])
        message = tar_damage(bad)
        assert message is not None and "truncated" in message


def test_not_a_tar(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x01" * 2000)
    assert tar_damage(junk) is not None


PLAIN = """--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
CREATE TABLE public.t (n integer);
COPY public.t (n) FROM stdin;
1
\\.

--
-- PostgreSQL database dump complete
--

"""


def test_concatenated_plain_dumps(tmp_path: Path) -> None:
    one = tmp_path / "one.sql"
    one.write_text(PLAIN)
    assert convert([scan_plain(one).evidence("one.sql")]) == []
    twice = tmp_path / "twice.sql"
    twice.write_text(PLAIN * 2)
    [finding] = convert([scan_plain(twice).evidence("twice.sql")])
    assert finding.check == "backup_file" and "concatenated" in finding.message


def test_pg_dumpall_holds_several_dumps(tmp_path: Path) -> None:
    cluster = tmp_path / "all.sql"
    cluster.write_text("--\n-- PostgreSQL database cluster dump\n--\n\n" + PLAIN * 2
                       + "--\n-- PostgreSQL database cluster dump complete\n--\n")
    assert convert([scan_plain(cluster).evidence("all.sql")]) == []


def test_damaged_member_header(tmp_path: Path) -> None:
    data = bytearray(_tar(tmp_path / "a.tar"))
    with tarfile.open(tmp_path / "a.tar") as tf:
        second = tf.getmembers()[1]
    data[second.offset + 10] ^= 0xFF  # its header checksum no longer matches
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(data))
    message = tar_damage(bad)
    assert message is not None and "damaged" in message
