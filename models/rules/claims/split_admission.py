"""Split admission 分解住院: a patient discharged and readmitted for the same condition within days.

Discharging a patient and admitting them again soon after turns one stay into two bills
(two DRG payments, two deductibles reset). The detector remembers each patient's last
inpatient discharge and alerts when a new inpatient claim's admission date lies within
``max_gap_days`` of it for the same condition treated: the same *principal* diagnosis category
(:func:`models.rules.claims.icd.principal`: named by a v2 claim, else the first listed) or the same
DRG/DIP group when both stays carry one — not any shared comorbidity (hypertension and diabetes
ride along on half the stays of the old). A planned cycle is exempt — chemotherapy, radiotherapy,
dialysis — named by a diagnosis in either code system (ICD-10 Z51, Z49; ICD-9-CM V58.0, V58.1, V56)
or by a billed item. The entity is the institution that readmitted; ``same_institution_only``
(default) limits the rule to readmissions at the discharging institution.

>>> from models.contracts.alert import Source
>>> from models.engine.runtime import Runtime
>>> d = Runtime([SplitAdmissionDetector()])
>>> def stay(n, admitted, discharged, diagnosis="J18.9", items=("BED",), **v2):
...     e = {"claim_id": f"CL{n}", "claim_type": "inpatient", "institution_id": "H2", "patient": "Pabc",
...          "admission_date": admitted, "discharge_date": discharged,
...          "diagnoses": [diagnosis] if isinstance(diagnosis, str) else diagnosis,
...          "items": [{"item_code": c} for c in items], "total_amount": 5000.0, "_t": 1791939600.0 + n, **v2}
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

A shared comorbidity is not the condition treated; an ICD-9 chemotherapy code is a planned cycle:

>>> stay(5, "2026-11-20", "2026-11-25", ["K35.8", "I10"]), stay(6, "2026-11-28", "2026-11-30", ["J18.9", "I10"])
([], [])
>>> icd9 = {"diagnosis_code_system": "ICD-9"}
>>> stay(7, "2026-12-10", "2026-12-12", ["V58.11", "162.9"], **icd9), stay(8, "2026-12-20", "2026-12-22", ["V58.11", "162.9"], **icd9)
([], [])
>>> _ = stay(9, "2027-01-01", "2027-01-04", ["486"], **icd9); [a] = stay(10, "2027-01-06", "2027-01-08", ["486"], **icd9)
>>> a.numbers["diagnosis_groups"]
['486']

The same DRG under another principal diagnosis is one condition paid twice:

>>> _ = stay(11, "2027-02-10", "2027-02-15", ["J18.9"], drg="ES31"); [a] = stay(12, "2027-02-20", "2027-02-22", ["J15.9"], drg="ES31")
>>> a.numbers["diagnosis_groups"]
['DRG:ES31']
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from models.contracts.alert import Alert, Source
from models.rules.claims.icd import category, normalize, principal, system_of
from models.engine.detector import Context, KeyedDetector


@dataclass(frozen=True)
class ReadmissionRules:
    """Configuration ``[claim.split_admission]``."""

    max_gap_days: int = 15
    same_institution_only: bool = True
    #: code system → diagnosis code prefixes (no dot) of planned cycles: ICD-10 Z51 (radio-, chemotherapy),
    #: Z49 (dialysis); ICD-9-CM V58.0 (radiotherapy), V58.1 (chemo-, immunotherapy), V56 (dialysis)
    planned_diagnoses: dict[str, list[str]] = field(default_factory=lambda: {
        "ICD-10": ["Z51", "Z49"], "ICD-9": ["V580", "V581", "V56"]})
    planned_item_codes: list[str] = field(default_factory=lambda: ["CHEMO", "S-CHEMO", "S-DIALYSIS", "RADIOTHERAPY"])


def planned_stay(event: dict[str, Any], rules: ReadmissionRules) -> bool:
    """Whether an inpatient claim is a planned cycle (chemotherapy, radiotherapy, dialysis): by a diagnosis in
    its code system or a billed item."""
    prefixes = rules.planned_diagnoses.get(system_of(event), ())
    return (any(normalize(d).startswith(p) for d in event.get("diagnoses") or () for p in prefixes)
            or any(it.get("item_code") in rules.planned_item_codes for it in event.get("items") or ()))


@dataclass(slots=True)
class _Stay:
    claim_id: str
    institution: str
    discharged: date
    groups: frozenset[str]  # the principal diagnosis's category, and "DRG:<group>" when billed under one
    planned: bool
    source: Source


class SplitAdmissionDetector(KeyedDetector):
    name = "claim.split_admission"
    version = "2"
    stream = "claim"
    Limits = ReadmissionRules  # its configuration section [claim.split_admission]
    key, key_field = "patient", "patient"

    @classmethod
    def _conformance_params(cls) -> dict[str, Any]:
        # a readmission is billed at its discharge, weeks after the first stay: three weeks of only its own
        # scenarios
        return {"days": 21, "own_scenarios": True}

    def __init__(self, rules: ReadmissionRules | None = None) -> None:
        super().__init__(rules)
        self.rules = self.limits
        # a discharge older than twice the window (and a week of settlement delay) no longer matters
        self.retention_s = (2 * self.rules.max_gap_days + 7) * 86400.0

    def _planned(self, event: dict[str, Any]) -> bool:
        return planned_stay(event, self.rules)

    @staticmethod
    def _groups(event: dict[str, Any]) -> frozenset[str]:
        first = principal(event)
        groups = {category(first)} if first else set()
        if event.get("drg"):
            groups.add(f"DRG:{event['drg']}")
        return frozenset(groups)

    def process(self, ctx: Context, event: dict[str, Any], source: Source) -> list[Alert]:
        if event["claim_type"] != "inpatient" or not event.get("admission_date") or not event.get("discharge_date"):
            return []
        admitted = date.fromisoformat(event["admission_date"])
        groups = self._groups(event)
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
