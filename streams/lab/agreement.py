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
    limits = ExcursionLimits(heat_above_c=high.threshold_c, heat_breach_minutes=high.minutes,
                             freeze_at_or_below_c=low.threshold_c, freeze_breach_minutes=low.minutes)
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

