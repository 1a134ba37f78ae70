"""Storage overdue 超时贮存: medical waste kept longer than 48 h before handover.

医疗废物管理条例 Art. 17 limits temporary storage to 2 days. The detector follows each
manifest from ``generated`` to ``handed_over``. It alerts when the handover comes too late,
or — the absence of an event being the event — as soon as the event-time watermark (the
newest event time seen) passes the limit with no handover at all. Both paths give the same
alert id, so a manifest is reported once.

State lives under the manifest; the deadline is a runtime timer. The runtime keeps one
watermark per input partition: every event of a manifest shares its partition (the manifest id
is the key), while partitions are consumed at uneven speeds — one read ahead must not declare
the manifests of a lagging one overdue.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import PartitionedRuntime
>>> d = PartitionedRuntime([StorageOverdueDetector()])
>>> def ev(kind, hours, offset, manifest="M1"):
...     e = {"manifest_id": manifest, "event_type": kind, "institution_id": "H1", "region": "310101",
...          "category": "infectious", "weight_kg": 12.5, "container_count": 2,
...          "_t": 1767225600.0 + 3600 * hours}
...     return d.process(e, Source("zhijian.waste", 0, offset, f"{manifest}/{kind}"))
>>> ev("generated", 0, 1)
[]
>>> ev("generated", 10, 2, manifest="M2")
[]
>>> [a] = ev("handed_over", 50, 3)
>>> print(a.reason)
institution H1 kept manifest M1 (infectious, 12.5 kg) 50.0 h before handover, limit 48 h
>>> [a] = ev("generated", 60, 4, manifest="M3")   # the watermark passes M2's deadline
>>> a.numbers["manifest_id"], a.numbers["handed_over"]
('M2', False)
>>> d.process({"manifest_id": "M4", "event_type": "generated", "institution_id": "H1", "category": "sharps",
...            "weight_kg": 1.0, "container_count": 1, "_t": 1767225600.0 + 3600 * 200},
...           Source("zhijian.waste", 1, 9, "M4/generated"))  # partition 1 far ahead: M3 is not overdue
[]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.contracts.alert import Alert, Source, iso
from models.engine.detector import Context, KeyedDetector


@dataclass(slots=True)
class _Pending:
    generated_t: float
    institution_id: str
    region: str
    category: str
    weight_kg: float
    source: Source


@dataclass(frozen=True)
class StorageLimits:
    """Configuration ``[waste.storage_overdue]``."""

    max_storage_hours: float = 48.0


class StorageOverdueDetector(KeyedDetector):
    name = "waste.storage_overdue"
    version = "1"
    stream = "waste"
    Limits = StorageLimits  # its configuration section [waste.storage_overdue]
    key, key_field = "manifest", "manifest_id"
    retention_s = 30 * 86400.0  # a manifest generated, reported and never disposed of is forgotten after 30 d

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        t, st = event["_t"], ctx.state
        limit_s = self.limits.max_storage_hours * 3600
        kind = event["event_type"]
        if kind == "generated":
            if "generated_t" not in st and not st.get("reported") and not st.get("later"):
                st.update(generated_t=t, institution_id=event["institution_id"],
                          region=event.get("region", "unknown"), category=event["category"],
                          weight_kg=event["weight_kg"], source=list(source))
                ctx.set_timer(t + limit_s)
            return []
        if kind == "disposed":
            st.clear()  # the manifest's life is over: forget it, but for having seen a later stage
            st["later"] = True
            ctx.cancel_timer()
            return []
        if "generated_t" not in st:
            st["later"] = True  # handed over before its generation arrived: no storage wait when it does
            return []
        st["later"] = True
        ctx.cancel_timer()
        pending = {k: st.pop(k) for k in ("generated_t", "institution_id", "region", "category", "weight_kg",
                                          "source")}
        if kind == "handed_over" and t - pending["generated_t"] > limit_s:
            st["reported"] = True  # until the manifest is disposed of
            return [self._alert(ctx.key, pending, t, source)]
        return []

    def on_timer(self, ctx: Context, tag: str, t: float) -> list[Alert]:
        st = ctx.state
        if "generated_t" not in st:
            return []
        pending = {k: st.pop(k) for k in ("generated_t", "institution_id", "region", "category", "weight_kg",
                                          "source")}
        st["reported"] = True
        return [self._alert(ctx.key, pending, None, None, ctx.watermark)]

    def _alert(self, manifest: str, pending: dict[str, Any], handed_t: float | None, source: Source | None,
               watermark: float = 0.0) -> Alert:
        p = _Pending(pending["generated_t"], pending["institution_id"], pending["region"], pending["category"],
                     pending["weight_kg"], Source(*pending["source"]))
        limit_h = self.limits.max_storage_hours
        if handed_t is None:
            hours = (watermark - p.generated_t) / 3600
            reason = (f"institution {p.institution_id}: manifest {manifest} ({p.category}, {p.weight_kg:g} kg) "
                      f"generated {iso(p.generated_t)} not handed over after {hours:.1f} h, limit {limit_h:g} h")
            evidence = [p.source]
        else:
            hours = (handed_t - p.generated_t) / 3600
            reason = (f"institution {p.institution_id} kept manifest {manifest} ({p.category}, {p.weight_kg:g} kg) "
                      f"{hours:.1f} h before handover, limit {limit_h:g} h")
            evidence = [p.source, source] if source else [p.source]
        return Alert.build(
            detector=self.name, version=self.version, key=manifest,
            stream=self.stream, severity="high" if hours > 2 * limit_h else "medium", tier="violation",
            entity_kind="institution", entity_id=p.institution_id,
            institution_id=p.institution_id, region=p.region,
            event_t=handed_t if handed_t is not None else watermark,
            score=hours / limit_h, reason=reason,
            numbers={"manifest_id": manifest, "category": p.category, "weight_kg": p.weight_kg,
                     "generated": iso(p.generated_t), "stored_hours": round(hours, 2),
                     "limit_hours": limit_h, "handed_over": handed_t is not None},
            evidence=evidence,
        )
