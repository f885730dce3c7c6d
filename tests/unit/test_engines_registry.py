"""The engine registry by name (engines/__init__.py ENGINES), as engines/base.py describes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from restorecheck.dburl import PostgresRef, SqliteRef
from restorecheck.engines import ENGINE_NAMES, ENGINES, engine_for, get_engine
from restorecheck.errors import BadInputError, ExitCode


def test_every_registered_engine_answers_to_its_name() -> None:
    assert set(ENGINES) == set(ENGINE_NAMES) == {PostgresRef.engine, SqliteRef.engine}
    for name in ENGINES:
        assert get_engine(name).name == name


def test_a_reference_finds_its_engine() -> None:
    assert engine_for(SqliteRef(Path("x.db"))).name == "sqlite"
    assert engine_for(PostgresRef({"host": "h"})).name == "postgresql"


def test_an_unknown_engine_is_bad_input_naming_the_known_ones() -> None:
    with pytest.raises(BadInputError) as info:
        get_engine("mysql")
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert "postgresql" in info.value.one_line() and "sqlite" in info.value.one_line()
