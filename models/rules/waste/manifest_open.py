"""Manifest not closed 联单未闭环: waste handed over but never received, or received but never disposed.

A transfer manifest (转移联单) closes when the facility disposes of the waste. Handed over and
not received within the transport window means the waste is somewhere on the road; received
and not disposed within the disposal window means it is piling up at the facility. As for
storage overdue, the absence of an event is the event: the detector alerts when the
partition's event-time watermark passes the deadline (every event of a manifest shares its
partition). The entity is the carrier for a missing receipt, the facility for a missing
disposal; one alert per manifest and stage. The state remembers the latest stage reached, so a
manifest whose events arrive out of order (disposed before received) opens no wait for a stage it
has passed; it is forgotten with the key's retention.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([ManifestOpenDetector()])
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

from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source, iso
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class ManifestWindows:
    """Configuration ``[waste.manifest_not_closed]``."""

    transport_hours: float = 24.0  # handed over → received
    disposal_hours: float = 48.0  # received → disposed


#: What a manifest's state keeps of the event that opened the wait: the alert's text needs no more.
_KEPT = ("category", "weight_kg", "institution_id", "region", "carrier_id", "facility_id")
#: A manifest's life in order; events may arrive in any order (a batch upload, a replay).
STAGES = ("generated", "handed_over", "received", "disposed")


class ManifestOpenDetector(KeyedDetector):
    name = "waste.manifest_not_closed"
    version = "1"
    stream = "waste"
    Limits = ManifestWindows  # its configuration section [waste.manifest_not_closed]
    key, key_field = "manifest", "manifest_id"
    retention_s = 30 * 86400.0

    def __init__(self, windows: ManifestWindows | None = None) -> None:
        super().__init__(windows)
        self.windows = self.limits

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        t, kind, st = event["_t"], event["event_type"], ctx.state
        rank = STAGES.index(kind) if kind in STAGES else -1
        seen = max(st.get("seen", -1), rank)  # the latest stage this manifest has reached, in any arrival order
        if "stage" in st and seen >= STAGES.index(st["stage"]):
            ctx.cancel_timer(st["stage"])  # the awaited stage, or a later one (a step missed, or came late)
            self._forget_wait(st)
        st["seen"] = seen
        wait = {"handed_over": ("received", self.windows.transport_hours),
                "received": ("disposed", self.windows.disposal_hours)}.get(kind)
        if wait is not None and STAGES.index(wait[0]) > seen and st.get("stage") != wait[0]:
            if "stage" in st:
                ctx.cancel_timer(st["stage"])
            st.update({k: event.get(k) for k in _KEPT}, stage=wait[0], since_t=t, source=list(source))
            st["region"] = st["region"] or "unknown"
            ctx.set_timer(t + wait[1] * 3600, tag=wait[0])
        return []

    @staticmethod
    def _forget_wait(st: dict[str, Any]) -> None:
        for k in (*_KEPT, "stage", "since_t", "source"):
            st.pop(k, None)

    def on_timer(self, ctx: Context, tag: str, t: float) -> list[Alert]:
        st = ctx.state
        if st.get("stage") != tag:
            return []
        alert = self._alert(ctx.key, dict(st), ctx.watermark)
        self._forget_wait(st)  # what it has seen stays: a late receipt must not open the wait again
        return [alert]

    def _alert(self, manifest: str, e: dict[str, Any], now: float) -> Alert:
        hours = (now - e["since_t"]) / 3600
        if e["stage"] == "received":
            kind, entity = "carrier", e.get("carrier_id", "unknown")
            limit, done = self.windows.transport_hours, "handed over"
        else:
            kind, entity = "facility", e.get("facility_id", "unknown")
            limit, done = self.windows.disposal_hours, "received"
        reason = (f"{kind} {entity}: manifest {manifest} ({e['category']}, {e['weight_kg']:g} kg from "
                  f"{e['institution_id']}) {done} {iso(e['since_t'])}, not {e['stage']} after {hours:.1f} h "
                  f"(limit {limit:g} h)")
        return Alert.build(
            detector=self.name, version=self.version, key=f"{manifest}/{e['stage']}",
            stream=self.stream, severity="high", tier="violation", entity_kind=kind, entity_id=entity,
            institution_id=e["institution_id"], region=e["region"],
            event_t=now, score=hours / limit, reason=reason,
            numbers={"manifest_id": manifest, "stage": e["stage"], "since": iso(e["since_t"]),
                     "open_hours": round(hours, 2), "limit_hours": limit, "category": e["category"],
                     "weight_kg": e["weight_kg"], "carrier_id": e.get("carrier_id"),
                     "facility_id": e.get("facility_id")},
            evidence=[Source(*e["source"])],
        )
