"""The one runner of external programs (restorecheck/runner.py), with real processes (no server),
and its injection: callers tested with a fake runner, without touching subprocess."""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from restorecheck.engines.pg_jail import Input, ToolJail
from restorecheck.errors import ToolNotFoundError
from restorecheck.process import PgInstallation, discover, tool_version
from restorecheck.runner import Command, Completed, MiB, SubprocessRunner, current_runner, run, use_runner
from restorecheck.sandbox import Sandbox

# A tool that starts a grandchild (its own child, in its group) and sleeps; both pids are written out.
SPAWNER = "echo $$ > '{d}/leader'; sleep 300 & echo $! > '{d}/grandchild'; wait"


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for init to reap it is not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _pids(d: Path) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if (d / "leader").exists() and (d / "grandchild").exists():
            texts = [(d / n).read_text().strip() for n in ("leader", "grandchild")]
            if all(texts):
                return [int(t) for t in texts]
        time.sleep(0.01)
    raise AssertionError("the tool did not start its grandchild")


def _gone(pids: list[int], within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.02)
    return False


# --- stopping: cancel and deadline kill the whole group -------------------------------------------


def test_cancel_kills_the_tool_and_its_grandchild(tmp_path: Path) -> None:
    cancel = threading.Event()
    out: list[Completed] = []
    t = threading.Thread(target=lambda: out.append(run(["sh", "-c", SPAWNER.format(d=tmp_path)], cancel=cancel,
                                                       poll=0.05)))
    t.start()
    pids = _pids(tmp_path)
    assert all(_alive(p) for p in pids)
    cancel.set()
    t.join(10)
    assert not t.is_alive() and out
    res = out[0]
    assert res.cancelled and not res.timed_out and not res.ok and res.returncode == -9
    assert _gone(pids), [p for p in pids if _alive(p)]


def test_the_deadline_kills_the_whole_group_and_says_timed_out(tmp_path: Path) -> None:
    t0 = time.monotonic()
    res = run(["sh", "-c", SPAWNER.format(d=tmp_path)], timeout=0.5)
    assert res.timed_out and not res.cancelled and not res.ok
    assert 0.5 <= res.seconds < 5 and time.monotonic() - t0 < 5
    assert _gone(_pids(tmp_path))
    # an absolute deadline (time.monotonic()) works the same way, the earlier of the two applies
    res = run(["sleep", "30"], deadline=time.monotonic() + 0.2, timeout=60)
    assert res.timed_out and res.seconds < 5


def test_sigterm_grace_lets_the_tool_clean_up_then_sigkill_follows(tmp_path: Path) -> None:
    polite = tmp_path / "cleaned-up"
    res = run(["sh", "-c", f"trap 'touch {polite}; exit 0' TERM; sleep 30 & wait"], timeout=0.3, grace=5)
    assert res.timed_out and polite.exists() and res.seconds < 5
    res = run(["sh", "-c", "trap '' TERM; sleep 30"], timeout=0.3, grace=0.3)  # ignores SIGTERM
    assert res.timed_out and res.returncode == -9 and res.seconds < 5


def test_strays_left_by_a_tool_that_exited_are_killed(tmp_path: Path) -> None:
    """A tool that exits and leaves a child running in its group: the child goes with it."""
    res = run(["sh", "-c", f"sleep 300 & echo $! > '{tmp_path}/grandchild'; echo $$ > '{tmp_path}/leader'"],
              timeout=30)
    assert res.ok and not res.timed_out and res.seconds < 5
    assert _gone(_pids(tmp_path))


def test_ctrl_c_in_the_caller_kills_the_group_and_propagates(tmp_path: Path) -> None:
    def interrupt(elapsed: float) -> None:
        if (tmp_path / "grandchild").exists():
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(["sh", "-c", SPAWNER.format(d=tmp_path)], on_tick=interrupt, poll=0.05)
    assert _gone(_pids(tmp_path))


# --- output: bounded, no deadlock -------------------------------------------------------------------


