"""restorecheck: prove that a database backup restores, and that the restored copy is the same database."""

from __future__ import annotations

__version__ = "0.1.0"
