"""Backups as they are kept: what the user named -> a local plaintext file in the run's directory.

A backup may sit in object storage (``s3://bucket/key``), be encrypted (age, OpenPGP) and be
compressed (gzip, zstd, lz4, bzip2, xz), in any nesting (``x.sql.zst.age``). ``open_backup`` peels
those layers before an engine sees the backup, recognising each one by its content (the name is
only compared with it, never trusted):

- object storage: streamed into the run's private directory, its sha256 computed on the way;
- encryption: decrypted completely and authenticated before anything reads the plaintext (age's
  STREAM authenticates every chunk and the end; OpenPGP's MDC is required, gpg's status lines
  say so). A truncated or modified ciphertext is a failed backup (``backup_file``) with nothing
  restored; a key that opens nothing is an environment failure (exit 3); no key, exit 2;
- compression: decompressed streaming, never the whole file in memory, with a bound on the
  expanded size (``--max-expanded-size``) against decompression bombs. A cut or damaged stream is
  a ``backup_file`` error; what was decompressed before the damage is still restored, as gzip
  always was, so the report shows how far it got.

Plaintext files are 0600 in a 0700 (0711 when tools run as another user: it lists nothing)
directory of the run, removed by the caller's ``ExitStack`` on every way out. age is decrypted
in-process (pyrage: the Rust ``age`` crate); gpg runs in the same sandbox as the restore tools
(``Sandbox.wrap``), as the unprivileged user, with a private GNUPGHOME made for the run (the
user's keyring is never read or changed), reading the ciphertext on its standard input.
"""

from __future__ import annotations

import bz2
import contextlib
import dataclasses
import fnmatch
import functools
import gzip
import hashlib
import io
import logging
import lzma
import os
import re
import secrets
import shutil
import stat
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO

from restorecheck.errors import BackupNotFoundError, BadInputError, EnvironmentFailure, ToolNotFoundError
from restorecheck.evidence import Evidence
from restorecheck.runner import run

log = logging.getLogger("restorecheck")

CHUNK = 1 << 20
GiB = 1 << 30
# The expanded size allowed by default: 200 times what is stored, and at least 4 GiB. Plain SQL
# compresses 5-20x (zstd -19 on repetitive data rarely beyond 100x); a gzip bomb is ~1000x, a zstd
# one far more. Beyond it: exit 2 naming --max-expanded-size. A full disk is caught too (exit 3).
DEFAULT_RATIO = 200
DEFAULT_FLOOR = 4 * GiB
MAX_LAYERS = 4

CODECS = ("gzip", "zstd", "lz4", "bzip2", "xz")
CIPHERS = ("age", "gpg")
# what a file name's suffix claims (compared with the content, which wins)
SUFFIX_CLAIMS = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd", ".lz4": "lz4",
                 ".bz2": "bzip2", ".xz": "xz", ".age": "age", ".gpg": "gpg", ".pgp": "gpg", ".asc": "gpg"}

AGE_MAGIC = b"age-encryption.org/v1\n"
AGE_ARMOR = b"-----BEGIN AGE ENCRYPTED FILE-----"
PGP_ARMOR = b"-----BEGIN PGP MESSAGE-----"


class ExpandedTooLarge(BadInputError):
    """Decompressing went past --max-expanded-size (a decompression bomb, or a backup bigger than allowed)."""


class CannotDecrypt(EnvironmentFailure):
    """The identity given opens none of the backup's recipient slots (exit 3: not the backup's fault)."""


class ObjectStoreError(EnvironmentFailure):
    """Object storage unreachable, or credentials missing or refused (exit 3)."""


class _Damaged(Exception):
    """A layer is cut short or corrupt: the message becomes a backup_file finding."""


# --- recognising a layer by content -----------------------------------------------------------


