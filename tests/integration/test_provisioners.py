"""Throwaway instances on real servers: started, usable, and gone afterwards on every way out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from restorecheck.dburl import PostgresRef
from restorecheck.errors import ExitCode, ProvisionError, SourceUnreachableError
from restorecheck.provisioners import provision_postgres
from restorecheck.provisioners.base import PgServer
from restorecheck.provisioners.local import local_cluster
from restorecheck.provisioners.server import existing_server
from tests.conftest import MAJORS, execute, installation_for

pytestmark = pytest.mark.postgres

_STARTS: dict[int, int | None] = {}  # pid -> start time, to tell a process from a later one with its pid


def _pid_alive(pid: int) -> bool:
    """Running (a zombie that only waits to be reaped by its parent, this test, is not), and the same
    process as when first asked about (pids are reused quickly here: pid_max is 32768)."""
    from restorecheck.provisioners.local import process_start_time

    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    start = _STARTS.setdefault(pid, process_start_time(pid))
    return state != "Z" and process_start_time(pid) == start


def _postmaster_pid(server: PgServer) -> int:
    """The server's process as seen from here: bubblewrap's (whose PID namespace holds the postmaster)
    or, without the sandbox, the postmaster's."""
    from restorecheck.provisioners.local import process_start_time

    pid = int(server.info["server_pid"])
    _STARTS[pid] = process_start_time(pid)  # recorded while it surely runs
    return pid


def _assert_gone(base: str, pid: int) -> None:
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(pid), f"postmaster {pid} still running"
    assert not Path(base).exists(), f"{base} left behind"


@pytest.mark.parametrize("major", MAJORS)
def test_local_cluster_starts_answers_and_is_removed(major: int) -> None:
    inst = installation_for(major)
    with local_cluster(installation=inst) as server:
        base, pid = server.info["base"], _postmaster_pid(server)
        assert server.major == major and server.kind == "local"
        with psycopg.connect(server.admin.conninfo()) as conn:
            row = conn.execute("SELECT current_setting('server_version_num')::int / 10000, "
                               "current_setting('fsync'), rolsuper FROM pg_roles "
                               "WHERE rolname = current_user").fetchone()
        assert row == (major, "off", True)
        # in the sandbox there is no network at all; without it TCP on 127.0.0.1 needs the password.
        if server.info["sandbox"]["kind"] == "bwrap":
            assert "tcp" not in server.info
            assert execute(server.admin, "SHOW listen_addresses") == [("",)]
        else:
            with psycopg.connect(server.info["tcp"].conninfo()) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(PostgresRef(dict(server.admin.params), "wrong").conninfo(), connect_timeout=5)
        assert oct(os.stat(server.info["socket_dir"]).st_mode & 0o777) == "0o700"
        if os.geteuid() == 0:
            assert os.stat(server.info["datadir"]).st_uid != 0, "the server must not run as root"
    _assert_gone(base, pid)


def test_local_cluster_removed_after_an_exception_in_the_block() -> None:
    state: dict[str, object] = {}
    with pytest.raises(RuntimeError, match="boom"), local_cluster(installation=installation_for(18)) as s:
        state["base"], state["pid"] = s.info["base"], _postmaster_pid(s)
        raise RuntimeError("boom")
    _assert_gone(str(state["base"]), int(state["pid"]))  # type: ignore[call-overload]


