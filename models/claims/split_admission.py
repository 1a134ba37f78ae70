"""Split admission 分解住院: a patient discharged and readmitted for the same condition within days.

Discharging a patient and admitting them again soon after turns one stay into two bills
(two DRG payments, two deductibles reset). The detector remembers each patient's last
inpatient discharge and alerts when a new inpatient claim's admission date lies within
``max_gap_days`` of it, for the same diagnosis group (ICD-10 three characters), unless either
stay is a planned cycle — chemotherapy, radiotherapy, dialysis — named by diagnosis prefix or
billed item. The entity is the institution that readmitted; ``same_institution_only`` (default)
limits the rule to readmissions at the discharging institution.

>>> from models.alert import Source
>>> from models.runtime import Runtime
>>> d = Runtime([SplitAdmissionDetector()])
>>> def stay(n, admitted, discharged, diagnosis="J18.9", items=("BED",)):
...     e = {"claim_id": f"CL{n}", "claim_type": "inpatient", "institution_id": "H2", "patient": "Pabc",
...          "admission_date": admitted, "discharge_date": discharged, "diagnoses": [diagnosis],
...          "items": [{"item_code": c} for c in items], "total_amount": 5000.0, "_t": 1791939600.0 + n}
...     return d.process(e, Source("zhijian.claims", 1, n, f"CL{n}"))
>>> stay(1, "2026-10-01", "2026-10-06")
[]
>>> [a] = stay(2, "2026-10-10", "2026-10-15")
>>> a.entity_id, a.numbers["gap_days"], a.numbers["first_claim_id"]
('H2', 4, 'CL1')
>>> print(a.reason)
institution H2 readmitted a patient (Pabc) for J18 4 d after discharge (2026-10-06 → 2026-10-10), limit 15 d: claims CL1 and CL2
>>> stay(3, "2026-10-20", "2026-10-23", "C34.9", ("CHEMO",)), stay(4, "2026-10-30", "2026-11-02", "C34.9", ("CHEMO",))
([], [])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from models.alert import Alert, Source
from models.detector import Context, KeyedDetector


@dataclass(frozen=True)
class ReadmissionRules:
    """Configuration ``[claim.split_admission]``."""

    max_gap_days: int = 15
    same_institution_only: bool = True
    planned_diagnosis_prefixes: list[str] = field(default_factory=lambda: ["Z51", "Z49"])  # chemo/radio, dialysis
    planned_item_codes: list[str] = field(default_factory=lambda: ["CHEMO", "S-CHEMO", "S-DIALYSIS", "RADIOTHERAPY"])


@dataclass(slots=True)
class _Stay:
    claim_id: str
    institution: str
    discharged: date
    groups: frozenset[str]
    planned: bool
    source: Source


class SplitAdmissionDetector(KeyedDetector):
    name = "claim.split_admission"
    version = "1"
    stream = "claim"
    Limits = ReadmissionRules  # its configuration section [claim.split_admission]
    key, key_field = "patient", "patient"

    def __init__(self, rules: ReadmissionRules | None = None) -> None:
        super().__init__(rules)
        self.rules = self.limits
        # a discharge older than twice the window (and a week of settlement delay) no longer matters
        self.retention_s = (2 * self.rules.max_gap_days + 7) * 86400.0

    def _planned(self, event: dict[str, Any]) -> bool:
        r = self.rules
        return (any(d.startswith(p) for d in event["diagnoses"] for p in r.planned_diagnosis_prefixes)
                or any(it["item_code"] in r.planned_item_codes for it in event["items"]))

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        if event["claim_type"] != "inpatient" or not event.get("admission_date") or not event.get("discharge_date"):
            return []
        admitted = date.fromisoformat(event["admission_date"])
        groups = frozenset(d[:3] for d in event["diagnoses"])
        planned = self._planned(event)
        st = ctx.state
        alerts = []
        if st and st["claim_id"] != event["claim_id"]:
            prev = _Stay(st["claim_id"], st["institution"], date.fromisoformat(st["discharged"]),
                         frozenset(st["groups"]), st["planned"], Source(*st["source"]))
            gap = (admitted - prev.discharged).days
            same_site = prev.institution == event["institution_id"] or not self.rules.same_institution_only
            shared = sorted(prev.groups & groups)
            if 0 <= gap <= self.rules.max_gap_days and same_site and shared and not (planned or prev.planned):
                alerts.append(self._alert(event, prev, gap, shared, source))
        st.update(claim_id=event["claim_id"], institution=event["institution_id"],
                  discharged=event["discharge_date"][:10], groups=sorted(groups), planned=planned,
                  source=list(source))
        return alerts

    def _alert(self, event: dict[str, Any], prev: _Stay, gap: int, shared: list[str], source: Source) -> Alert:
        inst = event["institution_id"]
        reason = (f"institution {inst} readmitted a patient ({event['patient']}) for {', '.join(shared)} {gap} d after "
                  f"discharge ({prev.discharged.isoformat()} → {event['admission_date']}), limit "
                  f"{self.rules.max_gap_days} d: claims {prev.claim_id} and {event['claim_id']}")
        return Alert.build(
            detector=self.name, version=self.version, key=f"{prev.claim_id}|{event['claim_id']}",
            stream=self.stream, severity="high", tier="fraud", entity_kind="institution", entity_id=inst,
            institution_id=inst, region=event.get("region", "unknown"),
            event_t=event["_t"], score=(self.rules.max_gap_days + 1 - gap) / (self.rules.max_gap_days + 1) + 1,
            reason=reason,
            numbers={"patient": event["patient"], "gap_days": gap, "diagnosis_groups": shared,
                     "first_claim_id": prev.claim_id, "first_discharge": prev.discharged.isoformat(),
                     "readmission_claim_id": event["claim_id"], "admission_date": event["admission_date"],
                     "amount": event["total_amount"]},
            evidence=[prev.source, source],
        )
