"""Engines by name: ``postgresql`` and ``sqlite`` (see ``engines/base.py`` for the protocol)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from restorecheck.dburl import DatabaseRef
from restorecheck.engines.base import Engine
from restorecheck.errors import BadInputError
from restorecheck.model import ENGINE_NAMES, EngineName


def _postgres(pg_bin: str | Path | None) -> Engine:
    from restorecheck.engines.postgres import PostgresEngine

    return PostgresEngine(pg_bin)


def _sqlite(pg_bin: str | Path | None) -> Engine:
    from restorecheck.engines.sqlite import SqliteEngine

    return SqliteEngine()


# The registry: an engine's name (what ``--engine`` and ``DatabaseRef.engine`` say) -> a factory
# taking ``--pg-bin``. Engines are imported lazily, so a SQLite run never imports the PostgreSQL code.
# A new engine is one entry here, its name in ``model.EngineName`` (and its ``DatabaseRef`` in dburl.py).
ENGINES: dict[EngineName, Callable[[str | Path | None], Engine]] = {"postgresql": _postgres, "sqlite": _sqlite}


def get_engine(name: str, *, pg_bin: str | Path | None = None) -> Engine:
    """The engine registered under ``name`` in ``ENGINES``. ``pg_bin``: PostgreSQL binaries
    to use first (``--pg-bin``)."""
    for known, factory in ENGINES.items():
        if known == name:
            return factory(pg_bin)
    raise BadInputError(f"unknown engine {name!r}", f"use one of: {', '.join(ENGINE_NAMES)}")


def engine_for(ref: DatabaseRef, *, pg_bin: str | Path | None = None) -> Engine:
    """The engine that handles a parsed database reference."""
    return get_engine(ref.engine, pg_bin=pg_bin)
