"""Hostile path arguments and manifests (issue 9, deliverable 7): exit 2 with one line, never a hang.

Every command runs in a subprocess with a timeout, so that a hang fails its test instead of
hanging the suite. A FIFO, a device, a socket or a directory given where restorecheck expects a
file (or a file where it expects a directory) is refused before anything opens it. Malformed
manifests are refused with the JSON path of the field, without a Python repr or a traceback.
No PostgreSQL server is needed: the checks happen before any server is started.
"""

from __future__ import annotations

import copy
import json
import os
import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from restorecheck.errors import BadInputError, BadManifestError, ExitCode
from restorecheck.model import MAX_MANIFEST_DEPTH, Manifest, manifest_schema
from restorecheck.validate import Validator

GOLDEN = Path(__file__).parent.parent / "golden" / "manifest_v1_postgresql.json"
TIMEOUT = 60  # seconds: generous under load; a hang is what it catches
REPR = re.compile(r"Traceback|Error\(|\bNone\b|\bTrue\b|\bFalse\b|^\s*File \"", re.MULTILINE)


def run_cli(*args: object, tmpdir: Path, stdin: Any = subprocess.DEVNULL, pass_fds: tuple[int, ...] = (),
            limit_memory: bool = False) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess with a timeout (a hang fails the test), TMPDIR in ``tmpdir``."""
    env = {**os.environ, "TMPDIR": str(tmpdir), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("RESTORECHECK_REPORT", None)

    def limit() -> None:  # 2 GiB of address space: /dev/zero grew to 23 GB before
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    try:
        return subprocess.run([sys.executable, "-m", "restorecheck", *map(str, args)], capture_output=True,
                              text=True, timeout=TIMEOUT, stdin=stdin, env=env, pass_fds=pass_fds,
                              preexec_fn=limit if limit_memory else None)
    except subprocess.TimeoutExpired:
        pytest.fail(f"restorecheck {' '.join(map(str, args))} hung (no exit within {TIMEOUT}s)")


def assert_exit_2(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("restorecheck: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and "Error(" not in proc.stderr, proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded SQLite database and its manifest (``app.manifest.json``) made by restorecheck."""
    from restorecheck import pipeline
    from restorecheck.dburl import SqliteRef
    from restorecheck.seed import seed

    d = tmp_path_factory.mktemp("db")
    db = d / "app.db"
    seed(SqliteRef(db))
    pipeline.snapshot(str(db)).save(d / "app.manifest.json")
    return db


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    """A directory of special files, and an empty TMPDIR that must stay empty."""
    (tmp_path / "tmp").mkdir()
    os.mkfifo(tmp_path / "fifo")
    os.mkfifo(tmp_path / "fifo.json")
    os.mkfifo(tmp_path / "fifo.db")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir.json").mkdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "sock"))
    try:
        yield tmp_path
    finally:
        sock.close()
    assert list((tmp_path / "tmp").iterdir()) == [], "restorecheck left files in TMPDIR"


# --- every command, every path option -------------------------------------------------------------

