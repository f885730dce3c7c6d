"""A fast validator for the subset of JSON Schema 2020-12 that restorecheck's shipped schemas use.

Why not the ``jsonschema`` package at run time: it validated a 5 MB manifest (1,000 tables of 64
key ranges) in 40 s on this project's CI machine, and a 105 MB one (20,000 tables) did not finish
in 12 minutes; this validator does the same 5 MB in well under a second. The schema file is the
contract either way: the test suite checks the schema with ``jsonschema``'s meta-schema and that
this validator and ``jsonschema`` agree on valid and mutated manifests.

Supported keywords: ``type``, ``required``, ``properties``, ``additionalProperties``, ``items``
(a schema), ``minimum``, ``maximum``, ``minLength``, ``pattern``, ``const``, ``enum`` and ``$ref`` to
``#/$defs/NAME``; annotations (``$schema``, ``$id``, ``title``, ``description``, ``$defs``) are
ignored. A schema that uses any other keyword is refused when the validator is built, so that a
keyword can never be silently skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "$defs", "$comment"})
KEYWORDS = frozenset({"type", "required", "properties", "additionalProperties", "items", "minimum",
                      "maximum", "minLength", "pattern", "const", "enum", "$ref"})


@dataclass(frozen=True)
class SchemaError:
    """One place where an instance does not match: the same fields as ``jsonschema.ValidationError``."""

    absolute_path: tuple[str | int, ...]
    validator: str
    validator_value: Any
    instance: Any


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if isinstance(value, bool):
        return False
    if name == "number":
        return isinstance(value, (int, float))
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    raise ValueError(f"unknown JSON Schema type {name}")


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1 (as in jsonschema)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(type(a) is type(b) and a == b) or (
        isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == b)


class Validator:
    """Validates instances against one schema (see the module docstring for the keywords)."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self.defs: Mapping[str, Any] = schema.get("$defs", {})
        self._patterns: dict[str, re.Pattern[str]] = {}
        self._check(schema, "#")

    def _check(self, schema: Any, where: str) -> None:
        if not isinstance(schema, Mapping):
            raise ValueError(f"{where}: a schema must be an object")
        unknown = set(schema) - KEYWORDS - ANNOTATIONS
        if unknown:
            raise ValueError(f"{where}: unsupported JSON Schema keyword(s) {', '.join(sorted(unknown))}")
        for name, sub in (schema.get("$defs") or {}).items():
            self._check(sub, f"{where}/$defs/{name}")
        for name, sub in (schema.get("properties") or {}).items():
            self._check(sub, f"{where}/properties/{name}")
        for key in ("additionalProperties", "items"):
            if key in schema:  # a schema here, never a boolean or a list (not supported)
                self._check(schema[key], f"{where}/{key}")
        ref = schema.get("$ref")
        if ref is not None and (not str(ref).startswith("#/$defs/") or ref[len("#/$defs/"):] not in self.defs):
            raise ValueError(f"{where}: unsupported $ref {ref}")
        if "pattern" in schema:
            self._patterns[schema["pattern"]] = re.compile(schema["pattern"])
        types = schema.get("type")
        for t in [types] if isinstance(types, str) else types or ():
            _is_type(None, t)  # raises on an unknown type name

    def iter_errors(self, instance: Any) -> Iterator[SchemaError]:
        """Every problem, in document order (slower: use ``is_valid`` first)."""
        yield from self._errors(self.schema, instance, ())

    def is_valid(self, instance: Any) -> bool:
        return self._valid(self.schema, instance)

    def _valid(self, schema: Mapping[str, Any], value: Any) -> bool:
        """``_errors`` without paths or generators: the fast path for the common, valid case."""
        ref = schema.get("$ref")
        if ref is not None and not self._valid(self.defs[ref[8:]], value):
            return False
        types = schema.get("type")
        if types is not None:
            if isinstance(types, str):
                if not _is_type(value, types):
                    return False
            elif not any(_is_type(value, t) for t in types):
                return False
        if "const" in schema and not _equal(value, schema["const"]):
            return False
        if "enum" in schema and not any(_equal(value, x) for x in schema["enum"]):
            return False
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                return False
            if "pattern" in schema and not self._patterns[schema["pattern"]].search(value):
                return False
        elif isinstance(value, dict):
            required = schema.get("required")
            if required and any(k not in value for k in required):
                return False
            props: Mapping[str, Any] = schema.get("properties") or {}
            for key, sub in props.items():
                if key in value and not self._valid(sub, value[key]):
                    return False
            extra = schema.get("additionalProperties")
            if extra is not None:
                for key, item in value.items():
                    if key not in props and not self._valid(extra, item):
                        return False
        elif isinstance(value, list):
            items = schema.get("items")
            if items is not None:
                for item in value:
                    if not self._valid(items, item):
                        return False
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and (
                ("minimum" in schema and value < schema["minimum"])
                or ("maximum" in schema and value > schema["maximum"])):
            return False
        return True

    def first_error(self, instance: Any) -> SchemaError | None:
        return None if self.is_valid(instance) else next(self.iter_errors(instance), None)

    def _errors(self, schema: Mapping[str, Any], value: Any, path: tuple[str | int, ...]) -> Iterator[SchemaError]:
        ref = schema.get("$ref")
        if ref is not None:
            yield from self._errors(self.defs[ref[len("#/$defs/"):]], value, path)
        types = schema.get("type")
        if types is not None:
            names = [types] if isinstance(types, str) else types
            if not any(_is_type(value, t) for t in names):
                yield SchemaError(path, "type", types, value)
                return  # the other keywords would only repeat it
        if "const" in schema and not _equal(value, schema["const"]):
            yield SchemaError(path, "const", schema["const"], value)
        if "enum" in schema and not any(_equal(value, x) for x in schema["enum"]):
            yield SchemaError(path, "enum", schema["enum"], value)
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                yield SchemaError(path, "minLength", schema["minLength"], value)
            if "pattern" in schema and not self._patterns[schema["pattern"]].search(value):
                yield SchemaError(path, "pattern", schema["pattern"], value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                yield SchemaError(path, "minimum", schema["minimum"], value)
            if "maximum" in schema and value > schema["maximum"]:
                yield SchemaError(path, "maximum", schema["maximum"], value)
        elif isinstance(value, dict):
            required = schema.get("required")
            if required and any(k not in value for k in required):
                yield SchemaError(path, "required", required, value)
            props: Mapping[str, Any] = schema.get("properties") or {}
            for key, sub in props.items():
                if key in value:
                    yield from self._errors(sub, value[key], (*path, key))
            extra = schema.get("additionalProperties")
            if isinstance(extra, Mapping):
                for key, item in value.items():
                    if key not in props:
                        yield from self._errors(extra, item, (*path, key))
        elif isinstance(value, list):
            items = schema.get("items")
            if isinstance(items, Mapping):
                for i, item in enumerate(value):
                    yield from self._errors(items, item, (*path, i))
