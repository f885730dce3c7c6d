"""Orchestration of snapshot / compare / backup / verify / drill; owns the ExitStack.

Library first: every CLI command is one call to a function here, which returns a value
(a ``Manifest``, a ``Report``) and raises a ``RestorecheckError`` only when it could not do its
job. Engines are picked with ``engines.engine_for`` / ``engines.get_engine``.
"""

from __future__ import annotations

# imports of the backup/verify/drill section (issue 5)
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import hashlib
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restorecheck.checks import registry
from restorecheck.checks.compare import compare_manifests, inherited_restore_errors, locale_of
from restorecheck.checks.registry import CheckContext
from restorecheck.dburl import DatabaseRef, SqliteRef, mask, parse_database
from restorecheck.engines import ENGINE_NAMES, engine_for, get_engine
from restorecheck.engines.base import (
    BackupOptions,
    Engine,
    FingerprintOptions,
    RestoreOptions,
    Target,
    check_name,
    in_checksum_mode_of,
)
from restorecheck.errors import BackupNotFoundError, BadInputError, BadManifestError, UnknownFormatError
from restorecheck.evidence import Evidence
from restorecheck.model import (
    ArtifactFormat,
    BackupArtifact,
    BackupFormat,
    EngineName,
    Finding,
    Manifest,
    Reference,
    Report,
    TableResult,
    verdict_for,
)
from restorecheck.paths import (
    open_regular,
    require_dir,
    require_file,
    require_file_or_dir,
    require_sqlite_file,
)

# --- snapshot and compare (issue 4) ---------------------------------------------------------


def is_manifest_path(text: str) -> bool:
    """A compare side names a manifest when it is a ``.json`` path or a file that holds JSON."""
    if text.lower().endswith(".json"):
        return True
    try:  # never opens a FIFO or a device: such a side is refused as a database path afterwards
        with open_regular(text, "compare side") as fh:
            return fh.read(64).lstrip()[:1] == b"{"
    except (OSError, BadInputError):
        return False


def _live_fingerprint(ref: DatabaseRef, options: FingerprintOptions, ranges_from: Manifest | None) -> Manifest:
    return engine_for(ref).fingerprint(ref, options, ranges_from=ranges_from)


def snapshot(source: DatabaseRef | str, options: FingerprintOptions | None = None) -> Manifest:
    """Fingerprint the live database ``source`` (read only) into a Manifest."""
    ref = _as_ref(source, "SOURCE")
    return _live_fingerprint(ref, options or FingerprintOptions(), None)


def compare_engine(a: str, b: str) -> EngineName | None:
    """The engine a compare of ``a`` and ``b`` is about, as far as the arguments tell without a
    server (for the error report of a compare that failed): a database side's by its name, else a
    manifest side's ``engine``; None when neither tells."""
    for side in (a, b):
        with contextlib.suppress(Exception):
            if not is_manifest_path(side):
                return parse_database(side).engine
    for side in (a, b):
        with contextlib.suppress(Exception):
            return Manifest.load(side).engine
    return None


def compare(
    a: str,
    b: str,
    *,
    options: FingerprintOptions | None = None,
    live_reference: bool | None = None,
    max_keys: int = 20,
) -> Report:
    """Compare A (the reference) with B: two live databases, two manifests, or one of each.

    A side is a manifest when it is a JSON file (``is_manifest_path``), else a database. A live
    side is fingerprinted with the other side's key ranges and checksum mode. When both sides are
    live, differing key ranges are bisected down to the differing keys (``details["keys"]``).
    ``live_reference`` (default: A is live): the restored sequences may be ahead of the reference.
    """
    options = options or FingerprintOptions()
    started_at, start = _now_iso(), time.monotonic()
    phases: dict[str, float] = {}
    a_is_manifest, b_is_manifest = is_manifest_path(a), is_manifest_path(b)
    ref_a = None if a_is_manifest else _as_ref(a, "A")
    ref_b = None if b_is_manifest else _as_ref(b, "B")
    if ref_a is not None and ref_b is not None and ref_a.engine != ref_b.engine:
        raise BadInputError(f"cannot compare a {ref_a.engine} database with a {ref_b.engine} database")
    man_a = Manifest.load(a) if a_is_manifest else None
    man_b = Manifest.load(b) if b_is_manifest else None
    t = time.monotonic()
    if man_a is None:
        assert ref_a is not None
        opts_a = in_checksum_mode_of(man_b, options) if man_b is not None else options
        man_a = _live_fingerprint(ref_a, dataclasses.replace(opts_a, snapshot=None), man_b)
    if man_b is None:
        assert ref_b is not None
        man_b = _live_fingerprint(ref_b, dataclasses.replace(in_checksum_mode_of(man_a, options), snapshot=None), man_a)
    phases["fingerprint"] = _elapsed(t)
    if man_a.engine != man_b.engine:
        raise BadInputError(f"cannot compare a {man_a.engine} manifest with a {man_b.engine} one")
    if live_reference is None:
        live_reference = ref_a is not None
    t = time.monotonic()
    tables, findings = compare_manifests(man_a, man_b, live_reference=live_reference, max_keys=max_keys)
    if ref_a is not None and ref_b is not None:
        findings = engine_for(ref_a).narrow(ref_a, ref_b, findings, reference_manifest=man_a,
                                            restored_manifest=man_b, max_keys=max_keys)
    phases["compare"] = _elapsed(t)
    phases["total"] = _elapsed(start)
    return Report(
        verdict=verdict_for(findings), engine=man_a.engine, reference="live" if ref_a is not None else "manifest",
        phases=phases, tables=tuple(tables), findings=tuple(findings), command="compare",
        started_at=started_at, source=ref_a.display() if ref_a is not None else str(a),
        target=ref_b.display() if ref_b is not None else str(b),
    )


