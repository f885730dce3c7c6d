"""Database references: what a TARGET/SOURCE argument names, and how to print it safely.

A PostgreSQL database is named by a libpq URL (``postgresql://user:pw@host:port/db``, with libpq
environment variables and ``~/.pgpass`` honoured by libpq itself) or a libpq keyword string
(``host=... dbname=...``). A SQLite database is a path or a ``sqlite:///path`` URL. URLs are
parsed with SQLAlchemy's ``make_url``; passwords never leave this module unmasked except
through ``PostgresRef.conninfo()`` (for psycopg) and ``PostgresRef.child_env()`` (for libpq tools).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restorecheck.errors import BadURLError

# the password runs to the '@': only ASCII whitespace ends it (a password may hold U+1680, U+00A0, ...)
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@ \t\r\n\x0b\x0c]*)(?P<tail>@)")
_KW_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")


def mask(text: str) -> str:
    """Replace every password in URLs and ``password=`` keywords inside ``text`` with ``***``."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + "***" + m.group("tail"), text)
    return _KW_PASSWORD.sub(lambda m: m.group("head") + "***", text)


@dataclass(frozen=True)
class PostgresRef:
    """A PostgreSQL database. ``params`` are libpq keywords (host, port, user, dbname, ...)."""

    params: dict[str, str] = field(default_factory=dict)
    password: str | None = field(default=None, repr=False)

    engine = "postgresql"

    @property
    def dbname(self) -> str | None:
        return self.params.get("dbname")

    def with_dbname(self, dbname: str) -> PostgresRef:
        return PostgresRef({**self.params, "dbname": dbname}, self.password)

    def conninfo(self, **overrides: Any) -> str:
        """A libpq conninfo string for psycopg (carries the password: never print it)."""
        from psycopg.conninfo import make_conninfo

        kw: dict[str, Any] = dict(self.params)
        if self.password is not None:
            kw["password"] = self.password
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return make_conninfo("", **kw)

    def child_env(self) -> dict[str, str]:
        """libpq environment variables for a child tool (pg_dump, psql): secrets stay out of argv."""
        mapping = {
            "host": "PGHOST",
            "port": "PGPORT",
            "user": "PGUSER",
            "dbname": "PGDATABASE",
            "sslmode": "PGSSLMODE",
            "sslrootcert": "PGSSLROOTCERT",
            "sslcert": "PGSSLCERT",
            "sslkey": "PGSSLKEY",
            "passfile": "PGPASSFILE",
            "options": "PGOPTIONS",
            "connect_timeout": "PGCONNECT_TIMEOUT",
            "application_name": "PGAPPNAME",
            "service": "PGSERVICE",
            "target_session_attrs": "PGTARGETSESSIONATTRS",
        }
        env = {mapping[k]: str(v) for k, v in self.params.items() if k in mapping}
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def display(self) -> str:
        """A URL for humans, password masked."""
        p = self.params
        user = p.get("user", "")
        auth = f"{user}{':***' if self.password else ''}@" if user or self.password else ""
        host = p.get("host", "")
        if host.startswith("/"):
            hostpart = ""
            query = f"?host={host}"
        else:
            hostpart = host
            query = ""
        port = f":{p['port']}" if p.get("port") else ""
        return f"postgresql://{auth}{hostpart}{port}/{p.get('dbname', '')}{query}"

    def __str__(self) -> str:
        return self.display()


@dataclass(frozen=True)
class SqliteRef:
    """A SQLite database file."""

    path: Path

    engine = "sqlite"

    def display(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return self.display()


DatabaseRef = PostgresRef | SqliteRef


def is_postgres_url(text: str) -> bool:
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    return scheme in _PG_SCHEMES or (("=" in text) and ("://" not in text) and " " in text.strip())


def parse_postgres(text: str) -> PostgresRef:
    """Parse a ``postgresql://`` URL or a libpq keyword string."""
    if "://" not in text:
        try:
            from psycopg.conninfo import conninfo_to_dict

            kw = {k: str(v) for k, v in conninfo_to_dict(text).items() if v is not None}
        except Exception:
            raise BadURLError(
                f"malformed PostgreSQL connection string: {mask(text)}",
                "use postgresql://user@host:port/dbname",
            ) from None
        password = kw.pop("password", None)
        return PostgresRef(kw, password)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise BadURLError(
            f"malformed database URL: {mask(text)}", "use postgresql://user@host:port/dbname"
        ) from None
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise BadURLError(f"not a PostgreSQL URL: {mask(text)}", "use postgresql://user@host:port/dbname")
    params: dict[str, str] = {}
    if url.host:
        params["host"] = url.host
    try:
        port = url.port
    except ValueError:
        raise BadURLError(f"malformed port in URL: {mask(text)}", "the port must be a number") from None
    if port is not None:
        params["port"] = str(port)
    if url.username:
        params["user"] = url.username
    if url.database:
        params["dbname"] = url.database
    for k, v in url.query.items():
        params[k] = v if isinstance(v, str) else v[-1]
    password = url.password if url.password is not None else params.pop("password", None)
    return PostgresRef(params, None if password is None else str(password))


def parse_sqlite(text: str) -> SqliteRef:
    if text.startswith("sqlite:"):
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(text)
        except ArgumentError:
            raise BadURLError(f"malformed SQLite URL: {text}", "use sqlite:///path/to/file.db") from None
        if not url.database:
            raise BadURLError(f"SQLite URL names no file: {text}", "use sqlite:///path/to/file.db")
        return SqliteRef(Path(url.database))
    return SqliteRef(Path(text))


def parse_database(text: str) -> DatabaseRef:
    """A TARGET/SOURCE argument: a PostgreSQL URL or keyword string, or a SQLite path/URL."""
    if not text or not text.strip():
        raise BadURLError("empty database name", "give a postgresql:// URL or a SQLite file path")
    lowered = text.lower()
    if lowered.startswith("sqlite:"):
        return parse_sqlite(text)
    if "://" in text:
        scheme = lowered.split("://", 1)[0]
        if scheme in _PG_SCHEMES:
            return parse_postgres(text)
        raise BadURLError(
            f"unsupported database URL scheme {scheme!r}: {mask(text)}",
            "use postgresql://... or a SQLite path",
        )
    if re.match(r"^\s*\w+\s*=", text):
        return parse_postgres(text)
    return parse_sqlite(text)
