"""Engines by name: ``postgresql`` and ``sqlite`` (see ``engines/base.py`` for the protocol)."""

from __future__ import annotations

from pathlib import Path

from restorecheck.dburl import DatabaseRef
from restorecheck.engines.base import Engine
from restorecheck.errors import BadInputError

ENGINE_NAMES = ("postgresql", "sqlite")


def get_engine(name: str, *, pg_bin: str | Path | None = None) -> Engine:
    """The engine registered under ``name`` (imported lazily). ``pg_bin``: PostgreSQL binaries
    to use first (``--pg-bin``)."""
    if name == "postgresql":
        from restorecheck.engines.postgres import PostgresEngine

        return PostgresEngine(pg_bin)
    if name == "sqlite":
        from restorecheck.engines.sqlite import SqliteEngine

        return SqliteEngine()
    raise BadInputError(f"unknown engine {name!r}", f"use one of: {', '.join(ENGINE_NAMES)}")


def engine_for(ref: DatabaseRef, *, pg_bin: str | Path | None = None) -> Engine:
    """The engine that handles a parsed database reference."""
    return get_engine(ref.engine, pg_bin=pg_bin)
