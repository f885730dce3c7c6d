"""Shared set-up of the backup/verify/drill integration tests: a small source database and edits
of real pg_dump output (the faults are made by editing copies of real dumps)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from restorecheck.dburl import PostgresRef
from restorecheck.model import Report
from tests.conftest import execute

SOURCE_SQL = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rc5_owner') THEN CREATE ROLE rc5_owner NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rc5 reader') THEN CREATE ROLE "rc5 reader" NOLOGIN; END IF;
END $$;
CREATE TABLE public.parent (id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE public.child (
    id serial PRIMARY KEY,
    parent_id integer NOT NULL REFERENCES public.parent (id),
    label text,
    amount numeric(12, 2)
);
CREATE INDEX child_label_idx ON public.child (label);
INSERT INTO public.parent SELECT g, 'parent ' || g FROM generate_series(1, 50) g;
INSERT INTO public.child (parent_id, label, amount)
    SELECT 1 + g % 50, CASE WHEN g = 777 THEN 'flip-target-Alpha' ELSE 'label ' || g END, g * 1.25
    FROM generate_series(1, 2000) g;
ALTER TABLE public.child OWNER TO rc5_owner;
ALTER SEQUENCE public.child_id_seq OWNER TO rc5_owner;
GRANT SELECT ON public.parent TO "rc5 reader";
"""


def build_source(ref: PostgresRef) -> None:
    execute(ref, SOURCE_SQL)


def validate_report(report: Report) -> dict[str, Any]:
    """The report as JSON, validated against the schema kept in the repo."""
    schema = json.loads(resources.files("restorecheck").joinpath("data/report.schema.json").read_text())
    doc = json.loads(json.dumps(report.to_dict()))
    jsonschema.Draft202012Validator(schema).validate(doc)
    return doc  # type: ignore[no-any-return]


def checks(report: Report, severity: str = "error") -> set[str]:
    return {f.check for f in report.findings if f.severity == severity}


# --- editing plain dumps ----------------------------------------------------------------------


def copy_block(lines: list[str], table: str) -> tuple[int, int]:
    """(index of the COPY line, index of its '\\.' line) for ``table``."""
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"COPY {table} ") and ln.rstrip().endswith("FROM stdin;"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].rstrip("\n") == "\\.")
    return start, end


def edit_plain(src: Path, dest: Path, edit: Any) -> Path:
    lines = src.read_text().splitlines(keepends=True)
    dest.write_text("".join(edit(lines)))
    return dest


def drop_row(lines: list[str]) -> list[str]:
    start, _ = copy_block(lines, "public.child")
    return lines[: start + 10] + lines[start + 11:]


def change_value(lines: list[str]) -> list[str]:
    return [ln.replace("flip-target-Alpha", "flip-target-alpha") for ln in lines]


def drop_table_data(lines: list[str]) -> list[str]:
    start, end = copy_block(lines, "public.child")
    return lines[: start + 1] + lines[end:]


def lower_setval(lines: list[str]) -> list[str]:
    out = []
    for ln in lines:
        if ln.startswith("SELECT pg_catalog.setval('public.child_id_seq'"):
            ln = "SELECT pg_catalog.setval('public.child_id_seq', 1500, true);\n"
        out.append(ln)
    return out


def _without_fk(lines: list[str]) -> list[str]:
    out: list[str] = []
    skip_next = False
    for i, ln in enumerate(lines):
        if skip_next:
            skip_next = False
            continue
        if ln.startswith("ALTER TABLE ONLY public.child") and i + 1 < len(lines) and "FOREIGN KEY" in lines[i + 1]:
            skip_next = True
            continue
        out.append(ln)
    return out


def drop_index_and_fk(lines: list[str]) -> list[str]:
    return [ln for ln in _without_fk(lines) if not ln.startswith("CREATE INDEX child_label_idx")]


def add_orphan_without_fk(lines: list[str]) -> list[str]:
    lines = _without_fk(lines)
    _start, end = copy_block(lines, "public.child")
    return [*lines[:end], "99999\t777\torphan row\t1.00\n", *lines[end:]]


def cut_inside_copy(lines: list[str]) -> list[str]:
    start, end = copy_block(lines, "public.child")
    middle = (start + end) // 2
    return [*lines[:middle], lines[middle][:len(lines[middle]) // 2]]


def failing_statement(lines: list[str]) -> list[str]:
    """A statement that fails (a table the dump never created) before the data: psql stops there.
    Not a missing extension: a server lacking one is an environment failure (exit 3), not a fault."""
    start, _ = copy_block(lines, "public.parent")
    return [*lines[:start], "INSERT INTO public.restorecheck_no_such_table VALUES (1);\n", *lines[start:]]
