"""PostgreSQL: backups with pg_dump in an exported snapshot, restores with pg_restore or psql.

``backup`` opens one READ ONLY REPEATABLE READ transaction on the source, exports its snapshot,
starts ``pg_dump --snapshot`` and fingerprints the source in that same snapshot *while pg_dump
runs* (the fingerprint workers import the snapshot too), so the manifest describes exactly what
the dump holds even while the source keeps taking writes (PITFALLS F1).

``restore`` inspects the backup without a server first (format by content; the archive header
or the plain script's preamble for versions and encoding; the full read check
``pg_restore -f /dev/null`` or the plain-dump trailer checks), provisions a throwaway server of a
major that can load it, creates a database from template0 with the dump's encoding and the
roles the dump names (NOLOGIN), and restores: as the throwaway server's superuser, or on an
existing server (``--target postgresql://``) as an unprivileged role made for the run
(``provisioners/restore_role.py``) unless ``--trust-backup``. Every problem becomes evidence in
the outcome (``checks/`` makes the findings); the scratch database dropped or replaced by the
restore is an error (README, threat model).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from restorecheck import pgconn
from restorecheck.dburl import DatabaseRef, PostgresRef, mask
from restorecheck.engines import pg_dbprops, pg_needs
from restorecheck.engines import pg_dump as pgd
from restorecheck.engines.base import (
    BackupOptions,
    FingerprintOptions,
    ProgressFn,
    RestoreOptions,
    RestoreOutcome,
    Target,
    ThrowawaySource,
    backup_files,
    in_checksum_mode_of,
    no_progress,
)
from restorecheck.errors import (
    BackupNotFoundError,
    BadInputError,
    EnvironmentFailure,
    ProvisionError,
    ScratchDatabaseReplacedError,
    SourceUnreachableError,
    ToolNotFoundError,
    first_line,
)
from restorecheck.evidence import Evidence
from restorecheck.model import ArtifactFormat, BackupArtifact, BackupFormat, EngineName, Finding, Manifest
from restorecheck.process import PgInstallation, choose, discover
from restorecheck.provisioners.base import DatabaseIdentity, check_database_identity, database_identity
from restorecheck.provisioners.restore_role import (
    RestoreRole,
    create_restore_role,
    drop_restore_roles,
    grant_roles,
    password_changed,
)
from restorecheck.runner import run
from restorecheck.sandbox import set_pdeathsig

log = logging.getLogger("restorecheck")

@dataclasses.dataclass
class Inspection:
    """What restorecheck learnt about a backup before restoring it."""

    format: ArtifactFormat
    evidence: list[Evidence] = dataclasses.field(default_factory=list)
    header: pgd.ArchiveHeader = dataclasses.field(default_factory=pgd.ArchiveHeader)
    roles: set[str] = dataclasses.field(default_factory=set)
    script: Path | None = None  # the SQL script psql restores (plain, or decompressed gzip)
    readable: bool = True  # False: nothing can be restored from it at all
    workdir: Path | None = None  # restorecheck's own temporary directory for this backup
    # what the restore acts on: the version of the pg_restore that read the archive's list (it
    # restores it too); pg_dump -Z lz4|zstd (the target's pg_restore must read it); the locale of the
    # dump's CREATE DATABASE line (pg_dump -C, every archive)
    reader: str | None = None
    member_compression: str | None = None
    dump_locale: dict[str, str] | None = None
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)  # the rest, for the report
    jail: Any = None  # the ToolJail the tools that read this backup run in (engines/pg_jail.py)
    edits: dict[int, bytes] = dataclasses.field(default_factory=dict)  # plain: PlainScan.edits
    texts: dict[str, str] = dataclasses.field(default_factory=dict)  # archive: pg_restore --list/--schema-only
    # installations with pg_restore, newest first (a newer pg_restore reads older archives):
    # looked up once per inspection
    readers: list[PgInstallation] = dataclasses.field(default_factory=list)
    db_properties: Any = None  # pg_dbprops.DumpProperties: what the dump carries about its database

    def report_facts(self) -> dict[str, Any]:
        """``facts`` and the typed fields above, under the names the report has always used."""
        typed = {"member_compression": self.member_compression, "dump_locale": self.dump_locale,
                 "reader": self.reader}
        return {**self.facts, **{k: v for k, v in typed.items() if v is not None}}


@dataclasses.dataclass
class _PendingProperties:
    """What ``apply_database_properties`` needs after the restored copy was fingerprinted."""

    props: Any  # pg_dbprops.DumpProperties
    admin: PostgresRef  # reads the catalog (shared: any database of the server)
    apply_as: PostgresRef  # the role that restored the dump, in the scratch database
    dbname: str
    public_connect_withheld: bool  # server targets: CONNECT, TEMPORARY revoked from PUBLIC on the scratch database
    unprivileged: bool


class PostgresEngine:
    """The Engine protocol (engines/base.py) for PostgreSQL."""

    name: ClassVar[EngineName] = "postgresql"

    def __init__(self, pg_bin: str | Path | None = None) -> None:
        self.pg_bin = pg_bin  # configuration only: the engine keeps no state between calls

    # --- format and fingerprint ------------------------------------------------------------

    def detect_format(self, path: Path) -> BackupFormat | None:
        return pgd.detect_format(Path(path))

    def fingerprint(self, db: DatabaseRef, options: FingerprintOptions, *,
                    ranges_from: Manifest | None = None) -> Manifest:
        from restorecheck.engines.pg_fingerprint import fingerprint_postgres

        if not isinstance(db, PostgresRef):
            raise BadInputError(f"{db} is not a PostgreSQL database")
        return fingerprint_postgres(db, options, ranges_from=ranges_from)

    def settle_definitions(self, outcome: RestoreOutcome, restored: Manifest, reference: Manifest
                           ) -> tuple[Manifest, dict[str, Any]]:
        """Definitions whose text differs from the reference's: parsed again on the restored server
        (engines/pg_deparse.py), as the role that restored, in transactions that are rolled back."""
        from restorecheck.engines import pg_deparse

        ref = outcome.restored_as or outcome.restored
        if not isinstance(ref, PostgresRef) or not reference.schema or not restored.schema:
            return restored, {}
        settled = pg_deparse.settle(reference.schema, restored.schema, pg_deparse.connector(ref),
                                    local=outcome.info.get("target_kind") in ("local", "docker"))
        if not settled.tried and not settled.skipped:
            return restored, {}
        return dataclasses.replace(restored, schema=settled.schema), settled.info()

    def self_check_facts(self, restored: DatabaseRef, manifest: Manifest) -> Manifest:
        """The restored copy's manifest already holds what its self-checks need."""
        return manifest

    def apply_database_properties(self, outcome: RestoreOutcome, manifest: Manifest, *,
                                  reference: Manifest | None = None) -> tuple[Manifest, list[Evidence]]:
        """Give the restored database the properties its backup carries (settings, per-role settings,
        comment, privileges, connection limit), re-issued by ``pg_dbprops.apply_statements`` as the
        role that restored the dump; then read them back into ``manifest.database_properties``.

        Called once the restored copy is fingerprinted, so that none of them reaches restorecheck's
        own sessions. The owner and default tablespace are never applied (the scratch database keeps
        its identity): they are compared as the backup carries them. Whatever could not be applied
        here counts as carried; what was refused or not applied is evidence for ``checks.restore``."""
        import psycopg

        pending = outcome.carried_properties
        if not isinstance(pending, _PendingProperties):
            return manifest, []
        props = pending.props
        evidence = [Evidence("property_refused", "database",
                             {"statement": r.statement, "reason": r.reason, "hostile": r.hostile})
                    for r in props.refused]
        not_applied: dict[str, str] = {}
        try:
            with pgconn.connect(pending.admin.conninfo(), autocommit=True, connect_timeout=15) as admin:
                row = admin.execute("SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database "
                                    "WHERE datname = %s", (pending.dbname,)).fetchone()
                scratch_owner = str(row[0]) if row else ""
                statements = pg_dbprops.apply_statements(props, pending.dbname, scratch_owner)
                if statements:
                    with pgconn.connect(pending.apply_as.conninfo(), autocommit=True, connect_timeout=15) as conn:
                        for a in statements:
                            try:
                                conn.execute(a.statement)
                            except psycopg.Error as exc:
                                not_applied[a.name] = first_line(exc)
                current = pg_dbprops.read_properties(admin, pending.dbname) or {}
        except psycopg.Error as exc:
            evidence.append(Evidence("properties_unreadable", "database", {"error": first_line(exc)}))
            return manifest, evidence
        for name, error in not_applied.items():
            evidence.append(Evidence("property_not_applied", "database",
                                     {"property": name, "error": error, "unprivileged": pending.unprivileged}))
        restored_props = dict(current)
        restored_props["owner"] = props.owner
        restored_props["tablespace"] = (props.tablespace or "pg_default") if props.created else None
        privileges = list(restored_props.get("privileges") or [])
        if pending.public_connect_withheld:  # revoked by restorecheck (PgServer.fresh_database), not the backup
            privileges = sorted({*privileges, *(f"PUBLIC={p}" for p in ("CONNECT", "TEMPORARY")
                                                if not props.revokes_from_public(p))})
        restored_props["privileges"] = privileges
        overlay = pg_dbprops.carried_overlay(props, not_applied)
        for key in ("settings", "role_settings"):
            if key in overlay:
                merged = dict(restored_props.get(key) or {})
                for k, v in overlay[key].items():
                    merged[k] = {**merged.get(k, {}), **v} if isinstance(v, dict) else v
                restored_props[key] = merged
        for key in ("comment", "connection_limit"):
            if key in overlay:
                restored_props[key] = overlay[key]
        restored_props["carried"] = props.carried
        restored_props["applied"] = [a.name for a in statements if a.name not in not_applied]
        if not_applied:
            restored_props["not_applied"] = dict(not_applied)
        if reference is None or reference.database_properties is None:
            evidence.append(Evidence("properties_carried", "database",
                                     {"carried": bool(props.carried), "summary": props.summary()}))
        return dataclasses.replace(manifest, database_properties=restored_props), evidence

    def narrow(self, reference: DatabaseRef, restored: DatabaseRef, findings: Sequence[Finding], *,
               reference_manifest: Manifest | None = None, restored_manifest: Manifest | None = None,
               max_keys: int = 20) -> list[Finding]:
        """Bisect the tables with a row_count or checksum finding down to their differing keys."""
        from restorecheck.engines.pg_narrow import narrow_table

        if not (isinstance(reference, PostgresRef) and isinstance(restored, PostgresRef)
                and reference_manifest is not None and restored_manifest is not None):
            return list(findings)
        options = in_checksum_mode_of(reference_manifest, FingerprintOptions())
        out = []
        for f in findings:
            ta, tb = reference_manifest.table(f.object), restored_manifest.table(f.object)
            if f.check in ("row_count", "checksum") and ta is not None and tb is not None and ta.key \
                    and ta.checksum_mode == tb.checksum_mode:
                try:
                    keys = narrow_table(reference, restored, ta, tb, max_keys=max_keys, options=options)
                    f = dataclasses.replace(f, details={**f.details, "keys": keys})
                except Exception as exc:  # the tables differ in shape: the schema findings say how
                    first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
                    f = dataclasses.replace(f, details={**f.details, "keys_error": first})
            out.append(f)
        return out

    # --- backup ----------------------------------------------------------------------------

    def _client_tools(self, min_major: int | None, need: tuple[str, ...]) -> PgInstallation:
        return choose(discover(self.pg_bin), min_major=min_major, need=need,
                      prefer_origin="--pg-bin" if self.pg_bin else None)

    def backup(self, source: DatabaseRef, outdir: Path,
               options: BackupOptions) -> tuple[BackupArtifact, Manifest]:
        import psycopg

        from restorecheck.engines.pg_session import pin_client_encoding

        if not isinstance(source, PostgresRef):
            raise BadInputError(f"{source} is not a PostgreSQL database")
        fmt = options.format
        if fmt not in pgd.FORMAT_FLAG:
            raise BadInputError(f"unknown backup format {fmt!r}", "use custom, directory, tar or plain")
        if options.jobs > 1 and fmt != "directory":
            raise BadInputError("--jobs above 1 needs --format directory",
                                "pg_dump runs in parallel only for the directory format")
        out, _ = backup_files(Path(outdir), options.name, source.dbname or source.params.get("user"),
                              pgd.SUFFIX[fmt] + (pgd.plain_compression_suffix(options.compress) if fmt == "plain" else ""))
        fp_opts = options.fingerprint
        progress = options.progress
        try:
            conn = pgconn.connect(source.conninfo(), connect_timeout=15, autocommit=True)
        except psycopg.Error as exc:
            raise SourceUnreachableError(
                f"cannot connect to the source {source.display()}: {first_line(exc)}",
                "check the URL, the password (PGPASSWORD or ~/.pgpass) and that the server is up",
            ) from None
        started = time.monotonic()
        try:
            with conn:
                pin_client_encoding(conn)  # a SQL_ASCII source would return the snapshot id as bytes
                conn.execute("SET default_transaction_read_only = on")
                conn.execute("SELECT set_config('lock_timeout', %s, false), "
                             "set_config('statement_timeout', %s, false)",
                             (fp_opts.lock_timeout, fp_opts.statement_timeout))
                # autocommit connection + an explicit BEGIN: psycopg must not open its own transaction
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                row = conn.execute(
                    "SELECT pg_export_snapshot(), current_setting('server_version'), "
                    "current_setting('server_version_num')::int, pg_is_in_recovery(), current_user, "
                    "r.rolsuper, r.rolbypassrls, pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, "
                    "current_database() "
                    "FROM pg_roles r, pg_database d WHERE r.rolname = current_user "
                    "AND d.datname = current_database()"
                ).fetchone()
                assert row is not None
                (snapshot, server_version, version_num, in_recovery, role, rolsuper, bypassrls,
                 encoding, collate, ctype, dbname) = row
                # Sequences are not MVCC (PITFALLS F2): read them now, before pg_dump does, so that
                # the dump's setval values are never behind the manifest's (compared with >=).
                early_sequences = _sequence_values(conn)
                tools = self._client_tools(version_num // 10000, ("pg_dump",))
                # --encoding: else pg_dump writes in the session's client_encoding, which a
                # PGCLIENTENCODING or an ALTER DATABASE ... SET client_encoding can make differ from
                # the database's, and verify would restore into a database of that other encoding
                argv = pgd.pg_dump_argv(tools.tool("pg_dump"), fmt=fmt, output=out, snapshot=snapshot,
                                        jobs=options.jobs, compress=options.compress,
                                        lock_wait_timeout=_as_ms(fp_opts.lock_timeout),
                                        extra=[f"--encoding={encoding}",
                                               # database properties (settings, comment, ACL, owner):
                                               # archives hold them either way, a plain script only
                                               # with --create (pg_dump 11+)
                                               *(["--create"] if fmt == "plain" else []),
                                               *(f"--exclude-table-data={p}" for p in options.exclude_table_data)])
                env = source.child_env()
                env.setdefault("PGDATABASE", dbname)
                progress("backup: pg_dump", 0, None)

                cancel = threading.Event()

                def dump_and_digest() -> tuple[pgd.ToolResult, str | None]:
                    # the sha256 is taken as soon as pg_dump is done, while the fingerprint may
                    # still be running
                    # umask 077: the backup is never readable by others, not even while it is written
                    res = run(argv, env=env, inherit_env=True, stdout="discard", cancel=cancel,
                              label="backup: pg_dump", poll=0.5,
                              on_tick=pgd.ticker(progress, "backup: pg_dump", size_of=out),
                              popen_kwargs={"umask": 0o077, "preexec_fn": set_pdeathsig})
                    ok = (res.returncode == 0 and "error:" not in res.stderr and out.exists()
                          and not cancel.is_set())
                    return res, pgd.sha256_of(out) if ok else None

                with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                    fut = pool.submit(dump_and_digest)
                    fp_error: BaseException | None = None
                    manifest: Manifest | None = None
                    try:
                        manifest = self.fingerprint(source, dataclasses.replace(fp_opts, snapshot=snapshot))
                    except BaseException as exc:  # Ctrl-C, SIGTERM or a failure: stop pg_dump, re-raise
                        fp_error = exc
                        cancel.set()
                    try:
                        result, digest = fut.result()
                    except BaseException:  # Ctrl-C while waiting for pg_dump: stop it, do not wait
                        cancel.set()
                        raise
                conn.execute("ROLLBACK")  # read only: nothing to commit; ends the exported snapshot
                if fp_error is not None:
                    _remove(out)
                    raise fp_error
                assert manifest is not None
        except psycopg.Error as exc:
            _remove(out)
            raise SourceUnreachableError(
                f"reading the source {source.display()} failed: {first_line(exc)}",
                "check that the role may read every table (superuser or BYPASSRLS for RLS tables)",
            ) from None
        except BaseException:
            _remove(out)
            raise
        if result.returncode != 0 or "error:" in result.stderr:
            _remove(out)
            raise SourceUnreachableError(
                f"pg_dump failed (exit {result.returncode}): {mask(_tail(result.stderr))}",
                "read pg_dump's message above; the backup was not kept",
            )
        _set_mode(out, options.file_mode)
        size = pgd.backup_bytes(out)
        artifact = BackupArtifact(path=str(out.resolve()), format=fmt, bytes=size, sha256=digest,
                                  written_here=True)
        warnings = [ln for ln in result.stderr.splitlines() if "warning" in ln.lower()]
        facts = dict(manifest.facts)
        facts.update({
            "pg_dump_version": tools.version,
            "pg_dump_options": {"format": fmt, "jobs": options.jobs, "compress": options.compress,
                                "snapshot": snapshot, "create": fmt == "plain"},
            "pg_dump_seconds": round(result.seconds, 3),
            "pg_dump_warnings": [mask(w) for w in warnings[:20]],
            "in_recovery": bool(in_recovery),
            "dump_role": {"name": role, "rolsuper": bool(rolsuper), "rolbypassrls": bool(bypassrls)},
            "encoding": encoding,
            "lc_collate": collate,
            "lc_ctype": ctype,
            "backup_seconds": round(time.monotonic() - started, 3),
        })
        sequences = {name: {**state, **early_sequences.get(name, {})}
                     for name, state in manifest.sequences.items()}
        # sequence values were read before pg_dump read them: a restore may be ahead, not behind
        manifest = dataclasses.replace(manifest, facts=facts, sequences=sequences, sequences_at_least=True,
                                       snapshot=manifest.snapshot or snapshot,
                                       server_version=manifest.server_version or str(server_version))
        manifest = manifest.with_backup(artifact)  # the pipeline saves it beside the backup
        return artifact, manifest

    # --- inspection without a server ---------------------------------------------------------

    def _readers(self) -> list[PgInstallation]:
        """Installations with pg_restore, newest first (a newer pg_restore reads older archives)."""
        insts = [i for i in discover(self.pg_bin) if "pg_restore" in i.tools]
        if not insts:
            raise ToolNotFoundError(
                "no pg_restore was found (looked at --pg-bin, PATH, pg_config, /usr/lib/postgresql/N/bin)",
                "install the PostgreSQL client, pip install 'restorecheck[embedded]', or give --pg-bin DIR",
            )
        return sorted(insts, key=_version_key, reverse=True)

    def inspect(self, artifact: BackupArtifact, workdir: Path, jail: Any, *,
                progress: ProgressFn = no_progress, readers: list[PgInstallation] | None = None) -> Inspection:
        """The quick part of the inspection: the format, the versions and the encoding.

        Archives: ``pg_restore --list`` (by the newest pg_restore that can read it) and the
        script preamble. Plain: the first lines; gzip is first decompressed into ``workdir`` as a
        separate step, with gzip's own error kept as evidence (``gzip_damaged``; PITFALLS A5).
        """
        path = Path(artifact.path)
        fmt: ArtifactFormat = artifact.format or pgd.detect_format(path) or "unknown"
        insp = Inspection(format=fmt, workdir=workdir, jail=jail, readers=readers or self._readers())
        obj = path.name
        if fmt == "tar":
            damage = pgd.tar_damage(path)
            if damage:  # pg_restore would hang on it, not fail
                insp.readable = False
                insp.evidence.append(Evidence("tar_damaged", obj, {"damage": damage}))
                return insp
        if fmt in pgd.ARCHIVE_FORMATS:
            header, reader, err = None, None, ""
            codec = pgd.member_codec(path, fmt)
            readers = insp.readers
            if codec in ("lz4", "zstd"):  # pg_dump -Z lz4|zstd (PostgreSQL 16+): not every pg_restore reads it
                from restorecheck.pg_hosting import archive_codecs, codec_remedy

                able = [i for i in readers if codec in archive_codecs(i)]
                if not able:
                    raise ToolNotFoundError(
                        f"{path.name}'s data blocks are compressed with {codec} (pg_dump -Z {codec}) and no "
                        "pg_restore here reads them: " + "; ".join(
                            f"PostgreSQL {i.version} ({i.origin}) "
                            + ("is older than 16" if i.major < 16 else f"is built without {codec}")
                            for i in readers),
                        codec_remedy(codec))
                readers = able
                insp.member_compression = codec
            for inst in readers:
                inst = self._reachable(inst, jail)
                inp = jail.input(path, need_path=fmt == "directory")
                res = jail.run(inst, pgd.pg_restore_list_argv(inst.tool("pg_restore"), inp.path),
                               source=path, inp=inp, capture_stdout=True)
                if res.returncode == 0:
                    header, reader = pgd.parse_archive_list(res.stdout), inst
                    break
                err = err or _tail(res.stderr)
            if header is None or reader is None:
                if "unsupported version" in err and _plausible_archive_version(path):
                    # too new for our pg_restore: not a bad backup (a garbled version byte is)
                    newest = insp.readers[0]
                    raise ToolNotFoundError(
                        f"{path.name} was written by a newer pg_dump than any pg_restore found here "
                        f"(newest: {newest.version} in {newest.bindir}): {mask(err)}",
                        "install a newer PostgreSQL client or give --pg-bin DIR",
                    )
                insp.readable = False
                insp.evidence.append(Evidence("toc_unreadable", obj, {"error": err}))
                return insp
            empty = jail.give("empty.list", "")
            inp = jail.input(path, need_path=fmt == "directory")
            pre = jail.run(reader, pgd.pg_restore_preamble_argv(reader.tool("pg_restore"), inp.path, empty,
                                                                create=True),
                           source=path, inp=inp, capture_stdout=True)
            preamble = pgd.parse_preamble(pre.stdout)
            insp.dump_locale = pgd.database_locale_in_sql(pre.stdout)
            insp.header = dataclasses.replace(header, encoding=preamble.get("encoding"))
            insp.reader = reader.version
            insp.facts["toc_entries"] = dict(header.entry_counts)
            if not header.entry_counts.get("TABLE DATA") and not header.entry_counts.get("BLOBS"):
                insp.evidence.append(Evidence("archive_without_data", obj))
            insp.script = path
            return insp
        if fmt in pgd.PLAIN_FORMATS:
            script = path
            if fmt == "plain-gzip":
                script = workdir / "decompressed.sql"
                gz_error = pgd.gunzip_to(path, script, progress=progress)
                if gz_error:
                    insp.evidence.append(Evidence("gzip_damaged", obj, {"error": gz_error}))
                inner = pgd.detect_format(script)
                if inner in ("custom", "tar"):  # pg_dump -Fc | gzip: an archive inside the gzip
                    nested = self.inspect(BackupArtifact(str(script), inner, 0, None), workdir, jail,
                                          progress=progress, readers=insp.readers)
                    nested.evidence[:0] = insp.evidence
                    nested.facts["gzip_of"] = inner
                    return nested
            with open(script, "rb") as f:
                head = f.read(64 * 1024).decode("utf-8", "replace")
            preamble = pgd.parse_preamble(head)
            insp.dump_locale = pgd.database_locale_in_sql(head)  # pg_dump -C
            insp.script = script
            insp.readable = script.stat().st_size > 0
            insp.header = pgd.ArchiveHeader(format=fmt, dumped_from=preamble.get("dumped_from"),
                                            dumped_by=preamble.get("dumped_by"),
                                            encoding=preamble.get("encoding"))
            return insp
        raise BadInputError(f"{path} is not a pg_dump backup this engine can restore")

    def _read_check(self, insp: Inspection, obj: str,
                    cancel: threading.Event | None = None) -> list[Evidence]:
        """Read every data block of an archive without a server (PITFALLS B2, B4)."""
        assert insp.script is not None
        reader = self._reader_for(insp)
        inp = insp.jail.input(insp.script, need_path=insp.format == "directory")
        read = insp.jail.run(reader, pgd.pg_restore_readall_argv(reader.tool("pg_restore"), inp.path),
                             source=insp.script, inp=inp, cancel=cancel)
        if cancel is not None and cancel.is_set():
            return []
        if read.returncode != 0 or "error:" in read.stderr:
            return [Evidence("archive_read_failed", obj,
                             {"stderr_tail": _tail(read.stderr), "returncode": read.returncode})]
        return []

    def _reader_for(self, insp: Inspection) -> PgInstallation:
        for inst in insp.readers:
            if inst.version == insp.reader:
                return self._reachable(inst, insp.jail)
        return self._reachable(insp.readers[0], insp.jail)

    def _database_properties_sql(self, insp: Inspection) -> str:
        """The SQL of the archive's own database entries (DATABASE, DATABASE PROPERTIES, its COMMENT and
        ACL), which pg_restore prints only with --create; read in the jail, parsed by pg_dbprops, never run."""
        reader = self._reader_for(insp)
        assert insp.script is not None
        inp = insp.jail.input(insp.script, need_path=insp.format == "directory")
        listing = insp.jail.run(reader, pgd.pg_restore_list_argv(reader.tool("pg_restore"), inp.path, create=True),
                                source=insp.script, inp=inp, capture_stdout=True)
        entries = pgd.database_entries(listing.stdout) if listing.returncode == 0 else []
        if not entries:
            return ""
        use = insp.jail.give("database-entries.list", "\n".join(entries) + "\n")
        out = insp.jail.run(reader, pgd.pg_restore_preamble_argv(reader.tool("pg_restore"), inp.path, use,
                                                                 create=True),
                            source=insp.script, inp=inp, capture_stdout=True)
        return out.stdout if out.returncode == 0 else ""

    def _archive_text(self, insp: Inspection, kind: str) -> str:
        """``pg_restore --list`` (``kind`` "list") or ``--schema-only`` ("schema") of the archive, run
        once in the jail and kept: the needs, the roles and the large objects all read them."""
        if kind not in insp.texts:
            reader = self._reader_for(insp)
            assert insp.script is not None
            inp = insp.jail.input(insp.script, need_path=insp.format == "directory")
            build = pgd.pg_restore_list_argv if kind == "list" else pgd.pg_restore_schema_argv
            insp.texts[kind] = insp.jail.run(reader, build(reader.tool("pg_restore"), inp.path),
                                             source=insp.script, inp=inp, capture_stdout=True).stdout
        return insp.texts[kind]

    @staticmethod
    def _reachable(inst: PgInstallation, jail: Any) -> PgInstallation:
        """``inst`` as the jail's unprivileged user can run it (a safe copy where it cannot reach it)."""
        from restorecheck.provisioners.local import reachable_installation

        if jail is None or jail.sandbox.user is None:
            return inst
        return reachable_installation(inst, jail.sandbox.user)

    @staticmethod
    def _jail(options: RestoreOptions, stack: contextlib.ExitStack) -> Any:
        from restorecheck.engines.pg_jail import ToolJail
        from restorecheck.sandbox import resolve

        sb = resolve(options.sandbox, os.environ.get("RESTORECHECK_RUN_AS"))
        return ToolJail.create(sb, options.tmp_root, stack)

    def _scan(self, insp: Inspection, obj: str,
              progress: ProgressFn) -> tuple[list[Evidence], set[str], dict[str, Any]]:
        """The slow part: roles the dump names, and (plain) the completeness checks of the whole file."""
        assert insp.script is not None
        if insp.format in pgd.ARCHIVE_FORMATS:
            reader = self._reader_for(insp)
            jail = insp.jail
            inp = jail.input(insp.script, need_path=insp.format == "directory")
            schema_sql = self._archive_text(insp, "schema")
            roles = pgd.roles_in_sql(schema_sql)
            # large objects' owners and grantees: not in --schema-only (pg_restore counts LOs as data)
            lo_entries = pgd.large_object_entries(self._archive_text(insp, "list"))
            if lo_entries:
                use_list = jail.give("large-objects.list", "\n".join(lo_entries) + "\n")
                los = jail.run(reader, pgd.pg_restore_preamble_argv(reader.tool("pg_restore"), inp.path, use_list),
                               source=insp.script, inp=inp, capture_stdout=True)
                roles |= pgd.roles_in_sql(los.stdout)
            insp.db_properties = pg_dbprops.parse(self._database_properties_sql(insp))
            roles |= insp.db_properties.roles()
            return [], roles, {"tablespaces": sorted(pgd.tablespaces_in_sql(schema_sql)),
                               "superuser_owners": sorted(pgd.superuser_owners_in_sql(schema_sql))}
        scan = pgd.scan_plain(insp.script, progress=progress)
        facts: dict[str, Any] = {"copy_blocks": scan.copy_blocks, "tablespaces": sorted(scan.tablespaces),
                                 "superuser_owners": sorted(scan.superuser_owners)}
        if scan.restrict_key:
            facts["restrict"] = True
        if scan.database_statements:
            # pg_dump -C: restore into our database, not into one the script creates and connects to
            facts["database_lines_left_out"] = scan.database_statements
        if scan.clean_statements:
            # pg_dump -c: its leading DROPs meet an empty database, as with --if-exists
            facts["clean_drops_made_if_exists"] = scan.clean_statements
        if scan.meta_commands:
            facts["meta_commands"] = scan.meta_commands
        insp.edits = scan.edits
        evidence = [scan.evidence(obj)]
        if scan.cluster_dump:  # pg_dumpall: one database's properties cannot be told from another's
            insp.db_properties = pg_dbprops.DumpProperties()
        else:
            insp.db_properties = pg_dbprops.parse("".join(scan.database_sql))
            if scan.database_sql_bytes > pgd.MAX_DATABASE_SQL:
                insp.db_properties.refused.append(pg_dbprops.Refused(
                    "...", f"the database statements exceed {pgd.MAX_DATABASE_SQL} bytes; the rest was not read",
                    True))
        return evidence, scan.roles | insp.db_properties.roles(), facts

    # --- restore ---------------------------------------------------------------------------

    def restore(self, artifact: BackupArtifact, options: RestoreOptions, stack: contextlib.ExitStack, *,
                target: Target | None = None) -> RestoreOutcome:
        """Inspect, provision (or use ``target`` when it can host the dump), create roles, restore.
        The full read check of an archive and the scan of a plain dump run while the target starts
        (and the read check while it restores). Every tool that reads the backup runs in the
        restore's ``ToolJail`` (engines/pg_jail.py)."""
        from restorecheck.provisioners import provision_postgres
        from restorecheck.provisioners.local import record_owner

        path = Path(artifact.path)
        if not path.exists():
            raise BackupNotFoundError(f"backup {path} does not exist", "check the path")
        progress = options.progress
        workdir = Path(tempfile.mkdtemp(prefix="restorecheck-work-", dir=options.tmp_root))
        stack.callback(shutil.rmtree, workdir, True)
        os.chmod(workdir, 0o700)
        record_owner(workdir)
        jail = self._jail(options, stack)
        obj = path.name
        progress("inspect the backup", 0, None)
        t0 = time.monotonic()
        insp = self.inspect(artifact, workdir, jail, progress=progress)
        # what the dump needs (extensions, ICU collations, XML): a target that has it, or exit 3
        needs = pg_needs.dump_needs(insp.format, insp.script,
                                    (lambda kind: self._archive_text(insp, kind))
                                    if insp.format in pgd.ARCHIVE_FORMATS and insp.readable else None,
                                    readable=insp.readable, min_major=insp.header.min_major,
                                    encoding=insp.header.encoding)
        if insp.member_compression:  # pg_dump -Z lz4|zstd: the target's pg_restore must read it
            needs = dataclasses.replace(needs, archive_codec=insp.member_compression)
        timings = {"inspect": time.monotonic() - t0}
        evidence = list(insp.evidence)
        info: dict[str, Any] = {"format": insp.format, "sandbox": jail.sandbox.facts()}
        if jail.sandbox.note and jail.sandbox.requested == "auto":  # asked for with --sandbox none: a fact only
            evidence.append(Evidence("sandbox_missing", obj, {"note": jail.sandbox.note, "sandbox": jail.sandbox.kind}))
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        stack.callback(pool.shutdown, True, cancel_futures=True)
        cancel = threading.Event()
        stack.callback(cancel.set)  # runs first on the way out: kills a read check still running
        f_read = f_scan = None
        if insp.readable:
            f_scan = pool.submit(self._scan, insp, obj, progress)
            if insp.format in pgd.ARCHIVE_FORMATS:
                if artifact.written_here:
                    # written by this engine's pg_dump moments ago (exit 0, digest taken): the
                    # restore reads every block anyway, so the separate read is skipped
                    info["read_check"] = "skipped: written by this run's pg_dump"
                else:
                    f_read = pool.submit(self._read_check, insp, obj, cancel)
                    info["read_check"] = "pg_restore --file=/dev/null"
        psql: PgInstallation | None = None
        if insp.readable and insp.format in pgd.PLAIN_FORMATS:
            psql = self._restricting_psql(insp.readers)  # before a target is started: exit 3 at once without one
        min_major = insp.header.min_major
        t0 = time.monotonic()
        server = target.handle if target is not None and target.engine == self.name else None
        if server is None or target is None or target.where != (options.target or "local") or (
            min_major is not None and server.major < min_major
        ) or pg_needs.server_lacks(server, needs):
            progress("provision target", 0, None)
            server = stack.enter_context(provision_postgres(
                options.target, min_major=min_major, pg_bin=options.pg_bin or self.pg_bin, keep=options.keep,
                tmp_root=options.tmp_root, start_timeout=options.start_timeout, sandbox=options.sandbox,
                needs=needs, size_hint=restored_size_hint(insp, path, options, artifact)))
        timings["provision"] = time.monotonic() - t0
        t0 = time.monotonic()
        tjail = jail.for_target(rw=server.tool_binds_rw, ro=server.tool_binds_ro, network=server.tool_network)
        tools = self._reachable(server.tools or self._client_tools(server.major, ("pg_restore", "psql")), jail)
        encoding = insp.header.encoding or "UTF8"
        restorer = _unprivileged_restorer(server, options, stack)  # before the database it owns
        created: set[str] = set()
        if server.kind != "local" and not options.keep:
            # registered before the database, so it runs after the database is dropped (LIFO);
            # a throwaway cluster takes its roles with it.
            stack.callback(_drop_roles, server, created)
        db = stack.enter_context(_fresh_database(server, encoding, keep=options.keep,
                                                 locale=database_locale(insp, options), notes=(evidence, info),
                                                 owner=restorer.owner if restorer else None))
        scratch = _scratch_identity(server, db)
        info.update({
            "server_version": server.version, "target_kind": server.kind,
            "tools_version": tools.version, "dumped_from": insp.header.dumped_from,
            "dumped_by": insp.header.dumped_by, "compression": insp.header.compression,
            "encoding": encoding, "database": db.dbname, "needs": needs.to_dict(), **insp.report_facts(),
        })
        if server.info.get("datadir_on"):  # a local cluster: on disk, or in memory when small
            info["datadir_on"] = server.info["datadir_on"]
        connect = None
        if options.keep:  # the restored database, not the server's 'postgres'; the password in a passfile
            passfile = server.info.get("passfile")
            connect = (f"PGPASSFILE={passfile} " if passfile else "") + \
                f"psql '{PostgresRef(dict(db.params)).display()}'"
        roles: set[str] = set()
        if f_scan is not None:
            scan_evidence, roles, scan_facts = f_scan.result()
            evidence.extend(scan_evidence)
            info.update(scan_facts)
        # a role owning what only a superuser may own is one on the source: so on a throwaway
        # cluster, where the dump runs as superuser anyway (never on a server of the user's)
        superusers = set(info.pop("superuser_owners", [])) if server.kind in ("local", "docker") else set()
        _create_roles(server, roles, created, superusers)
        info["roles_created"] = sorted(created)
        if superusers & created:
            info["roles_created_superuser"] = sorted(superusers & created)
        not_granted = _grant_roles(server, restorer, roles, created, info)
        info["tablespaces_created"] = _create_tablespaces(server, info.pop("tablespaces", []), obj, evidence)
        timings["database_and_roles"] = time.monotonic() - t0
        restore_as = restorer.ref(db.dbname or "") if restorer else db
        env = restore_as.child_env()
        info["event_triggers_quiet"] = _quiet_event_triggers(restore_as, env)
        if options.restore_timeout is not None:
            tjail.deadline = time.monotonic() + options.restore_timeout
        res: pgd.ToolResult | None = None
        if not insp.readable:
            evidence.append(Evidence("nothing_restored", obj))
        elif insp.format in pgd.ARCHIVE_FORMATS:
            assert insp.script is not None
            jobs = options.jobs if insp.format in ("custom", "directory") else 1
            inp = tjail.input(insp.script, need_path=insp.format == "directory" or jobs > 1)
            argv = pgd.pg_restore_argv(tools.tool("pg_restore"), inp.path, dbname=db.dbname or "",
                                       fmt=insp.format, jobs=jobs)
            res = tjail.run(tools, argv, source=insp.script, inp=inp, env=env, restore=True,
                            label="restore: pg_restore", progress=progress)
            errors, ignored = pgd.parse_pg_restore_stderr(res.stderr)
            if not res.timed_out:
                _raise_if_out_of_space([e.message for e in errors], server)
                pg_needs.raise_if_environment_limited([e.message for e in errors], server.version, server.kind)
                evidence.append(pgd.tool_errors("pg_restore", res.returncode, res.stderr, errors, ignored))
            info["restore_tool"] = "pg_restore"
        else:
            assert insp.script is not None and psql is not None
            info["psql_version"] = psql.version
            psql = self._reachable(psql, jail)
            key = secrets.token_hex(24)  # psql's \restrict key: the dump cannot know it
            argv = pgd.psql_restore_argv(psql.tool("psql"), None, dbname=db.dbname or "")
            res = tjail.run(psql, argv, env=env, feed=pgd.restricted_script(insp.script, key, insp.edits),
                            restore=True, label="restore: psql", progress=progress)
            errors = pgd.parse_psql_stderr(res.stderr, line_offset=pgd.RESTRICT_LINES)
            if not res.timed_out:
                _raise_if_out_of_space([e.message for e in errors], server)
                pg_needs.raise_if_environment_limited([e.message for e in errors], server.version, server.kind)
                evidence.append(pgd.tool_errors("psql", res.returncode, res.stderr, errors))
            info["restore_tool"] = "psql"
            info["psql_restricted"] = True
        info.update(jail.facts)
        seconds = res.seconds if res is not None else 0.0
        if res is not None and res.timed_out:
            info["timed_out"] = True
            evidence.append(Evidence("restore_timed_out", obj, {
                "tool": info["restore_tool"], "seconds": round(seconds, 3), "timeout_seconds": options.restore_timeout}))
        # whatever the dump left running in the scratch database (a backend still busy after its
        # client was killed) must not hold locks while the copy is checked
        _end_sessions(server, db)
        timings["restore_tool"] = seconds
        check_database_identity(server.admin, scratch)  # before anything is judged (threat model)
        carried: _PendingProperties | None = None
        if insp.db_properties is not None and db.dbname:
            # applied after the restored copy is fingerprinted (apply_database_properties): the
            # dump's settings must not reach restorecheck's own sessions there
            carried = _PendingProperties(
                insp.db_properties, server.admin, restore_as, db.dbname,
                public_connect_withheld=restorer is not None, unprivileged=restorer is not None)
            info["database_properties_carried"] = insp.db_properties.summary()
        evidence.extend(_restore_role_evidence(restorer, not_granted, obj))
        if f_read is not None:
            t0 = time.monotonic()
            evidence.extend(f_read.result())
            timings["read_check_wait"] = time.monotonic() - t0
        info["seconds"] = {k: round(v, 3) for k, v in timings.items()}
        progress("restore", 1, 1)
        return RestoreOutcome(restored=db, evidence=evidence, seconds=seconds, info=info, connect=connect,
                              carried_properties=carried, restored_as=restore_as)

    @staticmethod
    def _restricting_psql(readers: list[PgInstallation]) -> PgInstallation:
        """A psql that knows ``\\restrict`` (13.22, 14.19, 15.14, 16.10, 17.6 and later; CVE-2025-8714),
        newest first: restorecheck restricts it with its own key so that no meta-command of a dump
        (``\\!`` runs a shell) is ever executed. None found: exit 3 naming the fix."""
        found = [i for i in readers if "psql" in i.tools]
        for inst in found:
            if pgd.psql_knows_restrict(inst.version):
                return inst
        seen = ", ".join(f"{i.version} ({i.bindir})" for i in found) or "none"
        raise ToolNotFoundError(
            "a plain SQL dump is restored with psql, and no psql here can be restricted with \\restrict "
            f"(it needs 13.22, 14.19, 15.14, 16.10, 17.6 or later; found: {seen}); without it a hostile "
            "dump's meta-commands (\\! runs a shell) would run on this machine",
            "install a current PostgreSQL client (Debian/Ubuntu: postgresql-client), give --pg-bin with one, "
            "or verify a custom-format dump (pg_dump -Fc) instead",
        )

    # --- drill: targets started early, throwaway sources ----------------------------------------

    def prepare_target(self, source: DatabaseRef, options: RestoreOptions,
                       stack: contextlib.ExitStack) -> Target | None:
        """Start the restore target now (drill calls this while the backup runs), of a major that can
        load a dump of ``source``; ``restore(..., target=)`` then uses it instead of starting one."""
        import psycopg

        from restorecheck.provisioners import provision_postgres

        if not isinstance(source, PostgresRef):
            return None
        try:
            with pgconn.connect(source.conninfo(), connect_timeout=15) as conn:
                row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
                major = int(row[0]) // 10000 if row else None
                needs = pg_needs.needs_of_database(conn, min_major=major)  # what the dump will need
                size: int | None = None  # a small database restores in memory (local_cluster)
                try:
                    got = conn.execute("SELECT pg_database_size(current_database())").fetchone()
                    size = int(got[0]) if got and got[0] is not None else None
                except psycopg.Error:
                    conn.rollback()
        except psycopg.Error:
            return None  # backup() reports the unreachable source
        server = stack.enter_context(provision_postgres(
            options.target, min_major=major, pg_bin=options.pg_bin or self.pg_bin, keep=options.keep,
            tmp_root=options.tmp_root, start_timeout=options.start_timeout, sandbox=options.sandbox,
            needs=needs, size_hint=size))
        return Target(self.name, options.target or "local", server)


    def throwaway_source(self, options: RestoreOptions, stack: contextlib.ExitStack, *,
                         size_hint: int | None = None) -> ThrowawaySource:
        """A new empty database on a throwaway server, for drill's self-test (removed by ``stack``).

        The same server then takes the restore, into a second fresh database from template0:
        one cluster start instead of two, and the target's tuning applies to both.
        """
        from restorecheck.provisioners import provision_postgres
        from restorecheck.seed.postgres import EXTENSIONS

        # an installation that has the contrib extensions the known dataset uses (else exit 3 naming
        # them); the server holds the dataset twice (source and restored copy)
        server = stack.enter_context(provision_postgres(
            options.target, pg_bin=options.pg_bin or self.pg_bin, keep=options.keep,
            tmp_root=options.tmp_root, start_timeout=options.start_timeout, sandbox=options.sandbox,
            needs=pg_needs.DumpNeeds(extensions=EXTENSIONS),
            size_hint=None if size_hint is None else 2 * size_hint))
        if server.kind == "server" and not options.keep:
            _drop_seed_roles_made_here(server, stack)  # registered first: runs after the databases go
        ref = stack.enter_context(server.fresh_database(keep=options.keep))
        return ThrowawaySource(ref, Target(self.name, options.target or "local", server))


_OUT_OF_SPACE = "No space left on device"


def _raise_if_out_of_space(messages: Sequence[str], server: Any) -> None:
    """A restore into a local cluster that failed because its disk (or memory, for a small cluster
    in /dev/shm) is full is an environment failure (exit 3) saying where, never a failed backup: the
    errors (or the server's log, when it stopped at a WAL write it could not make) say "No space
    left on device" and the cluster's file system has less than 64 MiB or 2% free. The free space is
    what a dump cannot fake by raising an error with those words."""
    if server.kind != "local" or not messages or not server.info.get("datadir"):
        return
    said = any(_OUT_OF_SPACE in m for m in messages)
    logfile = server.info.get("logfile")
    if not said and logfile:
        with contextlib.suppress(OSError), open(logfile, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - (64 << 10)))
            said = _OUT_OF_SPACE.encode() in fh.read()
    if not said:
        return
    try:
        vfs = os.statvfs(server.info["datadir"])
    except OSError:
        return
    free, total = vfs.f_bavail * vfs.f_frsize, vfs.f_blocks * vfs.f_frsize
    if free >= max(64 << 20, total // 50):
        return
    where = server.info.get("datadir_on", "")
    place = server.info.get("base") or "the target server"
    fix = "free space there, or set TMPDIR to a directory on a larger disk"
    from restorecheck.provisioners.local import IN_MEMORY

    if where == IN_MEMORY:
        fix = "run again with RESTORECHECK_TMPFS=0 (or TMPDIR=DIR) to restore on disk"
    raise EnvironmentFailure(f"the restore target ran out of space ({place}, {where or server.kind}); "
                             "the backup itself was not judged", fix)


def restored_size_hint(insp: Any, path: Path, options: RestoreOptions, artifact: BackupArtifact) -> int | None:
    """An upper estimate of the data a restore of this dump holds, when its data is stored
    uncompressed (a plain script, tar, or ``-Z0``/``none``): twice its bytes (row headers and
    alignment make a heap up to about twice the COPY text of narrow rows); None for compressed data,
    whose expansion is unknown (such a restore's cluster stays on disk, see ``memory_parent``).

    Only for a dump trusted not to make data of its own (``--trust-backup``, or written by this
    run's pg_dump): any dump runs SQL as it restores (a plain script's ``INSERT ... SELECT FROM
    generate_series``, a materialized view's refresh), so a few bytes of a hostile one can fill
    whatever it restores into, and memory is not a disk to fill."""
    if not (options.trust_backup or artifact.written_here) or not insp.readable:
        return None
    if insp.format not in pgd.PLAIN_FORMATS and (
            insp.member_compression or (insp.header.compression or "").strip().lower() not in ("0", "none")):
        return None
    try:
        if path.is_dir() and any(f.suffix in (".gz", ".lz4", ".zst") for f in path.rglob("*")):
            return None
        return 2 * pgd.backup_bytes(path)
    except OSError:
        return None


def _drop_seed_roles_made_here(server: Any, stack: contextlib.ExitStack) -> None:
    """On an existing server the self-test's seed creates the dataset's NOLOGIN roles where they are
    missing: drop those it created when the run ends (roles that were there before stay)."""
    import psycopg

    from restorecheck.seed.postgres import ROLES

    try:
        with pgconn.connect(server.admin.conninfo(), autocommit=True, connect_timeout=15) as conn:
            existed = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                                                  (list(ROLES),))}
    except psycopg.Error:
        return
    stack.callback(_drop_roles, server, set(ROLES) - existed)


