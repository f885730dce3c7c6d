"""restorecheck: prove that a database backup restores, and that the restored copy is the same database.

The library behind the CLI (each command is one call; ``restorecheck.api``, docs/api.md)::

    import restorecheck
    report = restorecheck.verify("nightly.dump", manifest="nightly.manifest.json")
    assert report.ok, report.summary()

Public API: ``drill``, ``verify``, ``backup``, ``snapshot``, ``compare`` (sources as libpq URLs,
SQLite paths or SQLAlchemy Engines/URLs), ``seed``; the result types of ``restorecheck.model``; the
errors of ``restorecheck.errors``. Imports are lazy, so ``import restorecheck`` stays cheap for the
CLI (and for every pytest run, which loads the plugin ``restorecheck.pytest_plugin``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "seed": ("restorecheck.seed", "seed"),
    "snapshot": ("restorecheck.api", "snapshot"),
    "backup": ("restorecheck.api", "backup"),
    "verify": ("restorecheck.api", "verify"),
    "drill": ("restorecheck.api", "drill"),
    "compare": ("restorecheck.api", "compare"),
    "Manifest": ("restorecheck.model", "Manifest"),
    "Report": ("restorecheck.model", "Report"),
    "Finding": ("restorecheck.model", "Finding"),
    "as_database": ("restorecheck.api", "as_database"),
    "BackupArtifact": ("restorecheck.model", "BackupArtifact"),
    "BackupResult": ("restorecheck.pipeline", "BackupResult"),
    "TableResult": ("restorecheck.model", "TableResult"),
    "BadInputError": ("restorecheck.errors", "BadInputError"),
    "EnvironmentFailure": ("restorecheck.errors", "EnvironmentFailure"),
    "TableFingerprint": ("restorecheck.model", "TableFingerprint"),
    "RestorecheckError": ("restorecheck.errors", "RestorecheckError"),
    "ExitCode": ("restorecheck.errors", "ExitCode"),
}

__all__ = [
    "BackupArtifact",
    "BackupResult",
    "BadInputError",
    "EnvironmentFailure",
    "ExitCode",
    "Finding",
    "Manifest",
    "Report",
    "RestorecheckError",
    "TableFingerprint",
    "TableResult",
    "__version__",
    "as_database",
    "backup",
    "compare",
    "drill",
    "seed",
    "snapshot",
    "verify",
]

if TYPE_CHECKING:  # pragma: no cover
    from restorecheck.api import as_database, backup, compare, drill, snapshot, verify
    from restorecheck.errors import BadInputError, EnvironmentFailure, ExitCode, RestorecheckError
    from restorecheck.model import BackupArtifact, Finding, Manifest, Report, TableFingerprint, TableResult
    from restorecheck.pipeline import BackupResult
    from restorecheck.seed import seed


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'restorecheck' has no attribute {name!r}")
