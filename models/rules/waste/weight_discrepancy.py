"""Weight discrepancy 转移重量差异: waste received at the facility weighs less (or more) than handed over.

A significant discrepancy (after US 40 CFR 264.72) is a difference of more than 10 % by weight
for bulk waste, or any difference in the number of containers. Waste that vanishes between
the hospital and the incinerator is how illegal dumping and trading of medical waste show up.
One alert per manifest; the entity is the carrier that held the waste.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([WeightDiscrepancyDetector()])
>>> def ev(kind, weight, containers=3, hours=0):
...     e = {"manifest_id": "M1", "event_type": kind, "institution_id": "H1", "region": "310101",
...          "category": "infectious", "weight_kg": weight, "container_count": containers,
...          "carrier_id": "CR-2", "facility_id": "FAC-1", "_t": 1767225600.0 + 3600 * hours}
...     return d.process(e, Source("zhijian.waste", 0, hours, f"M1/{kind}"))
>>> ev("handed_over", 40.0)
[]
>>> [a] = ev("received", 34.0, hours=2)
>>> a.entity_id, a.numbers["missing_kg"], a.numbers["difference_pct"]
('CR-2', 6.0, -15.0)
>>> print(a.reason)
carrier CR-2: manifest M1 (infectious) handed over at 40 kg by H1, received at 34 kg by FAC-1: -15.0 % (limit ±10 %)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class WeightLimits:
    """Configuration ``[waste.weight_discrepancy]``."""

    max_difference_pct: float = 10.0
    containers_must_match: bool = True


@dataclass(slots=True)
class _Handover:
    weight: float
    containers: int
    carrier: str
    source: Source


class WeightDiscrepancyDetector(KeyedDetector):
    name = "waste.weight_discrepancy"
    version = "1"
    stream = "waste"
    Limits = WeightLimits  # its configuration section [waste.weight_discrepancy]
    key, key_field = "manifest", "manifest_id"
    retention_s = 30 * 86400.0  # handed over and never received: the unclosed-manifest rule reports it

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        kind, manifest, st = event["event_type"], ctx.key, ctx.state
        if kind == "handed_over":
            st.update(weight=event["weight_kg"], containers=event["container_count"],
                      carrier=event.get("carrier_id", "unknown"), source=list(source))
            return []
        if kind != "received":
            if kind == "disposed":
                st.clear()
            return []
        if not st:
            return []
        h = _Handover(st["weight"], st["containers"], st["carrier"], Source(*st["source"]))
        st.clear()
        if h.weight <= 0:
            return []
        got = event["weight_kg"]
        pct = 100.0 * (got - h.weight) / h.weight
        containers_differ = self.limits.containers_must_match and event["container_count"] != h.containers
        if abs(pct) <= self.limits.max_difference_pct and not containers_differ:
            return []
        carrier = event.get("carrier_id") or h.carrier
        what = f"{pct:+.1f} % (limit ±{self.limits.max_difference_pct:g} %)"
        if containers_differ:
            what += f", {h.containers} containers handed over, {event['container_count']} received"
        reason = (f"carrier {carrier}: manifest {manifest} ({event['category']}) handed over at {h.weight:g} kg by "
                  f"{event['institution_id']}, received at {got:g} kg by {event.get('facility_id', 'unknown')}: {what}")
        return [Alert.build(
            detector=self.name, version=self.version, key=manifest,
            stream=self.stream, severity="high" if pct < -2 * self.limits.max_difference_pct else "medium",
            tier="violation", entity_kind="carrier", entity_id=carrier,
            institution_id=event["institution_id"], region=event.get("region", "unknown"),
            event_t=event["_t"], score=abs(pct) / self.limits.max_difference_pct, reason=reason,
            numbers={"manifest_id": manifest, "category": event["category"], "handed_over_kg": h.weight,
                     "received_kg": got, "missing_kg": round(h.weight - got, 3), "difference_pct": round(pct, 2),
                     "handed_over_containers": h.containers, "received_containers": event["container_count"],
                     "facility_id": event.get("facility_id")},
            evidence=[h.source, source],
        )]
