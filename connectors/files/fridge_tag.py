"""Berlinger Fridge-tag and Q-tag exports 冷链温度记录仪导出文件 → telemetry events and daily summaries.

The loggers (Fridge-tag 2, 2 L, Ultra Low; Q-tag CLm doc) write a text report: an indented
``Key: value`` tree (one space per level, several pairs on a line separated by ``, ``), with

* ``Conf:`` — serial number and the alarm rules, ``T AL`` (°C) and ``t AL`` (minutes) per rule:
  on a Fridge-tag rule 0 is the low alarm (at or below), rule 1 the high one (above); a Q-tag
  names each rule's ``Type`` (1 low single, 2 high single, 3 low cumulative, 4 high cumulative,
  0 off);
* ``Hist:`` — one block per day: ``Date``, ``Min T``/``Max T``/``Avrg T``, and per alarm rule the
  minutes accumulated that day (``t Acc``) and whether it alarmed (``C A``, alarm count, or
  ``TS A`` the time it did); ``---`` for a value the logger has not got;
* ``Res:`` (Q-tag) — the run's result: per alarm rule, each alarm the logger raised, with when its
  count started (``TS S``), the minutes counted (``t A``), when it alarmed (``TS A``), when it ended
  (``TS E``, empty while still on) and the extreme temperature (``T M``);
* ``Data:`` (where the model keeps readings) — tab-separated rows of local time, temperature
  (``--.-`` when missing) and an out-of-limits mark.

Times are the logger's local time without a zone: the import is told the zone. A line that
fits none of this is refused with its number.

>>> text = '''Device: Q-tag Fridge-tag 2
... Conf:
...  Serial: 1304
...  Alarm:
...   0:
...    T AL: -0.5, t AL: 60
...   1:
...    T AL: +8.0, t AL: 600
... Hist:
...  1:
...   Date: 2023-02-14
...   Min T: +4.0, TS Min T: 00:00
...   Max T: +9.1, TS Max T: 04:57
...   Avrg T: ---
...   Alarm:
...    0:
...     t Acc: 0
...    1:
...     t Acc: 610, TS A: 10:00, C A: 1
... '''
>>> export = parse(text)
>>> export.serial, [(r.index, r.direction, r.threshold_c, r.minutes) for r in export.rules]
('1304', [('0', 'low', -0.5, 60.0), ('1', 'high', 8.0, 600.0)])
>>> d = export.days[0]
>>> d.day, d.min_c, d.max_c, d.mean_c, d.alarm_minutes, d.alarmed
('2023-02-14', 4.0, 9.1, None, {'0': 0.0, '1': 610.0}, {'0': False, '1': True})
>>> try:
...     parse("Device: Fridge-tag 2\\nConf:\\n Serial 12\\n")
... except FridgeTagError as e:
...     print(e)
line 3: expected 'Key: value', got 'Serial 12'
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

_PAIR_SPLIT = re.compile(r",\s+(?=[A-Za-z][A-Za-z0-9 ]*:)")
_MISSING = {"---", "--.-", ""}
#: Q-tag alarm types (the ``Type`` of a rule); Fridge-tags have none: rule 0 low, rule 1 high.
QTAG_TYPES = {"1": ("low", "single"), "2": ("high", "single"), "3": ("low", "cumulative"), "4": ("high", "cumulative")}


class FridgeTagError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class AlarmRule:
    index: str
    direction: str  # "low": at or below the threshold; "high": above it
    threshold_c: float
    minutes: float
    mode: str = "cumulative"  # Fridge-tags accumulate minutes per day; a Q-tag rule says


@dataclass
class DaySummary:
    day: str
    min_c: float | None
    max_c: float | None
    mean_c: float | None
    alarm_minutes: dict[str, float] = field(default_factory=dict)
    alarmed: dict[str, bool] = field(default_factory=dict)
    sensor_timeout_minutes: float = 0.0


@dataclass(frozen=True)
class DeviceAlarm:
    """An alarm a Q-tag recorded in ``Res:`` (local times "yyyy-mm-dd hh:mm"; None where the logger left it empty)."""

    rule: str
    start: str | None  # when the rule's count started
    minutes: float  # minutes counted
    alarmed_at: str | None  # when the alarm was raised
    end: str | None  # when the condition ended (None: still on when the run stopped)
    extreme_c: float | None


@dataclass
class FridgeTagExport:
    device: str
    serial: str
    rules: list[AlarmRule]
    days: list[DaySummary]
    readings: list[tuple[str, float | None]]  # (local time "yyyy-mm-dd hh:mm", °C or None)
    alarms: list[DeviceAlarm] = field(default_factory=list)  # a Q-tag's own, from Res:
    interval_minutes: float | None = None  # Conf: Logging Interval


def _number(text: str, line: int) -> float | None:
    text = text.strip()
    if text in _MISSING:
        return None
    try:
        return float(text)
    except ValueError:
        raise FridgeTagError(line, f"expected a number, got {text!r}") from None


def _tree(lines: list[str]) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    """The ``Key: value`` tree and the Data rows (line number, text)."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    data: list[tuple[int, str]] = []
    section = ""
    for n, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        if line.startswith("\t"):
            if section == "Data":
                data.append((n, line))
            continue  # tab rows of other sections (Marker) carry nothing zhijian uses
        indent = len(line) - len(line.lstrip(" "))
        pairs = _PAIR_SPLIT.split(line.strip())
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        for pair in pairs:
            key, sep, value = pair.partition(":")
            if not sep:
                raise FridgeTagError(n, f"expected 'Key: value', got {pair!r}")
            key, value = key.strip(), value.strip()
            if indent == 0:
                section = key
            if value == "" and len(pairs) == 1:
                child: dict[str, Any] = {}
                parent[key] = child
                stack.append((indent, child))
            elif key in parent:  # a key repeated in one block (a Q-tag alarm's several events): keep the first
                continue
            else:
                parent[key] = value
    return root, data


