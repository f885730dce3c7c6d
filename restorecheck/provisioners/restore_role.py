"""The unprivileged role that restores an untrusted backup into an existing server.

On a ``postgresql://`` target the URL's role is usually a superuser, and a dump restored as a
superuser owns the server (``COPY ... TO PROGRAM``, ``ALTER SYSTEM``, ``CREATE ROLE ... SUPERUSER``,
``DROP DATABASE`` of a neighbour). So restorecheck makes a fresh role for each run:

- a random name with the sweepable prefix ``restorecheck_`` and a random password that only this
  process knows; ``NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS``, a connection
  limit, ``LOGIN`` with a password that expires (``VALID UNTIL``) in case the run is killed;
- beside it a ``NOLOGIN`` role ``<name>_owner`` that owns the scratch database and nothing else
  (``PgServer.fresh_database(owner=...)`` revokes ``CONNECT`` on it from ``PUBLIC``), granted to it;
- the roles the dump names are granted to it (so ``ALTER ... OWNER TO`` works) and are members of
  the owner role: the ones restorecheck created (``NOLOGIN``, no rights), and existing ones only
  when they are *inert* (no attribute, a member of nothing, owning or holding rights on nothing in
  any database, nor a database, tablespace or parameter); a privileged existing role is never granted;
- afterwards their sessions are terminated, what they own is reassigned to the admin and their
  rights dropped, and both roles are dropped, on every way out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Iterable, Iterator

from restorecheck import pgconn
from restorecheck.dburl import PostgresRef
from restorecheck.errors import ProvisionError, first_line
from restorecheck.provisioners.base import PgServer, unique_name

log = logging.getLogger("restorecheck")

# parallel pg_restore opens --jobs workers plus its leader; a few more for psql and slack
_CONNECTIONS_PER_JOB = 1
_CONNECTION_SLACK = 3
_VALID_FOR = "2 days"  # the password stops working even if a killed run left the role behind


@dataclasses.dataclass(frozen=True)
class RestoreRole:
    """The roles made for one restore: ``name`` logs in and restores; ``owner`` (NOLOGIN) owns the
    scratch database. The dump's roles and ``name`` are members of ``owner``, so that a dump role
    that becomes a table's owner may create in the database's ``public`` schema (which belongs to
    ``pg_database_owner``), as ``ALTER ... OWNER TO`` demands; ``name`` is a member of the dump's roles.
    Two roles because a role cannot both be a member of the dump's roles and have them as members."""

    name: str
    owner: str
    password: str = dataclasses.field(repr=False)
    admin: PostgresRef
    # pg_authid.rolpassword (the verifier) right after creation; None where the admin may not read it
    verifier: str | None = dataclasses.field(default=None, repr=False)

    def ref(self, dbname: str) -> PostgresRef:
        """The admin's connection parameters with this role's name and password, into ``dbname``."""
        params = {k: v for k, v in self.admin.params.items() if k not in ("passfile", "service")}
        params.update({"user": self.name, "dbname": dbname})
        return PostgresRef(params, self.password)


_NO_RIGHTS = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"


def create_restore_role(server: PgServer, *, jobs: int = 1) -> RestoreRole:
    """Create the restore role and the scratch database's owner role (drop with ``drop_restore_role``)."""
    import psycopg
    from psycopg import sql

    name = unique_name()
    owner = f"{name}_owner"
    password = secrets.token_urlsafe(32)
    limit = max(1, jobs) * _CONNECTIONS_PER_JOB + _CONNECTION_SLACK
    made: list[str] = []
    try:
        with pgconn.connect(server.admin.conninfo(), autocommit=True, connect_timeout=15) as conn:
            # VALID UNTIL takes a literal: ask the server for the time first
            row = conn.execute(sql.SQL("SELECT (now() + interval {})::text").format(
                sql.Literal(_VALID_FOR))).fetchone()
            assert row is not None
            conn.execute(sql.SQL(f"CREATE ROLE {{}} NOLOGIN {_NO_RIGHTS}").format(sql.Identifier(owner)))
            made.append(owner)
            conn.execute(sql.SQL(
                f"CREATE ROLE {{}} LOGIN {_NO_RIGHTS} CONNECTION LIMIT {{}} PASSWORD {{}} VALID UNTIL {{}}"
            ).format(sql.Identifier(name), sql.Literal(limit), sql.Literal(password), sql.Literal(row[0])))
            made.append(name)
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), sql.Identifier(name)))
            if not server.info.get("superuser"):
                # CREATE DATABASE ... OWNER needs the admin to be able to SET ROLE to the owner
                conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(owner)))
            verifier = _verifier(conn, name)
    except psycopg.Error as exc:
        for made_name in reversed(made):
            drop_restore_role(server.admin, made_name)
        raise ProvisionError(
            f"could not create the unprivileged restore role on {server.admin.display()}: {first_line(exc)}",
            "connect as a superuser or a role with CREATEROLE and CREATEDB, or use --target local",
        ) from None
    return RestoreRole(name, owner, password, server.admin, verifier)


