"""Connections that read the way a fingerprint must: pinned settings, one snapshot, savepoints."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any, LiteralString, cast

import psycopg
from psycopg import sql
from psycopg.types.json import set_json_loads

from restorecheck import pgconn
from restorecheck.dburl import PostgresRef
from restorecheck.engines.base import FingerprintOptions
from restorecheck.engines.pg_rowhash import PINNED_SETTINGS, PLANNER_SETTINGS
from restorecheck.errors import BadInputError, SourceUnreachableError, first_line

log = logging.getLogger("restorecheck")


# --- connections ----------------------------------------------------------------------------------


def _latin1_json(data: str | bytes) -> Any:
    return json.loads(data.decode("latin-1") if isinstance(data, bytes | bytearray | memoryview) else data)


def pin_client_encoding(conn: psycopg.Connection[Any]) -> None:
    """Make text (and the catalog's json) decode on any database encoding.

    libpq's default client_encoding is the database's. In a LATIN1 (or other non-UTF8) database
    json then arrives in that encoding and psycopg's json loader, which assumes UTF-8, fails: UTF8
    is asked for, and the server converts. A SQL_ASCII server converts nothing and psycopg would
    return text as bytes: LATIN1 is asked for instead, which maps every byte to one character, so
    names and values round-trip losslessly (and the same way on the source and the restored copy)."""
    if conn.info.parameter_status("server_encoding") == "SQL_ASCII":
        conn.execute("SELECT pg_catalog.set_config('client_encoding', 'LATIN1', false)")
        set_json_loads(_latin1_json, conn)
    else:
        conn.execute("SELECT pg_catalog.set_config('client_encoding', 'UTF8', false)")


def connect(ref: PostgresRef, options: FingerprintOptions, *, application: str = "restorecheck"
            ) -> psycopg.Connection[Any]:
    """An autocommit connection with the pinned settings (the source is only read)."""
    try:
        conn = pgconn.connect(ref.conninfo(application_name=application), autocommit=True,
                               connect_timeout=15)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise SourceUnreachableError(f"cannot connect to {ref.display()}: {first}",
                                     "check the URL, that the server runs, and the credentials") from None
    try:
        pin_client_encoding(conn)
        for name, value in {**PINNED_SETTINGS, **PLANNER_SETTINGS, "lock_timeout": options.lock_timeout,
                            "statement_timeout": options.statement_timeout}.items():
            conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
    except psycopg.Error:
        conn.close()
        raise
    return conn


def _double_quoted_percents(text: str) -> str:
    """``%`` inside quoted identifiers and string literals doubled, so that psycopg does not read
    a table named ``pct%s`` as a placeholder; the placeholders outside quotes are left alone."""
    out: list[str] = []
    quote: str | None = None
    for ch in text:
        if ch in ("'", '"'):
            if quote is None:
                quote = ch
            elif ch == quote:
                quote = None  # a doubled quote leaves and re-enters: still inside
        out.append("%%" if ch == "%" and quote is not None else ch)
    return "".join(out)


def execute_with_params(conn: psycopg.Connection[Any], query: sql.SQL | sql.Composed,
                        params: Sequence[Any]) -> psycopg.Cursor[Any]:
    """``conn.execute(query, params)`` that survives ``%`` in identifiers (schema, table, column).

    psycopg looks for placeholders in the whole query text, quoted identifiers included: a table
    or column whose name holds ``%s`` or ``%(x)s`` failed every checksum query and was reported
    unreadable on both sides, so its content was silently not compared."""
    if not params:
        return conn.execute(query)
    text = _double_quoted_percents(query.as_string(conn))
    return conn.execute(cast(LiteralString, text), params)


def begin_snapshot(conn: psycopg.Connection[Any], snapshot: str | None) -> None:
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    if snapshot:
        try:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        except psycopg.Error as exc:
            conn.execute("ROLLBACK")
            raise BadInputError(f"cannot import snapshot {snapshot!r}: {first_line(exc)}",
                                "the exporting transaction must still be open") from None


@contextlib.contextmanager
def _savepoint(conn: psycopg.Connection[Any]) -> Iterator[None]:
    conn.execute("SAVEPOINT rc_sp")
    try:
        yield
    except psycopg.Error:
        conn.execute("ROLLBACK TO SAVEPOINT rc_sp")
        conn.execute("RELEASE SAVEPOINT rc_sp")
        raise
    conn.execute("RELEASE SAVEPOINT rc_sp")
