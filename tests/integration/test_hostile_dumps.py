"""A hostile corpus: dumps from someone else that try to get out of the verification (issue 9).

Each test asserts that nothing escaped: no file made anywhere on the host, no process left running,
no secret of the verifying machine in the report, nothing left in the run's temporary directory,
and a truthful verdict. The sandbox must be in use where bubblewrap works (CI installs it).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from restorecheck.cli import run_cli
from restorecheck.provisioners.base import PgServer
from restorecheck.provisioners.local import local_cluster
from restorecheck.sandbox import resolve
from tests.conftest import execute, installation_for

pytestmark = pytest.mark.postgres

HEAD = "--\n-- PostgreSQL database dump\n--\n\nSET client_encoding = 'UTF8';\n"
TAIL = "\n--\n-- PostgreSQL database dump complete\n--\n\n"


def sandbox_expected() -> bool:
    """bubblewrap must be in use where it works; CI installs it (RESTORECHECK_REQUIRE_SANDBOX)."""
    sb = resolve("auto", os.environ.get("RESTORECHECK_RUN_AS"))
    if os.environ.get("RESTORECHECK_REQUIRE_SANDBOX") and sb.kind != "bwrap":
        pytest.fail(f"RESTORECHECK_REQUIRE_SANDBOX is set and the sandbox cannot run: {sb.note}", pytrace=False)
    return sb.kind == "bwrap"


def processes_mentioning(text: str) -> list[str]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmd and "pytest" not in cmd:
            out.append(f"{d.name}: {cmd[:200]}")
    return out


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary directory for the run (every throwaway directory goes there): empty afterwards."""
    d = Path(tempfile.mkdtemp(prefix="rc-hostile-", dir="/tmp"))
    os.chmod(d, 0o755)  # the unprivileged user must reach what restorecheck makes in it
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    try:
        yield d
        left = sorted(p.name for p in d.iterdir())
        assert left == [], f"left behind in the run's temporary directory: {left}"
    finally:
        tempfile.tempdir = None
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def marker() -> Iterator[str]:
    """A name no hostile action may create on the host: /tmp/<marker>*, /var/tmp/<marker>*."""
    m = f"rc-pwned-{uuid.uuid4().hex[:10]}"
    yield m
    made = [str(p) for d in (Path("/tmp"), Path("/var/tmp")) for p in d.glob(m + "*")]
    for p in made:
        Path(p).unlink(missing_ok=True)
    assert made == [], f"the dump wrote on the host: {made}"
    assert processes_mentioning(m) == [], "a process the dump started outlived the run"


def write_plain(path: Path, body: str, *, gz: bool = False) -> Path:
    text = HEAD + body + TAIL
    if gz:
        path = path.with_suffix(".sql.gz")
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def verify(*args: str) -> tuple[int, dict[str, object], str]:
    report = Path(tempfile.gettempdir()).parent / f"report-{uuid.uuid4().hex}.json"
    try:
        rc = run_cli(["verify", *args, "--no-progress", "--report", str(report)])
        doc = json.loads(report.read_text())
        return rc, doc, report.read_text()
    finally:
        report.unlink(missing_ok=True)


META_COMMANDS = {
    "shell": "\\! touch /tmp/{m}-shell\n",
    "output": "\\o /tmp/{m}-o\nSELECT 1;\n",
    "copy": "\\copy (SELECT 1) to '/tmp/{m}-copy'\n",
    "setenv": "\\setenv RC_X y\n",
    "include": "\\i /etc/shadow\n",
    "backtick": "\\set x `touch /tmp/{m}-backtick`\n",
    "mid-line connect": "SELECT 1; \\c postgres\nCREATE TABLE wrong_db (x int);\n",
    "unrestrict guess": "\\unrestrict abc\n\\! touch /tmp/{m}-unrestrict\n",
}


