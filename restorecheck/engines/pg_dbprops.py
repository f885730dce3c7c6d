"""Database-level properties: read from the catalog, parsed from a dump, re-issued on the scratch database.

What a database carries besides its objects (PITFALLS C1): its settings (``ALTER DATABASE ... SET``
and ``ALTER ROLE ... IN DATABASE ... SET``, i.e. ``pg_db_role_setting``), its comment, owner,
privileges (``datacl``), connection limit and default tablespace. pg_dump (11+) writes them as the
TOC entries ``DATABASE``, ``DATABASE PROPERTIES``, ``COMMENT - DATABASE`` and ``ACL - DATABASE``:
every archive format holds them (with or without ``--create``); a plain script only with
``--create``; ``pg_restore`` only prints them with ``--create``.

restorecheck never runs those statements as the dump wrote them (they name the source database and
come with a ``CREATE DATABASE`` and ``\\connect``). ``parse`` reads them with a small SQL tokenizer
and a strict grammar of exactly what pg_dump writes; ``apply_statements`` re-issues each with
``psycopg.sql`` against the scratch database, as the role that restored the dump. Whatever does not
fit the grammar, names another database, or would change the scratch database's identity
(``OWNER TO``, ``RENAME``, ``SET TABLESPACE``) or load code into every later session
(``session_preload_libraries``, ...) is refused and reported, never run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# --- the catalog side ----------------------------------------------------------------------------

PROPERTIES_SQL = """
SELECT pg_catalog.pg_get_userbyid(d.datdba), d.datconnlimit, t.spcname,
       pg_catalog.shobj_description(d.oid, 'pg_database'),
       (SELECT coalesce(json_agg(json_build_array(
                CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(x.grantee) END,
                x.privilege_type, x.is_grantable)), '[]')
          FROM pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) x),
       (SELECT coalesce(json_agg(json_build_array(
                CASE WHEN s.setrole = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(s.setrole) END,
                s.setconfig)), '[]')
          FROM pg_catalog.pg_db_role_setting s WHERE s.setdatabase = d.oid),
       d.datdba = 10
FROM pg_catalog.pg_database d JOIN pg_catalog.pg_tablespace t ON t.oid = d.dattablespace
WHERE d.datname = %s
"""

OWNER_TOKEN = "OWNER"  # the database owner in a normalised privilege list, whoever it is


def normalise_privileges(items: Sequence[Sequence[Any]], owner: str) -> list[str]:
    """``(grantee, privilege, grantable)`` rows -> sorted ``grantee=PRIV[*]``; the owner (whatever its
    name) is ``OWNER``, so a scratch database owned by another role compares equal. The grantor is
    left out (an artefact of who ran the restore)."""
    out = set()
    for grantee, priv, grantable in items:
        who = OWNER_TOKEN if grantee == owner else (grantee or "PUBLIC")
        out.add(f"{who}={priv}{'*' if grantable else ''}")
    return sorted(out)


def _split_config(entries: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in entries or ():
        name, _, value = str(item).partition("=")
        out[name] = value
    return out


def read_properties(conn: Any, dbname: str) -> dict[str, Any] | None:
    """The properties of database ``dbname`` (any connection of the cluster reads them: they live in
    shared catalogs). None when there is no such database."""
    row = conn.execute(PROPERTIES_SQL, (dbname,)).fetchone()
    if row is None:
        return None
    owner, connlimit, tablespace, comment, acl, settings, bootstrap = row
    role_settings: dict[str, dict[str, str]] = {}
    database_settings: dict[str, str] = {}
    for role, config in settings or []:
        if role is None:
            database_settings.update(_split_config(config))
        else:
            role_settings.setdefault(role, {}).update(_split_config(config))
    return {
        "owner": owner,
        # owned by the bootstrap superuser (the cluster's first role): what a restore as the superuser gives
        "owner_is_bootstrap_superuser": bool(bootstrap),
        "comment": comment,
        "connection_limit": int(connlimit),
        "tablespace": tablespace,
        "privileges": normalise_privileges(acl or [], owner),
        "settings": dict(sorted(database_settings.items())),
        "role_settings": {r: dict(sorted(s.items())) for r, s in sorted(role_settings.items())},
    }


# --- a small SQL tokenizer -------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # word | ident (quoted identifier) | string | number | punct | other
    text: str  # words upper-cased for keywords in ``upper``; identifiers and strings decoded
    raw: str

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*)
  | (?P<estring>[Ee]'(?:[^'\\]|\\.|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<ident>"(?:[^"]|"")+")
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)*)
  | (?P<punct>[,;=()])
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


def tokens(text: str) -> Iterator[Token]:
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m is not None  # 'other' matches any one character
        pos = m.end()
        kind = m.lastgroup or "other"
        raw = m.group()
        if kind in ("ws", "comment"):
            continue
        if kind == "string":
            yield Token("string", raw[1:-1].replace("''", "'"), raw)
        elif kind == "estring":
            body = raw[2:-1].replace("''", "'")
            yield Token("string", re.sub(r"\\(.)", r"\1", body, flags=re.DOTALL), raw)
        elif kind == "ident":
            yield Token("ident", raw[1:-1].replace('""', '"'), raw)
        elif kind == "word":
            yield Token("word", raw, raw)
        else:
            yield Token(kind, raw, raw)


def statements(text: str) -> Iterator[list[Token]]:
    """The statements of ``text`` as token lists (``;`` ends one). Lines that start with a backslash
    (psql meta-commands: ``\\connect``, ``\\restrict``) are skipped, never interpreted."""
    kept = "\n".join("" if line.lstrip().startswith("\\") else line for line in text.splitlines())
    current: list[Token] = []
    for tok in tokens(kept):
        if tok.kind == "punct" and tok.text == ";":
            if current:
                yield current
            current = []
        else:
            current.append(tok)
    if current:
        yield current


def statement_text(toks: Sequence[Token], limit: int = 160) -> str:
    text = " ".join(t.raw for t in toks)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ident(tok: Token | None) -> str | None:
    """An identifier's name (a bare word folds to lower case, as PostgreSQL does)."""
    if tok is None:
        return None
    if tok.kind == "ident":
        return tok.text
    if tok.kind == "word" and "." not in tok.text:
        return tok.text.lower()
    return None