def database_locale(insp: Inspection, options: RestoreOptions) -> tuple[dict[str, str], str]:
    """The locale the throwaway database should get, and where it comes from: the reference's
    (manifest or live source) where known, else the dump's own (``pg_dump -C`` scripts and every
    archive carry a CREATE DATABASE statement), else none (the target's default)."""
    keys = ("lc_collate", "lc_ctype", "locale_provider", "icu_locale", "icu_rules", "builtin_locale")
    for source, facts in (("reference", options.reference_locale), ("dump", insp.dump_locale)):
        locale = {k: str(v) for k, v in (facts or {}).items() if k in keys and v}
        if locale.get("lc_collate") or locale.get("lc_ctype"):
            return locale, source
    return {}, ""


def locale_attempts(locale: Mapping[str, str], major: int) -> list[dict[str, str]]:
    """``fresh_database`` keyword sets to try in order: the whole locale, then (ICU or builtin
    missing) its libc part, then the target's default."""
    libc = {k: locale[k] for k in ("lc_collate", "lc_ctype") if locale.get(k)}
    provider = locale.get("locale_provider")
    full = dict(libc)
    if major >= 15 and provider in ("libc", "icu", "builtin"):
        full["locale_provider"] = provider
        if provider == "icu" and locale.get("icu_locale"):
            full["icu_locale"] = locale["icu_locale"]
            if major >= 16 and locale.get("icu_rules"):
                full["icu_rules"] = locale["icu_rules"]
        if provider == "builtin" and locale.get("builtin_locale"):
            full["builtin_locale"] = locale["builtin_locale"]
    attempts = [full]
    if provider in ("icu", "builtin") and major >= 15:
        attempts.append({**libc, "locale_provider": "libc"})
    attempts.append({})
    out: list[dict[str, str]] = []
    for a in attempts:
        if a not in out:
            out.append(a)
    return out