def test_local_cluster_removed_after_sigterm_to_its_holder(tmp_path: Path) -> None:
    script = tmp_path / "hold.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from restorecheck.signals import handle_termination
        from restorecheck.provisioners.local import local_cluster
        from restorecheck.process import PgInstallation
        inst = PgInstallation(Path({str(installation_for(18).bindir)!r}), "18", "test",
                              ("initdb", "pg_ctl", "postgres", "pg_dump", "pg_restore", "psql"))
        with handle_termination():
            with local_cluster(installation=inst) as s:
                print(s.info["base"], s.info["server_pid"], flush=True)
                time.sleep(600)
    """))
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True) as proc:
        _sigterm_holder(proc)


def _sigterm_holder(proc: subprocess.Popen[str]) -> None:
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert len(line) == 2, "holder did not start a cluster"
        base, pid = line[0], int(line[1])
        assert _pid_alive(pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    _assert_gone(base, pid)


def test_keep_leaves_the_cluster_running_and_connectable() -> None:
    from restorecheck.provisioners.local import stop_command

    inst = installation_for(18)
    with local_cluster(installation=inst, keep=True) as server:
        base, pid = server.info["base"], _postmaster_pid(server)
    try:
        assert _pid_alive(pid)
        with psycopg.connect(server.admin.conninfo()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with psycopg.connect(PostgresRef(dict(server.admin.params)).conninfo(),
                             passfile=server.info["passfile"]) as conn:  # as the printed line says
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        import shutil

        cmd = stop_command(pid, server.info["sandbox"]["kind"] == "bwrap")
        subprocess.run(cmd, shell=True, check=True)
        shutil.rmtree(base, ignore_errors=True)
    _assert_gone(base, pid)


def test_min_major_above_every_installation_is_exit_3() -> None:
    with pytest.raises(Exception) as info, provision_postgres("local", min_major=99):
        pass
    assert getattr(info.value, "exit_code", None) == ExitCode.ENVIRONMENT
    assert "PostgreSQL >= 99" in str(info.value)


def test_server_provisioner_drops_only_its_own_database(pg_server: PgServer) -> None:
    execute(pg_server.admin, "CREATE DATABASE neighbour")
    try:
        execute(pg_server.admin.with_dbname("neighbour"), "CREATE TABLE keep_me(x int); INSERT INTO keep_me VALUES (1)")
        with provision_postgres(_url(pg_server.admin)) as server:
            assert server.kind == "server"
            with server.fresh_database() as ref:
                assert ref.dbname and ref.dbname.startswith("restorecheck_")
                execute(ref, "CREATE TABLE t(x int)")
                # an open session of ours must not block the drop
                held = psycopg.connect(ref.conninfo())
                mine = ref.dbname
        names = {r[0] for r in execute(pg_server.admin, "SELECT datname FROM pg_database")}
        assert mine not in names
        assert "neighbour" in names
        assert execute(pg_server.admin.with_dbname("neighbour"), "SELECT x FROM keep_me") == [(1,)]
        held.close()
    finally:
        execute(pg_server.admin, "DROP DATABASE IF EXISTS neighbour")


def test_server_provisioner_refuses_an_older_server(pg_server: PgServer) -> None:
    with pytest.raises(ProvisionError, match="older than the backup"), existing_server(
        pg_server.admin, min_major=pg_server.major + 1
    ):
        pass


def test_unreachable_server_is_exit_3_without_password() -> None:
    ref = PostgresRef({"host": "127.0.0.1", "port": "1", "user": "u", "dbname": "d"}, "hunter2-secret")
    with pytest.raises(SourceUnreachableError) as info, existing_server(ref):
        pass
    assert info.value.exit_code == ExitCode.ENVIRONMENT
    assert "hunter2" not in info.value.one_line()


def _url(ref: PostgresRef) -> str:
    p = ref.params
    return f"postgresql://{p['user']}:{ref.password}@/postgres?host={p['host']}&port={p['port']}"


def test_docker_integration_needs_an_engine() -> None:
    import docker as docker_module

    from restorecheck.provisioners.docker import engine_reachable

    ok, why = engine_reachable(docker_module)
    if not ok:
        pytest.skip(f"no Docker engine reachable here ({why}); the docker code paths are unit-tested "
                    "with fakes in tests/unit/test_docker_provisioner.py")
    with provision_postgres("docker", min_major=16) as server, psycopg.connect(server.admin.conninfo()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_sweep_removes_only_dead_runs_directories() -> None:
    import shutil
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="rc-sweep-"))  # pytest's tmp_path is private to root
    os.chmod(tmp_path, 0o755)
    try:
        _sweep_case(tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_unreachable_tmp_root_is_a_clear_error(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o700)
    with pytest.raises(ProvisionError, match="cannot reach"), local_cluster(
        installation=installation_for(18), tmp_root=private
    ):
        pass
    assert list(private.iterdir()) == []


def _sweep_case(tmp_path: Path) -> None:
    from restorecheck.provisioners.local import stray_directories, sweep

    dead = tmp_path / "restorecheck-dead"
    (dead / "data").mkdir(parents=True)
    (dead / "owner.pid").write_text("999999999\n")  # no such process
    (dead / "data" / "postmaster.pid").write_text("999999998\n")
    busy = tmp_path / "restorecheck-busy"  # a run still in initdb: its owner is alive
    (busy / "data").mkdir(parents=True)
    (busy / "owner.pid").write_text(f"{os.getpid()}\n")
    unrelated = tmp_path / "something-else"
    unrelated.mkdir()
    with local_cluster(installation=installation_for(18), tmp_root=tmp_path) as server:
        live = Path(server.info["base"])
        assert stray_directories(tmp_path) == [dead]
        assert sweep(tmp_path) == [dead]
        assert live.exists() and busy.exists() and unrelated.exists() and not dead.exists()


def test_sigterm_during_cleanup_does_not_cut_it_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM that lands while the cluster is being stopped waits until the cleanup is done."""
    from restorecheck.provisioners import local
    from restorecheck.signals import Terminated, handle_termination

    real_stop = local.stop_server

    def stop_with_a_signal(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # held: delivered after the cleanup
        real_stop(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(local, "stop_server", stop_with_a_signal)
    state: dict[str, object] = {}
    with pytest.raises(Terminated), handle_termination(), local_cluster(installation=installation_for(18)) as s:
        state["base"], state["pid"] = s.info["base"], _postmaster_pid(s)
    _assert_gone(str(state["base"]), int(state["pid"]))  # type: ignore[call-overload]


def test_sweep_stops_an_orphan_server_whose_run_is_gone_and_never_a_kept_one() -> None:
    """A server whose restorecheck died (and that nothing killed) is stopped by doctor --sweep; one
    kept with --keep is left running; a pid named in a run directory is trusted only when its start
    time and command line match."""
    import json
    import shutil
    import tempfile

    from restorecheck.provisioners.local import RunDir, stray_directories, sweep

    root = Path(tempfile.mkdtemp(prefix="rc-sweep-orphan-"))
    os.chmod(root, 0o755)
    try:
        with local_cluster(installation=installation_for(15), tmp_root=root, keep=True) as kept:
            kept_pid = _postmaster_pid(kept)
        with local_cluster(installation=installation_for(15), tmp_root=root, keep=True) as orphan:
            orphan_pid, orphan_base = _postmaster_pid(orphan), Path(orphan.info["base"])
        meta = RunDir(orphan_base).read_meta()
        meta.update(keep=False, owner_pid=999_999_999, owner_start=1)  # its run died without cleanup
        (orphan_base / "run.json").write_text(json.dumps(meta))
        liar = root / "restorecheck-liar"  # names a live process that is not its server
        liar.mkdir()
        (liar / "cluster").mkdir()
        (liar / "run.json").write_text(json.dumps({"owner_pid": 999_999_999, "owner_start": 1,
                                                   "server_pid": os.getpid(), "server_start": 1}))
        os.utime(liar, (0, 0))
        assert set(stray_directories(root)) == {orphan_base, liar}
        assert set(sweep(root)) == {orphan_base, liar}
        _assert_gone(str(orphan_base), orphan_pid)
        assert _pid_alive(kept_pid) and Path(kept.info["base"]).exists()
    finally:
        from restorecheck.provisioners.local import stop_command

        for pid in (locals().get("kept_pid"), locals().get("orphan_pid")):
            if pid and _pid_alive(pid):
                subprocess.run(stop_command(pid, True), shell=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


# --- small clusters in memory (local.memory_parent) ----------------------------------------------


def _memory_here() -> bool:
    from restorecheck.provisioners.local import MEMORY_DIR, _is_tmpfs

    return _is_tmpfs(MEMORY_DIR)


needs_tmpfs = pytest.mark.skipif(not _memory_here() and not os.environ.get("CI"),
                                 reason="/dev/shm is not a tmpfs on this machine")


@needs_tmpfs
def test_a_small_cluster_runs_in_memory_works_sandboxed_and_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMPDIR", raising=False)
    with local_cluster(installation=installation_for(18), size_hint=10 << 20) as server:
        base, pid = server.info["base"], _postmaster_pid(server)
        assert base.startswith("/dev/shm/restorecheck-"), base
        assert server.info["datadir_on"] == "memory (tmpfs)"
        execute(server.admin, "CREATE TABLE t AS SELECT g FROM generate_series(1, 50000) g")
        assert execute(server.admin, "SELECT count(*) FROM t") == [(50000,)]
        if os.geteuid() == 0:
            assert os.stat(server.info["datadir"]).st_uid != 0, "the server must not run as root"
        assert oct(os.stat(server.info["socket_dir"]).st_mode & 0o777) == "0o700"
    _assert_gone(base, pid)


@needs_tmpfs
def test_only_a_known_small_size_goes_to_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from restorecheck.provisioners import local

    monkeypatch.delenv("TMPDIR", raising=False)
    assert local.memory_parent(1 << 20, None) == local.MEMORY_DIR
    with monkeypatch.context() as m:
        m.setenv("TMPDIR", "/var/tmp")  # where temporary files go was said: there
        assert local.memory_parent(1 << 20, None) is None
    assert local.memory_parent(None, None) is None  # size unknown (verify of a dump): disk
    assert local.memory_parent(400 << 20, None) is None  # 64 MiB + 3 x 400 MiB > 1 GiB
    monkeypatch.setattr(local, "_mem_available", lambda: 200 << 20)  # under 4 x the estimate
    assert local.memory_parent(1 << 20, None) is None
    monkeypatch.undo()
    monkeypatch.setenv("RESTORECHECK_TMPFS", "0")
    assert local.memory_parent(1 << 20, None) is None
    monkeypatch.delenv("RESTORECHECK_TMPFS")
    monkeypatch.setattr(local, "MEMORY_DIR", Path("/tmp"))  # not a tmpfs here
    if not local._is_tmpfs(Path("/tmp")):
        assert local.memory_parent(1 << 20, None) is None
    # tmp_root (TMPDIR) says where: never memory
    with local_cluster(installation=installation_for(18), size_hint=1 << 20, tmp_root="/tmp") as server:
        assert server.info["datadir_on"] == "disk" and server.info["base"].startswith("/tmp/")


@needs_tmpfs
def test_sweep_finds_a_dead_runs_cluster_in_memory_too() -> None:
    from restorecheck.provisioners.local import MEMORY_DIR, stray_directories, sweep

    dead = MEMORY_DIR / f"restorecheck-dead-{os.getpid()}"
    (dead / "data").mkdir(parents=True)
    try:
        (dead / "owner.pid").write_text("999999999\n")  # no such process
        (dead / "data" / "postmaster.pid").write_text("999999998\n")
        assert dead in stray_directories()
        assert dead in sweep()
        assert not dead.exists()
    finally:
        import shutil

        shutil.rmtree(dead, ignore_errors=True)


@needs_tmpfs
def test_only_a_trusted_uncompressed_dump_restores_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dump runs SQL as it restores, so a few bytes of a hostile one can make gigabytes: an
    untrusted dump's cluster stays on disk whatever its size; with --trust-backup a small
    uncompressed one goes to memory."""
    from restorecheck import pipeline
    from restorecheck.engines.base import RestoreOptions

    monkeypatch.delenv("TMPDIR", raising=False)
    dump = tmp_path / "small.sql"
    dump.write_text("CREATE TABLE t (x int);\nINSERT INTO t SELECT generate_series(1, 100);\n"
                    "-- PostgreSQL database dump complete\n")
    untrusted = pipeline.verify(dump)
    assert untrusted.extra["restore"]["datadir_on"] == "disk"
    trusted = pipeline.verify(dump, restore=RestoreOptions(trust_backup=True))
    assert trusted.extra["restore"]["datadir_on"] == "memory (tmpfs)"
    assert [t.rows_restored for t in trusted.tables] == [100]
