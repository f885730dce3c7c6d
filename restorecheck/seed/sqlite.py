"""Seeding the known dataset into a SQLite file.

The same spirit as the PostgreSQL dataset in SQLite's types: foreign keys with cascades
(enforced while seeding), a WITHOUT ROWID table, a view, audit triggers, AUTOINCREMENT (so
``sqlite_sequence`` exists), a generated column, and values whose storage class matters.
Everything is loaded with ``executemany`` in one transaction. The file keeps its journal mode
(a new file is a normal rollback-journal database).
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from restorecheck.dburl import SqliteRef
from restorecheck.engines.base import ProgressFn, no_progress
from restorecheck.errors import BadInputError, TargetNotEmptyError
from restorecheck.seed.pg_data import sku_for
from restorecheck.seed.result import PROGRESS_TASK, SeedResult, check_scale, fixture_sql
from restorecheck.seed.values import (
    AWKWARD_TEXT,
    GENERATOR_VERSION,
    WORDS,
    Row,
    TableSpec,
    awkward,
    blob,
    instant_between,
    instant_near_dst,
    person,
    rng_for,
    words,
)

TABLE_PREFIX = "rc_"
APPLICATION_ID = 0x52434B31  # 'RCK1'
USER_VERSION = 1000 + GENERATOR_VERSION
BATCH = 5000


def quote_identifier(name: str) -> str:
    """A SQLite identifier in double quotes (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def _iso(ts: datetime, offset_hours: int) -> str:
    local = ts + timedelta(hours=offset_hours)
    sign = "+" if offset_hours >= 0 else "-"
    return local.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{sign}{abs(offset_hours):02d}:00"


def gen_customers(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "sqlite:rc_customers")
    start = datetime(2020, 1, 1, tzinfo=UTC)
    specials = (float("inf"), float("-inf"), -0.0, 5e-324, 0.1 + 0.2)
    for i in range(200 * scale):
        cid = i + 1
        nickname = (None, "", awkward(i), rng.choice(WORDS))[i % 4]
        referred = None if i % 3 == 0 or i == 0 else rng.randrange(1, cid)
        score = specials[(i // 7) % len(specials)] if i % 7 == 0 else (None if i % 7 == 3 else rng.random() * 100)
        avatar = (None, b"", blob(rng, 4 + rng.randrange(40)))[i % 3]
        created = instant_between(rng, start, 4 * 365 * 86400)
        yield (cid, f"{rng.choice(WORDS)}.{cid}@Example.{('com', 'org', 'NET')[i % 3]}", person(rng), nickname,
               referred, _iso(created, 0), score, avatar)


def gen_products(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "sqlite:rc_products")
    prices = ("0", "100", "12.50", "1e3", "0.1", "99999999999999999999")  # NUMERIC affinity converts them
    for i in range(100 * scale):
        price: Any = prices[i % len(prices)] if i % 4 == 0 else rng.randrange(0, 10**6) / 100
        weight = None if i % 11 == 0 else round(rng.random() * 80, 3)
        photo = (None, b"", blob(rng, 8 + rng.randrange(120)))[i % 3]
        attrs = None if i % 10 == 0 else (
            '{"color": "' + rng.choice(("red", "\u00e9cru", "\u9ed2")) + '", "sizes": ['
            + ", ".join(str(rng.randrange(30, 50)) for _ in range(i % 4)) + '], "ratio": 0.30000000000000004}')
        yield (sku_for(i), f"{words(rng, 2).title()} {awkward(i * 3)}", price, weight, photo, attrs)


def gen_inventory(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "sqlite:rc_inventory")
    n_prod = 100 * scale
    for j in range(150 * scale):
        wh = ("BER", "NYC")[j // n_prod]
        yield (wh, sku_for(j % n_prod), rng.randrange(0, 1000), None if j % 5 == 0 else f"{wh}-{rng.randrange(99):02d}")


def gen_orders(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "sqlite:rc_orders")
    n_cust = 200 * scale
    for i in range(500 * scale):
        placed = instant_near_dst(rng, i)
        offset = (1, 2, -5, -4)[i % 4]
        note = (None, "", awkward(i))[i % 3]
        yield (i + 1, i % n_cust + 1, ("new", "paid", "shipped", "cancelled")[rng.randrange(4)],
               _iso(placed, offset), rng.randrange(1, 10**8), note)


def gen_order_lines(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "sqlite:rc_order_lines")
    n_prod = 100 * scale
    for i in range(500 * scale):
        for line in range(1, 2 + i % 5):
            yield (i + 1, line, sku_for(rng.randrange(n_prod)), 1 + rng.randrange(20), rng.randrange(1, 10**5))


# Each value goes into every affinity column: the storage class it ends up with is part of the data.
TYPED_VALUES: tuple[Any, ...] = (
    1, 1.0, "1", b"\x01", None, "", 0, -0.0, 0.0, 9223372036854775807, -9223372036854775808,
    1e308, float("inf"), float("-inf"), "1.0", " 1", "0x10", b"", "text\x00with NUL", b"\x00\xff\x00",
    0.1 + 0.2, "NaN", "1e3", 3.0, "\u0663", 2**53 + 1, "9223372036854775808", 1.5e-323,
)


def gen_values(scale: int, seed: int) -> Iterator[Row]:
    n = len(TYPED_VALUES)
    for i in range(60 * scale):
        v = TYPED_VALUES[i % n]
        # SQLite's real-to-text conversion changed across versions: keep the TEXT column to exact cases
        t = None if isinstance(v, float) and not (v.is_integer() and abs(v) < 1e15) else v
        yield (i + 1, v, v, v, v, t, v)


_NUL_TEXT = ("zero\x00byte", "\x00", "trailing NUL\x00", "\x00\x00leading")


def gen_strings(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "sqlite:rc_strings")
    n = len(AWKWARD_TEXT)
    for i in range(60 * scale):
        body: str | None
        if i % 20 == 7:
            body = None
        elif i % 10 == 3:
            body = _NUL_TEXT[(i // 10) % len(_NUL_TEXT)]
        elif i % 30 == 11:
            body = ("repeat \\ 'me' \t" * 400) + awkward(i)
        else:
            body = awkward(i)
        raw = None if body is None else (b"\xff\xfe\x00" + blob(rng, 5) if i % 6 == 0 else body.encode("utf-8"))
        yield (i + 1, f"awkward #{i % n}", body, raw)


TABLES: tuple[TableSpec, ...] = (
    TableSpec("rc_customers", ("id", "email", "name", "nickname", "referred_by", "created_at", "score", "avatar"),
                200, gen_customers),
    TableSpec("rc_products", ("sku", "title", "price", "weight_kg", "photo", "attrs"), 100, gen_products),
    TableSpec("rc_inventory", ("warehouse", "sku", "qty", "bin"), 150, gen_inventory),
    TableSpec("rc_orders", ("id", "customer_id", "status", "placed_at", "total_cents", "note"), 500, gen_orders),
    TableSpec("rc_order_lines", ("order_id", "line_no", "sku", "qty", "unit_cents"), 1500, gen_order_lines),
    TableSpec("rc_values", ("id", "v", "v_int", "v_real", "v_num", "v_text", "v_blob"), 60, gen_values),
    TableSpec("rc_strings", ("id", "label", "body", "raw"), 60, gen_strings),
)


def split_statements(script: str) -> list[str]:
    """The statements of a SQL script (trigger bodies kept whole), without running it."""
    out: list[str] = []
    buf: list[str] = []
    for line in script.splitlines(keepends=True):
        if not buf and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buf.append(line)
        text = "".join(buf)
        if sqlite3.complete_statement(text):
            out.append(text.strip())
            buf = []
    if "".join(buf).strip():
        out.append("".join(buf).strip())
    return out


def _open(path: Path) -> sqlite3.Connection:
    if path.is_dir():
        raise BadInputError(f"{path} is a directory, not a SQLite database file", "give a file path")
    if not path.parent.is_dir():
        raise BadInputError(f"the directory of {path} does not exist", "create it first or give another path")
    try:
        conn = sqlite3.connect(str(path), isolation_level=None)
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BadInputError(f"{path} is not a SQLite database ({exc})",
                            "give a new file name or an existing SQLite database") from None
    return conn


def user_tables(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
        "ORDER BY name")]


def _own(name: str) -> bool:
    return name.lower().startswith(TABLE_PREFIX)


def foreign_dependents(conn: sqlite3.Connection) -> list[str]:
    """Objects not the dataset's that refer to its tables: --replace would break them."""
    own_tables = [n for n in user_tables(conn) if _own(n)]
    if not own_tables:
        return []
    pattern = re.compile(r"(?<![\w$])[\"`\[]?(" + "|".join(re.escape(t) for t in own_tables) + r")(?![\w$])",
                         re.IGNORECASE)
    found = []
    for typ, name, sql_text in conn.execute(
            "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name").fetchall():
        if _own(name):
            continue
        if pattern.search(sql_text):
            found.append(f"{typ} {name}")
    return found


def _refuse(tables: list[str]) -> TargetNotEmptyError:
    shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    return TargetNotEmptyError(
        f"seed refuses a target that already holds tables ({shown})",
        "seed into a new file, or add --replace to recreate only the dataset's own objects",
    )


def drop_own_objects(conn: sqlite3.Connection) -> None:
    """Drop the dataset's views and tables (their indexes and triggers go with them).

    Children first, so that no implicit DELETE of a parent trips a foreign key; the caller has
    refused a target where anything else refers to these tables.
    """
    conn.execute("PRAGMA defer_foreign_keys = ON")
    for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'view' ORDER BY name").fetchall():
        if _own(name):
            conn.execute(f"DROP VIEW {quote_identifier(name)}")
    present = {n for n in user_tables(conn) if _own(n)}
    order = ["rc_audit", *[t.name for t in reversed(TABLES)]]
    for name in [n for n in order if n in present] + sorted(present - set(order)):
        conn.execute(f"DROP TABLE {quote_identifier(name)}")


def _header(conn: sqlite3.Connection) -> tuple[int, int]:
    app = conn.execute("PRAGMA application_id").fetchone()[0]
    uv = conn.execute("PRAGMA user_version").fetchone()[0]
    return int(app), int(uv)


def load(conn: sqlite3.Connection, scale: int, seed: int, progress: ProgressFn) -> None:
    for stmt in split_statements(fixture_sql("sqlite", "schema.sql")):
        conn.execute(stmt)
    total = sum(t.rows(scale) for t in TABLES)
    done = 0
    for table in TABLES:
        stmt = (f"INSERT INTO {quote_identifier(table.name)} ({', '.join(quote_identifier(c) for c in table.columns)}) "
                f"VALUES ({', '.join('?' for _ in table.columns)})")
        rows = table.generate(scale, seed)
        task = PROGRESS_TASK
        while batch := list(itertools.islice(rows, BATCH)):
            conn.executemany(stmt, batch)
            done += len(batch)
            progress(task, done, total)
    progress("changes", done, total)
    conn.executemany("UPDATE rc_orders SET status = 'shipped', note = coalesce(note, '') || ' [shipped]' WHERE id = ?",
                     [(i + 1,) for i in range(500 * scale) if i % 20 == 3])
    conn.executemany("DELETE FROM rc_orders WHERE id = ?", [(i + 1,) for i in range(500 * scale) if i % 50 == 0])


def count_rows(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per dataset table, keyed ``main.<table>`` like restorecheck's SQLite manifests."""
    return {f"main.{name}": int(conn.execute(f"SELECT count(*) FROM {quote_identifier(name)}").fetchone()[0])
            for name in user_tables(conn) if _own(name)}


def seed_sqlite(ref: SqliteRef, *, scale: int = 1, seed: int = 0, replace: bool = False,
                progress: ProgressFn = no_progress) -> SeedResult:
    """Load the known dataset into the SQLite file ``ref.path`` (created when missing)."""
    check_scale(scale, seed)
    path = Path(ref.path)
    start = time.monotonic()
    existed = path.exists()
    conn = _open(path)
    ok = False
    try:
        tables = user_tables(conn)
        if tables and not replace:
            raise _refuse(tables)
        if replace:
            deps = foreign_dependents(conn)
            if deps:
                raise TargetNotEmptyError(
                    f"--replace would break objects outside the dataset that refer to it: {', '.join(deps[:5])}",
                    "drop or change those objects first, or seed another file",
                )
        app, uv = _header(conn)
        foreign = [t for t in tables if not _own(t)]
        set_header = not foreign or (app in (0, APPLICATION_ID) and uv in (0, USER_VERSION))
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if replace:
                drop_own_objects(conn)
            load(conn, scale, seed, progress)
            if set_header:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
                conn.execute(f"PRAGMA user_version = {USER_VERSION:d}")
            counts = count_rows(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        ok = True
    except sqlite3.Error as exc:
        raise BadInputError(f"could not seed {path}: {exc}", "check that the file is writable and not locked") from None
    finally:
        conn.close()
        if not ok and not existed:
            path.unlink(missing_ok=True)  # a file we created and could not fill
    seconds = time.monotonic() - start
    notes = () if set_header else ("application_id and user_version left as they were: the file holds other tables",)
    return SeedResult(tables=counts, rows=sum(counts.values()), seconds=seconds, engine="sqlite",
                      target=str(path), scale=scale, seed=seed, notes=notes)
