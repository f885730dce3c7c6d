"""Public sample databases that nobody here wrote, pinned by repository, commit and sha256.

The files themselves are not committed (third-party data): ``python -m tests.samples.load fetch``
copies them into the samples directory (``RESTORECHECK_SAMPLES_DIR``, else ``tests/samples/data``,
git-ignored), from a local directory of git mirrors (``--mirror DIR`` holding ``owner+name/repo``)
or from raw.githubusercontent.com at the pinned commit. Every file is checked against its sha256.

Each sample is loaded, unedited but for the lines a fresh database cannot take (``CREATE
DATABASE``/``\\c``, ``CREATE LANGUAGE plpgsql``) and, for AdventureWorks, the data of the big tables
(the CSVs of its lookup tables are loaded, so that its explicit-id loads leave sequences behind).
Schema is never trimmed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `python3 -m tests.samples.load fetch` needs nothing but the standard library
    from restorecheck.dburl import PostgresRef

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Source:
    repo: str  # owner/name on GitHub
    commit: str
    path: str
    sha256: str

    @property
    def local(self) -> Path:
        return samples_dir() / self.repo.replace("/", "+") / self.commit[:12] / self.path

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"


@dataclass(frozen=True)
class Sample:
    name: str
    engine: str  # postgresql | sqlite
    license: str
    shape: str
    sources: tuple[Source, ...]
    # the fault injected into a copy of a plain dump: (description, edit of the dump's text, check id)
    fault: tuple[str, Callable[[str], str], str] | None = None
    extensions: tuple[str, ...] = ()  # what the source needs beyond a bare server
    icu: bool = False  # it creates an ICU collation
    schemas: tuple[str, ...] = ()  # created before the scripts run
    search_path: str | None = None  # the scripts' session search_path

    def missing(self) -> list[Source]:
        return [s for s in self.sources if not s.local.is_file()]


def samples_dir() -> Path:
    return Path(os.environ.get("RESTORECHECK_SAMPLES_DIR") or HERE / "data")


# --- the samples -------------------------------------------------------------------------------

PAGILA = "devrimgunduz/pagila"
PAGILA_C = "5ba5a57aeb159f75f02aca2432d3c262186d13d3"  # v3, Dec 2024: the last before PostgreSQL 18 became its minimum
DBSAMPLES = "morenoh149/postgresDBSamples"  # a copy of pgfoundry's dbsamples
DBSAMPLES_C = "2bdc9539762092912655e1b82b7433d3151389dc"
CHINOOK = "lerocha/chinook-database"
CHINOOK_C = "7f67772503d71ba90f19283c38e93923addb43fa"
NORTHWIND = "pthom/northwind_psql"
NORTHWIND_C = "cd0ef28d66369fbe177778e604e4be0f153c9e5c"
AW = "lorint/AdventureWorks-for-Postgres"
AW_C = "b37c060c3c3064b501cb479fe1085ed9141c2f66"
MB = "metabrainz/musicbrainz-server"
MB_C = "11cd769a5935c243a48455bc3a21158179170368"
# the schemas MusicBrainz's admin/InitDb.pl creates first (@FULL_SCHEMA_LIST), then its scripts in its order
# (no replication, no mirror-only parts): admin/sql/<name>.sql -> sha256
MB_SCHEMAS = ("musicbrainz", "cover_art_archive", "documentation", "event_art_archive", "json_dump", "report",
              "sitemaps", "statistics", "wikidocs", "dbmirror2")
MB_SCRIPTS = (
    ("Extensions", "50edd0c5bba6921f01a163b508dee6c2b64beeb28f8152348c822bd756243ab5"),
    ("CreateCollations", "78a6324f945a971870e1f4a8abb25c801c253642fff3f07da67d399a92a56004"),
    ("CreateTypes", "985f3e2f0c635731f1650baceaece31fd0d48bf97b3645f7b2b3969b704738dc"),
    ("CreateTables", "cdcf229c66d060bf2e4d9afad13e6646cd3caa774425719919cbb7ac6a5ac708"),
    ("caa/CreateTables", "b986eaed51b490e905b26976a84dab301b83252e568577db942533f35eba2ce1"),
    ("eaa/CreateTables", "6441a08fdf0575c4606b8594009cbaacf845e3cfcc0b8cc9b3b60d2347a418ad"),
    ("documentation/CreateTables", "a272eb0c6874ba2b21ffc435921db6e9289cd15fa1209d7fd843242a0afb0177"),
    ("json_dump/CreateTables", "5f6afed9de3847b3eda31935e2e2ff30751ef418a7f4cd0837378f90af7156b1"),
    ("report/CreateTables", "5a40abff066ac3afd992975b4a84f0ed5a4a46c703744139c49133222cd822fd"),
    ("sitemaps/CreateTables", "4cb1f9d391b48911dd19e3c0a4e01008a9bcf73129d089ce155bb5ea4af2ba69"),
    ("statistics/CreateTables", "693ad7f17320247690dc84098502d0e2ec92a08d1efb6aede11444f86bcd8428"),
    ("wikidocs/CreateTables", "c5695a8993d815c5e54c1847b03206b148702d17e8c6ffb89729d02100d32e0a"),
    ("InsertDefaultRows", "a92a8df3e627e36cc94ee5f7c76747c8f49c088a13ce98470b4d5477e65db292"),
    ("CreatePrimaryKeys", "7875b55ebab0e99326bfc2ed6d12289e912a137e67d8c3f4269cbb16e021016e"),
    ("caa/CreatePrimaryKeys", "1f2decac126fc7071da5e7378d3b37388209e3b4ee99543fc3a1d380466efe9b"),
    ("documentation/CreatePrimaryKeys", "dbecde4b00b213983f3297f5730ffff42d15a78c36240a8bed4b88f2bb935f14"),
    ("eaa/CreatePrimaryKeys", "a125421764d3b830d3ad56239d2d0921ef4d224995cb376ed22fbfdae3e9b4cc"),
    ("json_dump/CreatePrimaryKeys", "315cc8fc030f610c0e03f431dce5ae223db4c10168893c516b2c44517cc6afe4"),
    ("statistics/CreatePrimaryKeys", "a85d1f57d77f3906b54d19305fe744682bd76c7aec6ac06a23e4bcc2b5ac5ca9"),
    ("wikidocs/CreatePrimaryKeys", "2cb14973c42149f8ed3a3a5ffe45cc30f459dcc817026b7f0bd59f32769c8ef8"),
    ("CreateSearchConfiguration", "48f4b7517f615006ac9837f72091b24afb333651fff117d316e42ca0490d6f77"),
    ("CreateFunctions", "46dbb92ef505a6d27de23ca851d77c16dad3521eb21e7304b37de896188fbaca"),
    ("caa/CreateFunctions", "ed93557bcfa919d58dd98b6b0554222e5943e05b57ae051c950f9c8a5ef9a958"),
    ("eaa/CreateFunctions", "f765a3613b744e77bb77fef77414494d6a73e25c7f5701ffa55e03b9bc9bc54d"),
    ("CreateIndexes", "72d52ecb8c0bf6f7bf1de9b5aa73a83d4b6714ee1d6b1b8edddb291fd79ff843"),
    ("caa/CreateIndexes", "9f546dc272bae4a5a27eed6bf534828b97628fe90e3dfd27154b10beea184af0"),
    ("eaa/CreateIndexes", "659440c15ed1c6ab24adc5c1c126c571785eda11eba8be7ea826ee9982f1196d"),
    ("json_dump/CreateIndexes", "d9cd9ce5945c3965173434e320f7bd9c2966e4c3e79d836825a790a7ac5fd1a5"),
    ("sitemaps/CreateIndexes", "8201d89abe21e38b4d5e051c892645ef3399c09475dfbf35e20c9987e961ebbd"),
    ("statistics/CreateIndexes", "f698cd6acf38691c0f49dc928efd0efd547e1dfe295c9d3d76fb1d547c7769e1"),
    ("CreateFKConstraints", "c26fe5064af462526f9c9035e526a93d8b79800b8aa8ff116ad26855c1fe540c"),
    ("caa/CreateFKConstraints", "676f45a6977cf898d5611a0b5be7e8d4b47342ed005c0b8fa39f73ef04d0b351"),
    ("documentation/CreateFKConstraints", "e0a1c53c3085372f7bb86d881afc25b25b6bb84f14039bdda037d6d1a33013df"),
    ("eaa/CreateFKConstraints", "7cdac401b062735f83e9bbdd52f16dcf4e0d084af56c08bad8ad5a1eb4e505e2"),
    ("caa/CreateEditFKConstraints", "e9da97feb9d2d17978ecf0bea99c92e05a1dddb35f880d0f33aed3f1f67b4028"),
    ("eaa/CreateEditFKConstraints", "ea86a611695f36e6998a0116925dfedf2d5e8622d38bc6e41e3ab3524e714b43"),
    ("sitemaps/CreateFKConstraints", "78577b60678235a93c1ddf8d12282028b5dd438ab9d11c952a99cf584ab693b6"),
    ("CreateConstraints", "12ab81186b805e86790cdb0ed4b53ce604e305528d63a07d1ea188093695bbcd"),
    ("SetSequences", "ad82521f7c66d46fa55e7ee4390b77d9f266644ea0082c230eeadcfd25655803"),
    ("statistics/SetSequences", "9ea9d8011bbf289de852d46ce87ad12fe1d5d403258b3430d1db8376e4ff6970"),
    ("CreateViews", "ed14be1963c40475195a19eb2cbe1ed7bebf4f8509d9cbc3c323d70ea855fd1a"),
    ("caa/CreateViews", "416a21d8428db0976acc9888183798edd518464ad70751c5267613be1db7a03c"),
    ("eaa/CreateViews", "3c6bc284b6d0bf74d1ae35d5b603efff57ca0caa1b82244b29950747e2b25009"),
    ("CreateTriggers", "4f47eb3642a9664df80e76b26b1ccf41f7f15b20504c89f6c54a9c58dca99d18"),
    ("caa/CreateTriggers", "2eea84d93b00937387a659dbe974cc2960231014edce5f69c7d61f447f4dbc08"),
    ("eaa/CreateTriggers", "8be451709f727fe8eb621c8ab64573a16f9a8ce6cfdce929fee31c58d84f60a8"),
    ("CreateSearchIndexes", "6373f03a96808a48cb9db82cc26eb276cb94ef21cd5df959ae0efaa0042deacd"),
)
SAKILA = "jOOQ/sakila"
SAKILA_C = "e089a5b1ec9af0df7a9c6a5d47d49fa1736a4e84"
NW_SQLITE = "jpwhite3/northwind-SQLite3"
NW_SQLITE_C = "4f56e7f5906dfd23b25244c5bfe8fb5da6402efd"

# AdventureWorks tables loaded (lookups, and the products its inline reviews need; none has a foreign key
# to a table left empty): table -> (csv, sha256)
AW_LOOKUPS = {
    "HumanResources.Department": ("Department", "02142b1f5539192b5337ca1349ca073dcf56143e54863c03292e9659ed50b2c4"),
    "HumanResources.Shift": ("Shift", "e13f5c5b0b894ba6989a49e9f8fc9f80d737ca130249601a24bad5e7c05208fa"),
    "Person.AddressType": ("AddressType", "e7e0f654ecea26d9d099c336bd6a9e3fcaab6f8a54bf5ea52d3d3a87379eff6f"),
    "Person.ContactType": ("ContactType", "b1932e632798aba7809806e7c7d6787ee40d2a94c08ce887bde4369ce2ba4517"),
    "Person.PhoneNumberType": ("PhoneNumberType",
                               "980bc683a15836fc03ca21f86767782ff15899acb0ea61e950b03beb872b9ea5"),
    "Person.CountryRegion": ("CountryRegion", "368a7b66c6b00b64650e46cbf0d2f8a095592a4264a15b021569b13341bc3f3a"),
    "Production.Culture": ("Culture", "d58be4415a8950a444165c1a14ede3f248de62942428bb827f307cff4af3d435"),
    "Production.UnitMeasure": ("UnitMeasure", "6e1bb8f5621e33de9b56b7c723e75299aae0ae7528c9eac70eb4218688b1abd7"),
    "Production.ScrapReason": ("ScrapReason", "0d17d06adcdeb214152469dd3daddc79f02626d99eaa274c884048b7e5ea01cb"),
    "Production.Location": ("Location", "ece33d8129204805cc17663796de029bdb8e2ad420b9fdee485b78a9cefa7c10"),
    "Production.ProductCategory": ("ProductCategory",
                                   "fd9d6e8d865d305d1e4420813fa54a2adf5d4d6f55941c5482e2662e52e50891"),
    "Production.ProductSubcategory": ("ProductSubcategory",
                                      "e4466b5283419c409c737d5ddfc8e545031824feedf60408cbdc8b19b2fc63d0"),
    "Production.ProductModel": ("ProductModel", "d2a129d40de97b43e51a2dd21e7df30c2948e1241dacdb10b1b009e4b7967499"),
    "Production.Product": ("Product", "858f3026074c4401905022d4d0453b4dd91ba10159de7b3b2ff047ddd2d203cc"),
    "Sales.Currency": ("Currency", "dbcab7c0bb5744b5118b47221bfdeeaafcfdb0e2469767e795f11679c9e67d4a"),
    "Sales.SalesReason": ("SalesReason", "b70f27d3820c23191fbb6b0b9a15ec3a32d090ce569001ccbb4989a0711db9e1"),
    "Purchasing.ShipMethod": ("ShipMethod", "c917aea4eb1519842c3136cbd1e90800505b02e37e6a7c57a68047b1392658de"),
}


def _aw_csv(csv: str, sha: str) -> Source:
    return Source(DBSAMPLES, DBSAMPLES_C, f"adventureworks/data/{csv}.csv", sha)


def _drop_copy_row(table: str, nth: int) -> Callable[[str], str]:
    """Delete the nth data row of ``table``'s COPY block in a plain dump (a lost row)."""
    def edit(text: str) -> str:
        lines = text.splitlines(keepends=True)
        start = next(i for i, ln in enumerate(lines) if ln.startswith(f"COPY {table} ") and "FROM stdin" in ln)
        del lines[start + nth]
        return "".join(lines)
    return edit


