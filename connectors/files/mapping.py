"""Mapping CSV rows onto a topic's event fields, from a TOML mapping file.

A field spec is one of:

* ``"column"`` — the column's value as a string;
* ``{column = "c" | ["c1", "c2"], type = "str|code|int|float|date|datetime", default = …, map = {…}}``
  — the first non-empty column, converted; ``map`` translates codes (``institutional`` → ``inpatient``);
  ``chars = [start, end]`` takes a part of the value first (the third digit of a bill type: ``[2, 3]``), and
  ``otherwise`` is the value of a code the ``map`` does not name;
  ``format`` reads a date as ``strptime`` does (``"%Y%m%d"``), ``tz`` gives a local time its offset,
  ``plus_days`` (a number or a column) moves a date; ``code`` trims a code a spreadsheet wrote as a
  number (``4019.0`` → ``4019``);
* ``{const = value}``; ``{template = "{claim_id}-{claim_line_number}"}`` (the columns, by name);
* computed columns: ``{sum = ["c1", "c2"]}`` — the sum of the non-empty ones;
  ``{days_between = ["start", "end"]}`` — whole days from one date column to another;
  ``{present = "c", then = v, otherwise = w}`` — a value chosen by whether a column has one;
* ``{columns = "diagnosis_code_*"}`` — repeated columns (Diagnosis_1..10) as a list of the
  non-empty values in column order;
* ``{item = {…field specs…}}`` — a list of one object (a claim line, a prescription item);
  ``{object = {…}}`` — one object;
* ``{repeat = "procedure_{n}", line = {…}}`` — one object per *n* for which the column
  ``procedure_{n}`` has a value, the line's own ``…_{n}`` columns read for that *n*: a row with
  procedure_1..6 becomes up to six lines; ``{concat = [spec, …]}`` joins such lists.

A mapping may join a second file on a key — ``[join.beneficiary]`` with ``file`` (relative to the
mapping file, or given by ``zhijian replay --join beneficiary=PATH``), ``on`` (the column of the
main file) and ``key`` (the column of the joined file, by default the same name): its columns are
read as ``beneficiary.<column>``; the last row of a key wins.

Empty values are left out (so a missing required field reaches the worker and is refused with
its reason), and so are the export's missing-value markers: ``missing = ["NA", "NULL", …]`` at the
top of the mapping file, :data:`MISSING_MARKERS` by default (a cell ``NA`` is not a diagnosis nor a
doctor id). A value that does not convert (``2019-13-45`` as a date) raises :class:`Unmappable`,
which names the column; ``zhijian replay`` sends that row to the dead-letter topic with the column,
the file and the line.

>>> m = Mapping({"claim_id": {"template": "{id}-{line}"}, "n": {"column": "qty", "type": "float"},
...              "dx": {"columns": "dx_*"}, "kind": {"column": "t", "map": {"institutional": "inpatient"}}})
>>> m.apply({"id": "7", "line": "2", "qty": "3", "dx_1": "I10", "dx_2": "", "dx_10": "E11", "t": "institutional"})
{'claim_id': '7-2', 'n': 3.0, 'dx': ['I10', 'E11'], 'kind': 'inpatient'}
>>> m.apply({"id": "8", "line": "1", "qty": "NA", "dx_1": "NULL", "dx_2": "J06.9", "t": " - "})
{'claim_id': '8-1', 'dx': ['J06.9']}
>>> try:
...     m.apply({"id": "9", "line": "1", "qty": "three"})
... except Unmappable as e:
...     print(e)
column qty: 'three' is not a number (type float)

Computed columns and repeated groups:

>>> c = Mapping({"total": {"sum": ["paid", "deductible"]}, "los": {"days_between": ["in", "out"]},
...              "kind": {"present": "in", "then": "inpatient", "otherwise": "outpatient"},
...              "items": {"concat": [{"item": {"item_code": {"const": "CLAIM"}}},
...                                   {"repeat": "proc_{n}", "line": {"item_code": {"column": "proc_{n}", "type": "code"}}}]}})
>>> c.apply({"paid": "900", "deductible": "100", "in": "2009-04-12", "out": "2009-04-18", "proc_1": "4019.0", "proc_2": "NA", "proc_3": "V5869"})
{'total': 1000.0, 'los': 6, 'kind': 'inpatient', 'items': [{'item_code': 'CLAIM'}, {'item_code': '4019'}, {'item_code': 'V5869'}]}
"""
from __future__ import annotations

import csv
import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.errors import ConfigError

