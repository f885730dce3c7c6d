"""restorecheck: prove that a database backup restores, and that the restored copy is the same database.

The library behind the CLI (each command is one call)::

    import restorecheck
    report = restorecheck.verify("nightly.dump", manifest="nightly.manifest.json")
    assert report.verdict == "pass", [f.message for f in report.errors]

Public API: ``seed``, ``snapshot``, ``backup``, ``verify``, ``drill``, ``compare``; the result
types of ``restorecheck.model``; the errors of ``restorecheck.errors``. Imports are lazy, so
``import restorecheck`` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "seed": ("restorecheck.seed", "seed"),
    "snapshot": ("restorecheck.pipeline", "snapshot"),
    "backup": ("restorecheck.pipeline", "backup"),
    "verify": ("restorecheck.pipeline", "verify"),
    "drill": ("restorecheck.pipeline", "drill"),
    "compare": ("restorecheck.pipeline", "compare"),
    "Manifest": ("restorecheck.model", "Manifest"),
    "Report": ("restorecheck.model", "Report"),
    "Finding": ("restorecheck.model", "Finding"),
    "BackupArtifact": ("restorecheck.model", "BackupArtifact"),
    "TableFingerprint": ("restorecheck.model", "TableFingerprint"),
    "RestorecheckError": ("restorecheck.errors", "RestorecheckError"),
    "ExitCode": ("restorecheck.errors", "ExitCode"),
}

__all__ = [
    "BackupArtifact",
    "ExitCode",
    "Finding",
    "Manifest",
    "Report",
    "RestorecheckError",
    "TableFingerprint",
    "__version__",
    "backup",
    "compare",
    "drill",
    "seed",
    "snapshot",
    "verify",
]

if TYPE_CHECKING:  # pragma: no cover
    from restorecheck.errors import ExitCode, RestorecheckError
    from restorecheck.model import BackupArtifact, Finding, Manifest, Report, TableFingerprint
    from restorecheck.pipeline import backup, compare, drill, snapshot, verify
    from restorecheck.seed import seed


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'restorecheck' has no attribute {name!r}")