# (id, argv with {fifo}/{db}/{manifest}/{w} placeholders, words the one line must hold)
FIFO_CASES = [
    ("verify-backup", ["verify", "{w}/fifo"], ["backup", "{w}/fifo", "FIFO"]),
    ("verify-manifest", ["verify", "{db}", "--manifest", "{w}/fifo.json"], ["manifest", "fifo.json", "FIFO"]),
    ("verify-manifest-noext", ["verify", "{db}", "--manifest", "{w}/fifo"], ["manifest", "FIFO"]),
    ("verify-against", ["verify", "{db}", "--against", "{w}/fifo.db"], ["--against", "fifo.db", "FIFO"]),
    ("verify-report", ["verify", "{db}", "--report", "{w}/fifo"], ["--report", "FIFO"]),
    ("verify-junit", ["verify", "{db}", "--junit", "{w}/fifo"], ["--junit", "FIFO"]),
    ("verify-metrics", ["verify", "{db}", "--metrics", "{w}/fifo"], ["--metrics", "FIFO"]),
    ("verify-pg-bin", ["verify", "{db}", "--pg-bin", "{w}/fifo"], ["--pg-bin", "FIFO"]),
    ("compare-a", ["compare", "{w}/fifo", "{db}"], ["{w}/fifo", "FIFO"]),
    ("compare-b", ["compare", "{db}", "{w}/fifo"], ["{w}/fifo", "FIFO"]),
    ("compare-a-json", ["compare", "{w}/fifo.json", "{manifest}"], ["fifo.json", "FIFO"]),
    ("compare-b-json", ["compare", "{manifest}", "{w}/fifo.json"], ["fifo.json", "FIFO"]),
    ("compare-report", ["compare", "{manifest}", "{manifest}", "--report", "{w}/fifo"], ["--report", "FIFO"]),
    ("snapshot-source", ["snapshot", "{w}/fifo", "-o", "{w}/out.json"], ["SOURCE", "FIFO"]),
    ("snapshot-source-url", ["snapshot", "sqlite:///{w}/fifo", "-o", "{w}/out.json"], ["SOURCE", "FIFO"]),
    ("snapshot-output", ["snapshot", "{db}", "-o", "{w}/fifo"], ["-o", "FIFO"]),
    ("backup-source", ["backup", "{w}/fifo", "-o", "{w}/out"], ["SOURCE", "FIFO"]),
    ("backup-output", ["backup", "{db}", "-o", "{w}/fifo"], ["output directory", "FIFO"]),
    ("backup-pg-bin", ["backup", "{db}", "-o", "{w}/out", "--pg-bin", "{w}/fifo"], ["--pg-bin", "FIFO"]),
    ("drill-source", ["drill", "{w}/fifo"], ["SOURCE", "FIFO"]),
    ("drill-output", ["drill", "{db}", "-o", "{w}/fifo"], ["output directory", "FIFO"]),
    ("drill-report", ["drill", "{db}", "--report", "{w}/fifo"], ["--report", "FIFO"]),
    ("drill-pg-bin", ["drill", "--pg-bin", "{w}/fifo"], ["--pg-bin", "FIFO"]),
    ("seed-target", ["seed", "{w}/fifo"], ["TARGET", "FIFO"]),
    ("seed-target-url", ["seed", "sqlite:///{w}/fifo"], ["TARGET", "FIFO"]),
    ("doctor-pg-bin", ["doctor", "--pg-bin", "{w}/fifo"], ["--pg-bin", "FIFO"]),
]


def _fill(items: list[str], w: Path, db: Path) -> list[str]:
    manifest = db.with_name("app.manifest.json")
    return [x.format(w=w, db=db, manifest=manifest, fifo=w / "fifo") for x in items]


@pytest.mark.parametrize(("argv", "words"), [(a, w) for _, a, w in FIFO_CASES], ids=[c[0] for c in FIFO_CASES])
def test_a_fifo_as_any_path_is_exit_2_at_once(work: Path, sqlite_db: Path, argv: list[str],
                                              words: list[str]) -> None:
    start = time.monotonic()
    proc = run_cli(*_fill(argv, work, sqlite_db), tmpdir=work / "tmp")
    assert_exit_2(proc, *_fill(words, work, sqlite_db))
    assert time.monotonic() - start < TIMEOUT


