"""``restorecheck.toml``: the nightly job's settings, read with tomllib and validated before any work.

The file is ``--config FILE``, else the ``RESTORECHECK_CONFIG`` environment variable, else
``./restorecheck.toml`` (``find_config``: the CLI hands it the environment, the library reads none).
``[defaults]`` holds the run's own settings (``output_dir``, ``history_url``, ``on_failure``) and any
job setting; each ``[[job]]`` has a ``name`` and exactly one of ``source`` (a live database to back up
and verify, like ``drill SOURCE``) or ``backups`` (a path or glob of existing backups: the newest is
verified, like ``verify``), and may override any job setting.

Every problem is a ``ConfigError`` (exit 2) of one line naming the key and its line. tomllib gives
line numbers for syntax errors only; for a key the line is found by scanning the text
(``_Locator``). That scan understands ``[table]`` and ``[[array]]`` headers and ``key =`` lines; a key
it cannot place (a dotted key, a key inside a multi-line value) is reported without a line, saying so.
Passwords are never in the file: a URL with one is refused; ``password_file`` / ``password_env`` name
where the password is, and the libpq environment and ``~/.pgpass`` work as for every command.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from restorecheck.dburl import DatabaseRef, PostgresRef, mask, parse_database
from restorecheck.errors import BadInputError
from restorecheck.model import DUMP_FORMATS, DumpFormat, HistoryThresholds, Severity

DEFAULT_NAME = "restorecheck.toml"
ENV_VAR = "RESTORECHECK_CONFIG"
MAX_CONFIG_BYTES = 1024 * 1024
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
_HINT = "see the README's 'Nightly job' section for every key"


class ConfigError(BadInputError):
    """restorecheck.toml is malformed or names something impossible: exit 2."""


@dataclass(frozen=True)
class Keep:
    """Keep what is at most ``days`` old and at most the ``runs`` newest; None: no limit."""

    days: int | None = None
    runs: int | None = None


@dataclass(frozen=True)
class Retention:
    """What is kept (defaults: a week of restorecheck's own backups, a month of reports, a year of
    history). Only what restorecheck wrote is ever removed: never the files a ``backups`` job names."""

    backups: Keep = Keep(runs=7)  # backups a source job wrote into output_dir/<job>/backups
    reports: Keep = Keep(runs=30)  # the per-run report directories output_dir/<job>/<timestamp>
    history: Keep = Keep(days=365)  # the runs recorded in the history database


Thresholds = HistoryThresholds  # the between-nights checks' limits and severities (model.py)


@dataclass(frozen=True)
class Webhook:
    url: str
    timeout: float = 10.0
    attempts: int = 3


@dataclass(frozen=True)
class Job:
    name: str
    source: str | None = None
    backups: str | None = None
    format: DumpFormat = "custom"
    target: str | None = None
    jobs: int = 1
    restore_timeout: float | None = None
    start_timeout: float = 60.0
    rto_target: float | None = None
    sandbox: str = "auto"
    pg_bin: str | None = None
    lock_timeout: str = "10s"
    statement_timeout: str = "0"
    thresholds: Thresholds = field(default_factory=Thresholds)
    retention: Retention = field(default_factory=Retention)
    identity: tuple[str, ...] = ()  # keys of encrypted backups (verify --identity)
    password: str | None = field(default=None, repr=False)
    line: int | None = None

    @property
    def kind(self) -> str:
        return "source" if self.source is not None else "backups"

    def source_ref(self) -> DatabaseRef:
        """The source database with the password from ``password_file`` / ``password_env``."""
        assert self.source is not None
        ref = parse_database(self.source)
        if isinstance(ref, PostgresRef) and self.password is not None:
            ref = PostgresRef(dict(ref.params), self.password)
        return ref


@dataclass(frozen=True)
class Config:
    path: Path
    output_dir: Path
    history_url: str
    jobs: tuple[Job, ...]
    on_failure: Webhook | None = None
    junit_file: Path | None = None  # default: output_dir/junit.xml
    metrics_file: Path | None = None  # default: output_dir/metrics.prom (point it at node_exporter's textfile dir)

    @property
    def junit_path(self) -> Path:
        return self.junit_file or self.output_dir / "junit.xml"

    @property
    def metrics_path(self) -> Path:
        return self.metrics_file or self.output_dir / "metrics.prom"

    def job(self, name: str) -> Job:
        for j in self.jobs:
            if j.name == name:
                return j
        raise ConfigError(f"no job named {name!r} in {self.path}",
                          f"the jobs are: {', '.join(j.name for j in self.jobs)}")


def find_config(explicit: str | Path | None, env: Mapping[str, str]) -> Path:
    """``--config``, else ``$RESTORECHECK_CONFIG``, else ``./restorecheck.toml``."""
    if explicit is not None:
        return Path(explicit)
    if env.get(ENV_VAR):
        return Path(env[ENV_VAR])
    return Path(DEFAULT_NAME)


# --- where a key is written -------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[|\[)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


def _unquote(name: str) -> str:
    return name[1:-1] if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'" else name


class _Locator:
    """Line numbers of tables and keys, found by scanning the text (tomllib keeps none)."""

    def __init__(self, text: str) -> None:
        # (section path, header line, {key: line}); section path: ("defaults",), ("job", 0), ...
        self.sections: list[tuple[tuple[Any, ...], int, dict[str, int]]] = [((), 0, {})]
        counts: dict[str, int] = {}
        in_multiline: str | None = None
        for no, line in enumerate(text.splitlines(), start=1):
            if in_multiline is not None:  # inside a ''' or """ string: nothing here is a key
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            m = _HEADER.match(line)
            if m:
                names = tuple(_unquote(p.strip()) for p in m.group(2).split("."))
                path: tuple[Any, ...]
                if m.group(1) == "[[":
                    i = counts.get(names[0], -1) + 1 if len(names) == 1 else counts.get(names[0], 0)
                    if len(names) == 1:
                        counts[names[0]] = i
                    path = (names[0], i, *names[1:])
                elif names[0] in counts:  # [job.retention] belongs to the last [[job]]
                    path = (names[0], counts[names[0]], *names[1:])
                else:
                    path = names
                self.sections.append((path, no, {}))
                continue
            k = _KEY.match(line)
            if k:
                self.sections[-1][2].setdefault(_unquote(k.group(1)), no)
                for quote in ('"""', "'''"):
                    if line.count(quote) % 2 == 1:
                        in_multiline = quote

    def line(self, section: tuple[Any, ...], key: str | None = None) -> int | None:
        """The line of ``key`` in ``section`` (or of the section's header); None when not found."""
        for path, header, keys in self.sections:
            if path == section:
                if key is None:
                    return header or None
                if key in keys:
                    return keys[key]
        if key is not None and not section:  # a top-level table: its header
            for path, header, _keys in self.sections:
                if path[:1] == (key,):
                    return header
        if key is not None and len(section) > 0:
            # a key of a sub-table written inline (retention = { keep_days = 0 }): its parent's line
            for path, _header, keys in self.sections:
                if path == section[:-1] and str(section[-1]) in keys:
                    return keys[str(section[-1])]
        return None


