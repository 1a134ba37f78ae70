"""Device status flags 设备状态 (门未关 / 断电 / 电量低) of fridges, cold rooms and vehicles.

Monitoring devices report more than a temperature: whether the door is open, whether the unit
runs on mains, on battery or has no power, and the logger's battery charge (WHO PQS E003 equipment
monitoring). Each condition is an episode, like an excursion — one alert when it has lasted its
limit (``open``), the same alert id again when it ends (``closed``, with its duration):

* ``power_loss``: the device reports ``power`` other than ``mains`` (on battery, or off) — any
  reading, at once: a fridge without power warms within hours, and the flag comes before the heat;
* ``door_open``: ``door_open`` true on every reading for ``door_open_minutes`` (30: a loading
  takes minutes; loggers read every 5–15 min, so a door seen open on readings half an hour apart
  was left open);
* ``battery_low``: ``battery_pct`` below ``battery_low_pct`` (20 %: the usual low-battery warning
  of loggers), ending when it is back at or above it.

A reading without a flag says nothing about it (the flags are optional): an episode goes on until a
reading says otherwise. Time between readings counts as the earlier reading's.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([DeviceStatusDetector()])
>>> def reading(minute, **flags):
...     e = {"device_id": "F1", "device_kind": "fridge", "facility_id": "CDC-1", "region": "310101",
...          "temperature_c": 5.0, "_t": 1767225600.0 + 60 * minute, **flags}
...     return [(a.numbers["condition"], a.status, a.numbers["minutes"])
...             for a in d.process(e, Source("zhijian.telemetry", 0, minute, f"F1@{minute}"))]
>>> reading(0, power="mains", door_open=True), reading(15, door_open=True)
([], [])
>>> reading(30, door_open=True, power="battery", battery_pct=18)
[('power_loss', 'open', 0.0), ('door_open', 'open', 30.0), ('battery_low', 'open', 0.0)]
>>> reading(45, door_open=False, power="mains")
[('power_loss', 'closed', 15.0), ('door_open', 'closed', 45.0)]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source, iso
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class StatusLimits:
    """``[coldchain.device_status]``; a limit set to a negative number turns its condition off."""

    power_loss_minutes: float = 0.0
    door_open_minutes: float = 30.0
    battery_low_pct: float = 20.0
    battery_low_minutes: float = 0.0
    # a gap between readings longer than this ends an open condition at its last reading: what happened in the
    # gap is unknown (a parked vehicle's logger, a silent device — silence has its own rule); as for excursions
    max_gap_minutes: float = 120.0


#: condition → (severity, what the reason says)
CONDITIONS = {
    "power_loss": ("high", "without mains power"),
    "door_open": ("medium", "door open"),
    "battery_low": ("low", "logger battery low"),
}


class DeviceStatusDetector(KeyedDetector):
    name = "coldchain.device_status"
    version = "1"
    stream = "telemetry"
    Limits = StatusLimits  # its configuration section [coldchain.device_status]
    key, key_field = "device", "device_id"
    retention_s = 30 * 86400.0  # a device silent for 30 days is forgotten, open episodes included

    def _states(self, event: dict[str, Any]) -> dict[str, bool]:
        """The conditions this reading says something about: condition → whether it holds."""
        out = {}
        if "power" in event:
            out["power_loss"] = event["power"] != "mains"
        if "door_open" in event:
            out["door_open"] = bool(event["door_open"])
        if "battery_pct" in event:
            out["battery_low"] = event["battery_pct"] < self.limits.battery_low_pct
        return out

    def _limit(self, condition: str) -> float:
        return getattr(self.limits, f"{condition}_minutes")

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        t, st = event["_t"], ctx.state
        if t <= st.get("last_t", t - 1):  # redelivered or late: already accounted for
            return []
        previous_t = st.get("last_t")
        st["last_t"] = t
        alerts: list[Alert] = []
        if previous_t is not None and t - previous_t > self.limits.max_gap_minutes * 60:
            for condition in list(CONDITIONS):  # not heard for too long: each condition ends where it was last seen
                ep = st.pop(condition, None)
                if ep is not None and ep["alerted"]:
                    alerts.append(self._alert(event, condition, ep, (previous_t - ep["since"]) / 60.0,
                                              Source(*ep["last"]), "closed", end_t=previous_t))
        for condition, holds in self._states(event).items():
            limit = self._limit(condition)
            if limit < 0:
                continue
            ep = st.get(condition)
            if ep is None and holds:
                ep = st[condition] = {"since": t, "source": list(source), "readings": 0, "alerted": False}
            if ep is None:
                continue
            minutes = (t - ep["since"]) / 60.0
            if not holds:
                if ep["alerted"]:
                    alerts.append(self._alert(event, condition, ep, minutes, source, "closed"))
                del st[condition]
                continue
            ep["readings"] += 1
            ep["last"] = list(source)
            if "battery_pct" in event:
                ep["battery_pct"] = min(ep.get("battery_pct", 100.0), event["battery_pct"])
            if event.get("power") in ("battery", "off") and ep.get("power") != "off":
                ep["power"] = event["power"]  # "off" is the worse of the two
            if not ep["alerted"] and minutes >= limit:
                ep["alerted"] = True
                alerts.append(self._alert(event, condition, ep, minutes, source, "open"))
        return alerts

    def _alert(self, event: dict[str, Any], condition: str, ep: dict[str, Any], minutes: float, source: Source,
               status: str, end_t: float | None = None) -> Alert:
        severity, what = CONDITIONS[condition]
        numbers: dict[str, Any] = {"condition": condition, "since": iso(ep["since"]), "minutes": round(minutes, 1),
                                   "limit_minutes": self._limit(condition), "readings": ep["readings"]}
        if condition == "power_loss":
            numbers["power"] = ep.get("power")
        if condition == "battery_low":
            numbers.update(battery_pct=ep.get("battery_pct"), limit_pct=self.limits.battery_low_pct)
        name = f"{event.get('device_kind', 'device')} {event['device_id']} at {event['facility_id']}"
        if status == "open":
            reason = f"{name}: {what} since {iso(ep['since'])}" + (f" ({minutes:.0f} min)" if minutes else "")
        else:
            reason = f"{name}: {what} for {minutes:.0f} min, ended {iso(end_t or event['_t'])}"
            if end_t is not None:
                numbers["ended_by_gap"] = True
        start = Source(*ep["source"])
        return Alert.build(
            detector=self.name, version=self.version, key=f"{condition}@{ep['since']}", stream=self.stream,
            severity=severity, tier="safety", entity_kind="device", entity_id=event["device_id"],
            institution_id=event["facility_id"], region=event.get("region", "unknown"), event_t=ep["since"],
            score=1.0 + minutes / max(self._limit(condition), 60.0), reason=reason, numbers=numbers, status=status,
            evidence=[start] if source == start else [start, source],
        )