@contextlib.contextmanager
def _fresh_database(server: Any, encoding: str, *, keep: bool,
                    locale: tuple[Mapping[str, str], str] = ({}, ""),
                    notes: tuple[list[Evidence], dict[str, Any]] | None = None, owner: str | None = None) -> Any:
    """A fresh database with ``encoding`` and, where the target has it, the locale ``locale``
    (``database_locale``). Where it has not, the database gets what the target has, and ONE
    piece of evidence (``locale_fallback``, judged by ``checks.restore``) says so; ``notes`` (the
    restore's evidence and info) receive it and ``info["locale"]``."""
    wanted, source = locale
    attempts = locale_attempts(wanted, server.major)
    reason: str | None = None
    with contextlib.ExitStack() as inner:
        for i, kw in enumerate(attempts):
            try:
                db = inner.enter_context(server.fresh_database(encoding=encoding, keep=keep, owner=owner, **kw))
            except ProvisionError as exc:
                if i == len(attempts) - 1:
                    raise
                if reason is None:
                    reason = exc.message.split(": ", 1)[-1]
                continue
            break
        if notes is not None and wanted:
            evidence, info = notes
            info["locale"] = {"source": source, "requested": attempts[0], "used": kw, "unavailable": reason}
            if i > 0:
                evidence.append(Evidence("locale_fallback", "database",
                                         {"source": source, "requested": attempts[0], "used": kw, "error": reason}))
        yield db


