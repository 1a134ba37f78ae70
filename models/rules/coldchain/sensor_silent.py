"""Sensor silent 传感器离线: a cold-chain logger that stops reporting — the absence of data is the event.

The GSP cold-chain annex expects a reading at least every 30 min in storage and every 5 min
in transport. When the event-time watermark of the device's partition (the newest reading
of any device there) passes the device's last reading plus its limit, the detector opens an
alert; when the device reports again it sends the same alert id ``closed`` with the length of
the gap. A gap noticed only when the device comes back (its partition was quiet too) is
reported then, already closed.

Which kinds are watched is configuration: vehicle loggers go quiet when a vehicle is parked,
so they are watched only where the feed says when trips run (off by default).

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([SensorSilentDetector()])
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

from dataclasses import dataclass, field
from typing import Any

from models.contracts.alert import Alert, Source, iso
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class SilenceLimits:
    """Configuration ``[coldchain.sensor_silent]``: minutes of silence allowed per device kind."""

    limits_minutes: dict[str, float] = field(default_factory=lambda: {"fridge": 30.0, "cold_room": 30.0})


class SensorSilentDetector(KeyedDetector):
    name = "coldchain.sensor_silent"
    version = "1"
    stream = "telemetry"
    Limits = SilenceLimits  # its configuration section [coldchain.sensor_silent]
    key, key_field = "device", "device_id"
    retention_s = 30 * 86400.0  # a logger silent for 30 days (retired, moved) is forgotten

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        t, last = event["_t"], ctx.state
        limit = self.limits.limits_minutes.get(event.get("device_kind", ""))
        if limit is None or (last and t <= last["t"]):
            return []
        alerts = []
        if last and (last["alerted"] or t - last["t"] > limit * 60):
            alerts.append(self._alert(ctx.key, last, t, limit, closed_by=source))
        # only what the alert texts need: never the whole reading
        last.update(t=t, device_kind=event.get("device_kind", "device"), facility_id=event["facility_id"],
                    region=event.get("region", "unknown"), temperature_c=event["temperature_c"],
                    source=list(source), alerted=False, limit=limit)
        ctx.set_timer(t + limit * 60)
        return alerts

    def on_timer(self, ctx: Context, tag: str, t: float) -> list[Alert]:
        last = ctx.state
        if not last or last["alerted"]:
            return []
        last["alerted"] = True
        return [self._alert(ctx.key, last, ctx.watermark, last["limit"])]

    def _alert(self, device: str, last: dict[str, Any], now: float, limit: float,
               closed_by: Source | None = None) -> Alert:
        minutes = (now - last["t"]) / 60
        name = f"{last['device_kind']} {device} at {last['facility_id']}"
        if closed_by is None:
            reason = f"{name}: no reading since {iso(last['t'])}, {minutes:.0f} min (limit {limit:g} min)"
        else:
            reason = (f"{name}: no reading for {minutes:.0f} min (limit {limit:g} min), "
                      f"from {iso(last['t'])} to {iso(now)}")
        return Alert.build(
            detector=self.name, version=self.version, key=f"{device}@{last['t']}",
            stream=self.stream, severity="medium", tier="safety", entity_kind="device", entity_id=device,
            institution_id=last["facility_id"], region=last["region"],
            event_t=last["t"] + limit * 60, score=minutes / limit, reason=reason,
            numbers={"last_reading": iso(last["t"]), "silent_minutes": round(minutes, 1), "limit_minutes": limit,
                     "last_temperature_c": last["temperature_c"]},
            evidence=[Source(*last["source"])] + ([closed_by] if closed_by else []),
            status="open" if closed_by is None else "closed",
        )