# --- the dump side ---------------------------------------------------------------------------------

# settings never applied to the scratch database: they load code into, or change the identity of,
# every later session there (restorecheck's own included)
NEVER_APPLIED = {
    "session_preload_libraries": "loads libraries into every session of the database",
    "local_preload_libraries": "loads libraries into every session of the database",
    "shared_preload_libraries": "loads libraries into the server",
    "dynamic_library_path": "changes where the server loads code from",
    "role": "switches every session of the database to another role",
    "session_authorization": "switches every session of the database to another role",
}
_PRIVILEGES = {"ALL", "CREATE", "CONNECT", "TEMPORARY", "TEMP"}


@dataclass(frozen=True)
class Grant:
    """One GRANT or REVOKE on the database, as pg_dump writes it (its grantees by name)."""

    grant: bool
    privileges: tuple[str, ...]
    grantees: tuple[str, ...]  # role names; "PUBLIC" for PUBLIC
    grant_option: bool = False  # GRANT ... WITH GRANT OPTION / REVOKE GRANT OPTION FOR


@dataclass(frozen=True)
class Refused:
    statement: str
    reason: str
    hostile: bool  # pg_dump never writes this (an error); else it could be a real source's (a warning)


@dataclass
class DumpProperties:
    """What a dump carries about its database (``parse``)."""

    database: str | None = None
    entries: int = 0  # statements recognised
    owner: str | None = None
    tablespace: str | None = None
    created: bool = False  # a CREATE DATABASE statement was seen
    comment: str | None = None
    comment_set: bool = False
    connection_limit: int | None = None
    settings: dict[str, list[str]] = field(default_factory=dict)
    role_settings: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)

    @property
    def carried(self) -> bool:
        return self.entries > 0

    def roles(self) -> set[str]:
        """Roles the properties name (owner, grantees, per-role settings): they must exist to apply."""
        out = {g for grant in self.grants for g in grant.grantees if g != "PUBLIC"}
        out |= set(self.role_settings)
        if self.owner:
            out.add(self.owner)
        return out

    def revokes_from_public(self, privilege: str) -> bool:
        """Whether a REVOKE of the dump takes ``privilege`` (CONNECT, TEMPORARY) from PUBLIC."""
        return any(not g.grant and "PUBLIC" in g.grantees and ({privilege, "ALL"} & set(g.privileges))
                   for g in self.grants)

    def summary(self) -> dict[str, Any]:
        """What the backup carries, in the manifest's shape (values as the dump writes them)."""
        out: dict[str, Any] = {}
        if self.owner:
            out["owner"] = self.owner
        if self.created:
            out["tablespace"] = self.tablespace or "pg_default"
        if self.comment_set:
            out["comment"] = self.comment
        if self.connection_limit is not None:
            out["connection_limit"] = self.connection_limit
        if self.settings:
            out["settings"] = {k: setting_text(v) for k, v in self.settings.items()}
        if self.role_settings:
            out["role_settings"] = {r: {k: setting_text(v) for k, v in s.items()}
                                    for r, s in self.role_settings.items()}
        if self.grants:
            out["privilege_statements"] = len(self.grants)
        return out