# --- server targets: restore as an unprivileged role (README, threat model) ----------------------

# what PostgreSQL says when a statement needs rights the restore role lacks

def _unprivileged_restorer(server: Any, options: RestoreOptions,
                           stack: contextlib.ExitStack) -> RestoreRole | None:
    """On an existing server (unless --trust-backup): the role the restore tools connect as,
    dropped on every way out, after the database it owns (registered first: LIFO)."""
    if server.kind != "server" or options.trust_backup:
        return None
    role = create_restore_role(server, jobs=options.jobs)
    stack.callback(drop_restore_roles, server.admin, role)  # --keep: the database goes to the admin
    return role


def _scratch_identity(server: Any, db: PostgresRef) -> DatabaseIdentity:
    """The oid and owner of the database just created, checked again after the restore."""
    identity = database_identity(server.admin, db.dbname or "")
    if identity is None:
        raise ScratchDatabaseReplacedError(f"the database {db.dbname} vanished right after it was created",
                                           "check what else drops databases on the target server")
    return identity


def _grant_roles(server: Any, restorer: RestoreRole | None, roles: set[str], created: set[str],
                 info: dict[str, Any]) -> list[str]:
    """Grant the dump's roles to the restore role; the existing privileged ones that were not."""
    if restorer is None:
        info["restored_as"] = "the target URL's role" if server.kind == "server" else "superuser"
        return []
    granted, refused = grant_roles(server, restorer, roles, created)
    info.update({"restored_as": f"unprivileged role {restorer.name}", "restore_role": restorer.name,
                 "roles_granted": granted, "roles_not_granted": refused})
    return refused