SPECIAL_CASES = [
    ("socket-manifest", ["verify", "{db}", "--manifest", "{w}/sock"], ["manifest", "socket"]),
    ("socket-source", ["snapshot", "{w}/sock", "-o", "{w}/o.json"], ["SOURCE", "socket"]),
    ("devnull-report", ["verify", "{db}", "--report", "/dev/null"], ["/dev/null", "character device"]),
    ("devnull-snapshot-output", ["snapshot", "{db}", "-o", "/dev/null"], ["/dev/null", "character device"]),
    ("devzero-backup", ["verify", "/dev/zero"], ["/dev/zero", "character device"]),
    ("devzero-compare", ["compare", "/dev/zero", "{db}"], ["/dev/zero", "character device"]),
    ("dir-manifest", ["verify", "{db}", "--manifest", "{w}/dir.json"], ["dir.json", "directory"]),
    ("dir-compare", ["compare", "{w}/dir", "{db}"], ["{w}/dir", "directory"]),
    ("dir-compare-json", ["compare", "{w}/dir.json", "{manifest}"], ["dir.json", "directory"]),
    ("dir-snapshot-source", ["snapshot", "{w}/dir", "-o", "{w}/o.json"], ["SOURCE", "directory"]),
    ("dir-snapshot-output", ["snapshot", "{db}", "-o", "{w}/dir"], ["{w}/dir", "directory"]),
    ("dir-seed", ["seed", "{w}/dir"], ["TARGET", "directory"]),
    ("dir-report", ["verify", "{db}", "--report", "{w}/dir"], ["{w}/dir", "directory"]),
    ("file-as-output-dir", ["backup", "{db}", "-o", "{db}"], ["app.db", "not a directory"]),
    ("file-as-pg-bin", ["drill", "--pg-bin", "{db}"], ["--pg-bin"]),
]


@pytest.mark.parametrize(("argv", "words"), [(a, w) for _, a, w in SPECIAL_CASES],
                         ids=[c[0] for c in SPECIAL_CASES])
def test_devices_sockets_and_directories_are_exit_2(work: Path, sqlite_db: Path, argv: list[str],
                                                    words: list[str]) -> None:
    proc = run_cli(*_fill(argv, work, sqlite_db), tmpdir=work / "tmp")
    assert_exit_2(proc, *_fill(words, work, sqlite_db))


def test_dev_stdin_and_proc_fd_pipes_are_exit_2(work: Path, sqlite_db: Path) -> None:
    r, w = os.pipe()
    try:
        proc = run_cli("verify", "/dev/stdin", tmpdir=work / "tmp", stdin=r)
        assert_exit_2(proc, "/dev/stdin", "FIFO")
        proc = run_cli("verify", sqlite_db, "--manifest", f"/proc/self/fd/{r}", tmpdir=work / "tmp", pass_fds=(r,))
        assert_exit_2(proc, f"/proc/self/fd/{r}", "FIFO")
        proc = run_cli("compare", f"/proc/self/fd/{r}", sqlite_db, tmpdir=work / "tmp", pass_fds=(r,))
        assert_exit_2(proc, "FIFO")
    finally:
        os.close(r)
        os.close(w)


def test_special_files_beside_or_inside_a_backup_are_exit_2(work: Path, sqlite_db: Path) -> None:
    # a FIFO inside a directory-format backup: pg_restore (and the sha256) would block on it
    backup = work / "dirdump"
    backup.mkdir()
    (backup / "toc.dat").write_bytes(b"PGDMP" + b"\0" * 100)
    os.mkfifo(backup / "3001.dat.gz")
    assert_exit_2(run_cli("verify", backup, tmpdir=work / "tmp"), "3001.dat.gz", "FIFO")
    # a FIFO where the manifest beside the backup would be: refused, not silently skipped
    copy_db = work / "copy.db"
    copy_db.write_bytes(sqlite_db.read_bytes())
    os.mkfifo(work / "copy.manifest.json")
    assert_exit_2(run_cli("verify", copy_db, tmpdir=work / "tmp"), "copy.manifest.json", "FIFO")
    # a FIFO as a SQLite -wal side file (SQLite would open it)
    os.mkfifo(work / "fifo.db-wal")
    (work / "side.db").write_bytes(sqlite_db.read_bytes())
    os.mkfifo(work / "side.db-wal")
    assert_exit_2(run_cli("snapshot", work / "side.db", "-o", work / "o.json", tmpdir=work / "tmp"),
                  "side.db-wal", "FIFO")
    assert_exit_2(run_cli("verify", work / "side.db", tmpdir=work / "tmp"), "side.db-wal", "FIFO")