# --- backup, verify and drill (issue 5) -----------------------------------------------------


@dataclass(frozen=True)
class BackupResult:
    """A backup on disk and its manifest, taken from the same snapshot."""

    artifact: BackupArtifact
    manifest: Manifest
    manifest_path: Path
    seconds: float


def _as_ref(db: str | DatabaseRef, what: str = "SQLite database") -> DatabaseRef:
    """The database ``db`` names; a SQLite path that is a directory, FIFO or device is exit 2 here,
    before SQLite opens it (opening a FIFO blocks forever)."""
    ref = parse_database(db) if isinstance(db, str) else db
    if isinstance(ref, SqliteRef):
        require_sqlite_file(ref.path, what, hint="give a SQLite database file")
    return ref


def _check_pg_bin(pg_bin: str | Path | None) -> None:
    if pg_bin is not None:
        require_dir(pg_bin, "--pg-bin", hint="give the directory that holds pg_dump, pg_restore and psql")


def manifest_path_for(backup_path: str | Path) -> Path:
    """``DIR/<name>.manifest.json`` for ``DIR/<name>.<ext>`` (the manifest beside a backup)."""
    p = Path(backup_path)
    name = p.name
    for layer in (".gz", ".lz4", ".zst"):  # pg_dump -Fp --compress: x.sql.gz beside x.manifest.json
        if name.endswith(".sql" + layer):
            name = name[:-len(layer)]
    stem = name.rsplit(".", 1)[0] if "." in name.strip(".") else name
    return p.with_name(f"{stem}.manifest.json")


def manifest_candidates(backup_path: str | Path) -> list[Path]:
    """Where a manifest beside a backup may be: ``x.manifest.json`` for ``x.dump``, ``x.sql.gz``, ``x``."""
    p = Path(backup_path)
    names = [p.name]
    parts = p.name.split(".")
    for k in range(len(parts) - 1, 0, -1):
        names.append(".".join(parts[:k]))
    out: list[Path] = []
    for n in names:
        cand = p.with_name(f"{n}.manifest.json")
        if cand not in out:
            out.append(cand)
    return out


def _elapsed(start: float) -> float:
    return round(time.monotonic() - start, 3)


def prepare_outdir(outdir: str | Path, name: str | None = None) -> Path:
    """Create the backup directory ``outdir`` and check that ``name`` is a plain file name.

    BadInputError (exit 2, naming the fix) for a name with a '/' (it would write outside ``outdir``)
    and for a directory that cannot be created or written, before any work starts.
    """
    check_name(name)
    out = Path(outdir)
    require_dir(out, "the output directory", hint="choose a directory with -o")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create the output directory {out}: {exc.strerror or exc}",
                            "choose a writable directory with -o") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise BadInputError(f"the output directory {out} is not writable", "choose a writable directory with -o")
    return out


