"""Agreement with the loggers: zhijian's excursion rule against the alarms a Fridge-tag recorded itself.

For an export that carries both its readings (``Data:``) and its daily history (``Hist:``), the
readings go through :class:`models.rules.coldchain.excursion.ExcursionDetector` — configured with the
logger's own thresholds and minutes, so that the rule, not the configuration, is compared — and,
per day and per alarm rule (low, high), the logger's verdict (it alarmed that day, ``C A``/``TS A``)
is set beside zhijian's: a breached excursion of that kind covered part of the day, from the
moment it breached to its end. A logger keeps an alarm raised until it is read out, and counts
its minutes per day (``t Acc``) where zhijian counts one excursion's continuous minutes: the
disagreements are listed with both figures so that each can be explained.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from connectors.errors import ZhijianError
from connectors.files.fridge_tag import FridgeTagExport, telemetry_events
from models.contracts.alert import Source
from models.engine.runtime import Runtime
from models.rules.coldchain.excursion import ExcursionDetector, ExcursionLimits
from streams.lab.evaluate import alert_records, drained


@dataclass
class Agreement:
    days: int = 0
    agree: int = 0
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)  # rule → {both, logger_only, zhijian_only, neither}
    disagreements: list[dict[str, Any]] = field(default_factory=list)


#: The single-event rules a logger's daily alarm stands for.
SINGLE_RULES = ("heat_single", "freeze_single")


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def breach_intervals(alerts: Iterable[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """(kind, breach time, end) of every single-event breach among alerts as the alert topic carries them:
    from the moment the excursion breached its rule to the excursion's end (its closing record), open-ended
    while it is still open. The records may come in any order."""
    breached: dict[tuple[str, str], float] = {}
    ends: dict[tuple[str, str], float] = {}
    for a in alerts:
        n = a.get("numbers") or {}
        excursion = (n.get("kind"), n.get("start"))
        if a["detector"] == "coldchain.breach" and n.get("rule") in SINGLE_RULES:
            breached[excursion] = _t(a["event_time"])
        elif a["detector"] == "coldchain.excursion" and a.get("status") == "closed" and n.get("end"):
            ends[excursion] = _t(n["end"])
    return [(kind, t, ends.get((kind, start), float("inf"))) for (kind, start), t in breached.items()]


def logger_limits(export: FridgeTagExport) -> ExcursionLimits | None:
    """zhijian's excursion rule at the logger's own single-event thresholds and minutes (its cumulative and
    severe-heat options off, so that the rule, not the configuration, is compared); None without both rules."""
    rules = {r.direction: r for r in export.rules}
    if set(rules) != {"low", "high"}:
        return None
    low, high = rules["low"], rules["high"]
    return ExcursionLimits(heat_above_c=high.threshold_c, heat_breach_minutes=high.minutes,
                           freeze_at_or_below_c=low.threshold_c, freeze_breach_minutes=low.minutes,
                           heat_cumulative_minutes=0.0, severe_heat_minutes=0.0)


def compare_days(export: FridgeTagExport, tz: timezone, intervals: list[tuple[str, float, float]]) -> Agreement:
    """Per day the readings cover and per rule (low, high): the logger's verdict beside zhijian's — a breach of
    that kind covering part of the day."""
    rules = {r.direction: r for r in export.rules}
    times = [_t(e["event_time"]) for e in telemetry_events(export, tz, "agreement")]
    out = Agreement()
    names = {"low": ("freeze", rules["low"].index), "high": ("heat", rules["high"].index)}
    for day in export.days:
        start = datetime.fromisoformat(day.day).replace(tzinfo=tz).timestamp()
        end = start + 86400
        if not times or start > times[-1] or end < times[0]:
            continue  # a day the readings do not cover
        out.days += 1
        all_agree = True
        for direction, (kind, index) in names.items():
            logger = bool(day.alarmed.get(index))
            ours = any(k == kind and b < end and e > start for k, b, e in intervals)
            tally = out.by_rule.setdefault(direction, {"both": 0, "logger_only": 0, "zhijian_only": 0, "neither": 0})
            tally["both" if logger and ours else "logger_only" if logger else "zhijian_only" if ours else "neither"] += 1
            if logger != ours:
                all_agree = False
                out.disagreements.append({"day": day.day, "rule": direction, "logger": logger, "zhijian": ours,
                                          "logger_minutes": day.alarm_minutes.get(index, 0.0),
                                          "min_c": day.min_c, "max_c": day.max_c})
        out.agree += all_agree
    return out


def comparable(export: FridgeTagExport) -> bool:
    """An export with readings, a daily history and both a low and a high rule."""
    return bool(export.readings and export.days and logger_limits(export) is not None)


def agreement(export: FridgeTagExport, tz: timezone) -> Agreement | None:
    """zhijian's excursion rule run here, at the logger's thresholds, against the logger's daily alarms; None
    when the export lacks readings, history or rules (nothing to compare)."""
    if not comparable(export):
        return None
    runtime = Runtime([ExcursionDetector(logger_limits(export))])
    alerts = []
    for i, e in enumerate(telemetry_events(export, tz, "agreement")):
        e["_t"] = _t(e["event_time"])
        alerts += [a.to_dict() for a in runtime.process(e, Source("fridge-tag", 0, i, e["event_time"]))]
    return compare_days(export, tz, breach_intervals(alerts))


def rules_differ(export: FridgeTagExport, worker: ExcursionLimits) -> list[str]:
    """Where the worker's single-event rules differ from the logger's: a comparison of those days would
    compare configurations, not rules."""
    mine = logger_limits(export)
    out = []
    if mine is None:
        return ["the logger has no low and high rule"]
    for name, label in (("heat_above_c", "heat above"), ("heat_breach_minutes", "heat minutes"),
                        ("freeze_at_or_below_c", "freeze at or below"), ("freeze_breach_minutes", "freeze minutes")):
        if abs(getattr(mine, name) - getattr(worker, name)) > 1e-9:
            out.append(f"{label} {getattr(mine, name):g} (logger) vs {getattr(worker, name):g} (worker)")
    return out


def through_worker(settings: Any, exports: list[tuple[str, FridgeTagExport]], tz: timezone,
                   timeout: float = 300.0) -> list[tuple[str, Agreement | None, list[str]]]:
    """After the readings were sent: wait until the worker group has judged the telemetry topic to its end,
    read every alert about the loggers back from the alert topic, and compare per file, day and rule the
    worker's single-event breaches with the logger's own alarms. Each row names where the worker's configured
    rule differs from the logger's (then the comparison shows the configurations' difference too)."""

    topic = settings.input_topics()["telemetry"]
    deadline = time.monotonic() + timeout
    calm = 0
    while calm < 2:  # judged to the end twice, a second apart: the alerts of the last record are sent before it is
        done, left = drained(settings.kafka, settings.worker.app_id, [topic])
        calm = calm + 1 if done else 0
        if time.monotonic() > deadline:
            raise ZhijianError(f"the worker group {settings.worker.app_id!r} left {left} records of {topic} unjudged "
                               f"after {timeout:g} s; is a worker running on this broker (zhijian worker)?")
        time.sleep(1.0)
    serials = {export.serial for _, export in exports}
    by_device: dict[str, list[dict[str, Any]]] = {}
    for a in alert_records(settings.kafka, settings.topic("alerts")):
        entity = a.get("entity") or {}
        if entity.get("kind") == "device" and entity.get("id") in serials:
            by_device.setdefault(entity["id"], []).append(a)
    worker = settings.detectors["coldchain.excursion"]
    rows = []
    for path, export in exports:
        if not comparable(export):
            rows.append((path, None, []))
            continue
        got = compare_days(export, tz, breach_intervals(by_device.get(export.serial, [])))
        rows.append((path, got, rules_differ(export, worker)))
    return rows


@dataclass
class RuleAgreement:
    """One Q-tag alarm rule: the alarms the logger raised (``Res:``) beside the breaches zhijian raised."""

    rule: str
    direction: str
    mode: str
    threshold_c: float
    minutes: float
    logger: list[str]  # when the logger alarmed (local time)
    zhijian: list[str] | None  # when zhijian's rule alarmed; None: a rule zhijian has no counterpart of
    matched: int = 0


def alarm_agreement(export: FridgeTagExport, tz: timezone) -> list[RuleAgreement] | None:
    """Per alarm rule of a Q-tag: its own alarms against zhijian's at the same thresholds and minutes, an alarm
    matching when zhijian's comes within two logging intervals of the logger's. None without ``Res:`` alarms or
    readings. The logger measures every minute and logs every few: zhijian sees only the logged readings."""
    if not export.readings or not export.rules or not any(r.mode for r in export.rules) or not export.alarms:
        return None
    events = telemetry_events(export, tz, "agreement")
    for e in events:
        e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
    run_hours = (events[-1]["_t"] - events[0]["_t"]) / 3600 + 1

    def alarms(limits: ExcursionLimits, rule: str) -> list[str]:
        runtime = Runtime([ExcursionDetector(limits)])
        out = []
        for i, e in enumerate(events):
            for a in runtime.process(dict(e), Source("q-tag", 0, i, e["event_time"])):
                if a.detector == "coldchain.breach" and a.numbers["rule"] == rule:
                    t = a.event_t if rule != "heat_single" and rule != "freeze_single" else e["_t"]
                    out.append(datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M"))
        return out

    off = {"heat_breach_minutes": 0.0, "freeze_breach_minutes": 0.0, "heat_cumulative_minutes": 0.0,
           "severe_heat_minutes": 0.0}
    tolerance = 2 * 60 * (export.interval_minutes or 10.0)
    out = []
    for r in export.rules:
        if r.direction == "high" and r.mode == "single":
            ours = alarms(ExcursionLimits(**{**off, "heat_above_c": r.threshold_c, "heat_breach_minutes": r.minutes}),
                          "heat_single")
        elif r.direction == "low" and r.mode == "single":
            # a Q-tag is out of limits strictly below T AL (its Data: marks 2.0 in range at T AL 2.0): at its
            # 0.1 °C resolution that is at or below T AL − 0.1
            ours = alarms(ExcursionLimits(**{**off, "freeze_at_or_below_c": round(r.threshold_c - 0.05, 2),
                                             "freeze_breach_minutes": r.minutes}), "freeze_single")
        elif r.direction == "high" and r.mode == "cumulative":  # a Q-tag counts over its whole run
            ours = alarms(ExcursionLimits(**{**off, "heat_above_c": r.threshold_c, "heat_cumulative_minutes": r.minutes,
                                             "heat_cumulative_window_hours": run_hours}), "heat_cumulative")
        else:
            ours = None  # cumulative cold: zhijian has no such rule
        logger = [a.alarmed_at for a in export.alarms if a.rule == r.index and a.alarmed_at]
        row = RuleAgreement(r.index, r.direction, r.mode, r.threshold_c, r.minutes, logger, ours)
        if ours is not None:
            left = [datetime.fromisoformat(x).timestamp() for x in ours]
            for when in logger:
                t = datetime.fromisoformat(when).timestamp()
                near = [x for x in left if abs(x - t) <= tolerance]
                if near:
                    left.remove(near[0])
                    row.matched += 1
        out.append(row)
    return out


def print_agreement(exports: list[tuple[str, FridgeTagExport]], tz: timezone) -> None:
    """zhijian's excursion rule at each logger's thresholds against the logger's own alarms, per day and rule and
    (for a Q-tag's ``Res:`` alarms) per alarm, as ``zhijian import fridge-tag --agreement`` prints it."""
    print(f"\nagreement with the loggers' own alarms, per day and rule (zhijian's excursion rule at each logger's "
          f"thresholds):\n{_HEADER}")
    for path, export in exports:
        a = agreement(export, tz)
        if a is None:
            continue
        print(_row(path, a))
        for d in a.disagreements:
            print(f"    {d['day']} {d['rule']}: logger {'alarm' if d['logger'] else 'no alarm'} "
                  f"({d['logger_minutes']:g} min counted), zhijian {'breach' if d['zhijian'] else 'none'}; "
                  f"min {d['min_c']} °C, max {d['max_c']} °C")
    for path, export in exports:
        rows = alarm_agreement(export, tz)
        if not rows:
            continue
        print(f"\n{Path(path).name}: the logger's own alarms (Res:) beside zhijian's at its thresholds, an alarm "
              f"matching within two logging intervals")
        for r in rows:
            ours = "(no such rule)" if r.zhijian is None else ", ".join(r.zhijian) or "none"
            print(f"    rule {r.rule} {r.direction} {r.mode} {r.threshold_c:g} °C / {r.minutes:g} min: logger "
                  f"{', '.join(r.logger) or 'none'}; zhijian {ours}; matched {r.matched}/{len(r.logger)}")


def print_worker_agreement(settings: Any, rows: list[tuple[str, Agreement | None, list[str]]]) -> None:
    """:func:`through_worker`'s rows as ``zhijian import fridge-tag --agreement`` prints them."""
    print(f"\nagreement through the worker (group {settings.worker.app_id!r}, its own excursion rule as "
          f"configured), per day and rule:\n{_HEADER}")
    for path, a, differ in rows:
        if a is None:
            print(f"{Path(path).name[:43]:44}   (readings and a daily history are both needed: nothing to compare "
                  "per day)")
            continue
        print(_row(path, a))
        if differ:
            print(f"    the worker's rule is not the logger's: {'; '.join(differ)}")
        for d in a.disagreements:
            print(f"    {d['day']} {d['rule']}: logger {'alarm' if d['logger'] else 'no alarm'} "
                  f"({d['logger_minutes']:g} min counted), worker {'breach' if d['zhijian'] else 'none'}")


_HEADER = f"{'file':44}{'days':>6}{'agree':>7}{'low: both/logger/zhijian':>26}{'high: both/logger/zhijian':>27}"


def _row(path: str, a: Agreement) -> str:
    lo, hi = a.by_rule["low"], a.by_rule["high"]
    return (f"{Path(path).name[:43]:44}{a.days:>6}{a.agree:>7}{lo['both']:>16}/{lo['logger_only']}/"
            f"{lo['zhijian_only']:<6}{hi['both']:>17}/{hi['logger_only']}/{hi['zhijian_only']:<6}")