def _replace_once(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert text.count(old) >= 1, f"{old!r} not in the dump"
        return text.replace(old, new, 1)
    return edit


def _drop_statement(start: str) -> Callable[[str], str]:
    """Remove the statement that begins with ``start`` (up to its terminating ';' line)."""
    def edit(text: str) -> str:
        i = text.index(start)
        j = text.index(";\n", i) + 2
        return text[:i] + text[j:]
    return edit


SAMPLES: dict[str, Sample] = {s.name: s for s in (
    Sample(
        "pagila", "postgresql", "MIT (LICENSE.txt: Devrim Gunduz)",
        "DVD rental: declarative range partitions (payment by month), domains (one named with a "
        "dotless i), an enum, a materialized view, tsvector full text with a GiST index, triggers, "
        "functions and an aggregate, views, setval of every sequence",
        (Source(PAGILA, PAGILA_C, "pagila-schema.sql",
                "8ce358e4c8014087b85296694a0893887bd7a4190e3ce407f2721b86b98e5707"),
         Source(PAGILA, PAGILA_C, "pagila-data.sql",
                "880580fb2cd4daaa99f290ced264988cdd657b3158be63cd281466f796f6dbf2")),
        fault=("a row of a payment partition lost", _drop_copy_row("public.payment_p2022_03", 5), "row_count"),
    ),
    Sample(
        "pagila_legacy", "postgresql", "BSD (pagila 0.10.1 README, after Sakila)",
        "pagila 0.10.1 (pgfoundry): table inheritance (payment_p2007_NN INHERITS payment) with "
        "INSERT rules, domains, an enum, full text, an aggregate",
        (Source(DBSAMPLES, DBSAMPLES_C, "pagila-0.10.1/pagila-schema.sql",
                "ba2517fe3de3be5c2b2f0a8597856598e13fb497a3c4d62d7fe43de7c8c91fe1"),
         Source(DBSAMPLES, DBSAMPLES_C, "pagila-0.10.1/pagila-data.sql",
                "e1017231a4513e2ae061f163c86ebe8abac45529186db76f6c5a0c5eb964aad9")),
        fault=("a customer's name changed", _replace_once("\tMARY\tSMITH\t", "\tMARY\tSMYTH\t"), "checksum"),
    ),
    Sample(
        "chinook", "postgresql", "MIT (LICENSE.md: Luis Rocha)",
        "digital media store: 11 tables, integer keys loaded with explicit ids, multi-row INSERTs, "
        "non-ASCII text, no sequences",
        (Source(CHINOOK, CHINOOK_C, "ChinookDatabase/DataSources/Chinook_PostgreSql.sql",
                "e3fde5c1a5b51a2a91429a702c9ca6e69ba56e6c7f5e112724d70c3d03db695e"),),
        # its albums' foreign key can no longer be restored
        fault=("a parent artist row lost", _drop_copy_row("public.artist", 1), "restore_errors"),
    ),
    Sample(
        "northwind", "postgresql", "Ms-PL (Microsoft Public License)",
        "Northwind traders: 14 tables, text and composite keys, bytea pictures, real and smallint",
        (Source(NORTHWIND, NORTHWIND_C, "northwind.sql",
                "0ee30c01ba282f7194f38bf7f99cd6be0470b7ee5f67d0f7ca41fb058d735e0c"),),
        fault=("an order line lost", _drop_copy_row("public.order_details", 3), "row_count"),
    ),
    Sample(
        "adventureworks", "postgresql", "MIT (install.sql: Polangeles LTD); data: Microsoft sample",
        "AdventureWorks: 5 table schemas and 5 view schemas, 68 tables, 87 views, 2 materialized views, 6 domains, "
        "extensions uuid-ossp and tablefunc (crosstab), uuid defaults, comments; its lookup tables "
        "loaded with explicit ids into SERIAL columns (sequences never advanced), the rest empty",
        (Source(AW, AW_C, "install.sql", "494e35184ab5923bc112a45db518f73c0a7def35efc0726229e6036c7b5a6cee"),
         *(_aw_csv(csv, sha) for csv, sha in AW_LOOKUPS.values())),
        fault=("a view dropped", _drop_statement("CREATE VIEW pe.a "), "schema"),
        extensions=("uuid-ossp", "tablefunc"),
    ),
    Sample(
        "musicbrainz", "postgresql", "GPL-2.0-or-later (COPYING.md); fetched at test time, not redistributed",
        "MusicBrainz's own schema as its InitDb.pl creates it, with its default rows: 10 schemas, 514 tables, "
        "an ICU collation (musicbrainz, '@colCaseFirst=lower;colNumeric=yes') on 18 columns, extensions cube, "
        "earthdistance and unaccent, a text search configuration, 7 enums, 192 functions, 452 triggers, "
        "views, explicit ids then setval from SetSequences.sql",
        tuple(Source(MB, MB_C, f"admin/sql/{name}.sql", sha) for name, sha in MB_SCRIPTS),
        fault=("an editor row lost", _drop_copy_row("musicbrainz.editor", 2), "row_count"),
        extensions=("cube", "earthdistance", "unaccent"), icu=True, schemas=MB_SCHEMAS,
        search_path="musicbrainz, public",
    ),
    Sample(
        "chinook_sqlite", "sqlite", "MIT (LICENSE.md: Luis Rocha)",
        "Chinook for SQLite: 11 tables, foreign keys, explicit integer ids",
        (Source(CHINOOK, CHINOOK_C, "ChinookDatabase/DataSources/Chinook_Sqlite.sql",
                "caf31d698a4a79c628215b552dfe6575e71be052ae02b8f18e763498f55f5d44"),),
    ),
    Sample(
        "northwind_sqlite", "sqlite", "MIT (LICENSE: JP White)",
        "Northwind for SQLite: bracket-quoted names with spaces, views, BLOB pictures, composite keys",
        (Source(NW_SQLITE, NW_SQLITE_C, "src/create.sql",
                "5854b536dea3fe8c586223bf7b47a793727dd44c34fc32537a68a97fec8e2f4b"),),
    ),
    Sample(
        "sakila_sqlite", "sqlite", "BSD-2-Clause (LICENSE: jOOQ)",
        "Sakila for SQLite, schema only (its data file is over the mirror's 4 MiB limit): 16 tables, "
        "views, AFTER INSERT/UPDATE triggers, indexes",
        (Source(SAKILA, SAKILA_C, "sqlite-sakila-db/sqlite-sakila-schema.sql",
                "b1db76b3a5192f98493901a9ac40fecb9dba918feb5604b7ef6b74230a385f12"),),
    ),
)}


# --- fetching -----------------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(source: Source, mirror: Path | None) -> None:
    """Bring one pinned file into the samples directory, from a git mirror or from GitHub."""
    if source.local.is_file() and _sha(source.local.read_bytes()) == source.sha256:
        return
    gitdir = mirror / source.repo.replace("/", "+") / "repo" if mirror else None
    if gitdir is not None and gitdir.is_dir():
        data = subprocess.run(["git", "-C", str(gitdir), "show", f"{source.commit}:{source.path}"],
                              check=True, capture_output=True).stdout
    else:
        with urllib.request.urlopen(source.url, timeout=60) as resp:
            data = resp.read()
    if _sha(data) != source.sha256:
        raise SystemExit(f"{source.repo}@{source.commit[:12]}:{source.path}: sha256 {_sha(data)} is not the "
                         f"pinned {source.sha256}")
    source.local.parent.mkdir(parents=True, exist_ok=True)
    source.local.write_bytes(data)


# --- loading ------------------------------------------------------------------------------------


def _pg_script(sample: Sample, workdir: Path) -> list[Path]:
    """The scripts to run with psql, in order: the pinned files, minimally adapted."""
    scripts: list[Path] = []
    if sample.name == "adventureworks":
        text = sample.sources[0].local.read_text()
        by_table = {t.lower(): _aw_csv(csv, sha).local for t, (csv, sha) in AW_LOOKUPS.items()}

        def copy_line(m: re.Match[str]) -> str:
            csv = by_table.get(m.group(1).lower())
            return "" if csv is None else f"\\copy {m.group(1)} FROM '{csv}'{m.group(2)}"

        text = re.sub(r"^\\copy (\S+) FROM '[^']*'(.*)$", copy_line, text, flags=re.MULTILINE)
        out = workdir / "install.sql"
        out.write_text(text)
        return [out]
    for src in sample.sources:
        text = src.local.read_text(encoding="utf-8")
        # a fresh database is given: not the script's own CREATE DATABASE and \c
        text = re.sub(r"^(DROP DATABASE|CREATE DATABASE|\\c ).*$", "", text, flags=re.MULTILINE)
        # plpgsql is built in since 9.0
        text = re.sub(r"^(CREATE|ALTER) PROCEDURAL LANGUAGE plpgsql.*$", "", text, flags=re.MULTILINE)
        out = workdir / f"{len(scripts):03d}-{Path(src.path).name}"
        out.write_text(text, encoding="utf-8")
        scripts.append(out)
    return scripts


def load_postgres(sample: Sample, ref: PostgresRef, psql: Path) -> None:
    """Load ``sample`` into the empty database ``ref`` with psql, stopping at the first error."""
    options = "-c client_min_messages=warning"
    if sample.search_path:
        options += " -c search_path=" + sample.search_path.replace(" ", "")
    env = {**os.environ, **ref.child_env(), "PGOPTIONS": options}
    with tempfile.TemporaryDirectory(prefix="rc-sample-") as tmp:
        if sample.schemas:
            prelude = Path(tmp) / "schemas.sql"
            prelude.write_text("".join(f'CREATE SCHEMA "{name}";\n' for name in sample.schemas))
            scripts = [prelude, *_pg_script(sample, Path(tmp))]
        else:
            scripts = _pg_script(sample, Path(tmp))
        for script in scripts:
            proc = subprocess.run([str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script)],
                                  env=env, capture_output=True, text=True, cwd=tmp, timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"loading {sample.name} ({script.name}) failed: {proc.stderr.strip()[-2000:]}")