def sniff(head: bytes) -> str | None:
    """The codec or cipher whose signature starts ``head``, or None (the engines' formats)."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if head.startswith(b"BZh") and head[3:4].isdigit() and head[3:4] != b"0" and head[4:10] == b"1AY&SY":
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(AGE_MAGIC) or head.lstrip().startswith(AGE_ARMOR):
        return "age"
    if head.lstrip().startswith(PGP_ARMOR) or _pgp_packet(head) in (1, 3):
        return "gpg"
    return None


def _pgp_packet(head: bytes) -> int | None:
    """The OpenPGP packet tag of the first byte (1: public-key encrypted session key, 3: symmetric)."""
    if not head:
        return None
    b = head[0]
    if not b & 0x80:
        return None
    return b & 0x3F if b & 0x40 else (b >> 2) & 0x0F


def claimed(name: str) -> str | None:
    """What the file name's last suffix says it holds (``x.sql.zst`` -> zstd), or None."""
    return SUFFIX_CLAIMS.get(Path(name).suffix.lower())


# --- identities (keys) ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Identity:
    """One ``--identity`` file: an age identity file (X25519 or an OpenSSH key) or an OpenPGP secret key."""

    path: Path
    kind: str  # "age" | "gpg"


def load_identity(path: str | os.PathLike[str]) -> Identity:
    """Check one ``--identity`` file (exit 2 when it is not one) and say which kind it is.

    Like ssh with its private keys, an identity that others may read or write (group or other
    permission bits) is refused: a backup key left world-readable is a leak to fix first.
    """
    from restorecheck.paths import open_regular

    p = Path(path)
    try:
        with open_regular(p, "--identity", hint="give the file that holds the key") as fh:
            st = os.fstat(fh.fileno())
            head = fh.read(64 * 1024)
    except FileNotFoundError:
        raise BadInputError(f"--identity {p} does not exist", "give the file that holds the key") from None
    except PermissionError:
        raise BadInputError(f"--identity {p} cannot be read (permission denied)",
                            "run as a user that can read it") from None
    if st.st_mode & 0o077:
        raise BadInputError(
            f"--identity {p} is accessible by others (mode {stat.S_IMODE(st.st_mode):04o}): a private key "
            "must be readable by its owner only", f"chmod 600 {p}")
    text = head.lstrip()
    if (b"AGE-SECRET-KEY-1" in head or text.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
            or text.startswith(b"-----BEGIN RSA PRIVATE KEY-----")):
        return Identity(p, "age")
    if text.startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK-----") or _pgp_packet(head) in (5, 7):
        return Identity(p, "gpg")
    if b"AGE-PLUGIN-" in head:
        raise BadInputError(f"--identity {p} is an age plugin identity, which restorecheck cannot use",
                            "give an age X25519 identity file or an OpenSSH key")
    raise BadInputError(f"--identity {p} holds no age identity, OpenSSH key or OpenPGP secret key",
                        "give the key the backup was encrypted to")


def _age_identities(ids: Sequence[Identity]) -> list[Any]:
    import pyrage

    out: list[Any] = []
    for ident in ids:
        if ident.kind != "age":
            continue
        data = ident.path.read_bytes()
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                out.append(pyrage.ssh.Identity.from_buffer(data))
                continue
            for line in data.decode("ascii", "strict").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    out.append(pyrage.x25519.Identity.from_str(line))
        except (pyrage.IdentityError, UnicodeDecodeError, ValueError):
            raise BadInputError(f"--identity {ident.path} is not a valid age identity file",
                                "give the file age-keygen wrote (AGE-SECRET-KEY-1...)") from None
    return out


# --- the size guard -------------------------------------------------------------------------------