def setting_text(values: Sequence[str]) -> str:
    """A setting's values as pg_db_role_setting shows them (list elements joined by ', ')."""
    return ", ".join(values)


def normalise_setting(value: str) -> str:
    """A setting's text compared loosely: list elements stripped of quotes and spaces."""
    return ",".join(part.strip().strip('"') for part in str(value).split(","))


_PREAMBLE_WORDS = {"SET", "RESET", "SELECT"}


def parse(text: str, *, max_statements: int = 10_000) -> DumpProperties:
    """Parse pg_dump's database-property statements (see the module docstring). Pure."""
    props = DumpProperties()
    for n, toks in enumerate(statements(text)):
        if n >= max_statements:
            props.refused.append(Refused("...", f"more than {max_statements} statements", True))
            break
        _parse_one(props, toks)
    return props


def _same_db(props: DumpProperties, tok: Token | None, toks: Sequence[Token]) -> bool:
    name = _ident(tok)
    if name is None:
        props.refused.append(Refused(statement_text(toks), "it does not name a database plainly", True))
        return False
    if props.database is None:
        props.database = name
        return True
    if name != props.database:
        props.refused.append(Refused(statement_text(toks), f"it names another database ({name}) than the "
                                     f"dump's own ({props.database})", True))
        return False
    return True


def _values(toks: Sequence[Token]) -> list[str] | None:
    """``'a', 'b'`` (or bare words and numbers) -> ["a", "b"]; None when it is anything else."""
    out: list[str] = []
    expect_value = True
    for t in toks:
        if expect_value:
            if t.kind in ("string", "number") or (t.kind == "word" and "." not in t.text) or t.kind == "ident":
                out.append(t.text)
            else:
                return None
            expect_value = False
        else:
            if not (t.kind == "punct" and t.text == ","):
                return None
            expect_value = True
    return out if out and not expect_value else None


def _setting(props: DumpProperties, toks: Sequence[Token], rest: Sequence[Token]) -> tuple[str, list[str]] | None:
    """``SET name TO|= values`` -> (name, values), or None (refused)."""
    if len(rest) < 4 or rest[0].upper != "SET" or not (rest[2].upper == "TO" or rest[2].text == "="):
        props.refused.append(Refused(statement_text(toks), "not a SET ... TO ... pg_dump writes", True))
        return None
    name = rest[1].text if rest[1].kind in ("ident", "word") else None
    values = _values(rest[3:])
    if not name or values is None:
        props.refused.append(Refused(statement_text(toks), "not a SET ... TO ... pg_dump writes", True))
        return None
    key = name.lower() if rest[1].kind == "word" else name
    if key.lower() in NEVER_APPLIED:
        props.refused.append(Refused(statement_text(toks), f"{key}: {NEVER_APPLIED[key.lower()]}", False))
        # still carried: recorded so that the comparison does not call it lost
    return key, values