def test_dev_zero_as_manifest_is_exit_2_fast_with_bounded_memory(work: Path, sqlite_db: Path) -> None:
    start = time.monotonic()
    proc = run_cli("verify", sqlite_db, "--manifest", "/dev/zero", tmpdir=work / "tmp", limit_memory=True)
    assert_exit_2(proc, "/dev/zero", "character device")
    proc = run_cli("compare", "/dev/zero", sqlite_db.with_name("app.manifest.json"), tmpdir=work / "tmp",
                   limit_memory=True)
    assert_exit_2(proc, "/dev/zero")
    assert time.monotonic() - start < TIMEOUT


def test_a_huge_manifest_is_refused_without_reading_it(work: Path, sqlite_db: Path) -> None:
    huge = work / "huge.json"
    with huge.open("wb") as fh:  # sparse: 300 MiB that take no disk
        fh.truncate(300 << 20)
    proc = run_cli("verify", sqlite_db, "--manifest", huge, tmpdir=work / "tmp", limit_memory=True)
    assert_exit_2(proc, "huge.json", "larger than 256 MiB")


def test_the_bounded_read_stops_at_max_bytes(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    p.write_text(GOLDEN.read_text())
    with pytest.raises(BadManifestError, match="larger than 1000 bytes"):
        Manifest.load(p, max_bytes=1000)
    assert Manifest.load(p).engine == "postgresql"


def test_the_python_api_refuses_special_paths_too(work: Path, sqlite_db: Path) -> None:
    from restorecheck import pipeline

    with pytest.raises(BadManifestError, match="FIFO"):
        Manifest.load(work / "fifo.json")
    with pytest.raises(BadInputError, match="FIFO"):
        pipeline.snapshot(str(work / "fifo"))
    with pytest.raises(BadInputError, match="FIFO"):
        pipeline.verify(work / "fifo")
    with pytest.raises(BadInputError, match="FIFO"):
        pipeline.compare(str(work / "fifo"), str(sqlite_db))
    with pytest.raises(BadInputError, match="character device"):
        Manifest.load(GOLDEN).save("/dev/null")
    assert Path("/dev/null").is_char_device()


# --- malformed manifests --------------------------------------------------------------------------


def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text())
    return data


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        *head, last = path.split("/")
        node: Any = d
        for k in head:
            node = node[int(k)] if isinstance(node, list) else node[k]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        *head, last = path.split("/")
        node: Any = d
        for k in head:
            node = node[int(k)] if isinstance(node, list) else node[k]
        del node[last]
    return mutate


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("large_objects-string", _set("large_objects", "x"), "$.large_objects must be an object or null, not a string"),
    ("rows-negative", _set("tables/1/rows", -1), "$.tables[1] (shop.empty_mv).rows must be at least 0, not -1"),
    ("schema-null", _set("schema", None), "$.schema must be an object, not null"),
    ("missing-tables", _delete("tables"), "the top level lacks the field tables"),
    ("missing-engine", _delete("engine"), "lacks the field engine"),
    ("backup-without-path", _set("backup", {"format": "custom", "bytes": 1, "sha256": None}),
     "$.backup lacks the field path"),
    ("table-without-name", _delete("tables/0/name"), "$.tables[0] lacks the field name"),
    ("rows-string", _set("tables/0/rows", "60"), "rows must be an integer or null, not a string \"60\""),
    ("rows-bool", _set("tables/0/rows", True), "rows must be an integer or null, not a boolean true"),
    ("key-string", _set("tables/0/key", "id"), "key must be an array, not a string"),
    ("range-bound-object", _set("tables/0/ranges/0/upper", [{"a": 1}]), "$.tables[0] (shop.customers).ranges[0].upper[0]"),
    ("sequence-last-value", _set("sequences/shop.ticket_seq/last_value", "x"),
     "$.sequences[\"shop.ticket_seq\"].last_value must be an integer or null"),
    ("fk-orphans", _set("fk_orphans/shop.legacy.legacy_customer_fk/orphans", -3), "orphans must be at least 0"),
    ("lo-objects-list", _set("large_objects/objects", []), "$.large_objects.objects must be an object"),
    ("engine-unknown", _set("engine", "oracle"), "$.engine must be one of \"postgresql\", \"sqlite\", not \"oracle\""),
    ("tables-object", _set("tables", {}), "$.tables must be an array, not an object"),
    ("facts-header-list", _set("facts/header", [1]), "$.facts.header must be an object"),
    ("sha256-not-hex", _set("backup", {"path": "x", "format": "custom", "bytes": 1, "sha256": "zz"}),
     "$.backup.sha256 must match the pattern"),
    ("deep-array", _set("facts/x", json.loads("[" * 200 + "]" * 200)), f"nested more than {MAX_MANIFEST_DEPTH} levels"),
    ("version-string", _set("manifest_version", "1"), "invalid manifest_version \"1\""),
]


