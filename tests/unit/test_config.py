"""restorecheck.toml (issue 11): read with tomllib, validated before any work; every problem is exit 2
with one line naming the key and its line, and no password ever printed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from restorecheck.cli import run_cli
from restorecheck.config import ConfigError, find_config, load_config

ISSUE_EXAMPLE = """\
[defaults]
output_dir = "/var/lib/restorecheck"
history_url = "sqlite:////var/lib/restorecheck/history.db"   # the default lives in output_dir

[[job]]
name = "app"
source = "postgresql://backup@db1/app"

[[job]]
name = "notes"
source = "/srv/notes/notes.db"

[[job]]
name = "staging"
backups = "/backups/staging/*.dump"
"""


def _write(tmp_path: Path, text: str, name: str = "restorecheck.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_the_issue_example_loads_as_written(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, ISSUE_EXAMPLE))
    assert config.output_dir == Path("/var/lib/restorecheck")
    assert config.history_url == "sqlite:////var/lib/restorecheck/history.db"
    assert [(j.name, j.kind) for j in config.jobs] == [("app", "source"), ("notes", "source"), ("staging", "backups")]
    assert config.jobs[0].source == "postgresql://backup@db1/app"
    assert config.jobs[2].backups == "/backups/staging/*.dump"
    assert [j.line for j in config.jobs] == [5, 9, 13]
    # defaults of the between-nights checks: warnings, 10% rows, 1.5x restore time
    t = config.jobs[0].thresholds
    assert (t.drift_max_loss, t.drift_severity, t.rto_trend_factor, t.rto_trend_severity) == (0.10, "warning", 1.5, "warning")


def test_defaults_apply_to_every_job_and_a_job_overrides(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, """
[defaults]
output_dir = "out"
drift_max_loss = 0.25
drift_severity = "error"
restore_timeout = 600
retention = { keep_days = 30, reports = { keep_runs = 5 } }

[[job]]
name = "a"
source = "a.db"

