"""Temperature excursions 温度超标 of vaccine fridges, cold rooms and vehicles.

An *excursion* is one period a device spends out of the 2–8 °C storage range, with a
start, an end, a peak and a duration — not one alert per reading. The detector raises:

* ``coldchain.excursion`` when an excursion opens (status ``open``) and the same alert
  id again when it ends (status ``closed``, with end, peak and duration);
* an excursion also ends at its last reading when the next comes after more than ``max_gap_minutes``
  (what happened in between is unknown; the silence has its own rule);
* ``coldchain.breach`` once per excursion when it lasts past the alarm limit:
  above +8 °C for 10 h (WHO PQS E006 30-day recorder; 30 min is a stricter local option)
  or at/below −0.5 °C for 60 min (freezing destroys adsorbed vaccines).

Excursions and breaches are kept apart, as mSupply's users asked.

>>> from models.alert import Source
>>> from models.runtime import Runtime
>>> d = Runtime([ExcursionDetector(ExcursionLimits(heat_breach_minutes=30))])
>>> def reading(minute, temp):
...     e = {"device_id": "F1", "device_kind": "fridge", "facility_id": "CDC-1", "region": "310101",
...          "temperature_c": temp, "_t": 1767225600.0 + 60 * minute}
...     return d.process(e, Source("zhijian.telemetry", 0, minute, f"F1@{minute}"))
>>> reading(0, 5.0)
[]
>>> [(a.detector, a.status) for a in reading(5, 9.5)]
[('coldchain.excursion', 'open')]
>>> [(a.detector, a.numbers["duration_minutes"]) for a in reading(35, 11.0)]
[('coldchain.breach', 30.0)]
>>> closed = reading(50, 6.0)[0]
>>> closed.status, closed.numbers["peak_c"], closed.numbers["duration_minutes"]
('closed', 11.0, 45.0)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.alert import Alert, Source, iso
from models.detector import Context, KeyedDetector


@dataclass(frozen=True)
class ExcursionLimits:
    """Alarm limits; every value is configuration (``[coldchain.excursion]``)."""

    heat_above_c: float = 8.0
    heat_breach_minutes: float = 600.0
    freeze_at_or_below_c: float = -0.5
    freeze_breach_minutes: float = 60.0
    # A gap between readings longer than this ends an open excursion at its last reading: what happened in the
    # gap is unknown (sensor silence has its own rule). Two hours: loggers record every 5–60 minutes.
    max_gap_minutes: float = 120.0


class _Excursion:
    """A view of the excursion kept in the device's state (a dict of JSON values)."""

    __slots__ = ("d",)

    def __init__(self, d: dict[str, Any]) -> None:
        self.d = d

    kind = property(lambda self: self.d["kind"])
    start_t = property(lambda self: self.d["start_t"])
    start_source = property(lambda self: Source(*self.d["start_source"]))
    peak = property(lambda self: self.d["peak"])
    readings = property(lambda self: self.d["readings"])
    breached = property(lambda self: self.d["breached"])