@pytest.mark.parametrize(("mutate", "words"), [(m, w) for _, m, w in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_each_malformed_manifest_is_exit_2_naming_the_field(work: Path, mutate: Callable[[dict[str, Any]], None],
                                                            words: str) -> None:
    d = golden()
    mutate(d)
    bad = work / "bad.json"
    bad.write_text(json.dumps(d))
    proc = run_cli("compare", bad, GOLDEN, tmpdir=work / "tmp")
    line = assert_exit_2(proc, str(bad), words)
    assert not re.search(r"'\w+'|KeyError|TypeError|ValueError", line.replace("'restorecheck ", "")), line
    with pytest.raises(BadManifestError) as info:  # the same in the Python API
        Manifest.load(bad)
    assert words in info.value.one_line()


def test_a_100k_deep_array_is_exit_2_not_a_recursion_error(work: Path) -> None:
    deep = work / "deep.json"
    deep.write_text('{"tool": "restorecheck", "manifest_version": 1, "facts": ' + "[" * 100_000 + "]" * 100_000 + "}")
    proc = run_cli("compare", deep, GOLDEN, tmpdir=work / "tmp")
    assert_exit_2(proc, "deep.json", "nested more than")


@pytest.mark.parametrize(("text", "words"), [
    ('{"tool": "restorecheck", "manifest_version": 1, "x": NaN}', "NaN is not a JSON number"),
    ('{"tool": "restorecheck", "manifest_version": 1, "x": ' + "9" * 5000 + "}", "a number too long"),
    ("\udcff", "not UTF-8"),
    ("[1, 2]", "not a restorecheck manifest"),
])
def test_json_that_python_reads_loosely_is_refused(work: Path, text: str, words: str) -> None:
    bad = work / "bad.json"
    bad.write_bytes(text.encode("utf-8", "surrogateescape"))
    assert_exit_2(run_cli("compare", bad, GOLDEN, tmpdir=work / "tmp"), words)


def test_a_manifest_with_a_malformed_field_fails_verify_with_exit_2(work: Path, sqlite_db: Path) -> None:
    d = json.loads(sqlite_db.with_name("app.manifest.json").read_text())
    d["tables"][0]["rows"] = -1
    bad = work / "bad.json"
    bad.write_text(json.dumps(d))
    report = work / "r.json"
    proc = run_cli("verify", sqlite_db, "--manifest", bad, "--report", report, tmpdir=work / "tmp")
    assert_exit_2(proc, "rows must be at least 0")
    assert json.loads(report.read_text())["verdict"] == "error"


# --- valid manifests still load --------------------------------------------------------------------


def test_valid_manifests_load_and_match_the_schema(sqlite_db: Path) -> None:
    schema = manifest_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    reference = jsonschema.Draft202012Validator(schema)
    for path in (GOLDEN, sqlite_db.with_name("app.manifest.json")):
        data = json.loads(path.read_text())
        assert list(reference.iter_errors(data)) == []
        assert Manifest.load(path).to_dict() == data


def test_a_backup_manifest_passes_the_schema(tmp_path: Path, sqlite_db: Path) -> None:
    from restorecheck import pipeline

    result = pipeline.backup(str(sqlite_db), tmp_path / "out")
    data = json.loads(result.manifest_path.read_text())
    assert data["backup"] is not None
    assert Manifest.load(result.manifest_path).backup == result.artifact


def test_the_validator_refuses_a_schema_keyword_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="oneOf"):
        Validator({"type": "object", "properties": {"a": {"oneOf": [{"type": "null"}]}}})
    with pytest.raises(ValueError, match="additionalProperties"):
        Validator({"type": "object", "additionalProperties": False})


# --- fuzzing: a mutated golden manifest is exit 0/1/2, never 3, never a traceback -------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                     st.text(max_size=5))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                           st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                       max_leaves=6)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            out += _paths(v, (*prefix, i))
    return out


_GOLDEN = golden()
_GOLDEN_PATHS = [p for p in _paths(_GOLDEN) if p]
_REFERENCE = jsonschema.Draft202012Validator(manifest_schema())


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    d = copy.deepcopy(_GOLDEN)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_GOLDEN_PATHS))
        node: Any = d
        try:
            for k in path[:-1]:
                node = node[k]
            if draw(st.booleans()) and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = draw(_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed the way there
    return d


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_manifests_are_loaded_or_refused_never_a_crash(data: dict[str, Any]) -> None:
    from restorecheck.checks.compare import compare_manifests

    assert Validator(manifest_schema()).is_valid(data) == _REFERENCE.is_valid(data)  # agrees with jsonschema
    try:
        m = Manifest.from_dict(data, source="manifest m.json")
    except BadManifestError as exc:
        line = exc.one_line()
        assert "\n" not in line and "manifest m.json" in line
        assert not re.search(r"KeyError|TypeError|ValueError|\\\\x|<\w+ object", line), line
        return
    reference = Manifest.from_dict(_GOLDEN)
    compare_manifests(reference, m)  # neither side may crash the checks
    compare_manifests(m, reference, live_reference=True)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(mutated())
def test_mutated_manifests_through_the_cli_exit_0_1_or_2(tmp_path: Path, data: dict[str, Any]) -> None:
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps(data))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    proc = run_cli("compare", GOLDEN, bad, tmpdir=tmp_path / "tmp")
    assert proc.returncode in (ExitCode.OK, ExitCode.FAILED, ExitCode.BAD_INPUT), proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    if proc.returncode == ExitCode.BAD_INPUT:
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not REPR.search(proc.stderr), proc.stderr


@pytest.mark.parametrize("where", ["rows", "range bound"])
def test_a_manifest_number_beyond_64_bits_is_exit_2(work: Path, sqlite_db: Path, where: str) -> None:
    """A hand-edited 10**400: counted rows were accepted and printed, a key-range bound was an
    internal error (OverflowError, exit 3) when it was bound to SQLite."""
    d = json.loads(sqlite_db.with_name("app.manifest.json").read_text())
    table = d["tables"][0]
    if where == "rows":
        table["rows"] = 10**400
    else:
        table["ranges"] = [{"lower": None, "upper": [10], "rows": 1, "checksum": "0" * 32},
                           {"lower": [10**400], "upper": None, "rows": 1, "checksum": "0" * 32}]
        table["key"] = table["key"] or ["rowid"]
    bad = work / "bad.json"
    bad.write_text(json.dumps(d))
    proc = run_cli("verify", sqlite_db, "--manifest", bad, tmpdir=work / "tmp")
    assert_exit_2(proc, "at most 9223372036854775807" if where == "rows" else "no SQLite key can be")