def _restore_role_evidence(restorer: RestoreRole | None, not_granted: list[str], obj: str) -> list[Evidence]:
    """A restore as the unprivileged role (server targets): whether the dump changed its password, and
    the roles not lent to it; ``checks.restore`` counts the statements denied for lack of rights."""
    if restorer is None:
        return []
    return [Evidence("restore_role", obj, {"role": restorer.name, "password_changed": password_changed(restorer),
                                           "roles_not_granted": list(not_granted)})]


def _quiet_event_triggers(db: PostgresRef, env: dict[str, str]) -> bool:
    """Restore with ``session_replication_role = replica`` where the restoring role may set it.

    The dump recreates its event triggers before the ``REFRESH MATERIALIZED VIEW`` step, so a
    ``ddl_command_end`` trigger fires during the restore and writes rows the source never had
    (PITFALLS D5): a faithful backup would be judged failed. In replica mode event triggers
    (and rules, and user triggers, which a full restore creates after the data anyway) with the
    default ENABLE state do not fire; ENABLE ALWAYS ones still do, as they would on a replica.
    Only a superuser may set it; otherwise the env is left alone. True if it was set."""
    import psycopg

    try:
        with pgconn.connect(db.conninfo(), autocommit=True, connect_timeout=15) as conn:
            row = conn.execute("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").fetchone()
    except psycopg.Error:
        return False  # the restore itself reports an unreachable target
    if not (row and row[0]):
        return False
    env["PGOPTIONS"] = f"{os.environ.get('PGOPTIONS', '')} -c session_replication_role=replica".strip()
    return True


