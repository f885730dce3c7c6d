"""The docker provisioner's code paths, with fakes standing in for Docker (not for a database).

The real container test lives in tests/integration and skips when no engine is reachable.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from restorecheck.errors import ExitCode, ProvisionError
from restorecheck.provisioners.docker import (
    container_kwargs,
    docker_server,
    engine_reachable,
    postgres_container_class,
)


class DownDocker:
    @staticmethod
    def from_env(timeout: int = 5, **kw: Any) -> Any:
        raise ConnectionError("Error while fetching server API version: FileNotFoundError(2)")


class UpClient:
    def ping(self) -> bool:
        return True

    def version(self) -> dict[str, str]:
        return {"Version": "27.0"}

    def close(self) -> None:
        pass


class UpDocker:
    @staticmethod
    def from_env(timeout: int = 5, **kw: Any) -> Any:
        return UpClient()


class FakeContainer:
    instances: ClassVar[list[FakeContainer]] = []

    def __init__(self, **kw: Any) -> None:
        self.kw = kw
        self.started = self.stopped = False
        FakeContainer.instances.append(self)

    def start(self) -> FakeContainer:
        self.started = True
        return self

    def stop(self) -> None:
        self.stopped = True

    def get_container_host_ip(self) -> str:
        return "127.0.0.1"

    def get_exposed_port(self, port: int) -> int:
        return 1  # nothing listens: the version probe fails quietly, the major is kept


class FailingContainer(FakeContainer):
    def start(self) -> FakeContainer:
        raise RuntimeError("pull access denied for postgres")


def test_no_engine_is_exit_3_and_names_local() -> None:
    with pytest.raises(ProvisionError) as info, docker_server(_docker=DownDocker, _container_cls=FakeContainer):
        pass
    assert info.value.exit_code == ExitCode.ENVIRONMENT
    assert "--target local" in info.value.one_line()
    assert "nothing listens" in info.value.one_line()


def test_engine_reachable_reports_version() -> None:
    assert engine_reachable(UpDocker) == (True, "Docker 27.0")


def test_container_arguments_pick_the_major() -> None:
    kw = container_kwargs(15, "pw")
    assert kw["image"] == "postgres:15" and kw["password"] == "pw" and kw["driver"] is None
    assert container_kwargs(None, "pw")["image"] == "postgres:16"


def test_container_is_stopped_after_the_block_and_after_an_exception() -> None:
    FakeContainer.instances.clear()
    with docker_server(min_major=15, _docker=UpDocker, _container_cls=FakeContainer) as server:
        assert server.kind == "docker" and server.major == 15
        assert server.admin.password and server.admin.password not in server.admin.display()
    assert FakeContainer.instances[-1].stopped
    with pytest.raises(KeyError), docker_server(_docker=UpDocker, _container_cls=FakeContainer):
        raise KeyError("boom")
    assert FakeContainer.instances[-1].stopped


def test_keep_leaves_the_container_running() -> None:
    FakeContainer.instances.clear()
    with docker_server(keep=True, _docker=UpDocker, _container_cls=FakeContainer):
        pass
    assert not FakeContainer.instances[-1].stopped


def test_failed_start_is_cleaned_up_and_exit_3() -> None:
    FailingContainer.instances.clear()
    with pytest.raises(ProvisionError) as info, docker_server(_docker=UpDocker, _container_cls=FailingContainer):
        pass
    assert FailingContainer.instances[-1].stopped
    assert "pull access denied" in info.value.one_line()


def test_the_installed_testcontainers_takes_our_container_arguments() -> None:
    # runs at the declared floor too (.ci/run's lowest-versions job): the class is found under the
    # path that version has, and its constructor takes every argument docker_server passes
    import inspect

    cls = postgres_container_class()
    params = inspect.signature(cls.__init__).parameters
    assert set(container_kwargs(15, "pw")) <= set(params)
    for method in ("start", "stop", "get_container_host_ip", "get_exposed_port"):
        assert callable(getattr(cls, method, None)), method