def backup(
    source: str | DatabaseRef,
    outdir: str | Path,
    options: BackupOptions | None = None,
    *,
    pg_bin: str | Path | None = None,
    recipients: Sequence[str] = (),
) -> BackupResult:
    """Take a backup of ``source`` into ``outdir`` with its manifest from the same snapshot.

    ``recipients`` (age ``age1...``/ssh keys, or an OpenPGP public key file): the backup is written
    encrypted (``<name>.<ext>.age`` / ``.gpg``), the plaintext only ever in a private directory of
    the run; the manifest records the encryption and the sha256 of the file as stored. ``outdir``
    ``s3://bucket/prefix``: the backup and its manifest are uploaded there.
    """
    from restorecheck import sources

    ref = _as_ref(source, "SOURCE")
    _check_pg_bin(pg_bin)
    options = options or BackupOptions()
    recips = [sources.parse_recipient(r) for r in recipients]
    remote = sources.is_s3(str(outdir))
    if remote:
        sources.split_s3(str(outdir).rstrip("/") + "/x")
    if (recips or remote) and options.format == "directory":
        raise BadInputError("--format directory writes a directory, which cannot be "
                            + ("encrypted" if recips else "uploaded") + " as one file",
                            "choose --format custom (or tar, plain)")
    if not recips and not remote:
        made = not Path(outdir).exists()
        outdir = prepare_outdir(outdir, options.name)
        engine = engine_for(ref, pg_bin=pg_bin)
        start = time.monotonic()
        try:
            artifact, manifest = engine.backup(ref, outdir, options)
        except BaseException:
            if made:  # a failed backup leaves no empty directory of its own behind
                with contextlib.suppress(OSError):
                    Path(outdir).rmdir()
            raise
        if manifest.backup is None:
            manifest = manifest.with_backup(artifact)
        path = manifest_path_for(artifact.path)
        manifest.save(path, options.file_mode)
        return BackupResult(artifact, manifest, path, _elapsed(start))
    final_dir = None if remote else prepare_outdir(outdir, options.name)
    check_name(options.name)
    engine = engine_for(ref, pg_bin=pg_bin)
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        stage = sources.private_dir(None, stack)
        artifact, manifest = engine.backup(ref, stage, dataclasses.replace(options, file_mode=0o600))
        plain = Path(artifact.path)
        stored, encryption = plain, None
        if recips:
            suffix = ".age" if recips[0].kind == "age" else ".gpg"
            stored = stage / "out" / (plain.name + suffix)
            stored.parent.mkdir(mode=0o700)
            encryption = sources.encrypt(plain, stored, recips, stage)
            plain.unlink()
        from restorecheck.engines.pg_dump import sha256_of

        if remote:
            where = str(outdir).rstrip("/") + "/" + stored.name
        else:
            assert final_dir is not None
            where = str(final_dir / stored.name)
            if Path(where).exists():
                raise BadInputError(f"{where} already exists", "choose another --name or directory")
            shutil.move(stored, where)
            os.chmod(where, options.file_mode)
            stored = Path(where)
        artifact = BackupArtifact(where if remote else str(Path(where).resolve()), artifact.format,
                                  stored.stat().st_size, sha256_of(stored), encryption=encryption)
        manifest = dataclasses.replace(manifest, backup=artifact)
        mname = manifest_path_for(plain.name).name  # x.manifest.json beside x.dump.age
        if remote:
            mpath = stage / mname
            manifest.save(mpath, options.file_mode)
            sources.s3_upload(stored, where)
            murl = str(outdir).rstrip("/") + "/" + mpath.name
            sources.s3_upload(mpath, murl)
            return BackupResult(artifact, manifest, Path(murl), _elapsed(start))
        path = Path(where).with_name(mname)
        manifest.save(path, options.file_mode)
        return BackupResult(artifact, manifest, path, _elapsed(start))


def check_target(engine: EngineName, target: str | None) -> None:
    """A SQLite backup is restored into a temporary file: a --target other than local was silently
    ignored (even 'bogus'), so a run did something other than what it was asked. BadInputError."""
    if engine == "sqlite" and target not in (None, "local"):
        raise BadInputError(f"--target {mask(target or '')} is for PostgreSQL; a SQLite backup is restored into "
                            "a temporary file", "drop --target (or give --target local)")


def _detect(path: Path, engine: EngineName | None, pg_bin: str | Path | None,
            shown: str | None = None) -> tuple[Engine, BackupFormat]:
    names = [engine] if engine else list(ENGINE_NAMES)
    for name in names:
        eng = get_engine(name, pg_bin=pg_bin)
        fmt = eng.detect_format(path)
        if fmt:
            return eng, fmt
    for other in ENGINE_NAMES if engine else ():
        if other != engine and get_engine(other, pg_bin=pg_bin).detect_format(path):
            raise UnknownFormatError(f"{shown or path} is a {other} backup, not {engine}",
                                     f"drop --engine (the engine is recognised from the content) or give --engine {other}")
    raise UnknownFormatError(
        f"{shown or path} is not a backup restorecheck recognises",
        "give pg_dump output (custom, directory, tar, plain SQL) or a SQLite database file, as is, "
        "compressed (gzip, zstd, lz4, bzip2, xz) or encrypted (age, OpenPGP)",
    )


