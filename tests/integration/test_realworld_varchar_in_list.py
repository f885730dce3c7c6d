"""A varchar column's CHECK (c IN (...)) and a view with such an IN list (found on MusicBrainz's schema).

PostgreSQL deparses the source's constraint as ``(c)::text = ANY ((ARRAY['a'::character varying,
...])::text[])``; pg_dump writes that text, and the restored server parses it into a different tree,
deparsed as ``(c)::text = ANY (ARRAY[('a'::character varying)::text, ...])``. Same constraint, other
text: the schema check, comparing texts, fails a faithful backup. Frameworks emit this pattern for
every "choices" column (Django, Rails enums as varchar), so it is common. Not fixed yet: strict xfail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from restorecheck import pipeline
from restorecheck.dburl import PostgresRef
from tests.conftest import execute, url

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TABLE item (id int PRIMARY KEY, kind varchar(10) NOT NULL CHECK (kind IN ('book', 'disc')));
CREATE VIEW books AS SELECT id FROM item WHERE kind IN ('book', 'ebook');
INSERT INTO item VALUES (1, 'book'), (2, 'disc');
"""


class DeparseFalseAlarm(Exception):
    """Only the known false alarm: schema findings on the constraint's and the view's definitions."""


@pytest.mark.xfail(strict=True, raises=DeparseFalseAlarm,
                   reason="the schema check compares deparsed definitions as text, and a dump and restore "
                   "changes the text of a varchar IN list: not fixed on any branch yet")
def test_varchar_in_list_survives_a_drill(fresh_db: PostgresRef) -> None:
    execute(fresh_db, SCHEMA)
    report = pipeline.drill(fresh_db)
    found = sorted((f.check, f.object) for f in report.errors)
    if found == [("schema", "public.books"), ("schema", "public.item")] and all(
            ": definition " in f.message for f in report.errors):
        raise DeparseFalseAlarm("; ".join(f.message for f in report.errors))
    assert found == []


def test_a_changed_in_list_is_still_caught(fresh_db: PostgresRef, tmp_path: Path) -> None:
    """Whatever the fix, a real change of the list must stay a schema error."""
    execute(fresh_db, SCHEMA)
    manifest = tmp_path / "before.manifest.json"
    pipeline.snapshot(fresh_db).save(manifest)
    execute(fresh_db, "ALTER TABLE item DROP CONSTRAINT item_kind_check, "
                      "ADD CONSTRAINT item_kind_check CHECK (kind IN ('book', 'disc', 'tape'))")
    report = pipeline.compare(str(manifest), url(fresh_db))
    assert any(f.check == "schema" and "item_kind_check" in f.message for f in report.errors)
