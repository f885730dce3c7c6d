"""sources.py without a server: layer signatures, the zstd frame walk, sizes, identities, URLs."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import tempfile
from pathlib import Path

import pytest

from restorecheck import sources
from restorecheck.errors import BadInputError


def test_sniff_by_content_and_the_name_only_as_a_claim() -> None:
    import lz4.frame
    import zstandard

    data = b"-- PostgreSQL database dump\n" * 10
    assert sources.sniff(gzip.compress(data)) == "gzip"
    assert sources.sniff(zstandard.ZstdCompressor().compress(data)) == "zstd"
    assert sources.sniff(lz4.frame.compress(data)) == "lz4"
    assert sources.sniff(bz2.compress(data)) == "bzip2"
    assert sources.sniff(lzma.compress(data)) == "xz"
    assert sources.sniff(b"age-encryption.org/v1\n-> X25519 abc") == "age"
    assert sources.sniff(b"-----BEGIN PGP MESSAGE-----\n") == "gpg"
    assert sources.sniff(b"\x84\x5e\x03") == "gpg"  # old-format PKESK packet
    assert sources.sniff(data) is None and sources.sniff(b"PGDMP\x01\x10") is None
    assert sources.sniff(b"BZh9 not bzip2") is None
    assert sources.claimed("x.sql.zst") == "zstd" and sources.claimed("x.dump") is None


def _walk(b: bytes) -> str | None:
    with tempfile.TemporaryFile() as f:
        f.write(b)
        f.flush()
        return sources.zstd_frames_complete(f)  # type: ignore[arg-type]


def test_zstd_frame_walk_finds_every_cut() -> None:
    import zstandard

    data = os.urandom(300_000).hex().encode()
    for checksum in (False, True):
        z = zstandard.ZstdCompressor(write_checksum=checksum).compress(data)
        two = z + zstandard.ZstdCompressor().compress(b"tail")
        skippable = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"
        assert _walk(z) is None and _walk(two) is None and _walk(skippable + z) is None
        for n in (1, 2, 4, 5, len(z) // 2, len(z) - 1):
            assert _walk(z[:n]) is not None, n
        assert _walk(two[:-1]) is not None
    assert _walk(b"") == "the zstd stream holds no frame"


def test_parse_size() -> None:
    assert sources.parse_size("500G") == 500 << 30
    assert sources.parse_size("1.5M") == 3 << 19
    assert sources.parse_size("123") == 123
    assert sources.parse_size("unlimited") is None
    with pytest.raises(BadInputError):
        sources.parse_size("lots")


def test_default_limit_is_a_ratio_with_a_floor(tmp_path: Path) -> None:
    bomb = tmp_path / "b.sql.gz"
    bomb.write_bytes(gzip.compress(b"\0" * (1 << 20)))
    opened = sources.open_backup(str(bomb), tmp_path)  # 1 MiB expanded: far below the 4 GiB floor
    assert opened.layers == ["gzip"] and opened.path.stat().st_size == 1 << 20
    assert (tmp_path / opened.path.name).stat().st_mode & 0o777 == 0o600
    (tmp_path / "x").mkdir()
    with pytest.raises(sources.ExpandedTooLarge):
        sources.open_backup(str(bomb), tmp_path / "x", max_expanded=1000)
    assert not list((tmp_path / "x").iterdir()), "a refused expansion leaves its partial file behind"


def test_identities(tmp_path: Path) -> None:
    import pyrage

    age = tmp_path / "age.txt"
    age.write_text(f"# created: today\n{pyrage.x25519.Identity.generate()}\n")
    os.chmod(age, 0o600)
    assert sources.load_identity(age).kind == "age"
    pgp = tmp_path / "k.asc"
    pgp.write_text("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxyz\n")
    os.chmod(pgp, 0o600)
    assert sources.load_identity(pgp).kind == "gpg"
    os.chmod(age, 0o640)
    with pytest.raises(BadInputError, match="accessible by others"):
        sources.load_identity(age)
    junk = tmp_path / "junk"
    junk.write_text("hello\n")
    os.chmod(junk, 0o600)
    with pytest.raises(BadInputError, match="no age identity"):
        sources.load_identity(junk)
    with pytest.raises(BadInputError, match="does not exist"):
        sources.load_identity(tmp_path / "missing")
    with pytest.raises(BadInputError, match="FIFO"):
        os.mkfifo(tmp_path / "fifo")
        sources.load_identity(tmp_path / "fifo")


def test_s3_urls_and_recipients(tmp_path: Path) -> None:
    assert sources.split_s3("s3://my-bucket/a/b.dump") == ("my-bucket", "a/b.dump")
    for bad in ("s3://", "s3://b/", "s3://UPPER/x", "s3://x/y"):
        with pytest.raises(BadInputError):
            sources.split_s3(bad)
    assert sources.parse_recipient("age1qqqq").kind == "age"
    with pytest.raises(BadInputError):
        sources.parse_recipient(str(tmp_path / "nope"))


def test_cli_missing_and_wrong_identity_are_one_line_exit_2_and_3(tmp_path: Path) -> None:
    import subprocess
    import sys

    import pyrage

    mine, other = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    enc = tmp_path / "x.sql.age"
    enc.write_bytes(pyrage.encrypt(b"-- PostgreSQL database dump\n", [mine.to_public()]))
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(str(other) + "\n")
    os.chmod(wrong, 0o600)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    for extra, code, words in (([], 2, "--identity"), (["--identity", str(wrong)], 3, "cannot decrypt")):
        proc = subprocess.run([sys.executable, "-m", "restorecheck", "verify", str(enc), "--no-progress", *extra],
                              capture_output=True, text=True, env=env, timeout=120, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == code, proc.stderr
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr, proc.stderr
        assert str(other) not in proc.stderr + proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wrong.txt", "x.sql.age"]