def _no_reference_tables(restored: Manifest) -> list[TableResult]:
    return [TableResult(t.name, None, t.rows, None, t.checksum, True) for t in restored.tables]


def _restore_and_check(
    engine: Engine,
    artifact: BackupArtifact,
    reference: Manifest | None,
    reference_kind: Reference,
    live_source: DatabaseRef | None,
    restore: RestoreOptions,
    fingerprint: FingerprintOptions,
    max_restore_seconds: float | None,
    stack: contextlib.ExitStack,
    phases: dict[str, float],
    key_source: DatabaseRef | None = None,
    target: Target | None = None,
) -> tuple[list[TableResult], list[Finding], dict[str, Any], str | None]:
    """Restore into a throwaway target (``target``: one started already), fingerprint it, run the
    checks; fills ``phases``. Returns the tables, the findings, the report's extra facts and how to
    connect to a kept target.

    ``key_source`` (or ``live_source``): a database at hand to narrow content differences down to
    the differing keys, where the engine can (``engine.narrow``, SQLite).
    """
    live_seconds = 0.0
    fp = dataclasses.replace(fingerprint, snapshot=None, schema_only=False)
    if live_source is not None:  # first: an unreachable source fails before a long restore
        start = time.monotonic()
        restore.progress("verify: fingerprint the live source", 0, None)
        reference = engine.fingerprint(live_source, fp)
        live_seconds = time.monotonic() - start
    if reference is not None:
        # the throwaway database gets the reference's locale where the target has it
        restore = dataclasses.replace(restore, reference_locale=locale_of(reference.facts))
    start = time.monotonic()
    outcome = engine.restore(artifact, restore, stack, target=target)
    phases["restore"] = _elapsed(start)
    # every finding is made by a check registered in checks/: the restore's evidence first, in the
    # order it was observed, then the checks of each phase as its facts become known
    ctx = CheckContext(engine.name, reference, evidence=outcome.evidence, artifact_name=Path(artifact.path).name,
                       restore_seconds=phases["restore"], max_restore_seconds=max_restore_seconds)
    findings: list[Finding] = registry.convert(outcome.evidence)
    findings += registry.run("restore", ctx)
    if outcome.info.get("timed_out"):
        # killed at --restore-timeout: a partial copy proves nothing, so it is not compared
        phases["verify"] = 0.0
        return [], findings, {"restore": {**outcome.info, "tool_seconds": round(outcome.seconds, 3)},
                              "rows_restored": 0}, outcome.connect
    start = time.monotonic() - live_seconds
    if reference is not None:
        fp = in_checksum_mode_of(reference, fp)  # the restored copy hashes as the reference did
    settled: dict[str, Any] = {}
    restore.progress("verify: fingerprint the restored copy", 0, None)
    if restore.restore_timeout is not None:  # the restored copy is the dump's: no query of ours may hang on it
        fp = dataclasses.replace(fp, statement_timeout=f"{max(1, int(restore.restore_timeout * 1000))}ms")
    restored = engine.fingerprint(outcome.restored, fp, ranges_from=reference)
    ctx.restored = engine.self_check_facts(outcome.restored, restored)
    findings += registry.run("self", ctx)
    if reference is not None:
        # a definition the restored server prints differently from the same text: not a difference
        # (before the database properties are applied: their settings must not reach these sessions)
        restored, settled = engine.settle_definitions(outcome, restored, reference)
    # the backup's database-level properties: applied only now, after the copy was fingerprinted
    restored, applied = engine.apply_database_properties(outcome, restored, reference=reference)
    findings += registry.convert(applied)
    ctx.restored = restored
    if reference is not None:
        # a live reference, or a manifest whose sequences were read before the dump's (F2): the
        # restored sequences may be ahead of the reference, never behind
        at_least = reference_kind == "live" or reference.sequences_at_least
        results, compared = compare_manifests(reference, restored, live_reference=at_least)
        if ctx.observed("locale_fallback"):
            # the restore already said, once, which locale the target lacks
            compared = [f for f in compared if not f.details.get("locale_difference")]
        against = live_source or key_source
        if against is not None and any(f.check in ("row_count", "checksum") for f in compared):
            compared = engine.narrow(against, outcome.restored, compared, reference_manifest=reference,
                                     restored_manifest=restored)
        tables = list(results)
        findings += compared
        if reference.fk_orphans:
            findings = inherited_restore_errors(findings, reference.fk_orphans)
    else:
        tables = _no_reference_tables(restored)
    findings += registry.run("reference", ctx)
    phases["verify"] = _elapsed(start)
    restore.progress("verify", 1, 1)
    extra: dict[str, Any] = {"restore": {**outcome.info, "tool_seconds": round(outcome.seconds, 3)},
                             "rows_restored": sum(t.rows or 0 for t in restored.tables)}
    if restored.database_properties is not None:  # what the restored copy got (and what was applied)
        extra["database_properties"] = dict(restored.database_properties)
    if settled:
        extra["definitions_reparsed"] = settled
    if max_restore_seconds is not None:  # the RTO target, for the HTML report's timeline
        extra["rto_target_seconds"] = max_restore_seconds
    return tables, findings, extra, outcome.connect


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def verify(
    backup_path: str | Path,
    *,
    manifest: str | Path | Manifest | None = None,
    against: str | DatabaseRef | None = None,
    restore: RestoreOptions | None = None,
    fingerprint: FingerprintOptions | None = None,
    max_restore_seconds: float | None = None,
    engine: EngineName | None = None,
    pg_bin: str | Path | None = None,
    identities: Sequence[str | Path] = (),
    max_expanded_size: int | str | None = "default",
) -> Report:
    """Restore ``backup_path`` into a throwaway target and check it against its reference.

    ``backup_path``: a file, a pg_dump directory, or ``s3://bucket/key``; compressed and encrypted
    layers are peeled first (``sources.open_backup``, with ``identities`` and ``max_expanded_size``).
    Reference (SPEC): ``manifest``, else the live database ``against``, else a manifest beside the
    backup, else none (the checks that need no reference, and a ``no_reference`` warning).
    The backup is only ever read.
    """
    from restorecheck import sources

    restore = restore or RestoreOptions()
    fingerprint = fingerprint or FingerprintOptions()
    started_at, start = _now_iso(), time.monotonic()
    named = str(backup_path)
    _check_pg_bin(pg_bin)
    if manifest is not None and against is not None:
        raise BadInputError("give either --manifest or --against, not both")
    keys = [sources.load_identity(i) for i in identities]
    with contextlib.ExitStack() as stack:
        work: Path | None = None
        sandbox: Any = None

        def workdir() -> Path:
            nonlocal work, sandbox
            if work is None:
                from restorecheck.sandbox import resolve

                sandbox = resolve(restore.sandbox, os.environ.get("RESTORECHECK_RUN_AS"))
                work = sources.private_dir(restore.tmp_root, stack, sandbox)
            return work

        stored_sha: str | None = None
        if sources.is_s3(named):
            sources.split_s3(named)
            restore.progress("download the backup", 0, None)
            path = workdir() / named.rsplit("/", 1)[-1]
            stored_sha, _n = sources.s3_download(named, path)
        else:
            path = Path(named)
            if not require_file_or_dir(path, "backup", error=BackupNotFoundError,
                                       hint="give a backup file, or a pg_dump directory-format backup"):
                raise BackupNotFoundError(f"backup {path} does not exist", "check the path")
            if not os.access(path, os.R_OK) or (path.is_dir() and not os.access(path, os.X_OK)):
                raise BackupNotFoundError(f"backup {path} cannot be read (permission denied)",
                                          "run as a user that can read it")
        shown = named if sources.is_s3(named) else str(path.resolve())
        if path.is_file() and path.stat().st_size == 0:
            return _empty_backup_report(path, engine, manifest, started_at, start, shown=shown)
        reference: Manifest | None = None
        reference_kind: Reference = "none"
        live: DatabaseRef | None = None
        findings: list[Finding] = []
        reference_from: str | None = None
        if isinstance(manifest, Manifest):
            reference, reference_kind = manifest, "manifest"
        elif manifest is not None:
            reference = _load_manifest(str(manifest), workdir)
            reference_kind, reference_from = "manifest", str(manifest)
        elif against is None:
            for cand in _manifest_candidates_of(named):
                if _manifest_exists(cand):
                    reference = _load_manifest(cand, workdir)
                    reference_kind, reference_from = "manifest", cand
                    break
        from restorecheck.engines.pg_dump import backup_bytes, sha256_of

        recorded = reference.backup if reference is not None else None
        # the backup's sha256, on a thread beside the restore (reading and hashing release the GIL);
        # waited for at once only when a compressed or encrypted layer needs to know
        restore.progress("sha256 of the backup", 0, None)
        hashing: concurrent.futures.Future[str] | None = None
        if stored_sha is None:
            hasher = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="restorecheck-sha256")
            stack.callback(hasher.shutdown, True, cancel_futures=True)
            stop_hashing = threading.Event()
            stack.callback(stop_hashing.set)  # runs first: an interrupted run does not wait for it
            hashing = hasher.submit(sha256_of, path, cancel=stop_hashing)
        plain_sha: list[str] = []

        def digest() -> tuple[str, bool]:
            """(the backup's sha256, whether it differs from the manifest's). A manifest written with
            a plain backup that was compressed or encrypted afterwards (gzip of the nightly dump)
            records the plain file's sha256: once a layer is peeled, that is compared instead."""
            sha = stored_sha if hashing is None else hashing.result()
            assert sha is not None
            changed = bool(recorded is not None and recorded.sha256 and recorded.sha256 != sha)
            if (changed and recorded is not None and not recorded.encryption and not recorded.compression
                    and opened.readable and opened.path != opened.stored and opened.path.exists()):
                if not plain_sha:
                    plain_sha.append(sha256_of(opened.path))
                changed = plain_sha[0] != recorded.sha256
            return sha, changed

        def sha_findings() -> list[Finding]:
            sha, changed = digest()
            if not changed or recorded is None:
                return []
            return registry.convert([Evidence(
                "sha256_mismatch", path.name,
                {"expected": recorded.sha256, "actual": sha,
                 "bytes_expected": recorded.bytes, "bytes_actual": backup_bytes(path)},
            )])

        opened = sources.Opened(named=named, path=path, stored=path)
        if path.is_file():
            with open(path, "rb") as fh:
                layered = sources.sniff(fh.read(64)) is not None
            if layered or sources.claimed(path.name):
                _sha, changed = digest()
                restore.progress("decompress / decrypt the backup", 0, None)
                opened = sources.open_backup(named, workdir(), identities=keys, max_expanded=max_expanded_size,
                                             sandbox=sandbox, stored=path, file_changed=changed)
        layered_findings = registry.convert(opened.evidence)
        findings += layered_findings
        plain = opened.path
        damaged = any(f.severity == "error" for f in layered_findings)
        fmt: BackupFormat | None = None
        eng: Engine | None = None
        if opened.readable and plain.exists() and (plain.is_dir() or plain.stat().st_size > 0):
            try:
                eng, fmt = _detect(plain, engine, pg_bin or restore.pg_bin, shown=path.name)
            except UnknownFormatError:
                if not damaged:
                    raise
        artifact = BackupArtifact(shown, _public_format(fmt, opened), backup_bytes(path), "",
                                  encryption=opened.encryption, compression=opened.compression)
        if eng is None or fmt is None:  # a layer failed: nothing trustworthy to restore
            name = engine or (reference.engine if reference is not None else "postgresql")
            sha, _changed = digest()
            findings[:0] = sha_findings()
            artifact = dataclasses.replace(artifact, sha256=sha)
            return Report(verdict=verdict_for(findings), engine=name,
                          reference=reference_kind, backup=artifact, phases={"total": _elapsed(start)},
                          findings=tuple(findings), command="verify", started_at=started_at,
                          extra={"source": opened.facts} if opened.facts else {})
        check_target(eng.name, restore.target)
        if eng.name == "sqlite":  # its -wal beside it is copied too
            require_sqlite_file(plain, "backup", error=BackupNotFoundError)
        if against is not None:
            live = _as_ref(against, "--against")
            if live.engine != eng.name:
                raise BadInputError(f"--against {live.display()} is a {live.engine} database, "
                                    f"but the backup is {eng.name}")
            reference_kind = "live"
        if reference is not None and reference.engine != eng.name:
            which = f"the manifest {reference_from}" if reference_from else "the manifest"
            raise BadManifestError(f"{which} is for {reference.engine}, but the backup is {eng.name}",
                                   "give the manifest written with this backup")
        inner = BackupArtifact(str(plain.resolve()), fmt, artifact.bytes, "")
        phases: dict[str, float] = {}
        tables, more, extra, kept = _restore_and_check(eng, inner, reference, reference_kind, live, restore,
                                                 fingerprint, max_restore_seconds, stack, phases)
        sha, _changed = digest()  # hashed meanwhile
        findings[:0] = sha_findings()  # first, as the file is what was checked first
        artifact = dataclasses.replace(artifact, sha256=sha)
        phases["total"] = _elapsed(start)  # until the verdict; removing the throwaways is "cleanup"
        cleanup = time.monotonic()
    phases["cleanup"] = _elapsed(cleanup)
    findings += more
    if reference_from is not None:
        extra["reference_file"] = reference_from
    if opened.facts:
        extra["source"] = opened.facts
    return Report(
        verdict=verdict_for(findings), engine=eng.name, reference=reference_kind, backup=artifact,
        phases=phases, tables=tuple(tables), findings=tuple(findings), command="verify",
        started_at=started_at, source=live.display() if live is not None else None,
        target=mask(restore.target) if restore.target else extra["restore"].get("target_kind"),
        extra=extra, kept=kept,
    )