def test_100_mib_of_stderr_keeps_a_bounded_head_and_tail_without_deadlock() -> None:
    script = ("printf 'first line\\n' >&2; head -c 104857600 /dev/zero | tr '\\0' x >&2; "
              "printf '\\nlast line\\n' >&2; echo done")
    tracemalloc.start()
    try:
        res = run(["sh", "-c", script], timeout=120, stderr_limit=1 * MiB)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.ok and res.stdout == "done\n"
    assert res.stderr.startswith("first line\n") and res.stderr.endswith("\nlast line\n")
    kept = len(res.stderr.encode()) - len(f"\n[... {res.stderr_dropped} bytes left out by restorecheck ...]\n")
    assert kept == 1 * MiB
    assert res.stderr_dropped == 104857600 + len("first line\n\nlast line\n") - 1 * MiB
    assert peak < 16 * MiB, f"peak Python memory {peak / MiB:.1f} MiB for 100 MiB of stderr"


def test_both_pipes_flooded_at_once_do_not_deadlock() -> None:
    script = "head -c 20000000 /dev/zero >&2 & head -c 30000000 /dev/zero; wait"
    res = run(["sh", "-c", script], timeout=60, stdout_limit=1 * MiB, stderr_limit=1 * MiB)
    assert res.ok and not res.timed_out
    assert len(res.stdout) == 1 * MiB and res.stdout_dropped == 30000000 - 1 * MiB
    assert res.stderr_dropped == 20000000 - 1 * MiB


def test_stdout_to_a_sink_and_a_sink_that_refuses_stops_the_tool(tmp_path: Path) -> None:
    got = bytearray()
    res = run(["sh", "-c", "head -c 3000000 /dev/zero"], stdout=got.extend)
    assert res.ok and len(got) == 3000000 and res.stdout == ""

    class TooBig(Exception):
        pass

    def refuse(block: bytes) -> None:
        if (tmp_path / "grandchild").exists():
            raise TooBig

    with pytest.raises(TooBig):
        run(["sh", "-c", f"{SPAWNER.format(d=tmp_path)} & while :; do echo data; sleep 0.01; done"],
            stdout=refuse, timeout=30)
    assert _gone(_pids(tmp_path))


def test_stdout_to_a_file_and_discarded(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run(["sh", "-c", "echo to-file"], stdout=out).stdout == ""
    assert out.read_text() == "to-file\n"
    assert run(["sh", "-c", "echo gone"], stdout="discard").stdout == ""


# --- stdin --------------------------------------------------------------------------------------


def test_a_feed_survives_a_tool_that_stops_reading() -> None:
    closed: list[bool] = []

    def feed() -> Iterator[bytes]:
        try:
            for _ in range(2000):  # 200 MiB offered, 10 bytes read
                yield b"y" * (100 << 10)
        finally:
            closed.append(True)

    res = run(["head", "-c", "10"], stdin=feed(), timeout=60)
    assert res.ok and res.stdout == "y" * 10 and res.stdin_refused and closed == [True]


def test_stdin_from_bytes_a_path_and_an_open_file(tmp_path: Path) -> None:
    data = os.urandom(3 * MiB)
    assert run(["sha256sum"], stdin=data).stdout.split()[0] == __import__("hashlib").sha256(data).hexdigest()
    src = tmp_path / "in"
    src.write_bytes(b"from a file\n")
    assert run(["cat"], stdin=src).stdout == "from a file\n"
    with open(src, "rb") as fh:
        assert run(["cat"], stdin=fh).stdout == "from a file\n"
    assert run(["cat"]).stdout == ""  # nothing given: /dev/null, never restorecheck's own stdin
    with pytest.raises(TypeError):
        run(["cat"], stdin="text is not a path")  # type: ignore[arg-type]


# --- what is reported, what is refused --------------------------------------------------------------


def test_exit_code_and_timing_are_reported() -> None:
    res = run(["sh", "-c", "sleep 0.3; echo out; echo err >&2; exit 7"])
    assert (res.returncode, res.stdout, res.stderr) == (7, "out\n", "err\n")
    assert 0.3 <= res.seconds < 5 and not res.ok and not res.timed_out and not res.cancelled
    assert res.argv == ["sh", "-c", "sleep 0.3; echo out; echo err >&2; exit 7"]


def test_ticks_report_progress() -> None:
    ticks: list[float] = []
    run(["sleep", "0.5"], on_tick=ticks.append, poll=0.1)
    assert len(ticks) >= 3 and ticks == sorted(ticks)


def test_the_environment_is_clean_unless_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "hunter2")
    clean = run(["env"], env={"ONLY": "this"}).stdout.splitlines()
    assert sorted(clean) == sorted(["ONLY=this", "PATH=/usr/local/bin:/usr/bin:/bin"])
    assert "PGPASSWORD=hunter2" in run(["env"], inherit_env=True).stdout.splitlines()