def _res_alarms(lines: list[str]) -> list[DeviceAlarm]:
    """The alarm events of a Q-tag's ``Res:`` section (a rule may hold several, one per line)."""
    out: list[DeviceAlarm] = []
    in_res = in_alarm = False
    rule = None
    for n, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.startswith("\t"):
            continue
        indent, text = len(line) - len(line.lstrip(" ")), line.strip()
        if indent == 0:
            in_res, in_alarm = text == "Res:", False
        elif in_res and indent == 1:
            in_alarm = text == "Alarm:"
        elif in_res and in_alarm and indent == 2:
            rule = text.rstrip(":")
        elif in_res and in_alarm and indent == 3 and rule is not None:
            pairs = {k.strip(): v.strip() for k, _, v in (p.partition(":") for p in _PAIR_SPLIT.split(text))}
            if "TS S" not in pairs and "TS A" not in pairs:
                raise FridgeTagError(n, f"expected an alarm event 'TS S: …, t A: …', got {text!r}")
            out.append(DeviceAlarm(rule, pairs.get("TS S") or None, _number(pairs.get("t A", "0"), n) or 0.0,
                                   pairs.get("TS A") or None, pairs.get("TS E") or None,
                                   _number(pairs.get("T M", "---"), n)))
    return out


def parse(text: str) -> FridgeTagExport:
    lines = text.splitlines()
    root, data = _tree(lines)
    device = root.get("Device")
    conf = root.get("Conf")
    if not isinstance(device, str) or not isinstance(conf, dict) or "Serial" not in conf:
        raise FridgeTagError(1, "not a Fridge-tag or Q-tag export (no Device line or no Conf: with a Serial)")
    qtag_types = "Q-tag CLm" in device or any(isinstance(v, dict) and "Type" in v
                                              for v in (conf.get("Alarm") or {}).values())
    rules = []
    for index, rule in (conf.get("Alarm") or {}).items():
        if not isinstance(rule, dict) or "T AL" not in rule:
            continue
        threshold, minutes = _number(rule["T AL"], 0), _number(rule.get("t AL", "0"), 0)
        if qtag_types:
            direction, mode = QTAG_TYPES.get(rule.get("Type", "0"), (None, None))
            if direction is None:
                continue
        else:
            direction, mode = ("low" if index == "0" else "high"), "cumulative"
        rules.append(AlarmRule(index, direction, threshold, minutes or 0.0, mode))
    days = []
    for block in (root.get("Hist") or {}).values():
        if not isinstance(block, dict) or "Date" not in block:
            continue
        alarm_minutes, alarmed = {}, {}
        for index, a in (block.get("Alarm") or {}).items():
            if isinstance(a, dict):
                alarm_minutes[index] = _number(a.get("t Acc", "0"), 0) or 0.0
                alarmed[index] = bool(a.get("TS A")) or (a.get("C A", "0") not in ("0", ""))
        timeout = block.get("Int Sensor timeout") or {}
        days.append(DaySummary(block["Date"], _number(block.get("Min T", "---"), 0),
                               _number(block.get("Max T", "---"), 0), _number(block.get("Avrg T", "---"), 0),
                               alarm_minutes, alarmed, _number(timeout.get("t AccST", "0"), 0) or 0.0
                               if isinstance(timeout, dict) else 0.0))
    readings = []
    for n, row in data:
        cells = row.split("\t")[1:]
        if len(cells) < 2 or cells[0].startswith("yyyy"):
            continue  # the header row
        when = cells[0].strip()
        try:
            datetime.strptime(when, "%Y-%m-%d %H:%M")
        except ValueError:
            raise FridgeTagError(n, f"expected a time 'yyyy-MM-dd hh:mm', got {when!r}") from None
        readings.append((when, _number(cells[1], n)))
    interval = conf.get("Logging Interval")
    return FridgeTagExport(device, str(conf["Serial"]), rules, sorted(days, key=lambda d: d.day), readings,
                           _res_alarms(lines), _number(interval, 0) if isinstance(interval, str) else None)


def telemetry_events(export: FridgeTagExport, tz: timezone, facility_id: str, device_kind: str = "fridge",
                     region: str | None = None) -> list[dict[str, Any]]:
    """The export's readings as telemetry events (contract v1); missing readings are left out."""
    out = []
    for when, temp in export.readings:
        if temp is None:
            continue
        t = datetime.fromisoformat(when).replace(tzinfo=tz)
        e = {"schema_version": 1, "device_id": export.serial, "device_kind": device_kind, "facility_id": facility_id,
             "event_time": t.isoformat(), "temperature_c": temp}
        if region:
            e["region"] = region
        out.append(e)
    return out