class _Sink:
    """Where a layer's output goes: a new 0600 file, counted against the expanded-size limit."""

    def __init__(self, path: Path, limit: int | None, what: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                     0o600)
        self.fh: IO[bytes] = os.fdopen(fd, "wb", buffering=CHUNK)
        self.path, self.limit, self.what, self.bytes = path, limit, what, 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        self.bytes += n
        if self.limit is not None and self.bytes > self.limit:
            raise ExpandedTooLarge(
                f"{self.what} expands past {human(self.limit)} (a decompression bomb, or a backup bigger "
                "than restorecheck was allowed to expand); nothing was restored",
                "raise the limit with --max-expanded-size SIZE (e.g. 500G) if the backup is genuine")
        try:
            self.fh.write(data)
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC
                raise EnvironmentFailure(
                    f"no space left in {self.path.parent} while expanding {self.what} "
                    f"({human(self.bytes)} written)",
                    "free space there, or set TMPDIR to a larger file system") from None
            raise
        return n

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def human(n: int) -> str:
    for unit, size in (("T", 1 << 40), ("G", GiB), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n} bytes"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int | None:
    """``--max-expanded-size``: bytes, or with K/M/G/T (powers of 1024); ``unlimited`` -> None."""
    if text.strip().lower() in ("unlimited", "none", "0"):
        return None
    m = _SIZE.match(text)
    if not m:
        raise BadInputError(f"--max-expanded-size {text!r} is not a size",
                            "give bytes or a number with K, M, G or T (e.g. 200G), or 'unlimited'")
    mult = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": GiB, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * mult)


# --- decompressors (each: a readable raw file -> writes to the sink; _Damaged on a bad stream) ---


def _copy(reader: Any, sink: _Sink) -> None:
    while block := reader.read(CHUNK):
        sink.write(block)


def _file_codec(codec: str, open_reader: Callable[[BinaryIO], Any],
                damaged: tuple[type[Exception], ...]) -> Callable[[BinaryIO, _Sink], None]:
    """The decompressor of a codec whose library reads like a file (gzip, bzip2, xz, lz4): the
    stream cut short is EOFError; ``damaged`` are the library's errors for a bad stream."""
    def decompress(raw: BinaryIO, sink: _Sink) -> None:
        try:
            with open_reader(raw) as z:
                _copy(z, sink)
        except EOFError:
            raise _Damaged(f"the {codec} stream is cut short (unexpected end of file)") from None
        except damaged as exc:
            raise _Damaged(f"the {codec} stream is damaged: {exc}") from None
    return decompress


def _lz4_reader(raw: BinaryIO) -> Any:
    import lz4.frame

    return lz4.frame.LZ4FrameFile(raw, "rb")


_gunzip = _file_codec("gzip", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"), (gzip.BadGzipFile, zlib.error))
_bunzip = _file_codec("bzip2", functools.partial(bz2.BZ2File, mode="rb"), (OSError,))
_unxz = _file_codec("xz", functools.partial(lzma.LZMAFile, mode="rb"), (lzma.LZMAError,))
# lz4 says "LZ4F_decompress failed with code: ERROR_..." as a RuntimeError
_unlz4 = _file_codec("lz4", _lz4_reader, (RuntimeError,))


def zstd_frames_complete(raw: BinaryIO) -> str | None:
    """Why a zstd file's frames are cut short, or None when every frame is whole.

    The ``zstandard`` stream reader returns what it has at end of file without saying that a frame
    was unfinished, so the frame structure (RFC 8878: frame header, block headers, the optional
    checksum; skippable frames) is walked here, reading headers only."""
    size = os.fstat(raw.fileno()).st_size
    pos, frames = 0, 0

    def read(n: int) -> bytes:
        b = raw.read(n)
        if len(b) != n:
            raise _Damaged("the zstd stream is cut short (a frame is unfinished)")
        return b

    raw.seek(0)
    try:
        while pos < size:
            magic = int.from_bytes(read(4), "little")
            if 0x184D2A50 <= magic <= 0x184D2A5F:  # skippable frame
                n = int.from_bytes(read(4), "little")
                pos = raw.seek(n, io.SEEK_CUR)
                if pos > size:
                    return "the zstd stream is cut short (a skippable frame is unfinished)"
                continue
            if magic != 0xFD2FB528:
                return f"the zstd stream is damaged: no frame starts at byte {pos}"
            fhd = read(1)[0]
            fcs_flag, single, checksum, dict_flag = fhd >> 6, (fhd >> 5) & 1, (fhd >> 2) & 1, fhd & 3
            skip = (0 if single else 1) + (0, 1, 2, 4)[dict_flag] + ((1 if single else 0), 2, 4, 8)[fcs_flag]
            read(skip)
            while True:
                hdr = int.from_bytes(read(3), "little")
                last, btype, bsize = hdr & 1, (hdr >> 1) & 3, hdr >> 3
                if btype == 3:
                    return "the zstd stream is damaged: a reserved block type"
                n = 1 if btype == 1 else bsize
                if raw.seek(n, io.SEEK_CUR) > size:
                    return "the zstd stream is cut short (a block is unfinished)"
                if last:
                    break
            if checksum:
                read(4)
            pos = raw.tell()
            frames += 1
    except _Damaged as exc:
        return str(exc)
    return None if frames else "the zstd stream holds no frame"


def _unzstd(raw: BinaryIO, sink: _Sink) -> None:
    import zstandard

    cut = zstd_frames_complete(raw)
    raw.seek(0)
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False)
        _copy(reader, sink)
    except zstandard.ZstdError as exc:
        raise _Damaged(f"the zstd stream is damaged: {exc}") from None
    if cut:
        raise _Damaged(cut)


