"""The template data directory cache (provisioners/local.py) without a server: what a run copies,
and every way a template that was tampered with is refused (and never copied)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from restorecheck.provisioners import local
from restorecheck.scram import VERIFIER_RE, scram_sha256_verifier


def _fake_data(root: Path) -> Path:
    """A stand-in for what initdb makes: a 0700 directory tree of 0600 files."""
    data = root / "made-by-initdb"
    (data / "base" / "1").mkdir(parents=True)
    (data / "PG_VERSION").write_text("15\n")
    (data / "postgresql.conf").write_text("max_connections = 100\n")
    (data / "base" / "1" / "1259").write_bytes(os.urandom(8192 * 3))
    (data / "empty").write_bytes(b"")
    for dirpath, _dirs, files in os.walk(data):
        os.chmod(dirpath, 0o700)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o600)
    return data


@pytest.fixture
def template(tmp_path: Path) -> Path:
    tpl = tmp_path / "cache" / "templates" / "pg15-t1-test"
    assert local.publish_template(_fake_data(tmp_path), tpl)
    return tpl


def _copy(template: Path, tmp_path: Path) -> tuple[str | None, Path]:
    dest = tmp_path / "run" / "data"
    dest.parent.mkdir(exist_ok=True)
    return local.copy_template(template, dest, None), dest


def test_a_published_template_copies_exactly_with_its_modes(template: Path, tmp_path: Path) -> None:
    why, dest = _copy(template, tmp_path)
    assert why is None
    src = template / "data"
    for rel in ("PG_VERSION", "postgresql.conf", "base/1/1259", "empty"):
        assert (dest / rel).read_bytes() == (src / rel).read_bytes()
        assert stat.S_IMODE(os.stat(dest / rel).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(dest / "base" / "1").st_mode) == 0o700
    # the cached template itself: the running user's, group and others locked out
    assert os.stat(src).st_uid == os.geteuid() and not os.stat(src).st_mode & 0o077
    assert json.loads((template / "manifest.json").read_text())["layout"] == local.TEMPLATE_LAYOUT
    # a second copy from the same template (a later run) works as well
    dest2 = tmp_path / "run2"
    assert local.copy_template(template, dest2, None) is None


def _refused(template: Path, tmp_path: Path, words: str) -> None:
    why, dest = _copy(template, tmp_path)
    assert why is not None and words in why, why
    assert not dest.exists(), "a refused template left a partial copy behind"


def test_a_world_writable_template_directory_is_refused(template: Path, tmp_path: Path) -> None:
    os.chmod(template, 0o777)
    _refused(template, tmp_path, "writable by group or others")


def test_a_world_writable_cache_directory_above_it_is_refused(template: Path, tmp_path: Path) -> None:
    os.chmod(template.parent, 0o777)
    _refused(template, tmp_path, "writable by group or others")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another uid needs root")
def test_an_entry_chowned_to_another_user_is_refused(template: Path, tmp_path: Path) -> None:
    os.chown(template / "data" / "base" / "1" / "1259", 12345, 12345)
    _refused(template, tmp_path, "owned by uid 12345")


def test_a_swapped_file_is_refused(template: Path, tmp_path: Path) -> None:
    """Same name, same size, same mode, renamed into place: a new inode."""
    target = template / "data" / "base" / "1" / "1259"
    other = target.with_name("1259.new")
    other.write_bytes(os.urandom(target.stat().st_size))
    os.chmod(other, 0o600)
    other.replace(target)
    _refused(template, tmp_path, "changed since the template was made")


def test_a_file_changed_in_place_is_refused(template: Path, tmp_path: Path) -> None:
    """Same inode, same size, the mtime put back: the ctime still moves."""
    target = template / "data" / "postgresql.conf"
    st = target.stat()
    target.write_text("max_connections = 999\n"[: st.st_size].ljust(st.st_size))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    _refused(template, tmp_path, "postgresql.conf changed")


def test_a_file_open_to_others_is_refused(template: Path, tmp_path: Path) -> None:
    os.chmod(template / "data" / "PG_VERSION", 0o644)
    _refused(template, tmp_path, "open to group or others")


def test_an_added_file_is_refused(template: Path, tmp_path: Path) -> None:
    extra = template / "data" / "postgresql.auto.conf"
    extra.write_text("shared_preload_libraries = 'evil'\n")
    os.chmod(extra, 0o600)
    _refused(template, tmp_path, ". changed since the template was made")  # its directory's ctime moved


def test_a_removed_file_is_refused(template: Path, tmp_path: Path) -> None:
    (template / "data" / "empty").unlink()
    _refused(template, tmp_path, ". changed since the template was made")


def test_a_symbolic_link_in_place_of_a_file_is_refused(template: Path, tmp_path: Path) -> None:
    target = template / "data" / "PG_VERSION"
    target.unlink()
    target.symlink_to("/etc/passwd")
    _refused(template, tmp_path, ". changed since the template was made")


def test_entries_the_manifest_does_not_name_or_misses_are_refused(template: Path, tmp_path: Path) -> None:
    """Should a directory's ctime be put back (it cannot be, short of the clock), the entries
    themselves are still checked against the manifest."""
    m = template / "manifest.json"
    original = m.read_text()
    data = json.loads(original)
    del data["entries"]["PG_VERSION"]
    m.write_text(json.dumps(data))
    _refused(template, tmp_path, "PG_VERSION is not in the template's manifest")
    data = json.loads(original)
    data["entries"]["PG_VERSION.gone"] = data["entries"]["PG_VERSION"]  # names one that is not there
    m.write_text(json.dumps(data))
    _refused(template, tmp_path, "PG_VERSION.gone is missing")


def test_a_manifest_open_to_others_is_refused(template: Path, tmp_path: Path) -> None:
    os.chmod(template / "manifest.json", 0o666)
    _refused(template, tmp_path, "manifest.json is writable by group or others")


def test_a_manifest_of_another_layout_is_refused(template: Path, tmp_path: Path) -> None:
    m = template / "manifest.json"
    data = json.loads(m.read_text())
    data["layout"] = local.TEMPLATE_LAYOUT + 1
    m.write_text(json.dumps(data))
    _refused(template, tmp_path, "not one this restorecheck wrote")


def test_remove_template_takes_it_away(template: Path) -> None:
    local.remove_template(template)
    assert not template.exists()
    assert not list(template.parent.glob(".removed-*"))


def test_the_template_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESTORECHECK_TEMPLATE", raising=False)
    assert local.template_wanted() is True
    for off in ("0", "false", "No", "off"):
        monkeypatch.setenv("RESTORECHECK_TEMPLATE", off)
        assert local.template_wanted() is False
    assert local.template_wanted(True) is True
    monkeypatch.setenv("RESTORECHECK_TEMPLATE", "1")
    assert local.template_wanted(False) is False


# --- the SCRAM verifier (checked against a real server in tests/integration/test_template_cluster.py)


def test_the_verifier_has_postgresql_s_format_and_a_fresh_salt() -> None:
    a, b = scram_sha256_verifier("secret"), scram_sha256_verifier("secret")
    assert VERIFIER_RE.fullmatch(a) and a.startswith("SCRAM-SHA-256$4096:")
    assert a != b  # a new salt each time
    salt = b"0123456789abcdef"
    assert scram_sha256_verifier("secret", salt=salt) == scram_sha256_verifier("secret", salt=salt)
    assert scram_sha256_verifier("secret", salt=salt) != scram_sha256_verifier("secreT", salt=salt)


def test_the_verifier_refuses_what_saslprep_could_change() -> None:
    for bad in ("", "caf\u00e9", "tab\there"):
        with pytest.raises(ValueError):
            scram_sha256_verifier(bad)
    with pytest.raises(ValueError):
        scram_sha256_verifier("x", iterations=0)


def test_the_password_statement_takes_only_a_verifier() -> None:
    v = scram_sha256_verifier("secret")
    assert local.admin_password_statement(v) == f"ALTER ROLE \"postgres\" PASSWORD '{v}'"
    for bad in ("secret", "SCRAM-SHA-256$4096:a$b:c'; DROP ROLE x; --"):
        with pytest.raises(ValueError):
            local.admin_password_statement(bad)


def test_what_a_killed_run_left_in_the_cache_goes_once_it_is_old(tmp_path: Path) -> None:
    root = tmp_path / "cache" / "templates"
    old, fresh, other = root / ".staging-old", root / ".removed-x-1234", root / "pg15-t1-keep"
    for d in (old, fresh, other):
        d.mkdir(parents=True)
    os.utime(old, (0, 0))
    os.utime(other, (0, 0))
    assert local.publish_template(_fake_data(tmp_path), root / "pg15-t1-new")
    assert not old.exists() and fresh.exists() and other.exists()


def test_a_run_that_cannot_write_its_copy_keeps_the_template(template: Path, tmp_path: Path) -> None:
    """A full disk or an unwritable run directory is the run's problem: an error, the template kept."""
    from restorecheck.errors import ProvisionError

    dest = tmp_path / "no-such-parent" / "data"
    with pytest.raises(ProvisionError, match="cannot copy the template data directory"):
        local.copy_template(template, dest, None)
    assert not dest.exists()
    assert local.copy_template(template, tmp_path / "fine", None) is None


