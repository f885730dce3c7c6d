"""restorecheck drill on real servers: the self-test, a drill of a given source, the RTO target."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from restorecheck import pipeline
from restorecheck.cli import run_cli
from restorecheck.dburl import PostgresRef
from restorecheck.engines.base import BackupOptions, RestoreOptions
from tests.conftest import url
from tests.integration import pg5_helpers as h

pytestmark = pytest.mark.postgres


def test_self_test_drill_passes_and_leaves_nothing(world_tmp: Path) -> None:
    seen: list[str] = []
    tmp_path = world_tmp
    report = pipeline.drill(restore=RestoreOptions(tmp_root=str(tmp_path),
                                                   progress=lambda t, d, n: seen.append(t)))
    doc = h.validate_report(report)
    assert report.verdict == "pass", [(f.check, f.object, f.message) for f in report.errors]
    assert report.command == "drill" and report.reference == "manifest"
    assert set(doc["phases"]) >= {"seed", "backup", "restore", "verify", "total"}
    assert len(report.tables) >= 10 and all(t.match for t in report.tables)
    assert any("restore" in t for t in seen) and any("fingerprint" in t for t in seen)
    assert list(tmp_path.iterdir()) == []  # throwaway cluster, work and backup directories removed


def test_drill_of_a_source_keeps_backup_with_output(fresh_db: PostgresRef, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    h.build_source(fresh_db)
    out = tmp_path / "kept"
    rc = run_cli(["drill", url(fresh_db), "-o", str(out), "--format", "plain", "--no-progress",
                  "--report", str(tmp_path / "r.json"), "--junit", str(tmp_path / "j.xml"),
                  "--metrics", str(tmp_path / "m.prom")])
    stdout = capsys.readouterr().out
    assert rc == 0, stdout
    assert stdout.startswith("PASS: restorecheck drill")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["backup"]["format"] == "plain" and doc["reference"] == "manifest"
    assert {"backup", "restore", "verify", "total"} <= set(doc["phases"])
    kept = sorted(p.name for p in out.iterdir())
    assert len(kept) == 2 and any(n.endswith(".sql") for n in kept) and any(n.endswith(".manifest.json") for n in kept)
    names = {c.get("name") for c in ET.parse(tmp_path / "j.xml").getroot().iter("testcase")}
    assert {"public.parent", "public.child", "restore_errors"} <= names
    prom = (tmp_path / "m.prom").read_text()
    assert 'restorecheck_phase_duration_seconds{engine="postgresql",command="drill",phase="restore"}' in prom


def test_drill_rto_target_turns_a_slow_restore_into_a_finding(fresh_db: PostgresRef) -> None:
    h.build_source(fresh_db)
    report = pipeline.drill(fresh_db, backup_options=BackupOptions(format="directory", jobs=2),
                            max_restore_seconds=0.0)
    assert report.verdict == "fail"
    assert [f.check for f in report.errors] == ["rto"]
    assert report.phases["restore"] > 0
    from restorecheck.provisioners.local import MEMORY_DIR, RunDir

    def ours() -> set[Path]:  # other test workers use /dev/shm too: this process's directories only
        return {d for d in MEMORY_DIR.glob("restorecheck-*")
                if RunDir(d).read_meta().get("owner_pid") == os.getpid()} if MEMORY_DIR.is_dir() else set()

    before = ours()
    fine = pipeline.drill(fresh_db, max_restore_seconds=3600)
    assert fine.verdict == "pass"
    from restorecheck.provisioners.local import memory_parent

    if memory_parent(1 << 20, None) is not None:  # a small source restores into a cluster in memory
        # (unless TMPDIR says where temporary files go)
        assert fine.extra["restore"]["datadir_on"] == "memory (tmpfs)"
    else:
        assert fine.extra["restore"]["datadir_on"] == "disk"
    after = ours()
    assert after <= before, f"left in memory: {after - before}"


def test_drill_unreachable_source_is_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = run_cli(["drill", "postgresql://nobody:hunter2@127.0.0.1:1/db", "--report", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 3 and "hunter2" not in err and len(err.strip().splitlines()) == 1
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "error"


def test_sigterm_during_drill_removes_everything(world_tmp: Path) -> None:
    """A cron job or Kubernetes stops a run with SIGTERM: the throwaway cluster, its processes,
    the work and backup directories are all removed, and the exit code is 3."""
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "TMPDIR": str(world_tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "restorecheck", "drill", "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    # the backup's directory appears when the backup starts: stop the run there (a signal that
    # lands in the cleanup itself is the provisioner's business, see local_cluster)
    while time.monotonic() < deadline and not any(world_tmp.glob("restorecheck-drill-*")):
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert b"interrupted" in err
    assert list(world_tmp.iterdir()) == []
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(world_tmp) not in ps  # no postgres of that cluster left running


def test_sigterm_during_drill_removes_its_cluster_in_memory_too() -> None:
    """No TMPDIR and no tmp_root: the self-test's small cluster runs in /dev/shm (memory_parent);
    SIGTERM removes it there as on disk, with the backup's directory in /tmp. (Other tests share
    /tmp: the directories are told apart by the owner each records, the drill's pid.)"""
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    from restorecheck.provisioners.local import MEMORY_DIR, RunDir, memory_parent

    env = {k: v for k, v in os.environ.items() if k != "TMPDIR"}
    if memory_parent(1 << 20, None) is None and "TMPDIR" not in os.environ:
        pytest.skip("/dev/shm cannot take a cluster on this machine (not a tmpfs, or too little free)")
    tmp = Path(tempfile.gettempdir()) if "TMPDIR" not in os.environ else Path("/tmp")
    proc = subprocess.Popen([sys.executable, "-m", "restorecheck", "drill", "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def mine() -> set[Path]:
        found = set()
        for d in [*MEMORY_DIR.glob("restorecheck-*"), *tmp.glob("restorecheck-*")]:
            try:
                if RunDir(d).read_meta().get("owner_pid") == proc.pid:
                    found.add(d)
            except OSError:
                continue
        return found

    seen: set[Path] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(d.name.startswith("restorecheck-drill-") for d in seen):
        seen |= mine()
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    assert any(d.parent == MEMORY_DIR for d in seen), f"the self-test's cluster is not in /dev/shm: {seen}"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    left = {d for d in seen if d.exists()} | mine()
    assert not left, f"left behind: {left}"
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert not any(str(d) in ps for d in seen)  # no postgres of that cluster left running


def test_start_timeout_reaches_the_server_start_and_is_named_when_it_runs_out(
        world_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # no server accepts connections within a millisecond of its start: the deadline given is the one used
    rc = run_cli(["drill", "--start-timeout", "0.001", "--report", str(world_tmp / "r.json")])
    err = capsys.readouterr().err
    assert rc == 3, err
    assert "not ready within 0s" in err and "--start-timeout" in err
    assert json.loads((world_tmp / "r.json").read_text())["verdict"] == "error"


def test_start_timeout_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["drill", "--start-timeout", "0"]) == 2
    assert "--start-timeout" in capsys.readouterr().err