DECOMPRESS: dict[str, Callable[[BinaryIO, _Sink], None]] = {
    "gzip": _gunzip, "zstd": _unzstd, "lz4": _unlz4, "bzip2": _bunzip, "xz": _unxz,
}


# --- decryption -----------------------------------------------------------------------------------


def _decrypt_age(raw: BinaryIO, sink: _Sink, identities: Sequence[Identity], name: str) -> None:
    import pyrage

    ids = _age_identities(identities)
    if not ids:
        raise BadInputError(f"{name} is encrypted with age and no age identity was given",
                            "give the age identity (or OpenSSH key) it was encrypted to with --identity FILE")
    try:
        pyrage.decrypt_io(raw, sink, ids)
    except pyrage.DecryptError as exc:
        text = str(exc)
        if "No matching keys" in text:
            raise CannotDecrypt(f"cannot decrypt {name} with the given identity (age: none of its "
                                "recipients is the key given)",
                                "give the identity the backup was encrypted to with --identity") from None
        if "passphrase" in text.lower() or "scrypt" in text.lower():
            raise BadInputError(f"{name} is encrypted with an age passphrase, which restorecheck cannot use",
                                "encrypt backups to a recipient (age -r) and give its identity") from None
        raise _Damaged(f"the age file is damaged: {text}") from None
    except OSError as exc:
        if isinstance(exc.__context__, ExpandedTooLarge) or isinstance(exc, ExpandedTooLarge):
            raise
        raise _Damaged(f"the age ciphertext is cut short or modified ({exc}): authentication failed, "
                       "nothing was restored from it") from None


def _gpg_status(text: str) -> set[str]:
    return {line.split()[1] for line in text.splitlines() if line.startswith("[GNUPG:] ") and len(line.split()) > 1}


def _stop_gpg_agent(home: Path) -> None:
    with contextlib.suppress(OSError, ToolNotFoundError):
        run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], timeout=10, inherit_env=True)


def _gpg_home(work: Path, needed_to: str) -> Path:
    """A new private GNUPGHOME in ``work`` for one gpg run; EnvironmentFailure when gpg is missing."""
    if shutil.which("gpg") is None:
        raise EnvironmentFailure(f"gpg (GnuPG) is needed to {needed_to} and is not installed",
                                 "install it (Debian/Ubuntu: apt-get install gnupg)")
    home = work / f"gnupg-{secrets.token_hex(4)}"
    home.mkdir(mode=0o700)
    return home