def _end_sessions(server: Any, db: PostgresRef) -> None:
    """Terminate every other session in the restored database (what a killed restore tool left)."""
    import psycopg

    with contextlib.suppress(psycopg.Error), pgconn.connect(server.admin.conninfo(), autocommit=True,
                                                             connect_timeout=15) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (db.dbname,))


def _create_roles(server: Any, roles: set[str], created: set[str], superusers: set[str] | None = None) -> None:
    """CREATE ROLE ... NOLOGIN for every role the dump names that the server lacks (into ``created``);
    ``superusers`` among them with SUPERUSER (see ``pg_dump.superuser_owner_in_line``)."""
    import psycopg
    from psycopg import sql

    if not roles:
        return
    try:
        with pgconn.connect(server.admin.conninfo(), autocommit=True, connect_timeout=15) as conn:
            existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
            superusers = superusers or set()
            for role in sorted((roles | superusers) - existing):
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN{}").format(
                    sql.Identifier(role), sql.SQL(" SUPERUSER" if role in superusers else "")))
                created.add(role)
    except psycopg.Error as exc:
        raise EnvironmentFailure(f"could not create the roles the dump names on the target: "
                                 f"{first_line(exc)}",
                                 "restore as a superuser or a role with CREATEROLE") from None


def _create_tablespaces(server: Any, names: list[str], obj: str, evidence: list[Evidence]) -> list[str]:
    """CREATE TABLESPACE for each tablespace the dump names that the target lacks.

    Without them every ``SET default_tablespace`` of the dump is a restore error (and stops a
    plain dump under ON_ERROR_STOP), though the data itself would load (PITFALLS E2). A local
    throwaway cluster gets directories inside its own temporary directory; on any other target
    restorecheck cannot make directories, so the restore reports the tablespaces as missing.
    """
    from psycopg import sql

    if not names:
        return []
    with pgconn.connect(server.admin.conninfo(), autocommit=True) as conn:
        existing = {r[0] for r in conn.execute("SELECT spcname FROM pg_tablespace").fetchall()}
        wanted = [n for n in names if n not in existing]
        if not wanted:
            return []
        if server.tablespace_dir is None:
            evidence.append(Evidence("tablespaces_missing", obj, {"tablespaces": wanted}))
            return []
        for i, name in enumerate(wanted):
            location = server.tablespace_dir(f"ts{i}")
            conn.execute(sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(
                sql.Identifier(name), sql.Literal(str(location))))
    return wanted


