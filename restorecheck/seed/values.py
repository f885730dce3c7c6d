"""The deterministic building blocks of the known dataset, shared by both engines.

Every value comes from ``random.Random`` seeded with a string (``rng_for``): Python hashes a
str seed with SHA-512, so the stream is the same on every machine and CPython version, and
each table has its own stream (changing one table's generator leaves the others' content alone).
Only ``random()``, ``randrange()``, ``getrandbits()`` and ``choice()`` on lists are used: their
output is stable across CPython versions. Nothing here depends on the locale, the time zone,
``hash()`` or set/dict ordering.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

Row = tuple[Any, ...]


@dataclass(frozen=True)
class TableSpec:
    """A table of the known dataset: its name (``schema.table`` for PostgreSQL), the columns in the
    order ``generate(scale, seed)`` yields each row's values, and its rows at scale 1."""

    name: str
    columns: tuple[str, ...]
    base_rows: int
    generate: Callable[[int, int], Iterator[Row]]

    def rows(self, scale: int) -> int:
        """Every table grows linearly with ``--scale``."""
        return self.base_rows * scale

# Bump when the generator's output changes on purpose (and regenerate the golden files).
GENERATOR_VERSION = 1

# Text that breaks naive dump/restore code: quoting, COPY escapes, psql's end-of-data line,
# Unicode normalisation, invisible characters. No NUL: PostgreSQL text cannot hold it
# (SQLite adds its own NUL cases).
AWKWARD_TEXT: tuple[str, ...] = (
    "plain ascii",
    "",
    " ",
    "  leading and trailing spaces  ",
    "O'Reilly",
    "''",
    'say "hi"',
    "back\\slash",
    "C:\\path\\to\\file.txt",
    "\\N",
    "\\.",
    "first line\n\\.\nlast line",
    "tab\tseparated\tvalues",
    "line one\nline two",
    "windows\r\nline end",
    "carriage\rreturn",
    "trailing newline\n",
    "\n",
    "NULL",
    "null",
    "'); DROP TABLE rc_strings; --",
    "%s %(name)s {0} $1 ? :param",
    "emoji \U0001f986 duck",
    "family \U0001f469\u200d\U0001f469\u200d\U0001f467 zwj",
    "flag \U0001f1e9\U0001f1ea",
    "cafe\u0301 (combining acute)",
    "caf\u00e9 (precomposed)",
    "Zalgo z\u0351\u0357\u0315a\u0306\u0335l\u0362g\u0317o",
    "\ufeffbyte order mark",
    "no\u00a0break\u00a0space",
    "zero\u200bwidth\u200bspace",
    "right-to-left \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",
    "CJK \u6f22\u5b57 \u304b\u306a \ud55c\uae00",
    "control \x01\x02\x1f\x7f chars",
    "bell\x07 and escape\x1b[31m",
    "greek \u03a3\u03c3\u03c2 and turkish \u0130\u0131",
    "math \U0001d49c\U0001d4b7 and \u221e",
    "ends with backslash\\",
    "{curly,\"array\",like}",
    "comma, semicolon; pipe|",
)

# Timestamps around the 2024 daylight-saving changes of Europe/Berlin and America/New_York.
DST_INSTANTS: tuple[datetime, ...] = (
    datetime(2024, 3, 10, 7, 0, tzinfo=UTC),  # New York: 02:00 EST -> 03:00 EDT
    datetime(2024, 3, 31, 1, 0, tzinfo=UTC),  # Berlin: 02:00 CET -> 03:00 CEST
    datetime(2024, 10, 27, 1, 0, tzinfo=UTC),  # Berlin: 03:00 CEST -> 02:00 CET
    datetime(2024, 11, 3, 6, 0, tzinfo=UTC),  # New York: 02:00 EDT -> 01:00 EST
)

FIRST_NAMES = ("Ada", "Bj\u00f6rn", "Chlo\u00eb", "Dmitri", "\u00c9lodie", "Farah", "G\u00fcnther",
               "Hiroshi", "Ines", "Jos\u00e9", "Kwame", "L\u00e9a", "Mar\u00eda", "Nn\u00e9di",
               "O'Brien", "Priya", "Qi", "Ren\u00e9e", "S\u00f8ren", "Th\u00e9o", "Ulla", "Vi\u1ec7t",
               "Wojciech", "Xi\u00e0o", "Y\u0131lmaz", "Zo\u00eb")
LAST_NAMES = ("Lovelace", "Andersson", "M\u00fcller", "Ivanov", "Dupont", "Khan", "Schr\u00f6der",
              "Tanaka", "Garc\u00eda", "Okafor", "N'Diaye", "D'Angelo", "van der Berg", "\u0141ukasz",
              "\u00c5str\u00f6m", "Nakamura", "Nguy\u1ec5n", "O'Neil", "Smith-Jones", "Z\u00fa\u00f1iga")
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliett", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
         "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu")


def rng_for(seed: int, name: str) -> random.Random:
    """The random stream of one table: independent of every other table's."""
    return random.Random(f"restorecheck-seed-v{GENERATOR_VERSION}:{seed}:{name}")


def awkward(i: int) -> str:
    """The awkward string number ``i`` (cycling)."""
    return AWKWARD_TEXT[i % len(AWKWARD_TEXT)]


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def blob(rng: random.Random, n: int) -> bytes:
    """Random bytes with zero bytes guaranteed at the start, the middle and the end."""
    if n <= 0:
        return b""
    body = bytearray(rng.getrandbits(8) for _ in range(n))
    body[0] = 0
    body[n // 2] = 0
    body[-1] = 0
    return bytes(body)


def instant_near_dst(rng: random.Random, i: int) -> datetime:
    """An instant within three hours of one of the 2024 DST changes, to the microsecond."""
    base = DST_INSTANTS[i % len(DST_INSTANTS)]
    return base + timedelta(microseconds=rng.randrange(-3 * 3600 * 10**6, 3 * 3600 * 10**6))


def instant_between(rng: random.Random, start: datetime, seconds: int) -> datetime:
    return start + timedelta(seconds=rng.randrange(seconds), microseconds=rng.randrange(10**6))
