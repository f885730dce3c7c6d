"""Throwaway clusters copied from the template data directory: each its own password, the SCRAM
verifier restorecheck computes accepted by a real server, a tampered template rebuilt and never
used, and initdb where the template is turned off. (How fast a cluster is ready is measured by
benchmarks/bench_cluster.py, not asserted here.)"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from restorecheck.dburl import PostgresRef
from restorecheck.process import PgInstallation
from restorecheck.provisioners import local
from restorecheck.provisioners.base import PgServer
from restorecheck.scram import scram_sha256_verifier
from tests.conftest import execute, installation_for, installations

pytestmark = pytest.mark.postgres


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private cache root (its templates made here, so the tests may tamper with them)."""
    root = Path(tempfile.mkdtemp(prefix="rc-template-test-", dir="/tmp"))
    os.chmod(root, 0o755)
    monkeypatch.setenv("RESTORECHECK_CACHE_DIR", str(root / "cache"))
    monkeypatch.delenv("RESTORECHECK_TEMPLATE", raising=False)
    yield root / "cache"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def inst() -> PgInstallation:
    """The lowest installed major: the distribution's, runnable without a copy of its binaries."""
    majors = sorted({i.major for i in installations()})
    return installation_for(majors[0] if majors else 18)


def _login(ref: PostgresRef, password: str | None) -> None:
    with psycopg.connect(PostgresRef(dict(ref.params), password).conninfo(), connect_timeout=5) as conn:
        conn.execute("SELECT 1")


def _verifier(server: PgServer) -> str:
    return str(execute(server.admin, "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")[0][0])


def test_two_clusters_from_one_template_have_their_own_passwords(cache: Path, inst: PgInstallation) -> None:
    with local.local_cluster(installation=inst) as first:
        assert first.info["datadir_from"] == "initdb+template"
        with local.local_cluster(installation=inst) as second, local.local_cluster(installation=inst) as third:
            assert second.info["datadir_from"] == third.info["datadir_from"] == "template"
            servers = (first, second, third)
            assert len({s.admin.password for s in servers}) == 3
            assert len({_verifier(s) for s in servers}) == 3
            for s in servers:
                _login(s.admin, s.admin.password)
                for other in servers:
                    if other is not s:
                        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                            _login(s.admin, other.admin.password)
                with pytest.raises(psycopg.OperationalError):
                    _login(s.admin, None)
            # a copy is a whole cluster: what one run writes, the others never see
            execute(second.admin, "CREATE TABLE only_here (a int)")
            assert execute(third.admin, "SELECT to_regclass('only_here') IS NULL") == [(True,)]
    templates = list((cache / "templates").iterdir())
    assert len(templates) == 1 and templates[0].name.startswith(f"pg{inst.version}-t{local.TEMPLATE_LAYOUT}-")
    data = templates[0] / "data"
    assert os.stat(data).st_uid == os.geteuid() and not os.stat(data).st_mode & 0o077
    assert not list((cache / "templates").glob(".staging-*"))


def test_the_verifier_is_the_one_postgresql_computes(pg_any: PgServer) -> None:
    """The server's own verifier of a password, recomputed here with its salt: equal. And the admin
    role given a verifier computed here (a new salt, the same password) logs in with the password
    over the socket, where pg_hba asks it for SCRAM, and not with another."""
    role, password = "rc_scram_probe", "Correct-Horse-9"
    execute(pg_any.admin, f"DROP ROLE IF EXISTS {role}")
    try:
        execute(pg_any.admin, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        theirs = str(execute(pg_any.admin, f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'")[0][0])
        iterations, salt = theirs.split("$")[1].split(":")
        assert scram_sha256_verifier(password, salt=base64.b64decode(salt), iterations=int(iterations)) == theirs
    finally:
        execute(pg_any.admin, f"DROP ROLE IF EXISTS {role}")
    admin_pw = pg_any.admin.password
    assert admin_pw
    before = _verifier(pg_any)
    mine = scram_sha256_verifier(admin_pw)
    execute(pg_any.admin, local.admin_password_statement(mine))
    assert _verifier(pg_any) == mine != before
    _login(pg_any.admin, admin_pw)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _login(pg_any.admin, admin_pw + "x")


def test_a_tampered_template_is_made_again_and_never_used(cache: Path, inst: PgInstallation) -> None:
    with local.local_cluster(installation=inst) as s:
        assert s.info["datadir_from"] == "initdb+template"
    (tpl,) = (cache / "templates").iterdir()
    conf = tpl / "data" / "postgresql.conf"
    planted = conf.read_text() + "\nmax_connections = 7  # planted\n"
    swapped = conf.with_name("postgresql.conf.new")
    swapped.write_text(planted)
    os.chmod(swapped, 0o600)
    swapped.replace(conf)  # a swapped file: new inode
    with local.local_cluster(installation=inst) as s:
        assert s.info["datadir_from"] == "initdb+template"
        assert execute(s.admin, "SHOW max_connections") != [("7",)]
    assert "planted" not in conf.read_text()
    with local.local_cluster(installation=inst) as s:
        assert s.info["datadir_from"] == "template"
    os.chmod(tpl, 0o777)  # the template's directory opened to everyone
    with local.local_cluster(installation=inst) as s:
        assert s.info["datadir_from"] == "initdb+template"
    assert not os.stat(tpl).st_mode & 0o022


def test_an_unsafe_cache_means_initdb_for_each_run(cache: Path, inst: PgInstallation) -> None:
    cache.mkdir(mode=0o755)
    os.chmod(cache, 0o777)  # world-writable, not sticky
    for _ in range(2):
        with local.local_cluster(installation=inst) as s:
            assert s.info["datadir_from"] == "initdb"
            _login(s.admin, s.admin.password)
    assert not (cache / "templates").exists() or not any((cache / "templates").iterdir())


def test_another_time_zone_gets_its_own_template(cache: Path, inst: PgInstallation,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """initdb writes the time zone it sees into postgresql.conf: a template made under one TZ is not
    handed to a run under another."""
    monkeypatch.setenv("TZ", "UTC")
    with local.local_cluster(installation=inst) as s:
        assert s.info["datadir_from"] == "initdb+template"
    monkeypatch.setenv("TZ", "America/New_York")
    with local.local_cluster(installation=inst) as s:
        assert s.info["datadir_from"] == "initdb+template"
        assert execute(s.admin, "SHOW timezone") == [("America/New_York",)]
    monkeypatch.setenv("TZ", "UTC")
    with local.local_cluster(installation=inst) as s:
        assert s.info["datadir_from"] == "template"
        assert execute(s.admin, "SHOW timezone") == [("UTC",)]
    assert len(list((cache / "templates").iterdir())) == 2


def test_the_template_can_be_turned_off(cache: Path, inst: PgInstallation, monkeypatch: pytest.MonkeyPatch) -> None:
    with local.local_cluster(installation=inst, template=False) as s:
        assert s.info["datadir_from"] == "initdb"
        _login(s.admin, s.admin.password)
    monkeypatch.setenv("RESTORECHECK_TEMPLATE", "0")
    with local.local_cluster(installation=inst) as s:
        assert s.info["datadir_from"] == "initdb"
    assert not (cache / "templates").exists() or not any((cache / "templates").iterdir())
