"""Database references: parsing and masking. A password must never survive mask()."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from restorecheck.dburl import PostgresRef, SqliteRef, mask, parse_database
from restorecheck.errors import BadURLError, ExitCode


def test_postgres_url_parts_and_password_kept_out_of_display() -> None:
    ref = parse_database("postgresql://alice:s3cr%40t@db.example:6543/app?sslmode=require")
    assert isinstance(ref, PostgresRef)
    assert ref.params == {"host": "db.example", "port": "6543", "user": "alice", "dbname": "app",
                          "sslmode": "require"}
    assert ref.password == "s3cr@t"
    assert "s3cr" not in ref.display() and "s3cr" not in repr(ref) and "s3cr" not in str(ref)
    assert ref.child_env()["PGPASSWORD"] == "s3cr@t"
    assert "password=" in ref.conninfo()


def test_keyword_conninfo() -> None:
    ref = parse_database("host=/tmp/x port=5433 dbname=app user=bob password=pw")
    assert isinstance(ref, PostgresRef)
    assert ref.params["host"] == "/tmp/x" and ref.password == "pw"
    assert "pw" not in ref.display()


@pytest.mark.parametrize("text", ["app.db", "/var/lib/app.db", "sqlite:///tmp/app.db"])
def test_sqlite_forms(text: str) -> None:
    ref = parse_database(text)
    assert isinstance(ref, SqliteRef)
    assert ref.path.name == "app.db"


@pytest.mark.parametrize("text", ["", "postgresql://u@h:notaport/db", "mysql://u@h/db"])
def test_malformed_urls_are_bad_input(text: str) -> None:
    with pytest.raises(BadURLError) as info:
        parse_database(text)
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_malformed_url_error_masks_password() -> None:
    with pytest.raises(BadURLError) as info:
        parse_database("postgresql://u:topsecret@h:port/db")
    assert "topsecret" not in info.value.one_line()


def test_mask_keywords_and_urls() -> None:
    assert mask("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert mask("host=h password=pw dbname=x") == "host=h password=*** dbname=x"
    assert mask("password='a b' x") == "password=*** x"


@given(st.text(alphabet=st.characters(blacklist_characters="@/: \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"),
               min_size=4, max_size=30))
def test_mask_never_leaks_a_url_password(pw: str) -> None:
    text = f"could not connect to postgresql://user:{pw}@localhost:5432/db: refused"
    assert pw not in mask(text).replace("postgresql://user:***@localhost:5432/db", "")


def test_sqlite_path_is_a_path() -> None:
    assert parse_database("./x/y.sqlite") == SqliteRef(Path("./x/y.sqlite"))


def test_mask_hides_a_password_with_unicode_spaces() -> None:
    """Found by the property above: U+1680 (and U+00A0, U+2003) ended the password early and the rest
    was printed."""
    for pw in ("000\u1680", "a\u00a0b", "x\u2003y\u3000"):
        assert pw not in mask(f"could not connect to postgresql://user:{pw}@localhost:5432/db")
