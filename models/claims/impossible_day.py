"""Impossible day 超时计费: a doctor bills more than 24 hours of timed services in one day.

Time-billed items a doctor performs in person (physiotherapy, acupuncture, psychotherapy …)
carry ``billed_minutes``; their sum per doctor and service day cannot exceed the day. Only
outpatient and emergency claims count by default: an inpatient claim bills a whole stay at
discharge, and its timed items (monitoring by the hour) are a device's time, not the
doctor's. One alert per doctor and day, raised by the claim that crosses the line; the
entity is the doctor (医保医师).

>>> from models.alert import Source
>>> d = ImpossibleDayDetector()
>>> def claim(n, minutes):
...     e = {"claim_id": f"CL{n}", "claim_type": "outpatient", "doctor_id": "H2-D05", "institution_id": "H2", "event_time": "2026-10-14T09:00:00+08:00",
...          "items": [{"item_code": "PHYSIO", "billed_minutes": minutes}], "_t": 1791939600.0 + n}
...     return d.process(e, Source("zhijian.claims", 0, n, f"CL{n}"))
>>> [x for n in range(23) for x in claim(n, 60)]
[]
>>> [a] = claim(23, 90)
>>> a.entity_kind, a.entity_id, a.numbers["billed_hours"], a.numbers["claims"]
('doctor', 'H2-D05', 24.5, 24)
>>> claim(23, 90), claim(24, 60)            # a redelivered claim, and more the same day: reported once
([], [])
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from models.alert import Alert, Source


@dataclass(frozen=True)
class DayLimit:
    """Configuration ``[claim.impossible_day]``."""

    max_hours_per_day: float = 24.0
    retention_days: int = 3
    claim_types: list[str] = field(default_factory=lambda: ["outpatient", "emergency"])


@dataclass(slots=True)
class _Day:
    minutes: float = 0.0
    claims: set[str] = field(default_factory=set)
    evidence: list[Source] = field(default_factory=list)
    alerted: bool = False


class ImpossibleDayDetector:
    name = "claim.impossible_day"
    version = "1"
    stream = "claim"
    Limits = DayLimit  # its configuration section [claim.impossible_day]

    def __init__(self, limit: DayLimit | None = None) -> None:
        self.limit = limit or DayLimit()
        self._days: dict[tuple[str, str], _Day] = {}
        self._order: deque[tuple[str, tuple[str, str]]] = deque()  # (day, key) in arrival order
        self._partition_days: dict[int, str] = {}  # partition → newest settlement day seen

    def process(self, event: dict[str, Any], source: Source) -> list[Alert]:
        if event["claim_type"] not in self.limit.claim_types:
            return []
        settled = event["event_time"][:10]
        if settled > self._partition_days.get(source.partition, ""):
            self._partition_days[source.partition] = settled
        per_day: dict[str, float] = {}
        for it in event["items"]:
            if it.get("billed_minutes"):
                day = it.get("service_date") or settled
                per_day[day] = per_day.get(day, 0.0) + it["billed_minutes"]
        alerts = []
        for day, minutes in per_day.items():
            key = (event["doctor_id"], day)
            state = self._days.get(key)
            if state is None:
                state = self._days[key] = _Day()
                self._order.append((day, key))
                self._expire(min(self._partition_days.values()))
            if event["claim_id"] in state.claims:
                continue  # redelivered
            state.claims.add(event["claim_id"])
            state.minutes += minutes
            if len(state.evidence) < 50:
                state.evidence.append(source)
            if not state.alerted and state.minutes > self.limit.max_hours_per_day * 60:
                state.alerted = True
                alerts.append(self._alert(event, day, state))
        return alerts

    def _expire(self, newest: str) -> None:
        """Forget the days older than the retention before the slowest partition's newest day: a doctor's
        claims come from every partition, and one read ahead must not wipe another's running total."""
        from datetime import date, timedelta

        horizon = (date.fromisoformat(newest) - timedelta(days=self.limit.retention_days)).isoformat()
        while self._order and self._order[0][0] < horizon:
            self._days.pop(self._order.popleft()[1], None)

    def _alert(self, event: dict[str, Any], day: str, state: _Day) -> Alert:
        hours = state.minutes / 60
        limit = self.limit.max_hours_per_day
        reason = (f"doctor {event['doctor_id']} ({event['institution_id']}) billed {hours:.1f} h of timed services "
                  f"on {day} over {len(state.claims)} claims, more than the {limit:g} h in a day")
        return Alert.build(
            detector=self.name, version=self.version, key=f"{event['doctor_id']}|{day}",
            stream=self.stream, severity="high", tier="fraud", entity_kind="doctor", entity_id=event["doctor_id"],
            institution_id=event["institution_id"], region=event.get("region", "unknown"),
            event_t=event["_t"], score=hours / limit, reason=reason,
            numbers={"service_date": day, "billed_hours": round(hours, 2), "limit_hours": limit,
                     "claims": len(state.claims)},
            evidence=list(state.evidence),
        )