def test_templates_of_installations_that_are_gone_are_pruned_when_a_new_one_is_made(tmp_path: Path) -> None:
    """An upgrade makes a new template (its key names the binaries); the old one, about 40 MB, would
    stay forever. When a template is published, those made with binaries that no longer exist or
    have changed go, and so do old templates of another layout; the current ones stay."""
    root = tmp_path / "cache" / "templates"
    bins = tmp_path / "bin"
    bins.mkdir()
    for name in ("postgres-15", "postgres-16", "postgres-17"):
        (bins / name).write_text(name)

    def made_with(name: str) -> list[list[object]]:
        st = os.stat(bins / name)
        return [[str(bins / name), st.st_size, st.st_mtime_ns]]

    assert local.publish_template(_fake_data(tmp_path / "a"), root / "pg15-gone", made_with("postgres-15"))
    assert local.publish_template(_fake_data(tmp_path / "b"), root / "pg16-upgraded", made_with("postgres-16"))
    assert local.publish_template(_fake_data(tmp_path / "c"), root / "pg17-current", made_with("postgres-17"))
    assert local.publish_template(_fake_data(tmp_path / "d"), root / "old-layout-recent")
    assert local.publish_template(_fake_data(tmp_path / "e"), root / "old-layout-old")
    for name, layout in (("old-layout-recent", 0), ("old-layout-old", 0)):
        manifest = json.loads((root / name / "manifest.json").read_text())
        manifest["layout"] = layout
        (root / name / "manifest.json").write_text(json.dumps(manifest))
    os.utime(root / "old-layout-old", (0, 0))
    not_mine = root / "garbage"
    not_mine.mkdir()
    (not_mine / "manifest.json").write_text("{not json")
    (bins / "postgres-15").unlink()
    (bins / "postgres-16").write_text("postgres-16.1, a longer file")
    assert local.publish_template(_fake_data(tmp_path / "f"), root / "pg17-new", made_with("postgres-17"))
    left = sorted(p.name for p in root.iterdir())
    assert left == ["garbage", "old-layout-recent", "pg17-current", "pg17-new"], left
    assert local.copy_template(root / "pg17-current", tmp_path / "run", None) is None
