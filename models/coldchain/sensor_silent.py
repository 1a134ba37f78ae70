"""Sensor silent 传感器离线: a cold-chain logger that stops reporting — the absence of data is the event.

The GSP cold-chain annex expects a reading at least every 30 min in storage and every 5 min
in transport. When the event-time watermark of the device's partition (the newest reading
of any device there) passes the device's last reading plus its limit, the detector opens an
alert; when the device reports again it sends the same alert id ``closed`` with the length of
the gap. A gap noticed only when the device comes back (its partition was quiet too) is
reported then, already closed.

Which kinds are watched is configuration: vehicle loggers go quiet when a vehicle is parked,
so they are watched only where the feed says when trips run (off by default).

>>> from models.alert import Source
>>> d = SensorSilentDetector()
>>> def reading(device, minute, offset):
...     e = {"device_id": device, "device_kind": "fridge", "facility_id": "CDC-1", "region": "310101",
...          "temperature_c": 5.0, "_t": 1767225600.0 + 60 * minute}
...     return d.process(e, Source("zhijian.telemetry", 0, offset, f"{device}@{minute}"))
>>> reading("F1", 0, 1), reading("F2", 0, 2), reading("F2", 20, 3)
([], [], [])
>>> [a] = reading("F2", 35, 4)               # F1 has been silent for 35 min
>>> a.entity_id, a.status, a.numbers["silent_minutes"]
('F1', 'open', 35.0)
>>> b, c = reading("F1", 95, 5)             # F1 is back; F2 has now been silent since minute 35
>>> b.alert_id == a.alert_id, b.status, b.numbers["silent_minutes"], (c.entity_id, c.status)
(True, 'closed', 95.0, ('F2', 'open'))
>>> print(b.reason)
fridge F1 at CDC-1: no reading for 95 min (limit 30 min), from 2026-01-01T00:00:00+00:00 to 2026-01-01T01:35:00+00:00
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from models.alert import Alert, Source, iso


@dataclass(frozen=True)
class SilenceLimits:
    """Configuration ``[coldchain.sensor_silent]``: minutes of silence allowed per device kind."""

    limits_minutes: dict[str, float] = field(default_factory=lambda: {"fridge": 30.0, "cold_room": 30.0})


@dataclass(slots=True)
class _Last:
    t: float
    event: dict[str, Any]
    source: Source
    alerted: bool = False


class SensorSilentDetector:
    name = "coldchain.sensor_silent"
    version = "1"
    stream = "telemetry"

    def __init__(self, limits: SilenceLimits | None = None) -> None:
        self.limits = limits or SilenceLimits()
        self._last: dict[str, _Last] = {}
        self._deadlines: dict[int, list[tuple[float, str, float]]] = {}  # partition → heap (deadline, device, last t)
        self._watermarks: dict[int, float] = {}

    def process(self, event: dict[str, Any], source: Source) -> list[Alert]:
        device, t = event["device_id"], event["_t"]
        limit = self.limits.limits_minutes.get(event.get("device_kind", ""))
        alerts: list[Alert] = []
        last = self._last.get(device)
        if limit is not None and (last is None or t > last.t):
            if last is not None and (last.alerted or t - last.t > limit * 60):
                alerts.append(self._alert(last, t, limit, closed_by=source))
            self._last[device] = _Last(t, event, source)
            heapq.heappush(self._deadlines.setdefault(source.partition, []), (t + limit * 60, device, t))
        if t > self._watermarks.get(source.partition, float("-inf")):
            self._watermarks[source.partition] = t
            heap = self._deadlines.get(source.partition, [])
            while heap and heap[0][0] < t:
                _, dev, last_t = heapq.heappop(heap)
                entry = self._last.get(dev)
                if entry is not None and entry.t == last_t and not entry.alerted:
                    entry.alerted = True
                    alerts.append(self._alert(entry, t, self.limits.limits_minutes[entry.event["device_kind"]]))
        return alerts

    def _alert(self, last: _Last, now: float, limit: float, closed_by: Source | None = None) -> Alert:
        e = last.event
        minutes = (now - last.t) / 60
        name = f"{e.get('device_kind', 'device')} {e['device_id']} at {e['facility_id']}"
        if closed_by is None:
            reason = f"{name}: no reading since {iso(last.t)}, {minutes:.0f} min (limit {limit:g} min)"
        else:
            reason = (f"{name}: no reading for {minutes:.0f} min (limit {limit:g} min), "
                      f"from {iso(last.t)} to {iso(now)}")
        return Alert.build(
            detector=self.name, version=self.version, key=f"{e['device_id']}@{last.t}",
            stream=self.stream, severity="medium", tier="safety", entity_kind="device", entity_id=e["device_id"],
            institution_id=e["facility_id"], region=e.get("region", "unknown"),
            event_t=last.t + limit * 60, score=minutes / limit, reason=reason,
            numbers={"last_reading": iso(last.t), "silent_minutes": round(minutes, 1), "limit_minutes": limit,
                     "last_temperature_c": e["temperature_c"]},
            evidence=[last.source] + ([closed_by] if closed_by else []),
            status="open" if closed_by is None else "closed",
        )