def _decrypt_gpg(src: Path, sink: _Sink, identities: Sequence[Identity], name: str,
                 work: Path, sandbox: Any) -> None:
    keys = [i for i in identities if i.kind == "gpg"]
    with open(src, "rb") as f:
        first = f.read(1)
    if _pgp_packet(first) == 3:
        raise BadInputError(f"{name} is OpenPGP encrypted with a passphrase (symmetric), which restorecheck "
                            "cannot use", "encrypt backups to a public key (gpg -r) and give its secret key")
    if not keys:
        raise BadInputError(f"{name} is OpenPGP (gpg) encrypted and no OpenPGP secret key was given",
                            "give the secret key it was encrypted to (gpg --export-secret-keys) with --identity FILE")
    home = _gpg_home(work, "decrypt an OpenPGP backup")
    try:
        for k, ident in enumerate(keys):
            shutil.copyfile(ident.path, home / f"key{k}")
            os.chmod(home / f"key{k}", 0o600)
        if sandbox.user is not None:
            for p in [home, *home.iterdir()]:
                os.chown(p, sandbox.uid, sandbox.gid)
        base = ["gpg", "--batch", "--no-tty", "--quiet", "--homedir", str(home), "--no-auto-key-locate",
                "--no-auto-key-retrieve", "--pinentry-mode", "loopback", "--passphrase", ""]
        # an empty passphrase in argv is no secret: keys with a passphrase are not supported (the key
        # file itself is the secret, and it is read from a 0600 copy in the private home)
        env = sandbox.env({"GNUPGHOME": str(home)}, home=home)
        imp = run(sandbox.wrap([*base, "--import", *[str(home / f"key{k}") for k in range(len(keys))]],
                               rw=[home]),
                  env=env, timeout=120, popen_kwargs=sandbox.popen_kwargs(), label="gpg --import")
        if not imp.ok:
            raise BadInputError(f"the OpenPGP --identity could not be imported: "
                                f"{imp.stderr.strip().splitlines()[-1:]}",
                                "give a secret key exported with gpg --export-secret-keys (without a passphrase)")
        status = home / "status"
        argv = [*base, "--status-file", str(status), "--decrypt"]
        # the file on gpg's standard input (its own descriptor, at offset 0); the plaintext into the
        # sink block by block (a sink that refuses, e.g. past the size bound, stops gpg)
        res = run(sandbox.wrap(argv, rw=[home]), env=env, stdin=Path(src), stdout=sink.write,
                  popen_kwargs=sandbox.popen_kwargs(), label="gpg --decrypt")
        rc = res.returncode
        words = _gpg_status(status.read_text("utf-8", "replace") if status.exists() else "")
        log.debug("gpg exit %s, status %s", rc, sorted(words))
        if rc == 0 and "DECRYPTION_OKAY" in words and "GOODMDC" in words and "BADMDC" not in words:
            return
        if "DECRYPTION_KEY" not in words and ("NO_SECKEY" in words or "ENC_TO" in words):
            # the session key was never unlocked: none of the keys it is encrypted to was given
            raise CannotDecrypt(f"cannot decrypt {name} with the given identity (OpenPGP: it is encrypted to "
                                "other keys)", "give the secret key the backup was encrypted to with --identity")
        if "DECRYPTION_OKAY" in words and "GOODMDC" not in words:
            raise _Damaged("the OpenPGP message has no integrity protection (MDC): refusing to trust it")
        raise _Damaged("the OpenPGP ciphertext is cut short or modified (gpg: "
                       + (res.stderr.strip().splitlines() or ["failed"])[-1].removeprefix("gpg: ")[:200]
                       + "): nothing was restored from it")
    finally:
        _stop_gpg_agent(home)
        shutil.rmtree(home, ignore_errors=True)


# --- object storage ---------------------------------------------------------------------------


def is_s3(text: str | os.PathLike[str]) -> bool:
    return isinstance(text, str) and text.startswith("s3://")


