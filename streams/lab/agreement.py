"""Agreement with the loggers: zhijian's excursion rule against the alarms a Fridge-tag recorded itself.

For an export that carries both its readings (``Data:``) and its daily history (``Hist:``), the
readings go through :class:`models.coldchain.excursion.ExcursionDetector` — configured with the
logger's own thresholds and minutes, so that the rule, not the configuration, is compared — and,
per day and per alarm rule (low, high), the logger's verdict (it alarmed that day, ``C A``/``TS A``)
is set beside zhijian's: a breached excursion of that kind covered part of the day, from the
moment it breached to its end. A logger keeps an alarm raised until it is read out, and counts
its minutes per day (``t Acc``) where zhijian counts one excursion's continuous minutes: the
disagreements are listed with both figures so that each can be explained.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from connectors.fridge_tag import FridgeTagExport, telemetry_events


@dataclass
class Agreement:
    days: int = 0
    agree: int = 0
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)  # rule → {both, logger_only, zhijian_only, neither}
    disagreements: list[dict[str, Any]] = field(default_factory=list)


def agreement(export: FridgeTagExport, tz: timezone) -> Agreement | None:
    """None when the export lacks readings or history (nothing to compare)."""
    from models.alert import Source
    from models.coldchain.excursion import ExcursionDetector, ExcursionLimits
    from models.runtime import Runtime

    rules = {r.direction: r for r in export.rules}
    if not export.readings or not export.days or set(rules) != {"low", "high"}:
        return None
    low, high = rules["low"], rules["high"]
    # the logger's own single-event rules only: its cumulative and severe-heat options are not compared here
    limits = ExcursionLimits(heat_above_c=high.threshold_c, heat_breach_minutes=high.minutes,
                             freeze_at_or_below_c=low.threshold_c, freeze_breach_minutes=low.minutes,
                             heat_cumulative_minutes=0.0, severe_heat_minutes=0.0)
    runtime = Runtime([ExcursionDetector(limits)])
    breached: dict[tuple[str, str], list[Any]] = {}  # (kind, excursion start) → [kind, breach time, end time]
    events = telemetry_events(export, tz, "agreement")
    for i, e in enumerate(events):
        e["_t"] = datetime.fromisoformat(e["event_time"]).timestamp()
        for a in runtime.process(e, Source("fridge-tag", 0, i, e["event_time"])):
            excursion = (a.numbers["kind"], a.numbers["start"])
            if a.detector == "coldchain.breach":
                breached[excursion] = [a.numbers["kind"], a.event_t, float("inf")]
            elif a.status == "closed" and excursion in breached:  # the excursion that breached has ended
                breached[excursion][2] = datetime.fromisoformat(a.numbers["end"]).timestamp()
    intervals = list(breached.values())
    out = Agreement()
    names = {"low": ("freeze", low.index), "high": ("heat", high.index)}
    for day in export.days:
        start = datetime.fromisoformat(day.day).replace(tzinfo=tz).timestamp()
        end = start + 86400
        if start > events[-1]["_t"] or end < events[0]["_t"]:
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
    from models.alert import Source
    from models.coldchain.excursion import ExcursionDetector, ExcursionLimits
    from models.runtime import Runtime

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