# --- validation ----------------------------------------------------------------------------------------


class _Bad(Exception):
    """A value is wrong; the validator adds where."""


def _where(path: Path, line: int | None) -> str:
    return f"{path} line {line}" if line else f"{path} (line not found)"


def _int(lo: int, hi: int | None = None) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Bad(f"must be an integer, not {_tname(v)}")
        if v < lo or (hi is not None and v > hi):
            raise _Bad(f"must be {'at least ' + str(lo) if hi is None else f'from {lo} to {hi}'}, not {v}")
        return v
    return check


def _float(lo: float, *, lo_open: bool = False, hi: float | None = None) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _Bad(f"must be a number, not {_tname(v)}")
        f = float(v)
        if math.isnan(f) or math.isinf(f) or f < lo or (lo_open and f == lo) or (hi is not None and f > hi):
            bound = f"more than {lo:g}" if lo_open else f"at least {lo:g}"
            if hi is not None:
                bound += f" and at most {hi:g}"
            raise _Bad(f"must be {bound}, not {v}")
        return f
    return check


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise _Bad(f"must be a string, not {_tname(v)}")
    if not v.strip():
        raise _Bad("must not be empty")
    if "\x00" in v:
        raise _Bad("must not contain a NUL character")
    return v


def _choice(*allowed: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        s = _str(v)
        if s not in allowed:
            raise _Bad(f"must be one of {', '.join(allowed)}, not {s!r}")
        return s
    return check


_DURATION = re.compile(r"\s*\d+(\.\d+)?\s*(us|ms|s|min|h|d)?\s*")


def _duration(v: Any) -> str:
    s = _str(v) if not isinstance(v, int) or isinstance(v, bool) else str(v)
    if not _DURATION.fullmatch(s):
        raise _Bad(f"must be a PostgreSQL duration such as 0, 500ms, 10s or 5min, not {s!r}")
    return s


def _tname(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(v), type(v).__name__)


# keys of a job that [defaults] may set for every job: name -> validator
_JOB_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "format": _choice(*DUMP_FORMATS),
    "target": _str,
    "jobs": _int(1, 64),
    "restore_timeout": _float(0, lo_open=True),
    "start_timeout": _float(0, lo_open=True),
    "rto_target": _float(0),
    "sandbox": _choice("auto", "bwrap", "none"),
    "pg_bin": _str,
    "lock_timeout": _duration,
    "statement_timeout": _duration,
    "password_file": _str,
    "password_env": _str,
    "drift_max_loss": _float(0, lo_open=True, hi=1),
    "drift_severity": _choice(*_SEVERITIES),
    "rto_trend_factor": _float(1, lo_open=True),
    "rto_trend_runs": _int(1, 1000),
    "rto_trend_min_runs": _int(1, 1000),
    "rto_trend_min_seconds": _float(0),
    "rto_trend_severity": _choice(*_SEVERITIES),
    "backup_size_max_shrink": _float(0, lo_open=True, hi=1),
    "backup_size_severity": _choice(*_SEVERITIES),
    "identity": lambda v: v,  # a path or an array of them, checked by _Validator.settings
    "retention": lambda v: v,  # a table, checked by _retention
}
_RUN_SETTINGS = ("output_dir", "history_url", "on_failure", "junit_file", "metrics_file")
_JOB_ONLY = ("name", "source", "backups")
_KEEP_KEYS = ("keep_days", "keep_runs")
_RETENTION_KINDS = ("backups", "reports", "history")
_WEBHOOK_KEYS = ("url", "timeout", "attempts")


