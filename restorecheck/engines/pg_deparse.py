"""Definitions that differ only in how PostgreSQL deparses them: settled on the restored server.

``pg_get_constraintdef``, ``pg_get_viewdef`` and ``pg_get_expr`` print a parse tree, and parsing
that text again does not always give the same tree: a varchar column's ``CHECK (c IN ('a', 'b'))``
reads ``(c)::text = ANY ((ARRAY['a'::character varying, ...])::text[])`` in the source, pg_dump
writes that text, and the restored server parses it into ``... = ANY (ARRAY[('a'::character
varying)::text, ...])``. Same constraint, other text; other round trips and other majors (15 ->
18) drift likewise. Comparing texts would fail a faithful backup.

So where a definition's text differs, the reference's text is parsed and deparsed *on the
restored server* (the round trip pg_dump's own output went through) and the result compared with
the restored text: equal means the restored object is what the reference's text makes there,
which is what a faithful backup gives; anything else stays a finding. A changed list
(``IN ('a', 'b', 'c')``) round-trips to another text and is still caught.

The reference text is untrusted (a manifest from elsewhere, or a live source), and the restored
database came from an untrusted backup. A round trip therefore:

- runs only for shapes that can be embedded as one expression or one query: the text must pass
  ``lexically_contained`` (quotes, parentheses, no ``;``, comments, dollar quotes, backslashes
  outside E'' strings, ``U&`` escapes), and expressions are embedded inside parentheses, so the
  text cannot end the expression early and add a subcommand;
- builds no statement that evaluates the expression: ``ADD CONSTRAINT ... NOT VALID`` (no scan),
  ``ALTER COLUMN ... SET DEFAULT`` and ``CREATE VIEW`` (stored, not run); never an index (building
  one evaluates its expressions);
- sends one statement through the extended protocol (a second statement is refused by the server),
  in a transaction that is always rolled back, with ``statement_timeout`` and ``lock_timeout``;
- connects as the role that restored the backup: the unprivileged restore role on a server target
  (never a superuser there; with ``--trust-backup`` a superuser URL role means no round trip), the
  sandboxed throwaway cluster's own role on a local or docker target;
- is skipped when the restored database has an enabled event trigger (its code would run on our DDL);
- checks afterwards that exactly the one expected object was added, and reads its definition.

Not round-tripped (the text comparison stands): index definitions, trigger WHEN clauses, policies,
rules and generated columns (their statements would evaluate or need more than one expression).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import psycopg
from psycopg import sql

from restorecheck import pgconn
from restorecheck.dburl import PostgresRef

log = logging.getLogger("restorecheck")

MAX_ROUND_TRIPS = 500  # per restored copy: a few are typical; a bound keeps a hostile manifest cheap
MAX_TEXT = 200_000  # characters of one definition
STATEMENT_TIMEOUT = "5s"
LOCK_TIMEOUT = "2s"

_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$\x80-\U0010ffff]")


def lexically_contained(text: str) -> bool:
    """True when ``text`` can be embedded in parentheses without ending them early.

    A conservative lexer for deparsed PostgreSQL (``standard_conforming_strings`` on): '...'
    strings ('' inside), E'...' strings (backslash escapes), "..." identifiers ("" inside);
    parentheses must balance outside them. Anything this lexer might read differently from the
    server's is refused: ``;``, ``--`` and ``/*`` comments, ``$`` (dollar quotes, parameters),
    a backslash outside an E'' string, ``U&`` escapes, a NUL, and a quote glued to a word other
    than the prefixes E, N, B, X. False means "do not round-trip", never "wrong"."""
    if "\0" in text or len(text) > MAX_TEXT:
        return False
    depth = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "'":
            j = i - 1
            while j >= 0 and _IDENT_CHAR.match(text[j]):
                j -= 1
            prefix = text[j + 1:i]
            if prefix.upper() not in ("", "E", "N", "B", "X"):
                return False
            end = _string_end(text, i + 1, escapes=prefix.upper() == "E")
            if end < 0:
                return False
            i = end
            continue
        if ch == '"':
            end = text.find('"', i + 1)
            while end >= 0 and text.startswith('""', end):
                end = text.find('"', end + 2)
            if end < 0:
                return False
            i = end + 1
            continue
        if ch in ";$\\" or text.startswith("--", i) or text.startswith("/*", i):
            return False
        if ch in "uU" and text.startswith("&", i + 1):
            return False
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


def _string_end(text: str, i: int, *, escapes: bool) -> int:
    """The index after the closing quote of a string whose content starts at ``i``; -1 if none."""
    n = len(text)
    while i < n:
        ch = text[i]
        if escapes and ch == "\\":
            i += 2
            continue
        if ch == "'":
            if text.startswith("''", i):
                i += 2
                continue
            return i + 1
        i += 1
    return -1


_CHECK_SUFFIX = re.compile(r"((?: NO INHERIT| NOT VALID)*)\Z")


def split_check(definition: str) -> tuple[str, bool] | None:
    """``CHECK (<expr>)[ NO INHERIT][ NOT VALID]`` -> (expr, no_inherit); None for any other shape
    (``NOT ENFORCED`` included) or an expression ``lexically_contained`` refuses."""
    m = _CHECK_SUFFIX.search(definition)
    suffix = m.group(1) if m else ""
    body = definition[: len(definition) - len(suffix)]
    if not body.startswith("CHECK (") or not body.endswith(")"):
        return None
    inner = body[len("CHECK ("):-1]
    # balanced on its own: the ")" at the end is the one that closes "CHECK ("
    if not inner.strip() or not lexically_contained(inner):
        return None
    return inner, " NO INHERIT" in suffix


def view_query(text: str) -> str | None:
    """A view's query as pg_get_viewdef prints it, without its final ';', if it can be embedded."""
    query = text.strip()
    if query.endswith(";"):
        query = query[:-1]
    return query if query and lexically_contained(query) else None


