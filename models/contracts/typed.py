"""The typed fast path of the topic contracts: each published JSON Schema turned into msgspec types once, so that
an event is checked by msgspec's C code instead of the generic generated Python of the schema validator.

The JSON Schemas (``schemas/NAME.vN.json``) stay the published contract and the only source: the types here are
generated from them at first use, never written by hand. The fast path may only be *stricter* than the schema —
an event it refuses goes to the schema validator, which accepts it or refuses it with the reason and message of
:func:`models.contracts.records.validate`; an event it accepts the schema must accept too.
``tests/test_typed.py`` proves that differentially on generated valid and broken events of every stream. A schema
keyword the generator does not know makes it decline the whole schema (:class:`Unsupported`): that stream then
takes the schema validator alone, as before.

Where they differ, msgspec is stricter: an integer field refuses ``1.0``, an integer beyond 64 bits is refused,
and so are ``NaN`` and infinities; those events are still judged — by the slow path.

>>> from models.contracts.records import load_schema
>>> check = checker(load_schema("telemetry"))
>>> event = {"schema_version": 1, "device_id": "F1", "facility_id": "H1", "device_kind": "fridge",
...          "event_time": "2026-11-04T20:09:55+08:00", "temperature_c": 4.2}
>>> check(event), check({**event, "temperature_c": "4.2"}), check({**event, "event_time": "yesterday"})
(True, False, False)
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Callable, Literal, Union

import msgspec
from fastjsonschema.draft07 import CodeGeneratorDraft07

#: Keywords that carry no constraint.
_NOTES = frozenset({"description", "title", "$schema", "$id", "default", "examples", "$comment"})
_FORMATS = CodeGeneratorDraft07.FORMAT_REGEXS  # the schema validator's own regular expressions, used alike
_DOLLAR = re.compile(r"(?<!\\)\$")  # as the schema validator does: "$" is the end of the string, not of a line


class Unsupported(ValueError):
    """A schema keyword the generator does not translate: the stream keeps the schema validator alone."""


def _string(schema: dict[str, Any]) -> Any:
    meta: dict[str, Any] = {}
    if "minLength" in schema:
        meta["min_length"] = schema["minLength"]
    if "maxLength" in schema:
        meta["max_length"] = schema["maxLength"]
    patterns = []
    if "pattern" in schema:
        patterns.append(_DOLLAR.sub(r"\\Z", schema["pattern"]))
    if "format" in schema:
        if schema["format"] not in ("date-time", "date"):
            raise Unsupported(f"format {schema['format']}")
        patterns.append(_FORMATS[schema["format"]])
    if len(patterns) > 1:
        raise Unsupported("a pattern and a format on one string")
    if patterns:
        meta["pattern"] = patterns[0]
    return Annotated[str, msgspec.Meta(**meta)] if meta else str


def _number(schema: dict[str, Any], kind: type) -> Any:
    meta = {name: schema[key] for key, name in (("minimum", "ge"), ("maximum", "le"), ("exclusiveMinimum", "gt"),
                                                ("exclusiveMaximum", "lt")) if key in schema}
    for value in meta.values():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Unsupported("a bound that is not a number")
    return Annotated[kind, msgspec.Meta(**meta)] if meta else kind


def _array(schema: dict[str, Any], name: str) -> Any:
    items = schema.get("items", {})
    if not isinstance(items, dict):
        raise Unsupported("tuple items")
    meta = {}
    if "minItems" in schema:
        meta["min_length"] = schema["minItems"]
    if "maxItems" in schema:
        meta["max_length"] = schema["maxItems"]
    kind = list[_type(items, name + "_item")]  # type: ignore[misc]
    return Annotated[kind, msgspec.Meta(**meta)] if meta else kind


def _object(schema: dict[str, Any], name: str) -> Any:
    extra = schema.get("additionalProperties", True)
    properties = schema.get("properties")
    if extra not in (True, False) or not properties:
        if properties or extra not in (True, {}):
            raise Unsupported("additionalProperties with a schema")
        return dict[str, Any]
    required = set(schema.get("required", ()))
    if not required <= properties.keys():
        raise Unsupported("a required field the schema does not describe")
    fields: list[Any] = []
    for field, spec in properties.items():
        kind = _type(spec, f"{name}_{field}")
        fields.append((field, kind) if field in required else (field, Union[kind, msgspec.UnsetType], msgspec.UNSET))
    return msgspec.defstruct(name, fields, kw_only=True, forbid_unknown_fields=extra is False)


_HANDLED = {
    "string": {"type", "minLength", "maxLength", "pattern", "format"},
    "number": {"type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "integer": {"type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "boolean": {"type"},
    "null": {"type"},
    "array": {"type", "items", "minItems", "maxItems"},
    "object": {"type", "properties", "required", "additionalProperties"},
}


def _type(schema: dict[str, Any], name: str) -> Any:
    """The msgspec type of one (sub)schema."""
    keys = set(schema) - _NOTES
    if "const" in schema or "enum" in schema:
        if keys - {"const", "enum", "type"}:
            raise Unsupported(f"{sorted(keys)} beside const or enum")
        values = [schema["const"]] if "const" in schema else schema["enum"]
        if not values or any(type(v) not in (str, int) for v in values):  # Literal[1] refuses 1.0 and True: stricter
            raise Unsupported("const or enum of other than strings and integers")
        return Literal[tuple(values)]
    kinds = schema.get("type")
    if kinds is None:
        if keys:
            raise Unsupported(f"{sorted(keys)} without a type")
        return Any
    if isinstance(kinds, list):
        return Union[tuple(_type({**schema, "type": k}, name) for k in kinds)]
    if kinds not in _HANDLED:
        raise Unsupported(f"type {kinds}")
    if keys - _HANDLED[kinds]:
        raise Unsupported(f"{sorted(keys - _HANDLED[kinds])} on a {kinds}")
    if kinds == "string":
        return _string(schema)
    if kinds == "number":
        return _number(schema, float)
    if kinds == "integer":
        return _number(schema, int)
    if kinds == "boolean":
        return bool
    if kinds == "null":
        return None
    if kinds == "array":
        return _array(schema, name)
    return _object(schema, name)


def checker(schema: dict[str, Any]) -> Callable[[Any], bool]:
    """A function telling whether an event certainly conforms to ``schema`` (False: ask the schema validator).
    Raises :class:`Unsupported` when the schema uses a keyword not translated here."""
    kind = _type(schema, re.sub(r"\W", "_", schema.get("$id", "event")))
    convert, error = msgspec.convert, msgspec.ValidationError

    def check(event: Any) -> bool:
        try:
            convert(event, kind)
        except error:
            return False
        return True

    return check