class _Validator:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.base = path.parent
        self.loc = _Locator(text)

    def fail(self, section: tuple[Any, ...], key: str | None, what: str, problem: str,
             hint: str = _HINT) -> ConfigError:
        line = self.loc.line(section, key)
        return ConfigError(f"{_where(self.path, line)}: {what} {problem}".rstrip(), hint)

    @staticmethod
    def label(section: tuple[Any, ...], key: str, job: str | None = None) -> str:
        if section and section[0] == "job":
            who = f"[[job]] {job!r}" if job else f"[[job]] #{section[1] + 1}"
            rest = ".".join(str(p) for p in section[2:])
            return f"{who} {rest + '.' if rest else ''}{key}"
        return ".".join([*(str(p) for p in section), key])

    def unknown(self, table: Mapping[str, Any], allowed: tuple[str, ...] | list[str],
                section: tuple[Any, ...], job: str | None = None) -> None:
        for key in table:
            if key not in allowed:
                near = _near(key, allowed)
                raise self.fail(section, key, f"unknown key {self.label(section, key, job)!r}", "",
                                f"did you mean {near!r}?" if near else f"known keys: {', '.join(allowed)}")

    def value(self, section: tuple[Any, ...], key: str, raw: Any, check: Callable[[Any], Any],
              job: str | None = None) -> Any:
        try:
            return check(raw)
        except _Bad as exc:
            raise self.fail(section, key, self.label(section, key, job), str(exc)) from None

    def path_value(self, section: tuple[Any, ...], key: str, raw: Any, job: str | None = None) -> str:
        """A path of the file: relative to the config file's directory."""
        s = self.value(section, key, raw, _str, job)
        p = Path(os.path.expanduser(s))
        return str(p if p.is_absolute() else self.base / p)

    def keep(self, section: tuple[Any, ...], raw: Any, job: str | None, base: Keep) -> Keep:
        if not isinstance(raw, dict):
            raise self.fail(section[:-1], str(section[-1]), self.label(section[:-1], str(section[-1]), job),
                            f"must be a table, not {_tname(raw)}")
        self.unknown({k: v for k, v in raw.items() if k not in _RETENTION_KINDS or section[-1] != "retention"},
                     [*_KEEP_KEYS, *(_RETENTION_KINDS if section[-1] == "retention" else ())], section, job)
        days = self.value(section, "keep_days", raw["keep_days"], _int(0), job) if "keep_days" in raw else base.days
        runs = self.value(section, "keep_runs", raw["keep_runs"], _int(1), job) if "keep_runs" in raw else base.runs
        return Keep(days, runs)

    def retention(self, section: tuple[Any, ...], raw: Any, job: str | None, base: Retention) -> Retention:
        sec = (*section, "retention")
        both = self.keep(sec, raw, job, Keep())
        kinds: dict[str, Keep] = {}
        for kind in _RETENTION_KINDS:
            start = Keep(both.days if both.days is not None else getattr(base, kind).days,
                         both.runs if both.runs is not None else getattr(base, kind).runs)
            kinds[kind] = self.keep((*sec, kind), raw[kind], job, start) if kind in raw else start
        return Retention(**kinds)

    def settings(self, section: tuple[Any, ...], table: Mapping[str, Any], base: Job,
                 job: str | None = None) -> Job:
        """``base`` with the job settings of ``table`` applied."""
        changes: dict[str, Any] = {}
        thresholds: dict[str, Any] = {}
        password_from: list[str] = []
        for key, raw in table.items():
            if key not in _JOB_SETTINGS:
                continue
            if key == "retention":
                changes["retention"] = self.retention(section, raw, job, base.retention)
                continue
            if key == "identity":
                items = raw if isinstance(raw, list) else [raw]
                if not items or not all(isinstance(i, str) for i in items):
                    raise self.fail(section, key, self.label(section, key, job),
                                    "must be a path or an array of paths")
                changes["identity"] = tuple(self.path_value(section, key, i, job) for i in items)
                continue
            v = self.value(section, key, raw, _JOB_SETTINGS[key], job)
            if key == "pg_bin":
                v = self.path_value(section, key, raw, job)
            if key in {f.name for f in dataclasses.fields(Thresholds)}:
                thresholds[key] = v
            elif key in ("password_file", "password_env"):
                password_from.append(key)
                changes["password"] = self.password(section, key, v, job)
            else:
                changes[key] = v
        if len(password_from) > 1:
            raise self.fail(section, "password_env", self.label(section, "password_env", job),
                            "and password_file both given", "give one of them")
        if thresholds:
            changes["thresholds"] = dataclasses.replace(base.thresholds, **thresholds)
        return dataclasses.replace(base, **changes)

    def password(self, section: tuple[Any, ...], key: str, v: str, job: str | None) -> str:
        """Read at load time, so that a missing password is exit 2 before any work (never printed)."""
        if key == "password_env":
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
                raise self.fail(section, key, self.label(section, key, job), f"{v!r} is not an environment variable name")
            if v not in os.environ:
                raise self.fail(section, key, self.label(section, key, job),
                                f"names the environment variable {v}, which is not set",
                                f"export {v} before 'restorecheck run'")
            return os.environ[v]
        p = Path(self.path_value(section, key, v, job))
        try:
            st = p.stat()
            if not p.is_file():
                raise _Bad("is not a regular file")
            if st.st_mode & 0o077:
                raise _Bad(f"{p} is readable by others (mode {st.st_mode & 0o777:o})")
            text = p.read_text(encoding="utf-8").strip("\r\n")
        except _Bad as exc:
            raise self.fail(section, key, self.label(section, key, job), str(exc),
                            "give a file only its owner can read (chmod 600)") from None
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc.__class__.__name__
            raise self.fail(section, key, self.label(section, key, job), f"{p} cannot be read: {why}",
                            "give a readable file holding the password") from None
        if not text:
            raise self.fail(section, key, self.label(section, key, job), f"{p} is empty")
        return text

    def database(self, section: tuple[Any, ...], key: str, raw: Any, job: str) -> str:
        s = self.value(section, key, raw, _str, job)
        try:
            ref = parse_database(s)
        except BadInputError as exc:
            raise self.fail(section, key, self.label(section, key, job), f"is not a database: {exc.message}",
                            exc.hint or _HINT) from None
        if isinstance(ref, PostgresRef):
            if ref.password is not None:
                raise self.fail(section, key, self.label(section, key, job),
                                f"holds a password ({mask(s)}): passwords are never kept in the config file",
                                "remove it from the URL; use password_file, password_env, PGPASSWORD or ~/.pgpass")
            return s
        p = Path(os.path.expanduser(str(ref.path)))
        return str(p if p.is_absolute() else self.base / p)