def load_sqlite(sample: Sample, path: Path) -> None:
    """Build ``sample`` as the SQLite file ``path``."""
    conn = sqlite3.connect(path)
    try:
        # a throwaway build: no fsync per statement (northwind's script autocommits 9,000 INSERTs)
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA journal_mode = MEMORY")
        for src in sample.sources:
            conn.executescript(src.local.read_text(encoding="utf-8-sig"))
        conn.commit()
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.samples.load", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="bring the pinned sample files into the samples directory")
    f.add_argument("--mirror", type=Path, help="a directory of git mirrors (owner+name/repo) to read instead of GitHub")
    sub.add_parser("list", help="the samples, their sources and whether they are here")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        for sample in SAMPLES.values():
            for src in sample.sources:
                try:
                    fetch(src, args.mirror)
                except (OSError, subprocess.CalledProcessError) as exc:
                    raise SystemExit(f"cannot fetch {src.url}: {exc}; give --mirror DIR, or fetch where the "
                                     "network is open") from None
        print(f"samples in {samples_dir()}")
        return 0
    for sample in SAMPLES.values():
        state = "missing" if sample.missing() else "here"
        print(f"{sample.name:18} {sample.engine:10} {state:8} {sample.sources[0].repo}@{sample.sources[0].commit[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