# --- what differs ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One definition whose text differs: where it is in the restored schema and how to round-trip it."""

    path: tuple[str, ...]  # keys into the schema snapshot, down to the text
    kind: str  # "check", "domain_check", "view", "default"
    schema: str
    name: str  # the table, view or domain
    reference_text: str
    restored_text: str
    column: str | None = None
    no_inherit: bool = False
    validated: bool = True


def _split_qualified(qualified: str) -> tuple[str, str] | None:
    """``schema.name`` as the catalog snapshot writes it (names may hold dots: only if unambiguous)."""
    parts = qualified.split(".")
    return (parts[0], parts[1]) if len(parts) == 2 else None


def candidates(reference: Mapping[str, Any], restored: Mapping[str, Any]) -> Iterator[Candidate]:
    """The differing definitions of objects both schema snapshots have, that a round trip may settle."""
    for table, ref_t in _common(reference, restored, "tables"):
        res_t = restored["tables"][table]
        where = _split_qualified(table)
        if where is None:
            continue
        for con, ref_c, res_c in _pairs(ref_t, res_t, "constraints"):
            a, b = ref_c.get("definition"), res_c.get("definition")
            if (ref_c.get("type") == res_c.get("type") == "check" and isinstance(a, str) and isinstance(b, str)
                    and a != b):
                yield Candidate(("tables", table, "constraints", con, "definition"), "check", *where, a, b,
                                validated=bool(res_c.get("validated", True)))
        for col, ref_c, res_c in _pairs(ref_t, res_t, "columns"):
            a, b = ref_c.get("default"), res_c.get("default")
            if (isinstance(a, str) and isinstance(b, str) and a != b and not ref_c.get("generated")
                    and not res_c.get("generated") and not ref_c.get("identity")):
                yield Candidate(("tables", table, "columns", col, "default"), "default", *where, a, b, column=col)
    for section in ("views", "matviews"):
        for view, ref_v in _common(reference, restored, section):
            res_v = restored[section][view]
            where = _split_qualified(view)
            a, b, raw = ref_v.get("definition"), res_v.get("definition"), ref_v.get(QUERY_TEXT)
            if where is not None and isinstance(a, str) and isinstance(b, str) and a != b and isinstance(raw, str):
                yield Candidate((section, view, "definition"), "view", *where, raw, b)
    for domain, ref_d in _common(reference, restored, "types"):
        res_d = restored["types"][domain]
        where = _split_qualified(domain)
        if where is None or ref_d.get("kind") != "domain" or res_d.get("kind") != "domain":
            continue
        for con, ref_c, res_c in _pairs(ref_d, res_d, "constraints"):
            a, b = ref_c.get("definition"), res_c.get("definition")
            if isinstance(a, str) and isinstance(b, str) and a != b:
                yield Candidate(("types", domain, "constraints", con, "definition"), "domain_check", *where, a, b,
                                validated=bool(res_c.get("validated", True)))


# the raw text of a view's query in a manifest (pg_get_viewdef under search_path pg_catalog): what a
# round trip parses; the compared "definition" is normalised (pg_catalog.normalise_definition)
QUERY_TEXT = "query_text"


def _common(reference: Mapping[str, Any], restored: Mapping[str, Any], section: str
            ) -> Iterator[tuple[str, Mapping[str, Any]]]:
    a, b = reference.get(section), restored.get(section)
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return
    for name in sorted(set(a) & set(b)):
        if isinstance(a[name], Mapping) and isinstance(b[name], Mapping):
            yield name, a[name]