def _near(key: str, allowed: tuple[str, ...] | list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.75)
    return found[0] if found else None


def load_config(path: str | Path) -> Config:
    """Read and validate ``path``: a ``Config``, or ConfigError (exit 2) naming the key and line."""
    from restorecheck.paths import open_regular

    path = Path(path)
    try:
        fh = open_regular(path, "the config file", error=ConfigError,
                          hint="give restorecheck.toml with --config or RESTORECHECK_CONFIG")
    except FileNotFoundError:
        raise ConfigError(f"the config file {path} does not exist",
                          "give one with --config FILE or RESTORECHECK_CONFIG, or run in a directory holding "
                          "restorecheck.toml") from None
    except OSError as exc:
        raise ConfigError(f"the config file {path} cannot be read: {exc.strerror or exc}",
                          "check its permissions") from None
    with fh:
        raw = fh.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"the config file {path} is larger than 1 MiB", "give the restorecheck.toml itself")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the config file {path} is not UTF-8 (byte {exc.start})", "save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message ends with "(at line N, column M)"
        raise ConfigError(f"{path}: not valid TOML: {exc}", "fix the syntax at that line") from None
    return parse_config(data, path, text)


def parse_config(data: Mapping[str, Any], path: Path, text: str = "") -> Config:
    v = _Validator(path.resolve() if path.is_absolute() or path.exists() else path, text)
    v.path = path
    v.unknown(data, ["defaults", "job"], ())
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise v.fail((), "defaults", "defaults", "must be a table ([defaults])")
    jobs_raw = data.get("job", [])
    if not isinstance(jobs_raw, list) or not all(isinstance(j, dict) for j in jobs_raw):
        raise v.fail((), "job", "job", "must be an array of tables ([[job]])")
    if not jobs_raw:
        raise ConfigError(f"{path}: no [[job]]", "add one [[job]] table per database (name and source or backups)")
    v.unknown(defaults, [*_RUN_SETTINGS, *_JOB_SETTINGS], ("defaults",))
    sec: tuple[Any, ...] = ("defaults",)
    output_dir = Path(v.path_value(sec, "output_dir", defaults["output_dir"])) if "output_dir" in defaults \
        else (v.base / "restorecheck-output")
    history_url = v.value(sec, "history_url", defaults["history_url"], _str) if "history_url" in defaults \
        else f"sqlite:///{output_dir / 'history.db'}"
    _check_history_url(v, history_url)
    webhook = _webhook(v, defaults["on_failure"]) if "on_failure" in defaults else None
    files = {k: Path(v.path_value(sec, k, defaults[k])) for k in ("junit_file", "metrics_file") if k in defaults}
    base = v.settings(sec, defaults, Job(name="defaults"))
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    for i, table in enumerate(cast(list[dict[str, Any]], jobs_raw)):
        sec = ("job", i)
        if "name" not in table:
            raise v.fail(sec, None, f"[[job]] #{i + 1}", "has no name", 'give it name = "..."')
        name = v.value(sec, "name", table["name"], _str)
        if not _JOB_NAME.fullmatch(name):
            raise v.fail(sec, "name", f"[[job]] name {name[:70]!r}",
                         "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
                         "it names the job's directory and its metrics label")
        if name in seen:
            raise v.fail(sec, "name", f"[[job]] name {name!r}",
                         f"is used twice (first at line {v.loc.line(('job', seen[name]), 'name')})",
                         "give every job its own name")
        seen[name] = i
        v.unknown(table, [*_JOB_ONLY, *_JOB_SETTINGS], sec, name)
        has = [k for k in ("source", "backups") if k in table]
        if len(has) != 1:
            raise v.fail(sec, has[1] if has else "name", f"[[job]] {name!r}",
                         "has both source and backups" if has else "has neither source nor backups",
                         "give exactly one: source (a database to back up and verify) or backups (existing backups)")
        for key in ("password_env", "password_file"):
            if key in table and ("source" not in table or not _is_postgres(table["source"])):
                raise v.fail(sec, key, v.label(sec, key, name), "is only for a PostgreSQL source",
                             "remove it from this job")
        job = v.settings(sec, table, dataclasses.replace(base, name=name), name)
        if "source" in table:
            job = dataclasses.replace(job, source=v.database(sec, "source", table["source"], name))
        else:
            raw_backups = v.value(sec, "backups", table["backups"], _str, name)
            job = dataclasses.replace(job, backups=raw_backups if raw_backups.startswith("s3://")
                                      else v.path_value(sec, "backups", raw_backups, name))
        if job.password is not None and (job.source is None or not _is_postgres(job.source)):
            job = dataclasses.replace(job, password=None)  # a default meant for the PostgreSQL jobs
        jobs.append(dataclasses.replace(job, line=v.loc.line(sec)))
    return Config(path=path, output_dir=output_dir, history_url=history_url, jobs=tuple(jobs), on_failure=webhook,
                  **files)


