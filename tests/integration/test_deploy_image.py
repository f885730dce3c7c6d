"""The image's build stage replayed without Docker, as a non-root user in a scratch directory.

The Dockerfile's build-stage COPY and RUN (the pip install of restorecheck with the embedded and s3
extras) run with / moved to a scratch directory, as 'nobody' when the tests run as root; then the final
stage's ENTRYPOINT + CMD from that installation: 'run --check' on the example config, 'doctor', the
self-test drill on the embedded PostgreSQL 18, and a nightly run of a SQLite job. Also restorecheck
as PID 1 of its own PID namespace, as in the image. Not replayed: the base
image (this machine's Python of the same minor instead of python:3.11-slim's), the apt-get step, the
image's uid 10001 (nobody here), and the COPY --from into the final stage (the same path there).
The static checks of the Dockerfile and deploy/ are in tests/unit/test_deploy.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_deploy import CONFIG, INSTRUCTIONS, ROOT, exec_form

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _build_steps() -> tuple[str, str, list[list[str]]]:
    """The build stage's WORKDIR, its RUN command and its COPY instructions."""
    build = [(w, a) for s, w, a in INSTRUCTIONS if s == 0]
    (workdir,) = [a for w, a in build if w == "WORKDIR"]
    runs = [a for w, a in build if w == "RUN"]
    # the apt-get of the compiler is not replayed (this machine has one); the install is
    assert all(r.startswith("apt-get ") for r in runs if "pip install" not in r), runs
    (run,) = [r for r in runs if "pip install" in r]
    copies = [shlex.split(a) for w, a in build if w == "COPY"]
    return workdir, run, copies


def _replay_copy(src: Path, sources: list[str], dest: str) -> None:
    """COPY's rules for what the build stage copies: a file into a directory, a directory's content."""
    target = src / dest
    for s in sources:
        if (ROOT / s).is_dir():
            shutil.copytree(ROOT / s, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / s, target / Path(s).name)


def test_the_build_stage_replayed_as_a_non_root_user_installs_a_working_entrypoint() -> None:
    """The build stage's COPY and RUN, with / moved to a scratch directory, run as a non-root user;
    then the final stage's ENTRYPOINT + CMD (config: the example, --check) and doctor from that install.
    Not replayed: the base image (this machine's Python instead of python:3.11-slim's), apt-get, USER's
    uid (nobody here; 10001 in the image), and the COPY --from into the final stage (the same path)."""
    import tempfile

    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:
        import pwd

        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("running as root and there is no user 'nobody' to replay the image's non-root steps as")
        run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    # not under tmp_path: its parents are private to the user running pytest
    scratch = Path(tempfile.mkdtemp(prefix="restorecheck-image-replay-"))
    try:
        _replay(scratch, run_as)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _python_for(run_as: dict[str, Any]) -> Path:
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [Path(getattr(sys, "_base_executable", sys.executable)).resolve(),
                  *(Path(d) / minor for d in ("/usr/local/bin", "/usr/bin"))]
    for exe in candidates:
        try:
            probe = subprocess.run([str(exe), "-c", "import venv, ensurepip"], capture_output=True, timeout=60,
                                   cwd="/", **run_as)
        except OSError:  # not there, or not for this user (a Python under root's home)
            continue
        if probe.returncode == 0:
            return exe
    pytest.skip(f"no {minor} with venv and ensurepip that the non-root user can run (looked at "
                f"{', '.join(map(str, candidates))})")


