"""Manifest not closed 联单未闭环: waste handed over but never received, or received but never disposed.

A transfer manifest (转移联单) closes when the facility disposes of the waste. Handed over and
not received within the transport window means the waste is somewhere on the road; received
and not disposed within the disposal window means it is piling up at the facility. As for
storage overdue, the absence of an event is the event: the detector alerts when the
partition's event-time watermark passes the deadline (every event of a manifest shares its
partition). The entity is the carrier for a missing receipt, the facility for a missing
disposal; one alert per manifest and stage.

>>> from models.alert import Source
>>> d = ManifestOpenDetector()
>>> def ev(manifest, kind, hours, offset):
...     e = {"manifest_id": manifest, "event_type": kind, "institution_id": "H1", "region": "310101",
...          "category": "sharps", "weight_kg": 4.0, "container_count": 1, "carrier_id": "CR-1",
...          "facility_id": "FAC-2", "_t": 1767225600.0 + 3600 * hours}
...     return d.process(e, Source("zhijian.waste", 0, offset, f"{manifest}/{kind}"))
>>> ev("M1", "handed_over", 0, 1), ev("M2", "handed_over", 1, 2), ev("M2", "received", 3, 3)
([], [], [])
>>> [a] = ev("M3", "generated", 25, 4)       # the watermark passes M1's 24 h transport window
>>> a.entity_kind, a.entity_id, a.numbers["stage"], a.numbers["open_hours"]
('carrier', 'CR-1', 'received', 25.0)
>>> print(a.reason)
carrier CR-1: manifest M1 (sharps, 4 kg from H1) handed over 2026-01-01T00:00:00+00:00, not received after 25.0 h (limit 24 h)
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from models.alert import Alert, Source, iso


@dataclass(frozen=True)
class ManifestWindows:
    """Configuration ``[waste.manifest_not_closed]``."""

    transport_hours: float = 24.0  # handed over → received
    disposal_hours: float = 48.0  # received → disposed


@dataclass(slots=True)
class _Open:
    stage: str  # the event awaited: received | disposed
    since_t: float
    event: dict[str, Any]
    source: Source


class ManifestOpenDetector:
    name = "waste.manifest_not_closed"
    version = "1"
    stream = "waste"
    Limits = ManifestWindows  # its configuration section [waste.manifest_not_closed]

    def __init__(self, windows: ManifestWindows | None = None) -> None:
        self.windows = windows or ManifestWindows()
        self._open: dict[str, _Open] = {}
        self._deadlines: dict[int, list[tuple[float, str, str]]] = {}  # partition → heap (deadline, manifest, stage)
        self._watermarks: dict[int, float] = {}

    def process(self, event: dict[str, Any], source: Source) -> list[Alert]:
        t, manifest, kind = event["_t"], event["manifest_id"], event["event_type"]
        wait = {"handed_over": ("received", self.windows.transport_hours),
                "received": ("disposed", self.windows.disposal_hours)}.get(kind)
        current = self._open.get(manifest)
        if current is not None and (kind == "disposed" or (kind == "received" and current.stage == "received")):
            del self._open[manifest]  # disposal closes the manifest whatever step was missed
            current = None
        if wait is not None and (current is None or current.stage != wait[0]):
            self._open[manifest] = _Open(wait[0], t, event, source)
            heapq.heappush(self._deadlines.setdefault(source.partition, []), (t + wait[1] * 3600, manifest, wait[0]))
        alerts: list[Alert] = []
        if t > self._watermarks.get(source.partition, float("-inf")):
            self._watermarks[source.partition] = t
            heap = self._deadlines.get(source.partition, [])
            while heap and heap[0][0] < t:
                _, m, stage = heapq.heappop(heap)
                o = self._open.get(m)
                if o is not None and o.stage == stage:
                    del self._open[m]
                    alerts.append(self._alert(m, o, t))
        return alerts

    def _alert(self, manifest: str, o: _Open, now: float) -> Alert:
        e = o.event
        hours = (now - o.since_t) / 3600
        if o.stage == "received":
            kind, entity = "carrier", e.get("carrier_id", "unknown")
            limit, done = self.windows.transport_hours, "handed over"
        else:
            kind, entity = "facility", e.get("facility_id", "unknown")
            limit, done = self.windows.disposal_hours, "received"
        reason = (f"{kind} {entity}: manifest {manifest} ({e['category']}, {e['weight_kg']:g} kg from "
                  f"{e['institution_id']}) {done} {iso(o.since_t)}, not {o.stage} after {hours:.1f} h "
                  f"(limit {limit:g} h)")
        return Alert.build(
            detector=self.name, version=self.version, key=f"{manifest}/{o.stage}",
            stream=self.stream, severity="high", tier="violation", entity_kind=kind, entity_id=entity,
            institution_id=e["institution_id"], region=e.get("region", "unknown"),
            event_t=now, score=hours / limit, reason=reason,
            numbers={"manifest_id": manifest, "stage": o.stage, "since": iso(o.since_t),
                     "open_hours": round(hours, 2), "limit_hours": limit, "category": e["category"],
                     "weight_kg": e["weight_kg"], "carrier_id": e.get("carrier_id"),
                     "facility_id": e.get("facility_id")},
            evidence=[o.source],
        )
