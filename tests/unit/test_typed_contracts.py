"""Typed contracts (issue 13 item 2): engine names, formats and checksum modes are Literals that the
shipped schemas and the CLI enumerate exactly; the control data that travelled in Manifest.facts is
typed Manifest fields, read from and written to where manifest_version 1 keeps it."""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from typing import Any

import click
import pytest

from restorecheck import cli
from restorecheck.engines import ENGINES
from restorecheck.errors import BadManifestError
from restorecheck.model import (
    ARTIFACT_FORMATS,
    BACKUP_FORMATS,
    CHECKSUM_MODES,
    CONTROL_FACTS,
    DUMP_FORMATS,
    ENGINE_NAMES,
    BackupArtifact,
    Manifest,
    TableFingerprint,
)
from restorecheck.sources import CODECS


def _schema(name: str) -> dict[str, Any]:
    return json.loads(resources.files("restorecheck").joinpath(f"data/{name}").read_text())  # type: ignore[no-any-return]


def _old_layout(engine: str, facts: dict[str, Any]) -> dict[str, Any]:
    """A manifest as restorecheck wrote it before the control facts were fields."""
    return {"manifest_version": 1, "tool": "restorecheck", "tool_version": "0.1.0", "engine": engine,
            "server_version": "", "database": "d", "taken_at": "", "snapshot": None, "backup": None,
            "tables": [], "schema": {}, "sequences": {}, "large_objects": None, "fk_orphans": {},
            "facts": facts}


def test_the_schemas_enumerate_the_literals() -> None:
    manifest, report = _schema("manifest.schema.json"), _schema("report.schema.json")
    assert tuple(manifest["properties"]["engine"]["enum"]) == ENGINE_NAMES
    assert tuple(report["properties"]["engine"]["enum"]) == ENGINE_NAMES
    assert tuple(manifest["$defs"]["backup"]["properties"]["format"]["enum"]) == ARTIFACT_FORMATS
    report_backup = next(s for s in report["properties"]["backup"]["oneOf"] if s.get("type") == "object")
    assert tuple(report_backup["properties"]["format"]["enum"]) == ARTIFACT_FORMATS
    assert tuple(manifest["$defs"]["facts"]["properties"]["checksum_mode"]["enum"]) == CHECKSUM_MODES
    assert tuple(manifest["$defs"]["table"]["properties"]["checksum_mode"]["enum"]) == ("", *CHECKSUM_MODES)
    assert set(CONTROL_FACTS) <= set(manifest["$defs"]["facts"]["properties"])


def test_the_cli_and_the_registry_offer_exactly_the_literals() -> None:
    assert tuple(ENGINES) == ENGINE_NAMES
    for command in (cli.verify, cli.drill):
        (engine,) = [p for p in command.params if p.name == "engine"]
        assert isinstance(engine.type, click.Choice) and tuple(engine.type.choices) == ENGINE_NAMES
    for command in (cli.backup, cli.drill):
        (fmt,) = [p for p in command.params if p.name == "fmt"]
        assert isinstance(fmt.type, click.Choice) and tuple(fmt.type.choices) == DUMP_FORMATS


def test_every_codec_has_its_plain_format() -> None:
    from restorecheck.pipeline import _PLAIN_WITH, _public_format

    assert set(_PLAIN_WITH) == set(CODECS) and set(_PLAIN_WITH.values()) <= set(BACKUP_FORMATS)

    class Opened:
        encryption = None
        layers = ("xz",)

    assert _public_format("plain", Opened()) == "plain-xz"


def test_an_old_layout_manifest_loads_into_the_fields() -> None:
    pg = Manifest.from_dict(_old_layout("postgresql", {"encoding": "UTF8", "checksum_mode": "text64-v1",
                                                       "sequences_at_least": True, "jobs": 2}))
    assert (pg.checksum_mode, pg.sequences_at_least, pg.open_error) == ("text64-v1", True, None)
    assert dict(pg.facts) == {"encoding": "UTF8", "jobs": 2}  # one place holds each: the field
    lite = Manifest.from_dict(_old_layout("sqlite", {"sqlite_version": "3.40.1",
                                                     "checksum_mode": "sqlite-keyed-sha256-v1",
                                                     "open_error": "file is not a database"}))
    assert (lite.checksum_mode, lite.sequences_at_least, lite.open_error) == (
        "sqlite-keyed-sha256-v1", False, "file is not a database")
    bare = Manifest.from_dict(_old_layout("postgresql", {}))
    assert (bare.checksum_mode, bare.sequences_at_least, bare.open_error) == (None, False, None)


def test_a_round_trip_keeps_the_fields_where_old_readers_look() -> None:
    m = Manifest(engine="sqlite", database="d", facts={"header": {"user_version": 7}},
                 checksum_mode="sqlite-keyed-sha256-v1", sequences_at_least=True, open_error="not a database",
                 tables=(TableFingerprint("main.t", rows=1, checksum="ab", checksum_mode="sqlite-keyed-sha256-v1"),),
                 backup=BackupArtifact("/b/x.db", "sqlite", 10, None))
    written = json.loads(m.to_json())
    assert written["facts"] == {"header": {"user_version": 7}, "checksum_mode": "sqlite-keyed-sha256-v1",
                                "sequences_at_least": True, "open_error": "not a database"}
    assert "checksum_mode" not in written and "open_error" not in written  # no new top-level keys
    again = Manifest.from_dict(written)
    assert again == m and again.to_json() == m.to_json()
    unset = dataclasses.replace(m, checksum_mode=None, sequences_at_least=False, open_error=None)
    assert json.loads(unset.to_json())["facts"] == {"header": {"user_version": 7}}  # absent, as before


def test_a_control_fact_is_not_also_a_fact() -> None:
    with pytest.raises(ValueError, match="checksum_mode is a Manifest field"):
        Manifest(engine="postgresql", database="d", facts={"checksum_mode": "hash64-v1"})


@pytest.mark.parametrize(("where", "value", "said"), [
    (("engine",), "mysql", "$.engine must be one of"),
    (("facts", "checksum_mode"), "hash64-v9", "$.facts.checksum_mode must be one of"),
    (("facts", "sequences_at_least"), "yes", "$.facts.sequences_at_least must be a boolean"),
    (("facts", "open_error"), 3, "$.facts.open_error must be a string"),
    (("backup",), {"path": "x", "format": "custum", "bytes": 1, "sha256": None}, "$.backup.format must be one of"),
])
def test_a_value_outside_the_literal_is_a_bad_manifest(where: tuple[str, ...], value: Any, said: str) -> None:
    d = _old_layout("postgresql", {"checksum_mode": "hash64-v1"})
    node = d
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    with pytest.raises(BadManifestError, match=said.replace("$", r"\$").replace(".", r"\.")):
        Manifest.from_dict(d)
