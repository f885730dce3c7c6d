"""The one compiled part of restorecheck, optional: the SQLite row-encoding aggregate
(restorecheck/_sqlite_rows.c), which makes SQLite checksums cost about what reading the table costs.
Where it cannot be built (no C compiler, no Python headers) the install goes on without it and the
same checksums are computed by SQL (restorecheck/engines/sqlite.py), only slower.
Everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("restorecheck._sqlite_rows", ["restorecheck/_sqlite_rows.c"], optional=True)])
