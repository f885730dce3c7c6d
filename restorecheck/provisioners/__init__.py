"""Provisioners by name. PostgreSQL: ``local`` (default), ``docker``, or a ``postgresql://`` URL
(an existing server, where only a uniquely named database is created and dropped). SQLite: a
temporary file (``provisioners/sqlite.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from restorecheck import pgconn
from restorecheck.errors import BadInputError
from restorecheck.pg_hosting import DumpNeeds
from restorecheck.provisioners.base import PgServer

PG_PROVISIONERS = ("local", "docker", "server")


@contextlib.contextmanager
def provision_postgres(
    target: str | None = None,
    *,
    min_major: int | None = None,
    pg_bin: str | Path | None = None,
    keep: bool = False,
    tmp_root: str | Path | None = None,
    start_timeout: float = 60.0,
    sandbox: str = "auto",
    needs: DumpNeeds | None = None,
    size_hint: int | None = None,
) -> Iterator[PgServer]:
    """A ready PostgreSQL server for a throwaway restore, from ``--target`` (default ``local``).

    Restore into ``server.fresh_database()``: on a ``server`` target that is the only thing
    restorecheck creates, and the only thing it drops. ``needs`` (what the dump needs, see
    ``pg_hosting``): ``local`` picks an installation that has it; a docker or server target that
    lacks it is an EnvironmentFailure before anything is restored. ``size_hint``: the bytes of
    data to restore, when known (a small local cluster then runs in memory).
    """
    spec = (target or "local").strip()
    if spec == "local":
        import os

        from restorecheck.provisioners.local import local_cluster
        from restorecheck.sandbox import resolve

        with local_cluster(min_major=min_major, pg_bin=pg_bin, keep=keep, tmp_root=tmp_root,
                           start_timeout=start_timeout, needs=needs, size_hint=size_hint,
                           sandbox=resolve(sandbox, os.environ.get("RESTORECHECK_RUN_AS"))) as server:
            yield server
        return
    if spec == "docker":
        from restorecheck.provisioners.docker import docker_server

        with docker_server(min_major=min_major, keep=keep, pg_bin=pg_bin,
                           start_timeout=start_timeout) as server:
            _check_hosts(server, needs)
            yield server
        return
    if "://" in spec or "=" in spec:
        from restorecheck.dburl import PostgresRef, parse_database
        from restorecheck.provisioners.server import existing_server

        ref = parse_database(spec)
        if not isinstance(ref, PostgresRef):
            raise BadInputError(f"--target {spec} is not a PostgreSQL server URL",
                                "use local, docker, or postgresql://user@host:port/postgres")
        with existing_server(ref, min_major=min_major, pg_bin=pg_bin) as server:
            _check_hosts(server, needs)
            yield server
        return
    raise BadInputError(f"unknown --target {spec!r}",
                        "use local (a throwaway cluster), docker, or a postgresql:// server URL")


def _check_hosts(server: PgServer, needs: DumpNeeds | None) -> None:
    """A docker or server target must have what the dump needs (its catalog says): else exit 3."""
    if needs is None or needs.empty:
        return
    from restorecheck.pg_hosting import check_server

    with pgconn.connect(server.admin.conninfo(), autocommit=True, connect_timeout=15) as conn:
        check_server(conn, f"{server.kind} PostgreSQL {server.version}", needs)