def _parse_one(props: DumpProperties, toks: list[Token]) -> None:
    words = [t.upper for t in toks]
    if not toks:
        return
    if words[0] in _PREAMBLE_WORDS:
        return  # the script's SET/set_config preamble, SET/RESET SESSION AUTHORIZATION around grants
    if words[:2] == ["DROP", "DATABASE"]:  # pg_dump -c -C: recognised, never run
        target = toks[4] if words[2:4] == ["IF", "EXISTS"] and len(toks) == 5 else toks[2] if len(toks) == 3 else None
        _same_db(props, target, toks)
        return
    if words[:2] == ["CREATE", "DATABASE"]:
        if not _same_db(props, toks[2] if len(toks) > 2 else None, toks):
            return
        props.created = True
        props.entries += 1
        for i in range(3, len(toks) - 2):
            if words[i] in ("TABLESPACE", "OWNER") and toks[i + 1].text == "=":
                name = _ident(toks[i + 2])
                if words[i] == "TABLESPACE":
                    props.tablespace = name
                else:
                    props.owner = name
        return
    if words[:2] == ["ALTER", "DATABASE"]:
        if not _same_db(props, toks[2] if len(toks) > 2 else None, toks):
            return
        rest = toks[3:]
        rw = words[3:]
        if rw[:2] == ["OWNER", "TO"] and len(rest) == 3 and _ident(rest[2]):
            props.owner = _ident(rest[2])
            props.entries += 1
        elif rw[:2] == ["CONNECTION", "LIMIT"]:
            nums = [t for t in rest[2:] if t.text != "="]
            if len(nums) == 1 and nums[0].kind == "number" and re.fullmatch(r"-?\d+", nums[0].text):
                props.connection_limit = int(nums[0].text)
                props.entries += 1
            else:
                props.refused.append(Refused(statement_text(toks), "not a connection limit", True))
        elif rw[:1] == ["SET"] and not (len(rw) > 1 and rw[1] == "TABLESPACE"):
            got = _setting(props, toks, rest)
            if got is not None:
                props.settings[got[0]] = got[1]
                props.entries += 1
        elif rw[:1] in (["IS_TEMPLATE"], ["ALLOW_CONNECTIONS"], ["WITH"]):
            props.refused.append(Refused(statement_text(toks), "it would keep restorecheck from connecting to "
                                         "or dropping the scratch database", False))
            props.entries += 1
        else:
            what = " ".join(rw[:2]).lower() or "it"
            props.refused.append(Refused(statement_text(toks), f"ALTER DATABASE ... {what} is not a property "
                                         "pg_dump writes (it would rename, move or change the database)", True))
        return
    if words[:2] == ["ALTER", "ROLE"] and len(toks) > 6 and words[3:5] == ["IN", "DATABASE"]:
        role = _ident(toks[2])
        if role is None or not _same_db(props, toks[5], toks):
            if role is None:
                props.refused.append(Refused(statement_text(toks), "it does not name a role plainly", True))
            return
        got = _setting(props, toks, toks[6:])
        if got is not None:
            props.role_settings.setdefault(role, {})[got[0]] = got[1]
            props.entries += 1
        return
    if words[:3] == ["COMMENT", "ON", "DATABASE"]:
        if len(toks) != 6 or words[4] != "IS" or not (toks[5].kind == "string" or words[5] == "NULL"):
            props.refused.append(Refused(statement_text(toks), "not a COMMENT ON DATABASE ... IS '...'", True))
            return
        if not _same_db(props, toks[3], toks):
            return
        props.comment = toks[5].text if toks[5].kind == "string" else None
        props.comment_set = True
        props.entries += 1
        return
    if words[:1] in (["GRANT"], ["REVOKE"]):
        grant = _parse_grant(props, toks, words)
        if grant is not None:
            props.grants.append(grant)
            props.entries += 1
        return
    props.refused.append(Refused(statement_text(toks), "not a statement pg_dump writes for a database's "
                                 "properties", True))


def _parse_grant(props: DumpProperties, toks: Sequence[Token], words: Sequence[str]) -> Grant | None:
    is_grant = words[0] == "GRANT"
    i = 1
    option = False
    if not is_grant and list(words[1:4]) == ["GRANT", "OPTION", "FOR"]:
        option, i = True, 4
    privs: list[str] = []
    while i < len(toks) and words[i] != "ON":
        if words[i] in _PRIVILEGES:
            privs.append("TEMPORARY" if words[i] == "TEMP" else words[i])
        elif words[i] == "PRIVILEGES" and privs[-1:] == ["ALL"]:
            pass
        elif toks[i].text != ",":
            props.refused.append(Refused(statement_text(toks), "not a privilege on a database", True))
            return None
        i += 1
    if not privs or list(words[i:i + 2]) != ["ON", "DATABASE"] or i + 2 >= len(toks):
        props.refused.append(Refused(statement_text(toks), "not a GRANT or REVOKE on the database", True))
        return None
    if not _same_db(props, toks[i + 2], toks):
        return None
    i += 3
    if i >= len(toks) or words[i] != ("TO" if is_grant else "FROM"):
        props.refused.append(Refused(statement_text(toks), "not a GRANT or REVOKE on the database", True))
        return None
    i += 1
    grantees: list[str] = []
    while i < len(toks):
        w = words[i]
        if toks[i].text == ",":
            i += 1
            continue
        if is_grant and list(words[i:i + 3]) == ["WITH", "GRANT", "OPTION"]:
            option = True
            i += 3
            continue
        if w in ("CASCADE", "RESTRICT") and not is_grant:
            i += 1
            continue
        if w == "GRANTED" and list(words[i:i + 2]) == ["GRANTED", "BY"]:
            i += 3  # the grantor is not compared
            continue
        if w == "PUBLIC":
            grantees.append("PUBLIC")
        elif w == "GROUP":
            pass
        else:
            name = _ident(toks[i])
            if name is None:
                props.refused.append(Refused(statement_text(toks), "a grantee is not a plain role name", True))
                return None
            grantees.append(name)
        i += 1
    if not grantees:
        props.refused.append(Refused(statement_text(toks), "a GRANT or REVOKE without grantees", True))
        return None
    return Grant(is_grant, tuple(privs), tuple(grantees), option)


