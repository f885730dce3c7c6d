"""The lexical gate of the deparse round trips (engines/pg_deparse.py): what may be embedded."""

from __future__ import annotations

import pytest

from restorecheck.engines.pg_deparse import (
    Candidate,
    candidates,
    lexically_contained,
    round_trip_statement,
    split_check,
    view_query,
)

CONTAINED = [
    "((kind)::text = ANY ((ARRAY['book'::character varying, 'disc'::character varying])::text[]))",
    "(v > 0)",
    "('it''s (' = ')')",
    "(E'a\\'b)' = 'c')",
    "(\"we)ird\" > 0)",
    "(\"a\"\"b(\" > 0)",
    "(N'x(' = B'1' OR X'(' IS NULL)",
    "nextval('public.s'::regclass)",
]
REFUSED = [
    "(true) ; DROP TABLE x; --",
    "(true)) NOT VALID, DROP COLUMN v, ADD CHECK ((true)",
    "(v > 0) /* ) */",
    "(v > 0) -- )\n",
    "($$ ) $$ = '')",
    "($1 > 0)",
    "(U&'\\0027' = '')",
    "(u&\"x\" > 0)",
    "(v > 0) \\g",
    "('unterminated)",
    "(\"unterminated)",
    "(v > 0",
    "v > 0)",
    "(abc'x(' = '')",  # a quote glued to a word: refused, whatever the server would make of it
    "(1e'x(' = '')",
    "(E'\\')' = '')' AND true)",  # the E'' string ends later than a naive reading says: unbalanced
    "(a\0b)",
]


@pytest.mark.parametrize("text", CONTAINED)
def test_contained(text: str) -> None:
    assert lexically_contained(text)


@pytest.mark.parametrize("text", REFUSED)
def test_refused(text: str) -> None:
    assert not lexically_contained(text)


def test_split_check() -> None:
    assert split_check("CHECK ((v > 0))") == ("(v > 0)", False)
    assert split_check("CHECK ((v > 0)) NO INHERIT NOT VALID") == ("(v > 0)", True)
    assert split_check("CHECK ((v > 0)) NOT VALID") == ("(v > 0)", False)
    for bad in ("CHECK (true) ; DROP TABLE x; --", "CHECK (true)) NOT VALID, DROP COLUMN v, ADD CHECK ((true)",
                "CHECK ((v > 0)) NOT ENFORCED", "UNIQUE (v)", "CHECK ()", "CHECK (a) AND (b)",
                "CHECK (true) NOT VALID, DROP COLUMN v"):
        assert split_check(bad) is None, bad


def test_view_query() -> None:
    assert view_query(" SELECT x.id\n   FROM public.x;") == "SELECT x.id\n   FROM public.x"
    assert view_query("SELECT 1; DROP TABLE x") is None
    assert view_query("SELECT 1 AS a) ; DROP TABLE x; --") is None
    assert view_query(";") is None


def _c(kind: str, text: str, **kw: object) -> Candidate:
    return Candidate(("tables", "public.t", "x"), kind, "public", "t", text, "restored", **kw)  # type: ignore[arg-type]


def test_statements_embed_the_text_inside_parentheses_and_quote_names() -> None:
    from psycopg import sql

    def text(s: sql.Composed | None) -> str:
        assert s is not None
        return s.as_string(None)

    check = Candidate(("tables", 'we"ird.t', "x"), "check", 'we"ird', "t t", "CHECK ((v > 0)) NO INHERIT", "r")
    assert text(round_trip_statement(check, "tmp")) == \
        'ALTER TABLE ONLY "we""ird"."t t" ADD CONSTRAINT "tmp" CHECK ((v > 0)) NO INHERIT NOT VALID'
    assert text(round_trip_statement(_c("default", "1 + 1", column="c"), "tmp")) == \
        'ALTER TABLE ONLY "public"."t" ALTER COLUMN "c" SET DEFAULT (1 + 1)'
    assert text(round_trip_statement(_c("view", " SELECT 1;"), "tmp")) == 'CREATE VIEW "public"."tmp" AS SELECT 1'
    assert round_trip_statement(_c("default", "1) , DROP COLUMN v, ALTER COLUMN v SET DEFAULT (1", column="c"),
                                "tmp") is None
    assert round_trip_statement(_c("domain_check", "CHECK ((VALUE > 0)) NO INHERIT"), "tmp") is None
    assert round_trip_statement(_c("index", "CREATE INDEX"), "tmp") is None


def test_candidates_are_only_differing_texts_of_objects_both_sides_have() -> None:
    ref = {"tables": {"public.t": {"constraints": {"c": {"type": "check", "definition": "CHECK (a)"},
                                                   "u": {"type": "unique", "definition": "UNIQUE (a)"}},
                                   "columns": {"a": {"default": "1"}, "g": {"default": "2", "generated": "stored"}}},
                      "public.gone": {"constraints": {"c": {"type": "check", "definition": "CHECK (a)"}}}},
           "views": {"public.v": {"definition": "x", "query_text": "SELECT 1"},
                     "public.old": {"definition": "x"}}}  # a manifest of before the raw text: not tried
    res = {"tables": {"public.t": {"constraints": {"c": {"type": "check", "definition": "CHECK (b)"},
                                                   "u": {"type": "unique", "definition": "UNIQUE (b)"}},
                                   "columns": {"a": {"default": "1::int"}, "g": {"default": "3", "generated": "stored"}}}},
           "views": {"public.v": {"definition": "y", "query_text": "SELECT 2"}, "public.old": {"definition": "y"}}}
    found = {(c.kind, c.path) for c in candidates(ref, res)}
    assert found == {("check", ("tables", "public.t", "constraints", "c", "definition")),
                     ("default", ("tables", "public.t", "columns", "a", "default")),
                     ("view", ("views", "public.v", "definition"))}


def test_a_views_raw_text_is_carried_not_compared() -> None:
    from restorecheck.checks.compare import compare_schema

    a = {"views": {"public.v": {"definition": "SELECT 1", "query_text": " SELECT 1;"}}}
    b = {"views": {"public.v": {"definition": "SELECT 1", "query_text": " SELECT  1 ;"}}}
    old = {"views": {"public.v": {"definition": "SELECT 1"}}}  # a manifest written before the raw text
    assert compare_schema(a, b) == [] and compare_schema(old, b) == []
    assert [f.message for f in compare_schema(a, {"views": {"public.v": {"definition": "SELECT 2"}}})] == \
        ["view public.v: definition SELECT 1 -> SELECT 2"]