def _pairs(a: Mapping[str, Any], b: Mapping[str, Any], key: str
           ) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    x, y = a.get(key), b.get(key)
    if not isinstance(x, Mapping) or not isinstance(y, Mapping):
        return
    for name in sorted(set(x) & set(y)):
        if isinstance(x[name], Mapping) and isinstance(y[name], Mapping):
            yield name, x[name], y[name]


# --- the round trips ------------------------------------------------------------------------------


def _temp_name() -> str:
    return f"restorecheck_rt_{secrets.token_hex(6)}"


def round_trip_statement(c: Candidate, temp: str) -> sql.Composed | None:
    """The one statement that makes the restored server parse the reference's text (None: not safely)."""
    if c.kind in ("check", "domain_check"):
        split = split_check(c.reference_text)
        if split is None:
            return None
        expr, no_inherit = split
        if c.kind == "check":
            return sql.SQL("ALTER TABLE ONLY {} ADD CONSTRAINT {} CHECK ({}){} NOT VALID").format(
                sql.Identifier(c.schema, c.name), sql.Identifier(temp), sql.SQL(expr),
                sql.SQL(" NO INHERIT" if no_inherit else ""))
        if no_inherit:
            return None
        return sql.SQL("ALTER DOMAIN {} ADD CONSTRAINT {} CHECK ({}) NOT VALID").format(
            sql.Identifier(c.schema, c.name), sql.Identifier(temp), sql.SQL(expr))
    if c.kind == "default":
        if not lexically_contained(c.reference_text) or c.column is None:
            return None
        return sql.SQL("ALTER TABLE ONLY {} ALTER COLUMN {} SET DEFAULT ({})").format(
            sql.Identifier(c.schema, c.name), sql.Identifier(c.column), sql.SQL(c.reference_text))
    if c.kind == "view":
        query = view_query(c.reference_text)
        if query is None:
            return None
        return sql.SQL("CREATE VIEW {} AS {}").format(sql.Identifier(c.schema, temp), sql.SQL(query))
    return None


# the constraints of a candidate's owner: a table (check) or a domain (domain_check), by schema and name
_CONSTRAINTS_OF = {
    "check": "JOIN pg_class t ON t.oid = co.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
             "WHERE n.nspname = %s AND t.relname = %s",
    "domain_check": "JOIN pg_type t ON t.oid = co.contypid JOIN pg_namespace n ON n.oid = t.typnamespace "
                    "WHERE n.nspname = %s AND t.typname = %s",
}


def _constraints(conn: psycopg.Connection[Any], c: Candidate) -> list[tuple[Any, ...]]:
    """(name, definition, contype) of every constraint of ``c``'s table or domain."""
    return conn.execute("SELECT co.conname, pg_get_constraintdef(co.oid), co.contype FROM pg_constraint co "
                        + _CONSTRAINTS_OF[c.kind], (c.schema, c.name)).fetchall()


def _relations_in(conn: psycopg.Connection[Any], schema: str) -> int:
    row = conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = %s", (schema,)).fetchone()
    return int(row[0]) if row else -1