# --- re-issuing them on the scratch database -----------------------------------------------------


@dataclass(frozen=True)
class Apply:
    """One statement restorecheck runs on the scratch database, and what it stands for."""

    kind: str  # setting | role_setting | comment | connection_limit | privileges
    name: str  # the property (setting name, "role r: name", ...)
    statement: Any  # psycopg.sql.Composed


def apply_statements(props: DumpProperties, scratch: str, scratch_owner: str) -> list[Apply]:
    """The statements that give database ``scratch`` the properties of ``props``, composed with
    ``psycopg.sql`` (never text from the dump). The dump's owner in a grant stands for
    ``scratch_owner`` (the scratch database keeps restorecheck's owner: OWNER TO is never applied).
    Settings in NEVER_APPLIED are left out (``props.refused`` says so)."""
    from psycopg import sql

    db = sql.Identifier(scratch)
    out: list[Apply] = []

    def values(vs: Sequence[str]) -> sql.Composable:
        return sql.SQL(", ").join(sql.Literal(v) for v in vs)

    if props.comment_set:
        out.append(Apply("comment", "comment", sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            db, sql.Literal(props.comment))))
    if props.connection_limit is not None:
        out.append(Apply("connection_limit", "connection limit", sql.SQL(
            "ALTER DATABASE {} CONNECTION LIMIT {}").format(db, sql.Literal(props.connection_limit))))
    for name, vs in props.settings.items():
        if name.lower() in NEVER_APPLIED:
            continue
        out.append(Apply("setting", name, sql.SQL("ALTER DATABASE {} SET {} TO {}").format(
            db, sql.Identifier(name), values(vs))))
    for role, settings in props.role_settings.items():
        for name, vs in settings.items():
            if name.lower() in NEVER_APPLIED:
                continue
            out.append(Apply("role_setting", f"{role}: {name}", sql.SQL(
                "ALTER ROLE {} IN DATABASE {} SET {} TO {}").format(
                    sql.Identifier(role), db, sql.Identifier(name), values(vs))))
    for g in props.grants:
        privs = sql.SQL(", ").join(sql.SQL(p) for p in g.privileges)  # from the _PRIVILEGES whitelist
        who = sql.SQL(", ").join(
            sql.SQL("PUBLIC") if r == "PUBLIC" else sql.Identifier(scratch_owner if r == props.owner else r)
            for r in g.grantees)
        if g.grant:
            stmt = sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                privs, db, who, sql.SQL(" WITH GRANT OPTION") if g.grant_option else sql.SQL(""))
        else:
            stmt = sql.SQL("REVOKE {}{} ON DATABASE {} FROM {}").format(
                sql.SQL("GRANT OPTION FOR ") if g.grant_option else sql.SQL(""), privs, db, who)
        out.append(Apply("privileges", ("GRANT " if g.grant else "REVOKE ") + ",".join(g.privileges) + " "
                         + ("TO " if g.grant else "FROM ") + ", ".join(g.grantees), stmt))
    return out


def carried_overlay(props: DumpProperties, not_applied: Mapping[str, str]) -> dict[str, Any]:
    """The carried values that could not be applied (``not_applied``: Apply.name -> why), in the
    manifest's shape, so that the comparison does not call them lost."""
    settings = {k: setting_text(v) for k, v in props.settings.items()
                if k.lower() in NEVER_APPLIED or k in not_applied}
    roles: dict[str, dict[str, str]] = {}
    for role, s in props.role_settings.items():
        for k, v in s.items():
            if k.lower() in NEVER_APPLIED or f"{role}: {k}" in not_applied:
                roles.setdefault(role, {})[k] = setting_text(v)
    out: dict[str, Any] = {}
    if settings:
        out["settings"] = settings
    if roles:
        out["role_settings"] = roles
    if "comment" in not_applied:
        out["comment"] = props.comment
    if "connection limit" in not_applied:
        out["connection_limit"] = props.connection_limit
    return out