class ExcursionDetector(KeyedDetector):
    name = "coldchain.excursion"
    version = "1"
    stream = "telemetry"
    Limits = ExcursionLimits  # its configuration section [coldchain.excursion]
    key, key_field = "device", "device_id"
    retention_s = 30 * 86400.0  # a device silent for 30 days is forgotten, open excursion included

    def _kind(self, temp: float) -> str | None:
        if temp > self.limits.heat_above_c:
            return "heat"
        if temp <= self.limits.freeze_at_or_below_c:
            return "freeze"
        return None

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        t, temp, st = event["_t"], event["temperature_c"], ctx.state
        if t <= st.get("last_t", t - 1):  # a redelivered or late reading: already accounted for
            return []
        previous_t = st.get("last_t")
        st["last_t"] = t
        kind = self._kind(temp)
        exc = st.get("excursion")
        alerts: list[Alert] = []
        if exc is not None and previous_t is not None and t - previous_t > self.limits.max_gap_minutes * 60:
            # the device was not heard for longer than the gap limit: the excursion ends where it was last seen
            last = exc.get("last_source") or exc["start_source"]
            alerts.append(self._alert(event, _Excursion(exc), end_t=exc["last_t"], end_source=Source(*last),
                                      gap_minutes=(t - previous_t) / 60))
            st["excursion"] = exc = None
        if exc is not None and exc["kind"] != kind:
            alerts.append(self._alert(event, _Excursion(exc), end_t=t, end_source=source))
            st["excursion"] = exc = None
        if kind is None:
            return alerts
        if exc is None:
            exc = st["excursion"] = {"kind": kind, "start_t": t, "start_source": list(source), "peak": temp,
                                     "last_t": t, "readings": 1, "breached": False}
            alerts.append(self._alert(event, _Excursion(exc)))
            return alerts
        exc["last_t"] = t
        exc["last_source"] = list(source)
        exc["readings"] += 1
        exc["peak"] = max(exc["peak"], temp) if kind == "heat" else min(exc["peak"], temp)
        limit = self.limits.heat_breach_minutes if kind == "heat" else self.limits.freeze_breach_minutes
        minutes = (t - exc["start_t"]) / 60.0
        if not exc["breached"] and minutes >= limit:
            exc["breached"] = True
            alerts.append(self._breach(event, _Excursion(exc), minutes, limit, source))
        return alerts

    def _describe(self, event: dict[str, Any], exc: _Excursion) -> tuple[str, float, str]:
        if exc.kind == "heat":
            return f"above {self.limits.heat_above_c:g} °C", self.limits.heat_above_c, "medium"
        return f"at or below {self.limits.freeze_at_or_below_c:g} °C", self.limits.freeze_at_or_below_c, "high"

    def _common(self, event: dict[str, Any], exc: _Excursion) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "tier": "safety",
            "entity_kind": "device",
            "entity_id": event["device_id"],
            "institution_id": event["facility_id"],
            "region": event.get("region", "unknown"),
            "event_t": exc.start_t,
        }

    def _alert(self, event: dict[str, Any], exc: _Excursion, end_t: float | None = None,
               end_source: Source | None = None, gap_minutes: float | None = None) -> Alert:
        where, limit, severity = self._describe(event, exc)
        numbers: dict[str, Any] = {"kind": exc.kind, "limit_c": limit, "peak_c": exc.peak,
                                   "start": iso(exc.start_t), "readings": exc.readings}
        evidence = [exc.start_source]
        kind_name = event.get("device_kind", "device")
        if end_t is None:
            status = "open"
            reason = (f"{kind_name} {event['device_id']} at {event['facility_id']}: {exc.peak:.1f} °C, "
                      f"{where} since {iso(exc.start_t)}")
        else:
            status = "closed"
            minutes = (end_t - exc.start_t) / 60.0
            numbers.update(end=iso(end_t), duration_minutes=round(minutes, 1), breached=exc.breached)
            if gap_minutes is not None:
                numbers["ended_by_gap_minutes"] = round(gap_minutes, 1)
            evidence = [exc.start_source, end_source] if end_source else evidence
            reason = (f"{kind_name} {event['device_id']} at {event['facility_id']}: excursion {where} "
                      f"ended after {minutes:.0f} min, peak {exc.peak:.1f} °C")
        score = abs(exc.peak - limit) + 1.0
        return Alert.build(detector=self.name, version=self.version, key=f"{exc.kind}@{exc.start_t}",
                           severity=severity, score=score, reason=reason, numbers=numbers,
                           evidence=evidence, status=status, **self._common(event, exc))

    def _breach(self, event: dict[str, Any], exc: _Excursion, minutes: float, limit_minutes: float,
                source: Source) -> Alert:
        where, limit, _ = self._describe(event, exc)
        severity = "high" if exc.kind == "heat" else "critical"
        reason = (f"{event.get('device_kind', 'device')} {event['device_id']} at {event['facility_id']}: "
                  f"{minutes:.0f} min {where} (alarm limit {limit_minutes:g} min), peak {exc.peak:.1f} °C")
        numbers = {"kind": exc.kind, "limit_c": limit, "peak_c": exc.peak, "start": iso(exc.start_t),
                   "duration_minutes": round(minutes, 1), "limit_minutes": limit_minutes}
        return Alert.build(detector="coldchain.breach", version=self.version, key=f"{exc.kind}@{exc.start_t}",
                           severity=severity, score=minutes / limit_minutes, reason=reason, numbers=numbers,
                           evidence=[exc.start_source, source],
                           **{**self._common(event, exc), "event_t": event["_t"]})