def test_own_session_and_no_shell() -> None:
    res = run([sys.executable, "-c", "import os; print(os.getsid(0) == os.getpid() == os.getpgid(0))"])
    assert res.stdout.strip() == "True"
    assert run(["echo", "$HOME; rm -rf /"]).stdout == "$HOME; rm -rf /\n"  # argv, never a shell
    with pytest.raises(ValueError, match="shell"):
        Command(("ls",), popen_kwargs={"shell": True})
    with pytest.raises(ToolNotFoundError):
        run(["/nonexistent/pg_restore", "--version"])


# --- injection: callers with a fake runner --------------------------------------------------------


class FakeRunner:
    """Records every command and answers from a table (argv[-1] or the program's name -> output)."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.commands: list[Command] = []

    def run(self, cmd: Command) -> Completed:
        self.commands.append(cmd)
        out = self.answers.get(Path(cmd.argv[0]).name, "")
        return Completed(list(cmd.argv), 0, out, "", 0.0)


def test_discover_probes_versions_through_the_given_runner(tmp_path: Path) -> None:
    """doctor's and discover's version probe, without any PostgreSQL here: the fake answers."""
    bindir = tmp_path / "pg" / "bin"
    bindir.mkdir(parents=True)
    for name in ("postgres", "pg_dump", "pg_restore", "psql"):
        (bindir / name).write_text("#!/bin/false\n")
        (bindir / name).chmod(stat.S_IRWXU)
    fake = FakeRunner({"postgres": "postgres (PostgreSQL) 17.2 (Debian 17.2-1)\n"})
    found = [i for i in discover(bindir, runner=fake) if i.origin == "--pg-bin"]
    assert found and found[0].version == "17.2" and found[0].bindir == bindir.resolve()
    probe = next(c for c in fake.commands if c.argv[0] == str(bindir.resolve() / "postgres"))
    assert probe.argv[1:] == ("--version",) and not probe.inherit_env and probe.timeout == 20
    assert tool_version(bindir / "psql", runner=FakeRunner({"psql": "psql (PostgreSQL) 9.6.24"})) == "9.6"
    assert tool_version(bindir / "psql", runner=FakeRunner({"psql": "not postgres"})) is None


def test_tool_jail_hands_the_final_argv_env_and_stdin_to_its_runner(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """What pg_restore --list of an unreadable backup is started with: the sandbox's argv, a clean
    environment (not restorecheck's PGPASSWORD), the backup on stdin, no deadline outside a restore."""
    monkeypatch.setenv("PGPASSWORD", "the-source-password")
    fake = FakeRunner({})
    inst = PgInstallation(Path("/usr/lib/postgresql/15/bin"), "15.8", "system", ("pg_restore",))
    jail = ToolJail(Sandbox("none"), tmp_path, deadline=time.monotonic() + 60, runner=fake)
    backup = tmp_path / "db.dump"
    stop = threading.Event()
    jail.run(inst, ["pg_restore", "--list"], source=backup, inp=Input(None), capture_stdout=True, cancel=stop)
    jail.run(inst, ["pg_restore", "--dbname=x"], source=backup, inp=Input(None), env={"PGHOST": "/s"},
             restore=True, label="restore: pg_restore")
    listing, restore = fake.commands
    assert listing.argv == ("pg_restore", "--list") and listing.stdin == backup and listing.stdout == "capture"
    assert listing.deadline is None and restore.deadline == jail.deadline and restore.stdout == "discard"
    assert listing.cancel is stop and restore.cancel is None
    assert listing.env is not None and "PGPASSWORD" not in listing.env and not listing.inherit_env
    assert restore.env is not None and restore.env["PGHOST"] == "/s" and restore.label == "restore: pg_restore"


def test_use_runner_reaches_code_that_takes_no_runner() -> None:
    fake = FakeRunner({"pg_config": "/opt/pg/bin\n"})
    with use_runner(fake):
        assert run(["pg_config", "--bindir"]).stdout == "/opt/pg/bin\n"
    assert fake.commands[0].argv == ("pg_config", "--bindir")
    assert isinstance(current_runner(), SubprocessRunner)


def test_fake_runners_need_only_a_run_method() -> None:
    runner: Any = FakeRunner({})
    assert run(["x"], runner=runner).ok
