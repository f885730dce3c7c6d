"""The Python API without a server: what a source may be (URLs, paths, SQLAlchemy Engines and
URLs, passwords kept out of anything printed), the Report's conveniences, a cheap import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import restorecheck
from restorecheck.api import as_database
from restorecheck.dburl import PostgresRef, SqliteRef
from restorecheck.errors import BadInputError, BadURLError, ExitCode
from restorecheck.model import Finding, Report, TableResult

SECRET = "s3cr:et@/pw"


def test_sqlalchemy_url_is_converted_field_by_field_password_apart() -> None:
    url = sa.engine.URL.create("postgresql+psycopg", username="app", password=SECRET, host="db.internal",
                               port=6432, database="shop", query={"sslmode": "require"})
    ref = as_database(url)
    assert isinstance(ref, PostgresRef)
    assert ref.params == {"host": "db.internal", "port": "6432", "user": "app", "dbname": "shop",
                          "sslmode": "require"}
    assert ref.password == SECRET
    assert SECRET not in ref.display() and SECRET not in repr(ref)
    assert ref.child_env()["PGPASSWORD"] == SECRET  # how the tools get it: the environment


def test_sqlalchemy_engine_and_socket_directory_in_the_query() -> None:
    engine = sa.create_engine(f"postgresql+psycopg://app:{SECRET.replace('@', '%40').replace('/', '%2F').replace(':', '%3A')}"
                              "@/shop?host=/run/pg&port=5433")
    try:
        ref = as_database(engine)
    finally:
        engine.dispose()
    assert isinstance(ref, PostgresRef)
    assert ref.params == {"host": "/run/pg", "port": "5433", "user": "app", "dbname": "shop"}
    assert ref.password == SECRET


def test_sqlalchemy_sqlite_file_and_in_memory(tmp_path: Path) -> None:
    assert as_database(sa.engine.make_url(f"sqlite:///{tmp_path}/app.db")) == SqliteRef(tmp_path / "app.db")
    with pytest.raises(BadURLError, match="not a SQLite file") as exc:
        as_database(sa.create_engine("sqlite://"))
    assert exc.value.exit_code == ExitCode.BAD_INPUT


def test_other_backends_and_objects_are_bad_input() -> None:
    url = sa.engine.make_url(f"mysql+pymysql://root:{SECRET.replace('@', '%40').replace('/', '%2F').replace(':', '%3A')}@h/db")
    with pytest.raises(BadURLError, match="is a mysql database") as exc:
        as_database(url)
    assert SECRET not in str(exc.value)
    with pytest.raises(BadURLError, match="int does not name a database"):
        as_database(42)


def test_strings_and_paths(tmp_path: Path) -> None:
    assert as_database("postgresql://u@h:5432/db") == PostgresRef({"user": "u", "host": "h", "port": "5432",
                                                                   "dbname": "db"})
    assert as_database(tmp_path / "x.db") == SqliteRef(tmp_path / "x.db")
    assert as_database(str(tmp_path / "x.db")) == SqliteRef(tmp_path / "x.db")


def test_bad_jobs_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="jobs must be a positive integer"):
        restorecheck.snapshot("postgresql://u@h/db", jobs=0)


def _report(verdict: str = "fail") -> Report:
    return Report(
        verdict=verdict, engine="postgresql", reference="manifest",  # type: ignore[arg-type]
        tables=(TableResult("public.orders", 10, 7, "a", "b", False), TableResult("public.users", 3, 3, "c", "c", True)),
        findings=(Finding("row_count", "error", "public.orders", "expected 10 rows, restored 7 (-3)",
                          {"key": ["id"], "keys": [{"key": [4], "change": "missing"}, {"key": [8], "change": "missing"}]}),
                  ) if verdict == "fail" else (),
        command="drill",
    )


def test_report_ok_failing_tables_json_and_summary() -> None:
    bad, good = _report("fail"), _report("pass")
    assert not bad.ok and good.ok
    assert [t.name for t in bad.failing_tables] == ["public.orders"]
    data = json.loads(bad.to_json())
    assert data["verdict"] == "fail" and data["findings"][0]["check"] == "row_count"
    text = bad.summary()
    assert "FAIL: restorecheck drill found 1 problem" in text
    assert "row_count       public.orders: expected 10 rows, restored 7" in text
    assert "keys (id): 4 missing; 8 missing" in text
    assert "keys" not in _report("fail").summary(max_keys=0).split("findings:")[1].split("\n", 2)[2]


def test_import_restorecheck_stays_cheap() -> None:
    code = ("import sys, restorecheck, restorecheck.pytest_plugin; "
            "heavy = [m for m in ('psycopg', 'sqlalchemy', 'rich', 'deepdiff', 'restorecheck.pipeline', "
            "'restorecheck.api') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
    assert restorecheck.verify is restorecheck.api.verify  # type: ignore[attr-defined]