def _replay(scratch: Path, run_as: dict[str, Any]) -> None:
    root = scratch / "image"
    workdir, run, copies = _build_steps()
    src = root / workdir.lstrip("/")
    src.mkdir(parents=True)
    for *sources, dest in copies:
        _replay_copy(src, sources, dest)
    assert (src / "pyproject.toml").is_file() and (src / "restorecheck" / "cli.py").is_file()
    bindir = scratch / "bin"  # 'python' as the base image has it: a Python of this minor the user can run
    bindir.mkdir()
    (bindir / "python").symlink_to(_python_for(run_as))
    prefix = "/opt/restorecheck"
    assert prefix in run
    command = run.replace(prefix, str(root / prefix.lstrip("/")))
    if run_as:
        for d in [scratch, *scratch.rglob("*")]:
            os.chown(d, run_as["user"], run_as["group"], follow_symlinks=False)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch)}
    for k in ("PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        if k in os.environ:  # how this machine reaches the package index
            env[k] = os.environ[k]
    build_env = {k: v for s, w, a in INSTRUCTIONS if s == 0 and w == "ENV"
                 for k, _, v in (item.partition("=") for item in shlex.split(a))}
    env.update(build_env)
    res = subprocess.run(["/bin/sh", "-c", command], cwd=src, env=env, capture_output=True, text=True,
                         timeout=900, **run_as)
    if res.returncode != 0 and re.search(r"No matching distribution|Could not find a version|NewConnectionError",
                                         res.stderr):
        pytest.skip(f"the package index cannot be reached from here: {res.stderr.strip().splitlines()[-1]}")
    assert res.returncode == 0, res.stderr[-3000:]

    venv_bin = root / prefix.lstrip("/") / "bin"
    # the build stage's compiler built the SQLite row encoder into the install
    assert list((root / prefix.lstrip("/")).rglob("restorecheck/_sqlite_rows*.so")), res.stderr[-2000:]
    entry, cmd = exec_form("ENTRYPOINT"), exec_form("CMD")
    image_env = dict(env, PATH=f"{venv_bin}:/usr/bin:/bin", APP_DB_PASSWORD="not-a-real-password",
                     RESTORECHECK_CACHE_DIR=str(scratch / "cache"))
    config = scratch / "restorecheck.toml"
    shutil.copy(CONFIG, config)
    if run_as:
        os.chown(config, run_as["user"], run_as["group"])
    assert shutil.which(entry[0], path=image_env["PATH"]) == str(venv_bin / "restorecheck")
    argv = [*entry, *cmd[:2], str(config), "--check"]
    res = subprocess.run(argv, env=image_env, cwd=scratch, capture_output=True, text=True, timeout=120, **run_as)
    assert res.returncode == 0 and "valid; 2 jobs" in res.stdout, res.stdout + res.stderr
    # the PostgreSQL binaries the embedded extra brought, usable by this non-root user
    res = subprocess.run([*entry, "doctor", "--json"], env=image_env, cwd=scratch, capture_output=True, text=True,
                         timeout=300, **run_as)
    found = json.loads(res.stdout)["postgresql"]
    embedded = [i for i in found if i["origin"] == "embedded" and i["bindir"].startswith(str(root))]
    assert embedded and embedded[0]["major"] == 18, found
    assert {"initdb", "postgres", "pg_dump", "pg_restore", "psql"} <= set(embedded[0]["tools"])
    # and it restores, as this non-root user: the self-test with the embedded PostgreSQL 18 (the image's
    # only server) and a nightly run of a SQLite job through the image's CMD
    res = subprocess.run([*entry, "drill", "--no-progress", "--pg-bin", embedded[0]["bindir"], "--report", "-"],
                         env=image_env, cwd=scratch, capture_output=True, text=True, timeout=600, **run_as)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert report["verdict"] == "pass" and report["tables"], report
    db = scratch / "notes.db"
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        conn.executemany("INSERT INTO note (body) VALUES (?)", [(f"n{i}",) for i in range(100)])
    conn.close()
    config.write_text(f'[defaults]\noutput_dir = "{scratch / "out"}"\n[[job]]\nname = "notes"\nsource = "{db}"\n')
    if run_as:
        os.chown(db, run_as["user"], run_as["group"])
    res = subprocess.run([*entry, *cmd[:2], str(config)], env=image_env, cwd=scratch, capture_output=True,
                         text=True, timeout=600, **run_as)
    assert res.returncode == 0 and "notes" in res.stdout and "PASS" in res.stdout, res.stdout + res.stderr
    assert (scratch / "out" / "history.db").is_file() and (scratch / "out" / "metrics.prom").is_file()


def test_restorecheck_as_pid_1_as_in_the_container(tmp_path: Path) -> None:
    """The image has no init: restorecheck is PID 1 of its PID namespace, where the kernel delivers only the
    signals it handles. A drill passes there, and SIGTERM (docker stop, a Job's deadline) ends it with
    exit 3 and nothing left in its TMPDIR, as outside."""
    import signal
    import time

    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        pytest.skip("a new PID namespace needs root and unshare(1) here")
    exe = shutil.which("restorecheck", path=str(Path(sys.executable).parent))
    assert exe
    work = tmp_path / "tmp"
    work.mkdir(mode=0o755)
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(work), "HOME": str(tmp_path)}
    argv = [unshare, "--pid", "--fork", "--mount-proc", exe, "drill", "--no-progress", "--quiet"]
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    proc = subprocess.Popen([*argv[:-1], "--report", str(tmp_path / "report.json")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid1 = None
        deadline = time.monotonic() + 30
        while pid1 is None and time.monotonic() < deadline:  # unshare's child is PID 1 in the namespace
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            text = children.read_text().split() if children.exists() else []
            pid1 = int(text[0]) if text else None
            time.sleep(0.05)
        assert pid1 is not None
        status = Path(f"/proc/{pid1}/status").read_text()
        assert re.search(r"^NSpid:\s+\d+\s+1$", status, flags=re.M), "restorecheck is PID 1 of its namespace"
        while not any(work.iterdir()) and proc.poll() is None and time.monotonic() < deadline + 60:
            time.sleep(0.05)  # into the drill: its run directory exists
        assert proc.poll() is None, "the drill ended before the signal"
        os.kill(pid1, signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, out + err
    assert "interrupted by SIGTERM" in err
    assert list(work.iterdir()) == [], "what the run started was removed"
