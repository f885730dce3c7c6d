"""Database references: parsing and masking. A password must never survive mask()."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import assume, given
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
    # a "password" the message itself contains (such as 'refu') would be found without any leak
    assume(pw not in "could not connect to postgresql://user:***@localhost:5432/db: refused")
    assert pw not in mask(text).replace("postgresql://user:***@localhost:5432/db", "")


def test_sqlite_path_is_a_path() -> None:
    assert parse_database("./x/y.sqlite") == SqliteRef(Path("./x/y.sqlite"))


def test_mask_hides_a_password_with_unicode_spaces() -> None:
    """Found by the property above: U+1680 (and U+00A0, U+2003) ended the password early and the rest
    was printed."""
    for pw in ("000\u1680", "a\u00a0b", "x\u2003y\u3000"):
        assert pw not in mask(f"could not connect to postgresql://user:{pw}@localhost:5432/db")


# libpq's URL rules (parsed by libpq's PQconninfoParse through psycopg): every form libpq takes


def test_several_hosts_with_their_ports() -> None:
    ref = parse_database("postgresql://u:pw@h1:5432,h2:5433/db")
    assert isinstance(ref, PostgresRef)
    assert ref.params == {"user": "u", "host": "h1,h2", "port": "5432,5433", "dbname": "db"}
    assert ref.password == "pw"
    assert ref.child_env() == {"PGUSER": "u", "PGHOST": "h1,h2", "PGPORT": "5432,5433", "PGDATABASE": "db",
                               "PGPASSWORD": "pw"}
    assert ref.display() == "postgresql://u:***@h1:5432,h2:5433/db"
    assert parse_database(ref.display().replace(":***", "")).params == ref.params


def test_percent_encoded_socket_directory_as_the_host() -> None:
    ref = parse_database("postgresql://%2Fvar%2Frun%2Fpostgresql/db")
    assert isinstance(ref, PostgresRef)
    assert ref.params == {"host": "/var/run/postgresql", "dbname": "db"}
    assert ref.display() == "postgresql:///db?host=/var/run/postgresql"
    assert parse_database(ref.display()).params == ref.params


def test_postgres_scheme_and_the_sqlalchemy_spelling() -> None:
    for text in ("postgres://u@h/db", "postgresql+psycopg://u@h/db", "POSTGRESQL://u@h/db"):
        ref = parse_database(text)
        assert isinstance(ref, PostgresRef)
        assert ref.params == {"user": "u", "host": "h", "dbname": "db"}, text


def test_query_parameters_including_host() -> None:
    ref = parse_database("postgresql://u@/db?sslmode=require&host=/tmp&port=5499&application_name=x")
    assert isinstance(ref, PostgresRef)
    assert ref.params == {"user": "u", "dbname": "db", "sslmode": "require", "host": "/tmp", "port": "5499",
                          "application_name": "x"}
    assert ref.child_env()["PGSSLMODE"] == "require" and ref.child_env()["PGHOST"] == "/tmp"
    assert parse_database(ref.display()).params == {"user": "u", "dbname": "db", "host": "/tmp", "port": "5499"}


def test_password_in_the_query_is_kept_out_of_params_and_display() -> None:
    ref = parse_database("postgresql://u@h/db?password=hunter2")
    assert isinstance(ref, PostgresRef)
    assert ref.password == "hunter2" and "password" not in ref.params
    assert "hunter2" not in ref.display()


def test_ipv6_host_and_awkward_names_round_trip_through_display() -> None:
    ref = parse_database("postgresql://we%40ird@[::1]:5433/my%20db")
    assert isinstance(ref, PostgresRef)
    assert ref.params == {"user": "we@ird", "host": "::1", "port": "5433", "dbname": "my db"}
    assert parse_database(ref.display()).params == ref.params


@pytest.mark.parametrize("text", [
    "postgresql://h/db?nosuchparam=1",      # libpq: invalid URI query parameter
    "postgresql://u@h:99999/db",           # a port out of range
    "postgresql://u@h1:5432,h2:x/db",      # one bad port in a list
    "host=h port=abc",                     # keyword form, bad port
    "host='unterminated",                  # keyword form, libpq's parse error
])
def test_what_libpq_refuses_is_one_line_exit_2(text: str) -> None:
    with pytest.raises(BadURLError) as info:
        parse_database(text)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert "\n" not in info.value.one_line()


def test_libpq_parse_errors_never_quote_the_password() -> None:
    """libpq's own message quotes the token it could not decode, which can be the password."""
    for text in ("postgresql://u:top%zzsecret@h/db", "postgresql://u:topsecret@h/db?sslmode=%zz",
                 "postgresql://u:topsecret@h/db?bogus=1", "host=h password=topsecret port=x"):
        with pytest.raises(BadURLError) as info:
            parse_database(text)
        assert "topsecret" not in info.value.one_line() and "top%zzsecret" not in info.value.one_line(), text


@pytest.mark.parametrize(("text", "path"), [
    ("sqlite:///rel/app.db", "rel/app.db"),
    ("sqlite:////abs/app.db", "/abs/app.db"),
    ("sqlite:///a%20b.db", "a b.db"),
    ("sqlite:///x.db?mode=ro", "x.db"),
    ("SQLITE:///y.db", "y.db"),
])
def test_sqlite_urls_keep_sqlalchemys_meaning(text: str, path: str) -> None:
    assert parse_database(text) == SqliteRef(Path(path))


@pytest.mark.parametrize("text", ["sqlite:x.db", "sqlite://", "sqlite:///"])
def test_sqlite_urls_without_a_file_are_bad_input(text: str) -> None:
    with pytest.raises(BadURLError):
        parse_database(text)