def _drop_roles(server: Any, created: set[str]) -> None:
    """On an existing server, drop the roles restorecheck created (after the restored database)."""
    import psycopg
    from psycopg import sql

    if not created:
        return
    try:
        with pgconn.connect(server.admin.conninfo(), autocommit=True, connect_timeout=15) as c:
            for role in sorted(created):
                c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    except psycopg.Error as exc:
        log.warning("could not drop the roles restorecheck created (%s): %s", ", ".join(sorted(created)),
                    first_line(exc))


def _sequence_values(conn: Any) -> dict[str, dict[str, Any]]:
    """last_value and is_called of every user sequence, read now (not MVCC)."""
    import psycopg
    from psycopg import sql

    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname !~ '^pg_(toast|temp)'"
    ).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for nsp, name in rows:
        try:
            with conn.transaction():  # a savepoint: a sequence we may not read must not abort the rest
                row = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(
                    sql.Identifier(nsp, name))).fetchone()
        except psycopg.Error:
            continue
        if row is not None:
            out[f"{nsp}.{name}"] = {"last_value": int(row[0]), "is_called": bool(row[1])}
    return out


def _plausible_archive_version(path: Path) -> bool:
    """Whether the archive header's format version looks like a real (future) one: 1.x, x <= 30.

    Archive versions so far: 1.14 (PostgreSQL 12-15), 1.15 (16), 1.16 (17). A garbled version
    byte is corruption (exit 1), a plausible newer one needs newer tools (exit 3).
    """
    toc = path / "toc.dat" if path.is_dir() else path
    try:
        with open(toc, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    if head[:5] != pgd.CUSTOM_MAGIC:
        return True  # tar: the version is inside toc.dat; trust pg_restore's message
    return len(head) >= 7 and head[5] == 1 and head[6] <= 30


def _version_key(inst: PgInstallation) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", inst.version))


def _set_mode(path: Path, mode: int) -> None:
    """The backup's mode (a directory archive: its directory gets the execute bits of ``mode``'s
    read bits, its files ``mode``)."""
    if path.is_dir():
        os.chmod(path, mode | ((mode & 0o444) >> 2))
        for child in path.iterdir():
            os.chmod(child, mode)
    else:
        os.chmod(path, mode)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _tail(text: str, lines: int = 3) -> str:
    return " ".join(ln.strip() for ln in text.strip().splitlines()[-lines:])


def _as_ms(value: str | None) -> str | None:
    """lock_timeout as pg_dump --lock-wait-timeout takes it ('10s' stays '10s'; '0' means none)."""
    if not value or value.strip() in ("0", "0s", "0ms"):
        return None
    return value.strip()