_MISSING = object()
#: Cells that mean "no value" in real exports (R's NA, SQL's NULL, a dash), compared after trimming.
MISSING_MARKERS = ("NA", "N/A", "NULL", "null", "None", "-", "--", "?")
TYPES = ("str", "code", "int", "float", "date", "datetime")
KINDS = ("column", "const", "template", "columns", "item", "object", "sum", "days_between", "present", "repeat",
         "concat")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_FLOAT_CODE = re.compile(r"^(\d+)\.0+$")


class Unmappable(ValueError):
    """A cell that does not convert to its field's type: the row is refused, naming the column."""

    def __init__(self, column: str, value: str, why: str) -> None:
        super().__init__(f"column {column}: {value[:40]!r} {why}")
        self.column = column


def _natural(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


@dataclass
class Join:
    """A second file joined on a key; its columns are read as ``<name>.<column>``."""

    name: str
    on: str
    key: str
    path: Path | None = None
    rows: dict[str, dict[str, str]] = field(default_factory=dict)

    def load(self, path: Path, missing: frozenset[str]) -> None:
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                if not reader.fieldnames or self.key not in reader.fieldnames:
                    raise ConfigError(f"join {self.name}: {path} has no column {self.key!r} to join on")
                for row in reader:
                    k = row.get(self.key)
                    if k and k.strip() not in missing:
                        self.rows[k] = {f"{self.name}.{c}": v for c, v in row.items()
                                        if c is not None and v and v.strip() not in missing}
        except FileNotFoundError:
            raise ConfigError(f"join {self.name}: {path} does not exist; give it with --join {self.name}=PATH") from None
        self.path = path


class Mapping:
    def __init__(self, fields: dict[str, Any], source: str = "mapping",
                 missing: tuple[str, ...] | list[str] = MISSING_MARKERS, joins: list[Join] | None = None) -> None:
        self.fields = fields
        self.missing = frozenset(missing)
        self.source = source
        self.joins = joins or []
        self._check(fields, "fields")
        self._columns_cache: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        self._repeat_cache: dict[tuple[str, tuple[str, ...]], list[tuple[int, str]]] = {}

    @classmethod
    def load(cls, path: str | Path, join_paths: dict[str, str] | None = None) -> tuple[str, "Mapping"]:
        """Read a mapping file: ``stream = "claim"``, a ``[fields]`` table, ``[join.NAME]`` tables."""
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
        join_paths = join_paths or {}
        joins = []
        for name, spec in (doc.get("join") or {}).items():
            if not isinstance(spec, dict) or "on" not in spec:
                raise ConfigError(f"mapping file {p}: [join.{name}] needs `on` (the column to join on)")
            j = Join(name, spec["on"], spec.get("key", spec["on"]))
            given = join_paths.get(name)
            if given is None and "file" not in spec:
                raise ConfigError(f"mapping file {p}: [join.{name}] names no file; give it with --join {name}=PATH")
            j.load(Path(given) if given is not None else p.parent / spec["file"], frozenset(missing))
            joins.append(j)
        return doc["stream"], cls(doc["fields"], str(p), missing, joins)

    def _check(self, fields: dict[str, Any], where: str) -> None:
        for name, spec in fields.items():
            self._check_spec(spec, f"{where}.{name}")

    def _check_spec(self, spec: Any, where: str) -> None:
        if isinstance(spec, str):
            return
        if not isinstance(spec, dict):
            raise ConfigError(f"{self.source}: {where} must be a column name or a table")
        for nested in ("item", "object", "line"):
            if nested in spec:
                self._check(spec[nested], f"{where}.{nested}")
        for part in spec.get("concat", ()):
            self._check_spec(part, f"{where}.concat")
        if spec.get("type", "str") not in TYPES:
            raise ConfigError(f"{self.source}: {where} type {spec['type']!r} is not one of {', '.join(TYPES)}")
        if not set(KINDS) & set(spec):
            raise ConfigError(f"{self.source}: {where} needs one of {', '.join(KINDS)}")
        if "repeat" in spec and ("{n}" not in spec["repeat"] or "line" not in spec):
            raise ConfigError(f"{self.source}: {where} repeat needs a column name with {{n}} and a `line` table")
        if "chars" in spec and (not isinstance(spec["chars"], list) or len(spec["chars"]) != 2):
            raise ConfigError(f"{self.source}: {where} chars needs [start, end]")
        for two in ("days_between",):
            if two in spec and (not isinstance(spec[two], list) or len(spec[two]) != 2):
                raise ConfigError(f"{self.source}: {where} {two} needs two columns, [start, end]")

    def apply(self, row: dict[str, str]) -> dict[str, Any]:
        """One row → one event; raises :class:`Unmappable` for a cell that does not convert."""
        missing = self.missing
        clean = {k: v for k, v in row.items() if k is not None and v and v.strip() not in missing}
        for j in self.joins:
            joined = j.rows.get(clean.get(j.on, ""))
            if joined:
                clean.update(joined)
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
                return _PLACEHOLDER.sub(lambda m: row[m.group(1)], spec["template"])
            except KeyError:
                return _MISSING
        if "columns" in spec:
            cols = self._matching(spec["columns"], row)
            return [_convert(row[c], c, spec.get("type", "str"), spec) for c in cols if row.get(c)]
        if "item" in spec:
            return [self._object(spec["item"], row)]
        if "object" in spec:
            return self._object(spec["object"], row)
        if "sum" in spec:
            present = [c for c in spec["sum"] if row.get(c)]
            if not present:
                return spec.get("default", _MISSING)
            return round(sum(_convert(row[c], c, "float", spec) for c in present), 2)
        if "days_between" in spec:
            start, end = spec["days_between"]
            if not row.get(start) or not row.get(end):
                return spec.get("default", _MISSING)
            a, b = (_convert(row[c], c, "date", spec) for c in (start, end))
            return (date.fromisoformat(b) - date.fromisoformat(a)).days
        if "present" in spec:
            return spec.get("then", _MISSING) if row.get(spec["present"]) else spec.get("otherwise", _MISSING)
        if "repeat" in spec:
            return self._repeat(spec, row)
        if "concat" in spec:
            out: list[Any] = []
            for part in spec["concat"]:
                value = self._value(part, row)
                if value is not _MISSING:
                    out += value if isinstance(value, list) else [value]
            return out
        names = spec["column"] if isinstance(spec["column"], list) else [spec["column"]]
        column = next((c for c in names if row.get(c)), None)
        if column is None:
            return spec.get("default", _MISSING)
        raw = row[column]
        if "chars" in spec:  # a part of the value: [start, end) — the frequency digit of a bill type "117" is [2, 3]
            raw = raw.strip()[slice(*spec["chars"])]
            if not raw:
                return spec.get("default", _MISSING)
        if "map" in spec and raw not in spec["map"] and "otherwise" in spec:
            return spec["otherwise"]  # a code the map does not name: this value (a bill type's "1" or "I": original)
        raw = spec.get("map", {}).get(raw, raw)
        value = _convert(raw, column, spec.get("type", "str"), spec)
        if "plus_days" in spec and isinstance(value, str):
            shift = spec["plus_days"]
            if isinstance(shift, str):
                if not row.get(shift):
                    return value
                shift = _convert(row[shift], shift, "int", spec)
            value = (date.fromisoformat(value[:10]) + timedelta(days=shift)).isoformat() + value[10:]
        return value

    def _repeat(self, spec: dict[str, Any], row: dict[str, str]) -> list[dict[str, Any]]:
        template = spec["repeat"]
        key = (template, tuple(row))
        found = self._repeat_cache.get(key)
        if found is None:
            head, tail = template.split("{n}", 1)
            pattern = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + "$")
            found = sorted((int(m.group(1)), c) for c in row if (m := pattern.match(c)))
            self._repeat_cache[key] = found
        lines = []
        for n, column in found:
            if not row.get(column):
                continue
            view = dict(row)
            for name in _templated(spec["line"]):
                actual = name.replace("{n}", str(n))
                if actual in row:
                    view[name] = row[actual]
                else:
                    view.pop(name, None)
            lines.append(self._object(spec["line"], view))
        return lines

    def _matching(self, pattern: str, row: dict[str, str]) -> list[str]:
        key = (pattern, tuple(row))
        cols = self._columns_cache.get(key)
        if cols is None:
            cols = self._columns_cache[key] = sorted(fnmatch.filter(row, pattern), key=_natural)
        return cols


def _templated(fields: dict[str, Any]) -> set[str]:
    """The column names with ``{n}`` a repeated line reads."""
    found: set[str] = set()

    def walk(spec: Any) -> None:
        if isinstance(spec, str):
            if "{n}" in spec:
                found.add(spec)
        elif isinstance(spec, list):
            for x in spec:
                walk(x)
        elif isinstance(spec, dict):
            for k, v in spec.items():
                if k in ("column", "columns", "sum", "days_between", "present", "item", "object", "concat") \
                        or isinstance(v, dict):
                    walk(v)

    walk(fields)
    return found


def _convert(raw: Any, column: str, kind: str, spec: dict[str, Any]) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if kind == "code":
            raw = raw.strip()
            m = _FLOAT_CODE.match(raw)
            return m.group(1) if m else raw
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
        what = {"int": "a whole number", "float": "a number", "date": "a date", "datetime": "a date-time"}[kind]
        fmt = f", format {spec['format']}" if spec.get("format") else ""
        raise Unmappable(column, raw, f"is not {what} (type {kind}{fmt})") from None
    return raw
