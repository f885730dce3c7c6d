"""What every PostgreSQL provisioner yields: a ready server and a way to make fresh databases in it.

A provisioner is a context manager factory. ``with provision(...) as server:`` gives a
``PgServer`` that is up and reachable as a superuser; leaving the block removes everything the
provisioner made (cluster, container, database, directories) on every way out, unless ``keep``.
Inside a server, ``server.fresh_database()`` creates a uniquely named ``restorecheck_<hex>``
database from ``template0`` and drops it afterwards; it never touches a database it did not
create.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restorecheck import pgconn
from restorecheck.dburl import PostgresRef
from restorecheck.errors import ProvisionError, ScratchDatabaseReplacedError
from restorecheck.process import PgInstallation

log = logging.getLogger("restorecheck")

DB_PREFIX = "restorecheck_"


def unique_name(prefix: str = DB_PREFIX) -> str:
    """A throwaway name with the sweepable prefix."""
    return f"{prefix}{secrets.token_hex(6)}"


@dataclass
class PgServer:
    """A reachable PostgreSQL server. ``admin`` connects as a superuser to a maintenance database."""

    admin: PostgresRef
    version: str  # server_version, e.g. "16.2"
    kind: str  # local | docker | server
    tools: PgInstallation | None = None  # client tools that can talk to it (pg_restore, psql)
    info: dict[str, Any] = field(default_factory=dict)  # e.g. data directory, log file, container id
    # Makes an empty directory the server may use for CREATE TABLESPACE; None where restorecheck
    # has no access to the server's file system (an existing server, a container).
    tablespace_dir: Callable[[str], Path] | None = None
    # How the restore tools that talk to this server are confined (restorecheck.sandbox): None means
    # the unprivileged user without an OS sandbox (resolved by the engine). The tools see the
    # rw/ro paths (a local cluster's socket directory, its installation) and the network only when
    # ``tool_network`` (a server or container they reach over TCP).
    sandbox: Any = None
    tool_binds_rw: tuple[Path, ...] = ()
    tool_binds_ro: tuple[Path, ...] = ()
    tool_network: bool = True

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @contextlib.contextmanager
    def fresh_database(
        self,
        *,
        name: str | None = None,
        encoding: str | None = "UTF8",
        lc_collate: str | None = None,
        lc_ctype: str | None = None,
        keep: bool = False,
        locale_provider: str | None = None,
        icu_locale: str | None = None,
        icu_rules: str | None = None,
        builtin_locale: str | None = None,
        owner: str | None = None,
    ) -> Iterator[PostgresRef]:
        """Create a new empty database from template0, yield a ref to it, drop it afterwards.

        ``locale_provider`` (libc, icu or builtin; PostgreSQL 15+) with ``icu_locale``/``icu_rules``
        or ``builtin_locale`` (17+). A locale the server lacks is a ``ProvisionError``.
        ``owner``: the (unprivileged) role that restores into it; it then owns the database and
        ``CONNECT`` is revoked from ``PUBLIC``, so that only it and superusers connect."""
        import psycopg
        from psycopg import sql

        dbname = name or unique_name()
        parts = [sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(dbname))]
        if encoding:
            parts.append(sql.SQL("ENCODING {}").format(sql.Literal(encoding)))
        if lc_collate:
            parts.append(sql.SQL("LC_COLLATE {}").format(sql.Literal(lc_collate)))
        if lc_ctype:
            parts.append(sql.SQL("LC_CTYPE {}").format(sql.Literal(lc_ctype)))
        if locale_provider:
            if locale_provider not in ("libc", "icu", "builtin"):
                raise ProvisionError(f"unknown locale provider {locale_provider!r}")
            parts.append(sql.SQL("LOCALE_PROVIDER {}").format(sql.SQL(locale_provider)))
        for key, value in (("ICU_LOCALE", icu_locale), ("ICU_RULES", icu_rules), ("BUILTIN_LOCALE", builtin_locale)):
            if value:
                parts.append(sql.SQL(key + " {}").format(sql.Literal(value)))
        if owner:
            parts.append(sql.SQL("OWNER {}").format(sql.Identifier(owner)))
        stmt = sql.SQL(" ").join(parts)
        try:
            with pgconn.connect(self.admin.conninfo(), autocommit=True, connect_timeout=15) as conn:
                conn.execute(stmt)
                if owner:
                    conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
                        sql.Identifier(dbname)))
                row = conn.execute("SELECT oid::bigint FROM pg_catalog.pg_database WHERE datname = %s",
                                   (dbname,)).fetchone()
        except psycopg.Error as exc:
            raise ProvisionError(
                f"could not create database {dbname} on {self.admin.display()}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__}",
                "check that the role may CREATE DATABASE",
            ) from None
        oid = int(row[0]) if row else None
        try:
            yield self.admin.with_dbname(dbname)
        finally:
            if not keep:
                # on an existing server, never a database of that name that is not ours; a
                # throwaway server goes as a whole anyway
                # on a throwaway cluster the database goes with the cluster: a failed drop is no news
                drop_database(self.admin, dbname, oid=oid if self.kind == "server" else None,
                              quiet=self.kind == "local")


@dataclass(frozen=True)
class DatabaseIdentity:
    """Which database a name stood for when restorecheck created it: its oid and its owner."""

    name: str
    oid: int
    owner: str


def database_identity(admin: PostgresRef, dbname: str) -> DatabaseIdentity | None:
    """The oid and owner of ``dbname`` now, None when there is no such database."""
    import psycopg

    try:
        with pgconn.connect(admin.conninfo(), autocommit=True, connect_timeout=15) as conn:
            row = conn.execute("SELECT d.oid::bigint, pg_catalog.pg_get_userbyid(d.datdba) "
                               "FROM pg_catalog.pg_database d WHERE d.datname = %s", (dbname,)).fetchone()
    except psycopg.Error as exc:
        raise ProvisionError(f"could not look up database {dbname} on {admin.display()}: "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}",
                             "check that the target server is still up") from None
    return None if row is None else DatabaseIdentity(dbname, int(row[0]), str(row[1]))


def check_database_identity(admin: PostgresRef, expected: DatabaseIdentity) -> None:
    """Raise ``ScratchDatabaseReplacedError`` unless ``expected`` is still there, same oid, same owner.

    Called after the restore and before anything is fingerprinted: a dump that dropped and
    recreated (or renamed, or gave away) the database it was restored into must not be judged on
    what it left there."""
    now = database_identity(admin, expected.name)
    hint = "the backup is hostile or broken: do not trust it; nothing else was judged"
    if now is None:
        raise ScratchDatabaseReplacedError(
            f"the restore dropped or renamed the database it was restored into ({expected.name})", hint)
    if now.oid != expected.oid:
        raise ScratchDatabaseReplacedError(
            f"the restore replaced the database it was restored into ({expected.name}: oid "
            f"{expected.oid}, now {now.oid})", hint)
    if now.owner != expected.owner:
        raise ScratchDatabaseReplacedError(
            f"the restore gave away the database it was restored into ({expected.name}: owner "
            f"{expected.owner}, now {now.owner})", hint)


def drop_database(admin: PostgresRef, dbname: str, *, oid: int | None = None, quiet: bool = False) -> None:
    """Terminate the sessions of ``dbname`` and drop it. Only call it for a database we created:
    with its ``oid``, a database of that name that is not the one we created is left alone.
    ``quiet``: a failure is logged at debug level (the database goes with its throwaway cluster)."""
    import psycopg
    from psycopg import sql

    try:
        with pgconn.connect(admin.conninfo(), autocommit=True, connect_timeout=15) as conn:
            if oid is not None:
                row = conn.execute("SELECT oid::bigint FROM pg_catalog.pg_database WHERE datname = %s",
                                   (dbname,)).fetchone()
                if row is None:
                    return
                if int(row[0]) != oid:
                    log.warning("database %s is no longer the one restorecheck created (oid %s, now %s): "
                                "left alone", dbname, oid, row[0])
                    return
            # Restored subscriptions block DROP DATABASE even WITH (FORCE) (PITFALLS C9).
            _drop_subscriptions(admin, dbname)
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )
            # a restore may have made it a template, which DROP DATABASE refuses
            with contextlib.suppress(psycopg.Error):
                conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(dbname)))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))
    except psycopg.Error as exc:
        (log.debug if quiet else log.warning)("could not drop database %s: %s", dbname, str(exc).strip())


def _drop_subscriptions(admin: PostgresRef, dbname: str) -> None:
    import psycopg
    from psycopg import sql

    try:
        with pgconn.connect(admin.with_dbname(dbname).conninfo(), autocommit=True, connect_timeout=15) as c:
            rows = c.execute(
                "SELECT subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
                "WHERE d.datname = current_database()"
            ).fetchall()
            for (sub,) in rows:
                ident = sql.Identifier(sub)
                c.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
                c.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
                c.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
    except psycopg.Error:
        return
