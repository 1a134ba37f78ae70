"""Mapping CSV rows onto a topic's event fields, from a TOML mapping file.

A field spec is one of:

* ``"column"`` — the column's value as a string;
* ``{column = "c" | ["c1", "c2"], type = "str|int|float|date|datetime", default = …, map = {…}}``
  — the first non-empty column, converted; ``map`` translates codes (``institutional`` → ``inpatient``);
* ``{const = value}``; ``{template = "{claim_id}-{claim_line_number}"}`` (Python format over the row);
* ``{columns = "diagnosis_code_*"}`` — repeated columns (Diagnosis_1..10) as a list of the
  non-empty values in column order;
* ``{item = {…field specs…}}`` — a list of one object (a claim line, a prescription item);
  ``{object = {…}}`` — one object.

Empty values are left out (so a missing required field reaches the worker and is refused with
its reason), and so are the export's missing-value markers: ``missing = ["NA", "NULL", …]`` at the
top of the mapping file, :data:`MISSING_MARKERS` by default (a cell ``NA`` is not a diagnosis nor a
doctor id); a value that does not convert is passed on as the original string, for the same
reason: the worker, not the replay, decides what is invalid.

>>> m = Mapping({"claim_id": {"template": "{id}-{line}"}, "n": {"column": "qty", "type": "float"},
...              "dx": {"columns": "dx_*"}, "kind": {"column": "t", "map": {"institutional": "inpatient"}}})
>>> m.apply({"id": "7", "line": "2", "qty": "3", "dx_1": "I10", "dx_2": "", "dx_10": "E11", "t": "institutional"})
{'claim_id': '7-2', 'n': 3.0, 'dx': ['I10', 'E11'], 'kind': 'inpatient'}
>>> m.apply({"id": "8", "line": "1", "qty": "NA", "dx_1": "NULL", "dx_2": "J06.9", "t": " - "})
{'claim_id': '8-1', 'dx': ['J06.9']}
"""
from __future__ import annotations

import fnmatch
import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.errors import ConfigError

_MISSING = object()
#: Cells that mean "no value" in real exports (R's NA, SQL's NULL, a dash), compared after trimming.
MISSING_MARKERS = ("NA", "N/A", "NULL", "null", "None", "-", "--", "?")
TYPES = ("str", "int", "float", "date", "datetime")


def _natural(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


class Mapping:
    def __init__(self, fields: dict[str, Any], source: str = "mapping",
                 missing: tuple[str, ...] | list[str] = MISSING_MARKERS) -> None:
        self.fields = fields
        self.missing = frozenset(missing)
        self.source = source
        self._check(fields, "fields")
        self._columns_cache: dict[tuple[str, tuple[str, ...]], list[str]] = {}

    @classmethod
    def load(cls, path: str | Path) -> tuple[str, "Mapping"]:
        """Read a mapping file: ``stream = "claim"`` and a ``[fields]`` table."""
        p = Path(path)
        try:
            doc = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"mapping file {p} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"mapping file {p} is not valid TOML ({e}); fix the line it names") from None
        if "stream" not in doc or "fields" not in doc:
            raise ConfigError(f"mapping file {p} needs `stream = \"…\"` and a [fields] table")
        missing = doc.get("missing", list(MISSING_MARKERS))
        if not isinstance(missing, list) or not all(isinstance(x, str) for x in missing):
            raise ConfigError(f"mapping file {p}: `missing` must be a list of strings, e.g. [\"NA\", \"NULL\"]")
        return doc["stream"], cls(doc["fields"], str(p), missing)

    def _check(self, fields: dict[str, Any], where: str) -> None:
        for name, spec in fields.items():
            if isinstance(spec, str):
                continue
            if not isinstance(spec, dict):
                raise ConfigError(f"{self.source}: {where}.{name} must be a column name or a table")
            for nested in ("item", "object"):
                if nested in spec:
                    self._check(spec[nested], f"{where}.{name}.{nested}")
            if spec.get("type", "str") not in TYPES:
                raise ConfigError(f"{self.source}: {where}.{name} type {spec['type']!r} is not one of {', '.join(TYPES)}")
            if not {"column", "const", "template", "columns", "item", "object"} & set(spec):
                raise ConfigError(f"{self.source}: {where}.{name} needs column, const, template, columns, item or object")

    def apply(self, row: dict[str, str]) -> dict[str, Any]:
        missing = self.missing
        clean = {k: v for k, v in row.items() if v and v.strip() not in missing}
        return self._object(self.fields, clean)

    def _object(self, fields: dict[str, Any], row: dict[str, str]) -> dict[str, Any]:
        out = {}
        for name, spec in fields.items():
            value = self._value(spec, row)
            if value is not _MISSING:
                out[name] = value
        return out

    def _value(self, spec: Any, row: dict[str, str]) -> Any:
        if isinstance(spec, str):
            return row.get(spec) or _MISSING
        if "const" in spec:
            return spec["const"]
        if "template" in spec:
            try:
                return spec["template"].format(**row)
            except (KeyError, IndexError):
                return _MISSING
        if "columns" in spec:
            cols = self._matching(spec["columns"], row)
            return [row[c] for c in cols if row.get(c)]
        if "item" in spec:
            return [self._object(spec["item"], row)]
        if "object" in spec:
            return self._object(spec["object"], row)
        names = spec["column"] if isinstance(spec["column"], list) else [spec["column"]]
        raw = next((row[c] for c in names if row.get(c)), None)
        if raw is None:
            return spec.get("default", _MISSING)
        raw = spec.get("map", {}).get(raw, raw)
        return _convert(raw, spec.get("type", "str"), spec)

    def _matching(self, pattern: str, row: dict[str, str]) -> list[str]:
        key = (pattern, tuple(row))
        cols = self._columns_cache.get(key)
        if cols is None:
            cols = self._columns_cache[key] = sorted(fnmatch.filter(row, pattern), key=_natural)
        return cols


def _convert(raw: Any, kind: str, spec: dict[str, Any]) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if kind == "int":
            return int(float(raw))
        if kind == "float":
            return float(raw)
        if kind == "date":
            fmt = spec.get("format")
            return (datetime.strptime(raw, fmt) if fmt else datetime.fromisoformat(raw)).date().isoformat()
        if kind == "datetime":
            fmt = spec.get("format")
            t = datetime.strptime(raw, fmt) if fmt else datetime.fromisoformat(raw)
            if t.tzinfo is None:
                return t.isoformat() + spec.get("tz", "+00:00")
            return t.isoformat()
    except ValueError:
        return raw  # the worker refuses it with the reason
    return raw
