"""``server``: an existing PostgreSQL server given by URL.

restorecheck only ever creates one uniquely named ``restorecheck_<random>`` database there
(``PgServer.fresh_database``) and drops that one afterwards, terminating its own sessions first.
It never writes into, or drops, a database it did not create. The restore itself runs as an
unprivileged role made for the run (``provisioners/restore_role.py``; README, threat model).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from restorecheck import pgconn
from restorecheck.dburl import PostgresRef
from restorecheck.errors import ProvisionError, SourceUnreachableError, first_line
from restorecheck.process import choose, discover
from restorecheck.provisioners.base import PgServer


@contextlib.contextmanager
def existing_server(
    ref: PostgresRef, *, min_major: int | None = None, pg_bin: str | Path | None = None
) -> Iterator[PgServer]:
    """Check the server is reachable, new enough, and lets us create databases; yield it."""
    import psycopg

    admin = ref if ref.dbname else ref.with_dbname("postgres")
    try:
        with pgconn.connect(admin.conninfo(), connect_timeout=15, autocommit=True) as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), r.rolsuper, r.rolcreatedb "
                "FROM pg_roles r WHERE r.rolname = current_user"
            ).fetchone()
            if admin.password is None and conn.info.password:
                # libpq found it in PGPASSFILE or ~/.pgpass: the restore tools run in the sandbox
                # with a clean environment and no home, so they are handed it like a URL's password
                admin = PostgresRef(dict(admin.params), conn.info.password)
    except psycopg.Error as exc:
        raise SourceUnreachableError(
            f"cannot connect to the target server {admin.display()}: {first_line(exc)}",
            "check the URL, the password (PGPASSWORD or ~/.pgpass) and that the server is up",
        ) from None
    assert row is not None
    version = str(row[0]).split()[0]
    major = int(version.split(".")[0])
    if min_major is not None and major < min_major:
        raise ProvisionError(
            f"the target server runs PostgreSQL {version}, older than the backup's {min_major}",
            f"use a server of version {min_major} or later, or --target local",
        )
    if not (row[1] or row[2]):
        raise ProvisionError(
            f"the role connecting to {admin.display()} may not create databases",
            "grant CREATEDB, or use --target local",
        )
    tools = None
    with contextlib.suppress(Exception):
        tools = choose(discover(pg_bin), min_major=major, need=("pg_restore", "psql"))
    # the restore tools run sandboxed: with the network, and with the socket directory of a server
    # reached over a Unix socket
    hosts = [h for h in str(admin.params.get("host") or "").split(",") if h.startswith("/")]
    yield PgServer(admin=admin, version=version, kind="server", tools=tools,
                   info={"superuser": bool(row[1])}, tool_binds_rw=tuple(Path(h) for h in hosts))
