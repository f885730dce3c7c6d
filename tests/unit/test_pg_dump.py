"""pg_dump/pg_restore/psql helpers without a server: detection, argv, parsing, plain-dump checks."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from restorecheck.checks.registry import convert
from restorecheck.engines import pg_dump as pgd

PLAIN = """--
-- PostgreSQL database dump
--

\\restrict abc123

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET client_encoding = 'LATIN1';

--
-- Name: t; Type: TABLE; Schema: public; Owner: alice
--

CREATE TABLE public.t (
    id integer NOT NULL,
    v text
);

ALTER TABLE public.t OWNER TO alice;

COPY public.t (id, v) FROM stdin;
1	GRANT ALL ON x TO mallory;
2	two
\\.

GRANT SELECT ON TABLE public.t TO "Bob Smith", carol WITH GRANT OPTION;
REVOKE ALL ON TABLE public.t FROM dave;
ALTER DEFAULT PRIVILEGES FOR ROLE erin IN SCHEMA public GRANT SELECT ON TABLES TO frank;
CREATE POLICY p ON public.t TO grace, PUBLIC USING ((id > 0));
GRANT USAGE ON SCHEMA public TO PUBLIC;
ALTER TABLE public.x OWNER TO pg_read_all_data;

--
-- PostgreSQL database dump complete
--

\\unrestrict abc123

