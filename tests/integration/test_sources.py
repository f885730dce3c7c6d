"""Backups as they are kept (issue 16): compressed, encrypted, in object storage, verified against a
real PostgreSQL server. Each codec and cipher: a clean case that passes and a cut one that fails
``backup_file``; wrong and missing keys; S3 round trips through a local moto server; the hostile
side (a decompression bomb, a name that lies, a world-readable key). After every error case the
run's temporary directory is empty."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import lzma
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from restorecheck import pipeline, sources
from restorecheck.engines.base import BackupOptions, RestoreOptions
from restorecheck.errors import BadInputError, EnvironmentFailure, ExitCode, RestorecheckError
from restorecheck.model import Manifest, Report
from restorecheck.provisioners.base import PgServer
from tests.integration import pg5_helpers as h

pytestmark = pytest.mark.postgres


@dataclasses.dataclass
class Src:
    dir: Path
    plain: Path
    custom: Path  # -Z0 (archive version 1.16: the header names the member compression)
    manifest: Path  # content only (no sha256 of a particular file)


@pytest.fixture(scope="module")
def src(pg18: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Src]:
    out = tmp_path_factory.mktemp("sources")
    with pg18.fresh_database() as ref:
        h.build_source(ref)
        plain = pipeline.backup(ref, out, BackupOptions(format="plain", name="shop"))
        custom = pipeline.backup(ref, out, BackupOptions(format="custom", compress="0", name="shopc"))
        content = out / "content.manifest.json"
        dataclasses.replace(plain.manifest, backup=None).save(content)
        yield Src(out, Path(plain.artifact.path), Path(custom.artifact.path), content)


@pytest.fixture
def tmproot() -> Iterator[Path]:
    """The run's temporary directory (reachable by the sandbox user, as /tmp is): must be empty again
    after every run, pass or error."""
    root = Path(tempfile.mkdtemp(prefix="rc-sources-test-", dir="/tmp"))
    os.chmod(root, 0o755)
    try:
        yield root
        assert sorted(p.name for p in root.iterdir()) == [], "restorecheck left files in its temporary directory"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(path: str | Path, tmproot: Path, manifest: Path | str | None = None, **kw: object) -> Report:
    try:
        report = pipeline.verify(str(path), manifest=manifest, restore=RestoreOptions(tmp_root=str(tmproot)),
                                 **kw)  # type: ignore[arg-type]
    finally:  # nothing left, error or not
        assert not list(tmproot.iterdir()), list(tmproot.iterdir())
    h.validate_report(report)
    return report


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data)


def _lz4(data: bytes) -> bytes:
    import lz4.frame

    return lz4.frame.compress(data, content_checksum=True)


CODECS = {"gz": gzip.compress, "zst": _zstd, "lz4": _lz4, "bz2": bz2.compress, "xz": lzma.compress}


@pytest.mark.parametrize("ext", list(CODECS))
def test_each_codec_clean_passes_and_cut_fails(src: Src, tmp_path: Path, tmproot: Path, ext: str) -> None:
    data = CODECS[ext](src.plain.read_bytes())
    clean = tmp_path / f"shop.sql.{ext}"
    clean.write_bytes(data)
    report = run(clean, tmproot, src.manifest)
    assert report.verdict == "pass", report.findings
    codec = sources.claimed(clean.name)
    assert report.backup is not None and report.backup.format == f"plain-{codec}"
    assert report.backup.sha256 == sources.hashlib.sha256(data).hexdigest()
    cut = tmp_path / f"cut.sql.{ext}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    report = run(cut, tmproot, src.manifest)
    assert report.verdict == "fail"
    assert any(f.check == "backup_file" and codec in f.message and "cut short" in f.message
               for f in report.findings), report.findings


def test_zstd_of_a_custom_archive_and_a_gzip_member_archive(src: Src, pg18: PgServer, tmp_path: Path,
                                                            tmproot: Path) -> None:
    z = tmp_path / "shop.dump.zst"
    z.write_bytes(_zstd(src.custom.read_bytes()))
    report = run(z, tmproot, src.manifest)
    assert report.verdict == "pass", report.findings
    assert report.backup is not None and (report.backup.format, report.backup.compression) == ("custom", "zstd")


def test_member_compression_zstd_without_a_capable_pg_restore_is_exit_3(src: Src, tmp_path: Path,
                                                                       tmproot: Path) -> None:
    """pg_dump -Fc -Z zstd (PostgreSQL 16+): the pg_restore here (embedded 18, PostgreSQL 15) cannot
    read zstd data blocks: exit 3 naming the remedy, never a failed backup. (No PostgreSQL built with
    zstd is installed here to write a real one: the header of a real -Z0 archive says zstd.)"""
    from restorecheck.engines import pg_dump as pgd
    from restorecheck.pg_hosting import archive_codecs
    from restorecheck.process import discover

    if any("zstd" in archive_codecs(i) for i in discover(None)):
        pytest.skip("a pg_restore here reads zstd archives: the exit-3 path cannot be shown")
    data = bytearray(src.custom.read_bytes())
    assert pgd.member_codec(src.custom, "custom") == "none"
    data[11] = 3
    forged = tmp_path / "zstd.dump"
    forged.write_bytes(bytes(data))
    assert pgd.member_codec(forged, "custom") == "zstd"
    with pytest.raises(EnvironmentFailure) as exc:
        run(forged, tmproot, src.manifest)
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    assert "zstd" in exc.value.message and "16" in (exc.value.hint or "")


def test_decompression_bomb_is_exit_2_and_leaves_nothing(tmp_path: Path, tmproot: Path) -> None:
    bomb = tmp_path / "bomb.sql.gz"
    bomb.write_bytes(gzip.compress(b"-- PostgreSQL database dump\n" + b"\0" * (64 << 20), 9))
    with pytest.raises(BadInputError) as exc:
        run(bomb, tmproot, max_expanded_size=8 << 20)
    assert exc.value.exit_code == ExitCode.BAD_INPUT
    assert "--max-expanded-size" in (exc.value.hint or "")


def test_a_name_that_lies_is_read_by_content(src: Src, tmp_path: Path, tmproot: Path) -> None:
    liar = tmp_path / "shop.sql.zst"
    liar.write_bytes(gzip.compress(src.plain.read_bytes()))
    report = run(liar, tmproot, src.manifest)
    assert report.verdict == "pass", report.findings
    assert report.backup is not None and report.backup.format == "plain-gzip"
    assert any(f.severity == "warning" and "says zstd" in f.message for f in report.findings)


# --- age ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def age_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    import pyrage

    d = tmp_path_factory.mktemp("agekeys")
    mine, other = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    ident, wrong = d / "id.txt", d / "wrong.txt"
    ident.write_text(f"# test key\n{mine}\n")
    wrong.write_text(f"{other}\n")
    os.chmod(ident, 0o600)
    os.chmod(wrong, 0o600)
    return ident, str(mine.to_public()), wrong


def test_age_clean_cut_modified_wrong_and_missing(src: Src, tmp_path: Path, tmproot: Path,
                                                  age_keys: tuple[Path, str, Path]) -> None:
    import pyrage

    ident, recipient, wrong = age_keys
    enc = pyrage.encrypt(_zstd(src.plain.read_bytes()), [pyrage.x25519.Recipient.from_str(recipient)])
    clean = tmp_path / "shop.sql.zst.age"
    clean.write_bytes(enc)
    report = run(clean, tmproot, src.manifest, identities=[ident])
    assert report.verdict == "pass", report.findings
    assert report.backup is not None and report.backup.encryption == "age"
    assert report.backup.compression == "zstd" and report.backup.format == "plain-zstd"

    for name, data in (("cut", enc[: len(enc) // 2]), ("modified", enc[:-200] + bytes([enc[-200] ^ 1]) + enc[-199:])):
        bad = tmp_path / f"{name}.sql.zst.age"
        bad.write_bytes(data)
        report = run(bad, tmproot, src.manifest, identities=[ident])
        assert report.verdict == "fail"
        assert any(f.check == "backup_file" and "age" in f.message for f in report.findings), report.findings
        assert "restore" not in report.extra, "a restore ran on unauthenticated plaintext"

    with pytest.raises(RestorecheckError) as exc:
        run(clean, tmproot, src.manifest, identities=[wrong])
    assert exc.value.exit_code == ExitCode.ENVIRONMENT
    assert "cannot decrypt" in exc.value.message and "with the given identity" in exc.value.message

    with pytest.raises(BadInputError) as missing:
        run(clean, tmproot, src.manifest)
    assert missing.value.exit_code == ExitCode.BAD_INPUT and "--identity" in (missing.value.hint or "")


def test_identity_readable_by_others_is_refused(src: Src, tmp_path: Path, tmproot: Path,
                                                age_keys: tuple[Path, str, Path]) -> None:
    loose = tmp_path / "loose.txt"
    shutil.copyfile(age_keys[0], loose)
    os.chmod(loose, 0o644)
    with pytest.raises(BadInputError) as exc:
        run(src.plain, tmproot, src.manifest, identities=[loose])
    assert "accessible by others" in exc.value.message and "chmod 600" in (exc.value.hint or "")


def test_backup_with_an_age_recipient_records_the_encryption(pg18: PgServer, tmp_path: Path, tmproot: Path,
                                                             age_keys: tuple[Path, str, Path]) -> None:
    ident, recipient, _ = age_keys
    out = tmp_path / "out"
    with pg18.fresh_database() as ref:
        h.build_source(ref)
        result = pipeline.backup(ref, out, BackupOptions(format="custom", name="enc"), recipients=[recipient])
    stored = Path(result.artifact.path)
    assert stored.name == "enc.dump.age" and stored.read_bytes().startswith(sources.AGE_MAGIC)
    assert sorted(p.name for p in out.iterdir()) == ["enc.dump.age", "enc.manifest.json"]
    assert stat_mode(stored) == 0o600
    saved = Manifest.load(result.manifest_path)
    assert saved.backup is not None and saved.backup.encryption == "age"
    assert saved.backup.sha256 == sources.hashlib.sha256(stored.read_bytes()).hexdigest()
    report = run(stored, tmproot, identities=[ident])  # the manifest beside it
    assert report.verdict == "pass", report.findings
    assert report.reference == "manifest"


def stat_mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


# --- OpenPGP -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpg_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    if shutil.which("gpg") is None:
        pytest.skip("gpg (GnuPG) is not installed (.ci/run installs gnupg)")
    d = tmp_path_factory.mktemp("gpgkeys")
    out: list[Path] = []
    for who in ("mine", "other"):
        home = d / f"home-{who}"
        home.mkdir(mode=0o700)
        env = {**os.environ, "GNUPGHOME": str(home)}
        base = ["gpg", "--batch", "--homedir", str(home), "--pinentry-mode", "loopback", "--passphrase", ""]
        subprocess.run([*base, "--quick-gen-key", f"{who} <{who}@example.invalid>", "future-default",
                        "default", "never"], check=True, capture_output=True, env=env)
        pub, sec = d / f"{who}.pub.asc", d / f"{who}.sec.asc"
        pub.write_bytes(subprocess.run([*base, "--armor", "--export"], check=True, capture_output=True,
                                       env=env).stdout)
        sec.write_bytes(subprocess.run([*base, "--armor", "--export-secret-keys"], check=True,
                                       capture_output=True, env=env).stdout)
        os.chmod(sec, 0o600)
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
        out += [pub, sec]
    yield out[0], out[1], out[3]


def test_gpg_clean_cut_modified_wrong_and_missing(src: Src, tmp_path: Path, tmproot: Path,
                                                  gpg_keys: tuple[Path, Path, Path]) -> None:
    pub, sec, other_sec = gpg_keys
    work = tmp_path / "w"
    work.mkdir(mode=0o700)
    clean = tmp_path / "shop.sql.gpg"
    assert sources.encrypt(src.plain, clean, [sources.parse_recipient(str(pub))], work) == "gpg"
    report = run(clean, tmproot, src.manifest, identities=[sec])
    assert report.verdict == "pass", report.findings
    assert report.backup is not None and report.backup.encryption == "gpg"
    enc = clean.read_bytes()
    for name, data in (("cut", enc[: len(enc) // 2]), ("modified", enc[:-300] + bytes([enc[-300] ^ 1]) + enc[-299:])):
        bad = tmp_path / f"{name}.sql.gpg"
        bad.write_bytes(data)
        report = run(bad, tmproot, src.manifest, identities=[sec])
        assert report.verdict == "fail"
        assert any(f.check == "backup_file" and "OpenPGP" in f.message for f in report.findings), report.findings
        assert "restore" not in report.extra
    with pytest.raises(RestorecheckError) as exc:
        run(clean, tmproot, src.manifest, identities=[other_sec])
    assert exc.value.exit_code == ExitCode.ENVIRONMENT and "cannot decrypt" in exc.value.message
    with pytest.raises(BadInputError) as missing:
        run(clean, tmproot, src.manifest)
    assert "--identity" in (missing.value.hint or "")


# --- object storage (moto in server mode on 127.0.0.1) -------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    pytest.importorskip("moto")
    pytest.importorskip("boto3")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    import boto3

    for k, v in {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing-secret-never-printed", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    bucket = "rc-" + os.urandom(4).hex()
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


def test_s3_backup_and_verify_round_trip(pg18: PgServer, s3: str, tmproot: Path) -> None:
    import boto3

    with pg18.fresh_database() as ref:
        h.build_source(ref)
        result = pipeline.backup(ref, f"s3://{s3}/nightly", BackupOptions(format="custom", name="shop"))
    assert result.artifact.path == f"s3://{s3}/nightly/shop.dump"
    keys = sorted(o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3)["Contents"])
    assert keys == ["nightly/shop.dump", "nightly/shop.manifest.json"]
    report = run(f"s3://{s3}/nightly/shop.dump", tmproot)  # the manifest beside it, in the bucket
    assert report.verdict == "pass", report.findings
    assert report.reference == "manifest" and report.backup is not None
    assert report.backup.path == f"s3://{s3}/nightly/shop.dump"
    assert report.backup.sha256 == result.artifact.sha256
    # cut short in the bucket: the sha256 against the manifest, and the archive read, both fail it
    client = boto3.client("s3")
    body = client.get_object(Bucket=s3, Key="nightly/shop.dump")["Body"].read()
    client.put_object(Bucket=s3, Key="nightly/shop.dump", Body=body[: len(body) // 2])
    report = run(f"s3://{s3}/nightly/shop.dump", tmproot, f"s3://{s3}/nightly/shop.manifest.json")
    assert report.verdict == "fail" and "backup_file" in h.checks(report)


def test_s3_errors_are_one_line_with_the_right_exit_code(s3: str, tmproot: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadInputError) as missing:
        run(f"s3://{s3}/nothing/here.dump", tmproot)
    assert missing.value.exit_code == ExitCode.BAD_INPUT
    with pytest.raises(BadInputError):
        run("s3://no-such-bucket-rc-test/x.dump", tmproot)
    with pytest.raises(BadInputError):
        run("s3://Bad_Bucket/x.dump", tmproot)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(EnvironmentFailure) as nocreds:
        run(f"s3://{s3}/x.dump", tmproot)
    assert "credentials" in nocreds.value.message
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-never-printed")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(EnvironmentFailure) as down:
        run(f"s3://{s3}/x.dump", tmproot)
    assert "cannot be reached" in down.value.message
    assert "never-printed" not in str(down.value)


def test_s3_glob_newest_first(s3: str) -> None:
    import boto3

    client = boto3.client("s3")
    for k in ("n/a-1.dump", "n/a-2.dump", "n/a-3.sql", "m/a-4.dump"):
        client.put_object(Bucket=s3, Key=k, Body=b"x")
        time.sleep(1.1)  # LastModified has a resolution of one second
    assert sources.s3_glob(f"s3://{s3}/n/*.dump") == [f"s3://{s3}/n/a-2.dump", f"s3://{s3}/n/a-1.dump"]
    assert sources.s3_glob(f"s3://{s3}/n/none-*") == []
