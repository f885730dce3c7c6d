"""The known dataset's generators and the seed command, without a server."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import textwrap

import pytest

from restorecheck.cli import run_cli
from restorecheck.dburl import PostgresRef, SqliteRef
from restorecheck.errors import BadInputError, ExitCode, SourceUnreachableError
from restorecheck.seed import SeedResult, pg_data, seed
from restorecheck.seed import sqlite as sq
from restorecheck.seed.result import check_scale, fixture_sql
from restorecheck.seed.values import AWKWARD_TEXT, rng_for

ALL_SPECS = [(s.name, s.generate, s.base_rows) for s in pg_data.TABLES] + [
    (f"sqlite:{t.name}", t.generate, t.base_rows) for t in sq.TABLES]


@pytest.mark.parametrize(("name", "gen", "base"), ALL_SPECS, ids=[s[0] for s in ALL_SPECS])
def test_generator_is_deterministic_and_linear(name: str, gen: object, base: int) -> None:
    rows1 = _rows(gen, 1, 0)
    assert rows1 == _rows(gen, 1, 0)
    assert len(rows1) == base
    assert len(list(gen(3, 0))) == 3 * base  # type: ignore[operator]


def _rows(gen: object, scale: int, seed: int) -> list[str]:
    """Rows as text: NaN != NaN and Jsonb wrappers compare by identity, their repr does not."""
    return [repr(tuple(getattr(v, "obj", v) for v in r)) for r in gen(scale, seed)]  # type: ignore[operator]


def test_different_seeds_give_different_rows() -> None:
    differs = 0
    for _name, gen, _ in ALL_SPECS:
        differs += _rows(gen, 1, 0) != _rows(gen, 1, 1)
    # rc_values is a fixed cycle of typed values; every other table draws from its random stream
    assert differs >= len(ALL_SPECS) - 1


def test_random_stream_is_pinned() -> None:
    """The generator's foundation: str-seeded Mersenne Twister, the same in every CPython 3.x."""
    rng = rng_for(0, "probe")
    draws = [rng.randrange(1000) for _ in range(5)]
    assert draws == [192, 822, 552, 880, 458]
    assert draws == _draws_in_another_interpreter()


