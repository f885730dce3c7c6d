"""Engines by name: ``postgresql`` and ``sqlite`` (see ``engines/base.py`` for the protocol)."""

from __future__ import annotations

from restorecheck.dburl import DatabaseRef
from restorecheck.engines.base import Engine
from restorecheck.errors import BadInputError

ENGINE_NAMES = ("postgresql", "sqlite")


def get_engine(name: str) -> Engine:
    """The engine registered under ``name`` (imported lazily)."""
    if name == "postgresql":
        from restorecheck.engines.postgres import PostgresEngine

        return PostgresEngine()
    if name == "sqlite":
        from restorecheck.engines.sqlite import SqliteEngine

        return SqliteEngine()
    raise BadInputError(f"unknown engine {name!r}", f"use one of: {', '.join(ENGINE_NAMES)}")


def engine_for(ref: DatabaseRef) -> Engine:
    """The engine that handles a parsed database reference."""
    return get_engine(ref.engine)
