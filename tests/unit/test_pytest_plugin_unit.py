"""The pytest plugin's pure parts: the URL throwaway_postgres hands out, its masked repr, and no
fixture of the plugin shadowing one of this suite's (which loads the plugin too)."""

from __future__ import annotations

import psycopg
import pytest

from restorecheck import pytest_plugin
from restorecheck.dburl import PostgresRef, parse_postgres

PW = "p@ss:w/rd %x"


@pytest.mark.parametrize("params", [
    {"host": "/tmp/rc-abc/cluster/sock", "port": "5432", "user": "postgres", "dbname": "restorecheck_1"},
    {"host": "db.internal", "port": "6432", "user": "app", "dbname": "shop", "sslmode": "require"},
    {"host": "::1", "port": "5432", "user": "app", "dbname": "shop"},
    {"host": "h1,h2", "port": "5432,5433", "user": "app", "dbname": "my db"},
])
def test_libpq_url_round_trips_through_libpq(params: dict[str, str]) -> None:
    ref = PostgresRef(params, PW)
    text = pytest_plugin.libpq_url(ref)
    assert isinstance(text, str)
    back = parse_postgres(text)
    assert back.params == params and back.password == PW
    assert psycopg.conninfo.conninfo_to_dict(text)["password"] == PW
    assert PW not in repr(text) and "***" in repr(text)
    assert str(text) == text  # a plain str for every consumer


def test_plugin_fixtures_do_not_shadow_the_suites() -> None:
    from _pytest.fixtures import getfixturemarker  # how pytest itself tells a fixture, 8.0 to now

    from tests import conftest

    suite = {name for name in dir(conftest) if getfixturemarker(getattr(conftest, name)) is not None}
    assert {"pg_clusters", "pg_server", "fresh_db"} <= suite  # the detection works
    assert not suite & set(pytest_plugin._FIXTURES)