@pytest.mark.parametrize("name", sorted(META_COMMANDS))
def test_a_meta_command_in_a_plain_dump_never_runs_and_fails_the_backup(
        name: str, run_dir: Path, marker: str, tmp_path: Path) -> None:
    sandbox_expected()
    body = "CREATE TABLE t (a int);\n" + META_COMMANDS[name].format(m=marker) + "CREATE TABLE u (a int);\n"
    dump = write_plain(tmp_path / "meta.sql", body, gz=name == "shell")
    before = dump.read_bytes()
    rc, doc, _ = verify(str(dump))
    assert rc == 1 and doc["verdict"] == "fail"
    errors = [f for f in doc["findings"] if f["check"] == "restore_errors" and f["severity"] == "error"]
    assert errors and "meta-command" in errors[0]["message"], doc["findings"]
    assert errors[0]["details"]["meta_command"] == "refused"
    assert dump.read_bytes() == before


def test_pg_dumps_own_restrict_pair_still_restores(pg_server: PgServer, run_dir: Path, tmp_path: Path) -> None:
    """A faithful plain dump of a current pg_dump (with its own \\restrict) passes: only the dump's
    meta-commands are refused, not pg_dump's pair."""
    with pg_server.fresh_database() as ref:
        execute(ref, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM "
                     "generate_series(1, 50) g")
        dump = tmp_path / "faithful.sql"
        assert pg_server.tools is not None
        subprocess.run([str(pg_server.tools.tool("pg_dump")), "-Fp", "-f", str(dump)], env=ref.child_env(),
                       check=True)
        rc, doc, _ = verify(str(dump), "--against", ref.conninfo())
    assert rc == 0, doc["findings"]
    assert doc["extra"]["restore"]["psql_restricted"] is True  # type: ignore[index]


SERVER_SIDE = (
    "CREATE TABLE leak (l text);\n"
    "COPY (SELECT 'x') TO PROGRAM 'touch /tmp/{m}-program; (setsid sleep 917 >/dev/null 2>&1 &)';\n"
    "COPY (SELECT 'x') TO '/tmp/{m}-file';\n"
    "SELECT lo_from_bytea(4242, 'x'); SELECT lo_export(4242, '/tmp/{m}-lo');\n"
    "COPY leak FROM PROGRAM 'env; id; cat {secret} /etc/shadow /root/.bash_history 2>&1; ls / /tmp /work 2>&1; true';\n"
    "SELECT pg_read_file('{secret}');\n"
)


