"""The sample loaders (tests/samples/load.py) without a server: pinning, adaptation, fault edits."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.samples import load


def _mirror(tmp_path: Path, repo: str, path: str, data: bytes) -> tuple[Path, str]:
    gitdir = tmp_path / "mirror" / repo.replace("/", "+") / "repo"
    work = tmp_path / "work"
    (work / Path(path).parent).mkdir(parents=True, exist_ok=True)
    (work / path).write_bytes(data)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(work)]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(gitdir)], check=True)
    return tmp_path / "mirror", commit


def test_fetch_from_a_mirror_checks_the_pinned_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTORECHECK_SAMPLES_DIR", str(tmp_path / "samples"))
    data = b"CREATE TABLE t (id int);\n"
    mirror, commit = _mirror(tmp_path, "o/r", "db/x.sql", data)
    good = load.Source("o/r", commit, "db/x.sql", hashlib.sha256(data).hexdigest())
    load.fetch(good, mirror)
    assert good.local.read_bytes() == data
    assert good.local.is_relative_to(tmp_path / "samples")
    bad = load.Source("o/r", commit, "db/x.sql", "0" * 64)
    with pytest.raises(SystemExit, match="is not the pinned"):
        load.fetch(bad, mirror)


def test_every_sample_is_pinned_by_full_commit_and_sha256() -> None:
    for sample in load.SAMPLES.values():
        assert sample.sources and sample.license and sample.shape
        for src in sample.sources:
            assert len(src.commit) == 40 and len(src.sha256) == 64, (sample.name, src.path)
        if sample.engine == "postgresql":
            assert sample.fault is not None, sample.name


def test_fault_edits_change_exactly_what_they_say() -> None:
    dump = "COPY public.artist (artist_id, name) FROM stdin;\n1\tAC/DC\n2\tAccept\n\\.\n"
    assert load._drop_copy_row("public.artist", 1)(dump) == (
        "COPY public.artist (artist_id, name) FROM stdin;\n2\tAccept\n\\.\n")
    assert load._replace_once("AC/DC", "AC-DC")(dump).count("AC-DC") == 1
    view = "CREATE VIEW pe.a AS\n SELECT 1;\n\nCREATE VIEW pe.b AS\n SELECT 2;\n"
    assert load._drop_statement("CREATE VIEW pe.a ")(view) == "\nCREATE VIEW pe.b AS\n SELECT 2;\n"


def test_postgres_scripts_lose_only_what_a_fresh_database_cannot_take(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTORECHECK_SAMPLES_DIR", str(tmp_path / "samples"))
    src = load.Source("o/r", "c" * 40, "x.sql", "0" * 64)
    src.local.parent.mkdir(parents=True)
    src.local.write_text("DROP DATABASE IF EXISTS chinook;\nCREATE DATABASE chinook;\n\\c chinook;\n"
                         "CREATE PROCEDURAL LANGUAGE plpgsql;\nCREATE TABLE t (id int);\n")
    sample = load.Sample("s", "postgresql", "MIT", "shape", (src,))
    [script] = load._pg_script(sample, tmp_path)
    assert [ln for ln in script.read_text().splitlines() if ln] == ["CREATE TABLE t (id int);"]
