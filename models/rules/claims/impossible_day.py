"""Impossible day 超时计费: a doctor bills more than 24 hours of timed services in one day.

Time-billed items a doctor performs in person (physiotherapy, acupuncture, psychotherapy …)
carry ``billed_minutes``; their sum per doctor and service day cannot exceed the day. Only
outpatient and emergency claims count by default: an inpatient claim bills a whole stay at
discharge, and its timed items (monitoring by the hour) are a device's time, not the
doctor's. One alert per doctor and day, raised by the claim that crosses the line; the
entity is the doctor (医保医师). A doctor's claims come from every partition of the claim topic (keyed by
patient), so the detector is re-keyed by doctor (:mod:`models.engine.rekey`); a service day is forgotten
``retention_days`` after it ended.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> rt = Runtime([ImpossibleDayDetector()])
>>> def claim(n, minutes):
...     e = {"claim_id": f"CL{n}", "claim_type": "outpatient", "doctor_id": "H2-D05", "institution_id": "H2", "event_time": "2026-10-14T09:00:00+08:00",
...          "items": [{"item_code": "PHYSIO", "billed_minutes": minutes}], "_t": 1791939600.0 + n}
...     return rt.process(e, Source("zhijian.claims", 0, n, f"CL{n}"))
>>> [x for n in range(23) for x in claim(n, 60)]
[]
>>> [a] = claim(23, 90)
>>> a.entity_kind, a.entity_id, a.numbers["billed_hours"], a.numbers["claims"]
('doctor', 'H2-D05', 24.5, 24)
>>> claim(23, 90), claim(24, 60)            # a redelivered claim, and more the same day: reported once
([], [])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.contracts.alert import Alert, Source
from models.rules.anomaly.daily import DAY_S, day_of
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class DayLimit:
    """Configuration ``[claim.impossible_day]``."""

    max_hours_per_day: float = 24.0
    retention_days: int = 3
    claim_types: list[str] = field(default_factory=lambda: ["outpatient", "emergency"])


class ImpossibleDayDetector(KeyedDetector):
    name = "claim.impossible_day"
    version = "1"
    stream = "claim"
    Limits = DayLimit  # its configuration section [claim.impossible_day]
    key = "doctor"
    key_field = "doctor_id"
    fields = ("claim_id", "claim_type", "doctor_id", "institution_id", "region", "event_time", "items")

    def key_of(self, event: dict[str, Any]) -> str | None:
        if event["claim_type"] not in self.limits.claim_types or not event.get("doctor_id"):
            return None
        return event["doctor_id"]

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        settled = event["event_time"][:10]
        per_day: dict[str, float] = {}
        for it in event["items"]:
            if it.get("billed_minutes"):
                day = it.get("service_date") or settled
                per_day[day] = per_day.get(day, 0.0) + it["billed_minutes"]
        alerts = []
        for day, minutes in sorted(per_day.items()):
            kept = ctx.state.get(day)
            if kept is None:
                _, end_t = day_of(day + event["event_time"][10:])
                if end_t + self.limits.retention_days * DAY_S < ctx.watermark:
                    continue  # a day long forgotten
                kept = ctx.state[day] = {"minutes": 0.0, "claims": [], "evidence": [], "alerted": False}
                ctx.set_timer(end_t + self.limits.retention_days * DAY_S, day)
            if event["claim_id"] in kept["claims"]:
                continue  # redelivered
            kept["claims"].append(event["claim_id"])
            kept["minutes"] += minutes
            if len(kept["evidence"]) < 50:
                kept["evidence"].append(list(source))
            if not kept["alerted"] and kept["minutes"] > self.limits.max_hours_per_day * 60:
                kept["alerted"] = True
                alerts.append(self._alert(event, day, kept))
        return alerts

    def on_timer(self, ctx: Context, tag: str, t: float) -> list[Alert]:
        ctx.state.pop(tag, None)  # the retention after the day is over
        return []

    def _alert(self, event: dict[str, Any], day: str, kept: dict[str, Any]) -> Alert:
        hours = kept["minutes"] / 60
        limit = self.limits.max_hours_per_day
        reason = (f"doctor {event['doctor_id']} ({event['institution_id']}) billed {hours:.1f} h of timed services "
                  f"on {day} over {len(kept['claims'])} claims, more than the {limit:g} h in a day")
        return Alert.build(
            detector=self.name, version=self.version, key=f"{event['doctor_id']}|{day}",
            stream=self.stream, severity="high", tier="fraud", entity_kind="doctor", entity_id=event["doctor_id"],
            institution_id=event["institution_id"], region=event.get("region", "unknown"),
            event_t=event["_t"], score=hours / limit, reason=reason,
            numbers={"service_date": day, "billed_hours": round(hours, 2), "limit_hours": limit,
                     "claims": len(kept["claims"])},
            evidence=[Source(*s) for s in kept["evidence"]],
        )