@pytest.mark.parametrize("fmt", ["plain", "plain-gzip"])
def test_server_side_sql_reaches_nothing_outside_the_run(
        fmt: str, run_dir: Path, marker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sandboxed = sandbox_expected()
    secret_value = f"TOPSECRET-{uuid.uuid4().hex}"
    secret = tmp_path.parent / f"{marker}-secret"  # root's, 0600
    secret.write_text(secret_value)
    os.chmod(secret, 0o600)
    monkeypatch.setenv("RC_TEST_SECRET", secret_value)  # restorecheck's own environment
    monkeypatch.setenv("PGPASSWORD", secret_value)
    try:
        # each statement in its own psql run would stop at the first error: probe them one by one
        for i, stmt in enumerate(SERVER_SIDE.format(m=marker, secret=secret).splitlines()[1:]):
            body = SERVER_SIDE.splitlines()[0] + "\n" + stmt + "\n" + \
                "SELECT (SELECT string_agg(l, ' | ') FROM leak)::int;\n"  # the cast error would print it
            dump = write_plain(tmp_path / f"s{i}.sql", body, gz=fmt == "plain-gzip")
            rc, doc, text = verify(str(dump))
            # what ran, ran inside the sandbox (a faithful restore of that is a pass); what it read
            # would show in the cast's error message, which must hold nothing of the host's
            assert rc in (0, 1), doc["findings"]
            if "FROM PROGRAM" in stmt:
                assert rc == 1 and any("invalid input syntax" in f["message"] for f in doc["findings"])
            assert secret_value not in text
            assert "root:" not in text  # neither /etc/passwd nor /etc/shadow of the host
            if sandboxed:
                assert doc["extra"]["restore"]["sandbox"]["kind"] == "bwrap"  # type: ignore[index]
                if "FROM PROGRAM" in stmt:  # the host's /work (this checkout) does not exist in there
                    assert "cannot access '/work'" in text and "uid=0" not in text
    finally:
        secret.unlink(missing_ok=True)


def test_a_check_constraint_that_runs_code_on_every_row_of_an_archive_stays_inside(
        pg_server: PgServer, run_dir: Path, marker: str, tmp_path: Path) -> None:
    """No psql at all: a custom-format archive whose CHECK calls a VOLATILE function that runs a
    program for each COPY row. It restores faithfully (PASS is the truthful verdict), and the
    program ran only inside the sandbox."""
    sandbox_expected()
    with pg_server.fresh_database() as ref:
        execute(ref, f"""
            CREATE FUNCTION f(int) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
            BEGIN
              IF current_database() <> '{ref.dbname}' AND $1 = 3 THEN  -- the restored copy, not the source
                -- the program reads what COPY writes: one that exits first makes the COPY fail
                -- (broken pipe), a failed restore instead of the code that ran
                COPY (SELECT 1) TO PROGRAM 'cat >/dev/null; touch /tmp/{marker}-check; (setsid sleep 918 >/dev/null 2>&1 &)';
              END IF;
              RETURN true;
            END $$;
            CREATE TABLE t (a int PRIMARY KEY CHECK (f(a)));
            INSERT INTO t SELECT generate_series(1, 5);""")
        assert pg_server.tools is not None
        for fmt in ("c", "d"):
            dump = tmp_path / f"hostile.{fmt}"
            subprocess.run([str(pg_server.tools.tool("pg_dump")), f"-F{fmt}", "-f", str(dump)],
                           env=ref.child_env(), check=True)
            if fmt == "c":
                os.chmod(dump, 0o600)  # root's alone: the tools read it on their standard input
            else:
                os.chmod(dump, 0o700)  # a directory only root can read: a private copy
            rc, doc, _ = verify(str(dump), "--against", ref.conninfo(), "-j", "2")
            assert rc == 0, doc["findings"]
            if fmt == "d" and os.geteuid() == 0:
                assert "copied_for_sandbox" in doc["extra"]["restore"]  # type: ignore[operator]


def test_restore_timeout_kills_the_restore_and_the_verdict_is_fail(run_dir: Path, marker: str,
                                                                    tmp_path: Path) -> None:
    sandbox_expected()
    dump = write_plain(tmp_path / "sleep.sql", "CREATE TABLE t (a int);\n"
                       f"COPY (SELECT 1) TO PROGRAM '(setsid sleep 919 >/dev/null 2>&1 &); cat >/dev/null'; -- {marker}\n"
                       "DO $$ BEGIN PERFORM pg_sleep(3600); END $$;\n")
    t0 = time.monotonic()
    rc, doc, _ = verify(str(dump), "--restore-timeout", "3")
    assert time.monotonic() - t0 < 120
    assert rc == 1 and doc["verdict"] == "fail"
    assert [f["check"] for f in doc["findings"]] == ["restore_timeout"]
    assert doc["tables"] == []  # a partial copy is not compared
    assert processes_mentioning("sleep 919") == []


@pytest.mark.parametrize("sandbox", ["auto", "none"])
def test_kill_9_during_verify_leaves_nothing_running_and_sweep_removes_the_rest(
        sandbox: str, tmp_path: Path) -> None:
    if sandbox == "auto":
        sandbox_expected()
    d = Path(tempfile.mkdtemp(prefix="rc-kill9-", dir="/tmp"))
    os.chmod(d, 0o755)
    try:
        dump = write_plain(tmp_path / "sleep.sql", "CREATE TABLE t (a int);\n"
                           "COPY (SELECT 1) TO PROGRAM '(setsid sleep 921 >/dev/null 2>&1 &); cat >/dev/null';\n"
                           "DO $$ BEGIN PERFORM pg_sleep(3600); END $$;\n")
        env = {**os.environ, "TMPDIR": str(d)}
        proc = subprocess.Popen([sys.executable, "-m", "restorecheck", "verify", str(dump), "--no-progress",
                                 "--sandbox", sandbox], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not processes_mentioning("sleep 921"):
            time.sleep(0.2)
        assert processes_mentioning("sleep 921"), "the restore never reached the hostile statement"
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        end = time.monotonic() + 15
        left = processes_mentioning(str(d))
        while time.monotonic() < end and (left or (sandbox == "auto" and processes_mentioning("sleep 921"))):
            time.sleep(0.2)
            left = processes_mentioning(str(d))
        assert left == [], left
        if sandbox == "auto":  # in the sandbox even a detached child of the server dies with it
            assert processes_mentioning("sleep 921") == []
        assert any(d.iterdir())  # kill -9 leaves directories: that is what sweep is for
        res = subprocess.run([sys.executable, "-m", "restorecheck", "doctor", "--sweep"], env=env,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert sorted(p.name for p in d.iterdir()) == []
    finally:
        for line in processes_mentioning("sleep 921"):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)


def test_only_the_admin_role_can_log_in_to_the_throwaway_cluster() -> None:
    """A role a dump creates (SUPERUSER LOGIN PASSWORD) cannot log in, on the socket or on TCP, and the
    admin role needs its password; the authentication file cannot be rewritten by the server."""
    sandboxed = sandbox_expected()
    for sb in ["auto", "none"]:
        with local_cluster(installation=installation_for(15),
                           sandbox=resolve(sb, os.environ.get("RESTORECHECK_RUN_AS"))) as server:
            execute(server.admin, "CREATE ROLE evil SUPERUSER LOGIN PASSWORD 'evil'")
            evil = {**server.admin.params, "user": "evil", "password": "evil"}
            with pytest.raises(psycopg.OperationalError, match=r"rejects|no pg_hba.conf entry"):
                psycopg.connect(**evil, connect_timeout=5)
            nopw = {**server.admin.params}
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(**nopw, password="wrong", connect_timeout=5)
            if "tcp" in server.info:
                tcp = {**server.info["tcp"].params, "user": "evil", "password": "evil"}
                with pytest.raises(psycopg.OperationalError, match=r"rejects|no pg_hba.conf entry"):
                    psycopg.connect(**tcp, connect_timeout=5)
            else:
                assert sandboxed and sb == "auto"
            hba = execute(server.admin, "SHOW hba_file")[0][0]
            if server.info["sandbox"]["kind"] == "bwrap":
                with pytest.raises(psycopg.Error, match=r"Read-only|Permission denied"):
                    execute(server.admin, f"COPY (SELECT 'local all all trust') TO '{hba}'")
            execute(server.admin, "SELECT pg_reload_conf()")
            with pytest.raises(psycopg.OperationalError, match=r"rejects|no pg_hba.conf entry"):
                psycopg.connect(**evil, connect_timeout=5)


def test_the_server_runs_unprivileged_without_groups_and_sees_no_home(tmp_path: Path) -> None:
    sandbox_expected()
    with local_cluster(installation=installation_for(15)) as server:
        execute(server.admin, "CREATE TABLE who (l text)")
        execute(server.admin, "COPY who FROM PROGRAM 'id -u; id -g; id -G; ls /root /work /home 2>&1 | wc -l'")
        uid, gid, groups, *_ = [r[0] for r in execute(server.admin, "SELECT l FROM who")]
        if os.geteuid() == 0:
            assert uid != "0" and gid != "0" and "0" not in groups.split(), (uid, gid, groups)
        if server.info["sandbox"]["kind"] == "bwrap":
            rows = [r[0] for r in execute(server.admin, "SELECT l FROM who")]
            assert rows[3] in ("0", "3"), rows  # nothing of /root, /work or /home is visible