"""


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


# --- detection ---------------------------------------------------------------------------------


def test_detect_custom_by_magic_not_name(tmp_path: Path) -> None:
    assert pgd.detect_format(write(tmp_path, "backup.sql", b"PGDMP\x01\x0e\x00" + b"\x00" * 100)) == "custom"


def test_detect_plain_and_gzip(tmp_path: Path) -> None:
    assert pgd.detect_format(write(tmp_path, "x.dump", PLAIN)) == "plain"
    assert pgd.detect_format(write(tmp_path, "x.bin", gzip.compress(PLAIN.encode()))) == "plain-gzip"
    assert pgd.detect_format(write(tmp_path, "y.sql", "CREATE TABLE t (i int);\n")) == "plain"


def test_detect_tar_needs_toc_member(tmp_path: Path) -> None:
    def make(name: str, members: list[str]) -> Path:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
            for m in members:
                info = tarfile.TarInfo(m)
                data = b"PGDMP" + b"\x00" * 20
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        return write(tmp_path, name, buf.getvalue())

    assert pgd.detect_format(make("a.bin", ["toc.dat", "3341.dat", "restore.sql"])) == "tar"
    assert pgd.detect_format(make("b.tar", ["README", "other.txt"])) is None


def test_detect_directory(tmp_path: Path) -> None:
    d = tmp_path / "dump"
    d.mkdir()
    assert pgd.detect_format(d) is None
    (d / "toc.dat").write_bytes(b"PGDMP\x01")
    assert pgd.detect_format(d) == "directory"


@pytest.mark.parametrize("data", [b"\x00\x01\x02binary junk" * 10, b"hello world, no sql here\n", b""])
def test_detect_rejects_non_dumps(tmp_path: Path, data: bytes) -> None:
    assert pgd.detect_format(write(tmp_path, "f.dump", data)) is None


# --- digests -----------------------------------------------------------------------------------


def test_sha256_of_directory_covers_names_and_contents(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "toc.dat").write_bytes(b"a")
    (d / "1.dat.gz").write_bytes(b"b")
    first = pgd.sha256_of(d)
    assert first == pgd.sha256_of(d)
    (d / "1.dat.gz").write_bytes(b"c")
    changed = pgd.sha256_of(d)
    assert changed != first
    (d / "1.dat.gz").rename(d / "2.dat.gz")
    assert pgd.sha256_of(d) != changed
    assert pgd.backup_bytes(d) == 2


# --- argv --------------------------------------------------------------------------------------


def test_pg_dump_argv_carries_no_connection_secrets() -> None:
    argv = pgd.pg_dump_argv("/bin/pg_dump", fmt="directory", output="/o/x.dir", snapshot="00000003-1",
                            jobs=2, compress="0", lock_wait_timeout="10s")
    assert argv[0] == "/bin/pg_dump"
    assert "--format=d" in argv and "--snapshot=00000003-1" in argv and "--jobs=2" in argv
    assert "--compress=0" in argv and "--no-password" in argv and "--lock-wait-timeout=10s" in argv
    assert not any("password=" in a or "postgresql://" in a for a in argv)
    with pytest.raises(ValueError):
        pgd.pg_dump_argv("pg_dump", fmt="custom", output="x", jobs=2)


def test_restore_argv_parallel_only_where_the_format_allows() -> None:
    assert "--jobs=2" in pgd.pg_restore_argv("pg_restore", "a", dbname="db", fmt="custom", jobs=2)
    assert not any(a.startswith("--jobs") for a in pgd.pg_restore_argv("pg_restore", "a", dbname="db",
                                                                        fmt="tar", jobs=2))
    psql = pgd.psql_restore_argv("psql", "/x.sql", dbname="db")
    assert "-X" in psql and "ON_ERROR_STOP=1" in psql and "--file=/x.sql" in psql
    assert pgd.pg_restore_readall_argv("pg_restore", "a") == ["pg_restore", "--file=/dev/null", "a"]


# --- headers -----------------------------------------------------------------------------------

LIST = """;
; Archive created at 2026-11-21 20:05:12 UTC
;     dbname: shop
;     TOC Entries: 10
;     Compression: 0
;     Dump Version: 1.14-0
;     Format: CUSTOM
;     Integer: 4 bytes
;     Offset: 8 bytes
;     Dumped from database version: 15.18 (Debian 15.18-0+deb12u1)
;     Dumped by pg_dump version: 16.2
;
;
; Selected TOC Entries:
;
215; 1259 16393 SEQUENCE public s postgres
214; 1259 16386 TABLE public t alice
3349; 0 0 ACL public TABLE t alice
3341; 0 16386 TABLE DATA public t alice
3342; 0 16387 TABLE DATA public u alice
3350; 0 0 SEQUENCE SET public s postgres
3198; 2606 16392 CONSTRAINT public t t_pkey alice
3199; 2606 16393 FK CONSTRAINT public u u_fk alice
"""


def test_parse_archive_list() -> None:
    h = pgd.parse_archive_list(LIST)
    assert h.format == "custom" and h.compression == "0" and h.dbname == "shop"
    assert h.dumped_from and h.dumped_from.startswith("15.18")
    assert h.dumped_by == "16.2"
    assert h.min_major == 16
    assert h.toc_entries == 10
    assert h.entry_counts["TABLE DATA"] == 2
    assert h.entry_counts["FK CONSTRAINT"] == 1
    assert h.entry_counts["SEQUENCE SET"] == 1


def test_parse_preamble_and_majors() -> None:
    pre = pgd.parse_preamble(PLAIN)
    assert pre["encoding"] == "LATIN1"
    assert pre["dumped_by"].startswith("15.18")
    assert pgd.major_of("9.6.24") == 9 and pgd.major_of("16devel") == 16 and pgd.major_of(None) is None


# --- roles -------------------------------------------------------------------------------------


def test_roles_named_by_a_dump_skip_data_and_pseudo_roles(tmp_path: Path) -> None:
    scan = pgd.scan_plain(write(tmp_path, "d.sql", PLAIN))
    assert scan.roles == {"alice", "Bob Smith", "carol", "dave", "erin", "frank", "grace"}
    assert "mallory" not in scan.roles  # a COPY data row is not SQL


@pytest.mark.parametrize(("line", "roles"), [
    ('ALTER SCHEMA "My Schema" OWNER TO "Own""er";', {'Own"er'}),
    ("GRANT ALL ON FUNCTION public.f(integer) TO app GRANTED BY boss;", {"app", "boss"}),
    ("CREATE SCHEMA s AUTHORIZATION sam;", {"sam"}),
    ("SET SESSION AUTHORIZATION 'sue';", {"sue"}),
    ("GRANT SELECT ON TABLE public.\"a TO b\" TO CURRENT_USER;", set()),
    ("CREATE TABLE public.t (owner text);", set()),
])
def test_roles_in_line(line: str, roles: set[str]) -> None:
    assert pgd.roles_in_line(line) == roles


# --- plain dump checks -------------------------------------------------------------------------


def test_complete_plain_dump_has_no_findings(tmp_path: Path) -> None:
    scan = pgd.scan_plain(write(tmp_path, "d.sql", PLAIN))
    assert scan.trailer and scan.restrict_key == "abc123" and scan.unrestricted
    assert scan.copy_blocks == 1 and scan.unterminated_copy is None
    assert convert([scan.evidence("d.sql")]) == []


def test_plain_dump_cut_inside_copy(tmp_path: Path) -> None:
    cut = PLAIN[: PLAIN.index("2\ttwo") + 3]
    scan = pgd.scan_plain(write(tmp_path, "d.sql", cut))
    assert scan.unterminated_copy == "public.t"
    checks = {(f.check, f.severity) for f in convert([scan.evidence("d.sql")])}
    assert checks == {("backup_file", "error")}
    assert len(convert([scan.evidence("d.sql")])) == 2  # the open COPY and the missing trailer


def test_plain_dump_without_unrestrict_is_incomplete(tmp_path: Path) -> None:
    cut = PLAIN[: PLAIN.index("\\unrestrict")]
    findings = convert([pgd.scan_plain(write(tmp_path, "d.sql", cut)).evidence("d.sql")])
    assert len(findings) == 1 and "unrestrict" in findings[0].message


def test_plain_dump_cut_between_statements(tmp_path: Path) -> None:
    cut = PLAIN[: PLAIN.index("GRANT SELECT")]
    findings = convert([pgd.scan_plain(write(tmp_path, "d.sql", cut)).evidence("d.sql")])
    assert [f.check for f in findings] == ["backup_file"] and "trailer" in findings[0].message


def test_gunzip_truncated_and_corrupt(tmp_path: Path) -> None:
    data = gzip.compress(PLAIN.encode() * 50)
    ok = write(tmp_path, "ok.gz", data)
    assert pgd.gunzip_to(ok, tmp_path / "ok.sql") is None
    assert (tmp_path / "ok.sql").read_text() == PLAIN * 50
    short = write(tmp_path, "short.gz", data[: len(data) // 2])
    err = pgd.gunzip_to(short, tmp_path / "short.sql")
    assert err and "cut short" in err
    bad = bytearray(data)
    bad[-6] ^= 0xFF  # inside the CRC32/ISIZE trailer
    err = pgd.gunzip_to(write(tmp_path, "bad.gz", bytes(bad)), tmp_path / "bad.sql")
    assert err is not None


# --- restore output ----------------------------------------------------------------------------

PG_RESTORE_STDERR = """pg_restore: while PROCESSING TOC:
pg_restore: from TOC entry 214; 1259 16386 TABLE t alice
pg_restore: error: could not execute query: ERROR:  role "alice" does not exist
Command was: ALTER TABLE public.t OWNER TO alice;
pg_restore: from TOC entry 3341; 0 16386 TABLE DATA public t alice
pg_restore: error: could not read from input file: end of file
pg_restore: warning: errors ignored on restore: 2
"""


def test_parse_pg_restore_stderr() -> None:
    errors, ignored = pgd.parse_pg_restore_stderr(PG_RESTORE_STDERR)
    assert ignored == 2
    assert [e.message for e in errors] == ['ERROR:  role "alice" does not exist',
                                           "could not read from input file: end of file"]
    assert errors[0].command == "ALTER TABLE public.t OWNER TO alice;"
    assert errors[1].context == "TABLE DATA public t alice"
    findings = convert([pgd.tool_errors("pg_restore", 1, PG_RESTORE_STDERR, errors, ignored)])
    assert len(findings) == 2 and all(f.check == "restore_errors" and f.severity == "error" for f in findings)


def test_parse_psql_stderr_and_bare_exit_status() -> None:
    stderr = ('psql:/tmp/d.sql:45: ERROR:  relation "public.t" does not exist\n'
              "LINE 1: COPY public.t (id) FROM stdin;\n"
              "psql:/tmp/d.sql:3: error: invalid command \\restrict\n")
    errors = pgd.parse_psql_stderr(stderr)
    assert [e.context for e in errors] == ["line 45", "line 3"]
    assert convert([pgd.tool_errors("psql", 3, stderr, errors)])[0].object == "line 45"
    bare = convert([pgd.tool_errors("psql", 2, "connection lost\n", [])])
    assert len(bare) == 1 and "status 2" in bare[0].message
    assert convert([pgd.tool_errors("psql", 0, "", [])]) == []


def test_database_statements_of_pg_dump_C_are_left_out(tmp_path: Path) -> None:
    text = ("CREATE DATABASE shop WITH TEMPLATE = template0 ENCODING = 'UTF8';\n"
            "ALTER DATABASE shop OWNER TO alice;\n"
            "\\connect shop\n"
            "CREATE TABLE public.t (v text);\n"
            "COPY public.t (v) FROM stdin;\n"
            "\\connect not a statement: data\n"
            "\\.\n") + PLAIN[PLAIN.index("--\n-- PostgreSQL database dump complete"):]
    src = write(tmp_path, "c.sql", text)
    scan = pgd.scan_plain(src)
    assert scan.database_statements == 3
    fed = b"".join(pgd.restricted_script(src, "k3y", scan.edits)).decode()
    kept = fed.split("\n", pgd.RESTRICT_LINES)[-1]
    assert fed.startswith("\\restrict k3y\n")
    assert "\\connect not a statement: data\n" in kept  # COPY data is never touched
    assert "\n\\connect shop" not in kept and not kept.startswith("CREATE DATABASE")
    assert "CREATE TABLE public.t" in kept
    assert kept.count("\n") == text.count("\n")  # psql's line numbers still point into the file


def test_restricted_script_neutralises_only_pg_dumps_own_restrict_pair(tmp_path: Path) -> None:
    text = ("\\restrict DUMPKEY\n"
            "CREATE TABLE public.t (v text);\n"
            "COPY public.t (v) FROM stdin;\n"
            "\\restrict in data\n"
            "\\.\n"
            "\\unrestrict WRONG\n"
            "SELECT 1; \\! id\n") + PLAIN[PLAIN.index("--\n-- PostgreSQL database dump complete"):] + \
        "\\unrestrict DUMPKEY\n"
    src = write(tmp_path, "r.sql", text)
    scan = pgd.scan_plain(src)
    assert scan.restrict_key == "DUMPKEY" and scan.unrestricted and len(scan.edits) == 2
    for chunk in (1, 7, 1 << 20):  # edits straddling read blocks
        fed = b"".join(pgd.restricted_script(src, "OURS", scan.edits, chunk=chunk)).decode()
        lines = fed.splitlines()
        assert lines[0] == "\\restrict OURS"
        assert lines[1].startswith("-- (pg_dump's restrict line)") and lines[-1].startswith("-- (pg_dump's")
        assert "\\restrict in data" in lines  # COPY data untouched
        assert "\\unrestrict WRONG" in lines and "SELECT 1; \\! id" in lines  # left for psql to refuse
        assert len(lines) == text.count("\n") + 1


CLEAN_HEAD = """--
-- PostgreSQL database dump
--