def _read_back(conn: psycopg.Connection[Any], c: Candidate, temp: str, before: int) -> str | None:
    """The definition the round trip made, after checking that exactly that object was added."""
    if c.kind in _CONSTRAINTS_OF:
        rows = _constraints(conn, c)
        mine = [r for r in rows if r[0] == temp]
        if len(rows) != before + 1 or len(mine) != 1 or mine[0][2] != "c":
            return None
        text = str(mine[0][1])
    elif c.kind == "default":
        row = conn.execute(
            "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_class t ON t.oid = d.adrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_attribute a ON a.attrelid = t.oid "
            "AND a.attnum = d.adnum WHERE n.nspname = %s AND t.relname = %s AND a.attname = %s",
            (c.schema, c.name, c.column)).fetchone()
        return None if row is None or row[0] is None else str(row[0])
    elif c.kind == "view":
        rows = conn.execute(
            "SELECT c.relname, c.relkind, pg_get_viewdef(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (c.schema, temp)).fetchall()
        if len(rows) != 1 or rows[0][1] != "v" or _relations_in(conn, c.schema) != before + 1:
            return None
        from restorecheck.engines.pg_catalog import normalise_definition

        return normalise_definition(str(rows[0][2]))
    else:
        return None
    if c.validated and text.endswith(" NOT VALID"):
        text = text[: -len(" NOT VALID")]
    return text


def _count_before(conn: psycopg.Connection[Any], c: Candidate) -> int:
    """What ``_read_back`` expects one more of: the owner's constraints, or the schema's relations."""
    if c.kind in _CONSTRAINTS_OF:
        return len(_constraints(conn, c))
    if c.kind == "view":
        return _relations_in(conn, c.schema)
    return 0


def round_trip(conn: psycopg.Connection[Any], c: Candidate) -> str | None:
    """The reference's text as the connected server deparses it; None when it cannot be told safely.

    ``conn`` is not in autocommit; everything happens in one transaction that is rolled back."""
    temp = _temp_name()
    stmt = round_trip_statement(c, temp)
    if stmt is None:
        return None
    try:
        with conn.transaction(force_rollback=True):
            for name, value in (("statement_timeout", STATEMENT_TIMEOUT), ("lock_timeout", LOCK_TIMEOUT),
                                ("search_path", "pg_catalog"), ("standard_conforming_strings", "on"),
                                ("check_function_bodies", "off")):
                conn.execute("SELECT pg_catalog.set_config(%s, %s, true)", (name, value))
            before = _count_before(conn, c)
            # binary=True: the extended protocol, which refuses a second statement in the text
            conn.execute(stmt, binary=True)
            return _read_back(conn, c, temp, before)
    except psycopg.Error as exc:
        log.debug("deparse round trip of %s failed: %s", ".".join(c.path), str(exc).strip().splitlines()[:1])
        return None


@dataclasses.dataclass
class Settled:
    """What the round trips did: the restored schema with the settled texts, and a summary."""

    schema: Mapping[str, Any]
    equivalent: list[str] = dataclasses.field(default_factory=list)
    tried: int = 0
    skipped: str | None = None

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tried": self.tried, "equivalent": self.equivalent}
        if self.skipped:
            out["skipped"] = self.skipped
        return out


def settle(reference: Mapping[str, Any], restored: Mapping[str, Any],
           connect: Callable[[], psycopg.Connection[Any]], *, local: bool) -> Settled:
    """The restored schema where each definition that the restored server deparses from the
    reference's text exactly as it deparses the restored object's carries the reference's text
    (so the comparison sees them equal); every other difference is left for the schema check.

    ``connect``: a new connection to the restored database as the role that restored it.
    ``local``: a throwaway target restorecheck provisioned (its own role may be its superuser)."""
    todo = list(candidates(reference, restored))
    if not todo:
        return Settled(restored)
    out = Settled(copy.deepcopy(dict(restored)))
    try:
        conn = connect()
    except Exception as exc:  # the comparison then stands as it is
        out.skipped = f"no connection for round trips: {str(exc).strip().splitlines()[:1]}"
        return out
    try:
        why = _unsafe(conn, local=local)
        if why:
            out.skipped = why
            return out
        for c in todo[:MAX_ROUND_TRIPS]:
            out.tried += 1
            text = round_trip(conn, c)
            if text is not None and text == c.restored_text:
                _set(out.schema, c.path, _get(reference, c.path))
                out.equivalent.append(".".join(c.path[1:]) if c.kind != "view" else c.path[1])
        if len(todo) > MAX_ROUND_TRIPS:
            out.skipped = f"only the first {MAX_ROUND_TRIPS} of {len(todo)} differing definitions were round-tripped"
    finally:
        conn.close()  # never committed: every round trip was rolled back
    return out


def _unsafe(conn: psycopg.Connection[Any], *, local: bool) -> str | None:
    """Why no round trip may run on this connection, or None."""
    row = conn.execute("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").fetchone()
    if row is None or (bool(row[0]) and not local):
        return "the role connected to the server target is a superuser: no DDL from a reference runs as one"
    row = conn.execute("SELECT count(*) FROM pg_catalog.pg_event_trigger WHERE evtenabled <> 'D'").fetchone()
    conn.rollback()
    if row is None or int(row[0]) > 0:
        return "the restored database has enabled event triggers, which would run on a round trip's DDL"
    return None


def _get(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = tree
    for key in path:
        node = node[key]
    return node


def _set(tree: Any, path: tuple[str, ...], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def connector(ref: PostgresRef) -> Callable[[], psycopg.Connection[Any]]:
    """Connections for ``settle``: not autocommit, the client encoding pinned like the fingerprint's."""
    def connect() -> psycopg.Connection[Any]:
        from restorecheck.engines.pg_session import pin_client_encoding

        conn = pgconn.connect(ref.conninfo(application_name="restorecheck-deparse"), autocommit=True,
                               connect_timeout=15)
        pin_client_encoding(conn)
        conn.autocommit = False
        return conn
    return connect
