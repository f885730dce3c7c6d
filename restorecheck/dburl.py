"""Database references: what a TARGET/SOURCE argument names, and how to print it safely.

A PostgreSQL database is named by a libpq URL (``postgresql://user:pw@host:port/db``, with libpq
environment variables and ``~/.pgpass`` honoured by libpq itself) or a libpq keyword string
(``host=... dbname=...``). A SQLite database is a path or a ``sqlite:///path`` URL. PostgreSQL URLs and
keyword strings are parsed by libpq itself (``PQconninfoParse`` through psycopg's
``conninfo_to_dict``), so every form libpq takes works here: several hosts
(``postgresql://u@h1:5432,h2:5433/db``), a percent-encoded socket directory as the host
(``postgresql://%2Fvar%2Frun%2Fpostgresql/db``), ``postgres://``, and query parameters
(``?sslmode=require&host=/tmp``). Passwords never leave this module unmasked except through
``PostgresRef.conninfo()`` (for psycopg) and ``PostgresRef.child_env()`` (for libpq tools).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, unquote

from restorecheck.errors import BadURLError

if TYPE_CHECKING:
    from restorecheck.model import EngineName

# the password runs to the '@': only ASCII whitespace ends it (a password may hold U+1680, U+00A0, ...)
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@ \t\r\n\x0b\x0c]*)(?P<tail>@)")
_KW_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")
_PG_HINT = "use postgresql://user@host:port/dbname (libpq's URL form) or host=... dbname=..."
# sqlite[+driver]://[host]/path[?query]: the path is what follows the third slash (so
# sqlite:////abs/path is absolute), percent-decoded; host and query are ignored
_SQLITE_URL = re.compile(r"^sqlite(?:\+\w+)?://[^/?]*(?:/(?P<path>[^?]*))?(?:\?.*)?$", re.IGNORECASE | re.DOTALL)


def mask(text: str) -> str:
    """Replace every password in URLs and ``password=`` keywords inside ``text`` with ``***``."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + "***" + m.group("tail"), text)
    return _KW_PASSWORD.sub(lambda m: m.group("head") + "***", text)


@dataclass(frozen=True)
class PostgresRef:
    """A PostgreSQL database. ``params`` are libpq keywords (host, port, user, dbname, ...)."""

    params: dict[str, str] = field(default_factory=dict)
    password: str | None = field(default=None, repr=False)

    engine: ClassVar[EngineName] = "postgresql"

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
            "hostaddr": "PGHOSTADDR",
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
            "load_balance_hosts": "PGLOADBALANCEHOSTS",
            "sslcrl": "PGSSLCRL",
            "sslcrldir": "PGSSLCRLDIR",
            "sslsni": "PGSSLSNI",
            "sslnegotiation": "PGSSLNEGOTIATION",
            "sslcertmode": "PGSSLCERTMODE",
            "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
            "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
            "gssencmode": "PGGSSENCMODE",
            "channel_binding": "PGCHANNELBINDING",
            "require_auth": "PGREQUIREAUTH",
            "krbsrvname": "PGKRBSRVNAME",
        }
        env = {mapping[k]: str(v) for k, v in self.params.items() if k in mapping}
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def display(self) -> str:
        """A libpq URL for humans (and for ``psql '...'``), password masked."""
        p = self.params
        user = quote(p.get("user", ""), safe="")
        auth = f"{user}{':***' if self.password else ''}@" if user or self.password else ""
        hosts = p["host"].split(",") if p.get("host") else []
        ports = p["port"].split(",") if p.get("port") else []
        query = ""
        if any(h.startswith(("/", "@")) for h in hosts):  # socket directories go in the query
            netloc = f":{p['port']}" if p.get("port") else ""
            query = "?host=" + quote(p["host"], safe="/,@")
        else:
            if len(ports) == 1 and len(hosts) > 1:  # libpq: one port serves every host
                ports *= len(hosts)
            parts = []
            for i in range(max(len(hosts), len(ports))):
                host = hosts[i] if i < len(hosts) else ""
                port = ports[i] if i < len(ports) else ""
                parts.append((f"[{host}]" if ":" in host else host) + (f":{port}" if port else ""))
            netloc = ",".join(parts)
        return f"postgresql://{auth}{netloc}/{quote(p.get('dbname', ''), safe='')}{query}"

    def __str__(self) -> str:
        return self.display()


@dataclass(frozen=True)
class SqliteRef:
    """A SQLite database file."""

    path: Path

    engine: ClassVar[EngineName] = "sqlite"

    def display(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return self.display()


DatabaseRef = PostgresRef | SqliteRef


def is_postgres_url(text: str) -> bool:
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    return scheme in _PG_SCHEMES or (("=" in text) and ("://" not in text) and " " in text.strip())


def _scrub(message: str, text: str) -> str:
    """libpq's parse error with any password it quotes (``invalid percent-encoded token: "<pw>"``)
    replaced by ``***``, then masked."""
    m = _URL_PASSWORD.search(text)
    if m and m.group("pw"):
        for secret in {m.group("pw"), unquote(m.group("pw"))}:
            message = message.replace(secret, "***")
    for kw in _KW_PASSWORD.finditer(text):
        secret = kw.group("pw").strip("'")
        if secret:
            message = message.replace(secret, "***")
    return mask(message)


def parse_postgres(text: str) -> PostgresRef:
    """Parse a ``postgresql://`` (or ``postgres://``) URL or a libpq keyword string with libpq's
    rules. Raises BadURLError (exit 2) naming the problem, the password masked."""
    from psycopg import Error as PsycopgError
    from psycopg.conninfo import conninfo_to_dict

    conninfo = text
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme.lower() not in _PG_SCHEMES:
            raise BadURLError(f"not a PostgreSQL URL: {mask(text)}", _PG_HINT)
        conninfo = "postgresql://" + rest  # SQLAlchemy-style postgresql+psycopg:// names the same
    try:
        parsed = conninfo_to_dict(conninfo)
    except (PsycopgError, ValueError, TypeError) as exc:
        why = _scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else "", text)
        kind = "database URL" if "://" in text else "PostgreSQL connection string"
        raise BadURLError(f"malformed {kind} {mask(text)}" + (f": {why}" if why else ""), _PG_HINT) from None
    params = {k: str(v) for k, v in parsed.items() if v is not None}
    for port in params.get("port", "").split(","):
        if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise BadURLError(f"malformed port {port[:20]!r} in {mask(text)}",
                              "the port must be a number from 1 to 65535") from None
    password = params.pop("password", None)
    return PostgresRef(params, password)


def parse_sqlite(text: str) -> SqliteRef:
    """A SQLite path, or a ``sqlite:///relative/path`` / ``sqlite:////absolute/path`` URL."""
    if text[:7].lower() == "sqlite:":
        m = _SQLITE_URL.match(text)
        if m is None:
            raise BadURLError(f"malformed SQLite URL: {text}", "use sqlite:///relative/file.db or sqlite:////absolute/file.db (SQLAlchemy's form), or just the path")
        if not m.group("path"):
            raise BadURLError(f"SQLite URL names no file: {text}", "use sqlite:///relative/file.db or sqlite:////absolute/file.db (SQLAlchemy's form), or just the path")
        return SqliteRef(Path(unquote(m.group("path"))))
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