\\restrict abc123

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SELECT pg_catalog.set_config('search_path', '', false);
SET row_security = off;

"""


@pytest.mark.parametrize(("statement", "expected"), [
    ("DROP TABLE public.t;", "DROP TABLE IF EXISTS public.t;"),
    ("DROP MATERIALIZED VIEW app.mv;", "DROP MATERIALIZED VIEW IF EXISTS app.mv;"),
    ("DROP TRIGGER trg ON app.c;", "DROP TRIGGER IF EXISTS trg ON app.c;"),
    ("DROP EVENT TRIGGER et;", "DROP EVENT TRIGGER IF EXISTS et;"),
    ("DROP OPERATOR CLASS app.oc USING btree;", "DROP OPERATOR CLASS IF EXISTS app.oc USING btree;"),
    ("DROP TEXT SEARCH CONFIGURATION app.cfg;", "DROP TEXT SEARCH CONFIGURATION IF EXISTS app.cfg;"),
    ("DROP CAST (text AS app.d);", "DROP CAST IF EXISTS (text AS app.d);"),
    ("DROP USER MAPPING FOR alice SERVER s;", "DROP USER MAPPING IF EXISTS FOR alice SERVER s;"),
    ('DROP FUNCTION app."DROP TABLE x"(integer);', 'DROP FUNCTION IF EXISTS app."DROP TABLE x"(integer);'),
    ("ALTER TABLE ONLY app.c DROP CONSTRAINT c_pkey;", "ALTER TABLE IF EXISTS ONLY app.c DROP CONSTRAINT IF EXISTS c_pkey;"),
    ("ALTER TABLE app.p ALTER COLUMN id DROP DEFAULT;", "ALTER TABLE IF EXISTS app.p ALTER COLUMN id DROP DEFAULT;"),
    ("SELECT pg_catalog.lo_unlink('16427');",
     "SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata WHERE oid = '16427';"),
    ("DROP TABLE IF EXISTS public.t;", "DROP TABLE IF EXISTS public.t;"),  # --if-exists: unchanged
    ("CREATE TABLE public.t (id int);", None),
    ("DROP DATABASE shop;", None),  # not an object kind of the section (-C's database lines are left out)
    ("DROP TABLE public.t", None),  # not a whole statement on the line
    ("ALTER TABLE public.t ADD COLUMN x int;", None),
])
def test_if_exists_writes_what_pg_dump_if_exists_writes(statement: str, expected: str | None) -> None:
    assert pgd.if_exists(statement) == expected


def test_clean_section_of_pg_dump_c_is_made_if_exists_and_nothing_else(tmp_path: Path) -> None:
    text = CLEAN_HEAD + (
        "DROP PUBLICATION pub;\n"
        "ALTER TABLE ONLY app.c DROP CONSTRAINT c_p_id_fkey;\n"
        "SELECT pg_catalog.lo_unlink('16427');\n"
        "DROP TABLE app.c;\n"
        "DROP SCHEMA app;\n"
        "--\n-- Name: app; Type: SCHEMA; Schema: -; Owner: postgres\n--\n\n"
        "CREATE SCHEMA app;\n"
        "CREATE FUNCTION app.f() RETURNS void LANGUAGE sql AS $$\n"
        "DROP TABLE app.c;\n"
        "$$;\n"
        "CREATE TABLE app.c (v text);\n"
        "COPY app.c (v) FROM stdin;\n"
        "DROP TABLE app.c;\n"
        "\\.\n"
        "DROP TABLE app.c;\n"
    ) + PLAIN[PLAIN.index("--\n-- PostgreSQL database dump complete"):]
    src = write(tmp_path, "c.sql", text)
    assert pgd.scan_plain(src).clean_statements == 5
    fed = b"".join(pgd.restricted_script(src, "k", pgd.scan_plain(src).edits)).decode()
    fed = fed.split("\n", pgd.RESTRICT_LINES)[-1]  # the script as psql reads it, after restorecheck's key
    lines = fed.splitlines()
    assert lines[lines.index("SET row_security = off;") + 2:][:5] == [
        "DROP PUBLICATION IF EXISTS pub;",
        "ALTER TABLE IF EXISTS ONLY app.c DROP CONSTRAINT IF EXISTS c_p_id_fkey;",
        "SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata WHERE oid = '16427';",
        "DROP TABLE IF EXISTS app.c;",
        "DROP SCHEMA IF EXISTS app;",
    ]
    # the function body, the COPY data and a DROP after the section are untouched
    assert lines.count("DROP TABLE app.c;") == 3
    assert fed.replace("IF EXISTS ", "").count("DROP TABLE app.c;") == 4
    assert fed.count("\n") == text.count("\n")


def test_no_clean_section_when_the_script_starts_with_anything_else(tmp_path: Path) -> None:
    # a DROP only after the first CREATE is the script's own business: never rewritten
    text = CLEAN_HEAD + "CREATE TABLE public.t (v text);\nDROP TABLE public.t;\n" + \
        PLAIN[PLAIN.index("--\n-- PostgreSQL database dump complete"):]
    src = write(tmp_path, "n.sql", text)
    assert pgd.scan_plain(src).clean_statements == 0
    # a COPY first: its data is never a clean section either
    text = CLEAN_HEAD + "COPY public.t (v) FROM stdin;\nDROP TABLE public.t;\n\\.\nDROP TABLE public.t;\n" + \
        PLAIN[PLAIN.index("--\n-- PostgreSQL database dump complete"):]
    src = write(tmp_path, "copy.sql", text)
    scan = pgd.scan_plain(src)
    assert scan.clean_statements == 0
    fed = b"".join(pgd.restricted_script(src, "k", scan.edits)).decode().split("\n", pgd.RESTRICT_LINES)[-1]
    assert fed.replace("-- (pg_dump's restrict line) /restrict abc123", "\\restrict abc123").replace(
        "-- (pg_dump's unrestrict line) /unrestrict abc123", "\\unrestrict abc123") == text


def test_database_locale_of_a_create_database_line() -> None:
    icu = ("CREATE DATABASE shop WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = icu "
           "LOCALE = 'C.UTF-8' ICU_LOCALE = 'en-US';\n")
    assert pgd.database_locale_in_sql("SET x = 1;\n" + icu) == {
        "encoding": "UTF8", "locale_provider": "icu", "lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8",
        "icu_locale": "en-US"}
    split = ("CREATE DATABASE \"a WITH LOCALE = 'x';\" WITH TEMPLATE = template0 ENCODING = 'LATIN1' "
             "LOCALE_PROVIDER = libc LC_COLLATE = 'C' LC_CTYPE = 'it''s';")
    assert pgd.database_locale_in_sql(split) == {"encoding": "LATIN1", "locale_provider": "libc",
                                                 "lc_collate": "C", "lc_ctype": "it's"}
    # PostgreSQL 17's builtin provider; 14's LC_ pairs without a provider
    assert pgd.database_locale_in_sql("CREATE DATABASE d WITH TEMPLATE = template0 ENCODING = 'UTF8' "
                                      "LOCALE_PROVIDER = builtin LOCALE = 'C.UTF-8' BUILTIN_LOCALE = 'C.UTF-8';"
                                      )["builtin_locale"] == "C.UTF-8"
    assert pgd.database_locale_in_sql("CREATE DATABASE d WITH TEMPLATE = template0 ENCODING = 'UTF8' "
                                      "LC_COLLATE = 'en_US.utf8' LC_CTYPE = 'en_US.utf8';") == {
        "encoding": "UTF8", "lc_collate": "en_US.utf8", "lc_ctype": "en_US.utf8"}
    assert pgd.database_locale_in_sql("-- CREATE DATABASE d WITH LOCALE = 'x';\nCREATE TABLE t (v text);") == {}
    assert pgd.pg_restore_preamble_argv("pg_restore", "a.dump", "e.list", create=True)[1] == "--create"


def test_sha256_of_stops_when_cancelled(tmp_path: Path) -> None:
    """The backup's digest runs on a thread beside the restore: a run that ends early (an error,
    SIGTERM) sets the event and the digest stops at the next block instead of reading on."""
    import threading

    from restorecheck.engines.pg_dump import Cancelled, sha256_of

    f = tmp_path / "big"
    f.write_bytes(b"x" * (3 << 20))
    stop = threading.Event()
    assert sha256_of(f, cancel=stop) == sha256_of(f)
    stop.set()
    with pytest.raises(Cancelled):
        sha256_of(f, cancel=stop)
