"""Per-entity daily totals, closed when every input partition has moved past the day.

Online models here look at days, not events: a prescriber's share of antimicrobial
prescriptions, an institution's kilograms of waste. :class:`DailyTotals` adds an entity's
events up by local day (the date in ``event_time``, in its own offset). An entity's events
come from several partitions (the topics are keyed by patient or manifest), read at uneven
speeds, so a day is complete only when the *watermark* — the oldest of the partitions' newest
event times — has passed the day's end by ``grace_s``; :meth:`add` then hands back every day
it completes, of any entity. An event for a day already handed back is ignored. Days without
events are not days of the series. A partition that stops receiving events holds the
watermark back; the days wait for it. At a worker's start the first fetches can bring a day of
one partition before the others have been seen at all: given ``partitions`` (how many the
stream has), nothing closes until all have been seen — or, for a worker that owns only some,
until ``startup_wait_s`` of event time has passed since its first event.

>>> from datetime import datetime
>>> days = DailyTotals(grace_s=600)
>>> def add(who, when, k, partition):
...     t = datetime.fromisoformat(when).timestamp()
...     return [(e, d.day, d.totals) for e, d in days.add(who, when, t, {"n": 1, "k": k}, partition, f"{who}@{when}")]
>>> add("D1", "2026-10-14T10:00:00+08:00", 0, 0), add("D2", "2026-10-14T11:00:00+08:00", 1, 1)
([], [])
>>> add("D1", "2026-10-15T09:00:00+08:00", 0, 0)    # partition 1 is still on the 14th
[]
>>> add("D1", "2026-10-14T23:50:00+08:00", 1, 1)    # and brings a straggler
[]
>>> add("D2", "2026-10-15T08:00:00+08:00", 0, 1)    # now both are past the 14th
[('D1', '2026-10-14', {'n': 2, 'k': 1}), ('D2', '2026-10-14', {'n': 1, 'k': 1})]
>>> add("D1", "2026-10-14T23:59:00+08:00", 1, 0)    # a closed day does not reopen
[]

Told there are three partitions, it waits for the third (here: for two days of event time):

>>> days = DailyTotals(grace_s=600, partitions=3)
>>> add("D1", "2026-10-14T10:00:00+08:00", 1, 0), add("D1", "2026-10-15T09:00:00+08:00", 0, 1)
([], [])
>>> add("D1", "2026-10-15T10:00:00+08:00", 0, 0)    # partition 2 has not been heard from
[]
>>> [(e, d) for e, d, _ in add("D1", "2026-10-15T09:30:00+08:00", 0, 2)]
[('D1', '2026-10-14')]
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from models.anomaly.watermark import PartitionWatermark

S = TypeVar("S")


@dataclass(slots=True)
class Day(Generic[S]):
    day: str
    end_t: float  # epoch seconds of the day's end (local midnight)
    totals: dict[str, float] = field(default_factory=dict)
    evidence: list[S] = field(default_factory=list)


class DailyTotals(Generic[S]):
    def __init__(self, grace_s: float = 6 * 3600.0, max_evidence: int = 20, partitions: int | None = None,
                 startup_wait_s: float = 2 * 86400.0) -> None:
        self.grace_s = grace_s
        self.max_evidence = max_evidence
        self._watermark = PartitionWatermark(partitions, startup_wait_s)
        self._open: dict[tuple[str, str], Day[S]] = {}  # (entity, day) → totals
        self._closing: list[tuple[float, str, str]] = []  # heap of (end_t, day, entity)
        self._closed_through: dict[str, str] = {}
        self._ends: dict[str, tuple[str, float]] = {}

    @property
    def watermark(self) -> float:
        return self._watermark.value

    def _day(self, event_time: str) -> tuple[str, float]:
        key = event_time[:10] + event_time[19:]
        hit = self._ends.get(key)
        if hit is None:
            local = datetime.fromisoformat(event_time)
            midnight = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
            hit = self._ends[key] = (event_time[:10], midnight.timestamp())
            if len(self._ends) > 10_000:
                self._ends.clear()
        return hit

    def add(self, entity: str, event_time: str, t: float, values: dict[str, float], partition: int,
            source: S) -> list[tuple[str, Day[S]]]:
        """Add one event's values; return the (entity, day) pairs the watermark has now completed."""
        watermark = self._watermark.observe(partition, t)
        day, end_t = self._day(event_time)
        if day > self._closed_through.get(entity, ""):
            current = self._open.get((entity, day))
            if current is None:
                current = self._open[(entity, day)] = Day(day, end_t)
                heapq.heappush(self._closing, (end_t, day, entity))
            for name, value in values.items():
                current.totals[name] = current.totals.get(name, 0) + value
            if len(current.evidence) < self.max_evidence:
                current.evidence.append(source)
        done: list[tuple[str, Day[S]]] = []
        limit = watermark - self.grace_s
        while self._closing and self._closing[0][0] <= limit:
            _, d, who = heapq.heappop(self._closing)
            closed = self._open.pop((who, d), None)
            if closed is not None:
                done.append((who, closed))
                if d > self._closed_through.get(who, ""):
                    self._closed_through[who] = d
        return done