def _draws_in_another_interpreter() -> list[int]:
    # another process with another PYTHONHASHSEED: hash() never matters
    code = textwrap.dedent("""
        from restorecheck.seed.values import rng_for
        r = rng_for(0, "probe"); print(*[r.randrange(1000) for _ in range(5)])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": ""}).stdout
    return [int(x) for x in out.split()]


def test_awkward_text_covers_the_classic_breakers() -> None:
    joined = "\x1e".join(AWKWARD_TEXT)
    for needle in ("'", '"', "\\", "\t", "\n", "\r", "\n\\.\n", "\\N", "\U0001f986", "e\u0301", "\u200d", ""):
        assert needle in joined
    assert "" in AWKWARD_TEXT
    assert all("\x00" not in s for s in AWKWARD_TEXT)  # PostgreSQL text cannot hold NUL


def test_changes_after_the_load_are_linear() -> None:
    for scale in (1, 7):
        assert len(pg_data.updated_orders(scale)) == 25 * scale
        assert len(pg_data.deleted_orders(scale)) == 10 * scale
        assert len(pg_data.deleted_category_roots(scale)) == scale
        assert not set(pg_data.updated_orders(scale)) & set(pg_data.deleted_orders(scale))


def test_order_lines_of_deleted_orders_are_exactly_one_each() -> None:
    deleted = set(pg_data.deleted_orders(2))
    lines = [r for r in pg_data.gen_order_lines(2, 0) if (r[0], r[1]) in deleted]
    assert len(lines) == 10 * 2


def test_skus_are_unique_and_match_the_check_constraint() -> None:
    import re

    skus = [pg_data.sku_for(j) for j in (0, 1, 99_999, 100_000, 2_600_000, 17_575_999)]
    assert len(set(skus)) == len(skus)
    assert all(re.fullmatch(r"[A-Z]{3}-[0-9]{5}", s) for s in skus)


def test_large_objects_have_fixed_oids_and_zero_bytes() -> None:
    los = list(pg_data.large_objects(2, 0))
    assert [o for o, _ in los] == [pg_data.LO_BASE_OID + j for j in range(10)]
    assert los[0][1] == b""
    assert any(b"\x00" in d for _, d in los)


@pytest.mark.parametrize("bad", [0, -1, 100_001, True, 1.5])
def test_bad_scale_is_bad_input(bad: object) -> None:
    with pytest.raises(BadInputError, match="--scale"):
        check_scale(bad, 0)  # type: ignore[arg-type]


def test_bad_seed_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="--seed"):
        check_scale(1, -5)


def test_fixture_sql_ships_in_the_package() -> None:
    assert "CREATE SCHEMA rc_shop" in fixture_sql("postgres", "schema.sql")
    assert "FOREIGN KEY" in fixture_sql("postgres", "post.sql")
    assert "WITHOUT ROWID" in fixture_sql("sqlite", "schema.sql")
    # no volatile functions: the data must come from the generator only
    text = fixture_sql("postgres", "schema.sql").lower()
    for forbidden in ("now()", "random()", "gen_random_uuid", "clock_timestamp"):
        assert forbidden not in text
    # the contrib extensions it uses, each created when missing, all listed where seed checks them
    from restorecheck.seed.postgres import EXTENSIONS

    created = re.findall(r"create extension if not exists (\w+) with schema public;", text)
    assert created == list(EXTENSIONS) and text.count("create extension") == len(EXTENSIONS)


def test_venues_data_fits_its_constraints() -> None:
    """Handles unique regardless of case, slots never overlapping within a room, hstore text escaped."""
    from restorecheck.seed.pg_data import gen_venues, hstore_text

    rows = list(gen_venues(2, 0))
    assert len({r[1].lower() for r in rows}) == len(rows) == 60
    by_room: dict[int, list[str]] = {}
    for r in rows:
        by_room.setdefault(r[4], []).append(r[5])
    for slots in by_room.values():
        bounds = sorted((s[1:].split(",")[0], s.split(",")[1][:-1]) for s in slots)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(bounds))
    assert {None, ""} <= {r[3] for r in rows}
    assert hstore_text([('a"b', "c\\d"), ("e", None)]) == '"a\\"b"=>"c\\\\d", "e"=>NULL'


def test_split_statements_keeps_trigger_bodies_whole() -> None:
    stmts = sq.split_statements(fixture_sql("sqlite", "schema.sql"))
    triggers = [s for s in stmts if s.upper().startswith("CREATE TRIGGER")]
    assert len(triggers) == 5
    assert all(s.rstrip().endswith("END;") for s in triggers)


def test_unreachable_server_is_environment_failure_with_masked_url() -> None:
    ref = PostgresRef({"host": "127.0.0.1", "port": "1", "user": "u", "dbname": "d"}, password="s3cr3t")
    with pytest.raises(SourceUnreachableError) as info:
        seed(ref)
    assert "s3cr3t" not in str(info.value)
    assert info.value.exit_code == ExitCode.ENVIRONMENT


def test_cli_unreachable_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    rc = run_cli(["seed", "postgresql://u:s3cr3t@127.0.0.1:1/db"])
    err = capsys.readouterr().err
    assert rc == 3
    assert "s3cr3t" not in err and "***" in err
    assert "Traceback" not in err


def test_cli_bad_scale_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    assert run_cli(["seed", "x.db", "--scale", "0"]) == 2


def test_seed_result_rate() -> None:
    r = SeedResult(tables={"a": 10}, rows=10, seconds=2.0)
    assert r.rows_per_second == 5.0
    assert SeedResult(tables={}, rows=0, seconds=0.0).rows_per_second == 0.0


def test_seed_rejects_unknown_target() -> None:
    with pytest.raises(BadInputError):
        seed("not a ref")  # type: ignore[arg-type]
    assert isinstance(SqliteRef, type)