[[job]]
name = "b"
source = "b.db"
drift_severity = "info"
rto_target = 120
[job.retention]
keep_runs = 3
"""))
    a, b = config.jobs
    assert config.output_dir == tmp_path / "out"  # relative to the config file
    assert config.history_url == f"sqlite:///{tmp_path / 'out' / 'history.db'}"
    assert a.source == str(tmp_path / "a.db")
    assert (a.thresholds.drift_max_loss, a.thresholds.drift_severity, a.restore_timeout) == (0.25, "error", 600.0)
    assert (b.thresholds.drift_max_loss, b.thresholds.drift_severity, b.rto_target) == (0.25, "info", 120.0)
    assert (a.retention.reports.days, a.retention.reports.runs, a.retention.backups.days) == (30, 5, 30)
    assert (b.retention.backups.runs, b.retention.history.runs) == (3, 3)


@pytest.mark.parametrize(("text", "expected"), [
    ('[defaults]\nouput_dir = "x"\n[[job]]\nname = "a"\nsource = "a.db"\n',
     "line 2: unknown key 'defaults.ouput_dir' (did you mean 'output_dir'?)"),
    ('[[job]]\nname = "a"\nsource = "a.db"\n\n[[job]]\nname = "a"\nbackups = "b/*"\n',
     "line 6: [[job]] name 'a' is used twice (first at line 2)"),
    ('[[job]]\nname = "a"\nsource = "a.db"\njobs = "4"\n', "line 4: [[job]] 'a' jobs must be an integer, not a string"),
    ('[[job]]\nname = "a"\nsource = "a.db"\njobs = 0\n', "line 4: [[job]] 'a' jobs must be from 1 to 64, not 0"),
    ('[[job]]\nname = "a"\nsource = "a.db"\ndrift_max_loss = 1.5\n', "line 4: [[job]] 'a' drift_max_loss must be more than 0"),
    ('[[job]]\nname = "a"\nsource = "a.db"\nrto_trend_factor = 0.5\n', "line 4: [[job]] 'a' rto_trend_factor must be more than 1"),
    ('[[job]]\nname = "a"\nsource = "a.db"\ndrift_severity = "fatal"\n',
     "line 4: [[job]] 'a' drift_severity must be one of error, warning, info, not 'fatal'"),
    ('[[job]]\nname = "a"\nsource = "a.db"\n[job.retention]\nkeep_runs = 0\n',
     "line 5: [[job]] 'a' retention.keep_runs must be at least 1, not 0"),
    ('[[job]]\nname = "a"\nsource = "a.db"\nretention = { keep_days = -1 }\n',
     "line 4: [[job]] 'a' retention.keep_days must be at least 0, not -1"),
    ('[[job]]\nname = "a"\nsource = "a.db"\nbackups = "x/*"\n', "line 4: [[job]] 'a' has both source and backups"),
    ('[[job]]\nname = "a"\n', "line 2: [[job]] 'a' has neither source nor backups"),
    ('[[job]]\nsource = "a.db"\n', "line 1: [[job]] #1 has no name"),
    ('[[job]]\nname = "../etc"\nsource = "a.db"\n', "line 2: [[job]] name '../etc' must be 1-64 letters"),
    ('[[job]]\nname = "a"\nsource = "a.db"\nrestore_timout = 5\n',
     "line 4: unknown key \"[[job]] 'a' restore_timout\" (did you mean 'restore_timeout'?)"),
    ('[default]\noutput_dir = "x"\n[[job]]\nname = "a"\nsource = "a.db"\n', "line 1: unknown key 'default' (did you mean 'defaults'?)"),
    ('[[job]]\nname = "a"\nsource = "a.db\n', "not valid TOML: Illegal character '\\n' (at line 3, column 15)"),
    ('[defaults]\non_failure = { url = "ftp://x" }\n[[job]]\nname = "a"\nsource = "a.db"\n',
     "line 2: defaults.on_failure.url 'ftp://x' is not an http(s) URL"),
    ('[defaults]\nhistory_url = "/var/h.db"\n[[job]]\nname = "a"\nsource = "a.db"\n',
     "line 2: defaults.history_url '/var/h.db' is not a SQLAlchemy URL"),
    ('[[job]]\nname = "a"\nsource = "mysql://h/d"\n', "line 3: [[job]] 'a' source is not a database"),
    ('[[job]]\nname = "a"\nsource = "a.db"\npassword_env = "PGPASS"\n', "line 4: [[job]] 'a' password_env is only for a PostgreSQL source"),
    ('job = 3\n', "line 1: job must be an array of tables"),
    ('[defaults]\n', "no [[job]]"),
])
def test_a_bad_config_is_exit_2_naming_the_key_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    rc = run_cli(["run", "--config", str(path)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert expected in err, err
    assert not (tmp_path / "restorecheck-output").exists()  # validated before any work


def test_a_line_that_cannot_be_found_is_said_so(tmp_path: Path) -> None:
    """A dotted key: tomllib reads it, the line scan does not place it, and the message says so."""
    path = _write(tmp_path, '[[job]]\nname = "a"\nsource = "a.db"\nretention.keep_runs = 0\n')
    with pytest.raises(ConfigError, match=r"\(line not found\): \[\[job\]\] 'a' retention.keep_runs must be at least 1"):
        load_config(path)


def test_a_password_in_the_file_is_refused_and_never_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for text in ('[[job]]\nname = "a"\nsource = "postgresql://u:hunter2@h/d"\n',
                 '[defaults]\nhistory_url = "postgresql://u:hunter2@h/hist"\n[[job]]\nname = "a"\nsource = "a.db"\n',
                 '[defaults]\non_failure = "https://u:hunter2@hooks.example/x"\n[[job]]\nname = "a"\nsource = "a.db"\n'):
        rc = run_cli(["run", "--config", str(_write(tmp_path, text))])
        err = capsys.readouterr().err
        assert rc == 2 and "hunter2" not in err and "password" in err, err


def test_password_env_and_password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    text = '[[job]]\nname = "a"\nsource = "postgresql://u@h/d"\npassword_env = "RC_TEST_PW"\n'
    monkeypatch.delenv("RC_TEST_PW", raising=False)
    with pytest.raises(ConfigError, match=r"line 4: .* RC_TEST_PW, which is not set"):
        load_config(_write(tmp_path, text))
    monkeypatch.setenv("RC_TEST_PW", "s3cret")
    job = load_config(_write(tmp_path, text)).jobs[0]
    assert job.source_ref().password == "s3cret" and "s3cret" not in repr(job)  # type: ignore[union-attr]
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    os.chmod(pw, 0o644)
    text = '[[job]]\nname = "a"\nsource = "postgresql://u@h/d"\npassword_file = "pw"\n'
    with pytest.raises(ConfigError, match=r"line 4: .*readable by others"):
        load_config(_write(tmp_path, text))
    os.chmod(pw, 0o600)
    assert load_config(_write(tmp_path, text)).jobs[0].source_ref().password == "from-file"  # type: ignore[union-attr]


def test_where_the_config_is_found(tmp_path: Path) -> None:
    assert find_config("x.toml", {"RESTORECHECK_CONFIG": "y.toml"}) == Path("x.toml")
    assert find_config(None, {"RESTORECHECK_CONFIG": "y.toml"}) == Path("y.toml")
    assert find_config(None, {}) == Path("restorecheck.toml")


def test_a_missing_or_special_config_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["run", "--config", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert run_cli(["run", "--config", str(fifo)]) == 2  # never blocks on a FIFO
    assert run_cli(["run", "--config", str(tmp_path)]) == 2


def test_identity_and_object_storage_backups(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, '[[job]]\nname = "a"\nbackups = "s3://b/p/*.dump.age"\nidentity = "k.txt"\n'
                                          '[[job]]\nname = "b"\nbackups = "d/*"\nidentity = ["k1", "/abs/k2"]\n'))
    a, b = config.jobs
    assert a.backups == "s3://b/p/*.dump.age" and a.identity == (str(tmp_path / "k.txt"),)
    assert b.backups == str(tmp_path / "d/*") and b.identity == (str(tmp_path / "k1"), "/abs/k2")
    with pytest.raises(ConfigError, match=r"line 3: .* identity must be a path or an array of paths"):
        load_config(_write(tmp_path, '[[job]]\nname = "a"\nidentity = 3\nbackups = "x"\n'))