def _public_format(fmt: BackupFormat | None, opened: Any) -> ArtifactFormat:
    """The report's format: the engine's, ``plain-<codec>`` for a compressed plain script (plain-gzip
    since 0.1), ``encrypted`` / ``compressed`` when a layer failed before the format was seen."""
    codecs = [layer for layer in opened.layers if layer not in ("age", "gpg")]
    if fmt is None:
        return "encrypted" if opened.encryption and not codecs else ("compressed" if codecs else "unknown")
    if fmt == "plain" and len(codecs) == 1:
        return _PLAIN_WITH.get(codecs[0], fmt)
    return fmt


# a plain script inside one codec layer (sources.CODECS), as the report names its format
_PLAIN_WITH: dict[str, BackupFormat] = {"gzip": "plain-gzip", "zstd": "plain-zstd", "lz4": "plain-lz4",
                                        "bzip2": "plain-bzip2", "xz": "plain-xz"}


def _manifest_candidates_of(named: str) -> list[str]:
    from restorecheck import sources

    if sources.is_s3(named):
        base, _, name = named.rpartition("/")
        return [f"{base}/{c.name}" for c in manifest_candidates(Path(name))]
    return [str(c) for c in manifest_candidates(named)]


def _manifest_exists(candidate: str) -> bool:
    from restorecheck import sources

    if sources.is_s3(candidate):
        return sources.s3_exists(candidate)
    return _manifest_beside(Path(candidate))


