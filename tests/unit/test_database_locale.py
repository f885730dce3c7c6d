"""Which locale the throwaway database asks for, and in which order it falls back (no server)."""

from __future__ import annotations

from restorecheck.checks.restore import describe_locale
from restorecheck.engines.base import RestoreOptions
from restorecheck.engines.postgres import Inspection, database_locale, locale_attempts


def test_the_reference_comes_first_then_the_dump() -> None:
    insp = Inspection(format="plain", dump_locale={"encoding": "UTF8", "lc_collate": "de_DE.UTF-8",
                                                   "lc_ctype": "de_DE.UTF-8"})
    ref = {"encoding": "UTF8", "lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8", "locale_provider": "libc"}
    assert database_locale(insp, RestoreOptions(reference_locale=ref)) == (
        {"lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8", "locale_provider": "libc"}, "reference")
    assert database_locale(insp, RestoreOptions()) == (
        {"lc_collate": "de_DE.UTF-8", "lc_ctype": "de_DE.UTF-8"}, "dump")
    assert database_locale(Inspection(format="plain"), RestoreOptions()) == ({}, "")
    # a reference without locale facts (an old manifest) leaves it to the dump
    assert database_locale(insp, RestoreOptions(reference_locale={"encoding": "UTF8"}))[1] == "dump"


def test_attempts_fall_back_from_icu_to_libc_to_the_default() -> None:
    icu = {"lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8", "locale_provider": "icu", "icu_locale": "en-US",
           "icu_rules": "&a < b"}
    assert locale_attempts(icu, 16) == [
        {"lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8", "locale_provider": "icu", "icu_locale": "en-US",
         "icu_rules": "&a < b"},
        {"lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8", "locale_provider": "libc"},
        {},
    ]
    assert "icu_rules" not in locale_attempts(icu, 15)[0]  # ICU_RULES came with 16
    assert locale_attempts({"lc_collate": "C", "lc_ctype": "C"}, 14) == [{"lc_collate": "C", "lc_ctype": "C"}, {}]
    assert locale_attempts({}, 16) == [{}]
    assert describe_locale(locale_attempts(icu, 16)[0]) == "locale C.UTF-8, ICU locale en-US with ICU rules"
    assert describe_locale({"lc_collate": "C", "lc_ctype": "C.UTF-8"}) == "LC_COLLATE C, LC_CTYPE C.UTF-8"
    assert describe_locale({}) == "the target's default locale"
