"""``docker``: a throwaway ``postgres:<major>`` container through testcontainers.

No engine reachable means exit 3 with a message that names ``local``. The container is removed
on every way out (testcontainers' ``__exit__``; a failed start is stopped too). Client tools
(pg_restore, psql) run on the host, so a local installation of at least the same major is needed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from restorecheck import pgconn
from restorecheck.dburl import PostgresRef
from restorecheck.errors import ProvisionError
from restorecheck.process import PgInstallation, choose, discover
from restorecheck.provisioners.base import PgServer

log = logging.getLogger("restorecheck")

DEFAULT_MAJOR = 16
NO_ENGINE_HINT = "start Docker or set DOCKER_HOST, or use --target local (a throwaway cluster, no Docker needed)"


def engine_reachable(docker_module: Any) -> tuple[bool, str]:
    """(True, server version) when a Docker engine answers a ping, else (False, why)."""
    host = os.environ.get("DOCKER_HOST", "")
    sock = host[len("unix://"):] if host.startswith("unix://") else "" if host else "/var/run/docker.sock"
    if sock and not os.path.exists(sock) and getattr(docker_module, "__name__", "") == "docker":
        # docker-py leaks the socket of a failed connect; a missing socket file needs no attempt
        return False, f"nothing listens at {sock}"
    try:
        client = docker_module.from_env(timeout=5, version="auto" if os.environ.get("DOCKER_API_VERSION") else "1.41")
        try:
            client.ping()
            version = client.version().get("Version", "?")
        finally:
            client.close()
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        if "FileNotFoundError" in text or "No such file" in text:
            where = os.environ.get("DOCKER_HOST") or "/var/run/docker.sock"
            return False, f"nothing listens at {where}"
        return False, text[:200]
    return True, f"Docker {version}"


def image_for(major: int | None) -> str:
    return f"postgres:{major or DEFAULT_MAJOR}"


def container_kwargs(major: int | None, password: str) -> dict[str, Any]:
    """The PostgresContainer arguments (pure; unit-tested)."""
    return {
        "image": image_for(major),
        "username": "postgres",
        "password": password,
        "dbname": "postgres",
        "driver": None,
    }


def server_from_container(host: str, port: int, password: str, version: str,
                          tools: PgInstallation | None, container_id: str | None) -> PgServer:
    """A PgServer for a started container (pure; unit-tested)."""
    admin = PostgresRef({"host": host, "port": str(port), "user": "postgres", "dbname": "postgres"}, password)
    return PgServer(admin=admin, version=version, kind="docker", tools=tools,
                    info={"container": container_id})


def postgres_container_class() -> Any:
    """testcontainers' PostgresContainer: ``testcontainers.community.postgres`` from 4.15 (where the
    old path warns), ``testcontainers.postgres`` before. Raises ImportError without testcontainers."""
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:
        from testcontainers.postgres import PostgresContainer
    return PostgresContainer


@contextlib.contextmanager
def docker_server(
    *,
    min_major: int | None = None,
    keep: bool = False,
    pg_bin: str | Path | None = None,
    start_timeout: float = 120.0,
    _docker: Any = None,
    _container_cls: Any = None,
) -> Iterator[PgServer]:
    """Start ``postgres:<major>``; yield a PgServer; remove the container afterwards."""
    try:
        if _docker is None:
            import docker

            _docker = docker
        if _container_cls is None:
            _container_cls = postgres_container_class()
    except ImportError:
        raise ProvisionError("the docker target needs testcontainers",
                             "pip install 'restorecheck[docker]', or use --target local") from None
    ok, why = engine_reachable(_docker)
    if not ok:
        raise ProvisionError(f"no Docker engine is reachable for --target docker: {why}", NO_ENGINE_HINT)
    major = min_major or DEFAULT_MAJOR
    tools = None
    with contextlib.suppress(Exception):
        tools = choose(discover(pg_bin), min_major=major, need=("pg_restore", "psql"))
    password = secrets.token_urlsafe(18)
    container = _container_cls(**container_kwargs(major, password))
    try:
        container.start()
    except Exception as exc:
        with contextlib.suppress(Exception):
            container.stop()
        raise ProvisionError(f"could not start {image_for(major)}: {str(exc).splitlines()[0][:200]}",
                             "check 'docker pull " + image_for(major) + "', or use --target local") from None
    try:
        host = container.get_container_host_ip()
        port = int(container.get_exposed_port(5432))
        cid = getattr(getattr(container, "_container", None), "id", None)
        server = server_from_container(host, port, password, str(major), tools, cid)
        with contextlib.suppress(Exception), pgconn.connect(server.admin.conninfo(), connect_timeout=10) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            if row:
                server.version = str(row[0]).split()[0]
        yield server
    finally:
        if keep:
            log.warning("kept container %s (%s)", cid if "cid" in dir() else "?", image_for(major))
        else:
            with contextlib.suppress(Exception):
                container.stop()