def _load_manifest(named: str, workdir: Any) -> Manifest:
    """A manifest from a path or ``s3://`` (downloaded into the run's directory first)."""
    from restorecheck import sources

    if sources.is_s3(named):
        local = workdir() / ("manifest-" + secrets.token_hex(4) + ".json")
        sources.s3_download(named, local)
        return Manifest.load(local)
    return Manifest.load(named)


def _manifest_beside(candidate: Path) -> bool:
    """A manifest beside the backup exists (a FIFO or directory by that name is exit 2, not skipped)."""
    return require_file(candidate, "the manifest beside the backup", error=BadManifestError,
                        hint="remove it, or give --manifest")


def _empty_backup_report(path: Path, engine: EngineName | None, manifest: str | Path | Manifest | None,
                         started_at: str, start: float, shown: str | None = None) -> Report:
    """An empty file is the extreme of a truncated backup (``pg_dump db > f`` that failed at once,
    a disk that was full): a failed verification (exit 1), not bad input."""
    reference = manifest if isinstance(manifest, Manifest) else _load_manifest(str(manifest), None) if manifest else None
    if reference is None and shown is not None and shown.startswith("s3://"):
        pass  # an empty object: its manifest is not needed to say so
    elif reference is None:
        beside = [c for c in manifest_candidates(path) if _manifest_beside(c)]
        reference = Manifest.load(beside[0]) if beside else None
    name = engine or (reference.engine if reference is not None else
                      "sqlite" if path.suffix.lower() in (".db", ".sqlite", ".sqlite3") else "postgresql")
    findings = registry.convert([Evidence(
        "backup_empty", path.name,
        {} if reference is None or reference.backup is None else {"bytes_expected": reference.backup.bytes},
    )])
    return Report(
        verdict="fail", engine=name, reference="none" if reference is None else "manifest",
        backup=BackupArtifact(shown or str(path.resolve()), "empty", 0, hashlib.sha256(b"").hexdigest()),
        phases={"total": _elapsed(start)}, findings=tuple(findings), command="verify", started_at=started_at,
    )