def _is_postgres(source: Any) -> bool:
    try:
        return isinstance(source, str) and isinstance(parse_database(source), PostgresRef)
    except BadInputError:
        return False


def _check_history_url(v: _Validator, url: str) -> None:
    sec = ("defaults",)
    if "://" not in url:
        raise v.fail(sec, "history_url", "defaults.history_url",
                     f"{url!r} is not a SQLAlchemy URL", "give e.g. sqlite:////var/lib/restorecheck/history.db")
    rest = url.partition("://")[2]
    userinfo = rest.split("/", 1)[0].rpartition("@")[0]
    if ":" in userinfo:
        raise v.fail(sec, "history_url", "defaults.history_url",
                     f"holds a password ({mask(url)}): passwords are never kept in the config file",
                     "remove it; PostgreSQL reads it from PGPASSWORD or ~/.pgpass")


def _webhook(v: _Validator, raw: Any) -> Webhook:
    sec = ("defaults",)
    table = {"url": raw} if isinstance(raw, str) else raw
    if not isinstance(table, dict):
        raise v.fail(sec, "on_failure", "defaults.on_failure", f"must be a URL or a table, not {_tname(raw)}")
    wsec = ("defaults", "on_failure")
    v.unknown(table, _WEBHOOK_KEYS, wsec)
    if "url" not in table:
        raise v.fail(sec, "on_failure", "defaults.on_failure", "has no url")
    url = v.value(wsec, "url", table["url"], _str)
    if not re.match(r"https?://[^/\s]+", url):
        raise v.fail(wsec, "url", "defaults.on_failure.url", f"{url!r} is not an http(s) URL")
    if ":" in url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]:
        raise v.fail(wsec, "url", "defaults.on_failure.url", "holds a password",
                     "passwords are never kept in the config file")
    timeout = v.value(wsec, "timeout", table["timeout"], _float(0, lo_open=True, hi=600)) if "timeout" in table else 10.0
    attempts = v.value(wsec, "attempts", table["attempts"], _int(1, 20)) if "attempts" in table else 3
    return Webhook(url, timeout, attempts)
