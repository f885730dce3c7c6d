"""Checks of the backup file itself (check id ``backup_file``): empty, changed since its manifest,
a damaged compressed or encrypted layer, an archive that cannot be read to the end, a plain dump
that is visibly incomplete (PITFALLS B1, B2, B4, E8). Pure functions over ``Evidence``."""

from __future__ import annotations

from collections.abc import Sequence

from restorecheck.checks import registry
from restorecheck.dburl import mask
from restorecheck.evidence import Evidence
from restorecheck.model import Finding


@registry.on_evidence("backup_empty", produces=("backup_file",))
def backup_empty(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    """``data``: ``bytes_expected`` when a manifest recorded the size."""
    return [Finding(
        "backup_file", "error", ev.object,
        "the backup file is empty (0 bytes): the job that wrote it produced nothing; check its log and "
        "exit status (a pipeline such as 'pg_dump | gzip > f' hides pg_dump's failure)",
        dict(ev.data),
    )]


@registry.on_evidence("sha256_mismatch", produces=("backup_file",))
def sha256_mismatch(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    """``data``: ``expected``, ``actual``, ``bytes_expected``, ``bytes_actual``."""
    return [Finding(
        "backup_file", "error", ev.object,
        "the backup's sha256 differs from the one recorded in the manifest: the file changed after "
        "the backup was taken (or the manifest belongs to another backup)",
        dict(ev.data),
    )]


@registry.on_evidence("layer_name_mismatch", produces=("backup_file",))
def layer_name_mismatch(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    what = ev.data.get("content") or "no compression or encryption"
    return [Finding("backup_file", "warning", ev.object,
                    f"the name says {ev.data['claim']} but the content is {what}: read by its content")]


@registry.on_evidence("recipient_header_damaged", produces=("backup_file",))
def recipient_header_damaged(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    return [Finding(
        "backup_file", "error", ev.object,
        "the encrypted backup changed since its manifest was written and no identity opens it: "
        "its recipient header is damaged")]


@registry.on_evidence("layer_damaged", produces=("backup_file",))
def layer_damaged(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    """``data``: ``layer`` (gzip, zstd, age, ...) and ``error`` (what the decoder said, in words)."""
    return [Finding("backup_file", "error", ev.object, str(ev.data["error"]), {"layer": ev.data["layer"]})]


@registry.on_evidence("tar_damaged", produces=("backup_file",))
def tar_damaged(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    return [Finding("backup_file", "error", ev.object, str(ev.data["damage"]))]


@registry.on_evidence("toc_unreadable", produces=("backup_file",))
def toc_unreadable(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    return [Finding("backup_file", "error", ev.object,
                    f"the archive's table of contents cannot be read: {mask(str(ev.data['error']))}")]


@registry.on_evidence("archive_without_data", produces=("backup_file",))
def archive_without_data(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    return [Finding("backup_file", "warning", ev.object, "the archive holds no table data at all (schema-only dump?)")]


@registry.on_evidence("gzip_damaged", produces=("backup_file",))
def gzip_damaged(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    return [Finding("backup_file", "error", ev.object, str(ev.data["error"]))]


@registry.on_evidence("archive_read_failed", produces=("backup_file",))
def archive_read_failed(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    """``data``: ``stderr_tail`` (the reader's last lines) or ``returncode``."""
    return [Finding("backup_file", "error", ev.object,
                    "reading every data block of the archive failed (truncated or corrupt): "
                    + mask(str(ev.data.get("stderr_tail") or f"exit {ev.data.get('returncode')}")))]


@registry.on_evidence("plain_scan", produces=("backup_file",))
def plain_scan(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    """A plain dump that is visibly incomplete (PITFALLS B1, E8). ``data`` (``PlainScan.evidence``):
    ``unterminated_copy``, ``trailer`` (found), ``trailer_text``, ``dump_headers``, ``cluster_dump``,
    ``restrict`` (opens with \\restrict), ``unrestricted`` (the matching \\unrestrict is there)."""
    d, out = ev.data, []
    table = d.get("unterminated_copy")
    if table:
        out.append(Finding(
            "backup_file", "error", str(table),
            f"the dump ends inside the COPY data of {table} (no '\\.' terminator): "
            "the file is truncated and the table's last rows are missing or cut",
        ))
    if not d.get("trailer"):
        out.append(Finding(
            "backup_file", "error", ev.object,
            f"the dump has no '{d.get('trailer_text')}' trailer: it is incomplete (truncated, or pg_dump failed); "
            "whatever follows the cut (constraints, indexes, setval, grants) is missing",
        ))
    elif int(d.get("dump_headers") or 0) > 1 and not d.get("cluster_dump"):
        out.append(Finding(
            "backup_file", "error", ev.object,
            f"the file holds {d['dump_headers']} pg_dump scripts one after the other (concatenated "
            "dumps): restoring it replays the first and then collides with or overwrites it",
        ))
    elif d.get("restrict") and not d.get("unrestricted"):
        out.append(Finding(
            "backup_file", "error", ev.object,
            "the dump opens with \\restrict but has no matching \\unrestrict at the end: "
            "it is incomplete",
        ))
    return out
