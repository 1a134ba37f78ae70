"""Medically unlikely units across claims 跨机构超量收费: more units of an item for one patient in one day than is
medically possible, added up over every claim and institution that billed them.

CMS's medically unlikely edits (MUE) cap the units of a service one patient can receive in a day (one head CT, 24
hours of monitoring, four sessions of physiotherapy); :mod:`.over_standard` applies the cap within one claim. Split
over two claims or two institutions — a morning session billed at one clinic, the afternoon's at another, four
each — no single claim breaks it. This rule keeps, per patient and service day, the units of each capped item and
who billed them, and alerts once when their sum passes the cap *across at least two claims* (one claim over the cap
is over_standard's). The cap table is configuration (``max_units_per_day``; empty: the rule is off); inpatient
claims, which bill a stay's days on one line, are not judged. The entity is the institution whose claim passed the
cap; the alert names every claim, institution and unit. A claim is judged by its latest version: a replacement or a
void takes its units back, and an alert no longer over the cap is withdrawn under its id.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([UnlikelyUnitsDetector(UnlikelyUnitsConfig(max_units_per_day={"S-PHYSIO": 4}))])
>>> def claim(cid, inst, units, offset):
...     e = {"claim_id": cid, "institution_id": inst, "patient": "Pq", "claim_type": "outpatient",
...          "event_time": "2026-10-14T10:00:00+08:00", "_t": 1791943200.0 + offset,
...          "items": [{"item_code": "S-PHYSIO", "quantity": units, "unit_price": 60.0, "amount": 60.0 * units}]}
...     return d.process(e, Source("zhijian.claims", 0, offset, cid))
>>> claim("C1", "K01", 3, 1)
[]
>>> [a] = claim("C2", "K02", 3, 2)                 # three more at another clinic the same day
>>> print(a.reason)
patient Pq was billed 6 units of S-PHYSIO on 2026-10-14 (at most 4 a day) on 2 claims at 2 institutions: K01 3 (C1), K02 3 (C2); 2 units, 120.00, beyond what is possible
>>> a.entity_id, a.numbers["units"], a.numbers["excess_amount"]
('K02', 6, 120.0)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector
from models.rules.claims import versions


@dataclass(frozen=True)
class UnlikelyUnitsConfig:
    """Configuration ``[claim.unlikely_units]``."""

    #: item code → the most units one patient can receive in a day (the region's MUE-like table)
    max_units_per_day: dict[str, float] = field(default_factory=dict)
    retention_days: int = 3  # service days kept behind the newest seen for the patient (late claims within it)


class UnlikelyUnitsDetector(KeyedDetector):
    name = "claim.unlikely_units"
    version = "1"
    stream = "claim"
    Limits = UnlikelyUnitsConfig  # its configuration section [claim.unlikely_units]
    key, key_field = "patient", "patient"
    versioned = True  # a replacement or a void takes its units back

    def __init__(self, config: UnlikelyUnitsConfig | None = None) -> None:
        super().__init__(config)
        self.config = self.limits
        self.retention_s = (self.config.retention_days + 1) * 86400.0

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        caps = self.config.max_units_per_day
        if not caps or event.get("claim_type") == "inpatient":
            return []
        st = ctx.state
        fam = versions.family(event)
        if (versions.adjustment(event) == "original" and fam not in st.get("applied", ())
                and not any(item["item_code"] in caps for item in event["items"])):
            return []  # bills no capped item: nothing to remember (most claims; their patients keep no state here)
        settled = event["event_time"][:10]
        what = versions.admit(st.setdefault("applied", {}), event, settled)
        if what == "stale":
            return []
        # "item|day" → [[family, units, institution, amount, source], …]: who billed the capped items, per day
        billed: dict[str, list[list[Any]]] = st.setdefault("billed", {})
        touched = set()
        if what != "new":  # the earlier version's units are taken back
            for k in list(billed):
                kept = [b for b in billed[k] if b[0] != fam]
                if len(kept) != len(billed[k]):
                    touched.add(k)
                billed[k] = kept
                if not kept:
                    del billed[k]
        if what != "voids":
            for item in event["items"]:
                if item["item_code"] not in caps:
                    continue
                k = f"{item['item_code']}|{item.get('service_date') or settled}"
                billed.setdefault(k, []).append([fam, item["quantity"], event["institution_id"], item["amount"],
                                                list(source)])
                touched.add(k)
        self._prune(st, billed)
        alerted: dict[str, list[str]] = st.setdefault("alerted", {})  # "item|day" → [the alert's key, its entity]
        out = []
        for k in sorted(touched):
            entries = billed.get(k, [])
            code = k.split("|", 1)[0]
            units, families = sum(b[1] for b in entries), {b[0] for b in entries}
            over = units > caps[code] and len(families) >= 2
            if over and k not in alerted:
                alerted[k] = [f"{ctx.key}|{k}", event["institution_id"]]
                out.append(self._alert(ctx.key, k, entries, caps[code], event, source))
            elif not over and k in alerted:
                out.append(self._withdrawn(ctx.key, k, *alerted.pop(k), event, source))
        return out

    def _prune(self, st: dict[str, Any], billed: dict[str, list[list[Any]]]) -> None:
        # the versions' days count too: a patient whose corrections billed nothing capped forgets them as well
        newest = max([k.rsplit("|", 1)[1] for k in billed] + [v[1] for v in st.get("applied", {}).values()]
                     + [st.get("newest", "")])
        st["newest"] = newest
        if not newest:
            return
        horizon = (date.fromisoformat(newest) - timedelta(days=self.config.retention_days)).isoformat()
        if st.get("pruned") == horizon:
            return
        for k in [k for k in billed if k.rsplit("|", 1)[1] < horizon]:
            del billed[k]
        st["alerted"] = {k: v for k, v in st.get("alerted", {}).items() if k.rsplit("|", 1)[1] >= horizon}
        st["applied"] = versions.forget_before(st.get("applied", {}), horizon)
        st["pruned"] = horizon

    def _alert(self, patient: str, k: str, entries: list[list[Any]], cap: float, event: dict[str, Any],
               source: Source) -> Alert:
        code, day = k.split("|", 1)
        units = sum(b[1] for b in entries)
        institutions = sorted({b[2] for b in entries})
        unit_price = max(b[3] / b[1] for b in entries if b[1])
        excess_units = units - cap
        excess = round(excess_units * unit_price, 2)
        parts = ", ".join(f"{b[2]} {b[1]:g} ({b[0]})" for b in entries)
        reason = (f"patient {patient} was billed {units:g} units of {code} on {day} (at most {cap:g} a day) on "
                  f"{len({b[0] for b in entries})} claims at {len(institutions)} institution"
                  f"{'s' if len(institutions) > 1 else ''}: {parts}; {excess_units:g} units, {excess:.2f}, beyond what "
                  "is possible")
        return Alert.build(
            detector=self.name, version=self.version, key=f"{patient}|{k}", stream=self.stream, severity="medium",
            tier="violation", entity_kind="institution", entity_id=event["institution_id"],
            institution_id=event["institution_id"], region=event.get("region", "unknown"), event_t=event["_t"],
            score=1.0 + excess_units / cap, reason=reason,
            numbers={"patient": patient, "item_code": code, "service_date": day, "units": units,
                     "max_units_per_day": cap, "excess_units": excess_units, "excess_amount": excess,
                     "claims": [{"claim_id": b[0], "institution_id": b[2], "units": b[1], "amount": b[3]}
                                for b in entries],
                     "institutions": institutions},
            evidence=[Source(*b[4]) for b in entries][-20:],
        )

    def _withdrawn(self, patient: str, k: str, key: str, entity: str, event: dict[str, Any], source: Source) -> Alert:
        code, day = k.split("|", 1)
        return Alert.build(
            detector=self.name, version=self.version, key=key, stream=self.stream, severity="medium",
            tier="violation", entity_kind="institution", entity_id=entity, institution_id=entity, region=event.get("region", "unknown"), event_t=event["_t"],
            score=0.0, status="withdrawn",
            reason=(f"withdrawn: claim {versions.family(event)} was corrected; patient {patient}'s units of {code} "
                    f"on {day} are within the cap again"),
            numbers={"patient": patient, "item_code": code, "service_date": day, "corrected_by": event["claim_id"]},
            evidence=[source],
        )
