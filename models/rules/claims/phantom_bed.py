"""Phantom bed 挂床住院: an inpatient who is, by the claims, somewhere else during the stay.

A patient billed as admitted while settling outpatient visits or pharmacy purchases
elsewhere was not in that bed. The detector keeps each patient's outpatient, emergency and
pharmacy settlements of the last ``lookback_days`` (compactly: day, site, claim id and record
coordinates, about 150 bytes each); when an inpatient claim arrives (at discharge),
settlements at another site on a day strictly between admission and discharge mean the stay
is suspect. Days of a stay longer than the lookback are not checked. The entity is the
institution that billed the stay.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([PhantomBedDetector()])
>>> def claim(n, kind, site, day, **extra):
...     e = {"claim_id": f"CL{n}", "claim_type": kind, "institution_id": site, "patient": "Pabc",
...          "event_time": f"{day}T10:00:00+08:00", "items": [], "total_amount": 80.0, "_t": 1791939600.0 + n,
...          **extra}
...     return d.process(e, Source("zhijian.claims", 2, n, f"CL{n}"))
>>> claim(1, "pharmacy", "P01", "2026-10-03"), claim(2, "pharmacy", "P01", "2026-10-09")
([], [])
>>> [a] = claim(3, "inpatient", "C04", "2026-10-09", admission_date="2026-10-01", discharge_date="2026-10-09")
>>> a.entity_id, a.numbers["settlements"]
('C04', [{'claim_id': 'CL1', 'site': 'P01', 'type': 'pharmacy', 'day': '2026-10-03'}])
>>> print(a.reason)
institution C04 billed a stay 2026-10-01 → 2026-10-09 while the patient (Pabc) settled 1 claim elsewhere during it (P01 on 2026-10-03)
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from models.contracts.alert import Alert, Source
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class PhantomBedRules:
    """Configuration ``[claim.phantom_bed]``."""

    lookback_days: int = 31


class PhantomBedDetector(KeyedDetector):
    name = "claim.phantom_bed"
    version = "1"
    stream = "claim"
    Limits = PhantomBedRules  # its configuration section [claim.phantom_bed]
    key, key_field = "patient", "patient"

    @classmethod
    def _conformance_params(cls) -> dict[str, Any]:
        # an outpatient settlement inside an inpatient stay shows when the stay is billed, at discharge: three weeks
        # of only its own scenarios
        return {"days": 21, "own_scenarios": True}

    def __init__(self, rules: PhantomBedRules | None = None) -> None:
        super().__init__(rules)
        self.rules = self.limits
        self.retention_s = (self.rules.lookback_days + 7) * 86400.0

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        patient, kind = ctx.key, event["claim_type"]
        day = event["event_time"][:10]
        # the patient's settlements: [day, site, claim id, type, partition, offset]
        seen = ctx.state.setdefault("seen", [])
        if kind != "inpatient":
            horizon = (date.fromisoformat(day) - timedelta(days=self.rules.lookback_days)).isoformat()
            seen[:] = [x for x in seen if x[0] >= horizon]
            if not any(x[2] == event["claim_id"] for x in seen):
                seen.append([day, event["institution_id"], event["claim_id"], kind, source.partition, source.offset])
            return []
        if not seen:
            ctx.state.clear()
        admitted, discharged = event.get("admission_date"), event.get("discharge_date")
        if not admitted or not discharged:
            return []
        inside = [s for s in seen if admitted < s[0] < discharged and s[1] != event["institution_id"]]
        if not inside:
            return []
        listed = [{"claim_id": c, "site": site, "type": t, "day": d} for d, site, c, t, _, _ in inside]
        where = ", ".join(f"{x['site']} on {x['day']}" for x in listed[:5])
        reason = (f"institution {event['institution_id']} billed a stay {admitted} → {discharged} while the patient "
                  f"({patient}) settled {len(listed)} claim{'s' if len(listed) > 1 else ''} elsewhere during it ({where})")
        return [Alert.build(
            detector=self.name, version=self.version, key=event["claim_id"],
            stream=self.stream, severity="high", tier="fraud", entity_kind="institution",
            entity_id=event["institution_id"], institution_id=event["institution_id"],
            region=event.get("region", "unknown"), event_t=event["_t"], score=float(len(listed)), reason=reason,
            numbers={"patient": patient, "admission_date": admitted, "discharge_date": discharged,
                     "inpatient_claim_id": event["claim_id"], "settlements": listed},
            evidence=[Source(source.topic, p, o, c) for _, _, c, _, p, o in inside[:20]] + [source],
        )]