def drill(
    source: str | DatabaseRef | None = None,
    *,
    engine: EngineName | None = None,
    outdir: str | Path | None = None,
    backup_options: BackupOptions | None = None,
    restore: RestoreOptions | None = None,
    fingerprint: FingerprintOptions | None = None,
    max_restore_seconds: float | None = None,
    scale: int = 1,
    seed: int = 0,
    pg_bin: str | Path | None = None,
) -> Report:
    """Backup, restore, verify, each phase timed. No ``source``: a throwaway source with the known
    dataset (the self-test) of ``engine`` (default postgresql). With a ``source``, an ``engine`` that
    is not the source's is bad input. ``outdir`` keeps the backup and its manifest; else they are removed."""
    restore = restore or RestoreOptions()
    fingerprint = fingerprint or FingerprintOptions()
    backup_options = backup_options or BackupOptions()
    started_at, start = _now_iso(), time.monotonic()
    _check_pg_bin(pg_bin)
    if source is not None:
        source = _as_ref(source, "SOURCE")
        if engine is not None and source.engine != engine:
            raise BadInputError(f"{source.display()} is a {source.engine} database, not {engine}",
                                f"leave out --engine (it is recognised from SOURCE), or give --engine {source.engine}")
    kept_dir = None if outdir is None else prepare_outdir(outdir, backup_options.name)  # before long work
    phases: dict[str, float] = {}
    findings: list[Finding] = []
    with contextlib.ExitStack() as stack:
        target: Target | None = None  # a restore target started ahead (drill), handed to restore()
        if source is None:
            # the self-test restores a dump this run's pg_dump wrote of the dataset this run seeded:
            # trusted by construction (on a server target its objects belong to the URL's role)
            restore = dataclasses.replace(restore, trust_backup=True)
            eng = get_engine(engine or "postgresql", pg_bin=pg_bin or restore.pg_bin)
            check_target(eng.name, restore.target)
            t = time.monotonic()
            # the known dataset: about 7 MiB for an empty database and 1.4 MiB per unit of scale
            made = eng.throwaway_source(restore, stack, size_hint=(8 << 20) + (2 << 20) * scale)
            src, target = made.ref, made.target
            from restorecheck.seed import seed as seed_dataset

            restore.progress("seed the known dataset", 0, None)
            seed_dataset(src, scale=scale, seed=seed, progress=restore.progress)
            phases["seed"] = _elapsed(t)
            source_text = f"self-test ({eng.name}, known dataset, scale {scale}, seed {seed})"
        else:
            src = _as_ref(source)
            eng = engine_for(src, pg_bin=pg_bin or restore.pg_bin)
            check_target(eng.name, restore.target)
            source_text = src.display()
        if kept_dir is None:
            # its removal is registered before it exists: a Ctrl-C or SIGTERM that lands right
            # after the directory is made cannot leave it behind
            out = Path(restore.tmp_root or tempfile.gettempdir()) / f"restorecheck-drill-{secrets.token_hex(6)}"
            stack.callback(shutil.rmtree, out, True)
            out.mkdir(mode=0o700)
            from restorecheck.provisioners.local import record_owner

            record_owner(out)  # so that doctor --sweep can tell a dead run's directory from a live one
        else:
            out = kept_dir
        t = time.monotonic()
        opts = dataclasses.replace(backup_options, fingerprint=fingerprint, progress=restore.progress)
        if source is None:  # the self-test restores into the server its source is on
            artifact, manifest = eng.backup(src, out, opts)
        else:
            # start the restore target while the backup runs; restore() is handed it
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                started = pool.submit(eng.prepare_target, src, restore, stack)
                try:
                    artifact, manifest = eng.backup(src, out, opts)
                finally:
                    error = started.exception()
            if error is not None:
                raise error
            target = started.result()
        if manifest.backup is None:
            manifest = manifest.with_backup(artifact)
        if outdir is not None:
            manifest.save(manifest_path_for(artifact.path), backup_options.file_mode)
        phases["backup"] = _elapsed(t)
        tables, more, extra, kept = _restore_and_check(eng, artifact, manifest, "manifest", None, restore,
                                                 fingerprint, max_restore_seconds, stack, phases,
                                                 key_source=src, target=target)
        findings += more
        extra["backup_kept"] = outdir is not None
        phases["total"] = _elapsed(start)  # until the verdict; removing the throwaways is "cleanup"
        cleanup = time.monotonic()
    phases["cleanup"] = _elapsed(cleanup)
    return Report(
        verdict=verdict_for(findings), engine=eng.name, reference="manifest", backup=artifact,
        phases=phases, tables=tuple(tables), findings=tuple(findings), command="drill",
        started_at=started_at, source=source_text,
        target=mask(restore.target) if restore.target else extra["restore"].get("target_kind"),
        extra=extra, kept=kept,
    )