def split_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); exit 2 for anything else."""
    rest = url[len("s3://"):]
    bucket, _, key = rest.partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket) or not key or "\0" in key:
        raise BadInputError(f"{url!r} is not an s3://bucket/key URL", "give s3://BUCKET/KEY")
    return bucket, key


def s3_client() -> Any:
    """A boto3 S3 client from the standard AWS configuration (environment, profile, instance role);
    ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` for MinIO, Ceph and other compatible stores."""
    try:
        import boto3
    except ImportError:
        raise EnvironmentFailure("s3:// needs boto3, which is not installed",
                                 "pip install 'restorecheck[s3]'") from None
    return boto3.session.Session().client("s3")  # a new session: credentials as the environment says now


def _s3_error(exc: BaseException, url: str) -> Exception:
    """One line for a failed S3 call: the bucket or key missing is bad input (2), the rest environment (3)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return ObjectStoreError(f"no AWS credentials for {url}",
                                "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an instance role")
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket",):
            return BackupNotFoundError(f"the bucket of {url} does not exist", "check the bucket name")
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return BackupNotFoundError(f"{url} does not exist", "check the key (object name)")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            return ObjectStoreError(f"the AWS credentials were refused for {url} ({code})",
                                    "check the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID)")
        if code in ("AccessDenied", "403") or status == 403:
            return ObjectStoreError(f"access to {url} was denied", "grant s3:GetObject/s3:PutObject to these credentials")
        return ObjectStoreError(f"object storage refused the request for {url}: {code or status}",
                                "check the bucket, the endpoint (AWS_ENDPOINT_URL) and the credentials")
    if isinstance(exc, BotoCoreError):
        return ObjectStoreError(f"object storage cannot be reached for {url}: {type(exc).__name__}",
                                "check AWS_ENDPOINT_URL, the network and the region")
    return ObjectStoreError(f"object storage failed for {url}: {type(exc).__name__}", "see -v")


def s3_download(url: str, dest: Path) -> tuple[str, int]:
    """Stream ``url`` into the new 0600 file ``dest``; (sha256, bytes), computed on the way."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3(url)
    h = hashlib.sha256()
    n = 0
    try:
        body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            for block in body.iter_chunks(CHUNK):
                h.update(block)
                out.write(block)
                n += len(block)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, url) from None
    return h.hexdigest(), n


def s3_exists(url: str) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3(url)
    try:
        s3_client().head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        err = _s3_error(exc, url)
        if isinstance(err, BackupNotFoundError):
            return False
        raise err from None
    except BotoCoreError as exc:
        raise _s3_error(exc, url) from None
    return True


def s3_upload(path: Path, url: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3(url)
    try:
        s3_client().upload_file(str(path), bucket, key)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, url) from None
    except Exception as exc:  # boto3's S3UploadFailedError wraps the ClientError
        cause = exc.__cause__ or exc.__context__
        raise _s3_error(cause if cause is not None else exc, url) from None


def s3_glob(pattern: str) -> list[str]:
    """``s3://bucket/prefix/*.dump`` -> the matching objects' URLs, newest first (the nightly job's
    ``backups``). The listing is by the prefix before the first wildcard; fnmatch decides the rest."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3(pattern)
    wild = min((key.find(c) for c in "*?[" if c in key), default=len(key))
    prefix = key[:wild]
    found: list[tuple[Any, str]] = []
    try:
        pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", ()):
                if fnmatch.fnmatchcase(obj["Key"], key):
                    found.append((obj["LastModified"], obj["Key"]))
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, pattern) from None
    found.sort(key=lambda t: (t[0], t[1]), reverse=True)
    return [f"s3://{bucket}/{k}" for _, k in found]


# --- the whole peeling ----------------------------------------------------------------------------


@dataclasses.dataclass
class Opened:
    """A backup as the engines see it: ``path`` (plaintext, local) and what was peeled off."""

    named: str  # what the user gave (a path or an s3:// URL)
    path: Path  # the local plaintext (the stored file itself when there was nothing to peel)
    stored: Path  # the local copy of what is stored (downloaded from S3, or the file given)
    layers: list[str] = dataclasses.field(default_factory=list)  # outermost first: ["age", "zstd"]
    evidence: list[Evidence] = dataclasses.field(default_factory=list)  # what checks.backup_file judges
    readable: bool = True  # False: a layer could not be trusted; nothing may be restored
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)
    sha256: str | None = None  # of what is stored, when computed on the way (S3)
    bytes: int | None = None

    @property
    def encryption(self) -> str | None:
        return next((layer for layer in self.layers if layer in CIPHERS), None)

    @property
    def compression(self) -> str | None:
        codecs = [layer for layer in self.layers if layer in CODECS]
        return "+".join(codecs) if codecs else None


def private_dir(tmp_root: str | os.PathLike[str] | None, stack: contextlib.ExitStack, sandbox: Any = None) -> Path:
    """The run's directory for downloaded and decrypted backups: removed on every way out (its removal
    is registered before it exists), recorded for ``doctor --sweep``; 0700, or 0711 when a sandboxed
    tool must pass through to a file made for it (it lists nothing)."""
    from restorecheck.provisioners.local import reachable_parent, record_owner

    user = getattr(sandbox, "user", None)
    parent = reachable_parent(tmp_root, user) if user is not None else Path(tmp_root or tempfile.gettempdir())
    d = parent / f"restorecheck-source-{secrets.token_hex(6)}"
    stack.callback(shutil.rmtree, d, True)
    d.mkdir(mode=0o700)
    if user is not None:
        os.chmod(d, 0o711)
    record_owner(d)
    return d


def open_backup(named: str, work: Path, *, identities: Sequence[Identity] = (),
                max_expanded: int | str | None = "default", sandbox: Any = None,
                stored: Path | None = None, file_changed: bool = False) -> Opened:
    """Peel ``named``'s layers (see the module docstring) into ``work``, outermost first.

    ``stored``: the local file holding what is stored (an S3 download); else ``named`` itself.
    ``file_changed``: the manifest's sha256 already says the file changed, so an age file that no
    identity opens is reported as damaged, not as a wrong key (age's recipient slots are anonymous).
    """
    src = Path(stored) if stored is not None else Path(named)
    opened = Opened(named=named, path=src, stored=src)
    if src.is_dir():
        return opened
    size = src.stat().st_size
    limit: int | None
    limit = max(DEFAULT_FLOOR, DEFAULT_RATIO * size) if max_expanded == "default" else max_expanded  # type: ignore[assignment]
    name = Path(named).name if not is_s3(named) else named.rsplit("/", 1)[-1]
    claim = claimed(name)
    current = src
    for depth in range(MAX_LAYERS + 1):
        with open(current, "rb") as f:
            head = f.read(64)
        kind = sniff(head)
        if depth == 0 and claim and claim != kind:
            opened.evidence.append(Evidence("layer_name_mismatch", name, {"claim": claim, "content": kind}))
            opened.facts["name_claims"] = claim
        if kind is None:
            break
        if depth == MAX_LAYERS:
            raise BadInputError(f"{name} has more than {MAX_LAYERS} layers of compression or encryption",
                                "give the backup with at most a few layers (x.sql.zst.age)")
        dest = work / f"layer{depth}-{name}"
        sink = _Sink(dest, limit, name)
        opened.layers.append(kind)
        try:
            with open(current, "rb") as raw:
                if kind == "age":
                    _decrypt_age(raw, sink, identities, name)
                elif kind == "gpg":
                    _decrypt_gpg(current, sink, identities, name, work, sandbox)
                else:
                    DECOMPRESS[kind](raw, sink)
        except CannotDecrypt:
            sink.close()
            if not file_changed:
                raise
            opened.evidence.append(Evidence("recipient_header_damaged", name))
            opened.readable = False
            return _drop(opened, dest)
        except _Damaged as exc:
            sink.close()
            opened.evidence.append(Evidence("layer_damaged", name, {"layer": kind, "error": str(exc)}))
            if kind in CIPHERS:  # never restore unauthenticated plaintext
                opened.readable = False
                return _drop(opened, dest)
            # a cut compressed stream: what came before the damage is restored, so the report
            # shows how far it got (as for gzip since 0.1); the verdict is a failure either way
        except BaseException:
            sink.close()
            dest.unlink(missing_ok=True)
            raise
        sink.close()
        opened.facts.setdefault("expanded_bytes", {})[kind] = sink.bytes
        if current != src:
            current.unlink(missing_ok=True)
        current = dest
        if sink.bytes == 0:
            break
    opened.path = current
    if opened.layers:
        opened.facts["layers"] = list(opened.layers)
    return opened


def _drop(opened: Opened, dest: Path) -> Opened:
    dest.unlink(missing_ok=True)
    opened.path = opened.stored
    opened.facts["layers"] = list(opened.layers)
    return opened


# --- writing encrypted backups ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Recipient:
    """``backup --recipient``: an age recipient (``age1...``, ``ssh-ed25519 ...``, or a file of
    them) or an OpenPGP public key file (encrypted with ``gpg --recipient-file``, no keyring)."""

    kind: str  # "age" | "gpg"
    value: str  # the age recipient string, or the public key file's path


def parse_recipient(text: str) -> Recipient:
    t = text.strip()
    if t.startswith("age1") or t.startswith(("ssh-ed25519 ", "ssh-rsa ")):
        return Recipient("age", t)
    p = Path(t)
    from restorecheck.paths import open_regular

    try:
        with open_regular(p, "--recipient", hint="give age1..., an ssh public key, or a public key file") as fh:
            head = fh.read(64 * 1024)
    except FileNotFoundError:
        raise BadInputError(f"--recipient {t!r} is neither an age recipient (age1...) nor a file",
                            "give age1..., 'ssh-ed25519 ...', a file of age recipients, or an OpenPGP public key file") from None
    if head.lstrip().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----") or _pgp_packet(head) == 6:
        return Recipient("gpg", str(p))
    lines = [ln.strip() for ln in head.decode("utf-8", "replace").splitlines()
             if ln.strip() and not ln.startswith("#")]
    if lines and all(ln.startswith(("age1", "ssh-ed25519 ", "ssh-rsa ")) for ln in lines):
        return Recipient("age", "\n".join(lines))
    raise BadInputError(f"--recipient {t} holds no age recipient and no OpenPGP public key",
                        "give age1..., an ssh public key, or an OpenPGP public key file (gpg --export)")


def encrypt(plain: Path, dest: Path, recipients: Sequence[Recipient], work: Path) -> str:
    """Encrypt ``plain`` into the new file ``dest`` (0600) for ``recipients`` (all of one kind);
    the kind ("age" or "gpg")."""
    kinds = {r.kind for r in recipients}
    if len(kinds) != 1:
        raise BadInputError("--recipient mixes age and OpenPGP recipients", "give recipients of one kind")
    kind = kinds.pop()
    if kind == "age":
        import pyrage

        recips: list[Any] = []
        for r in recipients:
            for line in r.value.splitlines():
                try:
                    recips.append(pyrage.ssh.Recipient.from_str(line) if line.startswith("ssh-")
                                  else pyrage.x25519.Recipient.from_str(line))
                except pyrage.RecipientError:
                    raise BadInputError(f"--recipient {line[:20]}... is not a valid age recipient",
                                        "give the age1... string age-keygen printed") from None
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with open(plain, "rb") as src, os.fdopen(fd, "wb") as out:
            pyrage.encrypt_io(src, out, recips)
        return "age"
    home = _gpg_home(work, "encrypt to an OpenPGP key")
    try:
        argv = ["gpg", "--batch", "--no-tty", "--quiet", "--homedir", str(home), "--trust-model", "always",
                "--no-auto-key-locate", "--no-auto-key-retrieve"]
        for r in recipients:
            argv += ["--recipient-file", r.value]
        argv += ["--output", str(dest), "--encrypt", str(plain)]
        res = run(argv, timeout=3600, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GNUPGHOME": str(home)},
                  label="gpg --encrypt")
        if not res.ok:
            dest.unlink(missing_ok=True)
            tail = res.stderr.strip().splitlines()[-1:] or ["failed"]
            raise BadInputError(f"gpg could not encrypt to the --recipient key: {tail[0][:200]}",
                                "give an OpenPGP public key file with an encryption subkey")
        os.chmod(dest, 0o600)
    finally:
        _stop_gpg_agent(home)
        shutil.rmtree(home, ignore_errors=True)
    return "gpg"
