"""Daily charts 按日监测: an entity's events added up per local day, each day judged once complete.

Online models here look at days, not events: a prescriber's share of antimicrobial
prescriptions, an institution's kilograms of waste, its mean claim. :class:`DailyChart` is the
base of such detectors under the keyed contract (:mod:`models.engine.detector`): per entity it adds an
event's values to the day in its ``event_time`` (the local date, in the event's own offset) and
asks the runtime for a timer at that day's end plus ``grace_s``. When the watermark passes it —
on a repartition topic, the slowest input partition's event time (:mod:`models.engine.rekey`) — the day
is complete and handed to :meth:`DailyChart.judge` with the entity's chart (an
:class:`~models.rules.anomaly.cusum.Episode`), in day order. An event for a day already judged is late
and ignored. Days without events are not days of the series.

The state of an entity: its open days (totals, up to ``max_evidence`` sources, and a CRC-32 of each
event id counted, so an event delivered twice counts once), the last day judged, its chart's learned values and the subclass's ``context`` (institution, region …).

>>> from datetime import datetime
>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> from models.rules.anomaly.cusum import Episode, GaussianCUSUM
>>> class Busy(DailyChart):                       # report every day's count, to show the closing
...     name, version, stream, key, key_field, Limits = "demo.busy", "1", "claim", "institution", "institution_id", dict
...     grace_s = 600.0
...     def values(self, event): return {"n": 1}
...     def new_chart(self): return Episode(GaussianCUSUM(), 5.0)
...     def judge(self, ctx, chart, day, totals, evidence, now): return [(ctx.key, day, totals["n"])]
>>> rt = Runtime([Busy()])
>>> def claim(inst, when, offset):
...     e = {"institution_id": inst, "event_time": when, "_t": datetime.fromisoformat(when).timestamp()}
...     return rt.process(e, Source("zhijian.claims", 0, offset, f"C{offset}"))
>>> claim("H1", "2026-10-14T10:00:00+08:00", 0), claim("H1", "2026-10-14T23:55:00+08:00", 1)
([], [])
>>> claim("H2", "2026-10-15T00:20:00+08:00", 2)     # the 14th ended 20 min ago: grace is 10 min
[('H1', '2026-10-14', 2)]
>>> claim("H1", "2026-10-14T23:59:00+08:00", 3)     # late: the 14th was judged
[]
"""
from __future__ import annotations

import bisect
import functools
import zlib
from datetime import datetime, timedelta
from typing import Any, ClassVar

from models.contracts.alert import Alert, Source
from models.rules.anomaly.cusum import Episode
from models.engine.detector import Context, KeyedDetector

DAY_S = 86400.0


def day_of(event_time: str) -> tuple[str, float]:
    """The local date of an ISO 8601 time and the epoch seconds of that day's end (local midnight).

    >>> day_of("2026-11-04T20:09:55+08:00")                      # local midnight of the 5th, UTC+8
    ('2026-11-04', 1793808000.0)
    >>> day_of("2026-11-04T20:09:55.250Z")[1] - day_of("2026-11-04T01:00:00+08:00")[1]
    28800.0
    """
    # the day and its offset decide the answer: one parse per (day, offset), not one per event
    return _day_end(event_time[:10], event_time[19:].lstrip(".0123456789"))


@functools.lru_cache(maxsize=4096)
def _day_end(day: str, offset: str) -> tuple[str, float]:
    local = datetime.fromisoformat(f"{day}T00:00:00{offset}")
    return day, (local + timedelta(days=1)).timestamp()


def first_time(crcs: list[int], event_id: str) -> bool:
    """Whether ``event_id`` is new to ``crcs`` (sorted CRC-32s of the ids counted: O(log n), not a scan), and
    remember it.

    >>> seen = []
    >>> first_time(seen, "C1"), first_time(seen, "C2"), first_time(seen, "C1")
    (True, True, False)
    """
    crc = zlib.crc32(event_id.encode())
    at = bisect.bisect_left(crcs, crc)
    if at < len(crcs) and crcs[at] == crc:
        return False
    crcs.insert(at, crc)
    return True


class DailyChart(KeyedDetector):
    """Base of the per-entity daily charts (see the module's docstring)."""

    #: How long after a day's end its events may still arrive: settlement and waste systems upload in
    #: batches a few times a day, so six hours; an event later than that is not counted.
    grace_s: ClassVar[float] = 6 * 3600.0
    max_evidence: ClassVar[int] = 20
    #: A learned normal is worth keeping through a long pause (a site closed for a season): 90 days.
    retention_s: ClassVar[float] = 90 * DAY_S

    @classmethod
    def _conformance_params(cls) -> dict[str, Any]:
        # a chart learns each entity's normal over weeks before it judges a day: three weeks of only its own
        # scenarios
        return {"days": 21, "own_scenarios": True}

    def values(self, event: dict[str, Any]) -> dict[str, float] | None:
        """What this event adds to its day; None when it does not count."""
        raise NotImplementedError

    def context(self, event: dict[str, Any]) -> dict[str, Any]:
        """Facts about the entity kept for the alert's text (institution, region …)."""
        return {"region": event.get("region", "unknown")}

    def new_chart(self) -> Episode | None:
        """The entity's chart, loaded from and saved to its state around :meth:`judge`; None for a detector that
        keeps its own models in the state (per prescriber and drug, per month, per peer group)."""
        raise NotImplementedError

    def judge(self, ctx: Context, chart: Episode | None, day: str, totals: dict[str, float], evidence: list[Source],
              now: float) -> list[Alert]:
        raise NotImplementedError

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        values = self.values(event)
        if values is None:
            return []
        day, end_t = day_of(event["event_time"])
        st = ctx.state
        if day <= st.get("closed", ""):
            return []  # late: that day was judged
        if not st.get("ctx"):
            st["ctx"] = self.context(event)
        days = st.setdefault("days", {})
        current = days.get(day)
        if current is None:
            current = days[day] = [end_t, {}, [], [], 1]
            ctx.set_timer(end_t + self.grace_s, day)
        elif len(current) == 4:  # kept by a version before the event checksums were sorted
            current[3].sort()
            current.append(1)
        if not first_time(current[3], source.event_id):
            return []  # the same event again (a redelivery, or sent twice): counted once
        totals = current[1]
        for name, value in values.items():
            totals[name] = totals.get(name, 0) + value
        if len(current[2]) < self.max_evidence:
            current[2].append(list(source))
        self.counted(ctx, day, event, source)
        return []

    def counted(self, ctx: Context, day: str, event: dict[str, Any], source: Source) -> None:
        """Called once for each event counted in ``day`` (a subclass keeps evidence of its own here)."""

    def on_timer(self, ctx: Context, tag: str, t: float) -> list[Alert]:
        st = ctx.state
        closing = st["days"].pop(tag)
        totals, evidence = closing[1], closing[2]
        if not st["days"]:
            del st["days"]
        st["closed"] = max(st.get("closed", ""), tag)
        chart = self.new_chart()
        if chart is not None:
            chart.load(st.get("chart"))
        alerts = self.judge(ctx, chart, tag, totals, [Source(*s) for s in evidence], t)
        if chart is not None:
            st["chart"] = chart.dump()
        return alerts