def _verifier(conn: object, name: str) -> str | None:
    import psycopg

    assert isinstance(conn, psycopg.Connection)
    try:
        with conn.transaction():
            row = conn.execute("SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = %s",
                               (name,)).fetchone()
    except psycopg.Error:  # only a superuser reads pg_authid
        return None
    return None if row is None or row[0] is None else str(row[0])


def password_changed(role: RestoreRole) -> bool:
    """Whether the restore changed the restore role's password (any role may change its own:
    ``ALTER ROLE CURRENT_USER PASSWORD``), which would let the dump's author log in as it."""
    import psycopg

    if role.verifier is None:
        return False
    try:
        with pgconn.connect(role.admin.conninfo(), autocommit=True, connect_timeout=15) as conn:
            return _verifier(conn, role.name) != role.verifier
    except psycopg.Error:
        return False


def drop_restore_roles(admin: PostgresRef, role: RestoreRole) -> None:
    """Drop both roles of ``role``: the one that logs in first (its sessions terminated)."""
    drop_restore_role(admin, role.name, databases_of=role.owner)
    drop_restore_role(admin, role.owner)


@contextlib.contextmanager
def restore_role(server: PgServer, *, jobs: int = 1) -> Iterator[RestoreRole]:
    """``create_restore_role``, dropped on every way out (sessions terminated first)."""
    role = create_restore_role(server, jobs=jobs)
    try:
        yield role
    finally:
        drop_restore_roles(server.admin, role)


def drop_restore_role(admin: PostgresRef, name: str, *, databases_of: str | None = None) -> None:
    """Terminate ``name``'s sessions, reassign what it owns to the admin, drop its rights and the role.

    ``REASSIGN OWNED`` and ``DROP OWNED`` act on the current database and on shared objects: they
    run in the admin's database and in each database that ``databases_of`` (default: the role
    itself) still owns, i.e. one kept by --keep.
    """
    import psycopg
    from psycopg import sql

    ident = sql.Identifier(name)
    try:
        with pgconn.connect(admin.conninfo(), autocommit=True, connect_timeout=15) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE usename = %s AND pid <> pg_backend_pid()", (name,))
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None:
                return
            owned = [r[0] for r in conn.execute(
                "SELECT d.datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba "
                "WHERE r.rolname = %s AND d.datname <> current_database() AND d.datallowconn",
                (databases_of or name,))]
            for db in [*owned, None]:
                target = conn if db is None else pgconn.connect(admin.with_dbname(db).conninfo(),
                                                                autocommit=True, connect_timeout=15)
                try:
                    target.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(ident))
                    target.execute(sql.SQL("DROP OWNED BY {}").format(ident))
                finally:
                    if db is not None:
                        target.close()
            conn.execute(sql.SQL("DROP ROLE {}").format(ident))
    except psycopg.Error as exc:
        log.warning("could not drop the restore role %s: %s (drop it with DROP OWNED BY and DROP ROLE)",
                    name, first_line(exc))


_INERT_SQL = """
SELECT r.rolname FROM pg_catalog.pg_roles r
WHERE r.rolname = ANY(%s)
  AND NOT (r.rolsuper OR r.rolcreatedb OR r.rolcreaterole OR r.rolreplication OR r.rolbypassrls)
  AND r.rolname NOT LIKE 'pg\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m WHERE m.member = r.oid)
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_shdepend d
                  WHERE d.refclassid = 'pg_catalog.pg_authid'::regclass AND d.refobjid = r.oid)
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_database db WHERE db.datdba = r.oid)
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_tablespace t WHERE t.spcowner = r.oid)
"""


def grant_roles(server: PgServer, role: RestoreRole, names: Iterable[str],
                created: Iterable[str]) -> tuple[list[str], list[str]]:
    """Grant the dump's roles to the restore role, so that ``OWNER TO`` and ``SET ROLE`` work.

    ``created`` (made NOLOGIN by restorecheck for this run) are always granted; an existing role
    only when it is inert (see the module docstring): membership in a privileged role would hand
    its rights to the dump. Returns (granted, refused), each sorted.
    """
    import psycopg
    from psycopg import sql

    wanted = sorted(set(names) | set(created))
    if not wanted:
        return [], []
    created_set = set(created)
    granted: list[str] = []
    refused: list[str] = []
    try:
        with pgconn.connect(server.admin.conninfo(), autocommit=True, connect_timeout=15) as conn:
            inert = {r[0] for r in conn.execute(_INERT_SQL, ([n for n in wanted if n not in created_set],))}
            for name in wanted:
                if name not in created_set and name not in inert:
                    refused.append(name)
                    continue
                try:
                    with conn.transaction():
                        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(name),
                                                                      sql.Identifier(role.name)))
                        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role.owner),
                                                                      sql.Identifier(name)))
                    granted.append(name)
                except psycopg.Error as exc:
                    log.warning("could not grant role %s to the restore role: %s", name, first_line(exc))
                    refused.append(name)
    except psycopg.Error as exc:
        raise ProvisionError(f"could not grant the dump's roles to the restore role: {first_line(exc)}",
                             "connect as a superuser or a role with CREATEROLE, or use --target local") from None
    return granted, refused
